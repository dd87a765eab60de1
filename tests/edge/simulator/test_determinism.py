"""Same seed and settings -> bit-identical samples, however the streams are read."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hipstride.edge.simulator import SessionConfig, SessionGenerator, simulate

CONFIG = {"duration_s": 6.3, "seed": 21, "standing_s": 1.0, "mains_hz": 50.0,
          "misalignment_deg": 10.0}
WHOLE = simulate(**CONFIG)


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=20),
       order=st.permutations(list(WHOLE.data)))
def test_any_chunking_gives_the_same_samples(chunks, order):
    gen = SessionGenerator(SessionConfig(**CONFIG))
    got = {s: [] for s in gen.streams}
    i = 0
    while any(gen.remaining(s) for s in gen.streams):
        for stream in order:
            n = chunks[i % len(chunks)]
            i += 1
            got[stream].append(gen.read(stream, n))
    for stream, parts in got.items():
        joined = np.concatenate(parts)
        assert joined.shape == WHOLE.data[stream].shape
        assert joined.tobytes() == WHOLE.data[stream].tobytes()


def test_seed_changes_the_session():
    other = simulate(**{**CONFIG, "seed": 22})
    assert not np.array_equal(other.data["emg"], WHOLE.data["emg"])
    again = simulate(**CONFIG)
    assert again.truth.strides == WHOLE.truth.strides
