"""Session report: one self-contained HTML file that a physio hands to an athlete.

:func:`render_report` turns an :class:`~hipstride.pipeline.engine.result.AnalysisResult` into
HTML with inline CSS and figures embedded as base64 PNG (no scripts, no external URLs):
header, key findings in plain words, a per-side table with symmetry, figures, the prone hip
extension test, data quality and a footer. Every part copes with missing data (no EMG, no
pelvis, one side, no valid strides) by saying what is missing instead of failing.

The wording rules are small pure functions over numbers (``*_sentence``) so they can be
tested. The wording is coaching observation, never diagnosis. matplotlib is imported only
when a figure is drawn, and only through its object API (no pyplot, no global state).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from hipstride import __version__

from .engine.cues import POPULATION_REFERENCE
from .engine.schema import CUES, SUMMARY_METRICS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .engine.result import AnalysisResult

__all__ = [
    "CuePeriod",
    "cue_periods",
    "cue_sentence",
    "extension_sentence",
    "fmt_duration",
    "fmt_num",
    "key_findings",
    "onset_sentence",
    "ratio_sentence",
    "render_report",
    "rolling_median",
    "side_means",
    "symmetry_sentence",
    "symmetry_values",
    "tilt_sentence",
]

SIDES = ("l", "r")
SIDE_NAMES = {"l": "left", "r": "right"}

# --- thresholds behind the wording (DOMAIN.md; *defaults* where it gives no number) ----------
TYPICAL_EXTENSION_DEG = (9.0, 10.0)  # peak hip extension in running (Novacheck 1998)
LIMITED_EXTENSION_DEG = 5.0  # the "limited hip extension" cue's absolute rule
LOW_EXTENSION_DEG = 8.0  # *default*: below this, "a little under the typical range"
RATIO_TYPICAL = POPULATION_REFERENCE["glute_ham_ratio"]  # MVC-normalised
RATIO_LOW = 0.75 * RATIO_TYPICAL  # the hamstring-dominant cue: 25 % below reference
TILT_TYPICAL_DEG = POPULATION_REFERENCE["peak_anterior_tilt_deg"]
TILT_HIGH_DEG = TILT_TYPICAL_DEG + 5.0  # the "pelvis tipping forward" cue: +5° over reference
LAG_TYPICAL_MS = POPULATION_REFERENCE["onset_lag_ms"]
LAG_LATE_MS = LAG_TYPICAL_MS + 50.0  # the "glutes late" cue: +50 ms over reference
SI_CAUTION_PCT, SI_ALERT_PCT = 10.0, 15.0
#: Below these side means (both sides) a symmetry index is not meaningful (it explodes near 0).
SI_FLOORS = {"glute_ham_ratio": 0.05, "peak_hip_extension_deg": 3.0,
             "peak_anterior_tilt_deg": 2.0, "pelvic_tilt_range_deg": 1.0, "hip_rom_deg": 3.0}
#: Timings relative to foot strike have an arbitrary zero: compare them as R − L, not as SI.
TIMING_METRICS = ("glute_onset_ms", "hamstring_onset_ms", "onset_lag_ms")
#: Metrics the symmetry finding speaks about, in order of importance.
SYMMETRY_FINDING_METRICS = ("glute_ham_ratio", "peak_hip_extension_deg", "hip_rom_deg")

#: Label, unit and decimals of every summary metric.
METRICS: dict[str, tuple[str, str, int]] = {
    "stride_time_s": ("Stride time", "s", 2),
    "cadence_spm": ("Cadence", "steps/min", 0),
    "peak_hip_extension_deg": ("Peak hip extension", "°", 1),
    "peak_hip_flexion_deg": ("Peak hip flexion", "°", 1),
    "hip_rom_deg": ("Hip range of motion", "°", 1),
    "glute_onset_ms": ("Glute onset (from foot strike)", "ms", 0),
    "hamstring_onset_ms": ("Hamstring onset (from foot strike)", "ms", 0),
    "onset_lag_ms": ("Glute − hamstring onset lag", "ms", 0),
    "glute_ham_ratio": ("Glute:hamstring ratio", "", 2),
    "peak_anterior_tilt_deg": ("Peak anterior pelvic tilt", "°", 1),
    "pelvic_tilt_range_deg": ("Pelvic tilt range", "°", 1),
}
EMG_METRICS = ("glute_onset_ms", "hamstring_onset_ms", "onset_lag_ms", "glute_ham_ratio")
PELVIS_METRICS = ("peak_anterior_tilt_deg", "pelvic_tilt_range_deg")

# --- figure style: Okabe–Ito colours; sides also differ by line style ---------------------------
SIDE_COLOR = {"l": "#0072B2", "r": "#D55E00", None: "#555555"}
SIDE_LINE = {"l": "-", "r": "--", None: ":"}
SIDE_HATCH = {"l": "//", "r": "\\\\", None: ".."}
GLUTE_COLOR, HAMSTRING_COLOR = "#009E73", "#CC79A7"
REFERENCE_COLOR = "#999999"
DPI = 110
#: Cues shaded behind each per-stride panel of the session figure.
PANEL_CUES = {"glute_ham_ratio": ("hamstring_dominant", "glutes_late"),
              "peak_hip_extension_deg": ("limited_hip_extension", "pelvis_tipping_forward")}


# ================================================================================================
# Formatting
# ================================================================================================
def _finite(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool) and math.isfinite(value)


def fmt_num(value: Any, decimals: int = 1, unit: str = "", *, signed: bool = False) -> str:
    """A number for people: fixed decimals, a real minus sign, unit (° tight, others spaced).

    ``None``/NaN give an em dash.
    """
    if not _finite(value):
        return "—"
    value = float(value)
    if round(value, decimals) == 0:
        value = 0.0
    text = f"{value:+.{decimals}f}" if signed and value != 0 else f"{value:.{decimals}f}"
    text = text.replace("-", "−")
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("°", "%") else f"{text} {unit}"


def fmt_duration(seconds: Any) -> str:
    """``75`` → "1 min 15 s"; ``3725`` → "1 h 02 min"; unknown → "—"."""
    if not _finite(seconds) or seconds < 0:
        return "—"
    total = round(float(seconds))
    if total < 60:
        return f"{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def fmt_start_time(value: Any) -> str | None:
    """``summary["start_time"]`` as text: ISO string, datetime, or Unix s / ns."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif _finite(value):
        seconds = float(value) / 1e9 if abs(float(value)) > 1e12 else float(value)
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    zone = moment.strftime(" %Z") if moment.tzinfo else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _side_list(values: Mapping[str, float], decimals: int, unit: str, *,
               signed: bool = False) -> str:
    """"left 4.2°, right 9.6°" (sides in order, only those present)."""
    return ", ".join(f"{SIDE_NAMES[s]} {fmt_num(values[s], decimals, unit, signed=signed)}"
                     for s in SIDES if s in values)


