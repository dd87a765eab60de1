"""Altair charts for the dashboard (Altair ships with Streamlit).

Colours are Okabe–Ito, safe for the common colour-vision deficiencies, and the same as the
``hipstride analyze`` report: left blue, right vermillion. Sides never rely on colour alone:
left is drawn with circles and solid lines, right with triangles and dashed lines, and every
legend names the side. Each function takes a frame from :mod:`.data` and returns a chart.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from hipstride.pipeline import report

from .data import SIDE_NAMES, metric_label

__all__ = ["SIDE_STYLE", "cue_timeline", "envelope_chart", "hip_angle_chart", "live_stride_bars",
           "progress_chart", "stride_chart"]

#: Side ("Left"/"Right") → (colour, point shape, line dash).
SIDE_STYLE = {
    SIDE_NAMES["l"]: (report.SIDE_COLOR["l"], "circle", [1, 0]),
    SIDE_NAMES["r"]: (report.SIDE_COLOR["r"], "triangle-up", [6, 3]),
}
LEVEL_COLOR = {"alert": "#D55E00", "caution": "#E69F00"}  # Okabe–Ito vermillion, orange
REFERENCE_COLOR = report.REFERENCE_COLOR
HEIGHT = 260

_sides = list(SIDE_STYLE)
_SIDE_COLOR = alt.Scale(domain=_sides, range=[SIDE_STYLE[s][0] for s in _sides])
_SIDE_SHAPE = alt.Scale(domain=_sides, range=[SIDE_STYLE[s][1] for s in _sides])
_SIDE_DASH = alt.Scale(domain=_sides, range=[SIDE_STYLE[s][2] for s in _sides])


def _axis_title(metric: str) -> str:
    label, unit, _ = metric_label(metric)
    return f"{label} ({unit})" if unit else label


def _reference(metric: str, normalization: str) -> alt.Chart | None:
    """The typical range or value behind a metric, as a grey band or rule, when known."""
    if metric == "peak_hip_extension_deg":
        low, high = report.TYPICAL_EXTENSION_DEG
        band = pd.DataFrame({"low": [low], "high": [high], "what": [f"typical {low:.0f}–"
                                                                    f"{high:.0f}°"]})
        return alt.Chart(band).mark_rect(color=REFERENCE_COLOR, opacity=0.2).encode(
            y="low:Q", y2="high:Q", tooltip=alt.Tooltip("what:N", title="Reference"))
    if metric == "glute_ham_ratio" and normalization == "mvc":
        rule = pd.DataFrame({"y": [report.RATIO_TYPICAL],
                             "what": [f"typical ≥ {report.RATIO_TYPICAL:.1f}"]})
        return alt.Chart(rule).mark_rule(color=REFERENCE_COLOR, strokeDash=[2, 2],
                                         size=2).encode(
            y="y:Q", tooltip=alt.Tooltip("what:N", title="Reference"))
    return None


def stride_chart(frame: pd.DataFrame, metric: str, time_title: str, *,
                 normalization: str = "mvc") -> alt.LayerChart:
    """Every valid stride as a faint point, and the rolling median as a line, per side."""
    label, _, decimals = metric_label(metric)
    fmt = f".{decimals}f"
    y = alt.Y("value:Q", title=_axis_title(metric), scale=alt.Scale(zero=False))
    base = alt.Chart(frame).encode(
        x=alt.X("time:Q", title=time_title,
                scale=alt.Scale(domainMin=0, nice=False, zero=True)),
        color=alt.Color("side:N", scale=_SIDE_COLOR, title="Side",
                        legend=alt.Legend(orient="top")),
    )
    points = base.mark_point(size=22, opacity=0.35, filled=True).encode(
        y=y, shape=alt.Shape("side:N", scale=_SIDE_SHAPE, title="Side"),
        tooltip=[alt.Tooltip("side:N", title="Side"),
                 alt.Tooltip("stride_index:Q", title="Stride"),
                 alt.Tooltip("time:Q", title=time_title, format=".2f"),
                 alt.Tooltip("value:Q", title=label, format=fmt)])
    trend = base.mark_line(strokeWidth=2.5).encode(
        y=alt.Y("trend:Q"), strokeDash=alt.StrokeDash("side:N", scale=_SIDE_DASH, title="Side"))
    layers: list[alt.Chart] = []
    ref = _reference(metric, normalization)
    if ref is not None:
        layers.append(ref)
    layers += [points, trend]
    return alt.layer(*layers).properties(height=HEIGHT).resolve_scale(
        color="shared", shape="shared", strokeDash="shared")


def cue_timeline(frame: pd.DataFrame, time_title: str, end: float) -> alt.LayerChart:
    """One row per cue (with its side): bars where it was active, and a tick where each
    period began so that a cue of one stride still shows. Alerts are solid and outlined in
    black, cautions lighter: the level reads without colour too."""
    levels = list(LEVEL_COLOR)
    rows = max(1, frame["cue"].nunique())
    base = alt.Chart(frame).encode(
        y=alt.Y("cue:N", title=None, sort=None, axis=alt.Axis(labelLimit=320)),
        color=alt.Color("level:N", title="Level",
                        scale=alt.Scale(domain=levels, range=[LEVEL_COLOR[lv] for lv in levels]),
                        legend=alt.Legend(orient="right")),
        tooltip=[alt.Tooltip("cue:N", title="Cue"), alt.Tooltip("level:N", title="Level"),
                 alt.Tooltip("start:Q", title="From", format=".1f"),
                 alt.Tooltip("duration:N", title="For")],
    )
    bars = base.mark_bar(cornerRadius=2, strokeWidth=1.5).encode(
        x=alt.X("start:Q", title=time_title, scale=alt.Scale(domain=[0, end], nice=False)),
        x2="end:Q",
        opacity=alt.Opacity("level:N", scale=alt.Scale(domain=levels, range=[0.9, 0.45]),
                            legend=None),
        stroke=alt.Stroke("level:N", scale=alt.Scale(domain=levels,
                                                     range=["#000000", LEVEL_COLOR["caution"]]),
                          legend=None))
    ticks = base.mark_tick(thickness=3, size=22).encode(x="start:Q")
    # Streamlit gives the whole chart exactly this height: leave room for the axis below.
    return alt.layer(bars, ticks).properties(height=36 * rows + 70)


def progress_chart(frame: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Per-session medians of one metric over the dates, per side (points joined by lines).
    Ratios of sessions without MVC normalisation are drawn hollow: they do not compare."""
    label, _, decimals = metric_label(metric)
    data = frame[frame["metric"] == metric]
    days = (data["date"].max() - data["date"].min()).days if len(data) else 0
    ticks = {"interval": "week", "step": 1} if days > 21 else {"interval": "day", "step": 1}
    base = alt.Chart(data).encode(
        x=alt.X("date:T", title="Session date",
                axis=alt.Axis(format="%-d %b", tickCount=ticks, labelOverlap=True)),
        y=alt.Y("median:Q", title=None, scale=alt.Scale(zero=False, padding=12)),
        color=alt.Color("side:N", scale=_SIDE_COLOR, title="Side",
                        legend=alt.Legend(orient="right")),
    )
    line = base.mark_line(strokeWidth=2).encode(
        strokeDash=alt.StrokeDash("side:N", scale=_SIDE_DASH, title="Side"))
    points = base.mark_point(size=70, strokeWidth=2).encode(
        shape=alt.Shape("side:N", scale=_SIDE_SHAPE, title="Side"),
        fill=alt.condition(alt.datum.normalization == "relative", alt.value("white"),
                           alt.Color("side:N", scale=_SIDE_COLOR, legend=None)),
        tooltip=[alt.Tooltip("date:T", title="Date", format="%a %-d %b %Y %H:%M"),
                 alt.Tooltip("week:N", title="Week"), alt.Tooltip("side:N", title="Side"),
                 alt.Tooltip("median:Q", title=f"Median {label.lower()}", format=f".{decimals}f"),
                 alt.Tooltip("strides:Q", title="Valid strides"),
                 alt.Tooltip("normalization:N", title="EMG normalisation")])
    # Streamlit gives the whole chart (title and axis included) exactly this height.
    return alt.layer(line, points).properties(height=HEIGHT, title=_axis_title(metric)
                                              ).resolve_scale(color="shared", shape="shared",
                                                              strokeDash="shared")


