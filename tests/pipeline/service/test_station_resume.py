"""Engine state across a pipeline restart inside one station: a state saved while running
is resumed; one saved after the standing calibration (before running) is resumed too and
reaches running."""

from __future__ import annotations

import pytest

from hipstride.edge.simulator import simulate
from hipstride.frames import decode_frame
from hipstride.pipeline.service.station import Station
from tests.pipeline.service.sim_frames import sim_frames

BASE_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def sim():
    return simulate(60.0, seed=4)


def run(st: Station, sim, pieces, until_phase: str | None = None):
    """Feed frames (polling after each EMG frame); stop once the engine is in ``until_phase``
    and return the state a pipeline would have saved then."""
    saved = None
    for d in sim.descriptions:
        st.describe(d)
    for f in sim_frames(sim, BASE_NS, pieces):
        st.accept(decode_frame(f.payload), f.payload)
        if f.stream == "emg":
            st.poll()
            update = st.calibration_update()
            if update is not None and update[0] is not None:
                saved = (update[0], update[1])
            if until_phase and st.engine is not None and st.engine.phase == until_phase:
                return saved
    return saved


def test_state_saved_after_standing_resumes_without_failing(sim, tmp_path):
    """Killed after the standing calibration, before running (the state has no running
    part), restarted while the runner runs: the engine resumes from the stored standing
    calibration and gets to running. (Calibrating afresh instead would leave it stuck: the
    IMUs are not still.)"""
    first = Station("tm1", tmp_path / "a")
    saved = run(first, sim, [(0.0, 60.0)], until_phase="calibrating")
    assert first.engine.phase == "calibrating" and saved is not None
    assert '"running": null' in saved[0]
    again = Station("tm1", tmp_path / "b", calibration=saved)
    run(again, sim, [(20.0, 60.0)])
    assert again.resumed and again.engine_failed is None
    assert again.engine.phase == "running" and again.rows > 0


def test_running_state_is_resumed(sim, tmp_path):
    first = Station("tm1", tmp_path / "a")
    run(first, sim, [(0.0, 45.0)])
    assert first.engine.phase == "running"
    body, data_ns = first.calibration_update() or (None, None)
    saved = (body or first._saved_calibration, data_ns)
    again = Station("tm1", tmp_path / "b", calibration=saved)
    run(again, sim, [(46.0, 60.0)])
    assert again.resumed and again.engine_failed is None and again.engine.phase == "running"
