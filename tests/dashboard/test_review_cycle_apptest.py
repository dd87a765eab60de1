"""Review's gait-cycle and report tabs in AppTest: ensembles from stored processed streams (a
simulated run analysed by the engine and written through the Store API), plain messages
when hip angles or recordings are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from hipstride.dashboard import data
from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.store import SessionMeta, SqliteStore
from hipstride.pipeline.validation import engine_inputs

REVIEW = Path(data.__file__).parent / "views" / "review.py"
T0 = 1_767_600_000 * 10**9
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def run():
    emg, imus, mvc = engine_inputs(simulate(110.0, profile="healthy", seed=5, mvc=True))
    return analyze(emg, imus, mvc=mvc)


def _fill(path: Path, result, *, with_hip: bool) -> str:
    with SqliteStore(path) as store:
        for session in ("with", "without"):
            start = T0 if session == "with" else T0 + 3600 * 10**9
            store.write_session(SessionMeta(session, "tm1", "ana", start,
                                            start + 50 * 10**9, label=session))
            store.write_strides("tm1", session, "ana", result.rows, origin_ns=start)
            if session == "with" and with_hip:
                k = result.kinematics
                names = [f"hip_flexion_{s}_deg" for s in "lr"]
                # stored at 100 Hz like the pipeline's processed streams
                step = round(k.rate_hz / 100)
                values = np.column_stack([k.hip_flexion_deg[s][::step] for s in "lr"])
                store.write_processed("tm1", session, "hip_angle",
                                      start + round(k.start_s * 1e9), k.rate_hz / step, names,
                                      values)
            act = result.activity
            step = round(act.rate_hz / 100)
            env = act.envelope[::step] * act.reference_mv  # back to mV, as the pipeline stores
            store.write_processed("tm1", session, "emg_envelope",
                                  start + round(act.start_s * 1e9), act.rate_hz / step,
                                  list(act.channels), env)
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for name in ("HIPSTRIDE_ACCOUNTS", "HIPSTRIDE_DASHBOARD_PASSWORD",
                 "HIPSTRIDE_RECORDINGS_DIR"):
        monkeypatch.delenv(name, raising=False)
    for loader in (data.load_sessions, data.load_strides, data.load_cues, data.load_processed,
                   data.connect):
        loader.clear()


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.markdown, *at.info, *at.error, *at.caption))


@pytest.mark.timeout(180)
def test_gait_cycle_tab_draws_ensembles_and_says_when_hip_angles_are_missing(
        monkeypatch, tmp_path, run):
    monkeypatch.setenv(data.STORE_ENV, _fill(tmp_path / "s.db", run, with_hip=True))
    at = AppTest.from_file(str(REVIEW), default_timeout=TIMEOUT_S).run()
    at.selectbox(key="session").set_value(("tm1", "with")).run()
    assert not at.exception, at.exception
    text = _text(at)
    assert "**Hip flexion**" in text and "**Glute max EMG envelope**" in text
    assert "**Hamstrings EMG envelope**" in text
    assert "No processed hip angles stored for this session" not in text
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3 + 3  # per-stride charts, then hip + 2 envelopes

    at.selectbox(key="session").set_value(("tm1", "without")).run()
    assert not at.exception
    text = _text(at)
    assert "No processed hip angles stored for this session." in text
    assert "**Glute max EMG envelope**" in text  # the envelopes are still there

    # the report needs the recordings folder, and says so
    assert "HIPSTRIDE_RECORDINGS_DIR" in text
    monkeypatch.setenv("HIPSTRIDE_RECORDINGS_DIR", str(tmp_path / "recordings"))
    at.run()
    assert "There is no recording of this session" in _text(at)
