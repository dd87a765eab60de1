"""EMG filter chain: one design, run causally (live) or zero-phase (review).

The chain is band-pass (optionally with a mains notch) → full-wave rectification → low-pass
"linear envelope". :func:`emg_filter_design` builds it once as second-order sections; the live
:class:`EmgEnvelopeFilter` runs it causally with its state carried from block to block, and
:func:`emg_envelope` / :func:`emg_clean` run the very same sections forward and backward.

Conventions: time is axis 0, channels axis 1 (a 1-D array is one channel), EMG in mV, the
sampling rate in Hz is always passed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import (
    butter,
    group_delay,
    iirnotch,
    sosfilt,
    sosfilt_zi,
    sosfiltfilt,
    sosfreqz,
    tf2sos,
)

__all__ = [
    "EmgEnvelopeFilter",
    "EmgFilterDesign",
    "emg_clean",
    "emg_envelope",
    "emg_envelope_lag_ms",
    "emg_filter_design",
]

#: Upper band edge used by ``clip_to_nyquist=True``: this fraction of the sampling rate
#: (0.9 × Nyquist), the same rule the simulator uses for its band-limited noise.
NYQUIST_CLIP_FRACTION = 0.45


@dataclass(frozen=True)
class EmgFilterDesign:
    """Second-order sections of the EMG chain, for one sampling rate.

    Attributes
    ----------
    sampling_rate_hz : float
        Rate the sections were designed for (Hz).
    band_sos : ndarray, shape (n_sections, 6)
        Band-pass Butterworth, followed by the notch sections when a notch is on.
    envelope_sos : ndarray, shape (n_sections, 6)
        Low-pass Butterworth applied to the rectified band-passed signal.
    band_hz : tuple of float
        Effective pass band (Hz), after any Nyquist clipping.
    envelope_cutoff_hz : float
        Envelope low-pass cut-off (Hz, −3 dB for a single causal pass).
    notch_hz : float or None
        Notch centre (Hz), or None when the notch is off.
    """

    sampling_rate_hz: float
    band_sos: NDArray[np.float64] = field(repr=False)
    envelope_sos: NDArray[np.float64] = field(repr=False)
    band_hz: tuple[float, float]
    envelope_cutoff_hz: float
    notch_hz: float | None


@lru_cache(maxsize=64)
def emg_filter_design(sampling_rate_hz: float, band_hz: tuple[float, float] = (20.0, 450.0),
                      order: int = 4, envelope_cutoff_hz: float = 6.0, envelope_order: int = 2,
                      notch_hz: float | None = None, *, notch_q: float = 30.0,
                      clip_to_nyquist: bool = False) -> EmgFilterDesign:
    """Design the EMG band-pass, optional notch and envelope low-pass as SOS.

    Designs are cached per argument set (the streaming engine asks for the same one for every
    stride), so the returned arrays are shared: never modify them.

    Parameters
    ----------
    sampling_rate_hz : float
        Sampling rate of the raw EMG (Hz).
    band_hz : tuple of float
        Band-pass edges (Hz), default 20–450 Hz.
    order : int
        Butterworth prototype order of the band-pass as in ``scipy.signal.butter``; a band-pass
        of prototype order 4 has 8 poles (4 sections), −3 dB at both edges.
    envelope_cutoff_hz : float
        Cut-off of the envelope low-pass (Hz), default 6 Hz.
    envelope_order : int
        Butterworth order of the envelope low-pass, default 2.
    notch_hz : float or None
        Mains frequency to notch out (50 or 60 Hz), None (default) for no notch.
    notch_q : float
        Quality factor of the notch (centre / −3 dB width); 30 gives a ~1.7 Hz wide notch at
        50 Hz. It rings for ~Q / (π·notch_hz) ≈ 0.2 s, so discard the first and last ~0.5 s of
        a notched recording when hum is strong.
    clip_to_nyquist : bool
        If False (default), an upper band edge at or above Nyquist raises ``ValueError``. If True,
        the upper edge is lowered to ``0.45 × sampling_rate_hz`` (0.9 × Nyquist) whenever it
        exceeds that; the effective band is recorded in ``band_hz`` of the result.

    Returns
    -------
    EmgFilterDesign
        The sections and the effective parameters.

    Raises
    ------
    ValueError
        If an edge or cut-off is not inside (0, Nyquist), e.g. the default 450 Hz upper edge
        on a 500 Hz stream (Nyquist 250 Hz) without ``clip_to_nyquist``.
    """
    fs = float(sampling_rate_hz)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"sampling_rate_hz must be positive, got {sampling_rate_hz!r}")
    nyquist = fs / 2.0
    low, high = (float(band_hz[0]), float(band_hz[1]))
    if clip_to_nyquist:
        high = min(high, NYQUIST_CLIP_FRACTION * fs)
    if high >= nyquist:
        raise ValueError(
            f"EMG band upper edge {high:g} Hz is not below Nyquist ({nyquist:g} Hz) at "
            f"{fs:g} Hz sampling; raw surface EMG needs >= 1000 Hz. Pass a lower band_hz, or "
            "clip_to_nyquist=True to use 0.45 x sampling rate (a pre-rectified envelope-module "
            "output is not raw EMG and should not go through this chain)")
    if not 0.0 < low < high:
        raise ValueError(f"band_hz must satisfy 0 < low < high, got ({low:g}, {high:g})")
    if not 0.0 < envelope_cutoff_hz < nyquist:
        raise ValueError(f"envelope_cutoff_hz must be in (0, {nyquist:g}) Hz, "
                         f"got {envelope_cutoff_hz!r}")
    if order < 1 or envelope_order < 1:
        raise ValueError("filter orders must be >= 1")
    band_sos = butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    if notch_hz is not None:
        if not 0.0 < notch_hz < nyquist:
            raise ValueError(f"notch_hz must be in (0, {nyquist:g}) Hz, got {notch_hz!r}")
        b, a = iirnotch(notch_hz, notch_q, fs=fs)
        band_sos = np.vstack([band_sos, tf2sos(b, a)])
    envelope_sos = butter(envelope_order, envelope_cutoff_hz, btype="lowpass", fs=fs,
                          output="sos")
    return EmgFilterDesign(sampling_rate_hz=fs, band_sos=band_sos, envelope_sos=envelope_sos,
                           band_hz=(low, high), envelope_cutoff_hz=float(envelope_cutoff_hz),
                           notch_hz=None if notch_hz is None else float(notch_hz))


def _sos_group_delay_s(sos: NDArray[np.float64], freqs_hz: NDArray[np.float64], fs: float
                       ) -> NDArray[np.float64]:
    """Group delay (s) of a cascade of sections = sum of the sections' group delays."""
    total = np.zeros(len(freqs_hz))
    for section in sos:
        _, gd = group_delay((section[:3], section[3:]), w=freqs_hz, fs=fs)
        total += gd
    return total / fs


