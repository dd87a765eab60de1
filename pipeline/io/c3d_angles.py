"""Hip flexion/extension and pelvic tilt from a lab file's markers (docs/formats.md, "C3D").

Conventions of docs/engine.md: the angles are relative to standing (zero from a static trial,
``--static FILE``, or else a standing second in the trial), hip = thigh relative to pelvis in
the sagittal plane, tilt positive anterior. Each segment's orientation is a rigid-body fit
(Kabsch/SVD: :func:`hipstride.pipeline.virtual_imu.kabsch`, the same as the virtual IMUs) of
its points to the same points standing:

* pelvis: ASIS, PSIS, sacrum, iliac crests (Plug-in Gait ``LASI``/``RPSI``/``SACR``/``VSAC``,
  ``L.ASIS``, Qualisys ``L_IAS``/``L_IPS``, ``l asis``) — both ASIS and 3 points in all;
* thigh: its cluster (``L.Thigh.*``, ``LTH1``..``LTH4``, ``LT1``..) and knee (``LKNE``,
  ``L.Knee``, ``L_FLE``); with fewer than 3 of them, plus the hip joint centre placed from the
  pelvis (Bell et al. 1990: from mid-ASIS, 19 % of the ASIS distance back, 30 % down, 36 %
  out), so that Plug-in Gait's thigh wand and knee make 3 points.

The lab frame is turned to x forward, y up (pelvis above feet), z right (along the ASIS line
standing).
Marker gaps up to :data:`FILL_MAX_S` are filled (linear); longer ones are left out and reported.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, filtfilt

from hipstride.pipeline.engine.data import Kinematics
from hipstride.pipeline.io.c3d_lab import Markers, side_of, vertical_axis
from hipstride.pipeline.io.rigid import hip_and_tilt, kabsch
from hipstride.pipeline.io.session import SessionInputError

FILL_MAX_S = 0.2
CUTOFF_HZ = 15.0
#: A standing second: every pelvis and thigh marker moves less than this (m/s).
STILL_SPEED_MPS = 0.05

_ASIS = re.compile(r"(?i)(^|[._ \-]|^[lr])(asi|asis|ias)$")
_PSIS = re.compile(r"(?i)(^|[._ \-]|^[lr])(psi|psis|ips)$")
_SACRUM = re.compile(r"(?i)^(sacr|sacrum|vsac|sacral)$")
_CREST = re.compile(r"(?i)(iliac|crest)")
_THIGH = re.compile(r"(?i)(thigh|thi$|^[lr]th\d$|^[lr]t\d$|fem)")
_KNEE = re.compile(r"(?i)(kne|knee|fle$|^[lr]k$)")


def pelvis_markers(names: list[str]) -> dict[str, list[str]]:
    """``{"asis_l": [...], "asis_r": [...], "back": [...], "crest": [...]}`` found."""
    out: dict[str, list[str]] = {"asis_l": [], "asis_r": [], "back": [], "crest": []}
    for m in names:
        core = re.sub(r"[._ \-]+", "", m)
        side = side_of(m)
        if _ASIS.search(m) or re.fullmatch(r"(?i)[lr](asi|asis|ias)", core):
            if side in ("l", "r"):
                out[f"asis_{side}"].append(m)
        elif _PSIS.search(m) or re.fullmatch(r"(?i)[lr](psi|psis|ips)", core) or \
                _SACRUM.match(core):
            out["back"].append(m)
        elif _CREST.search(m) and side:
            out["crest"].append(m)
    return out


def thigh_markers(names: list[str], side: str) -> list[str]:
    return [m for m in names if side_of(m) == side and (_THIGH.search(m) or _KNEE.search(m))
            and not _ASIS.search(m)]


def _fill(xyz: NDArray[np.float64], rate_hz: float) -> tuple[NDArray[np.float64], list[tuple[
        float, float]]]:
    """Short gaps interpolated and the whole low-passed; long gaps NaN, returned (s)."""
    x = xyz.copy()
    ok = np.isfinite(x).all(axis=1)
    if ok.sum() < 2:
        return np.full_like(x, np.nan), [(0.0, len(x) / rate_hz)]
    t = np.arange(len(x))
    filled = np.stack([np.interp(t, t[ok], x[ok, k]) for k in range(3)], axis=1)
    if len(x) > 12 and rate_hz / 2 > CUTOFF_HZ:
        b, a = butter(2, CUTOFF_HZ / (rate_hz / 2))
        filled = filtfilt(b, a, filled, axis=0)
    long_gaps = []
    edges = np.flatnonzero(np.diff(np.concatenate([[1], ok.astype(np.int8), [1]])))
    for a0, b0 in zip(edges[::2], edges[1::2], strict=True):
        if (b0 - a0) / rate_hz > FILL_MAX_S or a0 == 0 or b0 == len(x):
            filled[a0:b0] = np.nan
            long_gaps.append((a0 / rate_hz, b0 / rate_hz))
    return filled, long_gaps


def _hjc(asis_l: NDArray, asis_r: NDArray, back: NDArray, side: str) -> NDArray:
    """Hip joint centre (Bell et al. 1990) from mid-ASIS, per frame (…, 3)."""
    mid = (asis_l + asis_r) / 2
    right = asis_r - asis_l
    width = np.linalg.norm(right, axis=-1, keepdims=True)
    right = right / width
    fwd = mid - back
    fwd = fwd - np.sum(fwd * right, axis=-1, keepdims=True) * right
    fwd = fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)
    up = np.cross(right, fwd)
    lateral = 1.0 if side == "r" else -1.0
    return mid + width * (-0.19 * fwd - 0.30 * up + 0.36 * lateral * right)


def standing_reference(markers: Markers, names: list[str]) -> tuple[float, float] | None:
    """The first second in which every marker of ``names`` is still (file s), else None."""
    n = max(2, round(markers.rate_hz))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with every marker missing
        speed = np.nanmax([np.linalg.norm(np.gradient(markers.xyz[m], axis=0), axis=1)
                           * markers.rate_hz for m in names], axis=0)
    for i in range(0, markers.n_frames - n + 1, max(1, n // 4)):
        window = speed[i:i + n]
        if np.isfinite(window).all() and window.max() < STILL_SPEED_MPS:
            return markers.start_s + i / markers.rate_hz, markers.start_s + (i + n) / \
                markers.rate_hz
    return None


def marker_kinematics(markers: Markers, static: Markers | None, *, source: str
                      ) -> tuple[Kinematics | None, list[str]]:
    """Hip flexion per side and pelvic tilt from markers, or None with the reason."""
    names = list(markers.xyz)
    pel = pelvis_markers(names)
    problems: list[str] = []
    crests = {s: [m for m in pel["crest"] if side_of(m) == s] for s in "lr"}
    front = "ASIS"
    if not (pel["asis_l"] and pel["asis_r"]) and crests["l"] and crests["r"]:
        # Iliac crests stand in for the ASIS: the pelvis' orientation is as good (a rigid
        # fit), but no hip joint centre can be placed from them.
        pel = dict(pel, asis_l=crests["l"][:1], asis_r=crests["r"][:1],
                   crest=[m for m in pel["crest"] if m not in (crests["l"][0], crests["r"][0])])
        front = "iliac crests"
        problems.append(f"{source}: no ASIS markers: the pelvis is built on the iliac crests; "
                        "thighs need their own cluster of 3 markers")
    pelvis = pel["asis_l"][:1] + pel["asis_r"][:1] + pel["back"] + pel["crest"]
    missing = [k for k in ("asis_l", "asis_r") if not pel[k]]
    if missing or len(pelvis) < 3 or not pel["back"]:
        return None, [f"{source}: no marker angles: the pelvis needs left and right ASIS (or "
                      "iliac crests) and a PSIS or sacrum marker (found: "
                      + (", ".join(pelvis) or "none")
                      + "); name them in --map (e.g. 'LeftFrontHip=LASI')"]
    thighs = {s: thigh_markers(names, s) for s in "lr"}
    rate = markers.rate_hz
    used = pelvis + [m for s in "lr" for m in thighs[s]]
    if static is not None:
        absent = [m for m in used if m not in static.xyz]
        if absent:
            return None, [f"{source}: no marker angles: the static trial lacks "
                          f"{', '.join(absent)}"]
        ref = {m: np.nanmean(static.xyz[m], axis=0) for m in used}
        zero = "static trial"
    else:
        window = standing_reference(markers, used)
        if window is None:
            return None, [f"{source}: no marker angles: no static trial and no standing "
                          "second in the trial to take the zero from; pass --static FILE (the "
                          "athlete standing still, same markers)"]
        i0 = round((window[0] - markers.start_s) * rate)
        ref = {m: np.nanmean(markers.xyz[m][i0:i0 + round(rate)], axis=0) for m in used}
        zero = f"standing {window[0]:.1f}-{window[1]:.1f} s of the trial"
    unseen = [m for m in used if not np.isfinite(ref[m]).all()]
    if unseen:
        return None, [f"{source}: no marker angles: {', '.join(unseen)} not seen in the "
                      f"{zero}"]
    xyz = {}
    for m in used:
        xyz[m], gaps = _fill(markers.xyz[m], rate)
        problems += [f"marker {m}: gap {a + markers.start_s:.2f}-{b + markers.start_s:.2f} s "
                     f"longer than {FILL_MAX_S:g} s, not filled: no angles there"
                     for a, b in gaps if b - a < markers.n_frames / rate]
    frame = _lab_frame(markers, ref, pel)
    xyz = {m: v @ frame.T for m, v in xyz.items()}
    ref = {m: frame @ v for m, v in ref.items()}
    back = np.mean([xyz[m] for m in pel["back"]], axis=0)
    back_ref = np.mean([ref[m] for m in pel["back"]], axis=0)
    al, ar = pel["asis_l"][0], pel["asis_r"][0]
    segments = {"pelvis": (np.stack([xyz[m] for m in pelvis], axis=1),
                           np.stack([ref[m] for m in pelvis]))}
    for s in "lr":
        hjc = _hjc(xyz[al], xyz[ar], back, s)
        hjc_ref = _hjc(ref[al], ref[ar], back_ref, s)
        points = thighs[s]
        extra = [] if len(points) >= 3 else [hjc]  # a cluster is enough on its own
        extra_ref = [] if len(points) >= 3 else [hjc_ref]
        if len(points) + (1 if front == "ASIS" else 0) < 3:
            problems.append(f"no {'left' if s == 'l' else 'right'} hip angle from markers: the "
                            "thigh needs a cluster or a thigh and a knee marker (found: "
                            f"{', '.join(points) or 'none'})")
            continue
        segments[f"thigh_{s}"] = (np.stack([xyz[m] for m in points] + extra, axis=1),
                                  np.stack([ref[m] for m in points] + extra_ref))
    rotations, bad = {}, {}
    for seg, (cur, r) in segments.items():
        ok = np.isfinite(cur).all(axis=(1, 2))
        rot = np.tile(np.eye(3), (len(cur), 1, 1))
        if ok.any():
            rot[ok] = kabsch(r, cur[ok])
        rotations[seg] = rot
        bad[seg] = ~ok
    hip, tilt = hip_and_tilt(rotations)
    tilt[bad["pelvis"]] = np.nan
    for s in hip:
        hip[s][bad["pelvis"] | bad[f"thigh_{s}"]] = np.nan
    sagittal = {seg: np.degrees(np.arctan2(-r[:, 0, 1], r[:, 1, 1]))
                for seg, r in rotations.items()}
    kin = Kinematics(rate_hz=rate, start_s=markers.start_s, hip_flexion_deg=hip,
                     pelvic_tilt_deg=tilt, sagittal_deg=sagittal,
                     sagittal_rate_dps={k: np.gradient(v) * rate for k, v in sagittal.items()},
                     quality={"source": "markers", "zero": zero, "pelvis_front": front,
                              "markers": {k: v for k, v in pel.items() if v} |
                              {f"thigh_{s}": thighs[s] for s in "lr"}})
    return kin, problems


def _lab_frame(markers: Markers, ref: dict[str, NDArray], pel: dict[str, list[str]]
               ) -> NDArray[np.float64]:
    """Rows: forward, up and right unit vectors (lab coordinates): up from the feet to the
    pelvis, right along the left-to-right ASIS (or crest) line standing, forward = up × right."""
    up_axis = vertical_axis(markers)
    up = np.zeros(3)
    up[1 if up_axis is None else up_axis] = 1.0
    mid = (ref[pel["asis_l"][0]] + ref[pel["asis_r"][0]]) / 2
    feet = [m for m in markers.xyz if re.search(r"(?i)(hee|heel|toe|ank)", m)]
    if feet and np.dot(mid - np.nanmean([np.nanmean(markers.xyz[m], axis=0) for m in feet],
                                        axis=0), up) < 0:
        up = -up
    right = ref[pel["asis_r"][0]] - ref[pel["asis_l"][0]]  # the pelvis' own lateral axis
    right = right - np.dot(right, up) * up
    right /= np.linalg.norm(right)
    fwd = np.cross(up, right)
    if np.dot(fwd, mid - np.mean([ref[m] for m in pel["back"]], axis=0)) < 0:
        raise SessionInputError("the left and right pelvis markers look swapped (the right "
                                "one is on the left of the walking direction): check the "
                                "labels or --map")
    return np.stack([fwd, up, right])
