"""Read a ``.hsrec`` recording into a :class:`~hipstride.pipeline.io.session.SessionInput`.

Per stream: frames are de-duplicated by (epoch, seq) — at-least-once delivery records some
twice — ordered by seq within an epoch (epochs by their first timestamp), converted to physical
units by the stream description and to canonical units (mV, m/s², deg/s). Each frame is placed
on the stream's sample grid by its ``t0_ns``, so every stream keeps the wall-clock alignment the
edge agent gave it:

- a small step (≤ 10 ms) between frames contiguous in seq is the sample clock being re-anchored
  to the wall clock (or a few samples dropped at the sensor): forward steps are interpolated,
  backward steps drop the overlapping samples; both are summarised once per stream;
- a gap (missing seq, or a larger step) ≤ 100 ms is filled by linear interpolation, a longer
  one with NaN; each is reported with its session times;
- timestamps that go backwards any further are an error naming the stream and the frames.

A session recording from the pipeline usually starts while the runner is already running, so
it has no standing period; it carries the station engine's calibration (record kind 4). When
the standing check fails and the file has one, :attr:`SessionInput.calibration` is set (see
:func:`choose_calibration`) and ``hipstride analyze`` resumes the streaming engine from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from hipstride.csvformat import ACC_UNITS_TO_MS2, EMG_UNITS_TO_MV, GYR_UNITS_TO_DPS
from hipstride.frames import Frame
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.io.session import (
    INTERPOLATE_MAX_S,
    Gap,
    SessionInput,
    SessionInputError,
    assemble_session,
    standing_problems,
)
from hipstride.recording import RecordingError
from hipstride.recording import read_recording as read_hsrec
from hipstride.streams import EMG_STREAM, IMU_CHANNELS, IMU_SEGMENTS, StreamDescription

#: Steps between seq-contiguous frames up to this size are clock corrections, not gaps.
CLOCK_STEP_TOLERANCE_S = 0.010
#: Gaps listed one by one per stream; the rest are counted.
MAX_LISTED_GAPS = 10

_SKIPPED = {
    "emg": "EMG onsets and glute:hamstring ratios",
    "imu_pelvis": "pelvic tilt and hip angles",
    "imu_thigh_l": "left gait events, hip angles and ratios",
    "imu_thigh_r": "right gait events, hip angles and ratios",
    "imu_shank_l": "left gait events from the shank",
    "imu_shank_r": "right gait events from the shank",
}


def read_recording(path: str | Path, *, standing_s: float = 5.0) -> SessionInput:
    """Read a recording: the ``emg`` stream and the ``imu_<segment>`` streams.

    Parameters
    ----------
    path
        The ``.hsrec`` file.
    standing_s
        Length of the standing period at the start (s) that the static calibration uses;
        0 skips the check.

    Raises
    ------
    SessionInputError
        Unreadable file, timestamps going backwards, an unknown unit, data in an implausible
        unit, no standing period, or nothing to compute; the message says what to do.
    """
    path = Path(path)
    try:
        rec = read_hsrec(path)
    except (OSError, RecordingError) as err:
        raise SessionInputError(f"{path}: cannot read the recording: "
                                f"{getattr(err, 'strerror', None) or err}") from None
    problems = [f"{path.name}: {p}" for p in rec.problems]
    notes: list[str] = []
    by_stream: dict[str, list[Frame]] = defaultdict(list)
    for frame in rec.frames:
        by_stream[frame.stream].append(frame)
    for stream in sorted(set(by_stream) - set(rec.descriptions)):
        problems.append(f"stream {stream!r}: {len(by_stream[stream])} frame(s) without a stream "
                        "description were skipped (their units are unknown)")

    used: dict[str, tuple[StreamDescription, list[Frame]]] = {}
    stream_meta: dict[str, dict[str, Any]] = {}
    for stream, desc in rec.descriptions.items():
        wanted = (stream == EMG_STREAM and desc.kind == "emg") or (
            desc.kind == "imu" and stream.startswith("imu_") and stream[4:] in IMU_SEGMENTS)
        if not wanted:
            notes.append(f"stream {stream!r} ({desc.kind}) is not an input of the analysis; "
                         "ignored")
            continue
        frames, meta, stream_problems = _unique_frames(desc, by_stream.get(stream, []))
        problems += stream_problems
        stream_meta[stream] = meta
        if frames:
            used[stream] = (desc, frames)
        else:
            problems.append(f"stream {stream!r}: described but no usable frame recorded")

    if not used:
        raise SessionInputError(
            f"{path}: no EMG and no IMU frames found (streams described: "
            f"{', '.join(rec.descriptions) or 'none'}); a recording for analysis needs the "
            "'emg' stream and 'imu_<segment>' streams")
    origin_ns = min(frames[0].t0_ns for _, frames in used.values())

    emg: EmgData | None = None
    imus: dict[str, ImuData] = {}
    gaps: list[Gap] = []
    for stream, (desc, frames) in used.items():
        raw, start_s, stream_gaps, stream_problems = _assemble_stream(desc, frames, origin_ns)
        gaps += stream_gaps
        problems += stream_problems
        stream_meta[stream]["samples"] = len(raw)
        physical = desc.to_physical(raw)
        if desc.kind == "emg":
            physical *= np.array([_factor(EMG_UNITS_TO_MV, c.unit, stream, c.name)
                                  for c in desc.channels])
            signal = "envelope" if desc.extra.get("signal") == "envelope" else "raw"
            emg = EmgData(physical, desc.channel_names, float(desc.rate_hz), start_s, signal)
            continue
        index = [desc.channel_names.index(c) for c in IMU_CHANNELS if c in desc.channel_names]
        if len(index) != len(IMU_CHANNELS):
            problems.append(f"stream {stream!r}: channels {', '.join(desc.channel_names)}; an "
                            f"IMU needs {', '.join(IMU_CHANNELS)}: stream skipped")
            continue
        factors = [_factor(ACC_UNITS_TO_MS2 if c.startswith("acc") else GYR_UNITS_TO_DPS,
                           desc.channels[i].unit, stream, c)
                   for c, i in zip(IMU_CHANNELS, index, strict=True)]
        x = physical[:, index] * np.array(factors)
        if desc.mounting is None:
            problems.append(f"stream {stream!r}: no mounting in the description; the sensor "
                            "axes are taken as the segment's (identity)")
        mounting = np.eye(3) if desc.mounting is None else np.asarray(desc.mounting, float)
        imus[stream[4:]] = ImuData(stream[4:], x[:, :3], x[:, 3:], float(desc.rate_hz), start_s,
                                   mounting)
    imus = {seg: imus[seg] for seg in IMU_SEGMENTS if seg in imus}

    recorded: dict[str, Any] = {}
    for m in rec.metadata:
        if isinstance(m, dict):
            recorded.update(m)
    metadata = {
        "format": "hsrec",
        "path": str(path),
        "recording": recorded,
        "streams": stream_meta,
        "descriptions": {s: json.loads(d.to_json()) for s, d in rec.descriptions.items()},
        "notes": notes,
    }
    session = assemble_session(
        emg, imus, source=path.name, start_time_ns=origin_ns, problems=problems,
        metadata=metadata, gaps=tuple(gaps), standing_s=0.0,
        unit_advice="In a recording the units come from the stream description (channel unit "
                    "and scale): check the station's configuration of that sensor")
    calibrations = [c for c in rec.calibrations if c["state"].get("standing")]
    try:
        standing = standing_problems(session.imus, standing_s, source=path.name)
    except SessionInputError as err:
        if not calibrations:
            raise SessionInputError(
                f"{err}; or analyse the session recording the pipeline keeps "
                "(<recordings>/<station>/<station>-<session>.hsrec): it carries the station's "
                "calibration, used when the file has no standing period") from None
        chosen, notes = choose_calibration(calibrations)
        return dataclasses.replace(session, calibration=chosen,
                                   problems=session.problems + notes)
    return dataclasses.replace(session, problems=session.problems + standing)


def describe_calibration(record: dict[str, Any]) -> str:
    """``"made at 2024-05-01 10:02:03 UTC on station tm1"`` (words for the user)."""
    def when(ns: Any) -> str:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    station = record.get("station") or "?"
    if isinstance(record.get("made_ns"), int):
        made = f"made at {when(record['made_ns'])}"
    elif isinstance(record.get("data_ns"), int):
        made = f"in use at {when(record['data_ns'])}" + (
            " (resumed after a pipeline restart)" if record.get("resumed") else "")
    else:
        made = "made at an unknown time"
    return f"{made} on station {station}"


def choose_calibration(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The calibration to analyse a whole recording with, and notes for the user.

    ``records``: calibration records (:attr:`hipstride.recording.Recording.calibrations`,
    with a standing part), in file order. The first one is the station's calibration at the
    start of the recording. Its standing and MVC parts are used; when it holds a ``running``
    part (the engine was running), the ``running`` part and cue baseline of the latest record
    with the same standing and MVC calibration replace it: what the live engine learned later
    in the session (its completed relative EMG reference, tilt references) is what it used for
    most strides. A later record with a different standing or MVC calibration (recalibrated
    mid-session) is noted; the first is used for the whole file.
    """
    def key(record: dict[str, Any]) -> str:
        return json.dumps([record["state"].get("standing"), record["state"].get("mvc")],
                          sort_keys=True)

    first = records[0]
    same = [r for r in records if key(r) == key(first)]
    state = dict(first["state"])
    if state.get("running") is not None:
        for part in ("running", "baseline"):
            if same[-1]["state"].get(part) is not None:
                state[part] = same[-1]["state"][part]
    chosen = {**first, "state": state, "learned_until_ns": same[-1].get("data_ns")}
    notes = [f"the recording has no standing period: analysed with the station's calibration "
             f"from the recording ({describe_calibration(first)})"]
    if first.get("index"):
        notes.append(f"{first['index']} frame(s) were recorded before the first calibration "
                     "record; they are analysed with it too")
    changed = [r for r in records if key(r) != key(first)]
    if changed:
        notes.append(f"the station was calibrated again during the recording "
                     f"({describe_calibration(changed[0])}); this analysis uses the first "
                     "calibration for the whole file")
    return chosen, notes


