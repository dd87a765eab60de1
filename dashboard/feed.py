"""The live feed's state: MQTT messages in, per-station state and what the pages show out.

Pure: no MQTT, no Streamlit. :class:`Feed` takes each message (topic, payload, the time it
arrived) and keeps, per station, a bounded picture of it: the last strides, about ten seconds
of hip angle, pelvic tilt and EMG envelope (the live message's ``series``, ≤ 25 Hz; one point
per message from a pipeline without it), the active cues (the live message's ``active_cues``,
kept up to date between live messages by the ``cues`` events), the edge agent's last status
(per-channel health) and the pipeline's session, results and ingest messages. Nothing grows
without bound, and a malformed message is counted with a reason, never raised.

:func:`station_view` turns one station's state into what the Live and Coach pages draw: per
side the latest stride's headline numbers with a status level and their recent trend, the
active cues in plain words, signal problems named per channel, and a plain sentence when the
station or the pipeline went silent. Status levels follow the engine's cue thresholds
(:mod:`hipstride.pipeline.engine.cues`): a metric whose cue is active is an *alert*, one past
the cue's absolute rule without a cue yet is a *caution*.

Payloads (contract v1) are built by the pipeline (``pipeline/service/runtime.py``: ``live``,
``cues``), its session control (``session``) and the edge agent (``edge/agent.py``:
``status``); ``results`` and ``ingest`` are kept as they come and treated as optional.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hipstride import topics
from hipstride.pipeline.engine.cues import (
    POPULATION_REFERENCE,
    SIGNAL_FLAG_KINDS,
    CueThresholds,
    parse_quality_flags,
)
from hipstride.pipeline.engine.schema import CUES
from hipstride.pipeline.report import METRICS, fmt_num

from .live_phase import PhaseView, Signal, phase_view, signals

__all__ = [
    "HEADLINE", "KINDS", "LEVELS", "ChannelIssue", "CueView", "Feed", "MetricTile",
    "StationState", "StationView", "apply_message", "channel_issues", "coach_order",
    "metric_level", "series", "silence_message", "station_view", "trend_word",
]

#: Topic kinds the dashboard subscribes to (``topics.subscription(kind)`` for each).
KINDS = (topics.LIVE, topics.CUES, topics.STATUS, topics.SESSION, topics.RESULTS,
         topics.INGEST)
SUPPORTED_VERSION = 1
#: The live page's headline numbers per side, in the order shown.
HEADLINE = ("glute_ham_ratio", "peak_hip_extension_deg", "peak_anterior_tilt_deg",
            "cadence_spm")
#: Status levels, best first; "none" = no value, "info" = a number without a rule (cadence).
LEVELS = ("ok", "info", "none", "caution", "alert")
#: Which headline metric each cue speaks about.
CUE_METRIC = {"hamstring_dominant": "glute_ham_ratio", "glutes_late": "glute_ham_ratio",
              "limited_hip_extension": "peak_hip_extension_deg",
              "pelvis_tipping_forward": "peak_anterior_tilt_deg"}
WINDOW_S = 10.0          # rolling charts: this much of hip angle, tilt and envelopes
MAX_SAMPLES = 400        # ... and never more than this many points per ring (series ≤ 25 Hz)
MAX_STRIDES = 120        # strides kept per station (both sides)
TREND_STRIDES = 15       # strides per side in a tile's trend
MAX_EVENTS = 30          # cue events and pipeline problems kept per station
SILENT_AFTER_S = 5.0     # a station that sent nothing for this long is silent
FORGET_AFTER_S = 600.0   # the coach view leaves out stations not heard of for this long
#: The absolute parts of the engine's cue rules (defaults), for *caution* without a cue.
_TH = CueThresholds()
RATIO_LOW = (1.0 - _TH.ratio_drop_frac) * POPULATION_REFERENCE["glute_ham_ratio"]
EXTENSION_LOW_DEG = _TH.extension_min_deg
TILT_HIGH_DEG = POPULATION_REFERENCE["peak_anterior_tilt_deg"] + _TH.tilt_rise_deg
#: A change smaller than this (per metric) between two halves of the trend reads "steady".
TREND_STEP = {"glute_ham_ratio": 0.05, "peak_hip_extension_deg": 1.0,
              "peak_anterior_tilt_deg": 1.0, "cadence_spm": 2.0}
#: Health problems in words a runner can act on (edge status ``problem`` / stride flags).
PROBLEM_WORDS = {
    "flat": "flat: electrode off or lead broken?",
    "missing": "missing: electrode off or not plugged in?",
    "saturated": "saturated: poor electrode contact or gain too high",
    "silent": "silent: sensor unplugged or asleep?",
    "non_finite": "sends invalid numbers: check the sensor driver",
    "dropout": "drops out: check the cable and the connector",
    "noisy": "noisy: check the electrode's skin contact",
    "mains": "mains hum: move away from power cables, check the reference electrode",
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _num(value: Any) -> float:
    return float(value) if _finite(value) else math.nan


# --- state ---------------------------------------------------------------------------------------
@dataclass
class StationState:
    """What the dashboard knows of one station (times in ns since the epoch)."""

    station: str
    last_seen_ns: int = 0          # newest live or status message (its own time, else arrival)
    live_ns: int = 0               # last ``live`` message
    status_ns: int = 0             # last edge ``status`` message
    status: dict[str, Any] | None = None
    session: dict[str, Any] | None = None
    results: dict[str, Any] | None = None
    ingest: dict[str, Any] | None = None
    phase: str | None = None
    live_session: str | None = None
    rejected: dict[str, Any] = field(default_factory=dict)
    #: (time_ns, hip_l_deg, hip_r_deg, tilt_deg, {channel: envelope_mv}): the envelope
    #: ``series`` (angles NaN), or one row per live message without ``series``
    samples: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    #: (time_ns, hip_l_deg, hip_r_deg, tilt_deg): the angle ``series`` (its own time axis)
    angles: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    strides: deque = field(default_factory=lambda: deque(maxlen=MAX_STRIDES))
    strides_total: int = 0
    #: (cue, side, channel) -> the raise event, while the cue is active.
    cues: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    events: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    problems: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    version: int = 0               # bumped by every accepted message
    #: the live message's ``session_phase`` (the open calibration phase), None when running
    open_phase: dict[str, Any] | None = None
    #: the muscles of this session's MVC trials in the order they came (trial k of n)
    mvc_order: list[str] = field(default_factory=list)
    #: the live message's latest hip flexion (l, r) and pelvic tilt, degrees (NaN: none):
    #: there from the standing calibration on, before the angle ``series`` (running) is
    latest_angles: tuple[float, float, float] = (math.nan, math.nan, math.nan)


class Feed:
    """Every station's state, updated message by message; thread-safe (one lock).

    The MQTT network thread calls :meth:`handle`; pages call :meth:`view`, :meth:`stations`
    or :meth:`state` and get copies, never the live objects.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stations: dict[str, StationState] = {}
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.last_rejection = ""

    # -- input ----------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes | str, now_ns: int) -> bool:
        """Apply one message; False (counted with a reason) when it is not usable."""
        try:
            parsed = topics.parse(topic)
        except ValueError as err:
            return self._reject("topic", str(err))
        if parsed.kind not in KINDS:
            return self._reject("kind", f"{topic}: not a topic the dashboard reads")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as err:
            return self._reject("json", f"{topic}: not JSON ({err})")
        if not isinstance(body, dict):
            return self._reject("json", f"{topic}: not a JSON object")
        version = body.get("version", SUPPORTED_VERSION)
        if version != SUPPORTED_VERSION:
            return self._reject("version", f"{topic}: version {version!r} is not supported "
                                           f"(this dashboard reads {SUPPORTED_VERSION})")
        with self._lock:
            state = self._stations.get(parsed.station)
            if state is None:
                state = self._stations[parsed.station] = StationState(parsed.station)
            try:
                apply_message(state, parsed.kind, body, now_ns)
            except (TypeError, ValueError, KeyError, AttributeError) as err:
                problem = f"{topic}: {type(err).__name__}: {err}"
            else:
                state.version += 1
                self.accepted += 1
                return True
        return self._reject("payload", problem)

    def _reject(self, reason: str, message: str) -> bool:
        with self._lock:
            self.rejected[reason] += 1
            self.last_rejection = message
        return False

    # -- output ---------------------------------------------------------------------------------
    def stations(self, now_ns: int, *, forget_after_s: float = FORGET_AFTER_S) -> list[str]:
        """Stations heard of recently (any message within ``forget_after_s``), sorted."""
        with self._lock:
            return sorted(name for name, s in self._stations.items()
                          if _heard_ns(s) and now_ns - _heard_ns(s) <= forget_after_s * 1e9)

    def state(self, station: str) -> StationState | None:
        """A deep copy of one station's state (None when never heard of)."""
        with self._lock:
            state = self._stations.get(station)
            return copy.deepcopy(state) if state is not None else None

    def view(self, station: str, now_ns: int) -> StationView | None:
        """What the pages show of one station (None when never heard of)."""
        with self._lock:
            state = self._stations.get(station)
            return station_view(state, now_ns) if state is not None else None

    def series(self, station: str) -> dict[str, list]:
        """The station's rolling window as columns (see :func:`series`)."""
        with self._lock:
            state = self._stations.get(station)
            return series(state) if state is not None else series(StationState(station))

    def version(self, station: str) -> int:
        with self._lock:
            state = self._stations.get(station)
            return state.version if state is not None else -1


