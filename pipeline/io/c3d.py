"""Read a C3D file's analog channels (EMG, IMU) into a
:class:`~hipstride.pipeline.io.session.SessionInput` with ``ezc3d``.

Analog channels are named by ``ANALOG:LABELS``; each label becomes a canonical name by an
explicit ``mapping`` first, then by :func:`recognise_label`:

- EMG: a muscle (``glute max``/``gluteus maximus``/``gmax``, ``biceps femoris``/``bf``,
  ``semitendinosus``/``st``, ``erector spinae``/``es``) and a side (``L``/``R``/``Left``/
  ``Right``, separate or glued: ``LGMAX``), anywhere in the label: ``Voltage.GluteMax_L``,
  ``L GMAX``, ``R Biceps Femoris: EMG 2``. Numbered labels (``EMG1``) need the mapping.
- IMU: an axis token ``ACC``/``GYRO`` (``ACCEL``, ``GYR``) + ``X``/``Y``/``Z`` — or Delsys'
  ``IM ACC Pitch/Roll/Yaw``, taken as x/y/z in that order — plus a segment (``pelvis``/
  ``sacrum``, ``thigh``/``femur``, ``shank``/``tibia``/``shin``, with a side) in the same label.
  A sensor named only by number (``Sensor 3: IM ACC Pitch``) needs the mapping
  ``{"Sensor 3": "thigh_l"}``.

Values come from ezc3d already scaled (``ANALOG:SCALE``, ``GEN_SCALE``, ``OFFSET``); units
from ``ANALOG:UNITS`` (EMG ``V``/``mV``/``uV``; accelerometer ``m/s^2``/``g``; gyroscope
``deg/s``/``rad/s``), overridable per kind. Every channel is at ``ANALOG:RATE``. IMU data are
in the sensor frame; the mounting is the identity unless given. Marker (point) data are
ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hipstride.csvformat import EMG_COLUMNS, IMU_COLUMNS
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.io.c3d_angles import marker_kinematics
from hipstride.pipeline.io.c3d_lab import (
    LabEvents,
    Markers,
    lab_events,
    markers_of,
    open_c3d,
    param,
)
from hipstride.pipeline.io.session import (
    SIDE_NAMES,
    SessionInput,
    SessionInputError,
    assemble_session,
    check_units,
)
from hipstride.streams import IMU_CHANNELS, IMU_SEGMENTS

G_MS2 = 9.80665
EMG_UNITS_TO_MV = {"v": 1e3, "mv": 1.0, "uv": 1e-3}
ACC_UNITS_TO_MS2 = {"m/s^2": 1.0, "m/s2": 1.0, "m/s/s": 1.0, "mm/s^2": 1e-3, "mm/s2": 1e-3,
                    "g": G_MS2, "mg": G_MS2 / 1000}
GYR_UNITS_TO_DPS = {"deg/s": 1.0, "dps": 1.0, "°/s": 1.0, "rad/s": 180.0 / np.pi}

_MUSCLES = {
    # French clinical labels too: GRF grand fessier (glute max), BIC biceps fémoral,
    # ISC ischio-jambiers (hamstrings, taken as the medial ones), semi-membraneux.
    "glute_max": r"glut(?:eus|eal|e|)\s?max(?:imus)?|gmax|grf|grand\s?fessier",
    "biceps_femoris": r"biceps\s?fem(?:oris|oral)?|bic\s?fem|bf|bic|"
                      r"lat(?:eral)?\s?ham(?:string)?s?",
    "semitendinosus": r"semi\s?ten(?:d(?:inosus)?)?|st|med(?:ial)?\s?ham(?:string)?s?|"
                      r"semi\s?mem(?:branosus|braneux)?|sm|isc|ischio(?:\s?jambiers?)?",
    "erector_spinae": r"erector(?:\s?spinae)?|es",
}
_SEGMENTS = {"pelvis": r"pelvis|pelvic|sacrum|sacral", "thigh": r"thigh|femur",
             "shank": r"shank|shin|tibia"}
_SIDES = {"l": "l", "lt": "l", "left": "l", "r": "r", "rt": "r", "right": "r"}
_AXIS = re.compile(r"(?:^|\s)(acc(?:el(?:erometer)?)?|gyr(?:o(?:scope)?)?)\s?"
                   r"(x|y|z|pitch|roll|yaw)(?=\s|\d|$)")
_AXIS_NAMES = {"pitch": "x", "roll": "y", "yaw": "z"}


def _words(label: str) -> str:
    """Lower-case words of a label: separators and camelCase boundaries become spaces."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", label)
    text = re.sub(r"([A-Z])([A-Z][a-z])", r"\1 \2", text)
    return " ".join(re.sub(r"[^0-9a-zA-Z]+", " ", text).lower().split())


