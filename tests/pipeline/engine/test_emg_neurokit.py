"""Cross-check against NeuroKit2 (a test-only dependency) on the same synthetic signal.

What differs, and therefore what is compared:

* Cleaning: ``nk.emg_clean`` is a 4th-order Butterworth **100 Hz high-pass** (zero-phase) plus
  mean removal; ours is a 20–450 Hz band-pass. Not compared sample by sample.
* Amplitude: ``nk.emg_amplitude`` is **not** a linear envelope in mV. It takes the TKEO of the
  cleaned signal, band-passes that 10–400 Hz, rectifies and low-passes at 8 Hz (all 2nd-order,
  zero-phase), in mV²-like units, and its filters assume 1000 Hz whatever the real rate (so the
  test runs at 1000 Hz). Ours is the rectified band-pass low-passed at 6 Hz, in mV. Both follow
  the activation, so they must correlate strongly; amplitudes are not compared.
* Onsets: ``nk.emg_activation(method="threshold")`` thresholds that amplitude at 0.1 × its SD
  over the whole record (no baseline) and keeps activations ≥ 50 ms. Its 8 Hz zero-phase
  smoothing spreads each burst ~30 ms *backwards* in time, and the low global threshold
  catches that spread, so its onsets come 20–40 ms before the true ones. Ours threshold a
  50 Hz TKEO envelope at baseline mean + 3 SD of the stride's quietest window. We check that
  both find the same activations, that they agree within 60 ms, that NeuroKit2 is the earlier
  one, and that ours are closer to the truth.
"""

from __future__ import annotations

import warnings

import neurokit2 as nk
import numpy as np
import pytest

from hipstride.pipeline.engine.emg import (
    emg_clean,
    emg_envelope,
    emg_onsets,
    emg_quiet_window,
    emg_tkeo_envelope,
)

FS = 1000.0  # NeuroKit2's emg_amplitude hard-codes 1000 Hz filters
STRIDE_S = 0.7


def band_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / FS)
    spectrum[(freqs < 20.0) | (freqs > 450.0)] = 0.0
    out = np.fft.irfft(spectrum, n)
    return out / out.std()


@pytest.fixture(scope="module")
def bursts() -> tuple[np.ndarray, np.ndarray]:
    """12 strides, one burst each (25 ms sin² rise, 20 dB over the floor), known onsets (s)."""
    rng = np.random.default_rng(31)
    n_strides = 12
    n = int(n_strides * STRIDE_S * FS)
    t = np.arange(n) / FS
    activation = np.zeros(n)
    onsets = []
    for i in range(n_strides):
        on = i * STRIDE_S + rng.uniform(0.25, 0.4)
        duration = rng.uniform(0.15, 0.25)
        tau = t - on
        rise = np.sin(0.5 * np.pi * np.clip(tau / 0.025, 0, 1)) ** 2
        fall = np.sin(0.5 * np.pi * np.clip((duration - tau) / 0.06, 0, 1)) ** 2
        activation += 0.3 * rise * fall * ((tau >= 0) & (tau <= duration))
        onsets.append(on)
    return np.sqrt(activation**2 + 0.03**2) * band_noise(rng, n), np.array(onsets)


@pytest.fixture(scope="module")
def neurokit(bursts):
    x, _ = bursts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amplitude = nk.emg_amplitude(nk.emg_clean(x, sampling_rate=int(FS)))
        _, info = nk.emg_activation(emg_amplitude=amplitude, sampling_rate=int(FS),
                                    method="threshold")
    return np.asarray(amplitude), np.asarray(info["EMG_Onsets"], dtype=int)


def test_envelope_correlates_with_neurokit_amplitude(bursts, neurokit):
    x, _ = bursts
    nk_amplitude, _ = neurokit
    ours = emg_envelope(x, FS)
    assert np.corrcoef(ours, nk_amplitude)[0, 1] > 0.9


def test_onsets_agree_with_neurokit_and_are_closer_to_the_truth(bursts, neurokit):
    x, truth = bursts
    _, nk_onsets = neurokit
    tk = emg_tkeo_envelope(emg_clean(x, FS), FS)
    ours = []
    for i in range(len(truth)):
        a, b = int(i * STRIDE_S * FS), int((i + 1) * STRIDE_S * FS)
        onsets, _ = emg_onsets(tk, FS, baseline=emg_quiet_window(tk, FS, start=a, stop=b))
        onsets = onsets[(onsets >= a) & (onsets < b)]
        assert len(onsets) >= 1
        ours.append(onsets[0])
    ours = np.array(ours)
    assert len(nk_onsets) == len(truth)
    paired = np.array([nk_onsets[np.argmin(np.abs(nk_onsets - o))] for o in ours])
    diff_ms = (ours - paired) / FS * 1000
    assert np.all(np.abs(diff_ms) <= 60.0)
    assert np.median(diff_ms) > 0  # NeuroKit2's smoothed threshold fires earlier
    ours_err = np.median(np.abs(ours / FS - truth)) * 1000
    nk_err = np.median(np.abs(paired / FS - truth)) * 1000
    assert ours_err <= 20.0 and ours_err < nk_err
