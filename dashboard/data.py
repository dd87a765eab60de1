"""The dashboard's data layer: the store named by ``HIPSTRIDE_STORE``, read through the
:class:`~hipstride.pipeline.store.Store` interface, cached, and turned into tables.

Two halves. The loaders (:func:`connect`, :func:`load_sessions`, :func:`load_strides`,
:func:`load_cues`) talk to the store, are cached by Streamlit, and turn every store problem into
a :class:`DataProblem` — a title and a hint in plain words for the page to show instead of a
traceback. The rest are pure functions over rows (the store's dicts) that build what the pages
show: labels, per-side summaries, findings, per-stride frames, comparisons and progress.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from hipstride.config import ConfigError, env
from hipstride.pipeline import report
from hipstride.pipeline.engine.schema import CUES, STRIDE_COLUMNS, SUMMARY_METRICS
from hipstride.pipeline.engine.summary import summarise
from hipstride.pipeline.store import (
    SessionMeta,
    Store,
    StoreError,
    StoreUnavailable,
    StoreURL,
    open_store,
)

__all__ = [
    "ALL_ATHLETES", "HEADLINE_METRICS", "SIDES", "SIDE_NAMES", "STORE_ENV", "DataProblem",
    "Headline", "athlete_name", "athletes", "compare_table", "connect", "cue_periods_frame",
    "findings", "headline", "load_calibration", "load_cues", "load_phe", "load_processed",
    "load_sessions", "load_strides", "metric_label",
    "normalization", "open_checked", "per_stride_frame", "progress_frame", "session_end_s",
    "session_label", "session_medians", "sessions_for", "store_url", "strides_csv",
    "strides_table", "summary",
]

STORE_ENV = "HIPSTRIDE_STORE"
#: The athlete picker's entry for every athlete.
ALL_ATHLETES = "All athletes"
SIDES = report.SIDES
SIDE_NAMES = {"l": "Left", "r": "Right"}
#: The four numbers a runner looks at first, in the order they are shown.
HEADLINE_METRICS = ("glute_ham_ratio", "peak_hip_extension_deg", "peak_anterior_tilt_deg",
                    "cadence_spm")
#: Whether a larger value is better (+1), worse (-1) or neither (0): colours the deltas.
DIRECTION = {"glute_ham_ratio": 1, "peak_hip_extension_deg": 1, "peak_anterior_tilt_deg": -1,
             "cadence_spm": 0}
CACHE_TTL_S = 30  # an open session grows: re-read it at most this often
INFLUX_TIMEOUT_S = 3.0


# --- problems, in plain words -------------------------------------------------------------------
@dataclass(eq=False)
class DataProblem(Exception):
    """Something the user must be told in plain words: ``title`` says what, ``hint`` what to do.

    ``retry`` is True when trying again later may help (the store is down or busy)."""

    title: str
    hint: str = ""
    retry: bool = False

    def __str__(self) -> str:
        return f"{self.title} {self.hint}".strip()


def no_store() -> DataProblem:
    """The problem of a dashboard started without a store."""
    return DataProblem(
        "No store is configured.",
        f"Start the dashboard with `hipstride dashboard --store URL` (or set {STORE_ENV}), "
        "e.g. `--store sqlite:///hipstride.db` or `--store influx://user@host:8086/hipstride`.")


def store_url() -> str | None:
    """The store URL from the environment (``HIPSTRIDE_STORE``), or None."""
    return env("STORE")


def open_checked(url: str | None) -> Store:
    """Open the store ``url`` names, or raise :class:`DataProblem` saying what is wrong.

    Unlike the pipeline, the dashboard only reads: a SQLite file that does not exist is an
    error here (opening it would create an empty store and hide a wrong path)."""
    if not url:
        raise no_store()
    try:
        parsed = StoreURL.parse(url)
    except ConfigError as err:
        raise DataProblem("The store address is not valid.", str(err)) from None
    if parsed.kind == "sqlite" and parsed.path != ":memory:" and not Path(parsed.path).exists():
        raise DataProblem(
            f"There is no store at {Path(parsed.path).resolve()}.",
            "Check the --store path, or start the pipeline (or `hipstride demo`) so it creates "
            "the store and records a session.")
    try:
        return open_store(parsed, timeout_s=INFLUX_TIMEOUT_S)
    except ImportError as err:
        raise DataProblem("InfluxDB support is not installed.",
                          f"Install it with `pip install influxdb-client` ({err}).") from None
    except StoreError as err:
        raise _problem(err) from None


def _problem(err: Exception) -> DataProblem:
    if isinstance(err, StoreUnavailable):
        return DataProblem("The store cannot be reached right now.",
                           f"Is the database running and reachable? ({err})", retry=True)
    return DataProblem("The store refused the request.", str(err))


# --- cached loaders -------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def connect(url: str | None) -> Store:
    """The store for ``url``, opened once per dashboard process (failures are not cached)."""
    return open_checked(url)


def _read(url: str | None, read: Any) -> Any:
    store = connect(url)
    try:
        return read(store)
    except StoreError as err:
        raise _problem(err) from None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_sessions(url: str | None) -> list[SessionMeta]:
    """Every session in the store, oldest first."""
    return _read(url, lambda s: s.sessions())


# Session ids are unique per station only: every session read names its station too, or a
# session would show another station's (another athlete's) strides under the same id.
@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_strides(url: str | None, station: str, session: str) -> list[dict[str, Any]]:
    """A session's stride rows in time order (``Store.strides``)."""
    return _read(url, lambda s: s.strides(session, station=station))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_cues(url: str | None, station: str, session: str) -> list[dict[str, Any]]:
    """A session's cue events in time order (``Store.cues``)."""
    return _read(url, lambda s: s.cues(session, station=station))