def _sided(words: str, pattern: str) -> list[str | None]:
    """Side of every match of ``pattern``: a letter glued before it (``lgmax``), else the one
    side word elsewhere in the label (``l``, ``left``, ``lt`` ...); None when unknown."""
    sides: list[str | None] = []
    for m in re.finditer(rf"(?<![a-z0-9])([lr]?)(?:{pattern})(?![a-z])", words):
        if m.group(1):
            sides.append(m.group(1))
            continue
        others = {_SIDES[w] for w in (words[:m.start()] + " " + words[m.end():]).split()
                  if w in _SIDES}
        sides.append(others.pop() if len(others) == 1 else None)
    return sides


def imu_axis(label: str) -> tuple[str, str] | None:
    """(``"acc"`` | ``"gyr"``, ``"x"`` | ``"y"`` | ``"z"``) of an IMU channel label, else None."""
    m = _AXIS.search(_words(label))
    if m is None:
        return None
    kind = "acc" if m.group(1).startswith("acc") else "gyr"
    return kind, _AXIS_NAMES.get(m.group(2), m.group(2))


def recognise_label(label: str) -> str | None:
    """The canonical name of an analog label — ``glute_max_l`` or ``thigh_l_acc_x`` — if the
    label names it unambiguously (see the module docstring), else None."""
    words = _words(label)
    if not words:
        return None
    axis = imu_axis(label)
    if axis is not None:
        segment = _segment(words)
        return f"{segment}_{axis[0]}_{axis[1]}" if segment else None
    found = {f"{muscle}_{side}" for muscle, pattern in _MUSCLES.items()
             for side in _sided(words, pattern) if side}
    return found.pop() if len(found) == 1 else None


def _segment(words: str) -> str | None:
    found = {"pelvis"} if re.search(rf"(?<![a-z0-9])(?:{_SEGMENTS['pelvis']})(?![a-z])",
                                    words) else set()
    for segment in ("thigh", "shank"):
        found |= {f"{segment}_{side}" for side in _sided(words, _SEGMENTS[segment]) if side}
    return found.pop() if len(found) == 1 else None


def _key_matches(key: str, label: str) -> bool:
    """A sensor key (``Sensor 3``) names this label: found with no letter/digit glued on."""
    tail = r"(?!\d)" if key[-1:].isdigit() else r"(?![A-Za-z0-9])"
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}{tail}", label, re.IGNORECASE) is not None


def _sensor_key(label: str) -> str:
    """The part of an IMU axis label before the axis (``Sensor 2`` of ``Sensor 2: IM ACC X``)."""
    return re.split(r"(?i)(?:IM\s*)?(?:ACC|GYR)", label)[0].strip(" :_.-")


def _unit(value: str) -> str:
    return value.strip().replace("µ", "u").replace("μ", "u").replace("²", "^2")


