"""The store contract, run against both stores: SQLite and a real ``influxd`` (Debian 1.6.7).

The same test functions, parametrised over ``store``, prove that both keep and return the same
things, that duplicated batches leave counts unchanged, that nanoseconds survive, and how NaN
and tags behave. InfluxDB-only tests cover outages, credentials, the ``influx`` CLI as an
independent witness, and the v2 write path (against a local stub: 1.6.7 has no v2 API).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from hipstride.config import ConfigError
from hipstride.pipeline.engine.schema import STRIDE_COLUMNS
from hipstride.pipeline.store import (
    FrameRecord,
    SessionMeta,
    Store,
    StoreRejected,
    StoreUnavailable,
    StoreURL,
    StreamCount,
    open_store,
)
from hipstride.pipeline.store.base import CALIBRATION, FRAMES, STRIDES, Point
from hipstride.pipeline.store.influx import InfluxStore, encode_line, parse_version
from hipstride.pipeline.store.sqlite import SqliteStore
from tests.support.influxdb import InfluxDB

T0 = 1_700_000_000_123_456_789  # ns; odd digits so any loss of precision shows
PIPELINE_USER = ("pipeline", "pipe-secret")
_db_names = itertools.count()


@pytest.fixture
def influx_db(influxd) -> str:
    """A fresh database for one test, writable by the (non-admin) pipeline user."""
    name = f"hipstride_{next(_db_names)}"
    influxd.create_database(name, users=dict([PIPELINE_USER]))
    return name


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = open_store(f"sqlite:///{tmp_path}/store.db")
        assert isinstance(s, SqliteStore)
    else:
        server: InfluxDB = request.getfixturevalue("influxd")
        s = open_store(server.store_url(*PIPELINE_USER, request.getfixturevalue("influx_db")))
        assert isinstance(s, InfluxStore)
    yield s
    s.close()


def stride_row(side: str, index: int, start_s: float, **extra) -> dict:
    row = dict.fromkeys(STRIDE_COLUMNS, float("nan"))
    row.update(side=side, stride_index=index, stride_start_s=start_s, stride_time_s=0.7,
               cadence_spm=120 / 0.7, peak_hip_extension_deg=9.5 + index,
               peak_hip_flexion_deg=np.float64(55.25), glute_ham_ratio=0.8125,
               valid=np.bool_(True), normalization="mvc", gait_method="shank_gyro",
               quality="")
    row.update(extra)
    return row


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# --- round trips --------------------------------------------------------------------------------
def test_strides_round_trip_with_tags_as_filters(store: Store) -> None:
    rows_l = [stride_row("l", i, 10.0 + 0.7 * i) for i in range(3)]
    rows_r = [stride_row("r", i, 10.35 + 0.7 * i, glute_onset_ms=-12.5, onset_lag_ms=np.nan,
                         quality="missing:glute_max_r;saturated:x", valid=False)
              for i in range(3)]
    assert store.write_strides("tm1", "s1", "ann", rows_l + rows_r, origin_ns=T0) == 6
    store.write_strides("tm2", "s2", "bob", [stride_row("l", 0, 1.0)], origin_ns=T0)

    got = store.strides("s1")
    assert [(r["side"], r["stride_index"]) for r in got] == [
        ("l", 0), ("r", 0), ("l", 1), ("r", 1), ("l", 2), ("r", 2)]
    by_key = {(r["side"], r["stride_index"]): r for r in got}
    for row in rows_l + rows_r:
        back = by_key[(row["side"], row["stride_index"])]
        for col in STRIDE_COLUMNS:
            want = row[col]
            want = want.item() if isinstance(want, np.generic) else want
            assert same(back[col], want), (col, back[col], want)
        assert back["time_ns"] == T0 + round(row["stride_start_s"] * 1e9)
        assert (back["station"], back["athlete"], back["session"]) == ("tm1", "ann", "s1")
    assert isinstance(got[0]["valid"], bool) and isinstance(got[0]["stride_index"], int)
    # tags select, other stations and sessions stay apart
    assert [r["stride_index"] for r in store.strides("s1", side="r")] == [0, 1, 2]
    assert store.strides("s1", station="tm2") == []
    assert [r["station"] for r in store.strides("s2")] == ["tm2"]


def test_cues_round_trip(store: Store) -> None:
    events = [
        {"cue": "hamstring_dominant", "kind": "raise", "side": "l", "level": "alert",
         "message": "Drive from the glutes (left)", "stride_start_s": 31.5, "channel": None,
         "evidence": {"count": 10, "ratio": 0.61, "baseline": float("nan")}},
        {"cue": "signal_problem", "kind": "raise", "side": "r", "level": "alert",
         "message": "Check the sensors: glute_max_r", "stride_start_s": 31.5,
         "channel": "glute_max_r", "evidence": {"flags": ["flat"]}},
        {"cue": "signal_problem", "kind": "raise", "side": "r", "level": "alert",
         "message": "Check the sensors: biceps_femoris_r", "stride_start_s": 31.5,
         "channel": "biceps_femoris_r", "evidence": {}},
        {"cue": "asymmetry", "kind": "clear", "side": None, "level": "caution",
         "message": "Cleared: Even out left and right - caution", "stride_start_s": 40.25,
         "channel": None, "evidence": {"si_pct": np.float64(9.5)}},
    ]
    assert store.write_cues("tm1", "s1", "ann", events, origin_ns=T0) == 4
    got = store.cues("s1")
    assert len(got) == 4  # same time, told apart by cue, kind, side and channel tags
    assert {g["channel"] for g in got if g["cue"] == "signal_problem"} == {
        "glute_max_r", "biceps_femoris_r"}
    first = next(g for g in got if g["cue"] == "hamstring_dominant")
    assert first["evidence"] == {"count": 10, "ratio": 0.61, "baseline": None}
    assert first["time_ns"] == T0 + 31_500_000_000 and first["message"].startswith("Drive")
    last = got[-1]
    assert (last["cue"], last["kind"], last["side"], last["level"]) == (
        "asymmetry", "clear", None, "caution")
    assert last["evidence"] == {"si_pct": 9.5}
    assert [g["cue"] for g in store.cues("s1", cue="asymmetry")] == ["asymmetry"]


def test_processed_round_trip_and_time_range(store: Store) -> None:
    rate = 100.0
    x = np.column_stack([np.linspace(0, 1, 50), np.linspace(5, 6, 50)])
    chans = ("glute_max_l", "biceps_femoris_l")
    assert store.write_processed("tm1", "s1", "emg_envelope", T0, rate, chans, x) == 100
    store.write_processed("tm1", "s1", "hip_angle", T0, rate, ["hip_flexion_l"], x[:, 0])
    store.write_processed("tm2", "s9", "emg_envelope", T0, rate, chans, x + 100)

    got = store.processed("tm1", "emg_envelope", session="s1", channels=chans)
    assert got.channels == chans
    np.testing.assert_array_equal(got.time_ns, T0 + np.arange(50) * 10_000_000)
    np.testing.assert_array_equal(got.values, x)  # exact: floats round-trip
    part = store.processed("tm1", "emg_envelope", T0 + 100_000_000, T0 + 200_000_000)
    assert part.channels == ("biceps_femoris_l", "glute_max_l")  # sorted when not given
    np.testing.assert_array_equal(part.values, x[10:20, ::-1])
    assert len(store.processed("tm1", "hip_angle")) == 50
    assert len(store.processed("tm3", "emg_envelope")) == 0


def test_frame_index_and_sample_counts(store: Store) -> None:
    def frames(stream: str, n: int, rate: float, size: int) -> list[FrameRecord]:
        step = round(size * 1e9 / rate)
        return [FrameRecord(stream, 7, k, T0 + k * step, size, rate, "s1") for k in range(n)]

    emg, imu = frames("emg", 40, 2000.0, 100), frames("imu_pelvis", 20, 200.0, 20)
    assert store.write_frame_index("tm1", emg + imu) == 60
    store.write_frame_index("tm2", frames("emg", 5, 2000.0, 100))
    assert store.sample_counts() == {("tm1", "emg"): StreamCount(40, 4000),
                                     ("tm1", "imu_pelvis"): StreamCount(20, 400),
                                     ("tm2", "emg"): StreamCount(5, 500)}
    assert set(store.sample_counts(station="tm2")) == {("tm2", "emg")}
    # a time range: the first second of emg is frames 0..19
    first_s = store.sample_counts(station="tm1", start_ns=T0, end_ns=T0 + 1_000_000_000)
    assert first_s[("tm1", "emg")] == StreamCount(20, 2000)
    assert store.frame_index("tm1", "emg") == emg
    assert store.frame_index("tm1", "imu_pelvis", T0, T0 + 300_000_000)[-1].seq == 2


def test_sessions_list_update_and_lookup(store: Store) -> None:
    day = 86_400 * 10**9
    a = SessionMeta("s1", "tm1", "ann", T0, label="easy run", meta={"speed_kmh": 10.5})
    b = SessionMeta("s2", "tm2", "ann", T0 + day)
    c = SessionMeta("s3", "tm1", "bob", T0 + 2 * day, meta={"notes": 'quote " and \\'})
    for s in (a, b, c):
        store.write_session(s)
    store.write_session(SessionMeta("s1", "tm1", "ann", T0, end_ns=T0 + 3_600 * 10**9))
    assert [s.session for s in store.sessions(athlete="ann")] == ["s1", "s2"]
    assert [s.session for s in store.sessions(start_ns=T0 + day)] == ["s2", "s3"]
    assert [s.session for s in store.sessions(station="tm1", end_ns=T0 + day)] == ["s1"]
    s1 = store.session("s1")
    # the update added end_ns and kept what it did not carry (label and meta merged in)
    assert s1 == SessionMeta("s1", "tm1", "ann", T0, T0 + 3_600 * 10**9, "easy run",
                             {"speed_kmh": 10.5})
    assert store.session("s3").meta == {"notes": 'quote " and \\'}
    assert store.session("nope") is None


def test_calibration_latest_per_kind(store: Store) -> None:
    standing = {"version": 1, "imu": {"pelvis": {"bias_dps": [0.1, -0.2, 0.05]}},
                "emg": {"channels": ["glute_max_l"], "floor_mv": [0.002]}}
    mvc1 = {"channels": ["glute_max_l"], "reference_mv": [0.41], "normalization": "mvc"}
    mvc2 = {"channels": ["glute_max_l"], "reference_mv": [0.45], "normalization": "mvc"}
    store.write_calibration("ann", T0, {"standing": standing, "mvc": mvc1, "baseline": None},
                            station="tm1", session="s1")
    store.write_calibration("ann", T0 + 10**9, {"mvc": mvc2})
    got = store.calibration("ann")
    assert got["standing"] == standing and got["mvc"] == mvc2 and "baseline" not in got
    assert got["time_ns"] == {"standing": T0, "mvc": T0 + 10**9}
    assert store.calibration("ann", before_ns=T0)["mvc"] == mvc1
    assert store.calibration("bob") is None


def test_phe_round_trip(store: Store) -> None:
    reps = [{"side": side, "movement_onset_s": 5.0 + 10 * i + (side == "r"),
             "hold_start_s": 5.6 + 10 * i, "lower_start_s": 7.6 + 10 * i,
             "lower_end_s": 8.2 + 10 * i, "lift_deg": 11.0, "detection_s": 5.1 + 10 * i,
             "glute_onset_ms": 12.5 if i else None, "hamstring_onset_ms": -95.0,
             "erector_onset_ms": float("nan"), "order": ["hamstring", "glute_max"],
             "glute_ham_lag_ms": 107.5 if i else None, "pelvic_tilt_deg": 3.0,
             "pelvic_rotation_deg": 6.5, "pelvic_flag": True,
             "channel_onsets_ms": {"glute_max_l": 12.5, "biceps_femoris_l": -95.0,
                                   "erector_spinae_l": None}}
            for i in range(2) for side in ("l", "r")]
    assert store.write_phe("tm1", "s1", "ann", reps, origin_ns=T0) == 4
    got = store.phe("s1")
    assert [(g["side"], g["repetition"]) for g in got] == [("l", 0), ("r", 1), ("l", 2),
                                                            ("r", 3)]
    assert math.isnan(got[0]["glute_onset_ms"]) and got[2]["glute_onset_ms"] == 12.5
    assert math.isnan(got[0]["erector_onset_ms"]) and got[0]["pelvic_flag"] is True
    assert got[0]["order"] == ["hamstring", "glute_max"]
    assert got[0]["channel_onsets_ms"]["biceps_femoris_l"] == -95.0
    assert math.isnan(got[0]["channel_onsets_ms"]["erector_spinae_l"])
    assert got[1]["time_ns"] == T0 + 6_000_000_000
    assert len(store.phe("s1", side="r")) == 2


# --- exactly once -------------------------------------------------------------------------------
def write_everything(store: Store) -> None:
    store.write_strides("tm1", "s1", "ann", [stride_row(s, i, 10 + 0.7 * i + (s == "r") * 0.35)
                                             for i in range(20) for s in "lr"], origin_ns=T0)
    store.write_cues("tm1", "s1", "ann", [
        {"cue": "glutes_late", "kind": k, "side": "l", "level": "alert", "message": "m",
         "stride_start_s": t, "evidence": {}} for k, t in (("raise", 12.1), ("clear", 15.6))],
        origin_ns=T0)
    store.write_processed("tm1", "s1", "emg_envelope", T0, 100.0, ["a", "b"],
                          np.arange(400.0).reshape(200, 2))
    store.write_frame_index("tm1", [FrameRecord("emg", 0, k, T0 + k * 50_000_000, 100, 2000.0)
                                    for k in range(60)])
    store.write_session(SessionMeta("s1", "tm1", "ann", T0, meta={"k": 1}))
    store.write_calibration("ann", T0, {"mvc": {"reference_mv": [0.4]}})
    store.write_phe("tm1", "s1", "ann", [{"side": "l", "movement_onset_s": 3.0,
                                          "lift_deg": 10.0}], origin_ns=T0)


def everything_counted(store: Store) -> dict:
    return {"strides": len(store.strides("s1")), "cues": len(store.cues("s1")),
            "processed": int(np.isfinite(store.processed("tm1", "emg_envelope").values).sum()),
            "samples": store.sample_counts(), "sessions": len(store.sessions()),
            "calibration": len(store.select(CALIBRATION)),
            "phe": len(store.phe("s1"))}


def test_duplicated_batches_leave_counts_unchanged(store: Store) -> None:
    write_everything(store)
    once = everything_counted(store)
    assert once == {"strides": 40, "cues": 2, "processed": 400,
                    "samples": {("tm1", "emg"): StreamCount(60, 6000)}, "sessions": 1,
                    "calibration": 1, "phe": 1}
    write_everything(store)  # the whole batch again: at-least-once delivery re-sent it
    write_everything(store)
    assert everything_counted(store) == once
    # and a batch that overlaps the previous one by half
    store.write_frame_index("tm1", [FrameRecord("emg", 0, k, T0 + k * 50_000_000, 100, 2000.0)
                                    for k in range(30, 90)])
    assert store.sample_counts()[("tm1", "emg")] == StreamCount(90, 9000)


def test_rewrite_replaces_carried_fields_and_keeps_the_others(store: Store) -> None:
    """InfluxDB's rule for a point written twice, which the SQLite store mirrors."""
    store.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0)], origin_ns=T0)
    store.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0, glute_ham_ratio=0.5,
                                                        peak_hip_extension_deg=float("nan"))],
                        origin_ns=T0)
    (row,) = store.strides("s1")
    assert row["glute_ham_ratio"] == 0.5
    assert row["peak_hip_extension_deg"] == 9.5  # NaN is "not carried", never an erasure