# --- sessions -------------------------------------------------------------------------------------
def athlete_name(athlete: str | None) -> str:
    return athlete or "(no athlete)"


def athletes(sessions: Iterable[SessionMeta]) -> list[str]:
    """Athlete names for the picker, sorted; sessions without one as "(no athlete)"."""
    return sorted({athlete_name(s.athlete) for s in sessions}, key=str.lower)


def sessions_for(sessions: Iterable[SessionMeta], athlete: str = ALL_ATHLETES
                 ) -> list[SessionMeta]:
    """The athlete's sessions (all for :data:`ALL_ATHLETES`), newest first."""
    chosen = [s for s in sessions if athlete == ALL_ATHLETES or athlete_name(s.athlete) == athlete]
    return sorted(chosen, key=lambda s: s.start_ns, reverse=True)


def local_time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9).astimezone()


def session_label(meta: SessionMeta, *, with_athlete: bool = True) -> str:
    """"Tue 4 Mar 2025, 18:02 · 32 min · treadmill-1 · Anna · intervals" for the picker."""
    start = local_time(meta.start_ns)
    parts = [f"{start:%a} {start.day} {start:%b %Y, %H:%M}"]
    if meta.end_ns is None:
        parts.append("open")
    else:
        parts.append(report.fmt_duration((meta.end_ns - meta.start_ns) / 1e9))
    parts.append(meta.station)
    if with_athlete:
        parts.append(athlete_name(meta.athlete))
    if meta.label:
        parts.append(meta.label)
    return " · ".join(parts)


def session_end_s(rows: Sequence[Mapping[str, Any]], meta: SessionMeta | None = None) -> float:
    """Session length (s): the end of the last stride, else the session's own end, else NaN."""
    ends = [r["stride_start_s"] + r["stride_time_s"] for r in rows
            if _finite(r.get("stride_start_s")) and _finite(r.get("stride_time_s"))]
    if ends:
        return float(max(ends))
    if meta is not None and meta.end_ns is not None:
        return (meta.end_ns - meta.start_ns) / 1e9
    return float("nan")


# --- strides: table and export --------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool) and math.isfinite(value))


def strides_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Stride rows as a table with exactly ``STRIDE_COLUMNS`` (in that order)."""
    return pd.DataFrame([{k: r.get(k) for k in STRIDE_COLUMNS} for r in rows],
                        columns=list(STRIDE_COLUMNS))


def strides_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The strides as CSV, exactly like ``hipstride analyze``'s ``strides.csv``: the columns of
    ``STRIDE_COLUMNS``, floats to 4 decimals, empty where a metric is missing."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STRIDE_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in STRIDE_COLUMNS})
    return out.getvalue().encode("utf-8")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if not math.isfinite(value) else round(float(value), 4)
    return value


# --- summary and words ----------------------------------------------------------------------------
def metric_label(metric: str) -> tuple[str, str, int]:
    """(label, unit, decimals) of a metric, as the report shows it."""
    return report.METRICS.get(metric, (metric, "", 2))


def normalization(rows: Iterable[Mapping[str, Any]]) -> str:
    """"mvc", "relative", or "" when no stride carries EMG normalisation."""
    found = {r.get("normalization") for r in rows if r.get("valid") and r.get("normalization")}
    if not found:
        return ""
    return "mvc" if found == {"mvc"} else "relative"


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-side statistics and symmetry of the valid strides (as in ``summary.json``)."""
    clean = [{**r, "valid": bool(r.get("valid"))} for r in rows if r.get("side") in SIDES]
    return summarise(clean)


