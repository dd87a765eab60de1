"""The pipeline's imperative shell: MQTT in, store and MQTT out, metrics, shutdown.

One main thread does all the work, in arrival order; paho's network thread only puts
messages on a queue (it never blocks, never touches the store). Delivery:

1. Subscriptions are QoS 1 on a persistent session (``clean_session=False``, a fixed client
   id per partition), with paho's **manual acknowledgements**: the broker keeps re-sending a
   message until we PUBACK it, across our crashes and reconnects.
2. A frame is validated (:func:`.ingest.validate_frame`), de-duplicated by (station, stream,
   epoch, seq), appended to the station's recording and fed to its engine.
3. Every ``batch_interval_s`` (default 100 ms) the batch — the frames' index points, the
   engine's stride rows, cues and processed envelopes — is written to the store in one
   synchronous call. If the store is down (:class:`StoreUnavailable`) the batch goes to the
   on-disk spool instead, and later batches follow it there until the spool is replayed, oldest
   first, so the store receives batches in order. The frames are recorded as stored in the
   same SQLite transaction that spools them.
4. Only then are the batch's MQTT messages acknowledged. A crash before that means redelivery;
   redelivered frames already stored are recognised and acknowledged without a second write,
   and a write repeated anyway is idempotent in the store.

Partitioning (``--partition I/N``): each process has its own persistent session and receives
every station's messages, acknowledging at once those of stations outside its share (a stable
hash of the station id, :func:`.config.station_bucket`): N processes with the same N split
the stations, each station wholly in one of them.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hipstride import topics
from hipstride.jsonsafe import jsonable
from hipstride.mqtt import Connection, TLSFiles, make_client
from hipstride.pipeline.store import (
    PointBuilder,
    Store,
    StoreError,
    StoreRejected,
    StoreUnavailable,
    open_store,
)
from hipstride.pipeline.store.base import FRAMES, FrameRecord, Point

from .config import PipelineConfig
from .ingest import (
    DedupIndex,
    FrameKey,
    GapTracker,
    RejectCounter,
    Rejected,
    StateDB,
    validate_description,
    validate_frame,
)
from .phases import WAIT_S, PhaseJob, results_message
from .sessions import (
    UNASSIGNED,
    CommandError,
    Outcome,
    SessionState,
    StationSessions,
    parse_command,
    peek_command,
)
from .station import Station, StationOutput, output_points

__all__ = ["Metrics", "Pipeline", "RateLimitedLog", "install_signal_handlers"]

log = logging.getLogger("hipstride.pipeline")
LIVE_VERSION = 1
INVALID_STATION = "_invalid"
MAX_SPOOL_RETRY_S = 30.0
INGEST_VERSION = 1
#: ``…/ingest`` is published at most once per this interval per station (s), and at once on
#: the first rejection of a reason.
INGEST_INTERVAL_S = 1.0


class RateLimitedLog:
    """At most one message per key and interval; the next one says how many were held back."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: Counter = Counter()

    def __call__(self, level: int, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) < self.interval_s:
            self._held[key] += 1
            return
        held = self._held.pop(key, 0)
        if held:
            message += f" ({held} similar message(s) held back)"
        self._last[key] = now
        self.logger.log(level, message, *args)


