"""Review: a past session's summary, strides, cues and export; comparison; progress.

Runs as a Streamlit page (``st.navigation`` in ``app.py``) or on its own (``AppTest``). Every
store problem is shown as a plain message, never a traceback.
"""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from hipstride.config import env
from hipstride.dashboard import auth, charts, data, ensembles
from hipstride.dashboard.safe import md
from hipstride.pipeline import report
from hipstride.pipeline.engine.schema import SUMMARY_METRICS
from hipstride.pipeline.store import SessionMeta

PROGRESS_WEEKS = {"Last 4 weeks": 4, "Last 12 weeks": 12, "Last 26 weeks": 26,
                  "Last year": 52, "Everything": None}
#: ``st.metric(delta_arrow=)`` is recent: without it, "no change" keeps Streamlit's arrow.
ARROW_OPTION = "delta_arrow" in inspect.signature(st.metric).parameters
PROGRESS_MAX_SESSIONS = 60  # the newest ones, so the tab stays quick on a long history
NORMALIZATION_TEXT = {"mvc": "EMG normalised to maximal contractions (MVC)",
                      "relative": "EMG relative to this session (no MVC calibration): "
                                  "ratios compare strides within the session only",
                      "": "no EMG"}


def show_problem(problem: data.DataProblem) -> None:
    """A store problem in plain words, with a retry button when waiting may help."""
    st.error(f"**{problem.title}**\n\n{problem.hint}" if problem.hint else problem.title,
             icon=":material/error:")
    if problem.retry:
        st.button("Try again", key="retry")


def _fmt_delta(value: float, decimals: int, unit: str, direction: int) -> str | None:
    """A change for ``st.metric``: an ASCII sign (it picks the arrow from it), the unit, and
    "better"/"worse" in words, so nobody has to tell green from red."""
    if not math.isfinite(value):
        return None
    if float(f"{value:.{decimals}f}") == 0:
        return "no change"
    text = f"{value:+.{decimals}f}"
    text = f"{text}{unit}" if unit in ("°", "%", "") else f"{text} {unit}"
    if direction:
        text += " · better" if value * direction > 0 else " · worse"
    return text


def _file_name(meta: SessionMeta) -> str:
    start = data.local_time(meta.start_ns)
    who = re.sub(r"[^A-Za-z0-9_-]+", "-", meta.athlete or "session").strip("-") or "session"
    return f"{who}_{start:%Y-%m-%d_%H%M}_strides.csv"


def key(meta: SessionMeta) -> tuple[str, str]:
    """A session's identity: session ids are unique per station only."""
    return (meta.station, meta.session)


# --- sections -----------------------------------------------------------------------------------
def pick_session(sessions: Sequence[SessionMeta]) -> SessionMeta:
    """Athlete and session pickers; returns the chosen session."""
    names = data.athletes(sessions)
    left, right = st.columns([1, 3])
    athlete = left.selectbox("Athlete", [data.ALL_ATHLETES, *names], key="athlete",
                             index=1 if len(names) == 1 else 0)
    chosen = data.sessions_for(sessions, athlete)
    by_id = {key(s): s for s in chosen}
    session_id = right.selectbox(
        f"Session ({len(chosen)}, newest first)", list(by_id), key="session",
        format_func=lambda sid: data.session_label(
            by_id[sid], with_athlete=athlete == data.ALL_ATHLETES))
    return by_id[session_id]


def session_header(meta: SessionMeta, rows: Sequence[dict[str, Any]]) -> None:
    valid = sum(1 for r in rows if r.get("valid"))
    norm = data.normalization(rows)
    text, button = st.columns([3, 1], vertical_alignment="bottom")
    start = data.local_time(meta.start_ns)
    length = ("still open" if meta.end_ns is None
              else report.fmt_duration((meta.end_ns - meta.start_ns) / 1e9))
    with text:
        st.subheader(f"{md(data.athlete_name(meta.athlete))} — {start:%a} {start.day} "
                     f"{start:%b %Y, %H:%M}" + (f" · {md(meta.label)}" if meta.label else ""),
                     anchor=False)
        facts = [length, f"station {md(meta.station)}"]
        if rows:
            facts += [f"{valid} valid strides of {len(rows)}", NORMALIZATION_TEXT.get(norm, norm)]
        st.caption(" · ".join(facts))
    button.download_button(
        "Download strides (CSV)", data.strides_csv(rows), file_name=_file_name(meta),
        mime="text/csv", key="export", icon=":material/download:", disabled=not rows,
        width="stretch",
        help="One row per stride and side, the columns of `hipstride analyze`'s strides.csv")