# --- time precision and NaN ---------------------------------------------------------------------
def test_nanosecond_timestamps_stay_distinct(store: Store) -> None:
    # two 2 kHz samples 0.5 ms apart (they would merge at ms precision), and 1 ns apart
    store.write_processed("tm1", "s1", "emg_raw", T0, 2000.0, ["glute_max_l"], [1.0, 2.0, 3.0])
    got = store.processed("tm1", "emg_raw")
    assert got.time_ns.tolist() == [T0, T0 + 500_000, T0 + 1_000_000]
    assert got.values[:, 0].tolist() == [1.0, 2.0, 3.0]
    store.write_frame_index("tm1", [FrameRecord("emg", 0, 0, T0, 1, 2000.0),
                                    FrameRecord("emg", 0, 1, T0 + 1, 1, 2000.0)])
    assert [f.t0_ns for f in store.frame_index("tm1", "emg")] == [T0, T0 + 1]


def test_nan_is_not_stored_and_reads_back_as_nan(store: Store) -> None:
    nan = float("nan")
    x = [[1.0, nan], [nan, nan], [3.0, np.inf]]
    assert store.write_processed("tm1", "s1", "env", T0, 100.0, ["a", "b"], x) == 2
    got = store.processed("tm1", "env", channels=["a", "b"])
    assert got.time_ns.tolist() == [T0, T0 + 20_000_000]  # the all-NaN instant has no point
    assert got.values[0, 0] == 1.0 and np.isnan(got.values[0, 1])
    assert got.values[1, 0] == 3.0 and np.isnan(got.values[1, 1])
    row = stride_row("l", 0, 2.0)
    row.update({k: nan for k in ("cadence_spm", "stride_time_s", "hip_rom_deg")})
    store.write_strides("tm1", "s1", "ann", [row])
    (back,) = store.strides("s1")
    assert all(math.isnan(back[k]) for k in ("cadence_spm", "stride_time_s", "hip_rom_deg"))
    with pytest.raises(ValueError, match="not finite"):
        store.write_strides("tm1", "s1", "ann", [stride_row("l", 1, nan)])