def _factor(table: dict[str, float], unit: str, stream: str, channel: str) -> float:
    try:
        return table[unit]
    except KeyError:
        raise SessionInputError(
            f"stream {stream!r} channel {channel!r}: unit {unit!r} in the stream description "
            f"is not one HipStride converts ({', '.join(table)})") from None


def _unique_frames(desc: StreamDescription, frames: list[Frame]
                   ) -> tuple[list[Frame], dict[str, Any], list[str]]:
    """Frames of one stream, de-duplicated and in order; checked against the description."""
    problems: list[str] = []
    unique: dict[tuple[int, int], Frame] = {}
    duplicates = conflicting = mismatched = 0
    for f in frames:
        if f.n_channels != desc.n_channels or abs(f.rate_hz - desc.rate_hz) > 1e-9 * desc.rate_hz:
            mismatched += 1
            continue
        key = (f.epoch, f.seq)
        if key in unique:
            duplicates += 1
            if unique[key] != f:
                conflicting += 1
            continue
        unique[key] = f
    if mismatched:
        problems.append(f"stream {desc.stream!r}: {mismatched} frame(s) whose channel count or "
                        f"rate differ from the description ({desc.n_channels} channels, "
                        f"{desc.rate_hz:g} Hz) were skipped")
    if conflicting:
        problems.append(f"stream {desc.stream!r}: {conflicting} frame(s) share an (epoch, seq) "
                        "with a different frame; the first recorded was kept")
    epoch_start: dict[int, int] = {}
    for (epoch, _), f in unique.items():
        epoch_start[epoch] = min(epoch_start.get(epoch, f.t0_ns), f.t0_ns)
    ordered = [unique[k] for k in sorted(unique, key=lambda k: (epoch_start[k[0]], k[0], k[1]))]
    meta = {"frames": len(ordered), "duplicates": duplicates, "rate_hz": desc.rate_hz,
            "sensor": desc.sensor, "epochs": sorted(epoch_start)}
    return ordered, meta, problems