def _heard_ns(state: StationState) -> int:
    times = [state.last_seen_ns] + [int((m or {}).get("time_ns") or 0) for m in
                                    (state.session, state.results, state.ingest)]
    return max(t for t in times if isinstance(t, int))


def _message_ns(body: Mapping[str, Any], now_ns: int) -> int:
    """The message's own time, never later than its arrival (clocks may disagree a little)."""
    t = body.get("time_ns")
    return min(int(t), now_ns) if isinstance(t, int) and t > 0 else now_ns


def apply_message(state: StationState, kind: str, body: Mapping[str, Any], now_ns: int) -> None:
    """Update ``state`` with one decoded message of topic ``kind`` (mutates ``state``)."""
    if kind == topics.LIVE:
        _apply_live(state, body, now_ns)
    elif kind == topics.CUES:
        _apply_cue(state, body)
    elif kind == topics.STATUS:
        state.status = dict(body)
        state.status_ns = _message_ns(body, now_ns)
        state.last_seen_ns = max(state.last_seen_ns, state.status_ns)
    elif kind == topics.SESSION:
        state.session = dict(body)
        if body.get("session") != state.live_session:
            _forget_session(state)  # another session (perhaps another athlete's) from now on
    elif kind == topics.RESULTS:
        state.results = dict(body)
    elif kind == topics.INGEST:
        state.ingest = dict(body)