def test_unknown_names_and_line_breaks_are_refused_before_sending(store: Store) -> None:
    with pytest.raises(ValueError, match="line break"):
        store.write_strides("tm1\nx", "s1", "ann", [stride_row("l", 0, 1.0)])
    with pytest.raises(ValueError, match="only filter on tags"):
        store.select(STRIDES, {"cadence_spm": "1"})
    with pytest.raises(ValueError, match="shape"):
        store.write_processed("tm1", "s1", "env", T0, 100.0, ["a", "b"], [[1.0, 2.0, 3.0]])


def test_tag_values_with_special_characters(store: Store) -> None:
    odd = "tm 1,a=b'c\"d\\e"
    store.write_strides(odd, "session 1", "Zoë O'Neil", [stride_row("l", 0, 1.0)])
    (row,) = store.strides("session 1", station=odd)
    assert (row["station"], row["athlete"]) == (odd, "Zoë O'Neil")


# --- SQLite specifics ---------------------------------------------------------------------------
def test_sqlite_survives_reopen_and_threads(tmp_path) -> None:
    path = tmp_path / "x" / "store.db"
    with SqliteStore(path) as s:
        def worker(k: int) -> None:
            for i in range(20):
                s.write_strides(f"tm{k}", "s1", "ann", [stride_row("l", i, 1.0 + i)])
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with SqliteStore(path) as s:
        assert len(s.strides("s1")) == 80
        assert s.ping() and s.version().startswith("SQLite")


