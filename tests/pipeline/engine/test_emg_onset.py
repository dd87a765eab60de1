"""EMG onsets: TKEO, its envelope, quiet-window baselines and threshold onsets."""

from __future__ import annotations

import numpy as np
import pytest

from hipstride.pipeline.engine.emg import (
    emg_clean,
    emg_onsets,
    emg_quiet_window,
    emg_tkeo,
    emg_tkeo_envelope,
)


def band_noise(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Unit-RMS 20–450 Hz noise (FFT-masked: independent of the code under test)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum[(freqs < 20.0) | (freqs > 450.0)] = 0.0
    out = np.fft.irfft(spectrum, n)
    return out / out.std()


def stride_bursts(rng: np.random.Generator, fs: float, n_strides: int, stride_s: float = 0.7,
                  peak_mv: float = 0.3, floor_mv: float = 0.03
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One burst per stride with a 25 ms sin² rise at a random, known onset (s).

    Default SNR: burst peak 0.3 mV RMS over a 0.03 mV noise floor = 20 dB.
    """
    n = int(n_strides * stride_s * fs)
    t = np.arange(n) / fs
    activation = np.zeros(n)
    onsets_s = []
    for i in range(n_strides):
        on = i * stride_s + rng.uniform(0.25, 0.4)
        duration = rng.uniform(0.15, 0.25)
        tau = t - on
        rise = np.sin(0.5 * np.pi * np.clip(tau / 0.025, 0, 1)) ** 2
        fall = np.sin(0.5 * np.pi * np.clip((duration - tau) / 0.06, 0, 1)) ** 2
        activation += peak_mv * rise * fall * ((tau >= 0) & (tau <= duration))
        onsets_s.append(on)
    x = np.sqrt(activation**2 + floor_mv**2) * band_noise(rng, n, fs)
    return x, np.array(onsets_s)


def first_onsets_per_stride(x: np.ndarray, fs: float, n_strides: int, stride_s: float = 0.7
                            ) -> tuple[np.ndarray, int]:
    """Detected first onset (s) per stride (NaN if none) and the count of extra onsets."""
    tk = emg_tkeo_envelope(emg_clean(x, fs), fs)
    found, extra = [], 0
    for i in range(n_strides):
        a, b = int(i * stride_s * fs), int((i + 1) * stride_s * fs)
        onsets, _ = emg_onsets(tk, fs, baseline=emg_quiet_window(tk, fs, start=a, stop=b))
        onsets = onsets[(onsets >= a) & (onsets < b)]
        found.append(onsets[0] / fs if len(onsets) else np.nan)
        extra += max(len(onsets) - 1, 0)
    return np.array(found), extra


def test_tkeo_matches_its_definition_and_is_amplitude_and_frequency_weighted():
    x = np.array([1.0, 2.0, -1.0, 3.0, 0.5])
    psi = emg_tkeo(x)
    np.testing.assert_allclose(psi[1:-1], [4.0 - (-1.0 * 1.0), 1.0 - 3.0 * 2.0, 9.0 + 0.5])
    assert psi[0] == psi[1] and psi[-1] == psi[-2]
    # For A·sin(Ωn) the TKEO is exactly A²·sin²(Ω): louder or faster means more energy.
    n = np.arange(200)
    for amp, omega in [(1.0, 0.1), (2.0, 0.1), (1.0, 0.3)]:
        np.testing.assert_allclose(emg_tkeo(amp * np.sin(omega * n))[1:-1],
                                   amp**2 * np.sin(omega) ** 2, atol=1e-12)
    two = emg_tkeo(np.column_stack([x, 2 * x]))
    np.testing.assert_allclose(two[:, 1], 4 * psi)


@pytest.mark.parametrize("fs", [1000.0, 2000.0])
def test_onsets_of_noise_bursts_within_20_ms_median_at_20_db_snr(fs):
    rng = np.random.default_rng(11)
    n_strides = 40
    x, truth = stride_bursts(rng, fs, n_strides)
    found, extra = first_onsets_per_stride(x, fs, n_strides)
    error_ms = np.abs(found - truth) * 1000
    assert np.isfinite(found).mean() >= 0.95
    assert np.nanmedian(error_ms) <= 20.0
    assert np.mean(error_ms <= 50.0) >= 0.9  # false early onsets stay rare
    assert extra <= 0.1 * n_strides


def test_onsets_degrade_gracefully_at_low_snr_but_noise_alone_rarely_triggers():
    rng = np.random.default_rng(12)
    fs = 2000.0
    # 12 dB: detection gets later but still within the 20 ms median budget.
    x, truth = stride_bursts(rng, fs, 30, peak_mv=0.12, floor_mv=0.03)
    found, _ = first_onsets_per_stride(x, fs, 30)
    assert np.nanmedian(np.abs(found - truth)) * 1000 <= 20.0
    # Pure noise: onsets against a baseline taken from a separate quiet recording.
    noise = 0.03 * band_noise(rng, int(20 * fs), fs)
    tk = emg_tkeo_envelope(emg_clean(noise, fs), fs)
    onsets, _ = emg_onsets(tk, fs, baseline=tk[: int(5 * fs)])
    assert len(onsets) <= 3  # over 20 s


def test_onsets_offsets_and_minimum_duration_on_a_known_envelope():
    fs = 1000.0
    env = np.full(2000, 1.0)
    env[::2] += 0.1  # baseline mean 1.05, SD 0.05: threshold 1.2 at k = 3
    env[500:600] = 2.0   # 100 ms: an activation
    env[900:920] = 2.0   # 20 ms: too short for 25 ms
    env[1500:] = 2.0     # still active at the end
    onsets, offsets = emg_onsets(env, fs, baseline=(0, 400))
    np.testing.assert_array_equal(onsets, [500, 1500])
    np.testing.assert_array_equal(offsets, [600, 2000])
    onsets, _ = emg_onsets(env, fs, baseline=slice(0, 400), min_duration_ms=15)
    np.testing.assert_array_equal(onsets, [500, 900, 1500])
    # Baseline given as values; a higher k raises the threshold above every burst.
    onsets, _ = emg_onsets(env, fs, baseline=env[:400], k_sd=30)
    assert len(onsets) == 0


def test_quiet_window_finds_the_quietest_stretch_inside_the_range():
    fs = 1000.0
    rng = np.random.default_rng(5)
    env = 1.0 + rng.random(3000)
    env[2200:2500] = 0.1   # quietest, but outside the searched range below
    env[700:950] = 0.5
    assert emg_quiet_window(env, fs, window_ms=200)[0] in range(2200, 2301)
    first, stop = emg_quiet_window(env, fs, window_ms=200, start=0, stop=2000)
    assert first >= 700 and stop <= 950 and stop - first == 200
    with pytest.raises(ValueError):
        emg_quiet_window(env, fs, window_ms=200, start=0, stop=100)


def test_tkeo_envelope_is_zero_phase_so_it_does_not_delay_onsets():
    fs = 2000.0
    rng = np.random.default_rng(6)
    n = int(4 * fs)
    t = np.arange(n) / fs
    centre_s = 2.0
    x = np.exp(-0.5 * ((t - centre_s) / 0.03) ** 2) * band_noise(rng, n, fs)
    env = emg_tkeo_envelope(x, fs)
    centroid_env = np.sum(t * env) / np.sum(env)
    centroid_tkeo = np.sum(t * np.abs(emg_tkeo(x))) / np.sum(np.abs(emg_tkeo(x)))
    assert abs(centroid_env - centroid_tkeo) * 1000 < 0.5
