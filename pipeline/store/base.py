"""The store interface and its schema: what HipStride keeps, keyed so that writes are idempotent.

Every stored value is a *point*: a measurement, tags (low-cardinality identifiers), fields
(values) and a timestamp in integer nanoseconds since the Unix epoch. A point is identified by
(measurement, tags, time): writing it again replaces the fields it carries and leaves the others
(InfluxDB's own rule, mirrored by the SQLite store), so a re-sent batch changes nothing — the
"exactly once in the store" half of the delivery promise. Non-finite floats are never stored
(line protocol cannot carry NaN); they read back as NaN, missing strings and integers as None.

:class:`Store` turns the engine's outputs into points and query results back into rows; the
two implementations (:mod:`.influx`, :mod:`.sqlite`) only move points (:meth:`Store._write`,
:meth:`Store._select`, :meth:`Store._sum`). ``docs/schema.md`` documents the schema for outsiders.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from hipstride.jsonsafe import jsonable
from hipstride.pipeline.engine.schema import (
    EXTRA_COLUMNS,
    METRIC_COLUMNS,
    STRIDE_COLUMNS,
)

__all__ = [
    "CALIBRATION", "CUES", "FRAMES", "MEASUREMENTS", "PHE", "PROCESSED", "SCHEMA_VERSION",
    "SESSIONS", "STRIDES", "TIME_PRECISION", "FrameRecord", "Measurement", "Point",
    "PointBuilder", "PointSeries",
    "ProcessedSeries", "SessionMeta", "Store", "StoreError", "StoreRejected", "StoreSetupError",
    "StoreUnavailable", "StreamCount",
]

SCHEMA_VERSION = 1
#: Timestamps are integer nanoseconds since the Unix epoch, everywhere (2 kHz samples are 0.5 ms
#: apart: millisecond precision would merge them).
TIME_PRECISION = "ns"


# --- errors -------------------------------------------------------------------------------------
class StoreError(Exception):
    """Base class of store errors."""


class StoreUnavailable(StoreError):
    """The store cannot take writes now: spool and retry later (docs/pipeline.md, "Failure
    modes"). ``reason`` says why: ``"unreachable"`` (down, timing out, 5xx after retries),
    ``"database_missing"`` (no such database or bucket, e.g. dropped), ``"unauthorized"``
    (credentials refused or without write access: 401/403) or ``"not_found"`` (another 404)."""

    def __init__(self, message: str, reason: str = "unreachable") -> None:
        super().__init__(message)
        self.reason = reason


class StoreRejected(StoreError):
    """The store refused the request for its content (bad data, a field type conflict):
    retrying the same request will not help. ``status`` is the HTTP status (0 when there is
    none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class StoreSetupError(StoreError):
    """The store cannot be used as configured and the pipeline may not fix it (no database and
    no right to create it, credentials refused at start). The message says what to run."""


# --- schema -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """A measurement: its tags (identity, low cardinality) and its fields with their types."""

    name: str
    tags: tuple[str, ...]
    fields: Mapping[str, type]
    doc: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies a point: the tags and the time."""
        return (*self.tags, "time")


STRIDES = Measurement(
    "strides", ("station", "athlete", "session", "side"),
    {"stride_index": int, **dict.fromkeys(METRIC_COLUMNS + EXTRA_COLUMNS, float),
     "valid": bool, "normalization": str, "gait_method": str, "quality": str},
    "one point per stride and side; time = the stride's initial contact")
CUES = Measurement(
    "cues", ("station", "athlete", "session", "cue", "kind", "side", "channel"),
    {"level": str, "message": str, "stride_start_s": float, "evidence": str},
    "cue raise/clear events; time = initial contact of the stride that caused it")
PROCESSED = Measurement(
    "processed", ("station", "session", "stream", "channel"), {"value": float},
    "processed streams at <= 100 Hz (EMG envelopes in mV, angles in deg); one point per "
    "sample and channel")
FRAMES = Measurement(
    "frames", ("station", "stream"),
    {"epoch": int, "seq": int, "n_samples": int, "rate_hz": float, "session": str},
    "index of the raw frames kept; time = the frame's first sample (t0_ns)")
SESSIONS = Measurement(
    "sessions", ("station", "athlete", "session"),
    {"state": str, "end_ns": int, "label": str, "meta": str},
    "session metadata; time = session start; state 'open' or 'closed'")
CALIBRATION = Measurement(
    "calibration", ("athlete", "kind"),
    {"state": str, "version": int, "station": str, "session": str},
    "an athlete's calibration state (JSON) by kind: standing, mvc, baseline")
PHE = Measurement(
    "phe", ("station", "athlete", "session", "side"),
    {"repetition": int, "movement_onset_s": float, "hold_start_s": float,
     "lower_start_s": float, "lower_end_s": float, "lift_deg": float, "detection_s": float,
     "glute_onset_ms": float, "hamstring_onset_ms": float, "erector_onset_ms": float,
     "glute_ham_lag_ms": float, "pelvic_tilt_deg": float, "pelvic_rotation_deg": float,
     "pelvic_flag": bool, "order": str, "channel_onsets_ms": str},
    "prone hip extension test, one point per repetition; time = movement onset")
MEASUREMENTS: tuple[Measurement, ...] = (STRIDES, CUES, PROCESSED, FRAMES, SESSIONS,
                                         CALIBRATION, PHE)


@dataclass(frozen=True)
class Point:
    """One point. ``tags`` values are strings (None/"" = absent); ``fields`` hold only values
    to store (use :meth:`make`, which coerces types and drops NaN and None)."""

    measurement: Measurement
    time_ns: int
    tags: Mapping[str, str]
    fields: Mapping[str, Any]

    @classmethod
    def make(cls, m: Measurement, time_ns: int, tags: Mapping[str, Any],
             fields: Mapping[str, Any]) -> Point | None:
        """A checked point, or None when it has no storable field."""
        unknown = (set(tags) - set(m.tags)) | (set(fields) - set(m.fields))
        if unknown:
            raise ValueError(f"{m.name}: unknown tag/field(s) {sorted(unknown)}")
        clean_tags = {}
        for k, v in tags.items():
            if v is None or v == "":
                continue
            v = str(v)
            if "\n" in v or "\r" in v:
                raise ValueError(f"{m.name}: tag {k} contains a line break: {v!r}")
            clean_tags[k] = v
        clean = {}
        for k, v in fields.items():
            v = _coerce(m.fields[k], v)
            if v is not None:
                clean[k] = v
        if not clean:
            return None
        return cls(m, int(time_ns), clean_tags, clean)


@dataclass(frozen=True)
class PointSeries:
    """Many points of one measurement that share their tags and carry one float field, as
    two arrays: a batch of processed samples costs a few objects instead of one
    :class:`Point` per sample. Stored exactly as the points of :meth:`points` would be (same
    key, same value); use :meth:`make`, which checks the tags and drops non-finite values."""

    measurement: Measurement
    tags: Mapping[str, str]
    field: str
    time_ns: np.ndarray  # int64
    values: np.ndarray  # float64, all finite

    @classmethod
    def make(cls, m: Measurement, tags: Mapping[str, Any], field: str, time_ns: Any,
             values: Any) -> PointSeries | None:
        """A checked series, or None when no value is finite."""
        if m.fields.get(field) is not float:
            raise ValueError(f"{m.name}: {field!r} is not a float field")
        template = Point.make(m, 0, tags, {field: 0.0})
        t = np.asarray(time_ns, dtype=np.int64).reshape(-1)
        v = np.asarray(values, dtype=float).reshape(-1)
        if len(t) != len(v):
            raise ValueError(f"{m.name}: {len(t)} times for {len(v)} values")
        keep = np.isfinite(v)
        if not keep.all():
            t, v = t[keep], v[keep]
        if not len(t):
            return None
        return cls(m, template.tags, field, t, v)

    def __len__(self) -> int:
        return len(self.time_ns)

    def points(self) -> list[Point]:
        """The same data as individual points."""
        return [Point(self.measurement, t, self.tags, {self.field: v})
                for t, v in zip(self.time_ns.tolist(), self.values.tolist(), strict=True)]


def count_points(items: Iterable[Point | PointSeries | None]) -> int:
    """Points in a list of points and series."""
    return sum(len(p) if isinstance(p, PointSeries) else 1 for p in items if p is not None)


def expand_points(items: Iterable[Point | PointSeries | None]) -> list[Point]:
    """Series replaced by their points (None entries dropped)."""
    out: list[Point] = []
    for p in items:
        if isinstance(p, PointSeries):
            out += p.points()
        elif p is not None:
            out.append(p)
    return out


def _coerce(kind: type, value: Any) -> Any:
    if value is None:
        return None
    if kind is float:
        value = float(value)
        return value if math.isfinite(value) else None
    if kind is int:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return int(value)
    if kind is bool:
        return bool(value)
    return str(value)


# --- row types ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameRecord:
    """One raw frame kept by the pipeline (its samples are in the recording)."""

    stream: str
    epoch: int
    seq: int
    t0_ns: int
    n_samples: int
    rate_hz: float
    session: str | None = None

    @classmethod
    def from_frame(cls, frame: Any, session: str | None = None) -> FrameRecord:
        """From a decoded :class:`hipstride.frames.Frame`."""
        return cls(frame.stream, frame.epoch, frame.seq, frame.t0_ns, frame.n_samples,
                   frame.rate_hz, session)


class StreamCount(NamedTuple):
    """Frames and samples stored for one (station, stream)."""

    frames: int
    samples: int


@dataclass(frozen=True)
class SessionMeta:
    """A session: where, who, when (ns), an optional label and free JSON-ready metadata."""

    session: str
    station: str
    athlete: str | None
    start_ns: int
    end_ns: int | None = None
    label: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessedSeries:
    """A processed stream: ``values[i, j]`` is channel ``j`` at ``time_ns[i]`` (NaN = none)."""

    stream: str
    channels: tuple[str, ...]
    time_ns: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.time_ns)


def _time(origin_ns: int, t_s: Any, what: str) -> int:
    t = float(t_s)
    if not math.isfinite(t):
        raise ValueError(f"{what}: time is not finite ({t_s!r}); cannot key the point")
    return int(origin_ns) + round(t * 1e9)


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


# --- the interface ------------------------------------------------------------------------------
class Store(ABC):
    """Where the pipeline keeps everything; see the module docstring for the semantics.

    Writes take whole batches, are synchronous and idempotent: when one raises
    :class:`StoreUnavailable`, keep the batch (spool it) and send it again later — points that
    did arrive are simply overwritten by themselves. Session times (``stride_start_s`` …) are
    seconds from ``origin_ns``, the wall-clock time of session time 0.
    """

    kind = "abstract"

    # backend -------------------------------------------------------------------------------
    @abstractmethod
    def _write(self, points: Sequence[Point | PointSeries]) -> None:
        """Store points and series (idempotent upsert by measurement, tags and time)."""

    @abstractmethod
    def _select(self, m: Measurement, where: Mapping[str, str | Sequence[str]],
                start_ns: int | None = None, end_ns: int | None = None) -> list[dict[str, Any]]:
        """Points of ``m`` with tags equal to ``where`` (a sequence = any of), in
        ``[start_ns, end_ns)``, as dicts of ``time`` (ns), tags and fields (missing = None)."""

    @abstractmethod
    def _sum(self, m: Measurement, value: str, by: tuple[str, ...],
             where: Mapping[str, str | Sequence[str]], start_ns: int | None = None,
             end_ns: int | None = None) -> dict[tuple[str, ...], tuple[int, int]]:
        """Per group of ``by`` tags: (number of points, sum of field ``value``)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the store answers."""

    @abstractmethod
    def version(self) -> str:
        """The server's (or library's) version string."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. Writes are synchronous: nothing is pending."""

    def ensure_database(self, *, create: bool = True) -> str:
        """Check that writes can go in; create the database when it is missing and
        ``create`` (and the account may). Returns what was found: ``"exists"`` or
        ``"created"``. Raises :class:`StoreSetupError` (what to run) or
        :class:`StoreUnavailable`. A store that makes its own database (SQLite) has nothing to
        do."""
        return "exists"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def select(self, m: Measurement, where: Mapping[str, str | Sequence[str]] | None = None,
               start_ns: int | None = None, end_ns: int | None = None) -> list[dict[str, Any]]:
        """Raw points in time order (then by tags): the generic read behind the others."""
        where = {k: v for k, v in (where or {}).items() if v is not None}
        bad = set(where) - set(m.tags)
        if bad:
            raise ValueError(f"{m.name}: can only filter on tags {m.tags}, not {sorted(bad)}")
        rows = self._select(m, where, start_ns, end_ns)
        rows.sort(key=lambda r: (r["time"], *(r.get(t) or "" for t in m.tags)))
        return rows

    def write_points(self, points: Iterable[Point | PointSeries | None]) -> int:
        """Write prepared points and series (None entries skipped); returns how many points
        were sent."""
        batch = [p for p in points if p is not None]
        if batch:
            self._write(batch)
        return count_points(batch)

    # writes --------------------------------------------------------------------------------
    def write_strides(self, station: str, session: str, athlete: str | None,
                      rows: Iterable[Mapping[str, Any]], *, origin_ns: int = 0) -> int:
        """Stride rows (``schema.STRIDE_COLUMNS`` dicts); time = origin + ``stride_start_s``."""
        points = []
        for row in rows:
            fields = {k: row.get(k) for k in STRIDE_COLUMNS if k != "side"}
            points.append(Point.make(
                STRIDES, _time(origin_ns, row["stride_start_s"], "stride"),
                {"station": station, "athlete": athlete, "session": session,
                 "side": row["side"]}, fields))
        return self.write_points(points)

    def write_cues(self, station: str, session: str, athlete: str | None,
                   events: Iterable[Mapping[str, Any]], *, origin_ns: int = 0) -> int:
        """Cue events (``CueEvent.to_dict()``); time = origin + ``stride_start_s``."""
        points = []
        for ev in events:
            points.append(Point.make(
                CUES, _time(origin_ns, ev["stride_start_s"], "cue"),
                {"station": station, "athlete": athlete, "session": session, "cue": ev["cue"],
                 "kind": ev["kind"], "side": ev.get("side"), "channel": ev.get("channel")},
                {"level": ev.get("level"), "message": ev.get("message"),
                 "stride_start_s": ev["stride_start_s"],
                 "evidence": _dumps(ev.get("evidence") or {})}))
        return self.write_points(points)

    def write_processed(self, station: str, session: str | None, stream: str, t0_ns: int,
                        rate_hz: float, channels: Sequence[str], values: Any) -> int:
        """A block of a processed stream: ``values`` (n, channels), sample ``i`` at
        ``t0_ns + round(i * 1e9 / rate_hz)``. NaN samples are not stored."""
        x = np.asarray(values, dtype=float)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if x.ndim != 2 or x.shape[1] != len(channels):
            raise ValueError(f"processed {stream}: values of shape {x.shape} for "
                             f"{len(channels)} channels")
        if not 0 < rate_hz <= 100_000:
            raise ValueError(f"processed {stream}: rate {rate_hz} Hz outside (0, 100 kHz]")
        times = int(t0_ns) + np.round(np.arange(len(x)) * (1e9 / rate_hz)).astype(np.int64)
        base = {"station": station, "session": session, "stream": stream}
        return self.write_points(
            PointSeries.make(PROCESSED, {**base, "channel": ch}, "value", times, x[:, j])
            for j, ch in enumerate(channels))

    def write_frame_index(self, station: str, frames: Iterable[FrameRecord]) -> int:
        """Index entries of raw frames kept; key (station, stream, t0_ns)."""
        return self.write_points(
            Point.make(FRAMES, f.t0_ns, {"station": station, "stream": f.stream},
                       {"epoch": f.epoch, "seq": f.seq, "n_samples": f.n_samples,
                        "rate_hz": f.rate_hz, "session": f.session})
            for f in frames)

    def write_session(self, meta: SessionMeta) -> None:
        """Create or update a session (e.g. again with ``end_ns`` when it stops: a label or meta
        left out keeps the stored one)."""
        self.write_points([Point.make(
            SESSIONS, meta.start_ns,
            {"station": meta.station, "athlete": meta.athlete, "session": meta.session},
            {"state": "open" if meta.end_ns is None else "closed", "end_ns": meta.end_ns,
             "label": meta.label,
             "meta": _dumps(meta.meta) if meta.meta else None})])

    def write_calibration(self, athlete: str, time_ns: int, state: Mapping[str, Any], *,
                          station: str | None = None, session: str | None = None) -> int:
        """An athlete's calibration (``StreamingEngine.calibration_state()``): one point per
        non-empty kind (``standing``, ``mvc``, ``baseline``), the state as JSON."""
        points = []
        for kind, value in state.items():
            if value is None:
                continue
            version = value.get("version", 1) if isinstance(value, Mapping) else 1
            points.append(Point.make(
                CALIBRATION, time_ns, {"athlete": athlete, "kind": kind},
                {"state": _dumps(value),
                 "version": version, "station": station, "session": session}))
        return self.write_points(points)

    def write_phe(self, station: str, session: str, athlete: str | None,
                  repetitions: Iterable[Mapping[str, Any]], *, origin_ns: int = 0) -> int:
        """Prone hip extension repetitions (``PheResult.to_dict()["repetitions"]``)."""
        points = []
        for i, rep in enumerate(repetitions):
            fields = {k: rep.get(k) for k in PHE.fields
                      if k not in ("repetition", "order", "channel_onsets_ms")}
            fields["repetition"] = rep.get("repetition", i)
            fields["order"] = ",".join(rep.get("order") or ())
            fields["channel_onsets_ms"] = _dumps(rep.get("channel_onsets_ms") or {})
            points.append(Point.make(
                PHE, _time(origin_ns, rep["movement_onset_s"], "PHE repetition"),
                {"station": station, "athlete": athlete, "session": session,
                 "side": rep["side"]}, fields))
        return self.write_points(points)

    # reads ---------------------------------------------------------------------------------
    def sessions(self, *, athlete: str | None = None, station: str | None = None,
                 start_ns: int | None = None, end_ns: int | None = None) -> list[SessionMeta]:
        """Sessions that started in ``[start_ns, end_ns)``, oldest first."""
        rows = self.select(SESSIONS, {"athlete": athlete, "station": station}, start_ns, end_ns)
        return [_session(r) for r in rows]

    def session(self, session: str, *, station: str | None = None) -> SessionMeta | None:
        """One session by id (the latest start if the id was reused); ids are unique per
        station only, so give ``station`` to get that station's."""
        rows = self.select(SESSIONS, {"session": session, "station": station})
        return _session(rows[-1]) if rows else None

    def strides(self, session: str, *, station: str | None = None, side: str | None = None
                ) -> list[dict[str, Any]]:
        """Stride rows of a session in time order: ``STRIDE_COLUMNS`` (NaN for metrics not
        stored) plus ``time_ns``, ``station``, ``athlete``, ``session``."""
        out = []
        for r in self.select(STRIDES, {"session": session, "station": station, "side": side}):
            row: dict[str, Any] = {"time_ns": r["time"], "station": r.get("station"),
                                   "athlete": r.get("athlete"), "session": r.get("session"),
                                   "side": r.get("side")}
            for k in STRIDE_COLUMNS[1:]:
                v = r.get(k)
                row[k] = _nan(v) if STRIDES.fields[k] is float else v
            out.append(row)
        return out

    def cues(self, session: str, *, station: str | None = None, cue: str | None = None
             ) -> list[dict[str, Any]]:
        """Cue events of a session in time order (``CueEvent.to_dict()`` keys + ``time_ns``)."""
        return [{"time_ns": r["time"], "station": r.get("station"), "athlete": r.get("athlete"),
                 "session": r.get("session"), "cue": r.get("cue"), "kind": r.get("kind"),
                 "side": r.get("side"), "level": r.get("level"), "message": r.get("message"),
                 "stride_start_s": _nan(r.get("stride_start_s")), "channel": r.get("channel"),
                 "evidence": json.loads(r.get("evidence") or "{}")}
                for r in self.select(CUES, {"session": session, "station": station,
                                            "cue": cue})]

    def processed(self, station: str, stream: str, start_ns: int | None = None,
                  end_ns: int | None = None, *, session: str | None = None,
                  channels: Sequence[str] | None = None) -> ProcessedSeries:
        """A processed stream in ``[start_ns, end_ns)``; channels sorted unless given."""
        where: dict[str, Any] = {"station": station, "stream": stream, "session": session}
        if channels is not None:
            where["channel"] = list(channels)
        rows = self.select(PROCESSED, where, start_ns, end_ns)
        names = tuple(channels) if channels is not None else tuple(
            sorted({r["channel"] for r in rows}))
        times = np.array(sorted({r["time"] for r in rows}), dtype=np.int64)
        values = np.full((len(times), len(names)), np.nan)
        col = {c: j for j, c in enumerate(names)}
        if len(rows):
            idx = np.searchsorted(times, np.array([r["time"] for r in rows], dtype=np.int64))
            for i, r in zip(idx.tolist(), rows, strict=True):
                if r.get("value") is not None:
                    values[i, col[r["channel"]]] = r["value"]
        return ProcessedSeries(stream, names, times, values)

    def frame_index(self, station: str, stream: str, start_ns: int | None = None,
                    end_ns: int | None = None) -> list[FrameRecord]:
        """Frames kept for one stream, by first-sample time: the basis of gap reports."""
        return [FrameRecord(r["stream"], r.get("epoch"), r.get("seq"), r["time"],
                            r.get("n_samples"), _nan(r.get("rate_hz")), r.get("session"))
                for r in self.select(FRAMES, {"station": station, "stream": stream},
                                     start_ns, end_ns)]

    def sample_counts(self, *, station: str | None = None, start_ns: int | None = None,
                      end_ns: int | None = None) -> dict[tuple[str, str], StreamCount]:
        """Frames and samples kept per (station, stream), from the frame index."""
        sums = self._sum(FRAMES, "n_samples", ("station", "stream"),
                         {"station": station} if station else {}, start_ns, end_ns)
        return {k: StreamCount(int(n), int(s)) for k, (n, s) in sorted(sums.items())}

    def calibration(self, athlete: str, *, before_ns: int | None = None
                    ) -> dict[str, Any] | None:
        """The latest calibration of each kind at or before ``before_ns``:
        ``{kind: state, ..., "time_ns": {kind: ns}}``, or None when there is none."""
        end = None if before_ns is None else before_ns + 1
        latest: dict[str, dict[str, Any]] = {}
        for r in self.select(CALIBRATION, {"athlete": athlete}, None, end):
            latest[r["kind"]] = r  # rows come in time order: the last one wins
        if not latest:
            return None
        out: dict[str, Any] = {k: json.loads(r["state"]) for k, r in latest.items()}
        out["time_ns"] = {k: r["time"] for k, r in latest.items()}
        return out

    def phe(self, session: str, *, station: str | None = None, side: str | None = None
            ) -> list[dict[str, Any]]:
        """PHE repetitions of a session in time order (``PheResult.to_dict()`` repetition keys
        with NaN for onsets not found, plus ``time_ns`` and ``repetition``); session ids are
        unique per station only, so give ``station``."""
        out = []
        for r in self.select(PHE, {"session": session, "station": station, "side": side}):
            rep: dict[str, Any] = {"time_ns": r["time"], "side": r.get("side")}
            for k, kind in PHE.fields.items():
                v = r.get(k)
                rep[k] = _nan(v) if kind is float else v
            rep["order"] = [m for m in (r.get("order") or "").split(",") if m]
            rep["channel_onsets_ms"] = {k: _nan(v) for k, v in
                                        json.loads(r.get("channel_onsets_ms") or "{}").items()}
            out.append(rep)
        return out


class PointBuilder(Store):
    """The schema's point making without a database: write with the usual methods
    (``write_strides``, ``write_calibration`` …), then take :attr:`points` (e.g. to batch
    them with other writes, or spool them). Reading raises."""

    kind = "points"

    def __init__(self) -> None:
        self.points: list[Point | PointSeries] = []

    def _write(self, points: Sequence[Point | PointSeries]) -> None:
        self.points.extend(points)

    def _select(self, m: Measurement, where: Mapping[str, Any], start_ns: int | None = None,
                end_ns: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError("a PointBuilder only makes points")

    def _sum(self, m: Measurement, value: str, by: tuple[str, ...], where: Mapping[str, Any],
             start_ns: int | None = None, end_ns: int | None = None) -> dict:
        raise NotImplementedError("a PointBuilder only makes points")

    def ping(self) -> bool:
        return True

    def version(self) -> str:
        return "points"

    def close(self) -> None:
        pass


def _session(r: Mapping[str, Any]) -> SessionMeta:
    return SessionMeta(session=r["session"], station=r["station"], athlete=r.get("athlete"),
                       start_ns=r["time"], end_ns=r.get("end_ns"), label=r.get("label"),
                       meta=json.loads(r.get("meta") or "{}"))


def _dumps(value: Any) -> str:
    """Compact, key-sorted, strict JSON (a string field)."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
