"""The database's lifecycle as the store sees it: missing at start (created, or the statement
to run), dropped or locked out mid-run (an outage, not a refusal), InfluxDB 2's missing bucket.

Against the run's real influxd (Debian's 1.6.7, auth on) and, for 2.x, a loopback HTTP server
answering as InfluxDB 2.7 does when the bucket is missing.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hipstride.pipeline.store import (
    FrameRecord,
    StoreSetupError,
    StoreUnavailable,
    open_store,
)
from tests.support.influxdb import InfluxDB

T0 = 1_700_000_000_000_000_000
_names = itertools.count()


def fresh_name(prefix: str) -> str:
    """Unique on the run's shared server (other modules make databases there too)."""
    return f"lc_{prefix}_{os.getpid()}_{next(_names)}"


def frames(n: int) -> list[FrameRecord]:
    return [FrameRecord("emg", 0, i, T0 + i * 50_000_000, 100, 2000.0) for i in range(n)]


def count_frames(influxd: InfluxDB, database: str) -> int:
    out = json.loads(influxd.cli(database, "SELECT count(seq) FROM frames"))
    series = out["results"][0].get("series") or []
    return int(series[0]["values"][0][1]) if series else 0


def test_an_admin_account_creates_the_missing_database(influxd: InfluxDB) -> None:
    db = fresh_name("fresh")
    s = open_store(influxd.store_url(*influxd.admin, db))
    assert s.ensure_database(create=True) == "created"
    assert s.ensure_database(create=True) == "exists"
    s.write_frame_index("tm1", frames(3))
    assert count_frames(influxd, db) == 3  # the influx CLI as witness


def test_without_rights_or_creation_the_message_gives_the_statements(influxd: InfluxDB
                                                                      ) -> None:
    db = fresh_name("nodb")
    user = (fresh_name("plain"), "plain-secret")
    influxd.query(f"CREATE USER \"{user[0]}\" WITH PASSWORD '{user[1]}'")
    s = open_store(influxd.store_url(*user, db))
    with pytest.raises(StoreSetupError) as err:
        s.ensure_database(create=True)
    text = str(err.value)
    assert f'CREATE DATABASE "{db}"' in text and f'GRANT ALL ON "{db}" TO "{user[0]}"' in text
    assert "may not create it" in text and "requires admin privilege" in text
    admin = open_store(influxd.store_url(*influxd.admin, db))
    with pytest.raises(StoreSetupError, match="create_database = false") as off:
        admin.ensure_database(create=False)
    assert f'CREATE DATABASE "{db}"' in str(off.value)
    influxd.query(f'CREATE DATABASE "{db}"')  # created, but no GRANT yet: no write access
    with pytest.raises(StoreSetupError, match="not authorized to write") as grant:
        s.ensure_database(create=True)
    assert f'GRANT ALL ON "{db}" TO "{user[0]}"' in str(grant.value)
    influxd.query(f'GRANT ALL ON "{db}" TO "{user[0]}"')
    assert s.ensure_database(create=True) == "exists"


def test_a_dropped_database_and_a_dead_password_are_outages(influxd: InfluxDB) -> None:
    db = fresh_name("dropped")
    user = (fresh_name("writer"), "writer-secret")
    influxd.create_database(db, users=dict([user]))
    s = open_store(influxd.store_url(*user, db))
    s.write_frame_index("tm1", frames(2))
    influxd.query(f'DROP DATABASE "{db}"')
    with pytest.raises(StoreUnavailable, match="database not found") as gone:
        s.write_frame_index("tm1", frames(2))
    assert gone.value.reason == "database_missing"
    influxd.create_database(db, users=dict([user]))
    influxd.query(f"SET PASSWORD FOR \"{user[0]}\" = 'changed'")
    with pytest.raises(StoreUnavailable, match="authentication failed") as dead:
        s.write_frame_index("tm1", frames(2))
    assert dead.value.reason == "unauthorized"
    with pytest.raises(StoreSetupError, match="authentication failed"):  # at start: say so
        s.ensure_database(create=True)


# --- InfluxDB 2: a bucket is made with the influx CLI, never by the pipeline ----------------------
class Influx2Stub:
    """Answers as InfluxDB 2.7 with no such bucket: ``/ping`` with its version, every write
    with 404 ``bucket "…" not found``; records what was asked."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("X-Influxdb-Version", "v2.7.11")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(204)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(self.path)
                bucket = self.path.split("bucket=")[1].split("&")[0]
                self._reply(404, json.dumps({"code": "not found", "message":
                                             f'bucket "{bucket}" not found'}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def influx2() -> Iterator[Influx2Stub]:
    stub = Influx2Stub()
    yield stub
    stub.close()


def test_influx2_missing_bucket_names_bucket_org_and_command(influx2: Influx2Stub) -> None:
    port = influx2.url.rsplit(":", 1)[1]
    s = open_store(f"influx://any:tok@127.0.0.1:{port}/hipstride?org=clinic")
    with pytest.raises(StoreSetupError) as err:
        s.ensure_database(create=True)  # never tries CREATE DATABASE on 2.x
    text = str(err.value)
    assert "bucket 'hipstride' of org 'clinic'" in text
    assert "influx bucket create --name hipstride --org clinic" in text
    assert all(r.startswith("/api/v2/write?") for r in influx2.requests), influx2.requests
    with pytest.raises(StoreUnavailable) as write:
        s.write_frame_index("tm1", frames(1))
    assert write.value.reason == "database_missing"
