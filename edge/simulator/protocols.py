"""Guided protocols after the run: MVC trials and the prone hip extension test.

**MVC trials**: one per EMG channel, in channel order, each 8 s: 2 s rest, a 5 s effort at
activation 1.0 (0.3 s smooth rise and fall inside the 5 s), 1 s rest. Segments stay still
(the trial postures are not simulated).

**Prone hip extension test** (DOMAIN.md): the runner lies down prone over 3 s (a −90° rotation
of the whole body about the world z axis, so the anterior axes point down), then lifts one
straight leg and holds: per repetition 1.5 s rest, 0.5 s lift of ``lift_deg`` (thigh and shank
together), 2 s hold, 0.5 s lowering, 0.5 s rest; ``n_reps`` on the left, then on the right.
Movement onset is the instant the thigh starts to move. Muscle onsets relative to it come from
the profile (``prone_*_ms``): each muscle rises within 25 ms of its onset and switches off at the
end of the lowering. The pelvis tilts anteriorly and rotates toward the lifted side, 50 ms behind
the thigh.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .emg import RISE_MS, muscle_of
from .gait import smoothstep
from .profiles import Profile

MVC_REST_S, MVC_EFFORT_S, MVC_TRIAL_S, MVC_EDGE_S = 2.0, 5.0, 8.0, 0.3
PRONE_LIE_DOWN_S = 3.0
PRONE_REP_S = 5.0
PRONE_LIFT_S, PRONE_HOLD_S = 0.5, 2.0
PRONE_LIFT_DEG = 8.0  # ~12 cm at the ankle of an 85 cm leg
PRONE_LEVELS = {"glute_max": 0.35, "biceps_femoris": 0.30, "semitendinosus": 0.27,
                "erector_spinae": 0.25}


def mvc_duration_s(channels: tuple[str, ...]) -> float:
    return MVC_TRIAL_S * len(channels)


def prone_duration_s(n_reps: int) -> float:
    return PRONE_LIE_DOWN_S + 2 * n_reps * PRONE_REP_S


def mvc_trials(channels: tuple[str, ...], start_s: float) -> list[dict]:
    return [{"channel": ch, "effort_start_s": start_s + i * MVC_TRIAL_S + MVC_REST_S,
             "effort_end_s": start_s + i * MVC_TRIAL_S + MVC_REST_S + MVC_EFFORT_S,
             "activation": 1.0} for i, ch in enumerate(channels)]


def mvc_activation(trials: list[dict], channel: str, t_s: np.ndarray) -> np.ndarray:
    out = np.zeros(len(t_s))
    for trial in trials:
        if trial["channel"] == channel:
            t0, t1 = trial["effort_start_s"], trial["effort_end_s"]
            out += smoothstep((t_s - t0) / MVC_EDGE_S) * (1.0 - smoothstep(
                (t_s - (t1 - MVC_EDGE_S)) / MVC_EDGE_S))
    return out


def prone_reps(start_s: float, n_reps: int, profile: Profile) -> list[dict]:
    """The scripted test: lie down at ``start_s``, ``n_reps`` on the left, then the right."""
    return [rep for side_i, side in enumerate("lr")
            for rep in prone_side_reps(start_s + PRONE_LIE_DOWN_S, side, n_reps, profile,
                                       first_slot=side_i * n_reps)]


def prone_side_reps(first_s: float, side: str, n_reps: int, profile: Profile, *,
                    first_slot: int = 0) -> list[dict]:
    """``n_reps`` lifts of one side, rep *i* in the 5 s slot starting at
    ``first_s + (first_slot + i) * PRONE_REP_S`` (the athlete already lies prone)."""
    if side not in ("l", "r"):
        raise ValueError(f"prone side {side!r}: expected 'l' or 'r'")
    reps = []
    sp = profile.side(side)
    for rep in range(n_reps):
        c0 = first_s + (first_slot + rep) * PRONE_REP_S
        onsets = {"glute_max": sp.prone_glute_ms, "hamstring": sp.prone_hamstring_ms,
                  "erector_spinae": sp.prone_erector_ms}
        reps.append({
            "side": side, "rep": rep, "profile": profile.name,
            "movement_onset_s": c0 + 1.5,
            "hold_start_s": c0 + 1.5 + PRONE_LIFT_S,
            "lower_end_s": c0 + 1.5 + 2 * PRONE_LIFT_S + PRONE_HOLD_S,
            "glute_onset_ms": sp.prone_glute_ms,
            "hamstring_onset_ms": sp.prone_hamstring_ms,
            "erector_onset_ms": sp.prone_erector_ms,
            "order": sorted(onsets, key=onsets.__getitem__),
            "glute_ham_lag_ms": sp.prone_glute_ms - sp.prone_hamstring_ms,
            "lift_deg": PRONE_LIFT_DEG,
            "pelvic_tilt_deg": sp.prone_tilt_deg,
            "pelvic_rotation_deg": sp.prone_rotation_deg,
        })
    return reps


def _lift(rep: dict, t_s: np.ndarray, delay_s: float = 0.0) -> np.ndarray:
    t = t_s - delay_s
    return (smoothstep((t - rep["movement_onset_s"]) / PRONE_LIFT_S)
            - smoothstep((t - rep["hold_start_s"] - PRONE_HOLD_S) / PRONE_LIFT_S))


def prone_base(start_s: float, t_s: np.ndarray) -> Rotation:
    """Whole-body rotation while lying down: 0 before ``start_s``, −90° about z after."""
    return lying_rotation(smoothstep((t_s - start_s) / PRONE_LIE_DOWN_S))


def lying_fraction(intervals: list[list[float]], t_s: np.ndarray) -> np.ndarray:
    """0 upright … 1 prone, for (down_s, up_s) intervals: lying down takes
    ``PRONE_LIE_DOWN_S`` from ``down_s``, getting up as long from ``up_s`` (inf = stays)."""
    out = np.zeros(len(t_s))
    for down_s, up_s in intervals:
        if t_s[-1] >= down_s and t_s[0] <= up_s + PRONE_LIE_DOWN_S:
            out += smoothstep((t_s - down_s) / PRONE_LIE_DOWN_S) - smoothstep(
                (t_s - up_s) / PRONE_LIE_DOWN_S)
    return out


def lying_rotation(fraction: np.ndarray) -> Rotation:
    """Whole-body rotation for a lying ``fraction``: −90° about the world z axis when prone."""
    rotvec = np.zeros((len(fraction), 3))
    rotvec[:, 2] = -0.5 * np.pi * fraction
    return Rotation.from_rotvec(rotvec)


def prone_extra_deg(reps: list[dict], t_s: np.ndarray, segments: tuple[str, ...]
                    ) -> dict[str, np.ndarray]:
    extra = {seg: np.zeros((len(t_s), 3)) for seg in segments}
    for rep in reps:
        if t_s[-1] < rep["movement_onset_s"] - 1.0 or t_s[0] > rep["lower_end_s"] + 1.0:
            continue
        side = rep["side"]
        lift = _lift(rep, t_s)
        pelvis = _lift(rep, t_s, 0.05)
        for seg in (f"thigh_{side}", f"shank_{side}"):
            extra[seg][:, 0] -= rep["lift_deg"] * lift  # hip extension: negative about +z
        toward = -1.0 if side == "l" else 1.0
        extra["pelvis"][:, 0] -= rep["pelvic_tilt_deg"] * pelvis  # anterior tilt
        extra["pelvis"][:, 2] += toward * rep["pelvic_rotation_deg"] * pelvis
        for seg in ("thigh_l", "thigh_r", "shank_l", "shank_r"):
            # The whole leg is carried by the pelvis.
            extra[seg][:, 0] -= rep["pelvic_tilt_deg"] * pelvis
    return extra


def prone_activation(reps: list[dict], channel: str, t_s: np.ndarray) -> np.ndarray:
    muscle, side = muscle_of(channel)
    out = np.zeros(len(t_s))
    for rep in reps:
        if t_s[-1] < rep["movement_onset_s"] - 1.0 or t_s[0] > rep["lower_end_s"] + 1.0:
            continue
        level = PRONE_LEVELS.get(muscle, 0.0)
        if muscle == "glute_max":
            onset_ms = rep["glute_onset_ms"]
        elif muscle == "erector_spinae":
            onset_ms = rep["erector_onset_ms"] + (0.0 if side == rep["side"] else 20.0)
            level *= 1.0 if side == rep["side"] else 0.6
        else:
            onset_ms = rep["hamstring_onset_ms"] + (15.0 if muscle == "semitendinosus" else 0.0)
        if muscle != "erector_spinae" and side != rep["side"]:
            continue
        on = rep["movement_onset_s"] + onset_ms / 1000.0
        rise = np.sin(0.5 * np.pi * np.clip((t_s - on) * 1000.0 / RISE_MS, 0.0, 1.0)) ** 2
        off = 1.0 - smoothstep((t_s - rep["lower_end_s"]) / 0.1)
        out += level * rise * off
    return out