# --- InfluxDB specifics -------------------------------------------------------------------------
def test_influx_cli_witnesses_what_the_store_wrote(influxd, influx_db) -> None:
    with open_store(influxd.store_url(*PIPELINE_USER, influx_db)) as s:
        assert s.version().startswith("1.6") and s.write_api == "v1"
        write_everything(s)
        write_everything(s)
    out = json.loads(influxd.cli(influx_db, "SELECT count(stride_index) FROM strides"))
    assert out["results"][0]["series"][0]["values"][0][1] == 40
    out = json.loads(influxd.cli(influx_db, 'SELECT sum(n_samples), count(seq) FROM frames '
                                            'GROUP BY "station", "stream"'))
    (series,) = out["results"][0]["series"]
    assert series["tags"] == {"station": "tm1", "stream": "emg"}
    assert series["values"][0][1:] == [6000, 60]
    out = json.loads(influxd.cli(influx_db, "SHOW TAG KEYS FROM strides"))
    assert [v[0] for v in out["results"][0]["series"][0]["values"]] == [
        "athlete", "session", "side", "station"]
    out = json.loads(influxd.cli(influx_db, "SELECT * FROM processed WHERE channel = 'b' "
                                            "LIMIT 2"))
    (series,) = out["results"][0]["series"]
    times = [v[series["columns"].index("time")] for v in series["values"]]
    assert times == [T0, T0 + 10_000_000]  # ns precision, seen by the CLI