def _sos_phase_delay_s(sos: NDArray[np.float64], f_hz: float, fs: float) -> float:
    """Phase delay (s) at ``f_hz`` > 0: the shift of a sinusoid of that frequency."""
    freqs = np.linspace(0.0, f_hz, 256)
    _, h = sosfreqz(sos, worN=freqs, fs=fs)
    phase = np.unwrap(np.angle(h))
    return float(-phase[-1] / (2.0 * np.pi * f_hz))


def emg_envelope_lag_ms(design: EmgFilterDesign, modulation_hz: float = 0.0, *,
                        include_band: bool = True) -> float:
    """Lag (ms) of the causal envelope behind the true activation, from the filter design.

    At ``modulation_hz = 0`` (default) this is the envelope low-pass's group delay at DC, which
    is exactly how far it shifts the centroid of any burst: √2 / (2π·fc) = 37.5 ms for a
    2nd-order 6 Hz Butterworth. At ``modulation_hz > 0`` it is the phase delay there, i.e. how
    far a sinusoidal activation of that frequency is shifted (38.3 ms at 1.5 Hz, 39.4 ms at
    2.5 Hz for the default low-pass). The band-pass delays the EMG carrier by its group delay,
    evaluated at the geometric centre of the pass band and added when ``include_band`` is True
    (~1.8 ms for 20–450 Hz).

    Parameters
    ----------
    design : EmgFilterDesign
        The chain whose lag is wanted.
    modulation_hz : float
        Frequency of the activation component of interest (Hz); 0 for bursts.
    include_band : bool
        Add the band-pass (and notch) group delay at the band's geometric centre.

    Returns
    -------
    float
        Lag in milliseconds (zero-phase review envelopes have none).
    """
    fs = design.sampling_rate_hz
    if modulation_hz < 0:
        raise ValueError("modulation_hz must be >= 0")
    if modulation_hz == 0:
        # group_delay is evaluated on the unit circle; a tiny positive frequency avoids 0/0.
        f_dc = np.array([1e-4 * design.envelope_cutoff_hz])
        lag = _sos_group_delay_s(design.envelope_sos, f_dc, fs)[0]
    else:
        lag = _sos_phase_delay_s(design.envelope_sos, float(modulation_hz), fs)
    if include_band:
        centre = float(np.sqrt(design.band_hz[0] * design.band_hz[1]))
        lag += _sos_group_delay_s(design.band_sos, np.array([centre]), fs)[0]
    return float(lag * 1000.0)