def _forget_session(state: StationState) -> None:
    """Drop what belongs to the station's last session: its strides, chart windows and cues
    are never shown as part of the next one (which may be another athlete's)."""
    state.live_session = None
    state.strides.clear()
    state.samples.clear()
    state.angles.clear()
    state.cues.clear()
    state.problems.clear()
    state.open_phase = None
    state.mvc_order.clear()
    state.latest_angles = (math.nan, math.nan, math.nan)


def _apply_live(state: StationState, body: Mapping[str, Any], now_ns: int) -> None:
    known = state.session or {}
    running = known.get("session") if known.get("state") == "running" else None
    if isinstance(running, str) and body.get("session") not in (None, running):
        return  # a late message of an earlier session: not part of the running one
    t_ns = _message_ns(body, now_ns)
    state.live_ns = t_ns
    state.last_seen_ns = max(state.last_seen_ns, t_ns)
    state.phase = body.get("phase") if isinstance(body.get("phase"), str) else None
    session = body.get("session")
    if isinstance(session, str):
        if state.live_session is not None and session != state.live_session:
            _forget_session(state)  # a new session starts a new trend
        state.live_session = session
    _apply_open_phase(state, body.get("session_phase"))
    hip = body.get("hip_flexion_deg") or {}
    hip = hip if isinstance(hip, Mapping) else {}
    envelope = body.get("envelope_mv") or {}
    envelope = envelope if isinstance(envelope, Mapping) else {}
    state.latest_angles = (_num(hip.get("l")), _num(hip.get("r")),
                           _num(body.get("pelvic_tilt_deg")))
    chart_series = body.get("series")
    if isinstance(chart_series, Mapping):
        _apply_series(state, chart_series)
    else:  # a pipeline without ``series``: one point per message
        at = body.get("data_time_ns")
        at = int(at) if isinstance(at, int) and at > 0 else t_ns
        if not state.samples or at > state.samples[-1][0]:
            state.samples.append((at, _num(hip.get("l")), _num(hip.get("r")),
                                  _num(body.get("pelvic_tilt_deg")),
                                  {str(c): _num(v) for c, v in envelope.items()}))
    _trim(state)
    if isinstance(body.get("active_cues"), list):
        _apply_active_cues(state, body["active_cues"], t_ns)
    for row in body.get("strides") or ():
        if isinstance(row, Mapping) and row.get("side") in ("l", "r"):
            state.strides.append({**row, "received_ns": now_ns, "live_time_ns": t_ns})
            state.strides_total += 1
    rejected = body.get("rejected")
    if isinstance(rejected, Mapping):
        state.rejected = dict(rejected)
    for problem in body.get("problems") or ():
        state.problems.append((t_ns, str(problem)))