def _cap(text: str) -> str:
    """First letter upper case, the rest untouched (unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


def _join_sides(sides: Sequence[str]) -> str:
    names = [SIDE_NAMES[s] for s in sides]
    return "both sides" if len(names) == 2 else f"the {names[0]} side"


# ================================================================================================
# Wording rules (pure functions; numbers in, one sentence out)
# ================================================================================================
def _ratio_category(ratio: float) -> str:
    if ratio < RATIO_LOW:
        return "low"
    return "below" if ratio < RATIO_TYPICAL else "typical"


def ratio_sentence(ratios: Mapping[str, float], normalization: str) -> str:
    """Glute:hamstring ratio per side and what it means (``ratios``: side → mean ratio)."""
    if not ratios:
        return ("No glute:hamstring ratio could be measured (no usable glute and hamstring EMG "
                "in the valid strides).")
    values = _side_list(ratios, 2, "")
    if normalization != "mvc":
        return (f"Glute:hamstring ratio (relative): {values}. Without maximal-contraction (MVC) "
                "calibration these numbers sit near 1 by construction and only compare strides "
                "within this session; record MVCs to compare them with typical values.")
    groups: dict[str, list[str]] = {}
    for side in SIDES:
        if side in ratios:
            groups.setdefault(_ratio_category(ratios[side]), []).append(side)
    meaning = {
        "typical": "the glutes are doing their share of driving the hip back",
        "below": "the hamstrings are doing a little more of the work than is typical",
        "low": ("the hamstrings are doing most of the work of driving the hip back — a "
                "hamstring-dominant pattern worth training (cue: “Drive from the glutes”)"),
    }
    parts = [f"on {_join_sides(sides)} {meaning[cat]}" for cat, sides in groups.items()]
    return (f"Glute:hamstring ratio: {values} (MVC-normalised; about {RATIO_TYPICAL:.1f} or "
            f"more is typical). " + _cap("; ".join(parts)) + ".")


def extension_sentence(extension: Mapping[str, float]) -> str:
    """Peak hip extension per side against the typical ~9–10° of running."""
    if not extension:
        return "Peak hip extension could not be measured (no usable thigh and pelvis angles)."
    low, high = TYPICAL_EXTENSION_DEG
    head = (f"Peak hip extension: {_side_list(extension, 1, '°')} "
            f"(typical in running: about {low:.0f}–{high:.0f}°).")
    groups: dict[str, list[str]] = {}
    for side in SIDES:
        if side in extension:
            value = extension[side]
            cat = ("limited" if value < LIMITED_EXTENSION_DEG
                   else "below" if value < LOW_EXTENSION_DEG else "typical")
            groups.setdefault(cat, []).append(side)
    meaning = {
        "typical": "in the typical range",
        "below": "a little under the typical range",
        "limited": ("limited: the thigh does not get far behind the body, so the pelvis and "
                    "lower back may be taking up the stride (cue: “Push the ground behind "
                    "you”)"),
    }
    parts = [f"{_join_sides(sides)} {'is' if len(sides) == 1 else 'are'} {meaning[cat]}"
             for cat, sides in groups.items()]
    return f"{head} " + _cap("; ".join(parts)) + "."


def tilt_sentence(tilt: Mapping[str, float], extension: Mapping[str, float]) -> str:
    """Peak anterior pelvic tilt (relative to standing), read together with hip extension."""
    if not tilt:
        return "No pelvis sensor data: anterior pelvic tilt was not measured."
    values = list(tilt.values())
    if len(values) == 2 and abs(values[0] - values[1]) < 1.0:
        amount = fmt_num(sum(values) / 2, 1, "°")
    else:
        amount = _side_list(tilt, 1, "°") + " strides"
    head = f"Anterior pelvic tilt: the pelvis tips forward up to {amount} beyond standing posture"
    if max(values) <= TILT_HIGH_DEG:
        return f"{head}, within the usual few degrees of running."
    limited = any(v < LOW_EXTENSION_DEG for v in extension.values())
    tail = (" Together with the low hip extension, the pelvis and lower back may be making up "
            "for the hip." if limited else "")
    return (f"{head}, more than the usual ~{TILT_TYPICAL_DEG:.0f}° (cue: “Brace — tall "
            f"posture”).{tail}")


def symmetry_sentence(si: Mapping[str, float]) -> str:
    """Left/right symmetry from ``si`` (metric → SI %, positive = more on the right)."""
    if not si:
        return "Left/right symmetry could not be assessed (both sides are needed)."
    worst = max(si, key=lambda m: abs(si[m]))
    value = si[worst]
    label = METRICS[worst][0].lower() if worst != "glute_ham_ratio" else "glute:hamstring ratio"
    more = "right" if value > 0 else "left"
    if abs(value) > SI_ALERT_PCT:
        return (f"Left and right differ: {label} is {fmt_num(abs(value), 0, '%')} higher on "
                f"the {more} (symmetry index {fmt_num(value, 0, '%', signed=True)}; above "
                f"{SI_ALERT_PCT:.0f}% counts as asymmetry).")
    if abs(value) > SI_CAUTION_PCT:
        return (f"Left and right are slightly uneven: {label} is "
                f"{fmt_num(abs(value), 0, '%')} higher on the {more} (symmetry index "
                f"{fmt_num(value, 0, '%', signed=True)}, in the {SI_CAUTION_PCT:.0f}–"
                f"{SI_ALERT_PCT:.0f}% caution zone).")
    names = ", ".join(METRICS[m][0].lower() if m != "glute_ham_ratio" else
                      "glute:hamstring ratio" for m in si)
    return (f"Left and right are even: symmetry index within "
            f"±{fmt_num(abs(value), 0, '%')} for {names} (below {SI_CAUTION_PCT:.0f}%).")


def onset_sentence(lag: Mapping[str, float]) -> str:
    """When the glutes switch on relative to the hamstrings (side → mean lag, ms)."""
    if not lag:
        return "Glute and hamstring onsets could not be timed in the valid strides."
    parts = []
    for side in SIDES:
        if side in lag:
            value = lag[side]
            when = "after" if value >= 0 else "before"
            parts.append(f"{fmt_num(abs(value), 0, 'ms')} {when} the hamstrings on the "
                         f"{SIDE_NAMES[side]}")
    head = "Around foot strike the glutes switch on " + " and ".join(parts)
    late = [s for s in SIDES if s in lag and lag[s] > LAG_LATE_MS]
    if late:
        return (f"{head}: later than the usual ~{LAG_TYPICAL_MS:.0f} ms on "
                f"{_join_sides(late)} (cue: “Squeeze the glutes earlier”).")
    return f"{head}: a usual sequence (up to about {LAG_LATE_MS:.0f} ms after is common)."


@dataclass(frozen=True)
class CuePeriod:
    """One stretch of session time during which a cue was active."""

    cue: str
    side: str | None
    level: str
    start_s: float
    end_s: float
    message: str
    channel: str | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


def cue_periods(cue_events: Iterable[Any], end_s: float) -> list[CuePeriod]:
    """Turn raise/clear events into periods; a cue still active at the end runs to ``end_s``.

    Takes the engine's event dicts (``kind`` "raise"/"clear", ``stride_start_s``). A raise of
    an active cue at another level (asymmetry caution ↔ alert) closes the old period and
    opens a new one.
    """
    open_: dict[tuple, tuple[float, str, str]] = {}
    periods: list[CuePeriod] = []
    for raw in cue_events:
        ev = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)
        state = str(ev.get("kind") or "")
        t = ev.get("stride_start_s")
        cue = ev.get("cue")
        if not cue or not _finite(t):
            continue
        key = (cue, ev.get("side"), ev.get("channel"))
        message = str(ev.get("message") or CUES.get(cue, cue))
        if key in open_:
            start, level, msg = open_.pop(key)
            periods.append(CuePeriod(cue, key[1], level, start, float(t), msg, key[2]))
        if state.startswith("raise"):
            open_[key] = (float(t), str(ev.get("level") or "alert"), message)
    for key, (start, level, msg) in open_.items():
        periods.append(CuePeriod(key[0], key[1], level, start, max(start, end_s), msg, key[2]))
    return sorted(periods, key=lambda p: (p.start_s, p.cue))


def cue_sentence(periods: Sequence[CuePeriod], session_s: float) -> str:
    """Which cues were raised, where and for how long."""
    if not periods:
        return "No coaching cues were raised during this session."
    totals: dict[tuple, float] = {}
    for p in periods:
        key = (p.cue, p.side, p.channel, p.level)
        totals[key] = totals.get(key, 0.0) + p.duration_s
    parts = []
    for (cue, side, channel, level), total in sorted(totals.items(), key=lambda kv: -kv[1]):
        where = f" on the {SIDE_NAMES[side]}" if side in SIDE_NAMES else ""
        extra = f" ({channel})" if channel else ""
        caution = " (caution level)" if level == "caution" else ""
        share = (f", {total / session_s * 100:.0f}% of the session"
                 if _finite(session_s) and session_s > 0 else "")
        parts.append(f"“{CUES.get(cue, cue)}”{extra}{where}{caution} for "
                     f"{fmt_duration(total)}{share}")
    return "Cues raised: " + "; ".join(parts) + "."


# ================================================================================================
# Reading the result defensively
# ================================================================================================
def _side_stats(result: AnalysisResult, side: str) -> Mapping[str, Any]:
    sides = result.summary.get("sides") or {}
    return sides.get(side) or {}


def side_means(summary: Mapping[str, Any], metric: str) -> dict[str, float]:
    """Side → mean of ``metric`` over valid strides, from a ``summary.json``-shaped dict."""
    out = {}
    sides = summary.get("sides") or {}
    for side in SIDES:
        stat = (sides.get(side) or {}).get(metric) or {}
        if _finite(stat.get("mean")):
            out[side] = float(stat["mean"])
    return out


def _means(result: AnalysisResult, metric: str) -> dict[str, float]:
    return side_means(result.summary, metric)


def _stride_counts(result: AnalysisResult) -> dict[str, tuple[int, int]]:
    """Side → (valid, rejected), for sides with any stride."""
    out = {}
    for side in SIDES:
        stats = _side_stats(result, side)
        rows = [r for r in result.rows if r.get("side") == side]
        valid = stats.get("strides", sum(1 for r in rows if r.get("valid")))
        rejected = stats.get("strides_rejected", sum(1 for r in rows if not r.get("valid")))
        if valid or rejected:
            out[side] = (int(valid), int(rejected))
    return out


def _valid_strides(result: AnalysisResult) -> int:
    return sum(v for v, _ in _stride_counts(result).values())


def _normalization(result: AnalysisResult) -> str:
    """"mvc", "relative" or "" (no EMG)."""
    quality = result.summary.get("quality") or {}
    for candidate in (quality.get("normalization"), result.summary.get("normalization"),
                      getattr(result.activity, "normalization", None),
                      *(r.get("normalization") for r in result.rows)):
        if candidate:
            return str(candidate)
    return ""


def _gait_methods(result: AnalysisResult) -> dict[str, str]:
    methods = (result.summary.get("quality") or {}).get("gait_method")
    if isinstance(methods, Mapping) and methods:
        return {str(k): str(v) for k, v in methods.items()}
    if isinstance(methods, str):
        return dict.fromkeys(SIDES, methods)
    out = {s: ev.method for s, ev in (result.events or {}).items()}
    for row in result.rows:
        out.setdefault(row.get("side"), row.get("gait_method"))
    return {k: v for k, v in out.items() if k and v}


def _session_end_s(result: AnalysisResult) -> float:
    """Session length (s): the summary's, else the end of the last stride, else the data."""
    for key in ("duration_s", "session_s", "length_s"):
        if _finite(result.summary.get(key)):
            return float(result.summary[key])
    ends = [r["stride_start_s"] + r["stride_time_s"] for r in result.rows
            if _finite(r.get("stride_start_s")) and _finite(r.get("stride_time_s"))]
    if ends:
        return float(max(ends))
    if result.kinematics is not None and result.kinematics.n_samples:
        k = result.kinematics
        return float(k.start_s + k.n_samples / k.rate_hz)
    return float("nan")


