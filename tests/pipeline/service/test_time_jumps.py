"""A station's clock stepping by hours: a gap, recorded, never filled — the engine restarts once
per step and keeps producing strides; memory stays small; a single mis-dated frame costs two
restarts, not hours of dropped samples."""

from __future__ import annotations

import tracemalloc

import pytest

from hipstride.edge.simulator import simulate
from hipstride.frames import decode_frame
from hipstride.pipeline.service.station import Station
from tests.pipeline.service.sim_frames import sim_frames

BASE_NS = 1_700_000_000_000_000_000
HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def sim():
    return simulate(70.0, seed=5)


def feed(st: Station, frames) -> None:
    for f in frames:
        st.accept(decode_frame(f.payload), f.payload)
        if f.stream == "emg":
            st.poll()


@pytest.mark.parametrize("step_ns", [2 * HOUR_NS, 24 * HOUR_NS, -HOUR_NS])
def test_a_clock_step_restarts_the_engine_once_and_strides_go_on(sim, tmp_path, step_ns):
    st = Station("tm1", tmp_path)
    for d in sim.descriptions:
        st.describe(d)
    feed(st, sim_frames(sim, BASE_NS, [(0.0, 40.0)]))
    assert st.engine.phase == "running"
    rows_before = st.rows
    tracemalloc.start()
    try:
        feed(st, sim_frames(sim, BASE_NS + 40 * 10**9 + step_ns, [(40.0, 41.0)]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60e6, f"{peak / 1e6:.0f} MB for a step of {step_ns / HOUR_NS:+.0f} h"
    assert sorted(s for s, _ns in st.jumps) == sorted(d.stream for d in sim.descriptions)
    assert st.restarts == 1 and st.engine_failed is None
    feed(st, sim_frames(sim, BASE_NS + 41 * 10**9 + step_ns, [(41.0, 70.0)]))
    assert st.engine.phase == "running" and st.rows > rows_before + 10


def test_one_misdated_frame_costs_two_restarts_not_the_stream(sim, tmp_path):
    st = Station("tm1", tmp_path)
    for d in sim.descriptions:
        st.describe(d)
    frames = list(sim_frames(sim, BASE_NS, [(0.0, 70.0)]))
    emg = [i for i, f in enumerate(frames) if f.stream == "emg"]
    bad = emg[len(emg) * 4 // 7]  # at 40 s
    feed(st, frames[:bad])
    f = frames[bad]
    frame = decode_frame(f.payload)
    from hipstride.frames import encode_frame
    payload = encode_frame("emg", frame.seq, frame.t0_ns + 2 * HOUR_NS, frame.rate_hz,
                           frame.samples)
    st.accept(decode_frame(payload), payload)
    rows_before = st.rows
    feed(st, frames[bad + 1:])
    assert [s for s, _ns in st.jumps] == ["emg", "emg"] and st.restarts == 2
    assert st.engine.phase == "running" and st.rows > rows_before + 10
    assert st.engine.stats["dropped_samples"] < 2000