def test_influx_stopped_gives_unavailable_then_recovers(influxd, influx_db) -> None:
    s = open_store(influxd.store_url(*PIPELINE_USER, influx_db))
    s.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0)], origin_ns=T0)
    influxd.stop()
    try:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            s.write_strides("tm1", "s1", "ann", [stride_row("l", 1, 1.7)], origin_ns=T0)
        assert time.monotonic() - t < 5.0
        with pytest.raises(StoreUnavailable):
            s.strides("s1")
        assert s.ping() is False
    finally:
        influxd.start()
    deadline = time.monotonic() + 20.0
    while True:  # what a pipeline does with its spool: resend until the store takes it
        try:
            s.write_strides("tm1", "s1", "ann", [stride_row("l", 1, 1.7)], origin_ns=T0)
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "InfluxDB did not come back within 20 s"
            time.sleep(0.2)
    assert [r["stride_index"] for r in s.strides("s1")] == [0, 1]
    assert s.ping() is True
    s.close()


def test_influx_wrong_credentials_are_an_outage_for_writes_naming_auth(influxd, influx_db
                                                                         ) -> None:
    s = open_store(influxd.store_url(PIPELINE_USER[0], "wrong", influx_db))
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match="authentication failed") as err:
        s.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0)])  # spooled, not refused
    assert err.value.reason == "unauthorized" and time.monotonic() - t < 2.0  # not retried
    with pytest.raises(StoreRejected, match="authentication failed"):  # a reader's config
        s.strides("s1")
    assert "wrong" not in repr(s)