def summary_section(rows: Sequence[dict[str, Any]], cues: Sequence[dict[str, Any]]) -> None:
    stats = data.summary(rows)
    norm = data.normalization(rows)
    heads = data.headline(stats, norm)
    for column, head in zip(st.columns(len(heads)), heads, strict=True):
        with column.container(border=True):
            st.markdown(f"**{head.title}**")
            left, right = st.columns(2)
            left.metric("Left ●", head.short("l"))
            right.metric("Right ▲", head.short("r"))
            st.caption(f"Symmetry index: {head.si_text}",
                       help="(R − L) / mean × 100 %. Positive: more on the right. "
                            "Over 10 % is worth a look, over 15 % counts as asymmetry.")
    st.markdown("\n".join(f"- {line}" for line in data.findings(rows, cues, stats)))


def strides_section(rows: Sequence[dict[str, Any]]) -> None:
    norm = data.normalization(rows)
    _, time_title = data.time_scale(data.session_end_s(rows))
    shown = ["glute_ham_ratio", "peak_hip_extension_deg"]
    extra = st.selectbox("Also show", [m for m in SUMMARY_METRICS if m not in shown],
                         index=[m for m in SUMMARY_METRICS if m not in shown].index(
                             "peak_anterior_tilt_deg"),
                         format_func=lambda m: data.metric_label(m)[0], key="extra_metric")
    for metric in (*shown, extra):
        frame = data.per_stride_frame(rows, metric)
        label = data.metric_label(metric)[0]
        reference = {"glute_ham_ratio": f"; dotted line: typical (≥ {report.RATIO_TYPICAL:.1f})"
                     if norm == "mvc" else "",
                     "peak_hip_extension_deg": "; grey band: typical in running (9–10°)"}
        st.markdown(f"**{label}** — every valid stride, and the median of 15 strides"
                    + reference.get(metric, ""))
        if frame.empty:
            st.info(f"No {label.lower()} values in this session's valid strides.")
            continue
        st.altair_chart(charts.stride_chart(frame, metric, time_title, normalization=norm),
                        width="stretch")


def cues_section(rows: Sequence[dict[str, Any]], cues: Sequence[dict[str, Any]],
                 meta: SessionMeta) -> None:
    end_s = data.session_end_s(rows, meta)
    periods = data.cue_periods_frame(cues, end_s)
    if periods.empty:
        st.success("No coaching cues were raised in this session.")
        return
    scale, time_title = data.time_scale(end_s)
    st.altair_chart(charts.cue_timeline(periods, time_title, end_s / scale), width="stretch")
    st.dataframe(periods.rename(columns={"cue": "Cue", "level": "Level", "start": "From",
                                         "end": "To", "duration": "For"}),
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.1f")
                                for c in ("From", "To")})


def table_section(rows: Sequence[dict[str, Any]]) -> None:
    table = data.strides_table(rows)
    st.caption("One row per stride and side, with the columns of the CSV export (and of "
               "`hipstride analyze`'s strides.csv). Rejected strides have valid = False.")
    st.dataframe(table, hide_index=True, width="stretch", height=420,
                 column_config={c: st.column_config.NumberColumn(c, format="%.2f")
                                for c in table.columns if table[c].dtype.kind == "f"})


