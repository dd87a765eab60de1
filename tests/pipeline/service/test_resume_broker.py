"""A pipeline SIGKILLed while the runner is running resumes its engine from the stored
calibration: real Mosquitto, the real edge agent (simulator) and the pipeline as subprocesses,
a SQLite store.

Scenario: a session is started with ``hipstride session start``; tm1 streams a run (standing,
then running); once the session has stride rows with kinematics the pipeline is SIGKILLed and
restarted on the same state directory while the runner is still running. Asserted: the
restarted pipeline resumed from the stored calibration (its log), stride rows keep arriving
for the session after the restart with peak hip extension within 3° of the rows before the
kill (per side, medians; rows of the gap-recovery period carry ``dropout:imu_*`` and no
kinematics), and every sample is in the frame index exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hipstride.pipeline.store import open_store
from tests.pipeline.service.test_pipeline_broker import sqlite_counts, sqlite_seqs
from tests.support.pipeline import USERS, PipelineProcess, clean_env, hs_session, wait_until

RUN_S = 44
STREAMS = {"emg": 2000.0, **{f"imu_{s}": 200.0 for s in
                             ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r")}}
EXPECTED = {stream: int(RUN_S * rate) for stream, rate in STREAMS.items()}


def strides(db: Path, session: str) -> list[dict]:
    store = open_store(f"sqlite:///{db}")
    try:
        return store.strides(session)
    except Exception:  # the store file or table may not exist yet
        return []
    finally:
        store.close()


def with_kinematics(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("peak_hip_extension_deg") is not None
            and np.isfinite(r["peak_hip_extension_deg"])]


@pytest.mark.timeout(150)
def test_sigkill_while_running_resumes_the_engine(broker, tmp_path):
    db = tmp_path / "store.sqlite"
    pipeline = PipelineProcess(broker, f"sqlite:///{db}", tmp_path)
    edge = None
    try:
        pipeline.start()
        started = hs_session(broker, "start", "--athlete", "ana")
        assert started.returncode == 0, started.stderr
        session = json.loads(started.stdout)["session"]
        edge = subprocess.Popen(
            [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
             broker.url_for("edge-tm1"), "--source", "sim", "--duration", str(RUN_S),
             "--seed", "5", "--spool", str(tmp_path / "edge.sqlite")],
            env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["edge-tm1"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # running: standing (5 s) and the functional calibration (10 s) are over
        wait_until(lambda: len(with_kinematics(strides(db, session))) >= 8, RUN_S,
                   "stride rows with kinematics before the kill")
        pipeline.kill()
        before = strides(db, session)
        assert edge.poll() is None, "the run ended before the kill"
        pipeline.start()
        assert edge.wait(RUN_S + 30) == 0, edge.stderr.read()
        wait_until(lambda: {s: c[1] for s, c in sqlite_counts(db)().items()} == EXPECTED, 30,
                   f"exact sample counts {EXPECTED}")
        last_before = max(r["time_ns"] for r in before)
        wait_until(lambda: len(with_kinematics([r for r in strides(db, session)
                                                if r["time_ns"] > last_before])) >= 10, 20,
                   "stride rows with kinematics after the restart")
        assert hs_session(broker, "stop").returncode == 0
    finally:
        if edge is not None and edge.poll() is None:
            edge.kill()
            edge.wait(10)
        code = pipeline.stop()
    assert code == 0, pipeline.log()
    assert "engine resumed from the stored calibration (running)" in pipeline.log()

    # every sample once, contiguous sequence numbers
    counts = sqlite_counts(db)()
    assert {s: c[1] for s, c in counts.items()} == EXPECTED
    for stream in STREAMS:
        seqs = sqlite_seqs(db, stream)
        assert len(seqs) == len(set(seqs)) == counts[stream][0]
        assert sorted(q for _e, q in seqs) == list(range(len(seqs)))

    rows = strides(db, session)
    after = [r for r in rows if r["time_ns"] > last_before]
    kin_before, kin_after = with_kinematics(before), with_kinematics(after)
    assert len(kin_after) >= 10, after
    assert all(r["athlete"] == "ana" for r in rows)
    # the rows of the recovery right after the restart carry the dropout flag
    assert any("dropout:imu_" in (r["quality"] or "") for r in after)
    for side in ("l", "r"):
        a = [r["peak_hip_extension_deg"] for r in kin_before if r["side"] == side]
        b = [r["peak_hip_extension_deg"] for r in kin_after if r["side"] == side]
        assert a and b, side
        assert abs(np.median(b) - np.median(a)) < 3.0, (side, a, b)
        assert max(abs(x - np.median(a)) for x in b) < 6.0, (side, a, b)
