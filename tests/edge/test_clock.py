import itertools

import numpy as np

from hipstride.edge.clock import SampleClock

NS = 1_000_000_000


def _run(true_rate_hz: float, nominal_hz: float, seconds: float, block: int = 20,
         latency_ms: float = 3.0, seed: int = 0) -> SampleClock:
    """Blocks produced by an ADC running at true_rate_hz, arriving with jittery latency."""
    rng = np.random.default_rng(seed)
    clock = SampleClock(nominal_hz, max_offset_ms=5.0, window_s=2.0)
    start = 1_700_000_000 * NS
    for end in range(block, int(seconds * true_rate_hz), block):
        produced = start + end / true_rate_hz * NS
        clock.observe(end, int(produced + (latency_ms + rng.exponential(2.0)) * 1e6))
    return clock


def test_a_perfect_clock_reports_no_drift_and_never_reanchors():
    clock = _run(2000.0, 2000.0, 60)
    est = clock.estimate()
    assert abs(est.drift_ppm) < 5 and est.reanchors == 0 and abs(est.offset_ms) < 1


def test_drift_is_measured_in_ppm():
    clock = _run(2000.0 * (1 - 100e-6), 2000.0, 40)  # ADC 100 ppm slow
    assert 80 < clock.estimate().drift_ppm < 120


def test_timestamps_stay_near_the_wall_clock_by_reanchoring():
    seconds, true_rate = 300, 2000.0 * (1 - 200e-6)
    clock = _run(true_rate, 2000.0, seconds)
    assert clock.estimate().reanchors >= 5
    end = int(seconds * true_rate) - 20
    true_time = 1_700_000_000 * NS + end / true_rate * NS
    assert abs(clock.timestamp_ns(end) - true_time) < 12e6  # within latency + 5 ms


def test_timestamps_never_go_backwards_across_reanchors():
    clock = _run(2000.0 * (1 + 300e-6), 2000.0, 120)
    stamps = [clock.timestamp_ns(i) for i in range(0, 239_000, 100)]
    assert all(b > a for a, b in itertools.pairwise(stamps))