def _checked_design(sampling_rate_hz: float, design: EmgFilterDesign | None) -> EmgFilterDesign:
    if design is None:
        return emg_filter_design(sampling_rate_hz)
    if not np.isclose(design.sampling_rate_hz, sampling_rate_hz):
        raise ValueError(f"design is for {design.sampling_rate_hz:g} Hz, "
                         f"signal is sampled at {sampling_rate_hz:g} Hz")
    return design


def _real(x: ArrayLike) -> NDArray[np.floating]:
    """float32 stays float32 (half the memory traffic on hour-long reviews; the SOS form keeps
    these filters accurate in single precision); anything else becomes float64."""
    arr = np.asarray(x)
    return arr if arr.dtype == np.float32 else arr.astype(np.float64, copy=False)


try:  # the C loop behind scipy.signal.sosfilt (private), without its per-call checks, axis
    # moves and copies: these cost more than filtering a live 50 ms frame
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_c
except ImportError:  # pragma: no cover - another scipy layout: the public function
    _sosfilt_c = None


def _sosfilt_rows(sos: NDArray[np.floating], x: NDArray[np.floating],
                  zi: NDArray[np.floating]) -> None:
    """``sosfilt`` along the rows of ``x`` (n_signals, n_samples), in place, with the state
    ``zi`` (n_signals, n_sections, 2) updated in place: the same arithmetic as
    ``scipy.signal.sosfilt(sos, x, axis=-1, zi=...)``. All three C-contiguous, one dtype."""
    if _sosfilt_c is not None:
        _sosfilt_c(sos, x, zi)
        return
    y, zf = sosfilt(sos, x, axis=-1, zi=np.moveaxis(zi, 0, 1))
    x[...] = y
    zi[...] = np.moveaxis(zf, 1, 0)


@lru_cache(maxsize=64)
def _unit_zi(sos_bytes: bytes, n_sections: int, dtype: str) -> NDArray[np.floating]:
    zi = sosfilt_zi(np.frombuffer(sos_bytes, dtype=dtype).reshape(n_sections, 6))
    zi.setflags(write=False)
    return zi


def _sosfiltfilt(sos: NDArray[np.floating], x: NDArray[np.floating]) -> NDArray[np.floating]:
    """``sosfiltfilt(sos, x, axis=-1)`` of (n_signals, n_samples) or (n_samples,) data with its
    defaults (odd padding of 3 × taps, steady-state initial conditions), the same operations
    in the same order, but with the steady-state response ``sosfilt_zi`` — a linear solve per
    section, as dear as filtering a few-second window — computed once per design, and the
    filtering done in place (see :func:`_sosfilt_rows`)."""
    if sos.ndim != 2 or sos.shape[1] != 6 or x.ndim not in (1, 2) or x.dtype != sos.dtype \
            or x.dtype not in (np.float32, np.float64):
        return sosfiltfilt(sos, x, axis=-1)  # scipy's checks, messages and type promotion
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 3 * ntaps
    if x.shape[-1] <= edge:
        return sosfiltfilt(sos, x, axis=-1)  # scipy's message: too short for the padding
    unit = _unit_zi(sos.tobytes(), n_sections, sos.dtype.str)[None]
    rows = x if x.ndim == 2 else x[None]
    # odd extension (scipy's odd_ext): a fresh C-contiguous array, filtered in place
    y = np.concatenate((2 * rows[:, :1] - rows[:, edge:0:-1], rows,
                        2 * rows[:, -1:] - rows[:, -2:-(edge + 2):-1]), axis=-1)
    _sosfilt_rows(sos, y, unit * y[:, :1, None])
    y = np.ascontiguousarray(y[:, ::-1])
    _sosfilt_rows(sos, y, unit * y[:, :1, None])
    out = y[:, ::-1][:, edge:-edge]
    return out if x.ndim == 2 else out[0]