def _assemble_stream(desc: StreamDescription, frames: list[Frame], origin_ns: int
                     ) -> tuple[np.ndarray, float, list[Gap], list[str]]:
    """One uniform (n, channels) float64 array of raw values, its start_s, gaps, problems."""
    stream, rate = desc.stream, desc.rate_hz
    period_ns = 1e9 / rate
    first_ns = frames[0].t0_ns
    start_s = (first_ns - origin_ns) / 1e9
    pieces: list[np.ndarray] = []
    pos = 0  # samples placed so far
    gaps: list[Gap] = []
    lines: list[str] = []
    small_steps: list[float] = []  # signed ms of clock corrections
    prev: Frame | None = None
    for f in frames:
        x = np.asarray(f.samples, dtype=np.float64)
        if prev is not None:
            index = round((f.t0_ns - first_ns) / period_ns)
            step_s = (f.t0_ns - first_ns - pos * period_ns) / 1e9
            delta = index - pos
            contiguous = f.epoch == prev.epoch and f.seq == prev.seq + 1
            small = contiguous and abs(step_s) <= CLOCK_STEP_TOLERANCE_S
            at_s = start_s + pos / rate
            if delta < 0 and not small:
                raise SessionInputError(
                    f"stream {stream!r}: timestamps overlap or go backwards: frame seq {f.seq} "
                    f"(epoch {f.epoch}) starts {-step_s * 1e3:.1f} ms before the end of frame "
                    f"seq {prev.seq} (epoch {prev.epoch}), at t = {at_s:.3f} s. The recording "
                    "mixes two sessions or a clock was set back; split it at that point or "
                    "drop the stream")
            if delta < 0:
                small_steps.append(step_s * 1e3)
                x = x[-delta:]  # empty when the whole frame overlapped
            elif delta > 0:
                fill = _fill(pieces[-1][-1], x[0], delta)
                if small:
                    small_steps.append(step_s * 1e3)
                else:
                    gap = Gap(stream, at_s, at_s + delta / rate,
                              "interpolated" if delta / rate <= INTERPOLATE_MAX_S else "nan")
                    if gap.filled == "nan":
                        fill[:] = np.nan
                    gaps.append(gap)
                    if len(gaps) <= MAX_LISTED_GAPS:
                        lines.append(_gap_line(gap, prev, f))
                pieces.append(fill)
                pos += delta
            elif not contiguous and f.epoch == prev.epoch:
                lines.append(f"stream {stream!r}: seq jumps from {prev.seq} to {f.seq} at "
                             f"t = {at_s:.3f} s without a gap in time; samples kept as they are")
        if len(x):
            pieces.append(x)
            pos += len(x)
        prev = f
    if len(gaps) > MAX_LISTED_GAPS:
        rest = gaps[MAX_LISTED_GAPS:]
        lines.append(f"stream {stream!r}: {len(rest)} more gap(s), "
                     f"{sum(g.duration_s for g in rest) * 1e3:.0f} ms in all")
    if small_steps:
        worst = max(small_steps, key=abs)
        lines.append(f"stream {stream!r}: {len(small_steps)} timestamp step(s) of at most "
                     f"{CLOCK_STEP_TOLERANCE_S * 1e3:g} ms between consecutive frames (the "
                     f"sample clock re-anchored to the wall clock, or samples dropped at the "
                     f"sensor), largest {worst:+.1f} ms; forward steps interpolated, overlapping "
                     "samples dropped")
    samples = np.concatenate(pieces) if pieces else np.zeros((0, desc.n_channels))
    return samples, start_s, gaps, lines


