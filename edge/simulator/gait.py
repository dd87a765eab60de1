"""Stride timing: when each foot lands, and the continuous gait phase between landings.

Steps alternate left, right, left … Step *j* starts at its initial contact ``ic_s`` and lasts
until the other foot's IC. Its duration comes from the cadence for the speed at that moment
(150–190 steps/min) with ~3 % step-to-step noise, i.e. ~2 % stride-to-stride variability.
Everything random about step *j* is drawn from ``numpy.random.default_rng([seed, 7, j])``, so
a step looks the same however far ahead it was planned.

The gait phase of one side is a C¹ function of time: Φ(ic_k) = k exactly, cubic Hermite in
between with slopes that average the neighbouring stride frequencies, so segment angular
velocities do not jump at IC. ``phase = Φ - k`` lies in [0, 1) within stride *k*. The same
construction over all ICs (both feet) gives the step phase the pelvis follows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .profiles import Burst, Profile, profile_named

STEP_CV = 0.03  # step-to-step coefficient of variation -> ~2 % per stride


def cadence_spm_for_speed(speed_kmh: float) -> float:
    """Typical recreational running cadence for a treadmill speed, clipped to 150–190."""
    return float(np.clip(165.0 + 3.0 * (speed_kmh - 10.0), 150.0, 190.0))


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """0 below 0, 1 above 1, C¹ in between (3x² − 2x³)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Modifiers:
    """Slow drift of a runner's pattern (warm-up, fatigue, speed) applied when a step is planned."""

    extension_delta_deg: float = 0.0
    flexion_delta_deg: float = 0.0
    tilt_delta_deg: float = 0.0
    glute_scale: float = 1.0
    hamstring_scale: float = 1.0
    cadence_delta_spm: float = 0.0
    variability_scale: float = 1.0


@dataclass(frozen=True)
class Step:
    """One step: the IC of ``side`` and that side's stride pattern starting there."""

    index: int
    side: str
    ic_s: float
    duration_s: float
    profile: str
    speed_kmh: float
    stance_fraction: float
    peak_extension_deg: float
    peak_flexion_deg: float
    tilt_mean_deg: float
    tilt_amplitude_deg: float
    glute: Burst
    hamstring: Burst
    erector: Burst
    artefact_scale: float


@dataclass(frozen=True)
class Athlete:
    """Per-session constant offsets drawn from the seed: no two simulated runners are identical."""

    extension_deg: float
    flexion_deg: float
    tilt_deg: float
    onset_ms: float

    @classmethod
    def from_seed(cls, seed: int) -> Athlete:
        rng = np.random.default_rng([seed, 3])
        e, f, t, o = rng.standard_normal(4)
        return cls(extension_deg=0.8 * e, flexion_deg=2.0 * f, tilt_deg=0.8 * t,
                   onset_ms=6.0 * o)


