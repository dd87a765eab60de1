"""What a lab C3D holds besides analog EMG/IMU: markers, force plates, the EVENT section, and
the gait events HipStride takes from them (docs/formats.md, "C3D").

Gait events per side, in this order (``gait_method`` names the one used):

1. ``force_plate``: contacts where the plate's vertical force rises above 20 N and reaches
   50 N (hysteresis; times at the 20 N crossings), each given to the foot whose heel/ankle/
   toe marker is nearest the plate's centre of pressure, or — without foot markers — to
   alternate feet (``force_plate_alternation``). Used for a side with 2 or more contacts
   (unless the markers find more: then 3., with the plates' times).
2. ``c3d_events``: the file's EVENT section (``Foot Strike``/``Foot Off`` with context
   ``Left``/``Right``, or ``LHS``/``RTO`` style labels).
3. ``markers``: heel and toe relative to the pelvis along the walking direction (Zeni et al.
   2008, Gait Posture 27:710): initial contact where the heel is furthest forward, toe-off
   where the toe is furthest back; an event within 150 ms of a force-plate contact of the
   same foot takes the plate's time (``markers+force_plate``).

Times are file seconds (point frame ``first_frame`` is ``first_frame / rate``); the reader
shifts them to session time.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipstride.pipeline.engine.data import GaitEvents
from hipstride.pipeline.io.session import SessionInputError

#: Vertical force thresholds of a contact (N): above OFF_N for the contact, reaching ON_N.
ON_N, OFF_N = 50.0, 20.0
MIN_CONTACT_S = 0.08
#: A stride outside these bounds (s), or off the side's median by more than STRIDE_TOLERANCE,
#: is kept but marked invalid (a missed contact, a turn).
STRIDE_BOUNDS_S = (0.4, 2.5)
STRIDE_TOLERANCE = 0.35

_FOOT = re.compile(r"(?i)(hee|heel|ank|ankle|fcc|cal|toe|mt\d|met|fm\d|foo|ft\d)")
_HEEL = re.compile(r"(?i)(hee|heel|fcc|calc)")
_TOE = re.compile(r"(?i)(toe|mt\d|met|fm\d)")
_PELVIS = re.compile(r"(?i)(asi|asis|ias|psi|psis|ips|sacr|sacrum|vsac)")
_ASIS = re.compile(r"(?i)(asi|ias)")


class C3dReadError(SessionInputError):
    """A file ezc3d cannot read, in HipStride's words."""


def open_c3d(path: str | Path, *, force_plates: bool = False) -> Any:
    """The ezc3d object of ``path``; a :class:`C3dReadError` with what to do otherwise."""
    import ezc3d  # optional dependency of the pipeline: only needed for C3D

    path = Path(path)
    if not path.is_file():
        raise C3dReadError(f"{path}: no such file")
    try:
        return ezc3d.c3d(str(path), extract_forceplat_data=force_plates)
    except (OSError, RuntimeError, ValueError, IndexError) as err:
        text = str(err)
        if "MIPS" in text or "processor" in text.lower():
            raise C3dReadError(
                f"{path}: this C3D was written on an SGI/MIPS computer (big-endian byte "
                "order), which HipStride's C3D reader does not read; open it in the lab's "
                "software (Vicon Nexus, Mokka, Motion Monitor ...) and save it again as a "
                "PC (Intel) C3D") from None
        if force_plates:  # a broken FORCE_PLATFORM section: read the rest without plates
            return open_c3d(path, force_plates=False)
        raise C3dReadError(f"{path}: cannot read it as C3D ({text.splitlines()[0][:200]}); "
                           "check that it is a C3D file, and export it again if it is cut "
                           "short") from None


def param(c3d: Any, group: str, name: str, default: Any) -> Any:
    """``c3d["parameters"][group][name]["value"]``, or ``default`` when absent."""
    try:
        return c3d["parameters"][group][name]["value"]
    except (KeyError, TypeError, IndexError):
        return default