@dataclass(frozen=True)
class Headline:
    """One headline metric: side means, symmetry index and how to show them."""

    metric: str
    label: str
    unit: str
    decimals: int
    sides: dict[str, float]
    si_pct: float | None

    def text(self, side: str) -> str:
        """The side's value with its unit ("8.1°", "161 steps/min"); "—" when unknown."""
        return report.fmt_num(self.sides.get(side), self.decimals, self.unit)

    def short(self, side: str) -> str:
        """The value for a big number: the unit only when it is a symbol (° or %)."""
        unit = self.unit if self.unit in ("°", "%") else ""
        return report.fmt_num(self.sides.get(side), self.decimals, unit)

    @property
    def title(self) -> str:
        """The label, with a word unit that :meth:`short` leaves out: "Cadence (steps/min)"."""
        return f"{self.label} ({self.unit})" if self.unit not in ("", "°", "%") else self.label

    @property
    def si_text(self) -> str:
        return ("—" if self.si_pct is None
                else report.fmt_num(self.si_pct, 0, "%", signed=True))


def headline(stats: Mapping[str, Any], norm: str = "mvc") -> list[Headline]:
    """The headline metrics of a summary, per side, with their symmetry index."""
    si = report.symmetry_values(stats, HEADLINE_METRICS)
    out = []
    for metric in HEADLINE_METRICS:
        label, unit, decimals = metric_label(metric)
        if metric == "glute_ham_ratio" and norm == "relative":
            label += " (relative)"
        out.append(Headline(metric, label, unit, decimals, report.side_means(stats, metric),
                            si.get(metric)))
    return out


def findings(rows: Sequence[Mapping[str, Any]], cues: Sequence[Mapping[str, Any]],
             stats: Mapping[str, Any] | None = None) -> list[str]:
    """Plain-words observations, worded exactly as in the ``hipstride analyze`` report."""
    stats = summary(rows) if stats is None else stats
    valid = sum(((stats.get("sides") or {}).get(s) or {}).get("strides", 0) for s in SIDES)
    if not valid:
        return ["No valid running strides in this session, so no metrics could be computed."]
    norm = normalization(rows)
    extension = report.side_means(stats, "peak_hip_extension_deg")
    out = []
    ratio = report.side_means(stats, "glute_ham_ratio")
    if norm or ratio:
        out.append(report.ratio_sentence(ratio, norm or "relative"))
    else:
        out.append("No EMG in this session: the glute:hamstring ratio was not measured.")
    out.append(report.extension_sentence(extension))
    out.append(report.tilt_sentence(report.side_means(stats, "peak_anterior_tilt_deg"), extension))
    sided = [s for s in SIDES if ((stats.get("sides") or {}).get(s) or {}).get("strides")]
    if len(sided) < 2:
        out.append("Only one side was measured, so left and right could not be compared.")
    else:
        metrics = [m for m in report.SYMMETRY_FINDING_METRICS
                   if not (m == "glute_ham_ratio" and norm != "mvc")]
        out.append(report.symmetry_sentence(report.symmetry_values(stats, metrics)))
    end_s = session_end_s(rows)
    out.append(report.cue_sentence(report.cue_periods(cues, end_s), end_s))
    return out


# --- per-stride and cue frames --------------------------------------------------------------------
def time_scale(end_s: float) -> tuple[float, str]:
    """(divisor, axis title): minutes for sessions over two minutes, else seconds."""
    return (60.0, "Session time (min)") if _finite(end_s) and end_s > 120 else (
        1.0, "Session time (s)")


def per_stride_frame(rows: Sequence[Mapping[str, Any]], metric: str, *, window: int = 15
                     ) -> pd.DataFrame:
    """Valid strides' ``metric`` over session time, per side, with a rolling median.

    Columns: ``time`` (min or s, see :func:`time_scale`), ``side`` ("Left"/"Right"), ``value``,
    ``trend`` (centred rolling median of ``window`` strides), ``stride_index``."""
    scale, _ = time_scale(session_end_s(rows))
    parts = []
    for side in SIDES:
        picked = [r for r in rows if r.get("side") == side and r.get("valid")
                  and _finite(r.get(metric)) and _finite(r.get("stride_start_s"))]
        if not picked:
            continue
        values = np.array([r[metric] for r in picked], dtype=float)
        parts.append(pd.DataFrame({
            "time": np.array([r["stride_start_s"] for r in picked], dtype=float) / scale,
            "side": SIDE_NAMES[side], "value": values,
            "trend": report.rolling_median(values, window),
            "stride_index": [r.get("stride_index") for r in picked]}))
    if not parts:
        return pd.DataFrame(columns=["time", "side", "value", "trend", "stride_index"])
    return pd.concat(parts, ignore_index=True)


