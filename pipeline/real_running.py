"""Score the engine on virtual IMUs built from real running (:mod:`.virtual_imu`).

Runs the engine's own IMU chain and gait detection (:func:`.engine.imu.kinematics_from_imu`,
:func:`.engine.analysis.gait_events`, as :func:`.engine.analysis.analyze` does) on a
:class:`~.virtual_imu.VirtualSession` and compares, per force-plate contact of each foot:

* initial contact and toe-off (engine event within :data:`MATCH_S` of the force plate's);
* peak hip extension (minimum hip flexion) and peak anterior pelvic tilt of each stride
  (force-plate IC to the next IC of the same foot), engine against markers.

Errors are engine − truth; the figures are medians and 90th percentiles of their absolute
values. ``benchmarks/real_running.py`` prints them; docs/validation.md ("Real data") shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hipstride.pipeline.engine.analysis import gait_events
from hipstride.pipeline.engine.data import GaitEvents, Kinematics
from hipstride.pipeline.engine.gait import gait_events_shank, gait_events_thigh
from hipstride.pipeline.engine.imu import kinematics_from_imu

from .virtual_imu import VirtualSession

MATCH_S = 0.06
#: Strides scored start this long after the running part starts (the engine's first strides
#: follow the synthetic blend from standing).
SETTLE_S = 2.0


@dataclass(frozen=True)
class RealScore:
    """Errors on one virtual session (ms for events, degrees for angles)."""

    shanks: bool
    contacts: int
    recall: float
    ic_ms: NDArray[np.float64]
    toe_off_ms: NDArray[np.float64]
    hip_extension_deg: NDArray[np.float64]
    tilt_deg: NDArray[np.float64]
    methods: tuple[str, ...]

    def summary(self) -> dict[str, float]:
        """Median and p90 of the absolute errors, median signed (bias), and recall."""
        out: dict[str, float] = {"contacts": float(self.contacts), "recall": self.recall}
        for name, err in (("ic_ms", self.ic_ms), ("toe_off_ms", self.toe_off_ms),
                          ("hip_extension_deg", self.hip_extension_deg),
                          ("tilt_deg", self.tilt_deg)):
            ok = err[np.isfinite(err)]
            out[f"{name}_median"] = float(np.median(np.abs(ok))) if len(ok) else float("nan")
            out[f"{name}_p90"] = float(np.percentile(np.abs(ok), 90)) if len(ok) else float(
                "nan")
            out[f"{name}_bias"] = float(np.median(ok)) if len(ok) else float("nan")
        return out


def _legacy_events(kin: Kinematics, side: str) -> GaitEvents | None:
    """The landmarks the engine used before real-running validation: toe-off at the last
    shank-rate minimum before mid-swing (a walking landmark), thigh IC from flexion alone."""
    shank, thigh = f"shank_{side}", f"thigh_{side}"
    if shank in kin.sagittal_rate_dps:
        return gait_events_shank(kin.sagittal_rate_dps[shank], kin.rate_hz,
                                 start_s=kin.start_s, side=side,
                                 toe_off_definition="swing_minimum")
    if thigh in kin.sagittal_deg:
        return gait_events_thigh(kin.sagittal_deg[thigh], kin.rate_hz, start_s=kin.start_s,
                                 side=side)
    return None


def score(vs: VirtualSession, *, shanks: bool = True, legacy: bool = False) -> RealScore:
    """Run the engine on ``vs`` (with or without the shank IMUs) and score it; ``legacy``
    scores the earlier landmarks instead (:func:`_legacy_events`)."""
    imus = {k: v for k, v in vs.imus.items() if shanks or not k.startswith("shank")}
    kin = kinematics_from_imu(imus, standing=vs.standing)
    t_from = vs.running_from_s + SETTLE_S
    ic_err: list[float] = []
    to_err: list[float] = []
    ext_err: list[float] = []
    tilt_err: list[float] = []
    methods = []
    n_contacts = 0
    for side in ("l", "r"):
        ev = _legacy_events(kin, side) if legacy else gait_events(kin, side)
        mine = [c for c in vs.contacts if c.side == side and c.ic_s >= t_from]
        n_contacts += len(mine)
        if ev is None:
            continue
        methods.append(ev.method)
        for k, c in enumerate(mine):
            j = int(np.argmin(np.abs(ev.ic_s - c.ic_s))) if len(ev.ic_s) else -1
            if j >= 0 and abs(ev.ic_s[j] - c.ic_s) <= MATCH_S:
                ic_err.append(ev.ic_s[j] - c.ic_s)
                if j < len(ev.toe_off_s) and np.isfinite(ev.toe_off_s[j]):
                    to_err.append(ev.toe_off_s[j] - c.toe_off_s)
            if k + 1 < len(mine):
                ext_err.append(_peak_error(vs, kin, c.ic_s, mine[k + 1].ic_s, side))
                tilt_err.append(_peak_error(vs, kin, c.ic_s, mine[k + 1].ic_s, None))
    recall = len(ic_err) / n_contacts if n_contacts else 0.0
    return RealScore(shanks, n_contacts, recall, np.array(ic_err) * 1e3,
                     np.array(to_err) * 1e3, np.array(ext_err), np.array(tilt_err),
                     tuple(methods))


def _peak_error(vs: VirtualSession, kin: Kinematics, t0: float, t1: float,
                side: str | None) -> float:
    """Engine − truth of the stride's peak hip extension (``side``) or peak anterior tilt."""
    sel_t = (vs.time_s >= t0) & (vs.time_s < t1)
    tk = kin.time_s
    sel_k = (tk >= t0) & (tk < t1)
    if side is None:
        if kin.pelvic_tilt_deg is None:
            return float("nan")
        return float(kin.pelvic_tilt_deg[sel_k].max() - vs.pelvic_tilt_deg[sel_t].max())
    return float(kin.hip_flexion_deg[side][sel_k].min() - vs.hip_flexion_deg[side][sel_t].min())