def side_of(label: str) -> str | None:
    """``l``/``r`` of a marker or analog label (``LHEE``, ``L.Heel``, ``L_FCC``, ``r heel``,
    ``Left ...``, ``..._L``), else None."""
    text = label.strip()
    m = re.match(r"(?i)^(left|right)\b", text) or re.match(r"^([LR])(?=[A-Z._ \-])", text) \
        or re.match(r"^([lr])(?=[ ._\-])", text)
    if m:
        return m.group(1)[0].lower()
    m = re.search(r"(?i)[._ \-]([lr])$", text)
    return m.group(1).lower() if m else None


# --- markers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Markers:
    """Marker positions (m, lab frame), ``xyz[name]`` (n, 3) NaN where missing."""

    xyz: dict[str, NDArray[np.float64]]
    rate_hz: float
    start_s: float  # file time of frame 0

    @property
    def n_frames(self) -> int:
        return len(next(iter(self.xyz.values()))) if self.xyz else 0


def markers_of(c3d: Any, *, start_s: float | None = None) -> Markers:
    """Markers of an ezc3d object in metres; missing samples (residual < 0, all zero) NaN.
    A label that comes twice keeps its first trajectory."""
    labels = [str(v).strip() for v in param(c3d, "POINT", "LABELS", [])]
    rate = float((list(np.ravel(param(c3d, "POINT", "RATE", []))) or [0.0])[0])
    units = str((list(param(c3d, "POINT", "UNITS", [])) or ["mm"])[0]).strip().lower()
    scale = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}.get(units, 1e-3)
    pts = np.asarray(c3d["data"]["points"], float)
    if start_s is None:
        first = int(c3d["header"]["points"]["first_frame"])
        start_s = first / rate if rate > 0 else 0.0
    out: dict[str, NDArray[np.float64]] = {}
    if pts.ndim != 3 or pts.shape[1] == 0 or rate <= 0:
        return Markers(out, rate, start_s)
    res = c3d["data"]["meta_points"]["residuals"][0] if "meta_points" in c3d["data"] else None
    for i, name in enumerate(labels[: pts.shape[1]]):
        if not name or name in out:
            continue
        xyz = pts[:3, i, :].T * scale
        bad = ~np.isfinite(xyz).all(axis=1) | (np.abs(xyz).sum(axis=1) == 0.0)
        if res is not None:
            bad |= np.asarray(res[i]) < 0
        xyz[bad] = np.nan
        if np.isfinite(xyz).any():
            out[name] = xyz
    return Markers(out, rate, start_s)


def _find(markers: Markers, pattern: re.Pattern[str], side: str | None) -> list[str]:
    return [m for m in markers.xyz if pattern.search(m) and side_of(m) == side]


def vertical_axis(markers: Markers) -> int | None:
    """Index of the lab's vertical axis: the one along which the pelvis is furthest from the
    feet (None without pelvis and foot markers)."""
    pelvis = [m for m in markers.xyz if _PELVIS.search(m)]
    feet = [m for m in markers.xyz if _FOOT.search(m)]
    if not pelvis or not feet:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        up = np.nanmean([np.nanmean(markers.xyz[m], axis=0) for m in pelvis], axis=0) - \
            np.nanmean([np.nanmean(markers.xyz[m], axis=0) for m in feet], axis=0)
    return int(np.nanargmax(np.abs(up))) if np.isfinite(up).any() else None


# --- force plates ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contact:
    ic_s: float
    toe_off_s: float
    plate: int
    cop_m: NDArray[np.float64] | None  # centre of pressure at mid-contact (m, lab frame)
    side: str | None = None


