"""HTML for the Live and Coach pages: big numbers, cue banners, health lists. Pure strings.

Readable from a treadmill two metres away: numbers in 4.2 rem type, the cue in 2.6 rem. Status
colours are Okabe–Ito (blue / orange / vermillion), and never alone: each level also has an
icon and a word, and alerts a heavier border. Every dynamic text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from .feed import ChannelIssue, CueView, MetricTile, StationView
from .live_phase import PhaseView, Signal

__all__ = ["LEVEL_STYLE", "cue_banner", "issues_list", "phase_banner", "side_panel",
           "signals_row", "sparkline", "station_card", "tile"]

#: level -> (colour, icon, word). Okabe–Ito: blue, orange, vermillion; greys for no rule/data.
LEVEL_STYLE = {
    "ok": ("#0072B2", "✓", "On target"),
    "info": ("#555555", "•", ""),
    "none": ("#999999", "–", "No data"),
    "caution": ("#E69F00", "!", "Watch"),
    "alert": ("#D55E00", "▲", "Cue"),
}
SIDE_WORDS = {"l": "Left", "r": "Right"}
#: The coach card's column headers: short enough for two cards side by side at 1280 px; the
#: full name is the header's tooltip and is in the legend under the table.
SHORT_LABELS = {"glute_ham_ratio": "G:H ratio", "peak_hip_extension_deg": "Hip ext.",
                "peak_anterior_tilt_deg": "Pelvic tilt", "cadence_spm": "Cadence"}
_TREND_ARROW = {"rising": "↗ rising", "falling": "↘ falling", "steady": "→ steady", "": ""}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def sparkline(values: Sequence[float], colour: str, *, width: int = 150, height: int = 34
              ) -> str:
    """The last strides as a small SVG polyline (gaps skipped); empty with under two values."""
    pts = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if len(pts) < 2:
        return ""
    low, high = min(v for _, v in pts), max(v for _, v in pts)
    span = (high - low) or 1.0
    n = max(len(values) - 1, 1)
    coords = " ".join(f"{2 + i * (width - 4) / n:.1f},"
                      f"{height - 3 - (v - low) / span * (height - 6):.1f}" for i, v in pts)
    last_x, last_y = coords.split(" ")[-1].split(",")
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="trend of the last '
            f'{len(pts)} strides"><polyline fill="none" stroke="{colour}" stroke-width="2.5" '
            f'points="{coords}"/><circle cx="{last_x}" cy="{last_y}" r="3.5" fill="{colour}"/>'
            "</svg>")


def tile(t: MetricTile) -> str:
    """One big number with its label, status (colour, icon, word) and trend."""
    colour, icon, word = LEVEL_STYLE.get(t.level, LEVEL_STYLE["info"])
    unit = f" ({t.unit})" if t.unit not in ("", "°", "%") else ""
    status = f"{icon} {word}" if word else ""
    if t.reason and t.level in ("caution", "alert"):
        status += f" · {t.reason}"
    border = 6 if t.level == "alert" else 3
    return (
        f'<div class="hs-tile hs-{_e(t.level)}" data-metric="{_e(t.metric)}" '
        f'data-side="{_e(t.side)}" style="border:{border}px solid {colour};border-radius:10px;'
        'padding:6px 12px;margin-bottom:8px">'
        f'<div style="font-size:1.05rem;color:#333">{_e(t.label)}{_e(unit)}</div>'
        f'<div style="display:flex;align-items:center;gap:14px">'
        f'<span class="hs-value" style="font-size:4.2rem;font-weight:700;line-height:1.1">'
        f"{_e(t.text)}</span>{sparkline(t.trend, colour)}</div>"
        f'<div style="font-size:1.05rem;font-weight:600;color:{colour}">{_e(status)}'
        f'<span style="color:#333;font-weight:400"> {_e(_TREND_ARROW.get(t.trend_word, ""))}'
        "</span></div></div>")


def side_panel(view: StationView, side: str, now_ns: int) -> str:
    """A side's heading, its four tiles and which stride they come from."""
    row = view.last_stride.get(side)
    if row is None:
        where = "no stride yet"
        marker = ""
    else:
        ago = max(0.0, (now_ns - int(row.get("received_ns") or now_ns)) / 1e9)
        where = f"stride {row.get('stride_index')} · {ago:.0f} s ago"
        marker = f"{side}:{row.get('stride_index')}"
    tiles = "".join(tile(t) for t in view.tiles[side])
    return (f'<div class="hs-side" data-side="{side}">'
            f'<div style="font-size:1.6rem;font-weight:700">{SIDE_WORDS[side]}</div>'
            f'<div class="hs-last-stride" data-stride="{_e(marker)}" '
            f'style="font-size:0.95rem;color:#555;margin-bottom:6px">{_e(where)}</div>'
            f"{tiles}</div>")


