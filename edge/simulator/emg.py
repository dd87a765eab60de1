"""Surface EMG: muscle activation in fraction of MVC, and the millivolts an electrode sees.

The signal of one channel is ``sqrt((a(t)·mvc_mv)² + floor_mv²) · n(t)`` where ``n`` is unit-RMS
white noise band-limited to 20–450 Hz (4th-order Butterworth band-pass, filter state carried
from block to block), ``a(t)`` the activation (0…1, fraction of MVC) and ``mvc_mv`` the RMS
amplitude of that muscle at a maximal voluntary contraction. An ideal MVC-normalised RMS
envelope therefore reads ``a(t)`` (plus the tiny noise floor), which is what the ground truth
ratios are computed from. On top: motion-artefact spikes at IC (mostly below 20 Hz), optional
mains hum, electrode dropout windows and clipping at the amplifier's full scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from .gait import GaitWindow
from .profiles import Burst

RISE_MS = 25.0
FALL_MS = 60.0

#: RMS amplitude (mV) of each muscle at MVC, before the per-session ±15 % from the seed.
MVC_MV = {"glute_max": 0.30, "biceps_femoris": 0.40, "semitendinosus": 0.35,
          "erector_spinae": 0.20}


def burst_activation(tau_ms: np.ndarray, burst: Burst) -> np.ndarray:
    """Activation (fraction of MVC) of one burst at times ``tau_ms`` relative to its IC.

    Exactly zero outside [onset, offset]; a sin² edge of 25 ms up to ~55 % of the peak, a cos²
    hump centred at ``peak_ms``, and a 60 ms sin² fall to the offset.
    """
    on, pk, off = burst.onset_ms, burst.peak_ms, burst.offset_ms
    rise = np.sin(0.5 * np.pi * np.clip((tau_ms - on) / RISE_MS, 0.0, 1.0)) ** 2
    fall = np.sin(0.5 * np.pi * np.clip((off - tau_ms) / FALL_MS, 0.0, 1.0)) ** 2
    half_width = max(pk - on, off - pk, 1.0)
    hump = np.cos(0.5 * np.pi * np.clip((tau_ms - pk) / half_width, -1.0, 1.0)) ** 2
    return burst.peak * rise * fall * (0.55 + 0.45 * hump)


def muscle_of(channel: str) -> tuple[str, str]:
    """``glute_max_l`` -> (``glute_max``, ``l``)."""
    muscle, side = channel.rsplit("_", 1)
    return muscle, side


def running_activation(win: GaitWindow, channel: str, t_s: np.ndarray) -> np.ndarray:
    """Activation of ``channel`` from the running pattern (before weights and drive factors)."""
    muscle, side = muscle_of(channel)
    t_s = np.asarray(t_s, dtype=float)
    out = np.zeros_like(t_s)
    for s in win.steps:
        if muscle == "erector_spinae":
            # Ipsilateral burst at own IC, a smaller contralateral one at the other foot's IC.
            burst = s.erector if s.side == side else s.erector.scaled(0.6)
        elif s.side != side:
            continue
        elif muscle == "glute_max":
            burst = s.glute
        elif muscle == "biceps_femoris":
            burst = s.hamstring
        elif muscle == "semitendinosus":
            burst = s.hamstring.shifted(15.0).scaled(0.9)
        else:
            raise ValueError(f"no activation pattern for channel {channel!r}")
        tau = (t_s - s.ic_s) * 1000.0
        sel = (tau >= burst.onset_ms) & (tau <= burst.offset_ms)
        if sel.any():
            out[sel] += burst_activation(tau[sel], burst)
    return out


def artefact_mv(win: GaitWindow, channel: str, t_s: np.ndarray, amplitude_mv: float
                ) -> np.ndarray:
    """Motion-artefact spikes at the channel side's ICs (a damped 8 Hz wobble, ~0.1 s)."""
    _, side = muscle_of(channel)
    out = np.zeros(len(t_s))
    if amplitude_mv <= 0:
        return out
    for s in win.steps:
        if s.side != side:
            continue
        dt = t_s - s.ic_s
        sel = (dt >= 0.0) & (dt < 0.15)
        if sel.any():
            d = dt[sel]
            out[sel] += (amplitude_mv * s.artefact_scale * np.exp(-d / 0.025)
                         * np.sin(2.0 * np.pi * 8.0 * d + 0.3))
    return out


@dataclass
class BandNoise:
    """Unit-RMS 20–450 Hz noise for ``n_channels``, continuing seamlessly block after block."""

    rate_hz: float
    n_channels: int

    def __post_init__(self) -> None:
        high = min(450.0, 0.45 * self.rate_hz)
        self.sos = butter(4, [20.0, high], btype="bandpass", fs=self.rate_hz, output="sos")
        impulse = np.zeros(int(self.rate_hz * 4))
        impulse[0] = 1.0
        self.gain = 1.0 / np.sqrt(np.sum(sosfilt(self.sos, impulse) ** 2))
        n_sections = sosfilt_zi(self.sos).shape[0]
        self.zi = np.zeros((n_sections, 2, self.n_channels))  # starts at rest: silent before

    def filter(self, white: np.ndarray) -> np.ndarray:
        """Band-pass a (n, n_channels) block of unit white noise, carrying the filter state."""
        out, self.zi = sosfilt(self.sos, white, axis=0, zi=self.zi)
        return out * self.gain