# --- metrics ------------------------------------------------------------------------------------
class Metrics:
    """Counters and gauges, written by the main thread, read by the HTTP thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[str, Counter] = defaultdict(Counter)
        self.gauges: dict[str, dict[tuple, float]] = defaultdict(dict)

    def inc(self, name: str, labels: tuple = (), n: float = 1) -> None:
        with self.lock:
            self.counters[name][labels] += n

    def set(self, name: str, value: float, labels: tuple = ()) -> None:
        with self.lock:
            self.gauges[name][labels] = value


#: name -> (type, help, label names)
_METRICS = {
    "frames_total": ("counter", "Frames accepted (new, valid)", ("station", "stream")),
    "samples_total": ("counter", "Samples in accepted frames", ("station", "stream")),
    "rejected_total": ("counter", "Input refused, by reason", ("station", "reason")),
    "duplicates_total": ("counter", "Frames received again and not re-processed",
                         ("station",)),
    "ignored_total": ("counter", "Messages of stations outside this partition", ()),
    "control_total": ("counter", "Session commands applied", ("station", "command")),
    "control_rejected_total": ("counter", "Control messages refused, by reason",
                               ("station", "reason")),
    "stride_rows_total": ("counter", "Stride rows produced", ("station",)),
    "cues_total": ("counter", "Cue events produced", ("station",)),
    "store_writes_total": ("counter", "Store write calls by outcome", ("outcome",)),
    "store_write_seconds_sum": ("counter", "Time spent in store writes", ()),
    "store_write_seconds_count": ("counter", "Store writes timed", ()),
    "sequence_missing_frames": ("gauge", "Frames missing in sequence (seen so far)",
                                ("station", "stream")),
    "lag_seconds": ("gauge", "Arrival time minus the last sample's time, latest frame",
                    ("station",)),
    "store_write_seconds_last": ("gauge", "Duration of the latest store write", ()),
    "store_up": ("gauge", "1 when the latest store write succeeded", ()),
    "spool_batches": ("gauge", "Batches waiting in the store spool", ()),
    "spool_points": ("gauge", "Points waiting in the store spool", ()),
    "refused_batches": ("gauge", "Batches the store refused, kept in the state dir", ()),
    "pending_frames": ("gauge", "Frames accepted, not yet stored or spooled", ()),
    "mqtt_connected": ("gauge", "1 while connected to the broker", ()),
    "mqtt_subscribed": ("gauge", "1 once the broker confirmed the subscriptions", ()),
}


def _label_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(metrics: Metrics) -> str:
    """Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    with metrics.lock:
        for name, (kind, text, labels) in _METRICS.items():
            full = f"hipstride_pipeline_{name}"
            values = metrics.counters.get(name) if kind == "counter" else metrics.gauges.get(name)
            lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
            for key, value in sorted((values or {}).items()):
                label = ",".join(f'{n}="{_label_value(v)}"'
                                 for n, v in zip(labels, key, strict=True))
                lines.append(f"{full}{{{label}}} {value:g}" if label else f"{full} {value:g}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /health`` on a loopback port."""

    def __init__(self, metrics: Metrics, port: int, host: str = "127.0.0.1") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body = render_metrics(metrics).encode()
                    ctype = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path == "/health":
                    body, ctype = b"ok\n", "text/plain"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- store with spool ---------------------------------------------------------------------------
class StoreSink:
    """Writes batches to the store, or to the spool while the store is down or the spool is
    not yet empty (so batches reach the store in order)."""

    def __init__(self, store: Store, state: StateDB, metrics: Metrics, say: RateLimitedLog,
                 *, retry_s: float) -> None:
        self.store = store
        self.state = state
        self.metrics = metrics
        self.say = say
        self.retry_s = retry_s
        self._backoff = retry_s
        self._next_retry = 0.0
        self.depth = state.spool_depth()
        self._update()

    def _update(self) -> None:
        self.metrics.set("spool_batches", self.depth[0])
        self.metrics.set("spool_points", self.depth[1])
        self.metrics.set("refused_batches", self.state.refused_depth())

    def _timed_write(self, points: list[Point]) -> None:
        start = time.perf_counter()
        try:
            self.store.write_points(points)
        finally:
            took = time.perf_counter() - start
            self.metrics.inc("store_write_seconds_sum", n=took)
            self.metrics.inc("store_write_seconds_count")
            self.metrics.set("store_write_seconds_last", took)

    def write(self, points: list[Point], seen: dict) -> str:
        """Store (or spool) a batch and persist ``seen`` with it; returns the outcome."""
        if self.depth[0]:
            self.state.commit(seen, spool=points)
            outcome = "spooled"
        else:
            try:
                if points:
                    self._timed_write(points)
                self.state.commit(seen)
                outcome = "stored"
                self.metrics.set("store_up", 1)
            except StoreUnavailable as err:
                self._down(err)
                self.state.commit(seen, spool=points)
                outcome = "spooled"
            except StoreRejected as err:
                self.say(logging.ERROR, "refused", "the store refused a batch of %d points "
                         "(kept in %s, table refused): %s", len(points), self.state.path, err)
                self.state.commit(seen, refused=(points, str(err)))
                outcome = "refused"
        self.metrics.inc("store_writes_total", (outcome,))
        if outcome != "stored":
            self.depth = self.state.spool_depth()
            self._update()
        return outcome

    def _down(self, err: Exception) -> None:
        self.metrics.set("store_up", 0)
        self._next_retry = time.monotonic() + self._backoff
        self.say(logging.WARNING, "store-down", "store unavailable, spooling batches to %s and "
                 "retrying in %.1f s: %s", self.state.path, self._backoff, err)
        self._backoff = min(MAX_SPOOL_RETRY_S, self._backoff * 2)

    def replay(self, budget_s: float = 0.5) -> None:
        """Send spooled batches, oldest first, for at most about ``budget_s``."""
        if not self.depth[0] or time.monotonic() < self._next_retry:
            return
        end = time.monotonic() + budget_s
        while time.monotonic() < end:
            oldest = self.state.spool_oldest()
            if oldest is None:
                break
            batch_id, points = oldest
            try:
                self._timed_write(points)
            except StoreUnavailable as err:
                self._down(err)
                break
            except StoreRejected as err:
                self.say(logging.ERROR, "refused", "the store refused a spooled batch of %d "
                         "points (moved to table refused): %s", len(points), err)
                self.state.spool_refuse(batch_id, str(err))
                continue
            self.state.spool_remove(batch_id)
            self.metrics.inc("store_writes_total", ("replayed",))
        self.depth = self.state.spool_depth()
        if not self.depth[0]:
            self._backoff = self.retry_s
            self.metrics.set("store_up", 1)
            log.info("store spool replayed; writing directly again")
        self._update()


# --- the service --------------------------------------------------------------------------------
@dataclass
class _Message:
    generation: int
    topic: str
    payload: bytes
    mid: int
    qos: int
    arrival_ns: int


@dataclass
class _Batch:
    keys: list[FrameKey] = field(default_factory=list)
    frames: dict[str, list[FrameRecord]] = field(default_factory=lambda: defaultdict(list))
    acks: list[_Message] = field(default_factory=list)
    stations: set[str] = field(default_factory=set)
    points: list[Point] = field(default_factory=list)  # session metadata
    started: float = field(default_factory=time.monotonic)


class Pipeline:
    """The service (see the module docstring). ``run()`` until stopped."""

    def __init__(self, config: PipelineConfig, *, store: Store | None = None) -> None:
        self.config = config
        self.say = RateLimitedLog(log, config.log_interval_s)
        self.metrics = Metrics()
        self.partition = config.partition
        name = f"pipeline-{config.partition.index}-of-{config.partition.count}.sqlite"
        self.state = StateDB(config.state_dir / name)
        self.dedup = DedupIndex(self.state.load_seen())
        self.gaps = GapTracker()
        self.rejected = RejectCounter()
        self.stations: dict[str, Station] = {}
        self.sessions: dict[str, StationSessions] = {}
        for station, body in self.state.load_sessions():
            try:
                self.sessions[station] = StationSessions(station,
                                                         SessionState.from_json(station, body))
            except (ValueError, TypeError) as err:
                log.error("station %s: stored session state unreadable, starting idle: %s",
                          station, err)
        self._calibrations = self.state.load_calibrations()
        for station, description in self.state.load_descriptions():
            if self.partition.owns(station):
                self._station(station).describe(description)
        self.store = store or open_store(config.store_url, token_file=config.store_token_file,
                                         timeout_s=config.store_timeout_s,
                                         ssl_ca_cert=config.ca_file)
        self.sink = StoreSink(self.store, self.state, self.metrics, self.say,
                              retry_s=config.spool_retry_s)
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._generation = 0
        self._batch = _Batch()
        self._stop = threading.Event()
        self.metrics_server: MetricsServer | None = None
        self._phase_jobs: list[PhaseJob] = []
        self._ingest: dict[str, dict[str, Any]] = {}  # station -> last rejection, gaps seen
        self._ingest_due: dict[str, float] = {}  # station -> monotonic time of next publish

        client = make_client(config.broker, config.client_id, clean_session=False,
                             password=config.broker_password,
                             tls=TLSFiles(config.ca_file, config.cert_file, config.key_file,
                                          config.tls_insecure), manual_ack=True)
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()
        self.client = client
        self.connection = Connection(client, config.broker)
        self.connection.on_connect(self._on_connect)

    # -- paho network thread: only queue work ------------------------------------------------
    def _on_connect(self, _session_present: bool) -> None:
        self._generation += 1
        self.client.subscribe([(topics.subscription(kind), 1) for kind in
                               (topics.FRAMES, topics.STREAMS, topics.STATUS, topics.CONTROL)])

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        self._inbox.put(_Message(self._generation, message.topic, bytes(message.payload),
                                 message.mid, message.qos, time.time_ns()))

    # -- main thread ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        if self.config.metrics_port:
            self.metrics_server = MetricsServer(self.metrics, self.config.metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics_server.port)
        self.connection.open(keepalive_s=self.config.keepalive_s,
                             timeout_s=self.config.connect_timeout_s)
        log.info("pipeline %s (client id %s) connected to %s; store %s", self.partition,
                 self.config.client_id, self.config.broker.redacted(), self.store.kind)
        deadline = (time.monotonic() + self.config.duration_s
                    if self.config.duration_s else math.inf)
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._step()
            self._drain_inbox()
            for job in self._phase_jobs:  # a phase that just ended: analyse what arrived
                job.due = -math.inf
            self._flush()
        finally:
            self._shutdown()
        return 0

    def _step(self) -> None:
        """Handle what arrived until the batch is due, then flush it; replay the spool."""
        due = self._batch.started + self.config.batch_interval_s
        end = time.monotonic() + self.config.batch_interval_s
        while len(self._batch.keys) < self.config.batch_max_frames:
            wait = min(due, end) - time.monotonic()
            if wait <= 0:
                break
            try:
                message = self._inbox.get(timeout=wait)
            except queue.Empty:
                break
            self._handle(message)
        self._flush()
        self.sink.replay()
        self.metrics.set("mqtt_connected", int(self.connection.connected.is_set()))
        self.metrics.set("mqtt_subscribed", int(self._subscribed.is_set()))

    def _drain_inbox(self) -> None:
        while True:
            try:
                self._handle(self._inbox.get_nowait())
            except queue.Empty:
                return

    def _station(self, station: str) -> Station:
        st = self.stations.get(station)
        if st is None:
            st = self.stations[station] = Station(
                station, self.config.recordings, timeline=self._sessions(station).timeline,
                calibration=self._calibrations.get(station))
        return st

    def _sessions(self, station: str) -> StationSessions:
        ss = self.sessions.get(station)
        if ss is None:
            ss = self.sessions[station] = StationSessions(station)
        return ss

    def _ack(self, message: _Message) -> None:
        """PUBACK — only on the connection the message came on; after a reconnect the broker
        sends it again (and the copy is acknowledged once its original is stored)."""
        if message.qos and message.generation == self._generation:
            self.client.ack(message.mid, message.qos)

    def _reject(self, station: str, reason: str, message: str, msg: _Message) -> None:
        first = (station, reason) not in self.rejected
        self.rejected.add(station, reason)
        self.metrics.inc("rejected_total", (station, reason))
        self.say(logging.WARNING, f"reject:{station}:{reason}", "station %s: rejected (%s) on "
                 "%s: %s", station, reason, msg.topic, message)
        self._ack(msg)
        if station != INVALID_STATION:
            info = self._ingest.setdefault(station, {})
            info["last"] = {"reason": reason, "message": message[:500],
                            "time_ns": msg.arrival_ns}
            if first:
                self._publish_ingest(station)
            else:
                self._ingest_due.setdefault(
                    station, info.get("published", -math.inf) + INGEST_INTERVAL_S)

    def _publish_ingest(self, station: str) -> None:
        """The retained ``…/ingest`` summary (docs/protocol.md, "Ingest health")."""
        info = self._ingest.setdefault(station, {})
        missing = {stream: n for (s, stream), n in self.gaps.missing().items() if s == station}
        info["missing"] = missing
        body = {"version": INGEST_VERSION, "station": station, "time_ns": time.time_ns(),
                "rejected": self.rejected.for_station(station), "last": info.get("last"),
                "sequence_missing": missing}
        self.client.publish(topics.ingest(station), json.dumps(jsonable(body)), qos=1,
                            retain=True)
        self._ingest_due.pop(station, None)
        info["published"] = time.monotonic()

    def _ingest_tick(self) -> None:
        """Publish the ingest summaries that changed, at most once a second per station."""
        now = time.monotonic()
        for (station, stream), n in self.gaps.missing().items():
            info = self._ingest.setdefault(station, {})
            if n and (info.get("missing") or {}).get(stream) != n:
                self._ingest_due.setdefault(
                    station, info.get("published", -math.inf) + INGEST_INTERVAL_S)
        for station, due in list(self._ingest_due.items()):
            if now >= due:
                self._publish_ingest(station)

    def _handle(self, msg: _Message) -> None:
        try:
            parsed = topics.parse(msg.topic)
        except ValueError as err:
            self._reject(INVALID_STATION, "bad_topic", str(err), msg)
            return
        if not self.partition.owns(parsed.station):
            self.metrics.inc("ignored_total")
            self._ack(msg)
            return
        if parsed.kind == topics.FRAMES:
            self._on_frame(parsed.station, parsed.stream, msg)
        elif parsed.kind == topics.STREAMS:
            try:
                description = validate_description(msg.payload, parsed.stream)
            except Rejected as err:
                self._reject(parsed.station, err.reason, str(err), msg)
                return
            if self._station(parsed.station).describe(description):
                self.state.save_description(parsed.station, description)
            self._ack(msg)
        elif parsed.kind == topics.CONTROL:
            self._on_control(parsed.station, msg)
        else:  # status
            self._ack(msg)

    def _on_control(self, station: str, msg: _Message) -> None:
        """Apply a session command; reply with the retained session state (also refusals)."""
        ss = self._sessions(station)
        now = time.time_ns()
        try:
            command = parse_command(msg.payload)
        except CommandError as err:
            if err.reason == "not_session":  # for the edge agent (e.g. the simulator's profile)
                self._ack(msg)
                return
            name, request = peek_command(msg.payload)
            self._control_refused(ss, err.reason, str(err), msg, now, request,
                                  Outcome(name, False, err.reason, str(err)))
            return
        request = command.request
        outcome = ss.apply(command, now)
        if not outcome.ok:
            self._control_refused(ss, outcome.reason, outcome.message, msg, now, request,
                                  outcome)
            return
        if not outcome.duplicate:
            self.state.save_session(station, ss.state.to_json())
            self.metrics.inc("control_total", (station, command.command))
            log.info("station %s: %s -> session %s (%s)", station, command.command,
                     outcome.meta.session if outcome.meta else None,
                     "running" if ss.active else "idle")
            if outcome.closed_phase is not None:
                self._phase_jobs.append(PhaseJob.from_record(
                    station, outcome.closed_phase, time.monotonic() + WAIT_S))
            if command.command == "start":
                outcome.calibration = self._reuse_calibration(station, command.athlete)
        if outcome.meta is not None:
            c = PointBuilder()
            c.write_session(outcome.meta)
            self._batch.points += c.points
        self._batch.acks.append(msg)  # acknowledged once the metadata is stored or spooled
        self._publish_session(ss, now, outcome, request)

    def _reuse_calibration(self, station: str, athlete: str | None) -> dict[str, Any]:
        """Load the athlete's stored calibration into the station; says what was reused."""
        st = self._station(station)
        try:
            stored = self.store.calibration(athlete) if athlete else None
        except StoreError as err:
            st.use_athlete(None)
            message = (f"the stored calibration of {athlete} cannot be read now ({err}): "
                       "running with the defaults (relative EMG ratios, cue baseline learnt "
                       "from the first strides)")
            log.warning("station %s: %s", station, message)
            return {"reused": [], "message": message}
        st.use_athlete(stored)
        reused, parts = [], []
        times = (stored or {}).get("time_ns", {})

        def when(kind: str) -> str:
            t = times.get(kind)
            return "" if t is None else " of " + time.strftime("%Y-%m-%d", time.gmtime(t / 1e9))

        if st.athlete_mvc:
            reused.append("mvc")
            missing = st.mvc_missing()
            parts.append(f"MVC references{when('mvc')} for {', '.join(sorted(st.athlete_mvc))}"
                         + (f" (still needed for {', '.join(missing)}: EMG ratios stay "
                            "relative until every channel has one)" if missing else
                            " (EMG normalised to MVC)"))
        if (stored or {}).get("baseline"):
            reused.append("baseline")
            parts.append(f"the cue baseline{when('baseline')}")
        if parts:
            message = f"reused for {athlete}: " + "; ".join(parts)
        else:
            message = (f"no stored calibration for {athlete}: EMG ratios are relative to this "
                       "session's own strides (do an MVC phase for %MVC) and cues learn their "
                       "baseline from the first strides")
        if (stored or {}).get("standing"):
            message += ("; the standing calibration is not reused (straps move between "
                        "sessions): do a standing phase")
        log.info("station %s: %s", station, message)
        return {"reused": reused, "mvc_channels": sorted(st.athlete_mvc), "message": message}

    def _run_phases(self) -> None:
        """Analyse the phases whose data is in (or waited for long enough); publish the
        result, store it with the batch, and apply it to the station's engine."""
        keep = []
        for job in self._phase_jobs:
            st = self.stations.get(job.station)
            end = st.data_end_ns() if st is not None else None
            if (end is None or end < job.end_ns) and time.monotonic() < job.due:
                keep.append(job)
                continue
            try:
                self._finish_phase(job, st)
            except Exception:  # one bad phase must not stop the service
                log.exception("station %s: %s phase could not be analysed", job.station,
                              job.phase)
                self._publish_result(job, False, ["the phase could not be analysed (an "
                                                  "internal error, logged): repeat it"], {})
        self._phase_jobs = keep

    def _finish_phase(self, job: PhaseJob, st: Station | None) -> None:
        if st is None:
            self._publish_result(job, False, ["no data from this station during the phase: "
                                              "is the edge agent running?"], {})
            return
        res = st.run_phase(job)
        c = PointBuilder()
        athlete = job.athlete or UNASSIGNED
        if job.phase == "standing":
            res.result["applied"] = False
            if res.ok and res.state is not None:
                res.result["engine"] = st.apply_standing(res.state, job.end_ns)
                res.result["applied"] = res.result["engine"].startswith("applied")
                c.write_calibration(athlete, job.end_ns, {"standing": res.state},
                                    station=job.station, session=job.session)
        elif job.phase == "mvc":
            if res.state is not None:
                missing = st.apply_mvc(dict(zip(res.state["channels"],
                                                res.state["reference_mv"], strict=True)))
                chans = sorted(st.athlete_mvc)
                c.write_calibration(athlete, job.end_ns, {"mvc": {
                    "channels": chans, "reference_mv": [st.athlete_mvc[k] for k in chans],
                    "normalization": "mvc", "version": 1}},
                    station=job.station, session=job.session)
                res.result["mvc_missing"] = list(missing)
            res.result["normalization"] = (st.engine.normalization if st.engine is not None
                                           else None)
        else:
            c.write_phe(job.station, job.session, job.athlete,
                        res.result.get("repetitions") or [], origin_ns=job.start_ns)
        self._batch.points += c.points
        self._publish_result(job, res.ok, res.problems, res.result)
        log.info("station %s: %s phase of session %s: %s%s", job.station, job.phase,
                 job.session, "ok" if res.ok else "not ok",
                 ("; " + "; ".join(res.problems)) if res.problems else "")

    def _publish_result(self, job: PhaseJob, ok: bool, problems: list[str],
                        result: dict[str, Any]) -> None:
        body = results_message(job, ok, problems, result, time.time_ns())
        self.client.publish(topics.results(job.station), json.dumps(body), qos=1, retain=True)

    def _control_refused(self, ss: StationSessions, reason: str, message: str, msg: _Message,
                         now: int, request: str | None, outcome: Outcome) -> None:
        self.metrics.inc("control_rejected_total", (ss.station, reason))
        self.say(logging.WARNING, f"control:{ss.station}:{reason}", "station %s: control "
                 "message refused (%s): %s", ss.station, reason, message)
        self._publish_session(ss, now, outcome, request)
        self._ack(msg)

    def _publish_session(self, ss: StationSessions, now: int, outcome: Outcome,
                         request: str | None) -> None:
        body = ss.reply(now, outcome, request)
        self.client.publish(topics.session(ss.station), json.dumps(jsonable(body)), qos=1,
                            retain=True)

    def _on_frame(self, station: str, stream: str, msg: _Message) -> None:
        st = self._station(station)
        try:
            frame = validate_frame(msg.payload, stream, st.descriptions.get(stream))
        except Rejected as err:
            self._reject(station, err.reason, str(err), msg)
            return
        key = (station, stream, frame.epoch, frame.seq)
        state = self.dedup.check(key)
        if state != "new":
            self.metrics.inc("duplicates_total", (station,))
            if state == "stored":
                self._ack(msg)
            else:
                self._batch.acks.append(msg)  # acknowledged with its original
            return
        self.dedup.reserve(key)
        self.gaps.add(station, stream, frame.seq, frame.epoch)
        st.accept(frame, msg.payload)
        batch = self._batch
        batch.keys.append(key)
        batch.frames[station].append(FrameRecord.from_frame(frame,
                                                            st.timeline.at(frame.t0_ns)[0]))
        batch.acks.append(msg)
        batch.stations.add(station)
        self.metrics.inc("frames_total", (station, stream))
        self.metrics.inc("samples_total", (station, stream), frame.n_samples)
        self.metrics.set("lag_seconds", (msg.arrival_ns - frame.t0_ns - frame.duration_ns) / 1e9,
                         (station,))

    def _flush(self) -> None:
        if self._phase_jobs:
            self._run_phases()
        batch, self._batch = self._batch, _Batch()
        points: list[Point] = list(batch.points)
        for station, records in batch.frames.items():
            points += [Point.make(FRAMES, f.t0_ns, {"station": station, "stream": f.stream},
                                  {"epoch": f.epoch, "seq": f.seq, "n_samples": f.n_samples,
                                   "rate_hz": f.rate_hz, "session": f.session})
                       for f in records]
        for name in sorted(batch.stations):
            st = self.stations[name]
            out = st.poll()
            if out is not None:
                points += output_points(out, st.timeline)
                self._publish(out)
                update = st.calibration_update()
                if update is not None:
                    self.state.save_calibration(name, *update)
            st.flush()
        if batch.keys or points:
            seen = self.dedup.commit(batch.keys)
            self.sink.write(points, seen)
        for msg in batch.acks:
            self._ack(msg)
        self.metrics.set("pending_frames", self.dedup.pending)
        for (station, stream), n in self.gaps.missing().items():
            self.metrics.set("sequence_missing_frames", n, (station, stream))
        self._ingest_tick()

    def _publish(self, out: StationOutput) -> None:
        """Live metrics (QoS 0) and cues (QoS 1) for the dashboard."""
        e = out.engine
        for problem in out.problems:
            self.say(logging.WARNING, f"problem:{out.station}:{problem[:40]}", "%s", problem)
        if e.rows:
            self.metrics.inc("stride_rows_total", (out.station,), len(e.rows))
        snapshot = e.snapshot or {}
        envelope = (snapshot.get("processed") or {}).get("envelope_mv") or {}
        time_s = snapshot.get("time_s")
        live = {
            "version": LIVE_VERSION, "station": out.station, "time_ns": time.time_ns(),
            "data_time_ns": (out.origin_ns + round(time_s * 1e9)
                             if isinstance(time_s, float | int) and math.isfinite(time_s)
                             else None),
            "phase": snapshot.get("phase"),
            "hip_flexion_deg": snapshot.get("hip_flexion_deg"),
            "pelvic_tilt_deg": snapshot.get("pelvic_tilt_deg"),
            "envelope_mv": {c: (v[-1] if len(v) else None) for c, v in envelope.items()},
            "strides": e.rows,
            "rejected": self.rejected.for_station(out.station),
            "problems": out.problems,
            "session": self._sessions(out.station).state.session or UNASSIGNED,
        }
        self.client.publish(topics.live(out.station), json.dumps(jsonable(live)), qos=0)
        for event in e.cue_events:
            self.metrics.inc("cues_total", (out.station,))
            time_ns = out.origin_ns + round(float(event["stride_start_s"]) * 1e9)
            body = {"version": LIVE_VERSION, "station": out.station, "time_ns": time_ns,
                    "session": self._sessions(out.station).timeline.at(time_ns)[0], **event}
            self.client.publish(topics.cues(out.station), json.dumps(jsonable(body)), qos=1)

    def _shutdown(self) -> None:
        try:
            for st in self.stations.values():
                st.close()
        finally:
            try:
                self.connection.close()
            finally:
                if self.metrics_server is not None:
                    self.metrics_server.close()
                self.store.close()
                self.state.close()


def install_signal_handlers(pipeline: Pipeline,
                            signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """SIGINT/SIGTERM: stop taking messages, flush the batch, close recordings, disconnect."""
    def handler(signum: int, _frame: object) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        pipeline.stop()
    for sig in signals:
        signal.signal(sig, handler)


def run_pipeline(config: PipelineConfig, *, on_ready: Callable[[Pipeline], None] | None = None
                 ) -> int:
    """Build, install signal handlers, run."""
    pipeline = Pipeline(config)
    install_signal_handlers(pipeline)
    if on_ready is not None:
        on_ready(pipeline)
    return pipeline.run()
