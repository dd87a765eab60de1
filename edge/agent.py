"""The edge agent's loop: source → framer → spool → MQTT, and the station's status.

One thread does all the work in order, so the order of frames is the order of the spool:

1. read whatever blocks the source has ready (waiting at most a few ms);
2. cut them into frames and commit those to the spool (one SQLite transaction);
3. drop from the spool the frames the broker has acknowledged (PUBACKs arrive on paho's
   network thread, which only puts their message ids on a queue — it never blocks);
4. publish spooled frames, oldest first, while fewer than ``max_inflight`` are unacknowledged;
5. every ``status_interval_s``, publish the retained status (rates, gaps, clock, spool,
   sensor problems).

A frame therefore leaves the spool only after the broker has it; a broker outage fills the
spool, an agent restart resends what was not acknowledged (the pipeline de-duplicates by
(station, stream, epoch, seq)).
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from dataclasses import asdict
from typing import Any

from hipstride import __version__, topics
from hipstride.edge.config import EdgeConfig
from hipstride.edge.framing import Framer, PendingFrame
from hipstride.edge.health import Problem, StreamCounters, StreamHealth
from hipstride.edge.sources.base import Source, SourceError
from hipstride.edge.spool import Spool
from hipstride.mqtt import Connection, make_client

log = logging.getLogger("hipstride.edge")
STATUS_VERSION = 1


def offline_status(station: str, reason: str) -> bytes:
    return json.dumps({"version": STATUS_VERSION, "station": station, "state": "offline",
                       "reason": reason, "time_ns": time.time_ns()}).encode()


class Agent:
    def __init__(self, config: EdgeConfig, source: Source) -> None:
        self.config = config
        self.source = source
        self.station = config.station
        self.spool = Spool(config.spool_file, station=self.station,
                           capacity_bytes=config.spool_capacity_bytes)
        self.descriptions = {d.stream: d for d in source.descriptions}
        self.framers = {
            name: Framer(d, frame_ms=config.frame_ms, next_seq=self.spool.next_seq(name),
                         epoch=self.spool.epoch)
            for name, d in self.descriptions.items()
        }
        self.health = {name: StreamHealth(d) for name, d in self.descriptions.items()}
        self.counters = {name: StreamCounters() for name in self.descriptions}
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._inflight: dict[int, tuple[int, str]] = {}  # mid -> (spool id, stream)
        self._last_sent_id = 0
        self._unsent = True  # the spool may hold frames not yet handed to paho
        self._acked: list[int] = []
        self._next_ack_commit = 0.0
        self._announce = threading.Event()
        self._stop = threading.Event()
        self._stop_reason = "stopped"
        self._started_s = time.monotonic()
        self._evicted_this_run = 0

        client = make_client(config.broker, f"hipstride-edge-{self.station}",
                             clean_session=False, password=config.broker_password,
                             tls=config.tls)
        client.max_inflight_messages_set(config.max_inflight)
        client.will_set(topics.status(self.station),
                        offline_status(self.station, "connection lost"), qos=1, retain=True)
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client
        self.connection = Connection(client, config.broker)
        self.connection.on_connect(self._on_connect)
        self._commands: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    # -- paho network thread: only queue work --------------------------------------------
    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put(mid)

    def _on_message(self, client, userdata, message) -> None:
        self._commands.put(message.payload)

    def _on_connect(self, _session_present: bool) -> None:
        self.client.subscribe(topics.control(self.station), qos=1)
        self._announce.set()

    # -- main thread ------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stop.set()

    def run(self) -> int:
        """Stream until the source ends, a signal arrives or ``duration_s`` passes."""
        online = self.connection.open(keepalive_s=self.config.keepalive_s,
                                      timeout_s=self.config.connect_timeout_s,
                                      offline_ok=self.config.offline_ok)
        if not online:
            log.warning("broker %s not reachable yet; spooling to %s and retrying",
                        self.config.broker.redacted(), self.spool.path)
        deadline = (time.monotonic() + self.config.duration_s
                    if self.config.duration_s else None)
        next_status = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self.source.finished or (deadline is not None and now >= deadline):
                    break
                self._acquire(timeout_s=min(0.02, self.config.frame_ms / 2000))
                self._exchange()
                self._obey()
                if now >= next_status:
                    self.publish_status()
                    next_status = now + self.config.status_interval_s
            self._spool([f for framer in self.framers.values() for f in framer.flush()])
            self._drain()
        except SourceError as err:
            log.error("%s", err)
            self._stop_reason = f"source failed: {err}"
            self._spool([f for framer in self.framers.values() for f in framer.flush()])
            self._drain()
            return 1
        finally:
            self._shutdown()
        return 0

    def _acquire(self, timeout_s: float) -> None:
        blocks = self.source.read(timeout_s)
        if not blocks:
            return
        arrival_ns, now_s = time.time_ns(), time.monotonic()
        frames: list[PendingFrame] = []
        for block in blocks:
            framer = self.framers.get(block.stream)
            if framer is None:
                log.error("source produced undeclared stream %r; ignored", block.stream)
                continue
            frames += framer.push(block, arrival_ns if self.source.realtime else None)
            self.health[block.stream].add(block.samples, now_s)
            counters = self.counters[block.stream]
            counters.samples += len(block.samples)
            counters.samples_dropped_at_source += block.dropped_before
        self._spool(frames)

    def _spool(self, frames: list[PendingFrame]) -> None:
        if not frames:
            return
        for f in frames:
            self.counters[f.stream].frames += 1
        self._unsent = True
        evicted = self.spool.append(frames)
        if evicted:
            self._evicted_this_run += evicted
            log.warning("spool full (%d MB): evicted the %d oldest frames; see status",
                        self.config.spool_capacity_bytes // 1_000_000, evicted)

    def _exchange(self, *, settle_now: bool = False) -> None:
        """Settle acknowledgements and publish what the inflight window allows.

        Acknowledged frames leave the spool in one transaction every 100 ms rather than one
        per loop: a frame acknowledged but not yet deleted is at worst sent again after a
        crash, which de-duplication absorbs.
        """
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is not None:
                self._acked.append(entry[0])
                self.counters[entry[1]].frames_acked += 1
        now = time.monotonic()
        if self._acked and (settle_now or now >= self._next_ack_commit):
            self.spool.ack(self._acked)
            self._acked = []
            self._next_ack_commit = now + 0.1
        if not self.connection.connected.is_set():
            return
        if self._announce.is_set():
            self._announce.clear()
            for d in self.descriptions.values():
                self.client.publish(topics.stream_description(self.station, d.stream),
                                    d.to_json(), qos=1, retain=True)
        room = self.config.max_inflight - len(self._inflight)
        if room <= 0 or not self._unsent:
            return
        batch = self.spool.pending(self._last_sent_id, room)
        self._unsent = len(batch) == room
        for frame in batch:
            info = self.client.publish(topics.frames(self.station, frame.stream), frame.payload,
                                       qos=1)
            self._inflight[info.mid] = (frame.id, frame.stream)
            self._last_sent_id = frame.id

    def _obey(self) -> None:
        """Hand control commands to the source; a bad one is logged, never fatal."""
        while True:
            try:
                payload = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command = json.loads(payload)
                if not isinstance(command, dict) or "command" not in command:
                    raise ValueError("expected a JSON object with a 'command' field")
                self.source.control(command)
            except (ValueError, KeyError, TypeError) as err:
                log.warning("ignored control message %.80r: %s", payload, err)

    def _drain(self) -> None:
        """Wait until the broker has every spooled frame, or until the drain timeout."""
        end = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < end and not (self._stop.is_set()
                                              and self._stop_reason == "interrupted twice"):
            self._exchange(settle_now=True)
            if self.spool.depth().frames == 0:
                return
            time.sleep(0.01)
        left = self.spool.depth().frames
        if left:
            log.warning("%d frames are still spooled in %s; they are sent when the agent "
                        "next starts", left, self.spool.path)

    def _shutdown(self) -> None:
        try:
            if self.connection.connected.is_set():
                self.publish_status()
                info = self.client.publish(topics.status(self.station),
                                           offline_status(self.station, self._stop_reason),
                                           qos=1, retain=True)
                info.wait_for_publish(timeout=2.0)
        finally:
            self.connection.close()
            self.source.close()
            self.spool.close()

    # -- status -----------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        now_s = time.monotonic()
        found = [p for h in self.health.values() for p in h.problems(now_s)]
        for text in self.source.problems:
            found.append(Problem("", None, "source", str(text)))
        return found

    def status(self) -> dict[str, Any]:
        now_s = time.monotonic()
        depth = self.spool.depth()
        evictions = self.spool.evictions()
        streams = {}
        for name, framer in self.framers.items():
            estimate = framer.clock.estimate()
            counters = self.counters[name]
            ev_frames, ev_samples = evictions.get(name, (0, 0))
            streams[name] = {
                "rate_hz": framer.description.rate_hz,
                "rate_hz_measured": round(self.health[name].measured_rate_hz(now_s), 2),
                **asdict(counters),
                "next_seq": framer.next_seq,
                "evicted_frames": ev_frames,
                "evicted_samples": ev_samples,
                "clock": ({"offset_ms": round(estimate.offset_ms, 3),
                           "drift_ppm": round(estimate.drift_ppm, 2),
                           "reanchors": estimate.reanchors}
                          if self.source.realtime else {"source_timestamps": True}),
            }
        return {
            "version": STATUS_VERSION,
            "station": self.station,
            "state": "online",
            "time_ns": time.time_ns(),
            "agent": {"version": __version__, "source": self.config.source,
                      "epoch": self.spool.epoch,
                      "uptime_s": round(now_s - self._started_s, 1)},
            "streams": streams,
            "spool": {
                "frames": depth.frames,
                "bytes": depth.bytes,
                "capacity_bytes": self.spool.capacity_bytes,
                "oldest_age_s": (round((time.time_ns() - depth.oldest_t0_ns) / 1e9, 1)
                                 if depth.oldest_t0_ns else 0.0),
                "evicted_frames": sum(f for f, _ in evictions.values()),
                "evicted_samples": sum(n for _, n in evictions.values()),
            },
            "mqtt": {"connected": self.connection.connected.is_set(),
                     "connects": self.connection.connects,
                     "disconnects": self.connection.disconnects,
                     "inflight": len(self._inflight)},
            "problems": [p.to_dict() for p in self.problems()],
        }

    def publish_status(self) -> None:
        if self.connection.connected.is_set():
            self.client.publish(topics.status(self.station), json.dumps(self.status()),
                                qos=1, retain=True)


def install_signal_handlers(agent: Agent) -> None:
    """SIGINT/SIGTERM stop the agent gracefully (flush, drain, offline status)."""
    def handler(signum: int, _frame: object) -> None:
        if agent._stop.is_set():
            agent.stop("interrupted twice")
        else:
            agent.stop(f"stopped by {signal.Signals(signum).name}")
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