def _apply_open_phase(state: StationState, phase: Any) -> None:
    if not isinstance(phase, Mapping) or not isinstance(phase.get("phase"), str):
        state.open_phase = None
        return
    state.open_phase = dict(phase)
    muscle = phase.get("muscle")
    if phase["phase"] == "mvc" and isinstance(muscle, str) and muscle not in state.mvc_order:
        state.mvc_order.append(muscle)


def _columns(part: Any, key: str) -> tuple[list, dict[str, list]]:
    """``t_ns`` and the value columns of one ``series`` part (empty when malformed)."""
    if not isinstance(part, Mapping) or not isinstance(part.get("t_ns"), list):
        return [], {}
    values = part.get(key)
    values = values if isinstance(values, Mapping) else {}
    return part["t_ns"], {str(c): v for c, v in values.items() if isinstance(v, list)}


def _at(column: list | None, i: int) -> float:
    return _num(column[i]) if column is not None and i < len(column) else math.nan


def _apply_series(state: StationState, body: Mapping[str, Any]) -> None:
    """Append a live message's ``series``: points after each ring's newest only (a repeated
    or late message adds nothing), a missing value as NaN (a gap in the chart)."""
    times, mv = _columns(body.get("envelope"), "mv")
    for i, t in enumerate(times):
        if isinstance(t, int) and t > 0 and (not state.samples or t > state.samples[-1][0]):
            state.samples.append((t, math.nan, math.nan, math.nan,
                                  {c: _at(v, i) for c, v in mv.items()}))
    times, deg = _columns(body.get("angles"), "deg")
    for i, t in enumerate(times):
        if isinstance(t, int) and t > 0 and (not state.angles or t > state.angles[-1][0]):
            state.angles.append((t, _at(deg.get("hip_flexion_l_deg"), i),
                                 _at(deg.get("hip_flexion_r_deg"), i),
                                 _at(deg.get("pelvic_tilt_deg"), i)))


def _trim(state: StationState) -> None:
    """Keep ``WINDOW_S`` before the newest point of either ring."""
    newest = max([ring[-1][0] for ring in (state.samples, state.angles) if ring], default=0)
    for ring in (state.samples, state.angles):
        while ring and newest - ring[0][0] > WINDOW_S * 1e9:
            ring.popleft()


def _apply_active_cues(state: StationState, active: list, t_ns: int) -> None:
    """The pipeline's list of the cues active now replaces ours: a viewer who arrived after
    a raise sees it, one that missed a clear stops seeing it. A cue we already know keeps its
    raise event (evidence); level and message follow the list."""
    cues: dict[tuple, dict[str, Any]] = {}
    for item in active:
        if not isinstance(item, Mapping) or not isinstance(item.get("cue"), str):
            continue
        key = _cue_key(item)
        since = item.get("since_ns")
        known = state.cues.get(key, {})
        cue = {**known, "cue": item["cue"], "kind": "raise", "side": item.get("side"),
               "channel": item.get("channel"), "level": item.get("level") or "alert"}
        if isinstance(item.get("message"), str):
            cue["message"] = item["message"]
        if isinstance(since, int) and since > 0:
            cue["time_ns"] = since
        cue.setdefault("time_ns", t_ns)
        cues[key] = cue
    state.cues = cues


def _cue_key(body: Mapping[str, Any]) -> tuple:
    return (str(body.get("cue")), body.get("side"), body.get("channel"))


def _apply_cue(state: StationState, body: Mapping[str, Any]) -> None:
    if not isinstance(body.get("cue"), str) or body.get("kind") not in ("raise", "clear"):
        raise ValueError("a cue message needs 'cue' and 'kind' (raise or clear)")
    state.events.append(dict(body))
    key = _cue_key(body)
    if body["kind"] == "raise":
        state.cues[key] = dict(body)
    else:
        state.cues.pop(key, None)