def read_c3d(
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    mountings: Mapping[str, np.ndarray] | None = None,
    emg_unit: str | None = None,
    acc_unit: str | None = None,
    gyr_unit: str | None = None,
    standing_s: float = 5.0,
    static: str | Path | None = None,
) -> SessionInput:
    """Read EMG and IMU analog channels of a C3D file; without thigh/shank IMUs, also its
    gait events (force plates, EVENT section, markers) and hip/pelvis angles from markers.

    Parameters
    ----------
    path
        The ``.c3d`` file.
    mapping
        Analog label → canonical name, applied before the label recogniser. Targets: an EMG
        channel (``glute_max_l``), an IMU channel (``thigh_l_acc_x``), a segment
        (``thigh_l``: every ACC/GYRO axis label containing the key, e.g. ``"Sensor 3"``), or
        ``""`` to ignore the label.
    mountings
        Segment → 3x3 rotation, sensor frame → segment frame; identity when not given.
    emg_unit, acc_unit, gyr_unit
        Override ``ANALOG:UNITS`` for every channel of that kind (``"V"``, ``"mV"``, ``"uV"``;
        ``"m/s^2"``, ``"g"``; ``"deg/s"``, ``"rad/s"``).
    standing_s
        Length of the standing period at the start (s) for the static calibration; 0 skips
        the check.
    static
        A static trial (C3D, the athlete standing, same markers): the zero of the marker
        angles; without it, a still second in the trial.

    Raises
    ------
    SessionInputError
        Unreadable file, a bad mapping, no recognised EMG or IMU channel (listing the labels),
        unknown units, data in an implausible unit, no standing period, nothing to compute.
    """
    path = Path(path)
    c3d = open_c3d(path, force_plates=True)
    header = c3d["header"]
    point_rate = float(header["points"]["frame_rate"] or 0.0)
    first_frame = int(header["points"]["first_frame"])
    file_start_s = first_frame / point_rate if point_rate > 0 else 0.0
    markers = markers_of(c3d, start_s=file_start_s)
    full_mapping = dict(mapping or {})
    markers, mapping = rename_markers(markers, full_mapping)
    lab = lab_events(c3d, c3d, markers)
    found = _found(markers, lab)
    analog = c3d["parameters"]["ANALOG"]
    labels = [str(v).strip() for v in param(c3d, "ANALOG", "LABELS", [])]
    data = np.asarray(c3d["data"]["analogs"], dtype=np.float64)
    no_analogs = data.ndim != 3 or not labels or data.shape[1] == 0 or data.shape[2] < 2
    if no_analogs and lab.method:  # markers and events only: angles per stride
        return _lab_session(None, {}, lab, source=path.name, problems=list(lab.notes),
                            metadata={"format": "c3d", "path": str(path), "notes": []},
                            units={}, advice="", found=found, markers=markers,
                            static=static, start_s=file_start_s, labels=labels,
                            mapping=full_mapping)
    if no_analogs:
        raise SessionInputError(f"{path}: no analog channels (labels: {labels or 'none'}), so "
                                f"no EMG or IMU ({found}); HipStride reads EMG and IMUs from "
                                "the C3D's analog data: export the trial with its EMG")
    data = data[0].T  # (frames, channels)
    labels = labels[: data.shape[1]] + [f"channel {i + 1}" for i in range(len(labels),
                                                                         data.shape[1])]
    units = [_unit(str(v)) for v in analog["UNITS"]["value"]] if "UNITS" in analog else []
    units += [""] * (len(labels) - len(units))
    rate_hz = float((list(np.ravel(param(c3d, "ANALOG", "RATE", []))) or [0.0])[0])
    if not rate_hz > 0:
        raise SessionInputError(f"{path}: ANALOG:RATE is {rate_hz}; it must be the analog "
                                "sample rate in Hz")

    problems: list[str] = []
    notes: list[str] = []
    targets = _assign(labels, mapping or {}, problems, path)
    ignored = [lb for i, lb in enumerate(labels) if i not in targets]

    emg_idx = sorted((i for i, t in targets.items() if t in EMG_COLUMNS),
                     key=lambda i: EMG_COLUMNS.index(targets[i]))
    emg: EmgData | None = None
    if emg_idx:
        factors = [_factor(EMG_UNITS_TO_MV, emg_unit or units[i], labels[i], "emg_unit")
                   for i in emg_idx]
        x = data[:, emg_idx] * np.array(factors)
        finite = x[np.isfinite(x).all(axis=1)]
        rectified = len(finite) > 0 and bool((finite >= 0).all()) and bool(finite.any())
        emg = EmgData(x, tuple(targets[i] for i in emg_idx), rate_hz, file_start_s,
                      "envelope" if rectified else "raw")
        if rectified:
            problems.append("EMG channels are never negative: taken as already rectified "
                            "(an envelope), so not band-passed or checked against electrode "
                            "levels; onsets and ratios come from the file's own envelope")
    imus: dict[str, ImuData] = {}
    by_target = {t: i for i, t in targets.items()}
    for segment in IMU_SEGMENTS:
        present = [c for c in IMU_CHANNELS if f"{segment}_{c}" in by_target]
        if not present:
            continue
        if len(present) < len(IMU_CHANNELS):
            missing = [f"{segment}_{c}" for c in IMU_CHANNELS if c not in present]
            problems.append(f"segment {segment!r}: channels {', '.join(missing)} not found "
                            "(an IMU needs ACC and GYRO X/Y/Z); segment skipped")
            continue
        idx = [by_target[f"{segment}_{c}"] for c in IMU_CHANNELS]
        factors = [_factor(ACC_UNITS_TO_MS2, acc_unit or units[i], labels[i], "acc_unit")
                   if k < 3 else
                   _factor(GYR_UNITS_TO_DPS, gyr_unit or units[i], labels[i], "gyr_unit")
                   for k, i in enumerate(idx)]
        x = data[:, idx] * np.array(factors)
        mounting = np.eye(3) if not mountings or segment not in mountings else np.asarray(
            mountings[segment], dtype=float)
        imus[segment] = ImuData(segment, x[:, :3].copy(), x[:, 3:].copy(), rate_hz,
                                file_start_s, mounting)
    if emg is None and not imus and lab.method:
        return _lab_session(None, {}, lab, source=path.name, problems=problems + lab.notes,
                            metadata={"format": "c3d", "path": str(path), "notes": notes},
                            units={}, advice="", found=found, markers=markers,
                            static=static, start_s=file_start_s, labels=labels,
                            mapping=full_mapping)
    if emg is None and not imus:
        imu_like = [lb for lb in ignored if imu_axis(lb)]
        raise SessionInputError(
            f"{path}: no EMG or IMU channel recognised among the analog labels "
            f"{', '.join(map(repr, labels))} (the file has {found})"
            + (f" (IMU axes without a segment: {', '.join(map(repr, imu_like))})"
               if imu_like else "")
            + ". Give a mapping from label to canonical name, e.g. "
              "{'EMG1': 'glute_max_l', 'EMG2': 'glute_max_r', 'EMG3': 'biceps_femoris_l', "
              "'EMG4': 'biceps_femoris_r', 'Sensor 1': 'pelvis'} (docs/formats.md, C3D)")
    n_points = int(header["points"]["size"])
    if n_points and not (lab.method and not any(s.startswith(("thigh", "shank"))
                                                for s in imus)):
        notes.append(f"{n_points} marker trajectories (point data) ignored: with thigh or "
                     "shank IMUs, or without gait events, HipStride reads the analog channels "
                     "only")
    if ignored:
        notes.append(f"analog channels not used: {', '.join(ignored)}")
    unassigned = [lb for lb in ignored if imu_axis(lb)]
    if unassigned:
        sensors = dict.fromkeys(_sensor_key(lb) for lb in unassigned)
        example = ", ".join(f"{k!r}: '<segment>'" for k in sensors if k)
        problems.append("analog channels that look like IMU axes but name no segment were "
                        f"not used: {', '.join(unassigned)}; map each sensor to a segment "
                        f"(pelvis, thigh_l, thigh_r, shank_l, shank_r): "
                        f"{{{example or repr('<label prefix>') + ': ...'}}}")
    missing_emg = [c for c in EMG_COLUMNS[:4] if c not in (emg.channels if emg else ())]
    if missing_emg and ignored:
        problems.append(f"EMG {', '.join(missing_emg)} not found; unmapped analog labels: "
                        f"{', '.join(ignored)} (map them with mapping / --map)")
    metadata: dict[str, Any] = {
        "format": "c3d",
        "path": str(path),
        "analog_rate_hz": rate_hz,
        "labels": {labels[i]: t for i, t in targets.items()},
        "units": {labels[i]: units[i] for i in targets},
        "first_frame": first_frame,
        "point_rate_hz": point_rate,
        "notes": notes,
    }
    claimed = {"emg_unit": emg_unit or "the C3D's ANALOG:UNITS",
               "acc_unit": acc_unit or "the C3D's ANALOG:UNITS",
               "gyr_unit": gyr_unit or "the C3D's ANALOG:UNITS"}
    advice = "Override the file's units with emg_unit / acc_unit / gyr_unit (--emg-unit ...)"
    stride_imus = [s for s in imus if s.startswith(("thigh_", "shank_"))]
    if stride_imus or not lab.method:
        if not stride_imus and emg is not None:
            raise SessionInputError(
                f"{path}: EMG found ({', '.join(emg.channels)}) but no strides: no thigh or "
                f"shank IMU and no gait events in the file ({found}, no usable force-plate "
                "contacts or EVENT section). Strides need force plates, Foot Strike / Foot "
                "Off events, heel and toe markers with ASIS/PSIS, or thigh/shank IMUs: add "
                "the events in the lab's software and export again (docs/formats.md, C3D)")
        return assemble_session(
            emg, imus, source=path.name, start_time_ns=None, problems=problems,
            metadata=metadata, standing_s=standing_s, units=claimed, unit_advice=advice)
    return _lab_session(emg, imus, lab, source=path.name, problems=problems + lab.notes,
                        metadata=metadata, units=claimed, advice=advice, found=found,
                        markers=markers, static=static, start_s=file_start_s, labels=labels,
                        mapping=full_mapping)


