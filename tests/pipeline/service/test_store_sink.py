"""The store sink's failure modes without a server: an outage spools, a refusal is kept aside,
a missing database is created again, ``/health`` and ``store_up`` say which; the refused
batches are replayed by ``--replay-refused``'s core."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

from hipstride.pipeline.service.ingest import StateDB
from hipstride.pipeline.service.refused import replay_refused
from hipstride.pipeline.service.runtime import Metrics, MetricsServer, RateLimitedLog, StoreSink
from hipstride.pipeline.store import StoreRejected, StoreUnavailable
from hipstride.pipeline.store.base import FRAMES, Point
from hipstride.pipeline.store.sqlite import SqliteStore


class ScriptedStore(SqliteStore):
    """A SQLite store whose writes fail as told: ``missing`` (the database dropped: until
    ``ensure_database`` creates it), ``down``, or ``conflict`` (refuses points at t=666)."""

    missing = down = False
    conflict = True
    created = 0

    def _write(self, points):
        if self.down:
            raise StoreUnavailable("down for the test")
        if self.missing:
            raise StoreUnavailable('database not found: "x"', "database_missing")
        if self.conflict and any(p.time_ns == 666 for p in points):
            raise StoreRejected("partial write: field type conflict", 400)
        super()._write(points)

    def ensure_database(self, *, create: bool = True) -> str:
        if self.missing and create:
            self.missing = False
            self.created += 1
            return "created"
        return "exists"


def points(n: int, t0: int) -> list[Point]:
    return [Point.make(FRAMES, t0 + i, {"station": "tm1", "stream": "emg"},
                       {"epoch": 1, "seq": t0 + i, "n_samples": 100, "rate_hz": 2000.0})
            for i in range(n)]


def sink_for(tmp_path, *, create: bool = True) -> tuple[StoreSink, ScriptedStore, Metrics]:
    store = ScriptedStore(tmp_path / "store.sqlite")
    metrics = Metrics()
    sink = StoreSink(store, StateDB(tmp_path / "state.sqlite"), metrics,
                     RateLimitedLog(logging.getLogger("t"), 60), retry_s=0.01,
                     create_database=create)
    return sink, store, metrics


def test_health_and_store_up_follow_the_latest_write(tmp_path) -> None:
    sink, store, metrics = sink_for(tmp_path)
    sink.started("exists")
    assert metrics.gauges["store_up"][()] == 1 and sink.health() == (True, "ok")
    store.down = True
    assert sink.write(points(2, 0), {}) == "spooled"
    ok, text = sink.health()
    assert not ok and text.startswith("store unavailable (unreachable: down for the test)")
    assert metrics.gauges["store_up"][()] == 0
    store.down = False
    sink._next_retry = 0
    sink.replay()
    assert sink.health() == (True, "ok") and metrics.gauges["store_up"][()] == 1
    assert sink.write(points(1, 666), {}) == "refused"  # for its content: not spooled
    ok, text = sink.health()
    assert not ok and "refuses batches (partial write: field type conflict)" in text
    assert "--replay-refused" in text and sink.depth == (0, 0)
    assert sink.write(points(1, 10), {}) == "stored"
    ok, text = sink.health()
    assert ok and "1 refused batch(es) kept" in text


def test_a_dropped_database_is_created_again_and_the_write_repeated(tmp_path) -> None:
    sink, store, _ = sink_for(tmp_path)
    store.missing = True
    assert sink.write(points(3, 0), {}) == "stored"
    assert store.created == 1 and len(store.frame_index("tm1", "emg")) == 3


def test_without_creation_a_missing_database_is_an_outage_not_a_refusal(tmp_path) -> None:
    sink, store, _ = sink_for(tmp_path, create=False)
    store.missing = True
    assert sink.write(points(3, 0), {}) == "spooled"
    assert sink.state.refused_depth() == 0 and store.created == 0
    ok, text = sink.health()
    assert not ok and "database_missing" in text


def test_health_endpoint_answers_503_with_the_reason(tmp_path) -> None:
    sink, store, metrics = sink_for(tmp_path)
    server = MetricsServer(metrics, 0, health=sink.health)
    try:
        store.down = True
        sink.write(points(1, 0), {})
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5)
            raise AssertionError("/health said ok while the store is down")
        except urllib.error.HTTPError as err:
            assert err.code == 503 and b"store unavailable" in err.read()
    finally:
        server.close()


def test_replay_refused_writes_what_it_can_and_keeps_the_rest(tmp_path) -> None:
    sink, store, _ = sink_for(tmp_path)
    for i in range(25):
        assert sink.write(points(2, 666 if i % 5 == 0 else 1000 + 10 * i), {}) in (
            "refused", "stored")
    state = sink.state
    assert state.refused_depth() == 5
    still = replay_refused(store, state)  # the conflict is still there
    assert still.written == 0 and len(still.still) == 5 and not still.ok
    store.conflict = False
    store.down = True
    down = replay_refused(store, state)
    assert down.untried == 5 and "not tried" in " ".join(down.lines(state.path))
    store.down = False
    done = replay_refused(store, state)
    assert done.ok and done.written == 5 and done.written_points == 10
    assert state.refused_depth() == 0
    assert done.lines(state.path)[0].startswith("replayed 5 of 5 refused batch(es) (10 points)")
