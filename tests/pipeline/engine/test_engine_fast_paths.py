"""The engine's fast paths compute exactly what the library functions they replace compute.

The streaming engine runs many small filter, spectrum and fusion calls per second per
station, where scipy's and numpy's per-call set-up costs more than the work; the engine
therefore calls scipy's C filter loop directly, caches the steady-state filter responses,
writes Welch's spectrum out and folds short quaternion products in plain floats. These tests
pin each of them to the public function it stands for, bit for bit where the arithmetic is
the same, so a scipy upgrade that changed the private loop would fail here.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfilt, sosfilt_zi, sosfiltfilt, welch

from hipstride.pipeline.engine import emg_filters, gait, imu_fusion
from hipstride.pipeline.engine.emg import _welch_psd, emg_filter_design
from hipstride.pipeline.engine.emg_filters import EmgEnvelopeFilter, zero_phase
from hipstride.pipeline.engine.emg_onset import _lowpass_sos

FS = 2000.0


def emg_like(n: int, channels: int, seed: int) -> np.ndarray:
    """Broadband noise with an offset and slow bursts: what the filters see."""
    rng = np.random.default_rng(seed)
    burst = 1.0 + np.sin(2 * np.pi * 1.4 * np.arange(n) / FS)[:, None] ** 8 * 5.0
    return 0.05 * rng.normal(size=(n, channels)) * burst + rng.normal(size=channels) * 0.2


@pytest.fixture(params=["c_loop", "public"])
def filter_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with scipy's C loop and with the public-function fallback."""
    if request.param == "public":
        monkeypatch.setattr(emg_filters, "_sosfilt_c", None)
    elif emg_filters._sosfilt_c is None:
        pytest.fail("scipy.signal._sosfilt._sosfilt is gone: the public fallback runs; "
                    "check its cost with benchmarks/bench_stream.py")
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_phase_is_scipy_sosfiltfilt_exactly(filter_loop: str, dtype: type) -> None:
    sections = [emg_filter_design(FS).band_sos, emg_filter_design(FS).envelope_sos,
                emg_filter_design(FS, notch_hz=50.0).band_sos, _lowpass_sos(2, 50.0, FS)]
    for k, sos in enumerate(sections):
        for n in (34, 1001, 5000):
            x = emg_like(n, 3, seed=k * 10 + n).astype(dtype)
            s = sos.astype(dtype)
            want = sosfiltfilt(s, np.ascontiguousarray(x.T), axis=-1).T
            got = zero_phase(sos, x)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(zero_phase(sos, x[:, 1]),
                                          sosfiltfilt(s, x[:, 1], axis=0))
    with pytest.raises(ValueError, match="padlen"):
        zero_phase(sections[0], np.zeros((20, 2)))


@pytest.mark.parametrize("notch", [None, 50.0])
def test_live_envelope_is_scipy_sosfilt_exactly(filter_loop: str, notch: float | None) -> None:
    design = emg_filter_design(FS, notch_hz=notch)
    x = emg_like(12000, 6, seed=3)
    zi = sosfilt_zi(design.band_sos)[:, :, None] * x[0][None, None, :]
    band, _ = sosfilt(design.band_sos, x, axis=0, zi=zi)
    want = sosfilt(design.envelope_sos, np.abs(band), axis=0)
    live = EmgEnvelopeFilter(design, 6)
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.integers(0, len(x), size=40))
    got = np.concatenate([live.process(b) for b in np.split(x, cuts)])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [8, 999, 2000, 2001, 4999, 5000, 30001])
def test_quality_spectrum_is_scipy_welch(n: int) -> None:
    x = emg_like(n, 4, seed=n)
    x[:, 3] += 0.3 * np.sin(2 * np.pi * 50.0 * np.arange(n) / FS)
    x -= x.mean(axis=0)
    nperseg = min(n, round(FS))
    f_want, p_want = welch(x, fs=FS, nperseg=nperseg, axis=0)
    f_got, p_got = _welch_psd(np.ascontiguousarray(x.T), FS, nperseg)
    np.testing.assert_array_equal(f_got, f_want)
    np.testing.assert_allclose(p_got, p_want, rtol=1e-12, atol=1e-15 * p_want.max())


def test_live_fusion_fold_is_the_vectorised_prefix_product(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    rng = np.random.default_rng(5)
    for offset in (0, 7, 49):
        for n in (1, 40, 43, 120, 400):
            steps = imu_fusion.quat_from_rotvec(rng.normal(size=(n, 3)) * 0.02)
            part = imu_fusion._normalize(rng.normal(size=4)) if offset \
                else np.array([1.0, 0.0, 0.0, 0.0])
            fold = imu_fusion._block_prefix_product(steps, offset, 50, part)
            monkeypatch.setattr(imu_fusion, "_FOLD_MAX_BLOCKS", 0)
            vectorised = imu_fusion._block_prefix_product(steps, offset, 50, part)
            monkeypatch.undo()
            np.testing.assert_array_equal(fold, vectorised)


def test_plausibility_median_is_numpy_median() -> None:
    rng = np.random.default_rng(6)
    for _ in range(500):
        values = rng.normal(0.7, 0.1, size=int(rng.integers(1, 12))).tolist()
        assert gait._median(values) == float(np.median(values))
