"""Surface EMG for HipStride: filters, envelopes, normalisation, onsets, integrals, checks.

The one place to import EMG processing from. Filtering lives in :mod:`.emg_filters`, onset
detection in :mod:`.emg_onset`; normalisation, per-stride integrals and signal checks are here.

Typical review chain for one recording ``x_mv`` of shape (n_samples, n_channels)::

    env = emg_envelope(x_mv, fs)                          # zero-phase, mV
    ref = emg_mvc_reference(mvc_env, fs)                  # or emg_dynamic_reference(...)
    norm = emg_normalize(env, ref)                        # norm.values, norm.normalization
    area = emg_integrate(norm.values, i0, i1, fs)         # normalised·s, per channel
    tk = emg_tkeo_envelope(emg_clean(x_mv, fs)[:, 0], fs)
    onsets, offsets = emg_onsets(tk, fs, baseline=emg_quiet_window(tk, fs, start=a, stop=b))

Pure functions on numpy arrays: no file, network, database or UI imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from scipy.fft import rfft, rfftfreq
from scipy.signal import get_window, welch

from .emg_filters import (
    EmgEnvelopeFilter,
    EmgFilterDesign,
    emg_clean,
    emg_envelope,
    emg_envelope_lag_ms,
    emg_filter_design,
)
from .emg_onset import emg_onsets, emg_quiet_window, emg_tkeo, emg_tkeo_envelope

__all__ = [
    "EmgEnvelopeFilter",
    "EmgFilterDesign",
    "EmgNormalization",
    "EmgNormalized",
    "EmgQuality",
    "EmgReference",
    "emg_clean",
    "emg_dynamic_reference",
    "emg_envelope",
    "emg_envelope_lag_ms",
    "emg_filter_design",
    "emg_integrate",
    "emg_mvc_reference",
    "emg_normalize",
    "emg_onsets",
    "emg_quality",
    "emg_quiet_window",
    "emg_tkeo",
    "emg_tkeo_envelope",
]


class EmgNormalization(StrEnum):
    """What a normalised EMG value is a fraction of; travels with every normalised number."""

    MVC = "mvc"            #: maximal voluntary isometric contraction (1.0 = MVC)
    RELATIVE = "relative"  #: mean per-stride peak of early steady strides (dynamic; "relative")


@dataclass(frozen=True)
class EmgReference:
    """Per-channel normalisation reference.

    Attributes
    ----------
    values_mv : ndarray, shape (n_channels,)
        Reference envelope amplitude of each channel (mV).
    normalization : EmgNormalization
        MVC or RELATIVE.
    n_strides : int or None
        Strides averaged for a dynamic reference, None for MVC.
    """

    values_mv: NDArray[np.float64] = field(repr=False)
    normalization: EmgNormalization
    n_strides: int | None = None


@dataclass(frozen=True)
class EmgNormalized:
    """Normalised envelope and the label saying what it is relative to."""

    values: NDArray[np.float64] = field(repr=False)
    normalization: EmgNormalization


def _time_first_2d(x: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected (n_samples,) or (n_samples, n_channels), got {arr.shape}")
    return arr


def _moving_mean_max(env: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    csum = np.vstack([np.zeros((1, env.shape[1])), np.cumsum(env, axis=0)])
    return ((csum[n:] - csum[:-n]) / n).max(axis=0)


def emg_mvc_reference(envelope: ArrayLike | Sequence[ArrayLike], sampling_rate_hz: float,
                      window_ms: float = 500.0) -> EmgReference:
    """MVC reference: each channel's highest ``window_ms`` moving mean of its envelope.

    Parameters
    ----------
    envelope : array_like or sequence of array_like, each (n_samples, n_channels) or (n_samples,)
        Envelope (mV) of the MVC trial(s). An ndarray is one recording; a list or tuple is a
        sequence of trials (so no window straddles two trials), and the reference is the
        maximum over all of them.
    sampling_rate_hz : float
        Sampling rate (Hz).
    window_ms : float
        Averaging window (ms), default 500.

    Returns
    -------
    EmgReference
        ``values_mv`` per channel, labelled ``EmgNormalization.MVC``.
    """
    trials = envelope if isinstance(envelope, list | tuple) else [envelope]
    n = round(window_ms * sampling_rate_hz / 1000.0)
    if n < 1:
        raise ValueError("window_ms is shorter than one sample")
    best = None
    for trial in trials:
        env = _time_first_2d(trial)
        if env.shape[0] < n:
            continue
        peak = _moving_mean_max(env, n)
        best = peak if best is None else np.maximum(best, peak)
    if best is None:
        raise ValueError(f"no MVC trial is at least {window_ms:g} ms long")
    return EmgReference(values_mv=best, normalization=EmgNormalization.MVC)


def emg_dynamic_reference(envelope: ArrayLike, stride_bounds_samples: ArrayLike,
                          n_strides: int = 30) -> EmgReference:
    """Dynamic reference when there is no MVC: mean per-stride envelope peak, first strides.

    Parameters
    ----------
    envelope : array_like, shape (n_samples, n_channels) or (n_samples,)
        Envelope (mV) of the running recording.
    stride_bounds_samples : array_like of int
        Either (n, 2) ``[start, stop)`` sample pairs of accepted steady strides (rejected
        strides already left out), or a 1-D array of consecutive initial-contact samples
        (stride i runs from IC i to IC i+1).
    n_strides : int
        Number of leading strides to average (default 30); fewer are used if fewer are given,
        and the count travels in ``n_strides`` of the result.

    Returns
    -------
    EmgReference
        ``values_mv`` per channel, labelled ``EmgNormalization.RELATIVE``.
    """
    env = _time_first_2d(envelope)
    bounds = np.asarray(stride_bounds_samples, dtype=np.int64)
    if bounds.ndim == 1:
        bounds = np.column_stack([bounds[:-1], bounds[1:]])
    if bounds.ndim != 2 or bounds.shape[1] != 2:
        raise ValueError("stride_bounds_samples must be (n, 2) pairs or 1-D IC samples")
    bounds = bounds[:n_strides]
    if len(bounds) == 0:
        raise ValueError("no strides to build a dynamic reference from")
    if np.any(bounds[:, 1] <= bounds[:, 0]) or bounds.min() < 0 or bounds.max() > len(env):
        raise ValueError("stride bounds must be increasing and inside the envelope")
    peaks = np.array([env[a:b].max(axis=0) for a, b in bounds])
    return EmgReference(values_mv=peaks.mean(axis=0), normalization=EmgNormalization.RELATIVE,
                        n_strides=len(bounds))


def emg_normalize(envelope: ArrayLike, reference: EmgReference) -> EmgNormalized:
    """Divide each channel's envelope by its reference.

    Parameters
    ----------
    envelope : array_like, shape (n_samples, n_channels) or (n_samples,)
        Envelope (mV), same channels and order as the reference.
    reference : EmgReference
        From :func:`emg_mvc_reference` or :func:`emg_dynamic_reference`.

    Returns
    -------
    EmgNormalized
        ``values`` (fraction of the reference, 1.0 = reference; same shape as ``envelope``) and
        the reference's ``normalization`` label.
    """
    env = np.asarray(envelope)
    if env.dtype != np.float32:  # single precision stays single (hour-long reviews)
        env = env.astype(np.float64, copy=False)
    ref = np.asarray(reference.values_mv, dtype=env.dtype)
    n_channels = 1 if env.ndim == 1 else env.shape[1]
    if ref.shape != (n_channels,):
        raise ValueError(f"reference has {ref.shape} values for {n_channels} channel(s)")
    if not np.all(np.isfinite(ref) & (ref > 0)):
        raise ValueError("every reference value must be positive and finite")
    values = env / (ref[0] if env.ndim == 1 else ref)
    return EmgNormalized(values=values, normalization=reference.normalization)


def emg_integrate(envelope: ArrayLike, start: int, stop: int, sampling_rate_hz: float
                  ) -> NDArray[np.float64] | float:
    """Trapezoid integral of an envelope from sample ``start`` to sample ``stop`` (inclusive).

    Integrals of adjacent windows add up: ``[a, b] + [b, c] == [a, c]``; the window lasts
    ``(stop - start) / sampling_rate_hz`` seconds. Used for the glute:hamstring ratio over the
    hip-extension phase (both integrals must come with the same normalisation label).

    Parameters
    ----------
    envelope : array_like, shape (n_samples,) or (n_samples, n_channels)
        Normalised envelope (fraction of reference), or any envelope.
    start, stop : int
        First and last sample of the window, ``0 <= start <= stop < n_samples``.
    sampling_rate_hz : float
        Sampling rate (Hz).

    Returns
    -------
    float or ndarray, shape (n_channels,)
        Integral in (envelope unit)·s, i.e. normalised·s for a normalised envelope.
    """
    env = np.asarray(envelope)
    if not 0 <= start <= stop < env.shape[0]:
        raise ValueError(f"need 0 <= start <= stop < {env.shape[0]}, got {start}, {stop}")
    # Convert only the window: a whole-session float32 envelope cast per stride is slow.
    window = np.asarray(env[start:stop + 1], dtype=np.float64)
    area = np.trapezoid(window, dx=1.0 / sampling_rate_hz, axis=0)
    return float(area) if env.ndim == 1 else area


@dataclass(frozen=True)
class EmgQuality:
    """Per-channel signal checks (each array has one entry per channel)."""

    flat: NDArray[np.bool_]        #: RMS below ``flat_rms_mv``: electrode off or dead channel
    saturated: NDArray[np.bool_]   #: too many samples at the amplifier's full scale
    mains: NDArray[np.bool_]       #: 50/60 Hz lines carry most of the 20–450 Hz power
    rms_mv: NDArray[np.float64]    #: RMS after removing the mean (mV)
    clipped_fraction: NDArray[np.float64]  #: fraction of samples at ≥ 99 % of full scale
    mains_fraction: NDArray[np.float64]    #: power within ±1 Hz of 50 or 60 Hz / band power

    @property
    def ok(self) -> NDArray[np.bool_]:
        """Channels with no flag raised."""
        return ~(self.flat | self.saturated | self.mains)


def emg_quality(x: ArrayLike, sampling_rate_hz: float, range_mv: float, *,
                flat_rms_mv: float = 0.001, max_clipped_fraction: float = 0.001,
                max_mains_fraction: float = 0.3) -> EmgQuality:
    """Flag flat, saturated and mains-dominated channels of raw EMG (review data).

    Parameters
    ----------
    x : array_like, shape (n_samples,) or (n_samples, n_channels)
        Raw EMG (mV), at least a second of it for a meaningful mains check.
    sampling_rate_hz : float
        Sampling rate (Hz).
    range_mv : float
        Amplifier full scale (± mV at the electrode).
    flat_rms_mv : float
        A channel whose RMS is below this is flat (default 1 µV; skin noise alone is higher).
    max_clipped_fraction : float
        A channel with more samples than this fraction at ≥ 99 % of ``range_mv`` is saturated.
    max_mains_fraction : float
        A channel whose power within ±1 Hz of 50 Hz or 60 Hz exceeds this fraction of its
        20–450 Hz power is mains-dominated (broadband EMG puts < 1 % there).

    Returns
    -------
    EmgQuality
        Flags and the numbers behind them, per channel.
    """
    # channel-major: every reduction below runs along contiguous memory (several times
    # faster than along axis 0 of time-first data on the short windows checked per stride)
    arr = np.ascontiguousarray(_time_first_2d(x).T)
    centred = arr - arr.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(np.square(centred), axis=1))
    clipped = np.count_nonzero(np.abs(arr) >= 0.99 * range_mv, axis=1) / arr.shape[1]
    nperseg = int(min(arr.shape[1], round(sampling_rate_hz)))  # ~1 Hz resolution
    freqs, psd = _welch_psd(centred, sampling_rate_hz, nperseg)
    band = (freqs >= 20.0) & (freqs <= min(450.0, sampling_rate_hz / 2))
    band_power = psd[band].sum(axis=0)
    mains_power = np.zeros(arr.shape[0])
    for hz in (50.0, 60.0):
        near = np.abs(freqs - hz) <= 1.0
        mains_power = np.maximum(mains_power, psd[near].sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        mains_fraction = np.where(band_power > 0, mains_power / band_power, 0.0)
    return EmgQuality(flat=rms < flat_rms_mv, saturated=clipped > max_clipped_fraction,
                      mains=mains_fraction > max_mains_fraction, rms_mv=rms,
                      clipped_fraction=clipped, mains_fraction=mains_fraction)


@lru_cache(maxsize=16)
def _hann(nperseg: int) -> NDArray[np.float64]:
    return get_window("hann", nperseg)


def _welch_psd(x: NDArray[np.float64], fs: float, nperseg: int
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``scipy.signal.welch(x, fs, nperseg=nperseg, axis=-1)`` of channel-major
    (n_channels, n_samples) data (Hann window, half overlap, constant detrend, one-sided
    density, mean over segments), written out in numpy: the same numbers to round-off,
    without welch's per-call set-up, which dominates on the few-second windows the streaming
    engine checks for every stride. Returns the frequencies and the (n_freqs, n_channels)
    densities."""
    n = x.shape[-1]
    if n < 8:  # degenerate lengths: let scipy handle (and warn about) them
        freqs, psd = welch(x, fs=fs, nperseg=nperseg, axis=-1)
        return freqs, psd.T
    noverlap = nperseg // 2
    step = nperseg - noverlap
    n_seg = (n - noverlap) // step
    win = _hann(nperseg)
    segs = sliding_window_view(x, nperseg, axis=-1)[:, : (n_seg - 1) * step + 1: step]
    segs = segs - segs.mean(axis=-1, keepdims=True)
    spec = rfft(segs * win, axis=-1)  # (n_channels, n_seg, n_freqs)
    power = np.square(spec.real) + np.square(spec.imag)
    power *= 1.0 / (fs * float(np.sum(win * win)))
    power[..., 1:-1 if nperseg % 2 == 0 else None] *= 2.0
    return rfftfreq(nperseg, 1.0 / fs), power.mean(axis=1).T