def _has_emg(result: AnalysisResult) -> bool:
    return bool(_normalization(result)) or any(_means(result, m) for m in EMG_METRICS)


def _has_pelvis(result: AnalysisResult) -> bool:
    return bool(_means(result, "peak_anterior_tilt_deg")) or (
        result.kinematics is not None and result.kinematics.pelvic_tilt_deg is not None)


def symmetry_values(summary: Mapping[str, Any], metrics: Iterable[str]) -> dict[str, float]:
    """Metric → SI % from the summary, where both sides' means are large enough to compare."""
    si_all = summary.get("symmetry_pct") or {}
    out = {}
    for metric in metrics:
        means = side_means(summary, metric)
        si = si_all.get(metric)
        if len(means) < 2 or not _finite(si):
            continue
        if min(abs(v) for v in means.values()) < SI_FLOORS.get(metric, 0.0):
            continue
        out[metric] = float(si)
    return out


def key_findings(result: AnalysisResult, periods: Sequence[CuePeriod] | None = None
                 ) -> list[str]:
    """3–6 plain-language observations (one per theme) from the summary and the cues."""
    if _valid_strides(result) == 0:
        return ["No valid running strides were found, so no metrics could be computed. "
                "See “Data quality” below for what went wrong, then record again."]
    if periods is None:
        periods = cue_periods(result.cue_events, _session_end_s(result))
    normalization = _normalization(result)
    extension = _means(result, "peak_hip_extension_deg")
    findings = []
    if _has_emg(result):
        findings.append(ratio_sentence(_means(result, "glute_ham_ratio"), normalization))
    else:
        findings.append("No EMG in this session: the glute:hamstring ratio and muscle timing "
                        "were not measured.")
    findings.append(extension_sentence(extension))
    findings.append(tilt_sentence(_means(result, "peak_anterior_tilt_deg"), extension))
    metrics = [m for m in SYMMETRY_FINDING_METRICS
               if not (m == "glute_ham_ratio" and normalization != "mvc")]
    counts = _stride_counts(result)
    if sum(1 for v, _ in counts.values() if v) < 2:
        only = [SIDE_NAMES[s] for s, (v, _) in counts.items() if v]
        findings.append(f"Only the {only[0] if only else 'one'} side was measured, so left and "
                        "right could not be compared.")
    else:
        findings.append(symmetry_sentence(symmetry_values(result.summary, metrics)))
    if _has_emg(result):
        findings.append(onset_sentence(_means(result, "onset_lag_ms")))
    findings.append(cue_sentence(periods, _session_end_s(result)))
    return findings