# --- live page: rolling charts and per-stride bars ------------------------------------------------
#: Muscle → colour (Okabe–Ito, as in the report: glutes bluish green, hamstrings purple).
MUSCLE_COLOR = {"glute_max": report.GLUTE_COLOR, "biceps_femoris": report.HAMSTRING_COLOR,
                "erector_spinae": "#56B4E9"}
LIVE_HEIGHT = 240


def _muscle_side(channel: str) -> tuple[str, str]:
    muscle, _, side = channel.rpartition("_")
    if side in SIDE_NAMES:
        return muscle or channel, SIDE_NAMES[side]
    return channel, "Both"


def envelope_chart(series: dict) -> alt.Chart:
    """The last seconds of every EMG envelope: colour = muscle, dash = side (both named in
    the legend), x = seconds before now."""
    records = []
    for channel, values in series.get("envelope_mv", {}).items():
        muscle, side = _muscle_side(channel)
        records += [{"t": t, "mv": v, "muscle": muscle.replace("_", " "), "side": side}
                    for t, v in zip(series["t_s"], values, strict=False) if v == v]
    frame = pd.DataFrame(records, columns=["t", "mv", "muscle", "side"])
    muscles = [m.replace("_", " ") for m in MUSCLE_COLOR]
    return alt.Chart(frame).mark_line(strokeWidth=2).encode(
        x=alt.X("t:Q", title="Seconds before now", scale=alt.Scale(domain=[-10, 0], nice=False)),
        y=alt.Y("mv:Q", title="EMG envelope (mV)"),
        color=alt.Color("muscle:N", title="Muscle", scale=alt.Scale(
            domain=muscles, range=list(MUSCLE_COLOR.values())), legend=alt.Legend(orient="top")),
        strokeDash=alt.StrokeDash("side:N", scale=_SIDE_DASH, title="Side"),
        detail="side:N",
    ).properties(height=LIVE_HEIGHT)