def cue_banner(cues: Sequence[CueView], *, big: int = 2) -> str:
    """The active cues in plain words, alerts first, the same words on both sides joined
    ("Drive from the glutes (left and right)"); the first ``big`` large, the rest smaller.
    A calm line when there is none."""
    if not cues:
        colour, icon, _ = LEVEL_STYLE["ok"]
        return (f'<div class="hs-cue hs-none" style="font-size:1.6rem;color:{colour};'
                f'padding:6px 0">{icon} No cue: keep going</div>')
    grouped: dict[tuple[str, str, str | None], list[CueView]] = {}
    for c in cues:
        grouped.setdefault((c.words, c.level, c.channel), []).append(c)
    parts = []
    for i, ((words, level, channel), group) in enumerate(grouped.items()):
        colour, icon, _ = LEVEL_STYLE["alert" if level == "alert" else "caution"]
        sides = [SIDE_WORDS[c.side].lower() for c in group if c.side in SIDE_WORDS]
        where = f" ({' and '.join(dict.fromkeys(sides))})" if sides else ""
        if channel:
            where = f": {channel}"
        if level == "caution":
            where += " — caution"
        size, small = ("2.6rem", "1.4rem") if i < big else ("1.4rem", "1.1rem")
        parts.append(
            f'<div class="hs-cue hs-{_e(level)}" data-cue="{_e(group[0].cue)}" '
            f'style="font-size:{size};font-weight:700;border-left:12px solid {colour};'
            f'padding:4px 14px;margin:6px 0;background:#f7f7f7">{icon} {_e(words)}'
            f'<span style="font-size:{small};font-weight:400">{_e(where)}</span></div>')
    return "".join(parts)


def phase_banner(phase: PhaseView) -> str:
    """What the athlete is doing while not running (a calibration phase, the prone test, the
    engine's own calibration): in place of the running cue, which would be wrong then."""
    colour = "#555555"
    detail = (f'<div class="hs-phase-detail" style="font-size:2.2rem;font-weight:700">'
              f"{_e(phase.detail)}</div>" if phase.detail else "")
    return (f'<div class="hs-phase" data-phase="{_e(phase.kind)}" data-step="{_e(phase.step)}"'
            f' style="border-left:12px solid {colour};padding:4px 14px;margin:6px 0;'
            f'background:#f0f0f0"><div style="font-size:1.6rem;font-weight:600">'
            f"{_e(phase.title)}</div>{detail}</div>")


def signals_row(signals: Sequence[Signal], *, note: str = "") -> str:
    """The live numbers that mean something before any stride (EMG envelopes, hip and pelvis
    angles), small, in one wrapping row; ``note`` says what they are relative to."""
    if not signals:
        return ""
    items = "".join(
        f'<span class="hs-signal" data-signal="{_e(s.key)}" style="display:inline-block;'
        f'margin:0 18px 4px 0"><span style="color:#555">{_e(s.label)}</span> '
        f'<b class="hs-signal-value" style="font-size:1.5rem">{_e(s.text)}</b></span>'
        for s in signals)
    tail = (f'<div style="font-size:0.9rem;color:#666">{_e(note)}</div>' if note else "")
    return (f'<div class="hs-signals" style="margin:4px 0 10px 0"><div style="font-size:1.05rem;'
            f'font-weight:600;color:#333">Live signals</div>{items}{tail}</div>')


