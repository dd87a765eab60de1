"""The edge agent's loop: source → framer → spool → MQTT, and the station's status.

One thread does all the work in order, so the order of frames is the order of the spool:

1. read whatever blocks the source has ready (waiting at most a few ms);
2. cut them into frames and commit those to the spool (one SQLite transaction);
3. record in the spool the frames the broker has acknowledged (PUBACKs arrive on paho's
   network thread, which only puts their message ids on a queue — it never blocks), and drop
   those the pipeline's store confirmation (``…/stored``, :mod:`.confirm`) covers;
4. publish spooled frames, oldest first, while fewer than ``max_inflight`` are unacknowledged;
5. every ``status_interval_s``, publish the retained status (rates, gaps, clock, spool,
   store confirmation, sensor problems).

A frame therefore leaves the spool only once the store has it — not merely the broker, which
may lose what it acknowledged if it crashes before saving it. Frames the broker acknowledged
but the store never confirmed are sent again after every reconnect, and when the oldest of
them has waited ``confirm_timeout_s`` while a pipeline is confirming (a lost queue, a broker
fail-over). A broker or pipeline outage fills the spool; an agent restart resends what was
not confirmed (the pipeline de-duplicates by (station, stream, epoch, seq)). With
``require_store_confirmation = false`` the PUBACK alone removes a frame (protocol 1.0).
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
from hipstride.edge.confirm import MarkError, StoreMarks
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
        self._inflight_ids: set[int] = set()
        self._last_sent_id = 0
        self._unsent = True  # the spool may hold frames not yet handed to paho
        self._acked: list[int] = []  # PUBACKed spool ids not yet recorded in the spool
        self._acked_streams: set[str] = set()
        self._next_ack_commit = 0.0
        self.confirming = config.require_store_confirmation
        self.marks = StoreMarks(self.station, self.spool.epoch)
        self._marks_in: queue.SimpleQueue[tuple[bytes, bool]] = queue.SimpleQueue()
        self._reconnected = threading.Event()
        self._resend_until = 0  # spool ids up to this one, sent again, count as resent
        self._resends = 0
        self._resent: dict[str, int] = dict.fromkeys(self.descriptions, 0)
        self._confirmed: dict[str, int] = dict.fromkeys(self.descriptions, 0)
        self._next_stale_check = 0.0
        self._bad_marks = 0
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
        self.connection = Connection(client, config.broker, logger=log)  # logs drops, reconnects
        self.connection.on_connect(self._on_connect)
        self._commands: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    # -- paho network thread: only queue work --------------------------------------------
    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put(mid)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self._stored_topic:
            self._marks_in.put((message.payload, bool(message.retain)))
        else:
            self._commands.put(message.payload)

    def _on_connect(self, _session_present: bool) -> None:
        wanted = [(topics.control(self.station), 1)]
        if self.confirming:
            wanted.append((self._stored_topic, 1))
        self.client.subscribe(wanted)
        self._reconnected.set()
        self._announce.set()

    @property
    def _stored_topic(self) -> str:
        return topics.stored(self.station)

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
        acked = self._acked if self.confirming else []  # recorded in the same transaction
        evicted = self.spool.append(frames, acked=acked)
        if self.confirming:
            self._acked = []
        if evicted:
            self._evicted_this_run += evicted
            log.warning("spool full (%d MB): evicted the %d oldest frames; see status",
                        self.config.spool_capacity_bytes // 1_000_000, evicted)

    def _exchange(self, *, settle_now: bool = False) -> None:
        """Settle acknowledgements and confirmations; publish what the inflight window allows.

        PUBACKs and confirmations reach the spool in one transaction every 100 ms (or with
        the next frames) rather than one per loop: a frame settled in memory but not yet on
        disk is at worst sent again after a crash, which de-duplication absorbs.
        """
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is not None:
                self._inflight_ids.discard(entry[0])
                self._acked.append(entry[0])
                self._acked_streams.add(entry[1])
                self.counters[entry[1]].frames_acked += 1
        now = time.monotonic()
        self._take_marks(now)
        if settle_now or now >= self._next_ack_commit:
            self._settle(now)
        if not self.connection.connected.is_set():
            return
        if self._announce.is_set():
            self._announce.clear()
            for d in self.descriptions.values():
                self.client.publish(topics.stream_description(self.station, d.stream),
                                    d.to_json(), qos=1, retain=True)
        if self._reconnected.is_set():
            self._reconnected.clear()
            if self.confirming and (self.spool.acked_frames or self._acked):
                self._rewind("reconnected")
        if self.confirming and now >= self._next_stale_check:
            self._next_stale_check = now + 1.0
            self._resend_if_stale(now)
        self._publish_spooled()

    def _publish_spooled(self) -> None:
        """Hand spooled frames to paho, oldest first, up to the inflight window (frames
        already in flight are skipped: paho itself resends those after a reconnect)."""
        room = self.config.max_inflight - len(self._inflight)
        while room > 0 and self._unsent:
            batch = self.spool.pending(self._last_sent_id, room)
            self._unsent = len(batch) == room
            for frame in batch:
                self._last_sent_id = frame.id
                if frame.id in self._inflight_ids:
                    continue
                info = self.client.publish(topics.frames(self.station, frame.stream),
                                           frame.payload, qos=1)
                self._inflight[info.mid] = (frame.id, frame.stream)
                self._inflight_ids.add(frame.id)
                if frame.id <= self._resend_until:
                    self._resent[frame.stream] += 1
                room -= 1

    def _settle(self, now: float) -> None:
        """PUBACKs to the spool; drop what the broker acknowledged and the store confirmed."""
        self._next_ack_commit = now + 0.1
        if not self.confirming:
            if self._acked:
                self.spool.ack(self._acked)
                self._acked = []
            return
        if self._acked:
            self.spool.mark_acked(self._acked)
            self._acked = []
        streams = self._acked_streams | self.marks.changed
        self._acked_streams, self.marks.changed = set(), set()
        for stream in streams:
            runs = self.marks.runs.get(stream)
            if runs and stream in self._confirmed:
                self._confirmed[stream] += self.spool.confirm(stream, runs)

    def _take_marks(self, now: float) -> None:
        """Apply the pipeline's store confirmations that arrived (a bad one is logged)."""
        while True:
            try:
                payload, retained = self._marks_in.get_nowait()
            except queue.Empty:
                return
            if not payload:  # the retained confirmation was cleared
                continue
            try:  # a retained copy (sent on subscribing) is old: it says nothing of liveness
                self.marks.take(payload, now, live=not retained)
            except MarkError as err:
                self._bad_marks += 1
                if self._bad_marks in (1, 10, 100) or self._bad_marks % 1000 == 0:
                    log.warning("ignored store confirmation on %s (%d so far): %s",
                                self._stored_topic, self._bad_marks, err)

    def _rewind(self, why: str) -> None:
        """Send every spooled frame again, oldest first (all of them are unconfirmed)."""
        self._resend_until = max(self._resend_until, self._last_sent_id)
        self._last_sent_id = 0
        self._unsent = True
        self._resends += 1
        log.info("resending %d frame(s) the broker acknowledged but the store has not "
                 "confirmed (%s)", self.spool.acked_frames + len(self._acked), why)

    def _resend_if_stale(self, now: float) -> None:
        """A pipeline confirms, but a frame the broker took long ago is still unconfirmed:
        the broker lost it (or the pipeline's queue did); send the unconfirmed ones again.
        At most once per ``confirm_timeout_s``: a resent frame's PUBACK restarts its wait."""
        if not self.spool.acked_frames or not self.marks.confirming(now):
            return
        oldest = self.spool.oldest_ack_s()
        if oldest is not None and time.time() - oldest >= self.config.confirm_timeout_s:
            self._rewind(f"unconfirmed for {self.config.confirm_timeout_s:g} s")

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
        """Wait until the store has every spooled frame, or until the drain timeout.

        With no pipeline confirming, waiting for confirmations is pointless: the agent stops
        once the broker has acknowledged everything, and the frames stay in the spool.
        """
        end = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < end and not (self._stop.is_set()
                                              and self._stop_reason == "interrupted twice"):
            self._exchange(settle_now=True)
            frames = self.spool.depth().frames
            if frames == 0:
                return
            if (self.confirming and self.spool.acked_frames == frames
                    and not self.marks.confirming(time.monotonic())):
                break
            time.sleep(0.01)
        left = self.spool.depth().frames
        if left:
            log.warning("%d frames are still spooled in %s (%d of them acknowledged by the "
                        "broker, not confirmed by a store); they are sent when the agent next "
                        "starts", left, self.spool.path, self.spool.acked_frames)

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
        unconfirmed = self.spool.depth()
        if (self.confirming and unconfirmed.frames and not self.marks.confirming(now_s)
                and now_s - self._started_s >= 10):
            heard = self.marks.age_s(now_s)
            since = ("no confirmation yet" if heard == float("inf")
                     else f"the last one {heard:.0f} s ago")
            found.append(Problem("", None, "unconfirmed", (
                f"no pipeline is confirming what it stores ({since}): keeping "
                f"{unconfirmed.frames} frame(s), {unconfirmed.bytes / 1e6:.1f} of "
                f"{self.spool.capacity_bytes / 1e6:.0f} MB of the spool, until a pipeline "
                "stores them; is the pipeline running?")))
        return found

    def status(self) -> dict[str, Any]:
        now_s = time.monotonic()
        depth = self.spool.depth()
        evictions = self.spool.evictions()
        evicted_acked = self.spool.evicted_acked()
        now_ns = time.time_ns()
        streams = {}
        for name, framer in self.framers.items():
            estimate = framer.clock.estimate()
            counters = self.counters[name]
            ev_frames, ev_samples = evictions.get(name, (0, 0))
            oldest = self.spool.oldest_t0_ns(name) if self.spool.stream_frames(name) else None
            streams[name] = {
                "rate_hz": framer.description.rate_hz,
                "rate_hz_measured": round(self.health[name].measured_rate_hz(now_s), 2),
                **asdict(counters),
                "frames_confirmed": self._confirmed[name],
                "frames_resent": self._resent[name],
                "unconfirmed_frames": self.spool.stream_frames(name),
                "stored_seq": self.marks.seq.get(name),
                # (sample times of a non-real-time source say nothing about the wall clock)
                "confirm_lag_s": (None if not self.source.realtime else
                                  round(max(0.0, (now_ns - oldest) / 1e9), 1)
                                  if oldest is not None else 0.0),
                "next_seq": framer.next_seq,
                "evicted_frames": ev_frames,
                "evicted_samples": ev_samples,
                "evicted_acked_frames": evicted_acked.get(name, 0),
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
                "evicted_acked_frames": sum(evicted_acked.values()),
            },
            "store": self._store_status(now_s, depth.frames),
            "mqtt": {"connected": self.connection.connected.is_set(),
                     "connects": self.connection.connects,
                     "disconnects": self.connection.disconnects,
                     "inflight": len(self._inflight)},
            "problems": [p.to_dict() for p in self.problems()],
        }

    def _store_status(self, now_s: float, unconfirmed: int) -> dict[str, Any]:
        """How far behind the store is (docs/protocol.md, "Status")."""
        if not self.confirming:
            return {"confirmation": "off", "state": "off"}
        age = self.marks.age_s(now_s)
        return {"confirmation": "required",
                "state": ("confirming" if self.marks.confirming(now_s)
                          else "no pipeline confirming"),
                "last_confirmation_age_s": None if age == float("inf") else round(age, 1),
                "unconfirmed_frames": unconfirmed,
                "acked_unconfirmed_frames": self.spool.acked_frames + len(self._acked),
                "resends": self._resends,
                "resent_frames": sum(self._resent.values()),
                "confirm_timeout_s": self.config.confirm_timeout_s}

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