# --- views ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricTile:
    """One big number: the side's latest valid stride, its status and recent trend."""

    metric: str
    side: str
    label: str
    unit: str
    value: float
    text: str              # "0.82", "8.1°", "164"
    level: str             # one of LEVELS
    reason: str            # why the level, in words ("" when ok)
    trend: tuple[float, ...]
    trend_word: str        # "rising" | "falling" | "steady" | ""


@dataclass(frozen=True)
class CueView:
    cue: str
    side: str | None
    channel: str | None
    level: str
    words: str             # "Drive from the glutes"
    message: str           # the engine's full message ("Drive from the glutes (left)")
    since_ns: int


@dataclass(frozen=True)
class ChannelIssue:
    """A sensor channel (or stream) with a problem the user can fix, named."""

    where: str             # "emg/glute_max_l", "imu_thigh_r"
    problem: str           # "flat", "saturated", "silent", "missing", ...
    message: str           # plain words
    source: str            # "agent" (live status) or "strides" (the pipeline's quality flags)


@dataclass(frozen=True)
class StationView:
    station: str
    tiles: dict[str, tuple[MetricTile, ...]]   # side -> tiles in HEADLINE order
    last_stride: dict[str, dict[str, Any]]      # side -> its latest stride row
    cues: tuple[CueView, ...]
    issues: tuple[ChannelIssue, ...]
    silence: str | None                         # plain sentence, or None when all is well
    phase: str | None
    session: str | None
    athlete: str | None
    session_state: str | None                   # "running" | "idle" | None (not known)
    agent_state: str | None                     # "online" | "offline" | None
    strides_total: int
    attention: int                              # 0 fine .. 3 silent/offline (coach order)
    attention_reasons: tuple[str, ...]
    problems: tuple[str, ...]                   # the pipeline's recent problems
    rejected: dict[str, Any]
    version: int
    #: what the athlete is doing (running, standing, MVC trial k of n, prone, ...)
    phase_view: PhaseView | None = None
    #: live numbers meaningful before any stride: EMG envelopes, hip and pelvis angles
    signals: tuple[Signal, ...] = ()
    normalization: str | None = None            # of the latest stride: "mvc" | "relative"


RELATIVE_LABEL = "relative — MVC not yet measured"


def metric_level(metric: str, value: float, normalization: str | None,
                 cue_level: str | None = None) -> tuple[str, str]:
    """(level, reason) of one value: the cue's level when one is active for it, else
    *caution* past the cue's absolute rule, else *ok*; cadence has no rule (*info*)."""
    if not math.isfinite(value):
        return "none", "no value"
    if cue_level in ("alert", "caution"):
        return cue_level, ""
    if metric == "glute_ham_ratio":
        if normalization == "mvc" and value < RATIO_LOW:
            return "caution", f"below {RATIO_LOW:.2f}"
        return "ok", ""
    if metric == "peak_hip_extension_deg":
        if value < EXTENSION_LOW_DEG:
            return "caution", f"below {EXTENSION_LOW_DEG:.0f}°"
        return "ok", ""
    if metric == "peak_anterior_tilt_deg":
        if value > TILT_HIGH_DEG:
            return "caution", f"above {TILT_HIGH_DEG:.0f}°"
        return "ok", ""
    return "info", ""


