"""A station's ``…/live`` message, gathered between publications (docs/protocol.md, "Live").

The pipeline polls a station's engine as soon as its frames are in and publishes at most
every ``interval_s`` on average (:meth:`LiveState.allowed_at`); what the polls since the
previous message produced — new stride rows, problems, the latest snapshot and the short
``series`` of envelopes and angles (at most ``series_hz``, for the dashboard's rolling
charts) — is kept here until then. Every message also carries the cues active at the latest
poll (``active_cues``): cue events go out once, so a dashboard that connects later learns
them here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hipstride.pipeline.engine.stream import StreamOutput

__all__ = ["LIVE_VERSION", "LiveState", "active_cues", "decimate", "session_phase"]

LIVE_VERSION = 1


def decimate(t_ns: np.ndarray, last_bin: int, rate_hz: float) -> tuple[np.ndarray, int]:
    """Indices of the first sample in each ``1/rate_hz`` bin (of absolute time) after bin
    ``last_bin``, and the last bin taken: continuous across calls, at most ``rate_hz``."""
    if not len(t_ns):
        return np.zeros(0, dtype=np.int64), last_bin
    bins = np.floor_divide(t_ns, round(1e9 / rate_hz))
    new = bins > last_bin
    if not new.any():
        return np.zeros(0, dtype=np.int64), last_bin
    idx = np.flatnonzero(new)
    b = bins[idx]
    if len(b) > 1 and (np.diff(b) < 0).any():  # not in time order: first of each bin
        _, first = np.unique(b, return_index=True)
        idx = idx[np.sort(first)]
        return idx, int(bins[idx].max())
    idx = idx[np.concatenate(([True], b[1:] != b[:-1]))]
    return idx, int(bins[idx[-1]])


def _nulls(values: list) -> list:
    """NaN (and None) as None: strict JSON."""
    return [v if v is not None and math.isfinite(v) else None for v in values]


def active_cues(origin_ns: int, cues: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The engine's active cues (:meth:`CueTracker.active_cues`, session seconds) as the live
    message carries them: ``since_ns`` is the raise's ``time_ns`` on ``…/cues``."""
    out = []
    for cue in cues or ():
        since_s = cue.get("since_s")
        since_ns = (origin_ns + round(float(since_s) * 1e9)
                    if isinstance(since_s, float | int) and math.isfinite(since_s) else None)
        out.append({"cue": cue["cue"], "side": cue.get("side"), "channel": cue.get("channel"),
                    "level": cue.get("level"), "message": cue.get("message"),
                    "since_ns": since_ns})
    return out


def session_phase(phase: str | None, phases: list[dict[str, Any]] | None
                  ) -> dict[str, Any] | None:
    """The session's open calibration or prone phase as the live message carries it
    (``phase``, ``start_ns``, ``muscle``/``side`` when given), None while running or idle:
    the dashboard shows what the athlete is doing and counts the trial down."""
    if phase in (None, "running") or not phases or phases[-1].get("end_ns") is not None:
        return None
    last = phases[-1]
    return {k: last[k] for k in ("phase", "start_ns", "muscle", "side") if last.get(k)
            is not None}


