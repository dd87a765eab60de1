"""EMG filter chain: design guards, causal == streaming, envelope tracking, lag, notch."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipstride.pipeline.engine.emg import (
    EmgEnvelopeFilter,
    emg_clean,
    emg_envelope,
    emg_envelope_lag_ms,
    emg_filter_design,
)

FS = 2000.0


def band_noise(rng: np.random.Generator, n: int, fs: float, n_channels: int = 1,
               band_hz: tuple[float, float] = (20.0, 450.0)) -> np.ndarray:
    """Unit-RMS noise with an ideal (FFT-masked) pass band; independent of the code under test."""
    spectrum = np.fft.rfft(rng.standard_normal((n, n_channels)), axis=0)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum[(freqs < band_hz[0]) | (freqs > band_hz[1])] = 0.0
    out = np.fft.irfft(spectrum, n, axis=0)
    return out / out.std(axis=0)


def phase_at(signal: np.ndarray, fs: float, f_hz: float) -> float:
    """Phase (rad) of the ``f_hz`` component of a signal (least squares on sin/cos)."""
    t = np.arange(len(signal)) / fs
    c = np.dot(signal - signal.mean(), np.cos(2 * np.pi * f_hz * t))
    s = np.dot(signal - signal.mean(), np.sin(2 * np.pi * f_hz * t))
    return float(np.arctan2(c, s))


def centroid_s(weights: np.ndarray, fs: float) -> float:
    t = np.arange(len(weights)) / fs
    return float(np.sum(t * weights) / np.sum(weights))


def test_design_is_sos_and_records_its_parameters():
    design = emg_filter_design(FS)
    assert design.band_sos.shape == (4, 6)        # prototype order 4 band-pass = 4 sections
    assert design.envelope_sos.shape == (1, 6)    # 2nd-order low-pass = 1 section
    assert design.band_hz == (20.0, 450.0) and design.notch_hz is None
    notched = emg_filter_design(FS, notch_hz=50.0)
    assert notched.band_sos.shape == (5, 6)
    np.testing.assert_array_equal(notched.band_sos[:4], design.band_sos)


def test_nyquist_guard_raises_or_clips_by_the_documented_rule():
    emg_filter_design(1000.0)  # 450 Hz < 500 Hz Nyquist: fine
    with pytest.raises(ValueError, match="Nyquist"):
        emg_filter_design(500.0)
    clipped = emg_filter_design(500.0, clip_to_nyquist=True)
    assert clipped.band_hz == (20.0, 225.0)
    assert emg_filter_design(2000.0, clip_to_nyquist=True).band_hz == (20.0, 450.0)
    with pytest.raises(ValueError):
        emg_filter_design(FS, band_hz=(300.0, 200.0))
    with pytest.raises(ValueError):
        emg_filter_design(FS, notch_hz=1500.0)


def test_design_must_match_the_signal_rate():
    with pytest.raises(ValueError, match="1000"):
        emg_envelope(np.zeros(4000), FS, design=emg_filter_design(1000.0))


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=900), max_size=12),
       seed=st.integers(min_value=0, max_value=2**32 - 1),
       notch=st.sampled_from([None, 50.0]))
def test_causal_filter_gives_the_same_output_in_any_block_sizes(cuts, seed, notch):
    rng = np.random.default_rng(seed)
    x = 0.2 * rng.standard_normal((900, 3)) + rng.normal(0, 1, 3)  # with a DC offset
    design = emg_filter_design(FS, notch_hz=notch)
    whole = EmgEnvelopeFilter(design, 3).process(x)
    live = EmgEnvelopeFilter(design, 3)
    bounds = [0, *sorted(cuts), len(x)]
    pieces = [live.process(x[a:b]) for a, b in pairwise(bounds)]
    np.testing.assert_array_equal(np.vstack(pieces), whole)  # bit for bit


def test_causal_filter_reset_and_shape_checks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 2))
    live = EmgEnvelopeFilter(emg_filter_design(FS), 2)
    first = live.process(x)
    assert not np.allclose(live.process(x), first)  # state carried: a second pass differs
    live.reset()
    np.testing.assert_array_equal(live.process(x), first)
    with pytest.raises(ValueError):
        live.process(x[:, :1])


def test_zero_phase_envelope_tracks_a_known_amplitude_modulation():
    rng = np.random.default_rng(1)
    n = int(20 * FS)
    t = np.arange(n) / FS
    modulation = 0.2 + 0.15 * np.sin(2 * np.pi * 1.5 * t)  # mV RMS of the carrier
    x = modulation * band_noise(rng, n, FS)[:, 0]
    env = emg_envelope(x, FS)
    core = slice(int(FS), n - int(FS))
    # Full-wave rectified Gaussian noise has mean sqrt(2/pi) x its RMS.
    slope, intercept = np.polyfit(modulation[core], env[core], 1)
    assert slope == pytest.approx(np.sqrt(2 / np.pi), rel=0.08)
    assert abs(intercept) < 0.01
    assert np.corrcoef(modulation[core], env[core])[0, 1] > 0.98
    from_clean = emg_envelope(emg_clean(x, FS), FS, band_passed=True)
    np.testing.assert_allclose(from_clean, env, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mod_hz", [1.0, 2.5])
def test_causal_lag_matches_the_design_and_zero_phase_has_none(mod_hz):
    rng = np.random.default_rng(2)
    n = int(30 * FS)
    t = np.arange(n) / FS
    modulation = 0.2 + 0.15 * np.sin(2 * np.pi * mod_hz * t)
    x = modulation[:, None] * band_noise(rng, n, FS, n_channels=2)
    design = emg_filter_design(FS)
    causal = EmgEnvelopeFilter(design, 2).process(x)
    review = emg_envelope(x, FS, design=design)
    core = slice(int(2 * FS), n)
    ref_phase = phase_at(modulation[core], FS, mod_hz)
    for ch in range(2):
        causal_lag = (ref_phase - phase_at(causal[core, ch], FS, mod_hz)) / (2 * np.pi * mod_hz)
        review_lag = (ref_phase - phase_at(review[core, ch], FS, mod_hz)) / (2 * np.pi * mod_hz)
        assert abs(review_lag * 1000) < 1.5
        assert causal_lag * 1000 == pytest.approx(emg_envelope_lag_ms(design, mod_hz), abs=3.0)


def test_burst_lag_is_the_low_frequency_group_delay_of_about_40_ms():
    rng = np.random.default_rng(3)
    n = int(12 * FS)
    t = np.arange(n) / FS
    centres_s = (2.0, 5.0, 8.0, 11.0)
    activation = sum(np.exp(-0.5 * ((t - c) / 0.05) ** 2) for c in centres_s)
    x = 0.3 * activation * band_noise(rng, n, FS)[:, 0]
    for cutoff in (6.0, 10.0):
        design = emg_filter_design(FS, envelope_cutoff_hz=cutoff)
        causal = EmgEnvelopeFilter(design, 1).process(x[:, None])[:, 0]
        review = emg_envelope(x, FS, design=design)
        shifts_ms = []
        for c in centres_s:
            w = slice(int((c - 1.0) * FS), int((c + 1.0) * FS))
            shifts_ms.append((centroid_s(causal[w], FS) - centroid_s(review[w], FS)) * 1000)
        assert np.mean(shifts_ms) == pytest.approx(emg_envelope_lag_ms(design), abs=3.0)
    assert 35.0 < emg_envelope_lag_ms(emg_filter_design(FS)) < 45.0
    assert emg_envelope_lag_ms(emg_filter_design(FS, envelope_cutoff_hz=10.0)) < 30.0


def test_notch_removes_mains_hum_and_keeps_the_emg():
    rng = np.random.default_rng(4)
    n = int(10 * FS)
    t = np.arange(n) / FS
    muscle = 0.1 * band_noise(rng, n, FS)[:, 0]
    hum = 1.0 * np.sin(2 * np.pi * 50.0 * t + 0.3)
    plain = emg_clean(muscle + hum, FS)
    notched = emg_clean(muscle + hum, FS, design=emg_filter_design(FS, notch_hz=50.0))

    def hum_amplitude(y: np.ndarray) -> float:
        return 2 * abs(np.dot(y, np.exp(-2j * np.pi * 50.0 * t))) / n

    assert hum_amplitude(plain) > 0.5  # the band-pass alone keeps 50 Hz
    assert hum_amplitude(notched) < 0.01 * hum_amplitude(plain)  # > 40 dB down
    reference = emg_clean(muscle, FS)
    core = slice(int(FS), n - int(FS))  # the notch rings ~0.2 s where the hum starts and stops
    assert np.corrcoef(notched[core], reference[core])[0, 1] > 0.99