def cue_periods_frame(cues: Sequence[Mapping[str, Any]], end_s: float) -> pd.DataFrame:
    """When each cue was active: ``cue`` (plain words, with the side), ``level``, ``start``,
    ``end`` (in the unit of :func:`time_scale`) and ``duration`` (text)."""
    scale, _ = time_scale(end_s)
    records = []
    for p in report.cue_periods(cues, end_s):
        words = CUES.get(p.cue, p.cue)
        where = f" ({SIDE_NAMES[p.side].lower()})" if p.side in SIDE_NAMES else ""
        extra = f" — {p.channel}" if p.channel else ""
        records.append({"cue": f"{words}{where}{extra}", "level": p.level,
                        "start": p.start_s / scale, "end": max(p.end_s, p.start_s) / scale,
                        "duration": "under 1 s" if p.duration_s < 0.5
                        else report.fmt_duration(p.duration_s)})
    return pd.DataFrame(records, columns=["cue", "level", "start", "end", "duration"])


# --- comparing and progress -----------------------------------------------------------------------
def compare_table(a: Mapping[str, Any], b: Mapping[str, Any], *,
                  metrics: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Side means of two summaries side by side: ``metric``, ``side``, ``a``, ``b`` and
    ``change`` (= a − b, so with ``a`` the newer session a positive change is an increase)."""
    records = []
    for metric in metrics:
        label, unit, _ = metric_label(metric)
        ma, mb = report.side_means(a, metric), report.side_means(b, metric)
        for side in SIDES:
            va, vb = ma.get(side, math.nan), mb.get(side, math.nan)
            records.append({"metric": f"{label} ({unit})" if unit else label,
                            "key": metric, "side": SIDE_NAMES[side], "a": va, "b": vb,
                            "change": va - vb})
    return pd.DataFrame(records, columns=["metric", "key", "side", "a", "b", "change"])


def session_medians(rows: Sequence[Mapping[str, Any]],
                    metrics: Sequence[str] = HEADLINE_METRICS) -> dict[tuple[str, str], float]:
    """(metric, side) → median over the session's valid strides (NaN when none)."""
    out = {}
    for metric in metrics:
        for side in SIDES:
            values = np.array([r.get(metric) for r in rows if r.get("side") == side
                               and r.get("valid")], dtype=float)
            values = values[np.isfinite(values)]
            out[(metric, side)] = float(np.median(values)) if len(values) else math.nan
    return out


def progress_frame(sessions: Sequence[tuple[SessionMeta, Sequence[Mapping[str, Any]]]],
                   metrics: Sequence[str] = HEADLINE_METRICS) -> pd.DataFrame:
    """Per-session medians over time: one row per session, metric and side with ``date``
    (local, tz-naive for charting), ``week`` (ISO "2025-W10"), ``session``, ``metric``,
    ``side``, ``median``, ``normalization`` and ``strides`` (valid ones on that side)."""
    records = []
    for meta, rows in sessions:
        when = local_time(meta.start_ns)
        norm = normalization(rows)
        medians = session_medians(rows, metrics)
        for (metric, side), value in medians.items():
            if not math.isfinite(value):
                continue
            iso = when.isocalendar()
            records.append({
                "date": when.replace(tzinfo=None), "week": f"{iso.year}-W{iso.week:02d}",
                "session": meta.session, "metric": metric, "side": SIDE_NAMES[side],
                "median": value, "normalization": norm or "none",
                "strides": sum(1 for r in rows if r.get("side") == side and r.get("valid"))})
    return pd.DataFrame(records, columns=["date", "week", "session", "metric", "side",
                                          "median", "normalization", "strides"])


# --- calibration, prone test and processed streams ------------------------------------------------
@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_calibration(url: str | None, athlete: str) -> dict[str, Any] | None:
    """The athlete's latest stored calibration of each kind (``Store.calibration``)."""
    return _read(url, lambda s: s.calibration(athlete))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_phe(url: str | None, station: str, session: str) -> list[dict[str, Any]]:
    """A session's prone hip extension repetitions (``Store.phe``)."""
    return _read(url, lambda s: s.phe(session, station=station))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_processed(url: str | None, station: str, stream: str, start_ns: int,
                   end_ns: int | None, session: str) -> Any:
    """A processed stream of a session in ``[start_ns, end_ns)`` (``Store.processed``)."""
    return _read(url, lambda s: s.processed(station, stream, start_ns, end_ns, session=session))