# ================================================================================================
# Figures (one small function each; they return None when there is nothing to draw)
# ================================================================================================
def _new_figure(width: float, height: float, rows: int = 1, cols: int = 1
                ) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, axes


def _png_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_axis_off()


def _ensemble(result: AnalysisResult, side: str, name: str) -> Any:
    ens = (result.ensembles or {}).get(side, {}).get(name)
    if ens is None or not ens.n_strides or not np.isfinite(np.asarray(ens.mean)).any():
        return None
    return ens


def _band(ax: Axes, ens: Any, **style: Any) -> None:
    mean, sd = np.asarray(ens.mean, float), np.asarray(ens.sd, float)
    x = np.linspace(0, 100, len(mean))
    ax.fill_between(x, mean - sd, mean + sd, color=style["color"], alpha=0.15, linewidth=0)
    ax.plot(x, mean, linewidth=2, **style)


def _plot_hip_cycle(ax: Axes, result: AnalysisResult, sides: Sequence[str]) -> None:
    drawn = False
    low, high = TYPICAL_EXTENSION_DEG
    ax.axhspan(-high, -low, color=REFERENCE_COLOR, alpha=0.35, linewidth=0,
               label=f"typical peak extension ({low:.0f}–{high:.0f}°)")
    ax.axhline(0, color="#333333", linestyle="--", linewidth=1)
    for side in sides:
        ens = _ensemble(result, side, "hip_flexion_deg")
        if ens is None:
            continue
        drawn = True
        _band(ax, ens, color=SIDE_COLOR[side], linestyle=SIDE_LINE[side],
              label=f"{SIDE_NAMES[side]} (n = {ens.n_strides})")
        k = int(np.nanargmin(ens.mean))
        ax.plot(k * 100 / (len(ens.mean) - 1), ens.mean[k], marker="^", markersize=8,
                color=SIDE_COLOR[side], linestyle="none")
    if not drawn:
        _no_data(ax, "no hip angle")
        return
    bottom, top = ax.get_ylim()
    bottom = min(bottom, -high - 5.0)  # keep the typical-extension band in view
    ax.set_ylim(bottom, top + 0.45 * (top - bottom))  # room for the legend
    ax.set(xlim=(0, 100), xlabel="gait cycle (% from foot strike)",
           ylabel="hip angle (°)\n+ flexion / − extension", title="Hip flexion over the stride")
    ax.legend(loc="upper center", fontsize=7.5, frameon=False)


def _plot_emg_cycle(ax: Axes, result: AnalysisResult, side: str) -> None:
    glute = _ensemble(result, side, "glute_envelope")
    ham = _ensemble(result, side, "hamstring_envelope")
    ax.set_title(f"Muscles over the stride: {SIDE_NAMES[side]}")
    if glute is None and ham is None:
        _no_data(ax, "no EMG")
        return
    unit = (glute or ham).unit or "normalised"
    line = SIDE_LINE[side]
    if glute is not None:
        _band(ax, glute, color=GLUTE_COLOR, linestyle=line, label="glute max")
    if ham is not None:
        _band(ax, ham, color=HAMSTRING_COLOR, linestyle=line, marker="o", markersize=4,
              markevery=10, label="hamstrings")
    ax.set(xlim=(0, 100), xlabel="gait cycle (% from foot strike)",
           ylabel=f"activation ({unit})")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper center", fontsize=7.5, frameon=False)