def contacts_from_force(force_n: NDArray[np.float64], rate_hz: float, *, on_n: float = ON_N,
                        off_n: float = OFF_N, min_contact_s: float = MIN_CONTACT_S
                        ) -> list[tuple[float, float]]:
    """(IC, toe-off) in seconds from sample 0: runs above ``off_n`` that reach ``on_n``,
    times interpolated at the ``off_n`` crossings; runs cut by the recording's ends are left
    out."""
    f = np.nan_to_num(np.asarray(force_n, float))
    above = f > off_n
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    out = []
    for s in (e for e in edges if not above[e]):
        later = edges[edges > s]
        if not len(later):
            break
        e = int(later[0])  # last sample above
        if f[s + 1:e + 1].max() < on_n:
            continue
        t_on = (s + (off_n - f[s]) / (f[s + 1] - f[s])) / rate_hz
        t_off = (e + (f[e] - off_n) / (f[e] - f[e + 1])) / rate_hz
        if t_off - t_on >= min_contact_s:
            out.append((float(t_on), float(t_off)))
    return out


def plate_contacts(c3d: Any, start_s: float) -> list[Contact]:
    """Contacts on every force plate ezc3d extracted (``extract_forceplat_data=True``)."""
    plates = c3d["data"].get("platform", []) if hasattr(c3d["data"], "get") else []
    rate = float((list(np.ravel(param(c3d, "ANALOG", "RATE", []))) or [0.0])[0])
    out: list[Contact] = []
    if rate <= 0:
        return out
    for k, plate in enumerate(plates):
        force = np.asarray(plate.get("force", []), float)
        if force.ndim != 2 or force.shape[0] != 3 or force.shape[1] < 3:
            continue
        with np.errstate(all="ignore"):
            peaks = np.nanmax(np.abs(force), axis=1)
        if not np.isfinite(peaks).any():
            continue
        axis = int(np.nanargmax(peaks))
        fv = force[axis]
        if abs(np.nanmin(fv)) > abs(np.nanmax(fv)):
            fv = -fv
        cop = np.asarray(plate.get("center_of_pressure", np.full_like(force, np.nan)), float)
        unit = str(plate.get("unit_position", "mm")).strip().lower()
        scale = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}.get(unit, 1e-3)
        for ic, to in contacts_from_force(fv, rate):
            i = round((ic + to) / 2 * rate)
            p = cop[:, i] * scale if cop.shape[1] > i else None
            out.append(Contact(start_s + ic, start_s + to, k,
                               p if p is not None and np.isfinite(p).all() else None))
    return sorted(out, key=lambda c: c.ic_s)


def assign_feet(contacts: list[Contact], markers: Markers) -> tuple[list[Contact], str]:
    """Each contact to the foot with a heel/ankle/toe marker nearest the centre of pressure
    (horizontal distance, at mid-contact); without foot markers, by alternation."""
    feet = {s: [m for m in markers.xyz if _FOOT.search(m) and side_of(m) == s] for s in "lr"}
    up = vertical_axis(markers)
    out: list[Contact] = []
    method = "force_plate"
    for k, c in enumerate(contacts):
        side = None
        if c.cop_m is not None and all(feet.values()) and markers.rate_hz > 0:
            i = round(((c.ic_s + c.toe_off_s) / 2 - markers.start_s) * markers.rate_hz)
            if 0 <= i < markers.n_frames:
                horiz = [a for a in range(3) if a != up] if up is not None else [0, 1, 2]
                dist = {}
                for s, names in feet.items():
                    d = [np.linalg.norm(markers.xyz[m][i, horiz] - c.cop_m[horiz])
                         for m in names]
                    d = [x for x in d if np.isfinite(x)]
                    dist[s] = min(d) if d else math.inf
                if min(dist.values()) < 0.4:
                    side = min(dist, key=dist.__getitem__)
        if side is None:
            side = "lr"[k % 2]
            method = "force_plate_alternation"
        out.append(Contact(c.ic_s, c.toe_off_s, c.plate, c.cop_m, side))
    return out, method


# --- the file's EVENT section ------------------------------------------------------------------