def test_influx_unknown_database_is_an_outage_and_creating_needs_admin(influxd, influx_db
                                                                       ) -> None:
    with pytest.raises(StoreUnavailable, match="database not found") as missing:
        open_store(influxd.store_url(*PIPELINE_USER, "no_such_db")).write_strides(
            "tm1", "s1", "ann", [stride_row("l", 0, 1.0)])
    assert missing.value.reason == "database_missing"
    s = open_store(influxd.store_url(*PIPELINE_USER, influx_db))
    with pytest.raises(StoreRejected, match="requires admin privilege") as err:
        s.create_database()  # CREATE DATABASE needs admin rights
    assert err.value.status == 403
    assert s.ensure_database(create=True) == "exists"  # nothing to create: no admin needed


def test_influx_field_type_conflict_is_rejected_with_the_servers_message(influxd, influx_db
                                                                         ) -> None:
    s = open_store(influxd.store_url(*PIPELINE_USER, influx_db))
    s.write_frame_index("tm1", [FrameRecord("emg", 0, 0, T0, 100, 2000.0)])
    bad = Point(FRAMES, T0 + 1, {"station": "tm1", "stream": "emg"}, {"n_samples": 1.5})
    with pytest.raises(StoreRejected, match="field type conflict") as err:
        s.write_points([bad])
    assert err.value.status == 400