@dataclass
class LiveState:
    """One station's live message in the making, and when it may go out."""

    series_hz: float = 25.0
    interval_s: float = 0.05  # messages at most this often on average (a token bucket) …
    min_gap_s: float = 0.02  # … and never closer than this
    burst: float = 2.0  # bucket size: a message delayed once does not delay the next ones
    last_publish: float = -math.inf  # monotonic s
    _tokens: float = 2.0
    _tokens_at: float = -math.inf
    dirty_since: float | None = None  # monotonic s of the first frame not yet polled
    polled_until_ns: int = -1  # Station.data_until_ns() at the last poll
    snapshot: dict[str, Any] | None = None
    origin_ns: int = 0
    rows: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    envelope_last: dict[str, float | None] = field(default_factory=dict)
    _env_t: list[np.ndarray] = field(default_factory=list)
    _env_v: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _env_bin: int = -(2 ** 62)
    _angles: dict[str, dict[int, float]] = field(default_factory=dict)  # channel -> t -> v
    _angle_bin: int = -(2 ** 62)

    def allowed_at(self, now: float) -> float:
        """When the next message may go out (monotonic s; ``<= now``: now). A plain "at
        least ``interval_s`` apart" would lock onto a delay: with frames every 50 ms,
        one late message would hold every later one back by as much."""
        tokens = min(self.burst, self._tokens + (now - self._tokens_at) / self.interval_s)
        wait = max(0.0, (1.0 - tokens) * self.interval_s)
        return max(now + wait, self.last_publish + self.min_gap_s)

    def spend(self, now: float) -> None:
        """A message goes out now."""
        self._tokens = min(self.burst, self._tokens + (now - self._tokens_at) / self.interval_s
                           ) - 1.0
        self._tokens_at = now
        self.last_publish = now

    def add(self, origin_ns: int, out: StreamOutput, problems: list[str]) -> None:
        """Take one poll's output."""
        self.origin_ns = origin_ns
        self.snapshot = out.snapshot or {}
        self.rows += out.rows
        self.problems += problems
        processed = self.snapshot.get("processed") or {}
        envelope = processed.get("envelope_mv") or {}
        times = np.asarray(processed.get("time_s", ()), dtype=float)
        if len(times) and envelope:
            t_ns = origin_ns + np.round(times * 1e9).astype(np.int64)
            idx, self._env_bin = decimate(t_ns, self._env_bin, self.series_hz)
            if len(idx):
                self._env_t.append(t_ns[idx])
            for channel, values in envelope.items():
                v = np.asarray(values, dtype=float)
                if len(idx):
                    self._env_v.setdefault(channel, []).append(v[idx])
                self.envelope_last[channel] = float(v[-1]) if len(v) else None
        angles = self.snapshot.get("angles_deg") or {}
        if angles:  # one time axis for every angle: the union of their times, decimated
            stamps = {c: (origin_ns + np.round(np.asarray(a["time_s"], dtype=float) * 1e9)
                          ).astype(np.int64) for c, a in angles.items()}
            union = np.unique(np.concatenate(list(stamps.values())))
            idx, self._angle_bin = decimate(union, self._angle_bin, self.series_hz)
            keep = set(union[idx].tolist())
            for channel, t_ns in stamps.items():
                got = self._angles.setdefault(channel, {})
                got.update((t, v) for t, v in zip(
                    t_ns.tolist(), np.asarray(angles[channel]["value"], dtype=float).tolist(),
                    strict=True) if t in keep)

    def series(self) -> dict[str, Any]:
        """The ``series`` since the last message (and forget it)."""
        env_t = np.concatenate(self._env_t).tolist() if self._env_t else []
        envelope = {"t_ns": env_t,
                    "mv": {c: _nulls(np.concatenate(v).tolist())
                           for c, v in self._env_v.items() if len(env_t)}}
        times = sorted({t for got in self._angles.values() for t in got})
        angles = {"t_ns": times,
                  "deg": {c: _nulls([got.get(t) for t in times])
                          for c, got in sorted(self._angles.items())}}
        self._env_t, self._env_v, self._angles = [], {}, {}
        return {"envelope": envelope, "angles": angles}

    def message(self, station: str, *, rejected: dict[str, int], session: str,
                now_ns: int | None = None, open_phase: dict[str, Any] | None = None
                ) -> dict[str, Any]:
        """The ``…/live`` body; resets what it carried. ``series`` is JSON-ready (NaN as
        None); pass the rest through ``jsonable`` (numpy values, NaN)."""
        snapshot = self.snapshot or {}
        time_s = snapshot.get("time_s")
        body = {
            "version": LIVE_VERSION, "station": station,
            "time_ns": time.time_ns() if now_ns is None else now_ns,
            "data_time_ns": (self.origin_ns + round(time_s * 1e9)
                             if isinstance(time_s, float | int) and math.isfinite(time_s)
                             else None),
            "phase": snapshot.get("phase"),
            "hip_flexion_deg": snapshot.get("hip_flexion_deg"),
            "pelvic_tilt_deg": snapshot.get("pelvic_tilt_deg"),
            "envelope_mv": dict(self.envelope_last),
            "strides": self.rows,
            "rejected": rejected,
            "problems": self.problems,
            "session": session,
            "series": self.series(),
            "active_cues": active_cues(self.origin_ns, snapshot.get("active_cues")),
            "session_phase": open_phase,
        }
        self.rows, self.problems = [], []
        self.envelope_last = {}
        return body