def hip_angle_chart(series: dict) -> alt.Chart:
    """The last seconds of hip flexion per side (colour and dash) and the anterior pelvic
    tilt (grey, dotted), flexion and anterior tilt positive: x = seconds before now."""
    records = []
    for key, name in (("hip_l_deg", "Left hip"), ("hip_r_deg", "Right hip"),
                      ("tilt_deg", "Pelvic tilt")):
        records += [{"t": t, "deg": v, "what": name}
                    for t, v in zip(series["t_s"], series.get(key, []), strict=False) if v == v]
    frame = pd.DataFrame(records, columns=["t", "deg", "what"])
    names = ["Left hip", "Right hip", "Pelvic tilt"]
    colours = [SIDE_STYLE["Left"][0], SIDE_STYLE["Right"][0], REFERENCE_COLOR]
    return alt.Chart(frame).mark_line(strokeWidth=2).encode(
        x=alt.X("t:Q", title="Seconds before now", scale=alt.Scale(domain=[-10, 0], nice=False)),
        y=alt.Y("deg:Q", title="Angle (°)"),
        color=alt.Color("what:N", title=None, scale=alt.Scale(domain=names, range=colours),
                        legend=alt.Legend(orient="top")),
        strokeDash=alt.StrokeDash("what:N", title=None, scale=alt.Scale(
            domain=names, range=[[1, 0], [6, 3], [2, 2]])),
    ).properties(height=LIVE_HEIGHT)


def live_stride_bars(rows: list[dict], metric: str, *, strides: int = 20,
                     normalization: str = "mvc") -> alt.LayerChart:
    """The last ``strides`` valid strides per side as bars, left and right of the same stride
    number next to each other (left first; colour and legend name the side), with the metric's
    reference band or rule when it has one."""
    label, _, decimals = metric_label(metric)
    records = []
    for side, name in SIDE_NAMES.items():
        picked = [r for r in rows if r.get("side") == side and r.get("valid", True)
                  and isinstance(r.get(metric), int | float) and r[metric] == r[metric]]
        records += [{"stride": int(r.get("stride_index") or 0), "value": float(r[metric]),
                     "side": name} for r in picked[-strides:]]
    frame = pd.DataFrame(records, columns=["stride", "value", "side"])
    bars = alt.Chart(frame).mark_bar().encode(
        x=alt.X("stride:O", title="Stride", axis=alt.Axis(labelAngle=0, labelOverlap=True)),
        xOffset=alt.XOffset("side:N", sort=list(SIDE_NAMES.values())),
        y=alt.Y("value:Q", title=_axis_title(metric)),
        color=alt.Color("side:N", scale=_SIDE_COLOR, title="Side",
                        legend=alt.Legend(orient="top")),
        tooltip=[alt.Tooltip("side:N", title="Side"), alt.Tooltip("stride:O", title="Stride"),
                 alt.Tooltip("value:Q", title=label, format=f".{decimals}f")])
    layers: list[alt.Chart] = [bars]
    ref = _reference(metric, normalization)
    if ref is not None:
        layers.insert(0, ref)
    return alt.layer(*layers).properties(height=LIVE_HEIGHT)