#: Marker names a ``--map`` entry may give a lab's own marker label (Plug-in Gait's).
MARKER_NAMES = (*(f"{s}{m}" for s in "LR" for m in (
    "ASI", "PSI", "THI", "KNE", "HEE", "TOE", "ANK", "TH1", "TH2", "TH3", "TH4")), "SACR")


def rename_markers(markers: Markers, mapping: Mapping[str, str]
                   ) -> tuple[Markers, dict[str, str]]:
    """Apply the map's entries whose key is a marker label (to a name of
    :data:`MARKER_NAMES`); the other entries are returned for the analog channels."""
    by_fold = {m.casefold(): m for m in markers.xyz}
    renames, rest = {}, {}
    for key, target in mapping.items():
        label = by_fold.get(key.strip().casefold())
        if label is None:
            rest[key] = target
            continue
        if target.upper() not in MARKER_NAMES:
            raise SessionInputError(
                f"mapping {key!r} -> {target!r}: {key!r} is a marker, and marker targets are "
                f"{', '.join(MARKER_NAMES)} (Plug-in Gait names)")
        renames[label] = target.upper()
    if not renames:
        return markers, rest
    xyz = {renames.get(m, m): v for m, v in markers.xyz.items() if m not in renames}
    xyz.update({renames[m]: markers.xyz[m] for m in renames})
    return dataclasses.replace(markers, xyz=xyz), rest