# --- the v2 write path (InfluxDB >= 1.8, 2.x, 3.x), against a local stub --------------------------
class StubInflux:
    """A loopback HTTP server that answers /ping with a version and records writes."""

    def __init__(self, version: str, statuses: list[int]) -> None:
        self.version, self.statuses, self.requests = version, list(statuses), []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("X-Influxdb-Version", stub.version)
                self.send_header("Content-Length", str(len(body)))
                if body:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(204)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                stub.requests.append({"path": parts.path, "query": parse_qs(parts.query),
                                      "auth": self.headers.get("Authorization"),
                                      "type": self.headers.get("Content-Type"), "body": body})
                status = stub.statuses.pop(0) if stub.statuses else 204
                msg = json.dumps({"code": "invalid", "message": "bad line 1"}).encode()
                self._reply(status, msg if status >= 400 else b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("version", "user", "rp", "org", "auth", "bucket"), [
    ("1.8.10", "pipeline", None, "-", "Token pipeline:tok", "hipstride"),
    ("1.8.10", "pipeline", "autogen", "-", "Token pipeline:tok", "hipstride/autogen"),
    ("v2.7.11", "ignored", None, "clinic", "Token tok", "hipstride"),
    ("3.0.1", None, None, "-", "Token tok", "hipstride"),
])
def test_v2_write_request_is_built_from_the_server_version(version, user, rp, org, auth,
                                                            bucket) -> None:
    stub = StubInflux(version, [])
    try:
        s = InfluxStore(stub.url, "hipstride", username=user, token="tok",
                        retention_policy=rp, org=org)
        assert s.write_api == "v2" and s.version() == version
        s.write_strides("tm 1", "s1", "ann", [stride_row("l", 0, 1.0)], origin_ns=T0)
        (req,) = stub.requests
        assert req["path"] == "/api/v2/write"
        assert req["query"] == {"bucket": [bucket], "org": [org], "precision": ["ns"]}
        assert req["auth"] == auth and req["type"].startswith("text/plain")
        line = req["body"].decode()
        assert line.startswith("strides,athlete=ann,session=s1,side=l,station=tm\\ 1 ")
        assert line.endswith(f" {T0 + 1_000_000_000}") and "stride_index=0i" in line
        assert "nan" not in line.lower()
        s.close()
    finally:
        stub.close()


def test_v1_write_request_uses_basic_auth_before_1_8() -> None:
    stub = StubInflux("1.7.10", [])
    try:
        s = InfluxStore(stub.url, "hipstride", username="u", token="p", retention_policy="rp")
        s.write_frame_index("tm1", [FrameRecord("emg", 0, 0, T0, 100, 2000.0)])
        (req,) = stub.requests
        assert req["path"] == "/write" and s.write_api == "v1"
        assert req["query"] == {"db": ["hipstride"], "precision": ["ns"], "rp": ["rp"]}
        assert req["auth"] == "Basic dTpw"  # base64("u:p")
    finally:
        stub.close()


def test_v2_write_retries_5xx_then_succeeds_and_rejects_4xx() -> None:
    stub = StubInflux("2.7.11", [503, 500, 204, 400])
    try:
        s = InfluxStore(stub.url, "hipstride", token="tok", org="o", backoff_s=0.01)
        s.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0)])
        assert len(stub.requests) == 3  # two 5xx retried, the same body each time
        assert len({r["body"] for r in stub.requests}) == 1
        with pytest.raises(StoreRejected, match="HTTP 400 bad line 1") as err:
            s.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0)])
        assert err.value.status == 400 and len(stub.requests) == 4
        stub.statuses = [503] * 10
        with pytest.raises(StoreUnavailable, match="4 attempts"):
            s.write_strides("tm1", "s1", "ann", [stride_row("l", 0, 1.0)])
    finally:
        stub.close()