def figure_gait_cycle(result: AnalysisResult, sides: Sequence[str]) -> Figure | None:
    """Hip flexion (both sides) and glute vs hamstring envelopes (one panel per side)."""
    if not any(_ensemble(result, s, n) is not None for s in sides
               for n in ("hip_flexion_deg", "glute_envelope", "hamstring_envelope")):
        return None
    emg_sides = _emg_cycle_sides(result, sides)
    panels = 1 + len(emg_sides)
    fig, axes = _new_figure(3.4 * panels, 3.4, 1, panels)
    _plot_hip_cycle(axes[0, 0], result, sides)
    for i, side in enumerate(emg_sides, start=1):
        _plot_emg_cycle(axes[0, i], result, side)
    return fig


def _emg_cycle_sides(result: AnalysisResult, sides: Sequence[str]) -> list[str]:
    """Sides that get a muscle panel: all of them when any side has EMG curves, else none."""
    has = any(_ensemble(result, s, n) is not None for s in sides
              for n in ("glute_envelope", "hamstring_envelope"))
    return list(sides) if has else []


def _trend_metrics(result: AnalysisResult) -> list[str]:
    """Per-stride panels of the session figure (no ratio panel without EMG)."""
    return [m for m in PANEL_CUES if m not in EMG_METRICS or _has_emg(result)]


def rolling_median(values: Sequence[float], window: int = 15) -> np.ndarray:
    """Centred rolling median ignoring NaN; NaN where fewer than ``window // 3`` values."""
    arr = np.asarray(values, dtype=float)
    out = np.full(len(arr), np.nan)
    half, need = window // 2, max(1, window // 3)
    for i in range(len(arr)):
        seg = arr[max(0, i - half): i + half + 1]
        seg = seg[np.isfinite(seg)]
        if len(seg) >= need:
            out[i] = float(np.median(seg))
    return out


def _time_scale(end_s: float) -> tuple[float, str]:
    return (60.0, "session time (min)") if _finite(end_s) and end_s > 120 else (1.0,
                                                                                "session time (s)")


def _shade_cues(ax: Axes, periods: Sequence[CuePeriod], cues: Sequence[str], scale: float
                ) -> None:
    seen = set()
    for p in periods:
        if p.cue not in cues:
            continue
        key = (p.cue, p.side)
        label = (f"“{CUES.get(p.cue, p.cue)}” ({SIDE_NAMES.get(p.side, 'both')})"
                 if key not in seen else None)
        seen.add(key)
        ax.axvspan(p.start_s / scale, p.end_s / scale, facecolor=SIDE_COLOR[p.side],
                   alpha=0.10, hatch=SIDE_HATCH[p.side], edgecolor=SIDE_COLOR[p.side],
                   linewidth=0, label=label)


def _plot_metric_trend(ax: Axes, result: AnalysisResult, metric: str,
                       periods: Sequence[CuePeriod], scale: float, sides: Sequence[str]) -> None:
    label, unit, _ = METRICS[metric]
    drawn = False
    for side in sides:
        rows = [r for r in result.rows if r.get("side") == side and r.get("valid")
                and _finite(r.get(metric)) and _finite(r.get("stride_start_s"))]
        if not rows:
            continue
        drawn = True
        t = np.array([r["stride_start_s"] for r in rows]) / scale
        y = np.array([r[metric] for r in rows], dtype=float)
        ax.plot(t, y, linestyle="none", marker="o", markersize=2.5, alpha=0.35,
                color=SIDE_COLOR[side])
        ax.plot(t, rolling_median(y), color=SIDE_COLOR[side], linestyle=SIDE_LINE[side],
                linewidth=2, label=f"{SIDE_NAMES[side]} (rolling median of 15)")
    relative = metric == "glute_ham_ratio" and _normalization(result) == "relative"
    ax.set_title(label + (" (relative)" if relative else ""))
    if not drawn:
        _no_data(ax, "no EMG" if metric in EMG_METRICS and not _has_emg(result)
                 else "no values")
        return
    if metric == "peak_hip_extension_deg":
        low, high = TYPICAL_EXTENSION_DEG
        ax.axhspan(low, high, color=REFERENCE_COLOR, alpha=0.25, linewidth=0,
                   label="typical (9–10°)")
    elif metric == "glute_ham_ratio" and _normalization(result) == "mvc":
        ax.axhline(RATIO_TYPICAL, color=REFERENCE_COLOR, linestyle=":", linewidth=1.5,
                   label=f"typical (≥ {RATIO_TYPICAL:.1f})")
    _shade_cues(ax, periods, PANEL_CUES.get(metric, ()), scale)
    ax.set(ylabel=f"{label.lower()} ({unit})" if unit else label.lower())
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)


def figure_session_trends(result: AnalysisResult, periods: Sequence[CuePeriod],
                          sides: Sequence[str]) -> Figure | None:
    """Glute:hamstring ratio and peak hip extension per stride across the session."""
    if _valid_strides(result) == 0:
        return None
    end_s = _session_end_s(result)
    scale, xlabel = _time_scale(end_s)
    metrics = _trend_metrics(result)
    fig, axes = _new_figure(10, 0.6 + 2.3 * len(metrics), len(metrics), 1)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        _plot_metric_trend(ax, result, metric, periods, scale, sides)
        if _finite(end_s):
            ax.set_xlim(0, end_s / scale)
    axes[-1, 0].set_xlabel(xlabel)
    return fig


def figure_cue_timeline(periods: Sequence[CuePeriod], end_s: float) -> Figure | None:
    """One row per cue (and side): when it was active; hatched = caution level."""
    if not periods:
        return None
    keys = list(dict.fromkeys((p.cue, p.side, p.channel) for p in periods))
    scale, xlabel = _time_scale(end_s)
    fig, axes = _new_figure(10, 0.9 + 0.42 * len(keys))
    ax = axes[0, 0]
    for row, key in enumerate(keys):
        for p in (p for p in periods if (p.cue, p.side, p.channel) == key):
            ax.broken_barh([(p.start_s / scale, max(p.duration_s / scale, 1e-3))],
                           (row - 0.35, 0.7), facecolors=SIDE_COLOR[p.side],
                           edgecolor="white", alpha=0.85,
                           hatch="///" if p.level == "caution" else None)
    labels = [f"{CUES.get(c, c)}{f' [{ch}]' if ch else ''} — "
              f"{SIDE_NAMES.get(s, 'both sides')}" for c, s, ch in keys]
    ax.set_yticks(range(len(keys)), labels, fontsize=8.5)
    ax.set_ylim(len(keys) - 0.5, -0.5)
    ax.grid(False, axis="y")
    ax.set_xlabel(xlabel)
    if _finite(end_s):
        ax.set_xlim(0, end_s / scale)
    ax.set_title("When cues were active (hatched = caution level)")
    return fig


