"""Live cues: per-stride rows in, raise/clear events out, sustained and with hysteresis.

DOMAIN.md "Live cues". Every cue compares one per-stride metric (``schema.STRIDE_COLUMNS``)
with the athlete's **baseline** for that side, stride by stride, and only speaks when the
condition is *sustained*:

========================  ==========================================================  ======
cue                       condition on one stride (defaults, all in CueThresholds)      window
========================  ==========================================================  ======
hamstring_dominant        glute_ham_ratio < (1 − 0.25) · baseline ratio                10/15
limited_hip_extension     peak_hip_extension_deg < 5°, or < baseline − 5°             10/15
pelvis_tipping_forward    peak_anterior_tilt_deg > baseline + 5°                      10/15
glutes_late               onset_lag_ms > baseline + 50 ms                             10/15
asymmetry                 |SI| of the two sides' medians over their last 20 strides   20
signal_problem            a channel flagged missing / saturated / flat / ... (quality) 3/5
========================  ==========================================================  ======

**Hysteresis** (so a cue does not flicker). Windowed cues: a cue is *raised* when its condition
held in at least ``min_strides`` (10) of the side's last ``window_strides`` (15) strides, and
*cleared* only when it held in at most ``clear_max_strides`` (4) of them, i.e. the condition has
been false in 11 of the last 15 strides. Between 5 and 9 the cue keeps its state: an alternating
true/false sequence (7–8 of 15) never raises a quiet cue and never clears an active one.
Asymmetry: *alert* above 15 % SI, *caution* in 10–15 %; the level steps down only once |SI| is
``si_hysteresis_pct`` (2 %) below the boundary it crossed (alert → caution below 13 %, caution →
clear below 8 %). A difference counts only when it is larger than the measurement can tell
apart from noise: at least the metric's fixed minimum (2° of hip extension, the IMU's accuracy)
*and*, to raise a level, ``asymmetry_min_z`` (3) standard errors of the difference of the two
medians, estimated from the strides' own spread (1.2533 · 1.4826 · MAD / √n per side); a
difference within the noise keeps an active level but raises none. A per-stride ratio varies
by ~15 %, so two 20-stride medians of a symmetric runner differ by 10–15 % often; without
this the cue raised and cleared every few seconds. And the same hold as the windowed cues:
each stride (either side) calls for a level; a level is raised when called for in 10 of the
last 15 strides, and steps down when called for in at most 4 of them. The glute:hamstring ratio of
``"relative"``-normalised rows does not enter the asymmetry at all: each channel is scaled by
its own running level, so both sides read ~1 by construction. Signal problems: raised when a
channel is flagged in 3 of the side's last 5 strides, cleared when it is flagged in none of
them.

Rows arrive one at a time per side, in time order. A row with ``valid`` False is ignored
entirely (metrics and quality flags); a NaN metric is ignored for that metric's cue only (it
does not enter the window, so windows count strides that had a value).

**Baselines.** A :class:`Baseline` holds, per side, the median of each metric over the first
``n_strides`` (30) valid strides of a session, so one bad stride cannot move it. It is stored
per athlete (:meth:`Baseline.to_dict` / :meth:`Baseline.from_dict`) and reused in later
sessions. Without a stored baseline a :class:`CueTracker` learns one from the session's first
30 strides per side; until then only the absolute rules run (extension < 5°, asymmetry, signal).
A runner who is hamstring-dominant from the first stride has a low *own* baseline and would
never be cued against it, so :func:`population_baseline` provides *default* reference values of
a healthy runner (:data:`POPULATION_REFERENCE`) for sessions without a stored baseline; this is
what :func:`classify_session` uses when given none. The population glute:hamstring ratio is only
meaningful for MVC-normalised EMG: against a population baseline the ratio cue skips rows whose
``normalization`` is not ``"mvc"`` (a "relative" ratio is ~1 for everybody by construction).
The live tracker without a stored baseline applies that default too, to MVC-normalised rows
only: their ratio is cued when 25 % below the larger of the learnt ratio and the population
one, so a runner hamstring-dominant from the first stride is cued live once the MVC references
are in. A learnt ratio is only compared with rows of the normalisation it was learnt from (a
session that switches from relative to MVC mid-way learns from both: its learnt ratio is used
for neither).

Pure Python and numpy: no file, network or UI imports.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .schema import CUES, SUMMARY_METRICS, symmetry_index_pct

__all__ = [
    "POPULATION_REFERENCE",
    "Baseline",
    "CueEvent",
    "CueThresholds",
    "CueTracker",
    "classify_session",
    "evaluate_cues",
    "parse_quality_flags",
    "population_baseline",
]

SIDES = ("l", "r")
SIDE_NAMES = {"l": "left", "r": "right"}

#: *Default* reference values of a healthy runner, used as a baseline when no stored one exists.
#: Peak hip extension ~10° (Novacheck 1998; 8–10° on the simulator's healthy profile after
#: warm-up). Glute:hamstring ratio 0.8 for MVC-normalised EMG over the extension phase (no
#: published norm: healthy simulated runners read 1.0–1.2, hamstring-dominant ones ~0.2, so 0.8
#: puts the 25 % rule at 0.6). Peak anterior tilt 6° above standing (simulated healthy 5–7°;
#: Schache et al. report a few degrees more anterior tilt running than standing). Onset lag
#: +50 ms (glute max after the hamstrings in late swing; simulated healthy ~50 ms).
POPULATION_REFERENCE: Mapping[str, float] = {
    "glute_ham_ratio": 0.8,
    "peak_hip_extension_deg": 10.0,
    "peak_anterior_tilt_deg": 6.0,
    "onset_lag_ms": 50.0,
}

#: Quality-flag kinds (``kind:channel`` in a row's ``quality``) that raise "signal problem".
SIGNAL_FLAG_KINDS = ("missing", "saturated", "flat", "silent", "dropout", "noisy", "mains")


@dataclass(frozen=True)
class CueThresholds:
    """Cue rules (DOMAIN.md defaults; every value configurable per athlete).

    Attributes
    ----------
    window_strides, min_strides, clear_max_strides : int
        Windowed cues raise when their condition held in ``min_strides`` of the side's last
        ``window_strides`` strides and clear when it held in at most ``clear_max_strides``.
    ratio_drop_frac : float
        Hamstring dominant: ratio below ``(1 - ratio_drop_frac) * baseline`` (0.25 = 25 %).
    extension_min_deg, extension_drop_deg : float
        Limited extension: peak extension below ``extension_min_deg`` (deg), or more than
        ``extension_drop_deg`` (deg) below baseline.
    tilt_rise_deg : float
        Pelvis tipping forward: peak anterior tilt more than this (deg) above baseline.
    onset_lag_rise_ms : float
        Glutes late: glute − hamstring onset lag more than this (ms) above baseline.
    asymmetry_window_strides : int
        Strides per side whose medians enter the symmetry index.
    asymmetry_alert_pct, asymmetry_caution_pct, si_hysteresis_pct : float
        |SI| (%) above ``alert`` = alert, above ``caution`` = caution; a level steps down only
        ``si_hysteresis_pct`` below its boundary.
    asymmetry_metrics : tuple of (str, float, float)
        Metrics compared left/right, each with the minimum |mean| of the two sides below which
        its SI is not computed (SI explodes near zero, e.g. 1° vs 2° of extension is 67 %), and
        the smallest |right − left| that counts at all: below the measurement's own accuracy
        (about 2° for IMU hip angles) a difference is not evidence of asymmetry, however large
        the SI of two small numbers.
    asymmetry_min_z : float
        A difference raises a level only if at least this many standard errors of the
        difference of the two medians (from each side's MAD over the window): the noise of a
        per-stride ratio (~15 %) is not asymmetry. 0 turns the test off. The level each stride
        calls for is held like a windowed cue's condition (``min_strides`` of
        ``window_strides`` to raise, at most ``clear_max_strides`` to step down).
    signal_window_strides, signal_min_strides : int
        Signal problem: flagged in ``signal_min_strides`` of the side's last
        ``signal_window_strides`` strides; cleared when flagged in none of them.
    """

    window_strides: int = 15
    min_strides: int = 10
    clear_max_strides: int = 4
    ratio_drop_frac: float = 0.25
    extension_min_deg: float = 5.0
    extension_drop_deg: float = 5.0
    tilt_rise_deg: float = 5.0
    onset_lag_rise_ms: float = 50.0
    asymmetry_window_strides: int = 20
    asymmetry_alert_pct: float = 15.0
    asymmetry_caution_pct: float = 10.0
    si_hysteresis_pct: float = 2.0
    asymmetry_metrics: tuple[tuple[str, float, float], ...] = (
        ("glute_ham_ratio", 0.05, 0.0), ("peak_hip_extension_deg", 3.0, 2.0))
    asymmetry_min_z: float = 3.0
    signal_window_strides: int = 5
    signal_min_strides: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.clear_max_strides < self.min_strides <= self.window_strides:
            raise ValueError("need 0 <= clear_max_strides < min_strides <= window_strides")
        if not 0 < self.asymmetry_caution_pct <= self.asymmetry_alert_pct:
            raise ValueError("need 0 < asymmetry_caution_pct <= asymmetry_alert_pct")
        if not 0 < self.signal_min_strides <= self.signal_window_strides:
            raise ValueError("need 0 < signal_min_strides <= signal_window_strides")
        if self.asymmetry_window_strides < 1:
            raise ValueError("asymmetry_window_strides must be at least 1")
        if self.asymmetry_min_z < 0:
            raise ValueError("asymmetry_min_z must not be negative")


@dataclass(frozen=True)
class Baseline:
    """Per-side reference values of one athlete (medians of early steady strides).

    Attributes
    ----------
    values : dict
        side (``"l"``/``"r"``) -> metric name -> value (metric's unit; NaN = unknown).
    n_strides : dict
        side -> strides the medians came from (0 for population defaults).
    source : str
        ``"session"`` (learnt from this session), ``"stored"`` (an earlier session) or
        ``"population"`` (:data:`POPULATION_REFERENCE`, *default* values).
    athlete : str or None
        Athlete id, for storage.
    normalization : str or None
        EMG normalisation of the strides behind the ratio (``"mvc"``/``"relative"``).
    """

    values: Mapping[str, Mapping[str, float]]
    n_strides: Mapping[str, int] = field(default_factory=dict)
    source: str = "session"
    athlete: str | None = None
    normalization: str | None = None

    def get(self, side: str, metric: str) -> float:
        """Baseline value of ``metric`` on ``side``; NaN when unknown."""
        value = self.values.get(side, {}).get(metric, math.nan)
        return math.nan if value is None else float(value)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], n_strides: int = 30, *,
                  metrics: Iterable[str] = SUMMARY_METRICS, athlete: str | None = None,
                  source: str = "session") -> Baseline:
        """Medians of the first ``n_strides`` valid strides per side.

        Parameters
        ----------
        rows : iterable of dict
            Stride rows (``schema.STRIDE_COLUMNS``) in time order; pass steady running only.
        n_strides : int
            Valid strides per side to use (default 30); fewer if the session has fewer.
        metrics : iterable of str
            Columns to take medians of (default ``schema.SUMMARY_METRICS``).
        athlete, source : str
            Stored with the baseline.

        Returns
        -------
        Baseline
            Per side and metric the median of the finite values among those strides (NaN if
            fewer than half of them had a value).
        """
        metrics = tuple(metrics)
        picked: dict[str, list[Mapping[str, Any]]] = {s: [] for s in SIDES}
        norms: list[str] = []
        for row in rows:
            side = row.get("side")
            if side in picked and _is_valid(row) and len(picked[side]) < n_strides:
                picked[side].append(row)
                if row.get("normalization"):
                    norms.append(str(row["normalization"]))
        values: dict[str, dict[str, float]] = {}
        for side, side_rows in picked.items():
            values[side] = {}
            for m in metrics:
                vals = np.array([_num(r.get(m)) for r in side_rows], dtype=float)
                vals = vals[np.isfinite(vals)]
                ok = len(vals) > 0 and 2 * len(vals) >= len(side_rows)
                values[side][m] = float(np.median(vals)) if ok else math.nan
        norm = norms[0] if norms and all(n == norms[0] for n in norms) else None
        return cls(values=values, n_strides={s: len(v) for s, v in picked.items()},
                   source=source, athlete=athlete, normalization=norm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN stored as None)."""
        return {
            "source": self.source, "athlete": self.athlete,
            "normalization": self.normalization,
            "n_strides": {s: int(n) for s, n in self.n_strides.items()},
            "values": {s: {m: (None if not math.isfinite(v) else float(v)) for m, v in d.items()}
                       for s, d in self.values.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Baseline:
        """Inverse of :meth:`to_dict`; ``source`` overrides the stored one (e.g. "stored")."""
        values = {s: {m: (math.nan if v is None else float(v)) for m, v in d.items()}
                  for s, d in data.get("values", {}).items()}
        return cls(values=values, n_strides=dict(data.get("n_strides", {})),
                   source=source or data.get("source", "stored"), athlete=data.get("athlete"),
                   normalization=data.get("normalization"))


def population_baseline(reference: Mapping[str, float] | None = None) -> Baseline:
    """A baseline of *default* healthy-runner values, the same on both sides.

    Parameters
    ----------
    reference : mapping, optional
        Metric -> value; default :data:`POPULATION_REFERENCE`.

    Returns
    -------
    Baseline
        ``source="population"``, ``normalization="mvc"`` (its ratio is MVC-normalised).
    """
    ref = dict(POPULATION_REFERENCE if reference is None else reference)
    return Baseline(values={s: dict(ref) for s in SIDES}, n_strides=dict.fromkeys(SIDES, 0),
                    source="population", normalization="mvc")


@dataclass(frozen=True)
class CueEvent:
    """A cue raised or cleared.

    Attributes
    ----------
    cue : str
        Name from ``schema.CUES``.
    kind : str
        ``"raise"`` or ``"clear"``. A level change of an active cue (asymmetry caution ↔ alert)
        is a new ``"raise"`` with the new level.
    side : str or None
        ``"l"``/``"r"``, or None for cues about both sides (asymmetry, pelvis channels).
    level : str
        ``"alert"`` or ``"caution"``.
    message : str
        Plain words for the runner.
    stride_start_s : float
        IC time (s) of the stride that triggered the event.
    evidence : dict
        The numbers behind it (counts, values, baseline, threshold, SI ...).
    channel : str or None
        The channel of a signal problem.
    """

    cue: str
    kind: str
    side: str | None
    level: str
    message: str
    stride_start_s: float
    evidence: Mapping[str, Any] = field(default_factory=dict)
    channel: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"cue": self.cue, "kind": self.kind, "side": self.side, "level": self.level,
                "message": self.message, "stride_start_s": float(self.stride_start_s),
                "channel": self.channel, "evidence": dict(self.evidence)}


def _median(values: Iterable[float]) -> float:
    """``float(np.median(values))`` of a few finite floats, without an array per call."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return float((ordered[mid - 1] + ordered[mid]) / 2)


def _median_difference_se(left: Iterable[float], right: Iterable[float]) -> float:
    """Standard error of ``median(right) − median(left)``: per side 1.2533 · σ / √n with σ
    from the MAD (1.4826 · MAD), robust to the odd mis-detected stride."""
    total = 0.0
    for values in (left, right):
        arr = np.asarray(list(values), dtype=float)
        mad = float(np.median(np.abs(arr - np.median(arr))))
        total += (1.2533 * 1.4826 * mad) ** 2 / len(arr)
    return math.sqrt(total)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_valid(row: Mapping[str, Any]) -> bool:
    valid = row.get("valid", True)
    return bool(valid) if valid is not None else True


def parse_quality_flags(quality: str | None) -> dict[str, set[str]]:
    """Signal-problem channels of a row's ``quality`` string.

    Parameters
    ----------
    quality : str or None
        ``";"``-joined flags such as ``"missing:glute_max_l;saturated:biceps_femoris_r"``.

    Returns
    -------
    dict
        channel -> set of flag kinds (only kinds in ``SIGNAL_FLAG_KINDS``).
    """
    out: dict[str, set[str]] = {}
    for flag in (quality or "").split(";"):
        kind, sep, channel = flag.strip().partition(":")
        if sep and channel and kind in SIGNAL_FLAG_KINDS:
            out.setdefault(channel.strip(), set()).add(kind)
    return out


def _channel_side(channel: str) -> str | None:
    tail = channel.rsplit("_", 1)[-1]
    return tail if tail in SIDES else None


_LEVEL_RANK = {None: 0, "caution": 1, "alert": 2}
_WINDOWED = ("hamstring_dominant", "limited_hip_extension", "pelvis_tipping_forward",
             "glutes_late")


class CueTracker:
    """Streaming cue state of one session: feed stride rows, get raise/clear events.

    Parameters
    ----------
    baseline : Baseline, optional
        Stored or population baseline. None: learn one from the first ``baseline_strides``
        valid strides of each side (baseline-relative cues wait for it).
    thresholds : CueThresholds
        Rules (defaults from DOMAIN.md).
    baseline_strides : int
        Strides per side to learn a session baseline from (default 30).
    """

    def __init__(self, baseline: Baseline | None = None, *,
                 thresholds: CueThresholds | None = None, baseline_strides: int = 30) -> None:
        self.thresholds = thresholds or CueThresholds()
        self.baseline = baseline
        self.baseline_strides = baseline_strides
        th = self.thresholds
        self._learning: dict[str, list[Mapping[str, Any]]] = {s: [] for s in SIDES}
        self._learnt: dict[str, dict[str, float]] = {}
        self._learnt_norm: dict[str, str | None] = {}
        self._windows = {(c, s): deque(maxlen=th.window_strides) for c in _WINDOWED
                         for s in SIDES}
        self._asym = {(m, s): deque(maxlen=th.asymmetry_window_strides)
                      for m, _, _ in th.asymmetry_metrics for s in SIDES}
        self._signal = {s: deque(maxlen=th.signal_window_strides) for s in SIDES}
        #: the asymmetry level each of the latest strides called for (0 none, 1 caution, 2 alert)
        self._asym_levels: deque[int] = deque(maxlen=th.window_strides)
        #: (cue, side, channel) -> level of every active cue.
        self._active: dict[tuple[str, str | None, str | None], str] = {}
        #: the latest raise event of every active cue (its message and since when).
        self._raised: dict[tuple[str, str | None, str | None], CueEvent] = {}

    # --- public ------------------------------------------------------------------------------
    @property
    def active(self) -> dict[tuple[str, str | None, str | None], str]:
        """Active cues: ``(cue, side, channel) -> level`` (copy)."""
        return dict(self._active)

    def active_cues(self) -> list[dict[str, Any]]:
        """Active cues as ``cue, side, channel, level, message, since_s`` (the stride time of
        the raise, or of the latest level change): what a late viewer needs to see them."""
        out = []
        for key, level in self._active.items():
            raised = self._raised.get(key)
            out.append({"cue": key[0], "side": key[1], "channel": key[2], "level": level,
                        "message": raised.message if raised else CUES[key[0]],
                        "since_s": raised.stride_start_s if raised else math.nan})
        return out

    def is_active(self, cue: str, side: str | None = None, *, level: str | None = None
                  ) -> bool:
        """Whether ``cue`` is active on ``side`` (any side if None), optionally at ``level``."""
        return any(c == cue and (side is None or s == side) and (level is None or lv == level)
                   for (c, s, _), lv in self._active.items())

    def baseline_value(self, side: str, metric: str) -> float:
        """The baseline in force for ``side`` (stored/population, else learnt; NaN if none)."""
        if self.baseline is not None:
            return self.baseline.get(side, metric)
        return self._learnt.get(side, {}).get(metric, math.nan)

    @property
    def session_baseline(self) -> Baseline | None:
        """The baseline learnt from this session (None until both sides have one)."""
        if set(self._learnt) != set(SIDES):
            return None
        return Baseline(values={s: dict(v) for s, v in self._learnt.items()},
                        n_strides=dict.fromkeys(SIDES, self.baseline_strides), source="session")

    def update(self, row: Mapping[str, Any]) -> list[CueEvent]:
        """Take one stride row; return the cue events it causes (often none).

        Parameters
        ----------
        row : dict
            A stride row keyed by ``schema.STRIDE_COLUMNS`` (rows of one side in time order).

        Returns
        -------
        list of CueEvent
        """
        side = row.get("side")
        if side not in SIDES or not _is_valid(row):
            return []
        t = _num(row.get("stride_start_s"))
        self._learn(side, row)
        events: list[CueEvent] = []
        for cue in _WINDOWED:
            cond = self._condition(cue, side, row)
            if cond is None:
                continue
            win = self._windows[(cue, side)]
            win.append(cond[0])
            events += self._windowed_transition(cue, side, win, t, cond[1])
        events += self._asymmetry(side, row, t)
        events += self._signal_problem(side, row, t)
        for event in events:
            key = (event.cue, event.side, event.channel)
            if event.kind == "raise":
                self._raised[key] = event
            else:
                self._raised.pop(key, None)
        return events

    # --- baselines ------------------------------------------------------------------------------
    def _learn(self, side: str, row: Mapping[str, Any]) -> None:
        if self.baseline is not None or side in self._learnt:
            return
        self._learning[side].append(row)
        if len(self._learning[side]) >= self.baseline_strides:
            learnt = Baseline.from_rows(self._learning[side], self.baseline_strides)
            self._learnt[side] = dict(learnt.values[side])
            self._learnt_norm[side] = learnt.normalization
            self._learning[side] = []

    # --- windowed cues --------------------------------------------------------------------------
    def _condition(self, cue: str, side: str, row: Mapping[str, Any]
                   ) -> tuple[bool, dict[str, float]] | None:
        th = self.thresholds
        if cue == "hamstring_dominant":
            value, base = _num(row.get("glute_ham_ratio")), self.baseline_value(
                side, "glute_ham_ratio")
            if self.baseline is not None and self.baseline.source == "population" and (
                    row.get("normalization", "mvc") != "mvc"):
                return None
            reference = "baseline"
            if self.baseline is None:
                base, reference = self._learnt_ratio(side, row.get("normalization"))
            limit = (1.0 - th.ratio_drop_frac) * base
            if not (math.isfinite(value) and math.isfinite(base) and base > 0):
                return None
            return value < limit, {"glute_ham_ratio": value, "baseline": base, "limit": limit,
                                   "reference": reference}
        if cue == "limited_hip_extension":
            value = _num(row.get("peak_hip_extension_deg"))
            base = self.baseline_value(side, "peak_hip_extension_deg")
            if not math.isfinite(value):
                return None
            limit = th.extension_min_deg
            if math.isfinite(base):
                limit = max(limit, base - th.extension_drop_deg)
            return value < limit, {"peak_hip_extension_deg": value, "baseline": base,
                                   "limit": limit}
        if cue == "pelvis_tipping_forward":
            metric, rise = "peak_anterior_tilt_deg", th.tilt_rise_deg
        else:  # glutes_late
            metric, rise = "onset_lag_ms", th.onset_lag_rise_ms
        value, base = _num(row.get(metric)), self.baseline_value(side, metric)
        if not (math.isfinite(value) and math.isfinite(base)):
            return None
        ev = {metric: value, "baseline": base, "limit": base + rise}
        if cue == "pelvis_tipping_forward":
            ev["peak_hip_extension_deg"] = _num(row.get("peak_hip_extension_deg"))
        return value > base + rise, ev

    def _learnt_ratio(self, side: str, normalization: Any) -> tuple[float, str]:
        """(reference ratio, where it comes from) without a stored baseline: the learnt ratio
        if learnt on rows of this normalisation; for MVC-normalised rows at least the
        population ratio (see the module docstring)."""
        base = self._learnt.get(side, {}).get("glute_ham_ratio", math.nan)
        if side in self._learnt and self._learnt_norm.get(side) != normalization:
            base = math.nan  # learnt on another scale, or on a mix of scales
        if normalization != "mvc":
            return base, "session"
        population = POPULATION_REFERENCE["glute_ham_ratio"]
        if math.isfinite(base) and base >= population:
            return base, "session"
        return population, "population"

    def _windowed_transition(self, cue: str, side: str, win: deque, t: float,
                             evidence: dict[str, float]) -> list[CueEvent]:
        th = self.thresholds
        count = int(sum(win))
        key = (cue, side, None)
        ev = {**evidence, "count": count, "window": len(win)}
        if key not in self._active and count >= th.min_strides:
            self._active[key] = "alert"
            return [self._event(cue, "raise", side, "alert", t, ev)]
        if key in self._active and count <= th.clear_max_strides:
            del self._active[key]
            return [self._event(cue, "clear", side, "alert", t, ev)]
        return []

    # --- asymmetry ------------------------------------------------------------------------------
    def _asymmetry(self, side: str, row: Mapping[str, Any], t: float) -> list[CueEvent]:
        th = self.thresholds
        n = th.asymmetry_window_strides
        key = ("asymmetry", None, None)
        current = self._active.get(key)
        have = _LEVEL_RANK[current]
        best: tuple[int, float, str, float, float] | None = None  # rank, si, metric, medians
        for metric, min_mean, min_difference in th.asymmetry_metrics:
            value = _num(row.get(metric))
            relative = metric == "glute_ham_ratio" and row.get("normalization") == "relative"
            if math.isfinite(value) and not relative:
                self._asym[(metric, side)].append(value)
            left, right = self._asym[(metric, "l")], self._asym[(metric, "r")]
            if len(left) < n or len(right) < n:
                continue
            med_l, med_r = _median(left), _median(right)
            si = symmetry_index_pct(med_r, med_l)
            if not math.isfinite(si):
                continue
            rank = 0
            difference = abs(med_r - med_l)
            if abs(0.5 * (med_l + med_r)) >= min_mean and difference >= min_difference:
                rank = _LEVEL_RANK[self._asymmetry_level(abs(si), current)]
                if difference < th.asymmetry_min_z * _median_difference_se(left, right):
                    rank = min(rank, have)  # not beyond noise: keeps a level, raises none
            if best is None or (rank, abs(si)) > (best[0], abs(best[1])):
                best = (rank, si, metric, med_l, med_r)
        if best is None:
            return []
        rank, si, metric, med_l, med_r = best
        self._asym_levels.append(rank)
        level = self._held_asymmetry_level(current)
        ev = {"si_pct": si, "metric": metric, "left": med_l, "right": med_r, "strides": n,
              "held": sum(r >= _LEVEL_RANK[level or current] for r in self._asym_levels),
              "window": len(self._asym_levels)}
        if level == current:
            return []
        if level is None:
            del self._active[key]
            return [self._event("asymmetry", "clear", None, current or "alert", t, ev)]
        self._active[key] = level
        return [self._event("asymmetry", "raise", None, level, t, ev)]

    def _held_asymmetry_level(self, current: str | None) -> str | None:
        """The level after the hold: up to a level called for in ``min_strides`` of the last
        ``window_strides`` strides; down only when the current level was called for in at
        most ``clear_max_strides`` of them (to caution if that still was called for more)."""
        th = self.thresholds
        have = _LEVEL_RANK[current]

        def held(rank: int) -> int:
            return sum(r >= rank for r in self._asym_levels)

        for name in ("alert", "caution"):
            if _LEVEL_RANK[name] > have and held(_LEVEL_RANK[name]) >= th.min_strides:
                return name
        if have and held(have) <= th.clear_max_strides:
            return "caution" if have == 2 and held(1) > th.clear_max_strides else None
        return current

    def _asymmetry_level(self, si_abs: float, current: str | None) -> str | None:
        th = self.thresholds
        alert_at, caution_at = th.asymmetry_alert_pct, th.asymmetry_caution_pct
        if current == "alert":
            alert_at -= th.si_hysteresis_pct
        if current in ("alert", "caution"):
            caution_at -= th.si_hysteresis_pct
        if si_abs > alert_at:
            return "alert"
        if si_abs > caution_at:
            return "caution"
        return None

    # --- signal problems ------------------------------------------------------------------------
    def _signal_problem(self, side: str, row: Mapping[str, Any], t: float) -> list[CueEvent]:
        th = self.thresholds
        hist = self._signal[side]
        flags = parse_quality_flags(row.get("quality"))
        hist.append(flags)
        events = []
        seen = {ch for h in self._signal.values() for f in h for ch in f}
        seen |= {ch for (c, _, ch) in self._active if c == "signal_problem"}
        for channel in sorted(c for c in seen if c is not None):
            key = ("signal_problem", _channel_side(channel), channel)
            counts = {s: sum(channel in f for f in h) for s, h in self._signal.items()}
            kinds = sorted({k for h in self._signal.values() for f in h
                            for k in f.get(channel, ())})
            ev = {"channel": channel, "flags": kinds, "count": counts[side],
                  "window": len(hist)}
            if key not in self._active and counts[side] >= th.signal_min_strides:
                self._active[key] = "alert"
                events.append(self._event("signal_problem", "raise", key[1], "alert", t, ev,
                                          channel=channel, detail=", ".join(kinds)))
            elif key in self._active and all(n == 0 for n in counts.values()):
                del self._active[key]
                events.append(self._event("signal_problem", "clear", key[1], "alert", t, ev,
                                          channel=channel))
        return events

    # --- events ---------------------------------------------------------------------------------
    @staticmethod
    def _event(cue: str, kind: str, side: str | None, level: str, t: float,
               evidence: Mapping[str, Any], *, channel: str | None = None,
               detail: str = "") -> CueEvent:
        message = CUES[cue]
        if channel is not None:
            message += f": {channel}" + (f" ({detail})" if detail else "")
        elif side is not None:
            message += f" ({SIDE_NAMES[side]})"
        if level == "caution":
            message += " - caution"
        if kind == "clear":
            message = "Cleared: " + message
        return CueEvent(cue=cue, kind=kind, side=side, level=level, message=message,
                        stride_start_s=t, evidence=dict(evidence), channel=channel)


def evaluate_cues(rows: Iterable[Mapping[str, Any]], baseline: Baseline | None = None, *,
                  thresholds: CueThresholds | None = None, baseline_strides: int = 30
                  ) -> list[CueEvent]:
    """Offline cues: exactly a :class:`CueTracker` run over ``rows`` in the given order.

    Parameters
    ----------
    rows : iterable of dict
        Stride rows in time order (both sides interleaved as they happened).
    baseline : Baseline, optional
        Stored or population baseline; None learns one from the session (see CueTracker).
    thresholds : CueThresholds, optional
        Rules (defaults from DOMAIN.md).
    baseline_strides : int
        Strides per side for a learnt baseline.

    Returns
    -------
    list of CueEvent
        All events in order.
    """
    tracker = CueTracker(baseline, thresholds=thresholds, baseline_strides=baseline_strides)
    events: list[CueEvent] = []
    for row in rows:
        events += tracker.update(row)
    return events


def classify_session(rows: Iterable[Mapping[str, Any]], baseline: Baseline | None = None, *,
                     thresholds: CueThresholds | None = None, min_fraction: float = 0.5
                     ) -> set[str]:
    """Cues sustained over a large part of a session: what kind of runner this was today.

    Rule: run a :class:`CueTracker` over the rows with ``baseline`` (None = the *default*
    :func:`population_baseline`, so a runner who is hamstring-dominant from the first stride is
    still recognised). After each valid row, note the cues active (at *alert* level) for that
    row's side, or for both sides (asymmetry). A cue is in the result when it was active during
    at least ``min_fraction`` (default 0.5) of one side's valid strides (cues about both sides:
    of all valid strides). Asymmetry at *caution* level does not count.

    Parameters
    ----------
    rows : iterable of dict
        Stride rows of one session, in time order.
    baseline : Baseline, optional
        A stored baseline of this athlete, or None for population defaults.
    thresholds : CueThresholds, optional
        Rules.
    min_fraction : float
        Fraction of strides (0–1) a cue must be active for.

    Returns
    -------
    set of str
        Cue names from ``schema.CUES``.
    """
    tracker = CueTracker(baseline if baseline is not None else population_baseline(),
                         thresholds=thresholds)
    per_side = dict.fromkeys(SIDES, 0)
    total = 0
    active_count: dict[tuple[str, str | None], int] = {}
    for row in rows:
        side = row.get("side")
        if side not in SIDES or not _is_valid(row):
            continue
        tracker.update(row)
        per_side[side] += 1
        total += 1
        counted = set()
        for (cue, s, _), level in tracker.active.items():
            if level != "alert" or (s is not None and s != side):
                continue
            key = (cue, s)
            if key not in counted:
                counted.add(key)
                active_count[key] = active_count.get(key, 0) + 1
    out = set()
    for (cue, s), n in active_count.items():
        denom = total if s is None else per_side[s]
        if denom and n >= min_fraction * denom:
            out.add(cue)
    return out