def test_line_protocol_matches_influxdb_client_point() -> None:
    from influxdb_client import Point as ClientPoint

    p = Point(STRIDES, T0, {"station": "tm 1,a=b", "side": "l"},
              {"quality": 'say "hi" \\ now', "stride_index": 3, "valid": False,
               "cadence_spm": 171.42857142857142, "hip_rom_deg": 1e-05})
    theirs = ClientPoint("strides").tag("station", "tm 1,a=b").tag("side", "l").time(T0)
    for k, v in p.fields.items():
        theirs = theirs.field(k, v)
    assert encode_line(p) == theirs.to_line_protocol()


@pytest.mark.parametrize(("header", "want"), [("1.6.7~rc0", (1, 6, 7)), ("v2.7.11", (2, 7, 11)),
                                              ("3.0.1", (3, 0, 1)), ("", None)])
def test_parse_version(header, want) -> None:
    assert parse_version(header) == want


# --- store URLs ---------------------------------------------------------------------------------
def test_store_urls(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HIPSTRIDE_STORE_TOKEN", raising=False)
    u = StoreURL.parse("influxs://pipe:s%40cret@db.example:8443/hipstride/autogen?org=clinic")
    assert (u.kind, u.http_url, u.database, u.retention_policy, u.org, u.username, u.token) == (
        "influx", "https://db.example:8443", "hipstride", "autogen", "clinic", "pipe", "s@cret")
    assert "s@cret" not in repr(u)
    assert StoreURL.parse("influx://localhost/hs").port == 8086
    monkeypatch.setenv("HIPSTRIDE_STORE_TOKEN", "from-env")
    assert StoreURL.parse("influx://pipe@h:1/db").token == "from-env"
    monkeypatch.delenv("HIPSTRIDE_STORE_TOKEN")
    (tmp_path / "token").write_text("from-file\n")
    assert StoreURL.parse("influx://pipe@h:1/db", token_file=str(tmp_path / "token")
                          ).token == "from-file"
    assert StoreURL.parse("sqlite:///data/x.db").path == "data/x.db"
    assert StoreURL.parse("sqlite:////abs/x.db").path == "/abs/x.db"
    assert StoreURL.parse("sqlite:///:memory:").path == ":memory:"


@pytest.mark.parametrize(("url", "match"), [
    ("postgres://h/db", "unknown store scheme 'postgres'"),
    ("localhost:8086", "not a store URL"),
    ("influx://h:99999/db", "port"),
    ("influx://h:8086", "no database"),
    ("influx://h:8086/a/b/c", "more than DATABASE/RP"),
    ("influx://h:8086/db?bucket=x", "unknown option"),
    ("influx://pipe@h:8086/db", "no token"),
    ("influx:///db", "no host"),
    ("sqlite://host/x.db", "three slashes"),
    ("sqlite:///", "names no file"),
])
def test_bad_store_urls_name_the_problem(url, match, monkeypatch) -> None:
    monkeypatch.delenv("HIPSTRIDE_STORE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=match):
        StoreURL.parse(url)


def test_token_file_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        StoreURL.parse("influx://u@h:1/db", token_file=str(tmp_path / "missing"))


def test_open_store_contacts_nothing_until_used() -> None:
    s = open_store("influx://u:p@127.0.0.1:9/db")  # port 9: nothing listens
    assert isinstance(s, InfluxStore)
    s.retries = 0
    with pytest.raises(StoreUnavailable):
        s.strides("s1")


# --- the documented schema ----------------------------------------------------------------------
def test_docs_schema_lists_every_measurement_tag_and_field() -> None:
    from hipstride.pipeline.store.base import MEASUREMENTS

    doc = (Path(__file__).parents[3] / "docs" / "schema.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")
            for line in doc.splitlines() if line.startswith("| `")}
    for m in MEASUREMENTS:
        assert m.name in rows, f"docs/schema.md has no row for {m.name}"
        tags_cell, fields_cell = rows[m.name][2], rows[m.name][3]
        for tag in m.tags:
            assert f"`{tag}`" in tags_cell, (m.name, tag)
        for name in m.fields:
            assert f"`{name}`" in fields_cell, (m.name, name)