def _found(markers: Markers, lab: LabEvents) -> str:
    """What the file holds besides analog EMG/IMU, in words."""
    parts = [f"{len(markers.xyz)} markers" if markers.xyz else "no markers"]
    parts += [f"{'left' if s == 'l' else 'right'} strides from {m}"
              for s, m in sorted(lab.method.items())]
    return ", ".join(parts)


def _lab_session(emg: EmgData | None, imus: dict[str, ImuData], lab: LabEvents, *,
                 source: str, problems: list[str], metadata: dict[str, Any],
                 units: dict[str, str], advice: str, found: str, markers: Markers,
                 static: str | Path | None, start_s: float, labels: list[str],
                 mapping: Mapping[str, str]) -> SessionInput:
    """A session whose strides come from the file's gait events (no thigh/shank IMU): EMG,
    marker angles, or both. No standing period is needed (no IMU to calibrate)."""
    static_markers = rename_markers(markers_of(open_c3d(static)), mapping)[0] if static \
        else None
    try:
        kinematics, notes = marker_kinematics(markers, static_markers, source=source)
    except (ValueError, np.linalg.LinAlgError) as err:
        if isinstance(err, SessionInputError):
            raise SessionInputError(f"{source}: {err}") from None
        kinematics, notes = None, [f"{source}: no marker angles: numerical failure ({err}); "
                                   "check the pelvis and thigh markers for long gaps"]
    if emg is None and kinematics is None:
        raise SessionInputError(
            f"{source}: gait events found ({found}) but no EMG channel recognised among the "
            f"analog labels {', '.join(map(repr, labels))}, and no hip angles from the "
            f"markers ({'; '.join(notes)}). Map the EMG labels with --map (e.g. "
            "'EMG 1=glute_max_l'), or give a static trial (--static FILE) "
            "(docs/formats.md, C3D)")
    origin = min([emg.start_s if emg is not None else start_s]
                 + [i.start_s for i in imus.values()])
    if emg is not None:
        emg = dataclasses.replace(emg, start_s=emg.start_s - origin)
        check_units(emg, imus, source=source, advice=advice, **units)
    imus = {s: dataclasses.replace(i, start_s=i.start_s - origin) for s, i in imus.items()}
    if kinematics is not None:
        kinematics = dataclasses.replace(kinematics, start_s=kinematics.start_s - origin)
    metadata = dict(metadata, file_time_s=origin, gait_method=dict(lab.method))
    problems = list(problems) + notes
    for side, name in SIDE_NAMES.items():
        if side not in lab.method:
            problems.append(f"no gait events on the {name} side: no {name} strides")
        for muscle in ("glute_max", "biceps_femoris"):
            if emg is not None and f"{muscle}_{side}" not in emg.channels:
                problems.append(f"no {muscle}_{side} EMG: no {name} "
                                + ("glute_onset_ms" if muscle == "glute_max"
                                   else "hamstring_onset_ms") + ", onset_lag_ms, "
                                "glute_ham_ratio")
    if emg is None:
        problems.append("no EMG: no onsets and no glute:hamstring ratio; kinematics only")
    elif kinematics is None:
        problems.append("no thigh IMU or marker angles: glute:hamstring ratios are taken over "
                        "the gait phase from late swing to toe-off, not between the hip's "
                        "peaks")
    return SessionInput(emg=emg, imus=imus, source=source, problems=problems,
                        metadata=metadata, events=lab.gait_events(origin),
                        kinematics=kinematics)