def compare_section(meta: SessionMeta, rows: Sequence[dict[str, Any]],
                    sessions: Sequence[SessionMeta], url: str | None) -> None:
    others = [s for s in data.sessions_for(sessions) if key(s) != key(meta)]
    if not others:
        st.info("There is no other session to compare with yet.")
        return
    same = [s for s in others if s.athlete == meta.athlete]
    older = [s for s in same if s.start_ns < meta.start_ns]
    default = (older or same or others)[0]
    by_id = {key(s): s for s in (same + [s for s in others if s not in same])}
    other_id = st.selectbox("Compare with", list(by_id), index=list(by_id).index(
        key(default)), key="compare_with", format_func=lambda sid: data.session_label(
        by_id[sid]))
    other = by_id[other_id]
    try:
        other_rows = data.load_strides(url, other.station, other.session)
    except data.DataProblem as problem:
        show_problem(problem)
        return
    if not other_rows:
        st.info("That session has no strides to compare.")
        return
    a, b = data.summary(rows), data.summary(other_rows)
    st.caption(f"This session against {md(data.session_label(other, with_athlete=False))}. "
               "Under each number: the change since that session, and whether it is better.")
    table = data.compare_table(a, b)
    heads = data.headline(a, data.normalization(rows))
    for column, head in zip(st.columns(len(heads)), heads, strict=True):
        with column.container(border=True):
            st.markdown(f"**{head.title}**")
            direction = data.DIRECTION[head.metric]
            colour = "normal" if direction > 0 else "inverse" if direction < 0 else "off"
            for side, name, mark in (("l", "Left", "●"), ("r", "Right", "▲")):
                change = table[(table["key"] == head.metric) & (table["side"] == name)]
                delta = float(change["change"].iloc[0]) if len(change) else math.nan
                change_text = _fmt_delta(delta, head.decimals, head.unit, direction)
                same = change_text == "no change"
                st.metric(f"{name} {mark}", head.short(side), change_text,
                          delta_color="off" if same else colour,
                          **({"delta_arrow": "off"} if same and ARROW_OPTION else {}))
    if data.normalization(rows) != data.normalization(other_rows):
        st.warning("The two sessions normalise EMG differently (MVC vs relative): their "
                   "glute:hamstring ratios do not compare.")
    with st.expander("Every metric"):
        st.dataframe(
            table.drop(columns="key").rename(columns={
                "metric": "Metric", "side": "Side", "a": "This session", "b": "Other",
                "change": "Change"}),
            hide_index=True, width="stretch",
            column_config={c: st.column_config.NumberColumn(c, format="%.2f")
                           for c in ("This session", "Other", "Change")})


def progress_section(meta: SessionMeta, sessions: Sequence[SessionMeta],
                     url: str | None) -> None:
    who = md(data.athlete_name(meta.athlete))
    span = st.selectbox("Period", list(PROGRESS_WEEKS), index=1, key="progress_weeks")
    weeks = PROGRESS_WEEKS[span]
    mine = [s for s in data.sessions_for(sessions) if s.athlete == meta.athlete]
    if weeks is not None:
        newest = max(s.start_ns for s in mine)
        mine = [s for s in mine if s.start_ns >= newest - weeks * 7 * 86_400 * 10**9]
    mine = mine[:PROGRESS_MAX_SESSIONS]
    if len(mine) < 2:
        st.info(f"{who} has {len(mine)} session in this period: progress shows from the "
                "second session on.")
        return
    try:
        loaded = [(s, data.load_strides(url, s.station, s.session)) for s in reversed(mine)]
    except data.DataProblem as problem:
        show_problem(problem)
        return
    frame = data.progress_frame(loaded)
    st.caption(f"{who}: the median of each session ({len(mine)} sessions), per side. Hollow "
               "points: ratios without MVC calibration, which do not compare between sessions.")
    if frame.empty:
        st.info("None of these sessions has valid strides yet.")
        return
    metrics = list(data.HEADLINE_METRICS)
    for pair in (metrics[:2], metrics[2:]):
        for column, metric in zip(st.columns(2), pair, strict=True):
            with column:
                if (frame["metric"] == metric).any():
                    st.altair_chart(charts.progress_chart(frame, metric), width="stretch")
                else:
                    st.info(f"No {data.metric_label(metric)[0].lower()} in these sessions.")


# --- gait cycle ---------------------------------------------------------------------------------
CYCLE_WINDOW_MIN = 5  # minutes of a session the gait-cycle tab reads at a time
HIP_STREAM, ENVELOPE_STREAM = "hip_angle", "emg_envelope"


_SIDES = list(charts.SIDE_STYLE)
_SIDE_COLOR = alt.Scale(domain=_SIDES, range=[charts.SIDE_STYLE[s][0] for s in _SIDES])
_SIDE_DASH = alt.Scale(domain=_SIDES, range=[charts.SIDE_STYLE[s][2] for s in _SIDES])