def _fill(before: np.ndarray, after: np.ndarray, n: int) -> np.ndarray:
    """``n`` samples strictly between ``before`` and ``after`` on a straight line."""
    w = (np.arange(1, n + 1) / (n + 1))[:, None]
    return before[None, :] * (1 - w) + after[None, :] * w


def _gap_line(gap: Gap, prev: Frame, f: Frame) -> str:
    if f.epoch != prev.epoch:
        cause = f"the sequence epoch changed from {prev.epoch} to {f.epoch} (agent restart)"
    elif f.seq > prev.seq + 1:
        missing = f.seq - prev.seq - 1
        cause = (f"{missing} frame(s) missing, seq {prev.seq + 1}" +
                 (f"–{f.seq - 1}" if missing > 1 else ""))
    else:
        cause = "no frame missing: samples lost before framing"
    what = ("filled by linear interpolation" if gap.filled == "interpolated" else
            f"left as NaN (longer than {INTERPOLATE_MAX_S * 1e3:.0f} ms): strides overlapping it "
            f"get no {_SKIPPED.get(gap.stream, 'metrics from this stream')}")
    return (f"stream {gap.stream!r}: {gap.duration_s * 1e3:.0f} ms gap at t = "
            f"{gap.start_s:.3f}–{gap.end_s:.3f} s ({cause}), {what}")