def _assign(labels: list[str], mapping: Mapping[str, str], problems: list[str], path: Path
            ) -> dict[int, str]:
    """Label index → canonical target, from the mapping and then the recogniser."""
    valid = set(EMG_COLUMNS) | set(IMU_COLUMNS) | set(IMU_SEGMENTS) | {""}
    for key, target in mapping.items():
        if target not in valid:
            close = difflib.get_close_matches(target, sorted(valid - {""}), n=1)
            raise SessionInputError(
                f"mapping {key!r} -> {target!r}: not a canonical name"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; targets are EMG channels ({', '.join(EMG_COLUMNS)}), IMU channels "
                  "(<segment>_<acc|gyr>_<x|y|z>), a segment (to map a whole sensor) or ''")
    targets: dict[int, str] = {}
    decided: set[int] = set()
    for key, target in mapping.items():
        hits = _label_hits(key, labels)
        if target in IMU_SEGMENTS:
            hits = [i for i, lb in enumerate(labels) if _key_matches(key.strip(), lb)
                    and imu_axis(lb)]
            for i in hits:
                kind, axis = imu_axis(labels[i])  # type: ignore[misc]
                targets[i] = f"{target}_{kind}_{axis}"
        else:
            for i in hits:
                if target:
                    targets[i] = target
        decided.update(hits)
        if not hits:
            problems.append(f"mapping entry {key!r} matched no analog label of {path.name}")
    for i, label in enumerate(labels):
        if i not in decided:
            name = recognise_label(label)
            if name is not None:
                targets[i] = name
    seen: dict[str, int] = {}
    for i, t in sorted(targets.items()):
        if t in seen:
            raise SessionInputError(
                f"{path}: analog labels {labels[seen[t]]!r} and {labels[i]!r} both map to "
                f"{t!r}; map one of them to another name or to '' (ignore)")
        seen[t] = i
    return targets


def _label_hits(key: str, labels: list[str]) -> list[int]:
    """Labels a mapping key names: the same text (any case); else the same after a vendor
    prefix (``Delsys: EMG 1`` for ``EMG 1``); else a label that is the key cut to the C3D's
    label width (16 or 32 characters)."""
    key = key.strip()
    exact = [i for i, lb in enumerate(labels) if lb == key] or [
        i for i, lb in enumerate(labels) if lb.casefold() == key.casefold()]
    if exact:
        return exact
    tail = [i for i, lb in enumerate(labels)
            if ":" in lb and lb.rsplit(":", 1)[1].strip().casefold() == key.casefold()]
    if tail:
        return tail
    return [i for i, lb in enumerate(labels)
            if len(lb) >= 12 and len(key) > len(lb) and key.casefold().startswith(lb.casefold())]


def _factor(table: Mapping[str, float], unit: str, label: str, key: str) -> float:
    factor = table.get(unit) or table.get(unit.lower())
    if factor is None:
        raise SessionInputError(
            f"analog channel {label!r}: unit {unit or '(none)'!r} is not one HipStride "
            f"converts ({', '.join(table)}); set {key} to the channel's real unit")
    return factor