def cycle_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """Mean (line) and mean ± SD (band) over the stride, per side (colour and dash)."""
    base = alt.Chart(frame).encode(
        x=alt.X("pct:Q", title="Stride (% from initial contact)",
                scale=alt.Scale(domain=[0, 100], nice=False)),
        color=alt.Color("side:N", scale=_SIDE_COLOR, title="Side",
                        legend=alt.Legend(orient="top")))
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("low:Q", title=title), y2="high:Q")
    line = base.mark_line(strokeWidth=2.5).encode(
        y="mean:Q", strokeDash=alt.StrokeDash("side:N", scale=_SIDE_DASH, title="Side"),
        tooltip=[alt.Tooltip("side:N", title="Side"),
                 alt.Tooltip("pct:Q", title="% of stride"),
                 alt.Tooltip("mean:Q", title="Mean", format=".2f"),
                 alt.Tooltip("strides:Q", title="Strides")])
    return alt.layer(band, line).properties(height=charts.HEIGHT).resolve_scale(
        color="shared", strokeDash="shared")


def _side_ensembles(series: Any, rows: Sequence[dict[str, Any]],
                    pick: Any) -> dict[str, ensembles.CycleEnsemble]:
    out = {}
    for side in data.SIDES:
        channels = pick(series.channels, side)
        if not channels:
            continue
        idx = [series.channels.index(c) for c in channels]
        with np.errstate(all="ignore"):
            curve = np.nanmean(series.values[:, idx], axis=1) if len(series) else np.array([])
        out[data.SIDE_NAMES[side]] = ensembles.cycle_ensemble_ns(
            series.time_ns, curve, *ensembles.stride_bounds_ns(rows, side))
    return out


def _cycle_window(meta: SessionMeta, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """The part of the session the gait-cycle tab reads: at most CYCLE_WINDOW_MIN minutes."""
    times = [r["time_ns"] for r in rows if r.get("time_ns") is not None]
    first = min(times) if times else meta.start_ns
    last = max(times) + 2 * 10**9 if times else (meta.end_ns or meta.start_ns)
    span_min = (last - first) / 60e9
    start = first
    if span_min > CYCLE_WINDOW_MIN:
        offset = st.slider("From minute", 0, int(span_min - CYCLE_WINDOW_MIN), 0,
                           key="cycle_from",
                           help=f"{CYCLE_WINDOW_MIN} minutes are averaged at a time")
        start = first + int(offset * 60e9)
    return start, min(last, start + int(CYCLE_WINDOW_MIN * 60e9))


def cycle_section(meta: SessionMeta, rows: Sequence[dict[str, Any]], url: str | None) -> None:
    start, end = _cycle_window(meta, rows)
    inside = [r for r in rows if r.get("time_ns") is not None and start <= r["time_ns"] < end]
    try:
        hip = data.load_processed(url, meta.station, HIP_STREAM, start, end, meta.session)
        env_mv = data.load_processed(url, meta.station, ENVELOPE_STREAM, start, end,
                                     meta.session)
    except data.DataProblem as problem:
        show_problem(problem)
        return
    st.caption("Mean (line) ± SD (band) over every valid stride, from initial contact (0 %) "
               "to the next (100 %), per side.")
    if not len(hip):
        st.info("No processed hip angles stored for this session.")
    else:
        hips = _side_ensembles(hip, inside, lambda ch, s: [c for c in [
            ensembles.hip_channel(ch, s)] if c])
        frame = ensembles.cycle_frame(hips)
        if frame.empty:
            st.info("The stored hip angles do not cover any valid stride.")
        else:
            st.markdown("**Hip flexion** (positive: flexion, negative: extension)")
            st.altair_chart(cycle_chart(frame, "Hip flexion (°)"), width="stretch")
    if not len(env_mv):
        st.info("No processed EMG envelopes stored for this session.")
        return
    for title, pick in (("Glute max", lambda ch, s: [c for c in (f"glute_max_{s}",) if c in ch]),
                        ("Hamstrings", ensembles.hamstring_channels)):
        frame = ensembles.cycle_frame(_side_ensembles(env_mv, inside, pick))
        st.markdown(f"**{title} EMG envelope** (mV, as stored: not normalised)")
        if frame.empty:
            st.info(f"No {title.lower()} envelope covers a valid stride.")
        else:
            st.altair_chart(cycle_chart(frame, f"{title} envelope (mV)"), width="stretch")


# --- report ---------------------------------------------------------------------------------------
REPORT_TIMEOUT_S = 600


def recording_path(meta: SessionMeta) -> tuple[Path | None, str]:
    """The session's recording, or None and why it is not available."""
    where = env("RECORDINGS_DIR")
    if not where:
        return None, ("The session report is built from the pipeline's recording of the "
                      "session, and this dashboard was not given the recordings folder "
                      "(HIPSTRIDE_RECORDINGS_DIR, the pipeline's `recordings_dir`).")
    path = Path(where) / meta.station / f"{meta.station}-{meta.session}.hsrec"
    if not path.is_file():
        return None, (f"There is no recording of this session in {md(where)} "
                      f"({md(path.name)}).")
    return path, ""


@st.cache_data(show_spinner=False, max_entries=8)
def build_report(path: str, athlete: str | None, size: int, mtime_ns: int) -> tuple[bytes, str]:
    """``hipstride analyze --recording`` in a temporary folder: (report.html, problem)."""
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "hipstride.cli", "analyze", "--recording", path,
                "--out", out, "--no-progress"] + (["--athlete", athlete] if athlete else [])
        try:
            done = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=REPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return b"", f"the analysis took longer than {REPORT_TIMEOUT_S} s"
        report_file = Path(out) / "report.html"
        if done.returncode != 0 or not report_file.exists():
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            return b"", lines[-1] if lines else f"hipstride analyze exited {done.returncode}"
        return report_file.read_bytes(), ""