class StridePlanner:
    """Plans steps ahead of generation; the list only grows, except for profile switches.

    Parameters
    ----------
    seed
        Session seed.
    first_ic_s
        IC of step 0 (left). Steps before running starts exist but are multiplied by a zero
        running weight, so the phase is well defined from the first running sample.
    speed_kmh_at, modifiers_at
        Functions of session time, evaluated at each step's IC.
    """

    def __init__(self, seed: int, profile: str, first_ic_s: float,
                 speed_kmh_at: Callable[[float], float],
                 modifiers_at: Callable[[float], Modifiers]) -> None:
        self.seed = seed
        self.steps: list[Step] = []
        self._ics: list[float] = []
        self._profile = profile_named(profile).name
        self._first_ic_s = first_ic_s
        self._speed_kmh_at = speed_kmh_at
        self._modifiers_at = modifiers_at
        self.athlete = Athlete.from_seed(seed)
        #: (from_step_index, profile) for every switch, for the truth.
        self.profile_changes: list[tuple[int, str]] = [(0, self._profile)]
        #: Index of ``steps[0]``: more than 0 once :meth:`forget_before` dropped old steps.
        self.first_index = 0

    @property
    def profile(self) -> str:
        """The profile of steps planned from now on."""
        return self._profile

    def step(self, j: int) -> Step:
        """Step number ``j`` (counted from the session's first step)."""
        return self.steps[j - self.first_index]

    def forget_before(self, t_s: float) -> None:
        """Drop steps that start more than 10 s before ``t_s`` (endless sessions).

        Steps go in even numbers, so ``steps[0]`` stays a left step; the per-step random draws
        depend on the step's number, never on its place in the list.
        """
        n = bisect_left(self._ics, t_s - 10.0) - 2
        n -= n % 2
        if n >= 64:  # in batches: deleting from the head of a list is O(len)
            del self.steps[:n]
            del self._ics[:n]
            self.first_index += n
            self.profile_changes = [(j, name) for j, name in self.profile_changes
                                    if j >= self.first_index] or [self.profile_changes[-1]]

    def plan_until(self, t_s: float) -> None:
        """Plan steps until one starts at or after ``t_s``."""
        while len(self.steps) < 8 or self.steps[-1].ic_s < t_s:
            j = self.first_index + len(self.steps)
            ic = self._first_ic_s if j == 0 else self.steps[-1].ic_s + self.steps[-1].duration_s
            step = self._plan_step(j, ic, self._profile)
            self.steps.append(step)
            self._ics.append(ic)

    def _plan_step(self, j: int, ic_s: float, profile_name: str) -> Step:
        rng = np.random.default_rng([self.seed, 7, j])
        z = rng.standard_normal(10)
        side = "l" if j % 2 == 0 else "r"
        profile: Profile = profile_named(profile_name)
        sp = profile.side(side)
        mods = self._modifiers_at(ic_s)
        speed = self._speed_kmh_at(ic_s)
        cadence = cadence_spm_for_speed(speed) + mods.cadence_delta_spm
        vs = mods.variability_scale
        duration = 60.0 / cadence * (1.0 + STEP_CV * vs * float(np.clip(z[0], -3, 3)))
        a = self.athlete
        onset_jitter = a.onset_ms + 8.0 * vs * z[1]
        return Step(
            index=j,
            side=side,
            ic_s=ic_s,
            duration_s=duration,
            profile=profile.name,
            speed_kmh=speed,
            stance_fraction=profile.stance_fraction + 0.004 * (10.0 - speed),
            peak_extension_deg=sp.peak_extension_deg + mods.extension_delta_deg + a.extension_deg
            + 0.6 * vs * z[2],
            peak_flexion_deg=sp.peak_flexion_deg + mods.flexion_delta_deg + a.flexion_deg
            + 1.0 * vs * z[3],
            tilt_mean_deg=profile.tilt_mean_deg + mods.tilt_delta_deg + a.tilt_deg + 0.3 * z[4],
            tilt_amplitude_deg=profile.tilt_amplitude_deg * (1.0 + 0.05 * z[5]),
            glute=sp.glute.shifted(onset_jitter).scaled(
                mods.glute_scale * (1.0 + 0.07 * vs * z[6])),
            hamstring=sp.hamstring.shifted(a.onset_ms + 8.0 * vs * z[7]).scaled(
                mods.hamstring_scale * (1.0 + 0.07 * vs * z[8])),
            erector=sp.erector.shifted(6.0 * z[9]),
            artefact_scale=float(np.exp(0.3 * z[9])),
        )

    def switch_profile(self, profile: str, generated_until_s: float) -> int:
        """Use ``profile`` for every step that has not yet influenced a generated sample.

        A step's parameters reach back to the previous IC of the same side (the angle curves
        blend from one stride into the next) and up to 0.4 s before its IC (EMG bursts start
        in late swing). Returns the index of the first step with the new profile.
        """
        name = profile_named(profile).name
        self._profile = name
        first = len(self.steps)
        for i in range(len(self.steps)):
            reach = min(self._ics[i - 2] if i >= 2 else -np.inf, self._ics[i] - 0.4)
            if reach >= generated_until_s:
                first = i
                break
        for i in range(first, len(self.steps)):
            old = self.steps[i]
            new = self._plan_step(self.first_index + i, old.ic_s, name)
            self.steps[i] = replace(new, duration_s=old.duration_s)
        self.profile_changes.append((self.first_index + first, name))
        return self.first_index + first

    def window(self, t0_s: float, t1_s: float, margin_s: float = 2.5) -> GaitWindow:
        """The steps that can influence samples in [t0_s, t1_s)."""
        self.plan_until(t1_s + margin_s)
        lo = max(0, bisect_left(self._ics, t0_s - margin_s) - 2)
        lo -= lo % 2  # keep the left/right parity of the window
        hi = min(len(self.steps), bisect_left(self._ics, t1_s + margin_s) + 4)
        return GaitWindow(self.steps[lo:hi])


