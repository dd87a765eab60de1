"""The pipeline's imperative shell: MQTT in, store and MQTT out, metrics, shutdown.

One main thread does the work, in arrival order; paho's network thread only puts messages on
a queue (it never blocks, never touches the store), and the store writes run on a writer
thread (:class:`StoreWriter`, one batch at a time). Delivery:

1. Subscriptions are QoS 1 on a persistent session (``clean_session=False``, a fixed client
   id per partition), with paho's **manual acknowledgements**: the broker keeps re-sending a
   message until we PUBACK it, across our crashes and reconnects.
2. A frame is validated (:func:`.ingest.validate_frame`), de-duplicated by (station, stream,
   epoch, seq), appended to the station's recording and fed to its engine.
3. Live: a station's engine is polled as soon as every stream it uses has new data (or
   ``LIVE_WAIT_S`` after a frame, a stream being late), at most every ``LIVE_INTERVAL_S``;
   its outputs join the open batch and its ``…/live`` message goes out at once — not
   waiting for the store.
4. Every ``batch_interval_s`` (default 100 ms), once the previous batch is written, the batch
   — the frames' index points, the engines' stride rows, cues and processed streams — is
   handed to the writer thread: one synchronous store call. If the store is down
   (:class:`StoreUnavailable`) the batch goes to the on-disk spool instead, and later batches
   follow it there until the spool is replayed, oldest first, so the store receives batches in
   order. The frames are recorded as stored in the same SQLite transaction that spools them.
   Meanwhile intake, engines and live messages go on (a batch that reaches
   ``batch_max_frames`` waits for the writer: back-pressure).
5. Only once the batch is written are its MQTT messages acknowledged (by the main thread). A
   crash before that means redelivery; redelivered frames already stored are recognised and
   acknowledged without a second write, a copy of a frame still being written waits for its
   original, and a write repeated anyway is idempotent in the store.

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
import sys
import threading
import time
import traceback
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
    StoreSetupError,
    StoreUnavailable,
    open_store,
)
from hipstride.pipeline.store.base import FrameRecord, Point, PointSeries

from .claim import Claim, ensure_free, yields_to
from .config import PipelineConfig, check_directories
from .confirm import Confirmations
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
from .limits import LimitExceeded, check_frame
from .live import LIVE_VERSION, LiveState, session_phase
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
from .station import Station, frame_points, output_points

__all__ = ["Metrics", "Pipeline", "RateLimitedLog", "install_signal_handlers"]

log = logging.getLogger("hipstride.pipeline")
INVALID_STATION = "_invalid"
#: Rejections of stations beyond ``limits.max_stations`` are counted under this name (one
#: label, however many stations try).
OVERFLOW_STATION = "_overflow"
#: Idle stations' recordings are looked for at most this often (s).
IDLE_CHECK_S = 1.0
MAX_SPOOL_RETRY_S = 30.0
INGEST_VERSION = 1
#: ``…/ingest`` is published at most once per this interval per station (s), and at once on
#: the first rejection of a reason.
INGEST_INTERVAL_S = 1.0
#: ``…/live`` per station at most this often on average (s; a token bucket, messages at
#: least 20 ms apart): as soon as the engine has new data for every stream, else after
#: :data:`LIVE_WAIT_S` (a stream late or gone).
LIVE_INTERVAL_S = 0.05
LIVE_WAIT_S = 0.1
#: The live message's ``series`` (envelopes, angles) at most this rate (Hz).
LIVE_SERIES_HZ = 25.0
#: Messages handled in a row before due live messages are published (s).
DRAIN_S = 0.002
#: A station's engine calibration state is compared and saved at most this often (s), and
#: at once when the engine's phase changed.
CALIBRATION_SAVE_S = 1.0
#: ``sys.setswitchinterval`` for the service (s; Python's default is 0.005): see
#: :func:`run_pipeline`.
SWITCH_INTERVAL_S = 0.0002


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

    def update(self, counts: dict[str, Counter], gauges: dict[str, dict[tuple, float]]
               ) -> None:
        """Many counter increments and gauge values under one lock (e.g. a batch's)."""
        with self.lock:
            for name, by in counts.items():
                self.counters[name].update(by)
            for name, values in gauges.items():
                self.gauges[name].update(values)


#: name -> (type, help, label names)
_METRICS = {
    "frames_total": ("counter", "Frames accepted (new, valid)", ("station", "stream")),
    "samples_total": ("counter", "Samples in accepted frames", ("station", "stream")),
    "rejected_total": ("counter", "Input refused, by reason", ("station", "reason")),
    "duplicates_total": ("counter", "Frames received again and not re-processed",
                         ("station",)),
    "ignored_total": ("counter", "Messages of stations outside this partition", ()),
    "time_jumps_total": ("counter", "Frames starting beyond limits.max_jump_s after their "
                         "stream's previous one (a gap, engine restarted)", ("station", "stream")),
    "quarantined_total": ("counter", "Messages whose handling failed unexpectedly, kept in "
                          "the state DB", ("station",)),
    "idle_closed_total": ("counter", "Stations whose recordings were closed when idle",
                          ()),
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
    "partition_conflicts_total": ("counter", "Claims of this partition by another pipeline "
                                  "process seen (claim.py)", ()),
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
    """``GET /metrics`` (Prometheus text) and ``GET /health`` on a loopback port. ``/health``
    answers 200 ``ok`` or 503 with what is wrong (``health()``: the store sink's)."""

    def __init__(self, metrics: Metrics, port: int, host: str = "127.0.0.1",
                 health: Callable[[], tuple[bool, str]] | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 200
                if self.path.split("?")[0] == "/metrics":
                    body = render_metrics(metrics).encode()
                    ctype = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path == "/health":
                    ok, text = health() if health is not None else (True, "ok")
                    body, ctype, status = (text + "\n").encode(), "text/plain", 200 if ok \
                        else 503
                else:
                    self.send_error(404)
                    return
                self.send_response(status)
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
    not yet empty (so batches reach the store in order).

    What counts as what (docs/pipeline.md, "Failure modes"): :class:`StoreUnavailable` — the
    server down, the database dropped, the credentials refused — is an *outage*: the batch is
    spooled and retried with backoff. A database found missing is created again first when
    ``create_database`` (and the account may). Only :class:`StoreRejected`, a verdict on the
    batch's content (HTTP 400: a field type conflict, bad line protocol), puts it in the state
    DB's ``refused`` table, for ``hipstride pipeline --replay-refused`` once the cause is fixed.
    :meth:`health` says which of these the latest write met.
    """

    def __init__(self, store: Store, state: StateDB, metrics: Metrics, say: RateLimitedLog,
                 *, retry_s: float, create_database: bool = True) -> None:
        self.store = store
        self.state = state
        self.metrics = metrics
        self.say = say
        self.retry_s = retry_s
        self.create_database = create_database
        self._backoff = retry_s
        self._next_retry = 0.0
        self._health = ("ok", "no write yet")
        self.depth = state.spool_depth()
        self._update()

    def _update(self) -> None:
        self.metrics.set("spool_batches", self.depth[0])
        self.metrics.set("spool_points", self.depth[1])
        self.metrics.set("refused_batches", self.state.refused_depth())

    def health(self) -> tuple[bool, str]:
        """(ok?, one line): not ok while the store is unavailable or refuses batches."""
        state, detail = self._health
        spooled, refused = self.depth[0], self.state.refused_depth()
        if state == "unavailable":
            return False, (f"store unavailable ({detail}); {spooled} batch(es) spooled, "
                           "retried with backoff")
        if state == "refusing":
            return False, (f"store refuses batches ({detail}); {refused} batch(es) kept in "
                           f"{self.state.path} (table refused): fix the cause, then run "
                           "hipstride pipeline --replay-refused")
        if refused:
            return True, (f"ok; {refused} refused batch(es) kept: hipstride pipeline "
                          "--replay-refused")
        return True, "ok"

    def started(self, found: str | StoreUnavailable) -> None:
        """The start-up check's result (:meth:`Store.ensure_database`)."""
        if isinstance(found, StoreUnavailable):
            self._down(found)
        else:
            self._up()

    def _up(self) -> None:
        self.metrics.set("store_up", 1)
        self._health = ("ok", "")

    def _timed_write(self, points: list[Point | PointSeries]) -> None:
        start = time.perf_counter()
        try:
            self.store.write_points(points)
        finally:
            took = time.perf_counter() - start
            self.metrics.inc("store_write_seconds_sum", n=took)
            self.metrics.inc("store_write_seconds_count")
            self.metrics.set("store_write_seconds_last", took)

    def _store(self, points: list[Point | PointSeries]) -> None:
        """Write; a database found missing is created again (when allowed) and the write
        repeated once."""
        try:
            self._timed_write(points)
        except StoreUnavailable as err:
            if err.reason != "database_missing" or not self.create_database or \
                    not self._recreate():
                raise
            self._timed_write(points)

    def _recreate(self) -> bool:
        try:
            found = self.store.ensure_database(create=True)
        except StoreError as err:
            self.say(logging.ERROR, "store-recreate", "the store's database is missing and "
                     "could not be created again: %s", err)
            return False
        if found == "created":
            log.warning("the store's database was missing (dropped?): created it again; "
                        "spooled and new batches go there")
        return True

    def _refused(self, err: StoreRejected) -> None:
        self.metrics.set("store_up", 0)
        self._health = ("refusing", str(err)[:300])

    def write(self, points: list[Point | PointSeries], seen: dict) -> str:
        """Store (or spool) a batch and persist ``seen`` with it; returns the outcome."""
        if self.depth[0]:
            self.state.commit(seen, spool=points)
            outcome = "spooled"
        else:
            try:
                if points:
                    self._store(points)
                self.state.commit(seen)
                outcome = "stored"
                self._up()
            except StoreUnavailable as err:
                self._down(err)
                self.state.commit(seen, spool=points)
                outcome = "spooled"
            except StoreRejected as err:
                self.say(logging.ERROR, "refused", "the store refused a batch of %d points "
                         "for its content (kept in %s, table refused; replay with hipstride "
                         "pipeline --replay-refused once the cause is fixed): %s",
                         len(points), self.state.path, err)
                self.state.commit(seen, refused=(points, str(err)))
                self._refused(err)
                outcome = "refused"
        self.metrics.inc("store_writes_total", (outcome,))
        if outcome != "stored":
            self.depth = self.state.spool_depth()
            self._update()
        return outcome

    def _down(self, err: StoreUnavailable) -> None:
        self.metrics.set("store_up", 0)
        self._health = ("unavailable", f"{err.reason}: {str(err)[:300]}")
        self._next_retry = time.monotonic() + self._backoff
        self.say(logging.WARNING, "store-down", "store unavailable (%s), spooling batches to "
                 "%s and retrying in %.1f s: %s%s", err.reason, self.state.path, self._backoff,
                 err, self._hint(err))
        self._backoff = min(MAX_SPOOL_RETRY_S, self._backoff * 2)

    def _hint(self, err: StoreUnavailable) -> str:
        """What an administrator can run, when the database or the account is the cause."""
        if err.reason not in ("database_missing", "unauthorized") or \
                not hasattr(self.store, "setup_hint"):
            return ""
        try:
            return f" ({self.store.setup_hint()})"
        except StoreError:
            return ""

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
                self._store(points)
            except StoreUnavailable as err:
                self._down(err)
                break
            except StoreRejected as err:
                self.say(logging.ERROR, "refused", "the store refused a spooled batch of %d "
                         "points for its content (moved to table refused): %s", len(points),
                         err)
                self.state.spool_refuse(batch_id, str(err))
                self._refused(err)
                continue
            self.state.spool_remove(batch_id)
            self.metrics.inc("store_writes_total", ("replayed",))
        self.depth = self.state.spool_depth()
        if not self.depth[0]:
            self._backoff = self.retry_s
            if self._health[0] == "unavailable":
                self._up()
            log.info("store spool replayed; writing directly again")
        self._update()


class StoreWriter:
    """The store writes on their own thread, one batch at a time, so that intake, the engines
    and live messages go on during a slow write. The main thread hands a batch over
    (:meth:`submit`) and acknowledges its messages only when :attr:`done` is set (after the
    store or spool write): at-least-once is unchanged. Idle, it replays the spool."""

    def __init__(self, sink: StoreSink, wake: Callable[[], None]) -> None:
        self.sink = sink
        self.wake = wake
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._jobs: queue.Queue[tuple[list, dict] | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.thread.start()

    def submit(self, points: list[Point | PointSeries], seen: dict) -> None:
        self.done.clear()
        self._jobs.put((points, seen))

    def close(self, timeout_s: float = 60.0) -> None:
        try:
            self._jobs.put(None, timeout=timeout_s)
        except queue.Full:  # stuck in a write: it is a daemon thread
            return
        self.thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                self._replay()
                continue
            if job is None:
                return
            try:
                self.sink.write(*job)
            except BaseException as err:  # handed to the main thread, which stops
                self.error = err
            self.done.set()
            self.wake()
            self._replay()

    def _replay(self) -> None:
        try:
            self.sink.replay()
        except Exception:  # e.g. the state DB failing: logged, retried on the next turn
            log.exception("store spool replay failed")


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
    points: list[Point | PointSeries] = field(default_factory=list)  # outputs, metadata
    polled: set[str] = field(default_factory=set)  # stations whose engine ran
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
                              retry_s=config.spool_retry_s,
                              create_database=config.create_database)
        self._inbox: queue.SimpleQueue[_Message | None] = queue.SimpleQueue()
        self._generation = 0
        self._batch = _Batch()
        self._writing: _Batch | None = None  # handed to the writer, not yet acknowledged
        self.writer = StoreWriter(self.sink, lambda: self._inbox.put(None))
        self._live: dict[str, LiveState] = {}
        self._dirty: set[str] = set()  # stations with frames their engine has not seen
        self._calibration_due: dict[str, float] = {}  # station -> next save (monotonic)
        self._calibration_pending: set[str] = set()  # polled since their last save
        self._calibration_phase: dict[str, str | None] = {}  # engine phase at the last save
        self._counts: dict[str, Counter] = {"frames_total": Counter(),
                                            "samples_total": Counter()}
        self._lag: dict[tuple, float] = {}
        self._stop = threading.Event()
        self.metrics_server: MetricsServer | None = None
        self._phase_jobs: list[PhaseJob] = []
        self._ingest: dict[str, dict[str, Any]] = {}  # station -> last rejection, gaps seen
        self._ingest_due: dict[str, float] = {}  # station -> monotonic time of next publish
        self._last_frame: dict[str, float] = {}  # station -> monotonic time of its last frame
        self._described_at: dict[tuple[str, str], float] = {}  # latest description change
        self._idle_check = 0.0  # monotonic time of the next look for idle stations

        client = make_client(config.broker, config.client_id, clean_session=False,
                             password=config.broker_password,
                             tls=TLSFiles(config.ca_file, config.cert_file, config.key_file,
                                          config.tls_insecure), manual_ack=True)
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()
        self.client = client
        self.claim = Claim(config)  # one process per partition (claim.py)
        self.claim.arm(client)
        self.exit_code = 0
        self.connection = Connection(client, config.broker, logger=log)
        self.connection.on_connect(self._on_connect)
        self.confirm = Confirmations(self.dedup, self._publish_stored, str(self.partition))

    # -- paho network thread: only queue work ------------------------------------------------
    def _on_connect(self, _session_present: bool) -> None:
        self._generation += 1
        self.client.subscribe([(topics.subscription(kind), 1) for kind in
                               (topics.FRAMES, topics.STREAMS, topics.STATUS, topics.CONTROL)])
        self.claim.on_connect(self.client)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic == self.claim.topic:
            self.claim.on_message(bytes(message.payload), bool(message.retain))
            return
        self._inbox.put(_Message(self._generation, message.topic, bytes(message.payload),
                                 message.mid, message.qos, time.time_ns()))

    # -- main thread ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def check_store(self) -> None:
        """Before taking messages: the database exists and takes writes (created when the
        configuration and the account allow). :class:`StoreSetupError` (the CLI exits 2 with
        what to run) when it cannot be used as configured; an unreachable store is not
        fatal: batches spool until it answers."""
        try:
            found = self.store.ensure_database(create=self.config.create_database)
        except StoreUnavailable as err:
            self.sink.started(err)
            return
        except StoreSetupError:
            self._close_unstarted()
            raise
        if found == "created":
            log.warning("the store had no database %r: created it (create_database = true)",
                        getattr(self.store, "database", ""))
        self.sink.started(found)

    def run(self) -> int:
        self._ensure_partition_free()
        self.check_store()
        if self.config.metrics_port:
            self.metrics_server = MetricsServer(self.metrics, self.config.metrics_port,
                                                health=self.sink.health)
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
                self._claim_tick()
            self._drain_inbox()
            for job in self._phase_jobs:  # a phase that just ended: analyse what arrived
                job.due = -math.inf
            self._wait_written()
            self._flush(final=True)
            self._wait_written()
        finally:
            try:
                self.writer.close()
            finally:
                self._shutdown()
        return self.exit_code

    def _close_unstarted(self) -> None:
        """Release the writer, store and state DB of a pipeline that will not run."""
        try:
            self.writer.close()
        finally:
            self.store.close()
            self.state.close()

    def _ensure_partition_free(self) -> None:
        """Refuse to start while another live process runs this partition (claim.py)."""
        try:
            ensure_free(self.config)
        except BaseException:
            self._close_unstarted()
            raise

    def _claim_tick(self) -> None:
        """Restate the claim; another process claiming this partition is reported loudly and
        the one started later stops (exit 2). Its unstored messages are redelivered."""
        other = self.claim.conflict()
        if other is not None:
            self.metrics.inc("partition_conflicts_total")
            if yields_to(self.claim.body(), other):
                log.critical("partition %s: another pipeline process (%s), started earlier, "
                             "runs this partition: stopping this one (exit 2); what it did "
                             "not store is delivered to the other. Start each process with "
                             "its own --partition I/N", self.partition, other.who())
                self.exit_code = 2
                self.stop()
                return
            log.critical("partition %s: another pipeline process (%s) claims this partition: "
                         "two processes with the same --partition split its messages; the one "
                         "started later stops. Check how the pipelines are started",
                         self.partition, other.who())
            self.claim.publish(self.client)
        elif self.connection.connected.is_set():
            self.claim.tick(self.client)

    def _step(self) -> None:
        """Handle what arrives, publishing live messages as engines have new output, until
        the batch is due and the writer free; then hand the batch to the writer."""
        due = self._batch.started + self.config.batch_interval_s
        while True:
            if self.writer.done.is_set() and self._writing is not None:
                self._written()
            if len(self._batch.keys) >= self.config.batch_max_frames:
                self._wait_written()  # back-pressure: the store is slower than intake
                break
            now = time.monotonic()
            if now >= due and self._writing is None:
                break
            wake = self._live_tick(now)
            if self._writing is None:
                wake = min(wake, due)
            try:  # the writer puts None when it is done
                message = self._inbox.get(timeout=min(max(0.0, wake - time.monotonic()),
                                                      self.config.batch_interval_s))
            except queue.Empty:
                continue
            self._handle(message)
            end = time.monotonic() + DRAIN_S
            while time.monotonic() < end and \
                    len(self._batch.keys) < self.config.batch_max_frames:
                try:
                    self._handle(self._inbox.get_nowait())
                except queue.Empty:
                    break
        self._flush()
        self.metrics.set("mqtt_connected", int(self.connection.connected.is_set()))
        self.metrics.set("mqtt_subscribed", int(self._subscribed.is_set()))

    def _drain_inbox(self) -> None:
        while True:
            try:
                self._handle(self._inbox.get_nowait())
            except queue.Empty:
                return

    def _wait_written(self) -> None:
        """Wait for the batch being written (if any) and acknowledge its messages."""
        if self._writing is not None:
            self.writer.done.wait()
            self._written()

    def _written(self) -> None:
        """The writer stored or spooled the batch: its frames are stored; acknowledge."""
        batch, self._writing = self._writing, None
        if self.writer.error is not None:
            raise RuntimeError("the store writer failed") from self.writer.error
        self.dedup.release(batch.keys)
        self.confirm.stored(batch.keys)
        for msg in batch.acks:
            self._ack(msg)
        self.metrics.set("pending_frames", self.dedup.pending)

    def _station(self, station: str) -> Station:
        st = self.stations.get(station)
        if st is None:
            st = self.stations[station] = Station(
                station, self.config.recordings, timeline=self._sessions(station).timeline,
                calibration=self._calibrations.get(station),
                max_jump_ns=round(self.config.limits.max_jump_s * 1e9))
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
        self._count_rejected(station, reason)
        self.confirm.refused(station, reason, msg.topic, msg.payload)
        self.say(logging.WARNING, f"reject:{station}:{reason}", "station %s: rejected (%s) on "
                 "%s: %s", station, reason, msg.topic, message)
        self._ack(msg)
        if station not in (INVALID_STATION, OVERFLOW_STATION):
            info = self._ingest.setdefault(station, {})
            info["last"] = {"reason": reason, "message": message[:500],
                            "time_ns": msg.arrival_ns}
            if first:
                self._publish_ingest(station)
            else:
                self._ingest_due.setdefault(
                    station, info.get("published", -math.inf) + INGEST_INTERVAL_S)

    def _count_rejected(self, station: str, reason: str) -> None:
        self.rejected.add(station, reason)
        self.metrics.inc("rejected_total", (station, reason))

    def _publish_ingest(self, station: str) -> None:
        """The retained ``…/ingest`` summary (docs/protocol.md, "Ingest health")."""
        info = self._ingest.setdefault(station, {})
        missing = {stream: n for (s, stream), n in self.gaps.missing().items() if s == station}
        info["missing"] = missing
        body = {"version": INGEST_VERSION, "station": station, "time_ns": time.time_ns(),
                "rejected": self.rejected.for_station(station), "last": info.get("last"),
                "sequence_missing": missing, "time_jumps": info.get("time_jumps", {})}
        self.client.publish(topics.ingest(station), json.dumps(jsonable(body)), qos=1,
                            retain=True)
        self._ingest_due.pop(station, None)
        info["published"] = time.monotonic()

    def _publish_stored(self, topic: str, body: bytes) -> None:
        """The store confirmation (:mod:`.confirm`); none while offline (it is refreshed)."""
        if self.connection.connected.is_set():
            self.client.publish(topic, body, qos=1, retain=True)

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

    def _handle(self, msg: _Message | None) -> None:
        """One message, whatever it holds: handled, rejected (counted, acknowledged) or —
        if handling it fails unexpectedly — quarantined; never an exception out of here."""
        if msg is None:  # the writer's wake-up
            return
        station = INVALID_STATION
        try:
            try:
                parsed = topics.parse(msg.topic)
            except ValueError as err:
                self._reject(INVALID_STATION, "bad_topic", str(err), msg)
                return
            station = parsed.station
            if not self.partition.owns(station):
                self.metrics.inc("ignored_total")
                self._ack(msg)
                return
            if parsed.kind == topics.STATUS:
                self._ack(msg)
                return
            if station not in self.stations and station not in self.sessions and \
                    len(self.stations.keys() | self.sessions.keys()) >= \
                    self.config.limits.max_stations:
                self._reject(OVERFLOW_STATION, "too_many_stations", f"station {station!r} "
                             f"is beyond the {self.config.limits.max_stations} stations this "
                             "process handles (limits.max_stations): raise it, or add "
                             "pipeline partitions", msg)
                return
            if parsed.kind == topics.FRAMES:
                self._on_frame(station, parsed.stream, msg)
            elif parsed.kind == topics.STREAMS:
                self._on_description(station, parsed.stream, msg)
            elif parsed.kind == topics.CONTROL:
                self._on_control(station, msg)
            else:
                self._ack(msg)
        except Exception as err:  # a defect: this message and station only
            self._quarantine(station, msg, err)

    def _on_description(self, station: str, stream: str, msg: _Message) -> None:
        try:
            description = validate_description(msg.payload, stream)
        except Rejected as err:
            self._reject(station, err.reason, str(err), msg)
            return
        st = self._station(station)
        limit = self.config.limits.max_streams
        if stream not in st.descriptions and len(st.descriptions) >= limit:
            self._reject(station, "too_many_streams", f"stream {stream!r} would be stream "
                         f"{len(st.descriptions) + 1} of the station; at most {limit} "
                         "(limits.max_streams) are kept: publish only the streams the "
                         "station has", msg)
            return
        old = st.descriptions.get(stream)
        if old is not None and old.to_json() != description.to_json():
            now, interval = time.monotonic(), self.config.limits.description_interval_s
            if now - self._described_at.get((station, stream), -math.inf) < interval:
                self._reject(station, "description_churn", f"stream {stream!r} changed its "
                             f"description again within {interval:g} s "
                             "(limits.description_interval_s); each change is written to the "
                             "state and the recordings: publish a stream's description once, "
                             "and again only when it changes", msg)
                return
            self._described_at[(station, stream)] = now
        if st.describe(description):
            self.state.save_description(station, description)
        self._ack(msg)

    def _quarantine(self, station: str, msg: _Message, err: Exception) -> None:
        """Keep the message for inspection, count and log it, acknowledge it, and start the
        station afresh (its engine state may be what broke); every other station goes on."""
        limits = self.config.limits
        trace = "".join(traceback.format_exception(err))
        try:
            self.state.quarantine(station, msg.topic, msg.payload, trace,
                                  keep=limits.quarantine_keep,
                                  max_bytes=limits.quarantine_bytes)
        except Exception:  # the state DB failing must not stop us either
            log.exception("station %s: quarantined message could not be kept", station)
        self.metrics.inc("quarantined_total", (station,))
        self._reset_station(station)
        pending = any(m is msg for m in self._batch.acks) or (
            self._writing is not None and any(m is msg for m in self._writing.acks))
        if pending:  # acknowledged with its batch; a second PUBACK could hit a reused id
            self._count_rejected(station, "quarantined")
        else:
            self._reject(station, "quarantined", f"handling it failed ({type(err).__name__}: "
                         f"{err}); kept in {self.state.path} (table quarantine) with the "
                         "traceback, the station's engine restarted: please report it", msg)
        log.error("station %s: message on %s quarantined (%s: %s); the station starts "
                  "afresh, other stations are not affected", station, msg.topic,
                  type(err).__name__, err)

    def _reset_station(self, station: str) -> None:
        """Drop a station's in-memory state (recordings closed); its descriptions stay."""
        old = self.stations.pop(station, None)
        self._live.pop(station, None)
        self._dirty.discard(station)
        self._calibration_pending.discard(station)
        if old is None:
            return
        try:
            old.close()
        except Exception:
            log.exception("station %s: recordings could not be closed", station)
        try:
            fresh = self._station(station)
            for description in old.descriptions.values():
                fresh.describe(description)
        except Exception:
            self.stations.pop(station, None)
            self._batch.stations.discard(station)
            self._batch.polled.discard(station)
            log.exception("station %s: could not be started afresh", station)

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
            check_frame(frame, msg.arrival_ns, self.config.limits)
        except (Rejected, LimitExceeded) as err:
            self._reject(station, err.reason, str(err), msg)
            return
        key = (station, stream, frame.epoch, frame.seq)
        state = self.dedup.check(key)
        if state != "new":
            self.metrics.inc("duplicates_total", (station,))
            if state == "stored":
                self.confirm.seen_again(key)
                self._ack(msg)
            else:
                self._batch.acks.append(msg)  # acknowledged with its original
            return
        self._last_frame[station] = time.monotonic()
        st.accept(frame, msg.payload)  # raises before anything is reserved: quarantined
        forgotten = self.dedup.limit_epochs(key, self.config.limits.max_epochs)
        if forgotten:  # an epoch flood must not grow the index: the oldest are forgotten
            self.state.forget_seen(forgotten)
            self.say(logging.WARNING, f"epochs:{station}", "station %s: stream %s started "
                     "epoch %d, more than limits.max_epochs = %d; the oldest epoch's record "
                     "of stored frames is forgotten (an epoch changes only when an agent "
                     "loses its spool: check the station)", station, stream, frame.epoch,
                     self.config.limits.max_epochs)
        self.dedup.reserve(key)
        self.gaps.add(station, stream, frame.seq, frame.epoch)
        if st.jumps:
            self._time_jumps(st)
        batch = self._batch
        batch.keys.append(key)
        batch.frames[station].append(FrameRecord.from_frame(frame,
                                                            st.timeline.at(frame.t0_ns)[0]))
        batch.acks.append(msg)
        batch.stations.add(station)
        if station not in self._dirty:
            self._dirty.add(station)
            self._live_state(station).dirty_since = time.monotonic()
        # counted here, published to the metrics once per batch (_flush)
        self._counts["frames_total"][(station, stream)] += 1
        self._counts["samples_total"][(station, stream)] += frame.n_samples
        self._lag[(station,)] = (msg.arrival_ns - frame.t0_ns - frame.duration_ns) / 1e9

    def _time_jumps(self, st: Station) -> None:
        """Count and report a station's time jumps (gaps left empty, engine restarted)."""
        info = self._ingest.setdefault(st.station, {})
        jumps = info.setdefault("time_jumps", {})
        for stream, jump_ns in st.jumps:
            self.metrics.inc("time_jumps_total", (st.station, stream))
            jumps[stream] = jumps.get(stream, 0) + 1
            self.say(logging.WARNING, f"jump:{st.station}", "station %s: stream %s jumped "
                     "%+.0f s in time (beyond limits.max_jump_s = %g s): recorded as a gap, "
                     "the engine restarted there; check the station's clock (chrony/NTP)",
                     st.station, stream, jump_ns / 1e9, self.config.limits.max_jump_s)
        st.jumps.clear()
        self._ingest_due.setdefault(st.station,
                                    info.get("published", -math.inf) + INGEST_INTERVAL_S)

    def _close_idle(self) -> None:
        """Close the recordings of stations without a frame for ``limits.idle_close_s``
        (reopened by their next frame), so idle or vanished stations hold no files."""
        now = time.monotonic()
        if now < self._idle_check:
            return
        self._idle_check = now + IDLE_CHECK_S
        idle_s = self.config.limits.idle_close_s
        for name, last in list(self._last_frame.items()):
            if now - last < idle_s:
                continue
            del self._last_frame[name]
            st = self.stations.get(name)
            if st is not None:
                st.close()
                self.metrics.inc("idle_closed_total")
                log.info("station %s: no frame for %.0f s, recordings closed", name, idle_s)

    def _flush(self, *, final: bool = False) -> None:
        """Hand the batch to the writer (frame index, engine outputs, metadata); its
        messages are acknowledged once it is written (:meth:`_written`)."""
        if self._phase_jobs:
            self._run_phases()
        if final:
            for name in sorted(self._dirty):
                self._poll_guarded(name)
        batch, self._batch = self._batch, _Batch()
        points: list[Point | PointSeries] = list(batch.points)
        for station, records in batch.frames.items():
            points += frame_points(station, records)
        now = time.monotonic()
        self._calibration_pending |= batch.polled
        for name in sorted(self._calibration_pending):
            engine = self.stations[name].engine
            phase = engine.phase if engine is not None else None
            if final or now >= self._calibration_due.get(name, -math.inf) or \
                    phase != self._calibration_phase.get(name):  # e.g. running: at once
                self._calibration_pending.discard(name)
                self._calibration_due[name] = now + CALIBRATION_SAVE_S
                self._calibration_phase[name] = phase
                update = self.stations[name].calibration_update()
                if update is not None:
                    self.state.save_calibration(name, *update)
        for name in batch.stations:
            if name in self.stations:
                self.stations[name].flush()  # recordings to the OS before the acknowledgements
        self._close_idle()
        if batch.keys or points:
            seen = self.dedup.stage(batch.keys)
            self._writing = batch
            self.writer.submit(points, seen)
        else:  # nothing to write; anything waiting on an earlier batch has it written
            for msg in batch.acks:
                self._ack(msg)
        self.metrics.update(self._counts, {
            "lag_seconds": self._lag, "pending_frames": {(): self.dedup.pending},
            "sequence_missing_frames": dict(self.gaps.missing())})
        self._counts = {name: Counter() for name in self._counts}
        self._lag = {}
        self._ingest_tick()
        self.confirm.tick()

    # -- live -----------------------------------------------------------------------------
    def _live_state(self, station: str) -> LiveState:
        live = self._live.get(station)
        if live is None:
            live = self._live[station] = LiveState(series_hz=LIVE_SERIES_HZ,
                                                   interval_s=LIVE_INTERVAL_S)
        return live

    def _live_tick(self, now: float) -> float:
        """Poll and publish the stations that are due; returns when the next one is."""
        wake = math.inf
        for name in list(self._dirty):
            live = self._live[name]
            until = self.stations[name].data_until_ns()
            ready = until is not None and until > live.polled_until_ns
            at = live.allowed_at(now)
            if not ready:
                at = max(at, (live.dirty_since or now) + LIVE_WAIT_S)
            if now >= at:
                self._poll_guarded(name)
            else:
                wake = min(wake, at)
        return wake

    def _poll_guarded(self, name: str) -> None:
        """Poll and publish one station; a defect there restarts that station only."""
        try:
            self._poll(name)
            self._publish_live(name)
        except Exception as err:
            self.metrics.inc("quarantined_total", (name,))
            self._count_rejected(name, "quarantined")
            log.error("station %s: its engine output failed (%s: %s); the station starts "
                      "afresh, other stations are not affected", name, type(err).__name__,
                      err, exc_info=err)
            self._reset_station(name)

    def _poll(self, name: str) -> None:
        """Run a station's engine on what arrived: outputs into the batch, cues out now,
        the rest kept for its next live message."""
        st = self.stations[name]
        live = self._live_state(name)
        self._dirty.discard(name)
        live.dirty_since = None
        until = st.data_until_ns()
        if until is not None:
            live.polled_until_ns = until
        out = st.poll()
        if out is None:
            return
        self._batch.polled.add(name)
        self._batch.points += output_points(out, st.timeline, series=True)
        e = out.engine
        for problem in out.problems:
            self.say(logging.WARNING, f"problem:{name}:{problem[:40]}", "%s", problem)
        if e.rows:
            self.metrics.inc("stride_rows_total", (name,), len(e.rows))
        for event in e.cue_events:
            self.metrics.inc("cues_total", (name,))
            time_ns = out.origin_ns + round(float(event["stride_start_s"]) * 1e9)
            body = {"version": LIVE_VERSION, "station": name, "time_ns": time_ns,
                    "session": self._sessions(name).timeline.at(time_ns)[0], **event}
            self.client.publish(topics.cues(name), json.dumps(jsonable(body)), qos=1)
        live.add(out.origin_ns, e, out.problems)

    def _publish_live(self, name: str) -> None:
        """``…/live`` (QoS 0) for the dashboard: docs/protocol.md, "Live metrics"."""
        live = self._live_state(name)
        if live.snapshot is None:
            return
        live.spend(time.monotonic())
        ss = self._sessions(name).state
        body = live.message(name, rejected=self.rejected.for_station(name),
                            session=ss.session or UNASSIGNED,
                            open_phase=session_phase(ss.phase, ss.phases))
        series = body.pop("series")  # already plain lists: skip jsonable's walk through them
        body = jsonable(body)
        body["series"] = series
        self.client.publish(topics.live(name), json.dumps(body), qos=0)

    def _shutdown(self) -> None:
        try:
            for st in self.stations.values():
                st.close()
        finally:
            try:
                if self.exit_code == 0:  # a process that yielded leaves the claim alone
                    self.claim.release(self.client, self.connection.connected.is_set())
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
    # paho's network thread reads each message with several socket reads, each giving up
    # the GIL; with the default 5 ms switch interval it waits up to 5 ms to get it back
    # from a busy main thread each time, so intake stalls well before the CPU is used up
    # (a convoy). A short interval hands the GIL over at once.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    check_directories(config)  # a bad state/recordings dir: exit 2 naming the setting
    pipeline = Pipeline(config)
    install_signal_handlers(pipeline)
    if on_ready is not None:
        on_ready(pipeline)
    return pipeline.run()