def report_section(meta: SessionMeta) -> None:
    path, why = recording_path(meta)
    if path is None:
        st.info(why, icon=":material/description:")
        return
    st.caption("The report of `hipstride analyze` for this session, re-analysed from its "
               "recording: findings, figures, the prone test, data quality. One HTML file.")
    built_key = f"report_{meta.station}/{meta.session}"
    if st.button("Build the session report", key="build_report",
                 icon=":material/description:"):
        stat = path.stat()
        with st.spinner("Analysing the recording…"):
            st.session_state[built_key] = build_report(str(path), meta.athlete, stat.st_size,
                                                       stat.st_mtime_ns)
    built = st.session_state.get(built_key)
    if built is None:
        return
    html, problem = built
    if problem:
        st.error(f"**The report could not be built.** {md(problem)}",
                 icon=":material/error:")
        return
    st.download_button("Download the report (HTML)", html, key="report_download",
                       file_name=_file_name(meta).replace("_strides.csv", "_report.html"),
                       mime="text/html", icon=":material/download:")


# --- the page -----------------------------------------------------------------------------------
def main() -> None:
    access = auth.require()
    st.title("Review", anchor=False)
    url = data.store_url()
    try:
        sessions = auth.visible(data.load_sessions(url), access)
    except data.DataProblem as problem:
        show_problem(problem)
        return
    if not sessions:
        st.info("**No sessions yet.**\n\nSessions appear here once the pipeline has recorded "
                "one: start a station and the pipeline, or try `hipstride demo`.")
        return
    meta = pick_session(sessions)
    try:
        rows = data.load_strides(url, meta.station, meta.session)
        cues = data.load_cues(url, meta.station, meta.session)
    except data.DataProblem as problem:
        show_problem(problem)
        return
    session_header(meta, rows)
    if not rows:
        st.info("**This session has no strides.**\n\nEither it has only just started, or no "
                "running was recognised (standing only, or sensors off). Strides appear here "
                "as the pipeline finds them.")
        report_section(meta)
        return
    summary_section(rows, cues)
    tabs = st.tabs(["Per stride", "Gait cycle", "Cues", "Strides table", "Compare", "Progress",
                    "Report"])
    with tabs[0]:
        strides_section(rows)
    with tabs[1]:
        cycle_section(meta, rows, url)
    with tabs[2]:
        cues_section(rows, cues, meta)
    with tabs[3]:
        table_section(rows)
    with tabs[4]:
        compare_section(meta, rows, sessions, url)
    with tabs[5]:
        progress_section(meta, sessions, url)
    with tabs[6]:
        report_section(meta)


main()