def file_events(c3d: Any) -> dict[str, dict[str, list[float]]]:
    """``{"l": {"ic": [...], "toe_off": [...]}, "r": ...}`` (file s) from the EVENT section."""
    params = c3d["parameters"]
    out: dict[str, dict[str, list[float]]] = {s: {"ic": [], "toe_off": []} for s in "lr"}
    if "EVENT" not in params or "TIMES" not in params["EVENT"]:
        return out
    ev = params["EVENT"]
    labels = [str(v).strip() for v in ev.get("LABELS", {}).get("value", [])]
    contexts = [str(v).strip() for v in ev.get("CONTEXTS", {}).get("value", [])]
    times = np.asarray(ev["TIMES"]["value"], float)
    if times.ndim != 2 or times.shape[0] != 2:
        return out
    for k, label in enumerate(labels[: times.shape[1]]):
        t = float(times[0, k] * 60.0 + times[1, k])
        context = contexts[k] if k < len(contexts) else ""
        words = label.lower()
        side = side_of(context) if context else None
        short = re.fullmatch(r"(?i)([lr])\s?(hs|ic|fs|to|fo)", label)
        if short:
            side = short.group(1).lower()
            kind = "ic" if short.group(2).lower() in ("hs", "ic", "fs") else "toe_off"
        elif "strike" in words or "contact" in words or "heel" in words:
            kind = "ic"
        elif "off" in words:
            kind = "toe_off"
        else:
            continue
        side = side or side_of(label)
        if side in out and math.isfinite(t):
            out[side][kind].append(t)
    return {s: {k: sorted(v) for k, v in d.items()} for s, d in out.items()}


# --- markers: heel and toe relative to the pelvis ----------------------------------------------

def marker_events(markers: Markers) -> dict[str, dict[str, list[float]]]:
    """Zeni et al. (2008): IC at the peaks of the heel's forward distance from the pelvis,
    toe-off at the troughs of the toe's; the forward direction from ASIS to PSIS (or the
    pelvis' travel)."""
    from scipy.signal import find_peaks

    out: dict[str, dict[str, list[float]]] = {s: {"ic": [], "toe_off": []} for s in "lr"}
    up = vertical_axis(markers)
    pelvis = [m for m in markers.xyz if _PELVIS.search(m)]
    if up is None or markers.n_frames < markers.rate_hz or not pelvis:
        return out
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with no pelvis marker: NaN
        centre = np.nanmean([markers.xyz[m] for m in pelvis], axis=0)
        front = [m for m in pelvis if _ASIS.search(m)]
        back = [m for m in pelvis if m not in front]
        forward = (np.nanmean([markers.xyz[m] for m in front], axis=0)
                   - np.nanmean([markers.xyz[m] for m in back], axis=0)) if front and back \
            else np.gradient(centre, axis=0)
    forward[:, up] = 0.0
    norm = np.linalg.norm(forward, axis=1, keepdims=True)
    forward = forward / np.where(norm > 0, norm, np.nan)
    distance = max(1, round(0.35 * markers.rate_hz))
    for side in "lr":
        for kind, pattern, sign in (("ic", _HEEL, 1.0), ("toe_off", _TOE, -1.0)):
            names = _find(markers, pattern, side)
            if not names:
                continue
            rel = np.nansum((markers.xyz[names[0]] - centre) * forward, axis=1)
            rel[~np.isfinite(markers.xyz[names[0]]).all(axis=1)] = np.nan
            ok = np.isfinite(rel)
            if ok.sum() < markers.rate_hz:
                continue
            filled = np.interp(np.arange(len(rel)), np.flatnonzero(ok), rel[ok])
            peaks, _ = find_peaks(sign * filled, distance=distance, prominence=0.05)
            peaks = [p for p in peaks if ok[p] and 0 < p < len(rel) - 1]
            out[side][kind] = [markers.start_s + p / markers.rate_hz for p in peaks]
    return out


# --- events per side ---------------------------------------------------------------------------

