"""``hipstride tap``: what is the broker carrying, stream by stream?

Subscribes (clean session, so it never leaves a queue behind) to frames, stream descriptions
and status of one or all stations and prints, every interval: sample rate decoded from the
frames, frames, sequence gaps and duplicates, rejected frames by reason, latency from a frame's
first sample to its arrival here, and — from each agent's status — how far behind the store
is (frames not yet confirmed by a pipeline, per stream, or "no pipeline confirming").
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from dataclasses import dataclass, field

from hipstride import topics
from hipstride.config import BrokerURL, env
from hipstride.frames import FrameError, decode_frame
from hipstride.mqtt import Connection, make_client
from hipstride.sequence import SequenceTracker


@dataclass
class StreamTap:
    sequence: SequenceTracker = field(default_factory=SequenceTracker)
    samples: int = 0
    frames: int = 0
    samples_interval: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rate_hz: float = 0.0
    channels: int = 0
    described: bool = False


@dataclass
class TapState:
    streams: dict[tuple[str, str], StreamTap] = field(default_factory=dict)
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)
    status: dict[str, dict] = field(default_factory=dict)

    def on_frame(self, station: str, stream: str, payload: bytes, arrival_ns: int) -> None:
        try:
            frame = decode_frame(payload)
        except FrameError as err:
            key = (station, err.reason)
            self.rejected[key] = self.rejected.get(key, 0) + 1
            return
        tap = self.streams.setdefault((station, stream), StreamTap())
        if tap.sequence.add(frame.seq, frame.epoch):
            tap.samples += frame.n_samples
            tap.samples_interval += frame.n_samples
            tap.frames += 1
        tap.rate_hz, tap.channels = frame.rate_hz, frame.n_channels
        tap.latencies_ms.append((arrival_ns - frame.t0_ns) / 1e6)

    def on_description(self, station: str, stream: str) -> None:
        self.streams.setdefault((station, stream), StreamTap()).described = True

    def report(self, interval_s: float) -> list[dict]:
        rows = []
        for (station, stream), tap in sorted(self.streams.items()):
            lat = sorted(tap.latencies_ms)
            rows.append({
                "station": station, "stream": stream, "described": tap.described,
                "rate_hz": tap.rate_hz, "measured_hz": round(tap.samples_interval / interval_s, 1),
                "channels": tap.channels, "frames": tap.frames, "samples": tap.samples,
                "missing": tap.sequence.missing, "duplicates": tap.sequence.duplicates,
                "latency_p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
                "latency_max_ms": round(lat[-1], 1) if lat else None,
            })
            tap.samples_interval = 0
            tap.latencies_ms.clear()
        return rows


def format_table(rows: list[dict], rejected: dict[tuple[str, str], int],
                 status: dict[str, dict]) -> str:
    header = (f"{'station':<14} {'stream':<12} {'rate':>7} {'measured':>9} {'frames':>8} "
              f"{'missing':>8} {'dup':>5} {'lat p50':>8} {'lat max':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lat50 = "-" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.0f}ms"
        latmax = "-" if r["latency_max_ms"] is None else f"{r['latency_max_ms']:.0f}ms"
        flag = "" if r["described"] else "  (no stream description!)"
        lines.append(f"{r['station']:<14} {r['stream']:<12} {r['rate_hz']:>7g} "
                     f"{r['measured_hz']:>9g} {r['frames']:>8} {r['missing']:>8} "
                     f"{r['duplicates']:>5} {lat50:>8} {latmax:>8}{flag}")
    if not rows:
        lines.append("(no frames yet)")
    for (station, reason), count in sorted(rejected.items()):
        lines.append(f"rejected from {station}: {count} frame(s), {reason}")
    for station, st in sorted(status.items()):
        problems = st.get("problems") or []
        spool = st.get("spool") or {}
        lines.append(f"{station}: {st.get('state', '?')}, spool {spool.get('frames', 0)} frames"
                     + store_line(st)
                     + "".join(f"\n  ! {p.get('message', p)}" for p in problems))
    return "\n".join(lines)


def store_line(status: dict) -> str:
    """The store confirmation part of a station's line: state, and per stream the frames
    not yet confirmed, the last confirmed sequence number and how far behind the store is."""
    store = status.get("store")
    if not isinstance(store, dict) or store.get("state") in (None, "off"):
        return "" if not isinstance(store, dict) else ", store confirmation off"
    parts = [f", store: {store['state']}"]
    if store.get("resends"):
        parts.append(f" ({store['resends']} resend(s), {store.get('resent_frames', 0)} frames)")
    for name, s in sorted((status.get("streams") or {}).items()):
        if isinstance(s, dict) and "unconfirmed_frames" in s:
            seq = "-" if s.get("stored_seq") is None else s["stored_seq"]
            lag = s.get("confirm_lag_s")
            lag_text = "-" if not isinstance(lag, int | float) else f"{lag:g} s"
            parts.append(f"\n  {name:<12} unconfirmed {s['unconfirmed_frames']:>6}  stored up "
                         f"to seq {seq}  lag {lag_text}")
    return "".join(parts)


def run_tap(broker_url: str | None, *, station: str | None = None, interval_s: float = 2.0,
            duration_s: float | None = None, as_json: bool = False) -> int:
    broker = BrokerURL.parse(broker_url or env("BROKER", "mqtt://localhost:1883"))
    client = make_client(broker, f"hipstride-tap-{os.getpid()}", clean_session=True,
                         password=env("BROKER_PASSWORD"))
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    client.on_message = lambda _c, _u, msg: inbox.put((msg.topic, msg.payload, time.time_ns()))
    connection = Connection(client, broker)
    filters = [topics.subscription(kind, station)
               for kind in (topics.FRAMES, topics.STREAMS, topics.STATUS)]
    connection.on_connect(lambda _sp: client.subscribe([(f, 1) for f in filters]))
    connection.open()
    state = TapState()
    end = time.monotonic() + duration_s if duration_s else None
    next_report = time.monotonic() + interval_s
    try:
        while end is None or time.monotonic() < end:
            try:
                topic, payload, arrival = inbox.get(timeout=0.1)
            except queue.Empty:
                topic = None
            if topic is not None:
                try:
                    parsed = topics.parse(topic)
                except ValueError:
                    continue
                if parsed.kind == topics.FRAMES:
                    state.on_frame(parsed.station, parsed.stream, payload, arrival)
                elif parsed.kind == topics.STREAMS:
                    state.on_description(parsed.station, parsed.stream)
                elif parsed.kind == topics.STATUS:
                    try:
                        state.status[parsed.station] = json.loads(payload)
                    except ValueError:
                        state.status[parsed.station] = {"state": "unreadable status"}
            if time.monotonic() >= next_report:
                rows = state.report(interval_s)
                if as_json:
                    print(json.dumps({"streams": rows, "rejected": {
                        f"{s}/{r}": n for (s, r), n in state.rejected.items()},
                        "store": {s: st.get("store") for s, st in state.status.items()}}),
                          flush=True)
                else:
                    print(format_table(rows, state.rejected, state.status) + "\n", flush=True)
                next_report += interval_s
    except KeyboardInterrupt:
        pass
    finally:
        connection.close()
    sys.stdout.flush()
    return 0