def hermite_phase(t_s: np.ndarray, ic_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the current stride and the C¹ phase within it, for times between ICs.

    Parameters
    ----------
    t_s
        Times, each within ``[ic_s[1], ic_s[-2])`` (one knot of margin on each side).
    ic_s
        Increasing IC times (the knots).

    Returns
    -------
    k, phase
        ``ic_s[k] <= t < ic_s[k + 1]`` and phase in [0, 1].
    """
    t_s = np.asarray(t_s, dtype=float)
    durations = np.diff(ic_s)
    rate = 1.0 / durations
    slope = np.empty(len(ic_s))
    slope[1:-1] = 0.5 * (rate[:-1] + rate[1:])
    slope[0] = rate[0]
    slope[-1] = rate[-1]
    k = np.clip(np.searchsorted(ic_s, t_s, side="right") - 1, 0, len(durations) - 1)
    big_t = durations[k]
    u = (t_s - ic_s[k]) / big_t
    u2 = u * u
    u3 = u2 * u
    phase = ((u3 - 2 * u2 + u) * big_t * slope[k] + (-2 * u3 + 3 * u2)
             + (u3 - u2) * big_t * slope[k + 1])
    return k, np.clip(phase, 0.0, 1.0)


def hermite_time_at_phase(ic_s: np.ndarray, k: int, phase: float) -> float:
    """Invert :func:`hermite_phase` inside stride ``k`` (Newton on the cubic)."""
    lo, hi = ic_s[k], ic_s[k + 1]
    t = lo + phase * (hi - lo)
    for _ in range(30):
        _, p = hermite_phase(np.array([t]), ic_s)
        h = 1e-6
        _, p2 = hermite_phase(np.array([t + h]), ic_s)
        step = (p[0] - phase) / max((p2[0] - p[0]) / h, 1e-9)
        t = float(np.clip(t - step, lo, hi - 1e-9))
        if abs(step) < 1e-10:
            break
    return t


class GaitWindow:
    """Vectorised per-side and per-step parameters of consecutive steps (even start index)."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.ic_s = np.array([s.ic_s for s in self.steps])
        self.side_steps = {side: [s for s in self.steps if s.side == side] for side in "lr"}
        self.side_ic_s = {side: np.array([s.ic_s for s in st])
                          for side, st in self.side_steps.items()}
        self.side_extension_deg = {side: np.array([s.peak_extension_deg for s in st])
                                   for side, st in self.side_steps.items()}
        self.side_flexion_deg = {side: np.array([s.peak_flexion_deg for s in st])
                                 for side, st in self.side_steps.items()}
        self.tilt_mean_deg = np.array([s.tilt_mean_deg for s in self.steps])
        self.tilt_amplitude_deg = np.array([s.tilt_amplitude_deg for s in self.steps])

    def side_phase(self, side: str, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return hermite_phase(t_s, self.side_ic_s[side])

    def step_phase(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return hermite_phase(t_s, self.ic_s)

    def blend(self, values: np.ndarray, k: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """Per-stride values, eased from stride k's value into stride k+1's across stride k."""
        w = smoothstep(phase)
        return (1.0 - w) * values[k] + w * values[np.minimum(k + 1, len(values) - 1)]