def zero_phase(sos: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sosfiltfilt`` along time (axis 0) of (n_samples[, n_channels]) data.

    scipy copies its input contiguous along the filtered axis; for time-first data that is a
    slow strided gather per pass. Working on channel-major memory makes each copy a memcpy
    (about twice as fast overall); the result is a time-first view of it.
    """
    sos = sos.astype(x.dtype, copy=False)  # else scipy upcasts float32 data to float64
    if x.ndim == 2:
        return _sosfiltfilt(sos, np.ascontiguousarray(x.T)).T
    return _sosfiltfilt(sos, x)


def emg_clean(x: ArrayLike, sampling_rate_hz: float, *, design: EmgFilterDesign | None = None
              ) -> NDArray[np.float64]:
    """Band-pass (and notch, if designed) EMG zero-phase, for onset detection and review.

    Parameters
    ----------
    x : array_like, shape (n_samples,) or (n_samples, n_channels)
        Raw EMG (mV).
    sampling_rate_hz : float
        Sampling rate (Hz).
    design : EmgFilterDesign, optional
        Chain to use; default ``emg_filter_design(sampling_rate_hz)``.

    Returns
    -------
    ndarray
        Band-passed EMG (mV), same shape as ``x``, no phase shift.
    """
    design = _checked_design(sampling_rate_hz, design)
    return zero_phase(design.band_sos, _real(x))


def emg_envelope(x: ArrayLike, sampling_rate_hz: float, *,
                 design: EmgFilterDesign | None = None, band_passed: bool = False
                 ) -> NDArray[np.float64]:
    """Linear envelope of raw EMG, zero-phase (review): band-pass → rectify → low-pass.

    The same sections as the live filter run forward and backward, so the envelope has no lag.
    A forward–backward pass squares the magnitude response: the envelope low-pass is −6 dB
    (not −3 dB) at its cut-off and falls off twice as steeply, so brief bursts read slightly
    lower than live; slow gait-phase modulation (< 3 Hz at 6 Hz cut-off) is unaffected.

    Parameters
    ----------
    x : array_like, shape (n_samples,) or (n_samples, n_channels)
        Raw EMG (mV).
    sampling_rate_hz : float
        Sampling rate (Hz).
    design : EmgFilterDesign, optional
        Chain to use; default ``emg_filter_design(sampling_rate_hz)``.
    band_passed : bool
        True if ``x`` is already :func:`emg_clean` output of the same design: the band-pass is
        skipped (saves half the work when onsets are wanted too).

    Returns
    -------
    ndarray
        Envelope (mV), same shape as ``x``.
    """
    design = _checked_design(sampling_rate_hz, design)
    x = _real(x)
    band = np.abs(x) if band_passed else np.abs(zero_phase(design.band_sos, x))
    return zero_phase(design.envelope_sos, band)


class EmgEnvelopeFilter:
    """Causal EMG envelope for live frames, with filter state kept across calls.

    Feeding a recording block by block, in any block sizes, gives exactly the output of one call
    on the whole recording. The band-pass starts in the steady state of the first sample (so an
    electrode DC offset does not ring), the envelope low-pass starts at rest (0 mV).

    Parameters
    ----------
    design : EmgFilterDesign
        The chain (also used zero-phase by :func:`emg_envelope` for review).
    n_channels : int
        Number of EMG channels per frame (columns).

    Examples
    --------
    >>> design = emg_filter_design(2000.0)
    >>> live = EmgEnvelopeFilter(design, n_channels=6)
    >>> envelope_mv = live.process(frame_mv)  # frame_mv: (100, 6) block of a 50 ms frame
    """

    def __init__(self, design: EmgFilterDesign, n_channels: int) -> None:
        if n_channels < 1:
            raise ValueError("n_channels must be >= 1")
        self.design = design
        self.n_channels = int(n_channels)
        # filter state channel-major, (n_channels, n_sections, 2), as the C loop keeps it
        self._band_zi_unit = sosfilt_zi(design.band_sos)[None]
        self.reset()

    @property
    def lag_ms(self) -> float:
        """Low-frequency lag of this filter's envelope (ms), see :func:`emg_envelope_lag_ms`."""
        return emg_envelope_lag_ms(self.design)

    def reset(self) -> None:
        """Forget the state; the next block starts a new recording."""
        self._band_zi: NDArray[np.float64] | None = None
        self._env_zi = np.zeros((self.n_channels, self.design.envelope_sos.shape[0], 2))

    def process(self, block: ArrayLike) -> NDArray[np.float64]:
        """Filter one block.

        Parameters
        ----------
        block : array_like, shape (n_samples, n_channels)
            Raw EMG (mV); ``n_samples`` may be anything, including 0.

        Returns
        -------
        ndarray, shape (n_samples, n_channels)
            Envelope (mV), lagging the activation by ``lag_ms``.
        """
        x = np.asarray(block, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected a (n_samples, {self.n_channels}) block, got {x.shape}")
        if x.shape[0] == 0:
            return np.empty_like(x)
        rows = np.array(x.T, order="C")  # channel-major copy, filtered in place
        if self._band_zi is None:
            self._band_zi = self._band_zi_unit * rows[:, :1, None]
        _sosfilt_rows(self.design.band_sos, rows, self._band_zi)
        np.abs(rows, out=rows)
        _sosfilt_rows(self.design.envelope_sos, rows, self._env_zi)
        return rows.T