# ================================================================================================
# HTML sections
# ================================================================================================
CSS = """
:root { --ink:#1d1d1f; --muted:#5f6368; --line:#d9d9de; --soft:#f5f6f8; --alert:#9a3412; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0; background: #fff; line-height: 1.45; }
main { max-width: 1060px; margin: 0 auto; padding: 28px 32px 40px; }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 32px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid var(--ink); }
h3 { font-size: 1rem; margin: 18px 0 6px; }
.lead { color: var(--muted); margin: 0 0 16px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0;
          padding: 14px 16px; background: var(--soft); border-radius: 6px; font-size: .93rem; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; }
ul.findings { padding-left: 1.2em; } ul.findings li { margin: 6px 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: 6px 0 4px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.n { color: var(--muted); font-size: .8em; }
.alert { color: var(--alert); font-weight: 700; }
.caution { color: #7c5e00; font-weight: 600; }
.note { color: var(--muted); font-size: .85rem; }
figure { margin: 14px 0 22px; } figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: 4px; }
.empty { padding: 10px 14px; background: var(--soft); border-left: 4px solid var(--muted); }
.advice { padding: 10px 14px; background: #eef6f1; border-left: 4px solid #009E73; }
footer { margin-top: 36px; padding-top: 10px; border-top: 1px solid var(--line);
         color: var(--muted); font-size: .85rem; }
@media print { main { padding: 0; } section, figure, table { break-inside: avoid; } }
"""

NORMALIZATION_TEXT = {
    "mvc": "MVC (share of each muscle's maximal voluntary contraction)",
    "relative": "relative — ratios compare within this session only",
    "": "no EMG",
}
GAIT_METHOD_TEXT = {
    "shank_gyro": "shank gyroscope (foot strike and toe-off)",
    "thigh_flexion": "thigh peak flexion (foot strike estimated; no shank sensors)",
}


def _empty(text: str) -> str:
    return f'<p class="empty">{_esc(text)}</p>'


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_esc(title)}</h2>\n{body}\n</section>'


def _header_html(result: AnalysisResult, title: str, athlete: str | None, source: str) -> str:
    items: list[tuple[str, str]] = []
    if athlete:
        items.append(("Athlete", _esc(athlete)))
    started = fmt_start_time(result.summary.get("start_time"))
    if started:
        items.append(("Date", _esc(started)))
    source = source or str(result.summary.get("source") or "")
    if source:
        items.append(("Recording", _esc(source)))
    items.append(("Session length", fmt_duration(_session_end_s(result))))
    counts = _stride_counts(result)
    strides = "; ".join(f"{SIDE_NAMES[s]}: {v} valid / {r} rejected"
                        for s, (v, r) in counts.items()) or "none found"
    items.append(("Strides", strides))
    norm = _normalization(result)
    items.append(("EMG normalisation", _esc(NORMALIZATION_TEXT.get(norm, norm))))
    methods = _gait_methods(result)
    if methods:
        distinct = set(methods.values())
        text = ("; ".join(f"{SIDE_NAMES.get(s, s)}: {GAIT_METHOD_TEXT.get(m, m)}"
                          for s, m in methods.items())
                if len(distinct) > 1 else GAIT_METHOD_TEXT.get(only := distinct.pop(), only))
        items.append(("Gait events", _esc(text)))
    meta = "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return (f'<header id="header">\n<h1>{_esc(title)}</h1>\n'
            '<p class="lead">How the hips and the glute and hamstring muscles worked during '
            "this run. These are coaching observations, not a medical diagnosis.</p>\n"
            f'<dl class="meta">\n{meta}\n</dl>\n</header>')


def _findings_html(findings: Sequence[str]) -> str:
    items = "\n".join(f"<li>{_esc(f)}</li>" for f in findings)
    return _section("findings", "Key findings", f'<ul class="findings">\n{items}\n</ul>')


def _si_cell(result: AnalysisResult, metric: str, means: Mapping[str, float]) -> str:
    if len(means) < 2:
        return "—"
    decimals, unit = METRICS[metric][2], METRICS[metric][1]
    if metric in TIMING_METRICS:
        return f"R − L {fmt_num(means['r'] - means['l'], decimals, unit, signed=True)}"
    si = (result.summary.get("symmetry_pct") or {}).get(metric)
    if not _finite(si):
        return "—"
    if min(abs(v) for v in means.values()) < SI_FLOORS.get(metric, 0.0):
        return '<span class="note">— (values near zero)</span>'
    text = fmt_num(si, 0, "%", signed=True)
    if abs(si) > SI_ALERT_PCT:
        return f'<span class="alert">⚠ {text} asymmetric</span>'
    if abs(si) > SI_CAUTION_PCT:
        return f'<span class="caution">{text} caution</span>'
    return text


def _table_html(result: AnalysisResult, sides: Sequence[str]) -> str:
    if _valid_strides(result) == 0:
        return _section("metrics", "Stride metrics",
                        _empty("No valid strides: there are no statistics to show."))
    head = "".join(f"<th>{SIDE_NAMES[s].capitalize()} (mean ± SD)</th>" for s in sides)
    body = []
    relative = _normalization(result) == "relative"
    for metric in SUMMARY_METRICS:
        label, unit, decimals = METRICS.get(metric, (metric, "", 2))
        if metric == "glute_ham_ratio" and relative:
            label += " (relative)"
        cells = []
        for side in sides:
            stat = _side_stats(result, side).get(metric) or {}
            if _finite(stat.get("mean")):
                sd = stat.get("sd") if _finite(stat.get("sd")) else 0.0
                value = fmt_num(stat["mean"], decimals, signed=metric in TIMING_METRICS)
                spread = fmt_num(sd, decimals, unit)
                cells.append(f'<td class="num">{value} ± {spread} '
                             f'<span class="n">n={int(stat.get("n") or 0)}</span></td>')
            else:
                why = ("no EMG" if metric in EMG_METRICS and not _has_emg(result) else
                       "no pelvis sensor" if metric in PELVIS_METRICS and not _has_pelvis(result)
                       else "not computed")
                cells.append(f'<td class="note">— ({why})</td>')
        si = _si_cell(result, metric, _means(result, metric))
        body.append(f"<tr><th scope=\"row\">{_esc(label)}</th>{''.join(cells)}"
                    f'<td class="num">{si}</td></tr>')
    note = ('<p class="note">Symmetry index SI = (R − L) / mean(R, L) × 100%: positive = more '
            f"on the right. |SI| above {SI_ALERT_PCT:.0f}% is marked “asymmetric”, "
            f"{SI_CAUTION_PCT:.0f}–{SI_ALERT_PCT:.0f}% “caution”. Timings relative to foot "
            "strike are compared as the difference R − L (negative onset = before foot "
            "strike; positive lag = glutes after hamstrings).</p>")
    table = (f"<table>\n<thead><tr><th>Metric</th>{head}<th>Symmetry</th></tr></thead>\n"
             "<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n" + note)
    return _section("metrics", "Stride metrics", table)