def issues_list(issues: Iterable[ChannelIssue]) -> str:
    """Signal problems named per channel, each with what to check."""
    items = [f'<li data-where="{_e(i.where)}" data-problem="{_e(i.problem)}">'
             f"<b>{_e(i.where)}</b> — {_e(i.message)}</li>" for i in issues]
    if not items:
        return ""
    colour = LEVEL_STYLE["alert"][0]
    return (f'<div class="hs-issues" style="border-left:8px solid {colour};padding:4px 12px;'
            'font-size:1.1rem"><b>▲ Check the sensors</b><ul style="margin:4px 0">'
            + "".join(items) + "</ul></div>")


def _full_label(t: MetricTile) -> str:
    unit = f" ({t.unit})" if t.unit not in ("", "°", "%") else ""
    return f"{t.label}{unit}"


def station_card(view: StationView, now_ns: int) -> str:
    """One station in the coach view: name, state, why it needs attention, and both sides'
    numbers in a table that fits the card (short headers; full names as tooltips and in a
    legend)."""
    level = ("alert" if view.attention >= 2 else "caution" if view.attention == 1 else "ok")
    colour, icon, _ = LEVEL_STYLE[level]
    words = {3: "Needs attention: silent", 2: "Needs attention", 1: "Watch", 0: "All good"}
    doing = view.phase_view
    phase = (doing.title if doing is not None and not doing.running
             and doing.kind != "unknown" else view.phase)  # "MVC trial 2 of 6: …"
    who = " · ".join(x for x in (view.athlete, view.session, phase) if x)
    shown = view.attention_reasons[:4]
    more = len(view.attention_reasons) - len(shown)
    reasons = "".join(f"<li>{_e(r)}</li>" for r in shown) + (
        f"<li>and {more} more</li>" if more > 0 else "")
    cell = "padding:2px 4px;text-align:right;white-space:nowrap"
    rows = []
    for side in ("l", "r"):
        cells = "".join(
            f'<td class="hs-cell hs-{_e(t.level)}" data-metric="{_e(t.metric)}" '
            f'title="{_e(_full_label(t))}: {_e(t.text)}" style="{cell}">'
            f'<span style="color:{LEVEL_STYLE[t.level][0]}">{LEVEL_STYLE[t.level][1]}</span> '
            f"<b style='font-size:1.35rem'>{_e(t.text)}</b></td>" for t in view.tiles[side])
        rows.append(f"<tr><th scope='row' style='text-align:left;padding:2px 4px'>"
                    f"{SIDE_WORDS[side]}</th>{cells}</tr>")
    tiles = view.tiles["l"]
    head = "".join(
        f"<th scope='col' title=\"{_e(_full_label(t))}\" style='{cell};font-weight:400;"
        f"color:#333'>{_e(SHORT_LABELS.get(t.metric, t.label))}</th>" for t in tiles)
    legend = " · ".join(f"{_e(SHORT_LABELS[t.metric])} = {_e(_full_label(t).lower())}"
                        for t in tiles if t.metric in SHORT_LABELS
                        and SHORT_LABELS[t.metric].lower() != _full_label(t).lower())
    return (
        f'<div class="hs-station" data-station="{_e(view.station)}" data-attention='
        f'"{view.attention}" style="border:{6 if view.attention >= 2 else 3}px solid {colour};'
        'border-radius:10px;padding:8px 12px;margin-bottom:12px;overflow-wrap:anywhere">'
        f'<div style="font-size:1.5rem;font-weight:700">{icon} {_e(view.station)} '
        f'<span style="font-size:1.1rem;font-weight:600;color:{colour}">'
        f"{words[view.attention]}</span></div>"
        f'<div style="color:#555">{_e(who) or "no session"} · {view.strides_total} strides'
        "</div>"
        + (f'<ul class="hs-reasons" style="margin:4px 0">{reasons}</ul>' if reasons else "")
        + '<table style="width:100%;table-layout:fixed;border-collapse:collapse;'
        'margin-top:4px"><colgroup><col style="width:16%"></colgroup>'
        f"<tr><th></th>{head}</tr>{''.join(rows)}</table>"
        + (f'<div class="hs-legend" style="font-size:0.8rem;color:#666;margin-top:2px">'
           f"{legend}</div>" if legend else "")
        + "</div>")
