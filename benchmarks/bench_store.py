"""Store write throughput through the InfluxDB sink, next to a plain line-protocol POST.

A real ``influxd`` (Debian's 1.6.7, started on free loopback ports like the tests) receives
the points a pipeline batch holds — per station and 100 ms: 12 frame-index points (EMG and
five IMUs, 50 ms frames) and 60 processed EMG-envelope points (6 channels x 100 Hz) — written
in batches the size of one batch of S stations:

1. through the store (``pipeline/store/influx.py``: ``InfluxStore.write_points``, line
   protocol built from ``Point``s, influxdb-client's HTTP client, retries);
2. the same through the store with each station's envelope channel of the batch as one
   ``PointSeries`` (what the pipeline writes since 2026-11: times and values arrays);
3. the baseline, in the same run on the same server: the same points' line protocol, encoded
   beforehand, POSTed with ``urllib`` to ``/write?precision=ns`` — the least any client does.

Each into its own database (no overwrites), alternating rounds; the best round of each counts.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hipstride.pipeline.store.base import FRAMES, PROCESSED, Point, PointSeries
from hipstride.pipeline.store.influx import InfluxStore, encode_line, encode_lines
from tests.support.influxdb import InfluxDB

USER, PASSWORD = "writer", "writer-secret"
EMG_CHANNELS = ("glute_max_l", "glute_max_r", "biceps_femoris_l", "biceps_femoris_r",
                "erector_l", "erector_r")
IMUS = ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r")


def batches(stations: int, seconds: float, start_ns: int) -> list[list[Point]]:
    """One list of points per 100 ms, for ``stations`` stations, like the pipeline writes."""
    out = []
    for b in range(int(seconds * 10)):
        t = start_ns + b * 100_000_000
        points: list[Point | None] = []
        for s in range(stations):
            station = f"st{s:02d}"
            for half in (0, 50_000_000):
                seq = 2 * b + (half > 0)
                points.append(Point.make(FRAMES, t + half, {"station": station,
                                                            "stream": "emg"},
                                         {"epoch": 7, "seq": seq, "n_samples": 100,
                                          "rate_hz": 2000.0, "session": "unassigned"}))
                points += [Point.make(FRAMES, t + half, {"station": station,
                                                         "stream": f"imu_{imu}"},
                                      {"epoch": 7, "seq": seq, "n_samples": 10,
                                       "rate_hz": 200.0, "session": "unassigned"})
                           for imu in IMUS]
            for k in range(10):
                points += [Point.make(PROCESSED, t + k * 10_000_000,
                                      {"station": station, "session": "unassigned",
                                       "stream": "emg_envelope", "channel": c},
                                      {"value": 0.01 * (k + 1) + 0.001 * i})
                           for i, c in enumerate(EMG_CHANNELS)]
        out.append([p for p in points if p is not None])
    return out


def as_series(points: list[Point]) -> list[Point | PointSeries]:
    """The batch with its processed points grouped into one series per channel."""
    out: list[Point | PointSeries] = [p for p in points if p.measurement is not PROCESSED]
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        if p.measurement is PROCESSED:
            groups.setdefault(tuple(sorted(p.tags.items())), []).append(p)
    for group in groups.values():
        out.append(PointSeries.make(PROCESSED, group[0].tags, "value",
                                    [p.time_ns for p in group],
                                    [p.fields["value"] for p in group]))
    return out


def through_store(influx: InfluxDB, database: str, work: list[list]) -> float:
    store = InfluxStore(influx.url, database, username=USER, token=PASSWORD, timeout_s=30)
    try:
        start = time.perf_counter()
        for points in work:
            store.write_points(points)
        return time.perf_counter() - start
    finally:
        store.close()


def plain_post(influx: InfluxDB, database: str, bodies: list[bytes]) -> float:
    url = f"{influx.url}/write?" + urllib.parse.urlencode({"db": database, "precision": "ns"})
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    start = time.perf_counter()
    for body in bodies:
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Authorization", auth)
        request.add_header("Content-Type", "text/plain; charset=utf-8")
        with urllib.request.urlopen(request, timeout=30) as r:
            if r.status != 204:
                raise RuntimeError(f"/write answered {r.status}")
    return time.perf_counter() - start


def count(influx: InfluxDB, database: str) -> int:
    total = 0
    for m in ("frames", "processed"):
        series = influx.query(f"SELECT count(*) FROM {m}", database=database)[0].get("series")
        if series:
            total += max(v for v in series[0]["values"][0][1:] if v is not None)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", default="10,50",
                        help="batch sizes, as stations per 100 ms batch")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="data per round (seconds of the stations' batches)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        influx = InfluxDB(Path(tmp) / "influxdb")
        influx.start()
        try:
            for n in (int(s) for s in args.stations.split(",")):
                best_store = best_raw = best_encode = best_series = float("inf")
                total = 0
                for r in range(args.rounds):
                    start_ns = 1_700_000_000_000_000_000 + r * 10**12
                    work = batches(n, args.seconds, start_ns)
                    total = sum(len(p) for p in work)
                    started = time.perf_counter()
                    bodies = ["\n".join(encode_line(p) for p in points).encode()
                              for points in work]
                    best_encode = min(best_encode, time.perf_counter() - started)
                    series = [as_series(points) for points in work]
                    if any(sorted(encode_lines(s)) != sorted(encode_line(p) for p in w)
                           for s, w in zip(series[:3], work[:3], strict=True)):
                        raise RuntimeError("series lines differ from the points' lines")
                    dbs = (f"raw{n}_{r}", f"store{n}_{r}", f"series{n}_{r}")
                    for db in dbs:
                        influx.create_database(db, users={USER: PASSWORD})
                    order = (0, 1, 2) if r % 2 else (2, 1, 0)  # alternate who goes first
                    for which in order:
                        if which == 1:
                            best_raw = min(best_raw, plain_post(influx, f"raw{n}_{r}", bodies))
                        elif which == 0:
                            best_store = min(best_store,
                                             through_store(influx, f"store{n}_{r}", work))
                        else:
                            best_series = min(best_series,
                                              through_store(influx, f"series{n}_{r}", series))
                    for db in dbs:
                        got = count(influx, db)
                        if got != total:
                            raise RuntimeError(f"{db}: {got} points stored of {total}")
                per_batch = total // len(work)
                store_rate, raw_rate = total / best_store, total / best_raw
                need = 720 * n
                print(f"{n} stations per batch ({per_batch} points / 100 ms, {total} points "
                      f"per round): store {store_rate:,.0f} points/s, plain POST "
                      f"{raw_rate:,.0f} points/s -> store / plain = {store_rate / raw_rate:.2f};"
                      f" real time needs {need:,} points/s ({need / store_rate:.0%} of the "
                      f"store's rate)")
                both = total / (best_raw + best_encode)
                series_rate = total / best_series
                print(f"   store with series {series_rate:,.0f} points/s -> series / points = "
                      f"{series_rate / store_rate:.2f}, series / plain = "
                      f"{series_rate / raw_rate:.2f}")
                print(f"   line encoding alone {total / best_encode:,.0f} points/s; encoding + "
                      f"plain POST {both:,.0f} points/s -> store / (encode + POST) = "
                      f"{store_rate / both:.2f}")
        finally:
            influx.stop()


if __name__ == "__main__":
    main()
