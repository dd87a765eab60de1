from hypothesis import given
from hypothesis import strategies as st

from hipstride.sequence import SequenceTracker


@given(st.lists(st.integers(0, 200), min_size=1, max_size=400))
def test_missing_and_duplicates_match_a_set_model(seqs):
    tracker = SequenceTracker()
    first = seqs[0]
    for s in seqs:
        tracker.add(s)
    kept = {s for s in seqs if s >= first}
    assert tracker.received == len(kept)
    assert tracker.duplicates == len(seqs) - len(kept)
    assert tracker.missing == (max(kept) - first + 1) - len(kept)
    missing = {s for lo, hi in tracker.missing_ranges(limit=1000) for s in range(lo, hi + 1)}
    assert missing == set(range(first, max(kept) + 1)) - kept


def test_a_new_epoch_starts_counting_afresh():
    tracker = SequenceTracker()
    for s in (0, 1, 2):
        tracker.add(s, epoch=7)
    assert tracker.add(0, epoch=9)
    assert tracker.epoch_changes == 1 and tracker.missing == 0