def _figure_html(fig: Figure | None, alt: str, caption: str, missing: str) -> str:
    if fig is None:
        return _empty(missing)
    width = round(fig.get_figwidth() * fig.dpi)
    return (f'<figure>\n<img src="{_png_data_uri(fig)}" alt="{_esc(alt)}" '
            f'style="max-width:{width}px">\n'
            f"<figcaption>{_esc(caption)}</figcaption>\n</figure>")


def _figures_html(result: AnalysisResult, periods: Sequence[CuePeriod],
                  sides: Sequence[str]) -> str:
    end_s = _session_end_s(result)
    emg = bool(_emg_cycle_sides(result, sides))
    muscles = (" Right: glute (green) and hamstring (purple, dots) activity over the stride."
               if emg else " No EMG in this session, so muscle activity is not shown.")
    trend = ("glute:hamstring ratio and peak hip extension" if _has_emg(result)
             else "peak hip extension (no EMG, so no glute:hamstring ratio)")
    parts = [
        "<h3>The average stride</h3>",
        _figure_html(
            figure_gait_cycle(result, sides) if sides else None,
            "Hip flexion" + (" and glute and hamstring activation" if emg else "")
            + " over the gait cycle",
            "Hip angle over one stride, from foot strike (0%) to the next (100%); line = "
            "average, band = ± 1 SD, ▲ = peak extension; the grey band is the typical peak "
            "extension, the dashed line standing posture." + muscles,
            "No valid strides: no average stride to show."),
        "<h3>Across the session</h3>",
        _figure_html(
            figure_session_trends(result, periods, sides),
            f"Per-stride {trend} across the session",
            f"Per stride: {trend}. Each dot is one stride; the line is the running median of "
            "15 strides." + (" Hatched areas: periods when the related cue was active."
                             if periods else ""),
            "No valid strides: nothing to show across the session."),
    ]
    if periods:
        parts += ["<h3>Cue timeline</h3>",
                  _figure_html(figure_cue_timeline(periods, end_s), "Cue timeline",
                               "Bars show when each cue was active (blue = left, vermillion "
                               "= right, grey = both sides).", "")]
    else:
        parts.append('<p class="note">No cues were raised, so there is no cue timeline.</p>')
    return _section("figures", "Figures", "\n".join(parts))


# --- prone hip extension test -----------------------------------------------------------------
#: (candidate keys, column label, unit, decimals, signed).
PHE_COLUMNS: tuple[tuple[tuple[str, ...], str, str, int, bool], ...] = (
    (("glute_onset_ms", "glute_max_onset_ms"), "Glute max onset", "ms", 0, True),
    (("hamstring_onset_ms", "hamstrings_onset_ms"), "Hamstring onset", "ms", 0, True),
    (("erector_onset_ms", "erector_spinae_onset_ms"), "Erector spinae onset", "ms", 0, True),
    (("order", "firing_order"), "Firing order", "", 0, False),
    (("glute_ham_lag_ms", "lag_ms", "onset_lag_ms"), "Glute − hamstring lag", "ms", 0, True),
    (("pelvic_tilt_deg",), "Pelvic tilt", "°", 1, False),
    (("pelvic_rotation_deg",), "Pelvic rotation", "°", 1, False),
    (("pelvic_flag", "pelvic_motion_flag", "n_pelvic_flags"), "Pelvic motion > 5°", "", 0,
     False),
    (("lift_deg",), "Lift", "°", 1, False),
    (("n_reps",), "Repetitions", "", 0, False),
)
PHE_MUSCLES = {"glute_max": "glute max", "hamstring": "hamstrings",
               "erector_spinae": "erector spinae"}
PHE_CAVEAT = ("In healthy people the hamstrings often fire first, so a hamstrings-first order "
              "is not a problem by itself. The test's agreement between examiners is moderate "
              "(κ ≈ 0.7): repeat it on another day before changing much. This is coaching "
              "advice, not a diagnosis.")


def _phe_value(key: str, value: Any, unit: str, decimals: int, signed: bool) -> str:
    if isinstance(value, bool):
        return '<span class="alert">yes — flagged</span>' if value else "no"
    if isinstance(value, list | tuple):
        return _esc(" → ".join(PHE_MUSCLES.get(str(v), str(v)) for v in value)) or "—"
    if key == "n_pelvic_flags" and _finite(value):
        return f'<span class="alert">{int(value)} flagged</span>' if value else "none"
    if _finite(value):
        return fmt_num(value, decimals, unit, signed=signed)
    return "—" if value is None or isinstance(value, float) else _esc(value)


def _phe_table(records: Sequence[tuple[str, Mapping[str, Any]]], first: str) -> str:
    columns = [c for c in PHE_COLUMNS if any(k in rec for _, rec in records for k in c[0])]
    head = f"<th>{_esc(first)}</th>" + "".join(f"<th>{_esc(c[1])}</th>" for c in columns)
    lines = []
    for label, rec in records:
        cells = []
        for keys, _, unit, decimals, signed in columns:
            key = next((k for k in keys if k in rec), keys[0])
            cells.append(f'<td class="num">{_phe_value(key, rec.get(key), unit, decimals, signed)}'
                         "</td>")
        lines.append(f"<tr><td>{_esc(label)}</td>{''.join(cells)}</tr>")
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(lines)
            + "\n</tbody>\n</table>")


