import itertools
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hipstride.edge.clock import SampleClock
from hipstride.edge.framing import Framer
from hipstride.edge.sources.base import Block
from hipstride.frames import decode_frame
from hipstride.streams import emg_description, imu_description


@given(st.lists(st.integers(0, 250), min_size=1, max_size=40), st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_any_block_sizes_give_the_same_contiguous_frames(sizes, seq0):
    d = emg_description()
    framer = Framer(d, frame_ms=50, next_seq=seq0, epoch=3)
    data = np.arange(sum(sizes) * 6, dtype=np.float32).reshape(-1, 6)
    frames, pos = [], 0
    for i, n in enumerate(sizes):
        frames += framer.push(Block("emg", data[pos:pos + n]), arrival_ns=10**18 + i * 10**7)
        pos += n
    frames += framer.flush()
    decoded = [decode_frame(f.payload) for f in frames]
    assert [f.seq for f in decoded] == list(range(seq0, seq0 + len(decoded)))
    assert all(f.n_samples == 100 for f in decoded[:-1])
    out = np.concatenate([f.samples for f in decoded]) if decoded else np.zeros((0, 6))
    assert np.array_equal(out, data)
    starts = [f.t0_ns for f in decoded]
    assert all(b - a == 50_000_000 for a, b in itertools.pairwise(starts))


def test_source_timestamps_are_kept():
    framer = Framer(imu_description("pelvis"), frame_ms=50, next_seq=0, epoch=0)
    out = framer.push(Block("imu_pelvis", np.zeros((25, 6), np.float32),
                            first_timestamp_ns=5_000_000_000))
    assert [f.t0_ns for f in out] == [5_000_000_000, 5_050_000_000]


def test_samples_lost_at_the_source_close_the_frame_and_shift_time():
    framer = Framer(imu_description("pelvis"), frame_ms=50, next_seq=0, epoch=0)
    first = framer.push(Block("imu_pelvis", np.zeros((5, 6), np.float32)), arrival_ns=10**18)
    after = framer.push(Block("imu_pelvis", np.ones((10, 6), np.float32), dropped_before=3),
                        arrival_ns=10**18 + 90_000_000)
    assert first == [] and [f.n_samples for f in after] == [5, 10]
    assert after[1].t0_ns - after[0].t0_ns == 8 * 5_000_000  # 5 sent + 3 lost samples
    assert framer.samples_dropped_at_source == 3


def test_a_source_faster_than_real_time_keeps_its_sample_clock():
    """A simulator at 10x delivers samples faster than the wall clock: timestamps must not be
    pulled back to the wall clock (they would jump backwards and collide)."""
    clock = SampleClock(2000.0, window_s=0.001)  # re-anchor as eagerly as possible
    framer = Framer(emg_description(), frame_ms=50, next_seq=0, epoch=0, clock=clock)
    frames = []
    for _ in range(400):  # 8 s of data pushed in about a tenth of that
        frames += framer.push(Block("emg", np.zeros((40, 6), np.float32)))
        time.sleep(0.0005)
    starts = [f.t0_ns for f in frames]
    assert all(b - a == 50_000_000 for a, b in itertools.pairwise(starts))
