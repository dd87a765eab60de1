"""EMG engine cost: one hour of 6 channels x 2 kHz offline, and one 50 ms live frame.

Offline: the review chain (zero-phase band-pass, envelope, TKEO envelope, per-stride quiet
window + onsets for every channel) on one hour of synthetic running EMG, as a real-time factor
(hours of data per hour of CPU), next to NeuroKit2's ``emg_process`` (test-only dependency) in
the same run. NeuroKit2's activation step loops over every sample in pandas, far too slow for
an hour, so it is timed on a shorter slice of one channel and scaled linearly to 6 x 1 h
(its cost is linear in the samples); the slice length is printed.

Live: ``EmgEnvelopeFilter.process`` on a 100 x 6 frame (50 ms at 2 kHz), next to the floor of
a bare ``scipy.signal.sosfilt`` of the band-pass alone on the same block.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from scipy.signal import sosfilt
from timing import per_call_us  # benchmarks/timing.py

from hipstride.pipeline.engine.emg import (
    EmgEnvelopeFilter,
    emg_clean,
    emg_envelope,
    emg_filter_design,
    emg_onsets,
    emg_quiet_window,
    emg_tkeo_envelope,
)

FS = 2000.0
N_CHANNELS = 6
STRIDE_S = 0.7
NK_SLICE_S = 60.0


def synthetic_run(duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 6) mV: white noise gated by a periodic burst per stride (content barely matters)."""
    n = int(duration_s * FS)
    phase = (np.arange(n) / FS % STRIDE_S) / STRIDE_S
    activation = 0.03 + 0.3 * (np.abs(phase - 0.45) < 0.15)
    x = rng.standard_normal((n, N_CHANNELS)).astype(np.float64)
    x *= activation[:, None]
    return x


def offline_chain(x: np.ndarray) -> int:
    """Envelope + onsets of every channel in every stride; returns the onsets found."""
    design = emg_filter_design(FS)
    clean = emg_clean(x, FS, design=design)
    emg_envelope(clean, FS, design=design, band_passed=True)
    tkeo_env = emg_tkeo_envelope(clean, FS)
    stride = int(STRIDE_S * FS)
    found = 0
    for ch in range(x.shape[1]):
        channel = np.ascontiguousarray(tkeo_env[:, ch])
        for a in range(0, len(channel) - stride + 1, stride):
            baseline = emg_quiet_window(channel, FS, start=a, stop=a + stride)
            onsets, _ = emg_onsets(channel[a:a + stride], FS,
                                   baseline=channel[baseline[0]:baseline[1]])
            found += len(onsets)
    return found


def neurokit_seconds(x: np.ndarray) -> float | None:
    try:
        import neurokit2 as nk
    except ImportError:
        return None
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nk.emg_process(x, sampling_rate=int(FS))
    return time.perf_counter() - start


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rng = np.random.default_rng(0)
    duration_s = hours * 3600.0
    x = synthetic_run(duration_s, rng)
    start = time.perf_counter()
    n_onsets = offline_chain(x)
    ours_s = time.perf_counter() - start
    print(f"offline chain, {duration_s / 3600:g} h x {N_CHANNELS} ch x {FS:g} Hz: "
          f"{ours_s:.1f} s  -> real-time factor {duration_s / ours_s:,.0f}x "
          f"({n_onsets} onsets)")

    nk_slice = x[: int(NK_SLICE_S * FS), 0]
    nk_s = neurokit_seconds(nk_slice)
    if nk_s is None:
        print("neurokit2 not installed: no baseline (pip install neurokit2)")
    else:
        scale = duration_s / NK_SLICE_S * N_CHANNELS
        nk_full_s = nk_s * scale
        ours_slice_s = ours_s / scale
        print(f"neurokit2 emg_process, {NK_SLICE_S:g} s x 1 ch: {nk_s:.2f} s, scaled x{scale:g} "
              f"to the same data: ~{nk_full_s:,.0f} s  -> real-time factor "
              f"{duration_s / nk_full_s:,.1f}x")
        print(f"ours per {NK_SLICE_S:g} s channel: {ours_slice_s * 1000:.1f} ms; "
              f"neurokit2 / ours = {nk_full_s / ours_s:,.0f}x")

    frame = rng.standard_normal((100, N_CHANNELS))
    design = emg_filter_design(FS)
    live = EmgEnvelopeFilter(design, N_CHANNELS)
    ours_us = per_call_us(lambda: live.process(frame))
    zi = np.zeros((design.band_sos.shape[0], 2, N_CHANNELS))
    floor_us = per_call_us(lambda: sosfilt(design.band_sos, frame, axis=0, zi=zi))
    print(f"live frame 100 x {N_CHANNELS}: {ours_us:.1f} us per frame "
          f"({ours_us / 50_000 * 100:.3f} % of one core at 20 frames/s); bare band-pass sosfilt "
          f"{floor_us:.1f} us; ratio {ours_us / floor_us:.1f}x")


if __name__ == "__main__":
    main()