def _phe_side(value: Any) -> str:
    text = str(value).lower()
    return {"left": "l", "right": "r"}.get(text, text)


def _phe_html(phe: Mapping[str, Any] | None) -> str:
    if not phe:
        return _section("phe", "Prone hip extension test",
                        '<p class="note">No prone hip extension test in this session.</p>')
    parts = ['<p class="note">Onsets in ms relative to the start of the leg lift (negative = '
             "before the leg moved).</p>"]
    reps = [r for r in phe.get("repetitions") or [] if isinstance(r, Mapping)]
    if reps:
        numbered: list[tuple[str, Mapping[str, Any]]] = []
        counter: Counter[str] = Counter()
        for rep in reps:
            side = _phe_side(rep.get("side", ""))
            counter[side] += 1
            numbered.append((f"{SIDE_NAMES.get(side, side or '?')} {counter[side]}", rep))
        numbered.sort(key=lambda item: item[0])
        parts += ["<h3>Repetitions</h3>", _phe_table(numbered, "Repetition")]
    else:
        parts.append(_empty("No repetitions were found in the test recording."))
    sides = phe.get("sides") or {}
    averages = [(SIDE_NAMES.get(_phe_side(s), str(s)).capitalize(), v)
                for s, v in sides.items() if isinstance(v, Mapping)]
    if averages:
        parts += ["<h3>Averages per side</h3>", _phe_table(averages, "Side")]
    advice = phe.get("advice")
    texts: list[str] = []
    if isinstance(advice, str):
        texts = [advice]
    elif isinstance(advice, Mapping):
        for side in sorted(advice, key=lambda s: SIDES.index(_phe_side(s))
                           if _phe_side(s) in SIDES else 9):
            value = advice[side]
            texts += [value] if isinstance(value, str) else [str(v) for v in value or []]
    elif isinstance(advice, list | tuple):
        texts = [str(v) for v in advice]
    if texts:
        parts.append('<div class="advice"><h3>Advice</h3>'
                     + "".join(f"<p>{_esc(t)}</p>" for t in texts) + "</div>")
    parts.append(f'<p class="note"><strong>Please note:</strong> {_esc(PHE_CAVEAT)}</p>')
    return _section("phe", "Prone hip extension test", "\n".join(parts))


# --- data quality -------------------------------------------------------------------------------
def _row_flags(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """(flag, side) → strides carrying it."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        for flag in str(row.get("quality") or "").split(";"):
            if flag.strip():
                counts[(flag.strip(), str(row.get("side", "")))] += 1
    return dict(counts)


def _quality_html(result: AnalysisResult) -> str:
    parts = []
    problems = list(dict.fromkeys(str(p) for p in result.problems or []))
    if problems:
        parts.append("<h3>Problems found</h3><ul>"
                     + "".join(f"<li>{_esc(p)}</li>" for p in problems) + "</ul>")
    else:
        parts.append("<p>No problems were reported while reading and analysing the data.</p>")
    flags = dict(getattr(result.activity, "flags", None) or {})
    flags.update((result.summary.get("quality") or {}).get("channel_flags") or {})
    if flags:
        parts.append("<h3>EMG channel checks</h3><ul>" + "".join(
            f"<li>{_esc(ch)}: {_esc(', '.join(map(str, v)) if isinstance(v, list | tuple) else v)}"
            "</li>" for ch, v in sorted(flags.items())) + "</ul>")
    totals = Counter(str(r.get("side", "")) for r in result.rows)
    row_flags = _row_flags(result.rows)
    if row_flags:
        lines = "".join(
            f"<tr><td>{_esc(flag)}</td><td>{_esc(SIDE_NAMES.get(side, side))}</td>"
            f'<td class="num">{n} of {totals[side]}</td></tr>'
            for (flag, side), n in sorted(row_flags.items()))
        parts.append("<h3>Per-stride flags</h3><table><thead><tr><th>Flag (kind:channel)</th>"
                     "<th>Side</th><th>Strides</th></tr></thead><tbody>" + lines
                     + "</tbody></table>")
    rejected = []
    for side, events in sorted((result.events or {}).items()):
        reasons = Counter(str(r) for r, ok in zip(events.rejected_reason, events.valid,
                                                  strict=False) if not ok and r)
        if reasons:
            rejected.append(f"<li>{_esc(SIDE_NAMES.get(side, side))}: " + _esc(
                ", ".join(f"{reason} ({n})" for reason, n in reasons.most_common())) + "</li>")
    if rejected:
        parts.append("<h3>Rejected strides</h3><ul>" + "".join(rejected) + "</ul>")
    missing = []
    for side, (valid, _) in _stride_counts(result).items():
        if not valid:
            continue
        names = [METRICS[m][0] for m in SUMMARY_METRICS
                 if not ((_side_stats(result, side).get(m) or {}).get("n"))]
        if names:
            missing.append(f"<li>{SIDE_NAMES[side]}: {_esc(', '.join(names))}</li>")
    if missing:
        parts.append("<h3>Not computed</h3><p>No value in any valid stride (the reasons are "
                     "listed above):</p><ul>" + "".join(missing) + "</ul>")
    return _section("quality", "Data quality", "\n".join(parts))


# ================================================================================================
# The report
# ================================================================================================
def render_report(result: AnalysisResult, *, title: str, athlete: str | None = None,
                  source: str = "") -> str:
    """The whole report as one self-contained HTML document (inline CSS, base64 PNG figures).

    Parameters
    ----------
    result
        One analysed session.
    title
        Heading of the report (escaped, like every user-supplied text).
    athlete
        Athlete's name, shown in the header when given.
    source
        Recording file name (falls back to ``summary["source"]``).
    """
    periods = cue_periods(result.cue_events or [], _session_end_s(result))
    sides = [s for s, (valid, _) in _stride_counts(result).items() if valid]
    body = "\n".join([
        _header_html(result, title, athlete, source),
        _findings_html(key_findings(result, periods)),
        _table_html(result, sides),
        _figures_html(result, periods, sides),
        _phe_html(result.phe),
        _quality_html(result),
        f"<footer>HipStride {_esc(__version__)} — for coaching, not a medical diagnosis."
        "</footer>",
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n</body>\n</html>\n")