@dataclass
class LabEvents:
    """Gait events per side (file seconds) and how each side's were found."""

    ic: dict[str, list[float]] = field(default_factory=dict)
    toe_off: dict[str, list[float]] = field(default_factory=dict)
    method: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def gait_events(self, shift_s: float = 0.0) -> dict[str, GaitEvents]:
        """:class:`GaitEvents` per side with ≥ 2 ICs, times minus ``shift_s``."""
        return {side: to_gait_events(side, np.asarray(ics) - shift_s,
                                     np.asarray(self.toe_off.get(side, [])) - shift_s,
                                     self.method[side])
                for side, ics in self.ic.items() if len(ics) >= 2}


def to_gait_events(side: str, ic_s: NDArray[np.float64], toe_s: NDArray[np.float64],
                   method: str) -> GaitEvents:
    """Strides from IC to IC; the first toe-off inside each; implausible strides invalid."""
    ic_s = np.sort(np.asarray(ic_s, float))
    periods = np.diff(ic_s)
    median = float(np.median(periods)) if len(periods) else math.nan
    toe, valid, reasons = [], [], []
    for k, period in enumerate(periods):
        inside = toe_s[(toe_s > ic_s[k]) & (toe_s < ic_s[k + 1])]
        toe.append(float(inside[0]) if len(inside) else math.nan)
        reason = ""
        if not STRIDE_BOUNDS_S[0] <= period <= STRIDE_BOUNDS_S[1]:
            reason = (f"stride of {period:.2f} s outside {STRIDE_BOUNDS_S[0]:g}–"
                      f"{STRIDE_BOUNDS_S[1]:g} s (a contact missed?)")
        elif len(periods) >= 3 and abs(period - median) > STRIDE_TOLERANCE * median:
            reason = f"stride of {period:.2f} s, far from the side's median {median:.2f} s"
        valid.append(not reason)
        reasons.append(reason)
    return GaitEvents(side, ic_s, np.asarray(toe, float), np.asarray(valid, bool),
                      tuple(reasons), method)


def lab_events(c3d_plates: Any | None, c3d: Any, markers: Markers) -> LabEvents:
    """Events per side: force plates (≥ 2 contacts that side), else the EVENT section, else
    markers (see the module docstring)."""
    result = LabEvents()
    contacts: list[Contact] = []
    plate_method = "force_plate"
    if c3d_plates is not None:
        contacts, plate_method = assign_feet(plate_contacts(c3d_plates, markers.start_s),
                                             markers)
        if contacts:
            result.notes.append(f"{len(contacts)} force-plate contacts (vertical force "
                                f"{OFF_N:g}/{ON_N:g} N)")
    events = file_events(c3d)
    from_markers = marker_events(markers)
    for side in "lr":
        mine = [c for c in contacts if c.side == side]
        if len(mine) >= 2 and len(mine) >= len(from_markers[side]["ic"]):
            result.ic[side] = [c.ic_s for c in mine]
            result.toe_off[side] = [c.toe_off_s for c in mine]
            result.method[side] = plate_method
        elif len(events[side]["ic"]) >= 2:
            result.ic[side] = events[side]["ic"]
            result.toe_off[side] = events[side]["toe_off"]
            result.method[side] = "c3d_events"
        elif len(from_markers[side]["ic"]) >= 2:
            ic, toe = list(from_markers[side]["ic"]), list(from_markers[side]["toe_off"])
            result.method[side] = "markers"
            for c in mine:  # a plate contact is the better time of the marker event it matches
                near = [k for k, t in enumerate(ic) if abs(t - c.ic_s) < 0.15]
                if near:
                    ic[near[0]] = c.ic_s
                    result.method[side] = "markers+force_plate"
                    toe = [t for t in toe if abs(t - c.toe_off_s) >= 0.15] + [c.toe_off_s]
            result.ic[side], result.toe_off[side] = sorted(ic), sorted(toe)
    if plate_method == "force_plate_alternation" and any(
            m == plate_method for m in result.method.values()):
        result.notes.append("force-plate contacts given to alternate feet (no heel, ankle or "
                            "toe markers to tell them apart): the first is taken as left")
    return result