def trend_word(metric: str, values: Iterable[float]) -> str:
    """"rising", "falling" or "steady": the median of the newer half of ``values`` against
    the older half; "" with fewer than four values."""
    vals = [v for v in values if math.isfinite(v)]
    if len(vals) < 4:
        return ""
    half = len(vals) // 2
    old, new = sorted(vals[:half]), sorted(vals[-half:])
    change = new[len(new) // 2] - old[len(old) // 2]
    step = TREND_STEP.get(metric, 0.0)
    if abs(change) < step:
        return "steady"
    return "rising" if change > 0 else "falling"


def _cue_levels(cues: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(metric, side) -> the strongest active cue level on it."""
    out: dict[tuple[str, str], str] = {}
    for cue in cues:
        name, side, level = cue.get("cue"), cue.get("side"), cue.get("level", "alert")
        metric = CUE_METRIC.get(name)
        sides = ("l", "r") if side is None else (side,)
        if name == "asymmetry":
            metric = (cue.get("evidence") or {}).get("metric")
        if metric is None:
            continue
        for s in sides:
            if out.get((metric, s)) != "alert":
                out[(metric, s)] = level
    return out


def _tiles(strides: list[Mapping[str, Any]], side: str,
           cue_levels: Mapping[tuple[str, str], str]) -> tuple[MetricTile, ...]:
    rows = [r for r in strides if r.get("side") == side and r.get("valid", True)]
    last = rows[-1] if rows else {}
    tiles = []
    for metric in HEADLINE:
        label, unit, decimals = METRICS[metric]
        value = _num(last.get(metric))
        trend = tuple(_num(r.get(metric)) for r in rows[-TREND_STRIDES:])
        level, reason = metric_level(metric, value, last.get("normalization"),
                                     cue_levels.get((metric, side)))
        shown_unit = unit if unit in ("°", "%") else ""
        if metric == "glute_ham_ratio" and last.get("normalization") == "relative":
            label = f"{label} ({RELATIVE_LABEL})"
        tiles.append(MetricTile(metric, side, label, unit, value,
                                fmt_num(value, decimals, shown_unit), level, reason, trend,
                                trend_word(metric, trend)))
    return tuple(tiles)


def channel_issues(status: Mapping[str, Any] | None, strides: Iterable[Mapping[str, Any]],
                   *, agent_online: bool = True) -> list[ChannelIssue]:
    """Named sensor problems: the edge agent's live health checks (flat, saturated, silent,
    invalid numbers, source problems), then channels the pipeline flagged on the latest stride
    of each side that the agent did not already name."""
    issues: list[ChannelIssue] = []
    named: set[str] = set()
    if status and agent_online:
        for p in status.get("problems") or ():
            if not isinstance(p, Mapping):
                continue
            stream, channel = p.get("stream") or "", p.get("channel")
            where = f"{stream}/{channel}" if channel else (stream or "agent")
            kind = str(p.get("problem") or "problem")
            if kind == "silent" and stream.startswith("imu"):
                kind_words = "IMU silent: unplugged, asleep or out of battery?"
            else:
                kind_words = PROBLEM_WORDS.get(kind, kind)
            message = str(p.get("message") or f"{where} {kind_words}")
            issues.append(ChannelIssue(where, kind, message, "agent"))
            if channel:
                named.add(str(channel))
    latest: dict[str, Mapping[str, Any]] = {}
    for row in strides:
        if row.get("side") in ("l", "r"):
            latest[row["side"]] = row
    flagged: dict[str, set[str]] = {}
    for row in latest.values():
        for channel, kinds in parse_quality_flags(row.get("quality")).items():
            flagged.setdefault(channel, set()).update(kinds)
    for channel in sorted(flagged):
        if channel in named:
            continue
        for kind in sorted(flagged[channel]):
            if kind in SIGNAL_FLAG_KINDS:
                issues.append(ChannelIssue(channel, kind,
                                           f"{channel} {PROBLEM_WORDS.get(kind, kind)}",
                                           "strides"))
    return issues


def _age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def silence_message(state: StationState, now_ns: int, *,
                    silent_after_s: float = SILENT_AFTER_S) -> str | None:
    """A plain sentence when the station or the pipeline behind it stopped talking."""
    name = state.station
    status = state.status or {}
    if status.get("state") == "offline":
        reason = status.get("reason") or "no reason given"
        age = _age_text(max(0.0, (now_ns - state.status_ns) / 1e9))
        return (f"station {name}'s agent has been offline for {age} ({reason}): "
                "is it switched on, running and connected?")
    if not state.last_seen_ns:
        return (f"station {name} has sent nothing yet: is its agent running?")
    quiet_s = (now_ns - state.last_seen_ns) / 1e9
    if quiet_s > silent_after_s:
        return (f"station {name} has sent nothing for {_age_text(quiet_s)}: "
                "is its agent running?")
    if state.status_ns and not state.live_ns:
        return (f"station {name}'s agent is online but the pipeline has sent no live data "
                "for it yet: is the pipeline running?")
    if state.live_ns and (now_ns - state.live_ns) / 1e9 > silent_after_s:
        return (f"the pipeline has sent no live data for station {name} for "
                f"{_age_text((now_ns - state.live_ns) / 1e9)}: is the pipeline running?")
    return None


def _cue_words(cue: Mapping[str, Any]) -> str:
    return CUES.get(str(cue.get("cue")), str(cue.get("message") or cue.get("cue")))


def _tile_reasons(tiles: Mapping[str, tuple[MetricTile, ...]]) -> list[str]:
    """A number past its cue's absolute rule without a cue (yet), in words: "Left
    glute:hamstring ratio 0.18: below 0.60" — so a card that says "Watch" says why."""
    side_words = {"l": "Left", "r": "Right"}
    return [f"{side_words[side]} {t.label[:1].lower()}{t.label[1:]} {t.text}: {t.reason}"
            for side, ts in tiles.items() for t in ts if t.level == "caution" and t.reason]


def station_view(state: StationState, now_ns: int) -> StationView:
    """What the Live and Coach pages show of one station at ``now_ns``."""
    strides = list(state.strides)
    cue_list = sorted(state.cues.values(),
                      key=lambda c: (c.get("level") != "alert", -int(c.get("time_ns") or 0)))
    cue_levels = _cue_levels(cue_list)
    tiles = {side: _tiles(strides, side, cue_levels) for side in ("l", "r")}
    last_stride = {}
    for row in strides:
        last_stride[row["side"]] = row
    status = state.status or {}
    agent_state = status.get("state") if isinstance(status.get("state"), str) else None
    issues = channel_issues(status, strides, agent_online=agent_state != "offline")
    silence = silence_message(state, now_ns)
    cues = tuple(CueView(str(c.get("cue")), c.get("side"), c.get("channel"),
                         str(c.get("level") or "alert"), _cue_words(c),
                         str(c.get("message") or _cue_words(c)), int(c.get("time_ns") or 0))
                 for c in cue_list)
    reasons: list[str] = []
    attention = 0
    if silence:
        attention, reasons = 3, [silence]
    alerts = [c for c in cues if c.level == "alert"]
    if alerts or issues:
        attention = max(attention, 2)
        reasons += [c.message for c in alerts] + [i.message for i in issues]
    cautions = [c.message for c in cues if c.level == "caution"] + _tile_reasons(tiles)
    if cautions:
        attention = max(attention, 1)
        reasons += cautions
    session = state.session or {}
    envelope_channels = {c for s in state.samples for c in s[4]}
    normalization = next((r.get("normalization") for r in reversed(strides)
                          if r.get("normalization")), None)
    return StationView(
        station=state.station, tiles=tiles, last_stride=last_stride, cues=cues,
        issues=tuple(issues), silence=silence, phase=state.phase,
        session=session.get("session") or state.live_session,
        athlete=session.get("athlete"),
        session_state=session.get("state") if isinstance(session.get("state"), str) else None,
        agent_state=agent_state, strides_total=state.strides_total, attention=attention,
        attention_reasons=tuple(reasons), problems=tuple(p for _, p in state.problems)[-5:],
        rejected=dict(state.rejected), version=state.version,
        phase_view=phase_view(session=state.session, open_phase=state.open_phase,
                              engine_phase=state.phase, mvc_order=state.mvc_order,
                              n_channels=len(envelope_channels), now_ns=now_ns),
        signals=signals(list(state.samples), list(state.angles), state.latest_angles),
        normalization=normalization)


def coach_order(views: Iterable[StationView]) -> list[StationView]:
    """Stations needing attention first (silent, then alerts, then cautions), within a level
    the one with more active cues and problems first, then by name."""
    return sorted(views, key=lambda v: (-v.attention, -len(v.attention_reasons), v.station))


def series(state: StationState) -> dict[str, list]:
    """The rolling window as columns: ``t_s`` (seconds before the newest sample, ≤ 0),
    ``hip_l_deg``, ``hip_r_deg``, ``tilt_deg`` and one list per EMG channel. Envelope and
    angle points (their own times) are merged in time order, NaN where a row has no value."""
    samples = sorted([*state.samples, *((t, hl, hr, tilt, {})
                                        for t, hl, hr, tilt in state.angles)],
                     key=lambda s: s[0])
    if not samples:
        return {"t_s": [], "hip_l_deg": [], "hip_r_deg": [], "tilt_deg": [], "envelope_mv": {}}
    newest = samples[-1][0]
    channels = sorted({c for s in samples for c in s[4]})
    return {
        "t_s": [(s[0] - newest) / 1e9 for s in samples],
        "hip_l_deg": [s[1] for s in samples],
        "hip_r_deg": [s[2] for s in samples],
        "tilt_deg": [s[3] for s in samples],
        "envelope_mv": {c: [s[4].get(c, math.nan) for s in samples] for c in channels},
    }
