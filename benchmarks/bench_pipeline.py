"""How many stations one pipeline process (or N partitions) serves in real time, and how late
its live metrics are, next to the raw paho-mqtt + Mosquitto message rate (the ceiling).

The full simulated sensor set of one station (6 EMG x 2 kHz, 5 IMUs x 200 Hz) is generated
once, cut into 50 ms frames, and published by ONE publisher process for every station, paced
in real time: station i's frame k carries seq k and t0 = start + offset_i + k x 50 ms and is
published when its last sample is due (stations staggered across the 50 ms). The pipeline
runs as ``hipstride pipeline`` subprocess(es) on a fresh Mosquitto per step, with a SQLite or
InfluxDB store. A subscriber to ``hipstride/v1/+/live`` notes when each live message arrives
and its ``data_time_ns`` (the end of the data it reflects). A frame's latency is the time from
its publication (when its last sample is due) to the arrival of the first live message whose
``data_time_ns`` reaches it — what a screen showing the live topic lags behind the sensors; it
includes the wait for the pipeline's next batch (``--batch-ms``). Only the running phase
counts (after ``--warmup`` s: standing and functional calibration).

A step "keeps up" when the median latency stays under 250 ms (2.5 batch intervals) without
growing over the window (median of its last 5 s within 50 ms of its first 5 s) and every
station's live messages arrive; the issue's target is >= 50 stations with p99 < 100 ms.
The pipeline's CPU per station (when it keeps up) gives stations per free core, a figure
less at the mercy of other load on a shared machine than the latencies.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipstride import topics
from hipstride.config import Section
from hipstride.edge.sources import make_source
from hipstride.frames import encode_frame
from tests.support.mosquitto import Mosquitto, free_port

USERS = {"bench": "bench-secret", "pipeline": "pipeline-secret", "writer": "writer-secret"}
FRAME_MS = 50


# --- data --------------------------------------------------------------------------------------
def generate(seconds: float) -> tuple[list, list[list[tuple[str, float, np.ndarray]]]]:
    """One station's full sensor set as 50 ms ticks: [[(stream, rate_hz, samples), ...], ...]."""
    source = make_source("sim", Section({"speed": 0, "duration_s": seconds, "seed": 1}, "sim"))
    chunks: dict[str, list[np.ndarray]] = {d.stream: [] for d in source.descriptions}
    while not source.finished:
        for block in source.read(0.01):
            chunks[block.stream].append(np.asarray(block.samples))
    source.close()
    ticks: list[list[tuple[str, float, np.ndarray]]] = []
    per_stream = {}
    for d in source.descriptions:
        data = np.concatenate(chunks[d.stream]).astype(d.numpy_dtype)
        n = round(d.rate_hz * FRAME_MS / 1000)
        per_stream[d.stream] = (d.rate_hz, [data[i:i + n] for i in range(0, len(data) - n + 1, n)])
    n_ticks = min(len(f) for _r, f in per_stream.values())
    for k in range(n_ticks):
        ticks.append([(s, rate, frames[k]) for s, (rate, frames) in per_stream.items()])
    return source.descriptions, ticks


def client(name: str, port: int, user: str = "bench") -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=True)
    c.username_pw_set(user, USERS[user])
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port, keepalive=30)
    return c


# --- publisher process -------------------------------------------------------------------------
def publish_stations(port: int, stations: list[str], descriptions, ticks, start_ns: int,
                     results: mp.Queue) -> None:
    """Every station's ticks in real time from one process; reports its own lateness."""
    c = client("bench-publisher", port)
    c.loop_start()
    for station in stations:
        for d in descriptions:
            c.publish(topics.stream_description(station, d.stream), d.to_json(), qos=1,
                      retain=True)
    period_ns = FRAME_MS * 1_000_000
    offsets = [i * period_ns // len(stations) for i in range(len(stations))]
    frame_topics = [{s: topics.frames(st, s) for s, _r, _x in ticks[0]} for st in stations]
    late_ms: list[float] = []
    info = None
    cpu = time.process_time()
    for k, tick in enumerate(ticks):
        for i, _station in enumerate(stations):
            t0 = start_ns + offsets[i] + k * period_ns
            due = t0 + period_ns
            wait = (due - time.time_ns()) / 1e9
            if wait > 0:
                time.sleep(wait)
            late_ms.append((time.time_ns() - due) / 1e6)
            for stream, rate, samples in tick:
                info = c.publish(frame_topics[i][stream],
                                 encode_frame(stream, k, t0, rate, samples, epoch=7), qos=1)
    if info is not None:
        info.wait_for_publish(timeout=30)
    cpu = time.process_time() - cpu
    c.disconnect()
    c.loop_stop()
    results.put({"late_p50_ms": float(np.percentile(late_ms, 50)),
                 "late_p99_ms": float(np.percentile(late_ms, 99)), "cpu_s": cpu})


# --- the ceiling: raw paho + Mosquitto -----------------------------------------------------------
def _flood(port: int, payloads: list[tuple[str, bytes]], n: int) -> None:
    c = client("bench-flood", port)
    c.loop_start()
    info = None
    for k in range(n):
        topic, payload = payloads[k % len(payloads)]
        info = c.publish(topic, payload, qos=1)
    info.wait_for_publish(timeout=60)
    c.disconnect()
    c.loop_stop()


def ceiling(workdir: Path, ticks, n: int) -> float:
    """Messages/s from one paho publisher process through Mosquitto to one paho QoS 1
    subscriber, with the frames' payloads: the most any MQTT-fed pipeline can receive."""
    broker = start_broker(workdir / "ceiling", inflight=0)
    try:
        got, first, done = [0], [0.0], threading.Event()

        def on_message(*_a) -> None:
            got[0] += 1
            if got[0] == 1:
                first[0] = time.monotonic()
            if got[0] >= n:
                done.set()
        sub = client("bench-sink", broker.port)
        sub.on_message = on_message
        sub.subscribe("hipstride/v1/+/frames/+", qos=1)
        sub.loop_start()
        time.sleep(0.3)
        payloads = [(topics.frames("ceiling", s), encode_frame(s, 0, 0, r, x))
                    for s, r, x in ticks[100]]
        proc = mp.get_context("fork").Process(target=_flood, args=(broker.port, payloads, n))
        start = time.monotonic()
        proc.start()
        done.wait(120)
        elapsed = time.monotonic() - start
        proc.join(30)
        sub.disconnect()
        sub.loop_stop()
        return got[0] / elapsed
    finally:
        broker.stop()


# --- pipeline processes --------------------------------------------------------------------------
def start_broker(workdir: Path, inflight: int) -> Mosquitto:
    broker = Mosquitto(workdir, USERS)
    text = broker.config.read_text().replace("max_inflight_messages 100",
                                             f"max_inflight_messages {inflight}")
    broker.config.write_text(text)
    broker.start()
    return broker


class PipelineProc:
    def __init__(self, broker: Mosquitto, store: str, workdir: Path, part: str,
                 batch_ms: int, profile_dir: Path | None = None) -> None:
        self.port = free_port()
        config = workdir / "pipeline.toml"
        config.write_text(f"[batch]\ninterval_ms = {batch_ms}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HIPSTRIDE_")}
        env.update(HIPSTRIDE_BROKER_PASSWORD=USERS["pipeline"],
                   HIPSTRIDE_STORE_TOKEN=USERS["writer"])
        self.log = workdir / f"pipeline-{part.replace('/', '-')}.log"
        with open(self.log, "w") as log:
            profile = (["-m", "cProfile", "-o", str(profile_dir / f"pipeline-{part[0]}.prof")]
                       if profile_dir else [])
            self.proc = subprocess.Popen(
                [sys.executable, *profile, "-m", "hipstride.cli", "pipeline", "--broker",
                 broker.url_for("pipeline"), "--store", store, "--partition", part,
                 "--config", str(config), "--state-dir", str(workdir / "state"),
                 "--recordings", str(workdir / "recordings"), "--metrics-port",
                 str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT)

    def metrics(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return {}
        return {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines()
                if ln and not ln.startswith("#")}

    def wait_ready(self, timeout_s: float = 60) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pipeline exited: {self.log.read_text()[-2000:]}")
            if self.metrics().get("hipstride_pipeline_mqtt_subscribed") == 1:
                return
            time.sleep(0.2)
        raise RuntimeError("the pipeline did not subscribe in time")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_step(n: int, args, descriptions, ticks, workdir: Path, store_for) -> dict:
    workdir.mkdir(parents=True)
    broker = start_broker(workdir / "mosquitto", inflight=args.broker_inflight)
    stations = [f"s{n}-{i:02d}" for i in range(n)]
    if args.partitions > 1:
        from hipstride.pipeline.service.config import station_bucket
        shares = [sum(station_bucket(s, args.partitions) == i for s in stations)
                  for i in range(args.partitions)]
        print(f"     {n} stations split {' / '.join(map(str, shares))} between partitions")
    live: list[tuple[int, str, int]] = []
    sent: list[tuple[int, int]] = []  # (data time, when the pipeline sent the live message)
    pipelines: list[PipelineProc] = []
    try:
        store = store_for(workdir)
        pipelines = [PipelineProc(broker, store, workdir, f"{i}/{args.partitions}",
                                  args.batch_ms, args.profile) for i in range(args.partitions)]
        for p in pipelines:
            p.wait_ready()
        sub = client("bench-live", broker.port)

        def on_live(_c, _u, msg) -> None:
            now = time.time_ns()
            body = json.loads(msg.payload)
            if body.get("data_time_ns") is not None:
                live.append((now, body["station"], body["data_time_ns"]))
                sent.append((body["data_time_ns"], body.get("time_ns") or now))
        sub.on_message = on_live
        sub.subscribe(topics.subscription(topics.LIVE), qos=0)
        sub.loop_start()
        start_ns = time.time_ns() + 1_000_000_000
        results: mp.Queue = mp.get_context("fork").Queue()
        pub = mp.get_context("fork").Process(target=publish_stations, args=(
            broker.port, stations, descriptions, ticks, start_ns, results))
        pub.start()
        window = (start_ns + int(args.warmup * 1e9), start_ns + int(args.seconds * 1e9))
        cpu = None
        while pub.is_alive() and time.time_ns() < window[1] + 60e9:
            if cpu is None and time.time_ns() >= window[0]:
                cpu = (time.monotonic(), [p.cpu_s() for p in pipelines])
            pub.join(0.2)
        if pub.is_alive():
            pub.terminate()
            raise RuntimeError("the publisher did not finish within 60 s of its schedule")
        if cpu is None:
            raise RuntimeError(f"the publisher stopped (exit {pub.exitcode}) before the "
                               "measurement window")
        wall = time.monotonic() - cpu[0]
        cpu_pct = [(p.cpu_s() - c0) / wall * 100 for p, c0 in zip(pipelines, cpu[1],
                                                                    strict=True)]
        publisher = results.get(timeout=30)
        time.sleep(2.0)  # the tail of live messages
        store_s = [(m.get("hipstride_pipeline_store_write_seconds_sum", 0.0),
                    m.get("hipstride_pipeline_store_write_seconds_count", 0.0))
                   for m in (p.metrics() for p in pipelines)]
        sub.disconnect()
        sub.loop_stop()
    finally:
        for p in pipelines:
            p.stop()
        broker.stop()
    ages = np.array([(r - d) / 1e6 for r, _s, d in live if window[0] <= d < window[1]])
    if not len(ages):
        return {"n": n, "keeps_up": False, "note": "no live messages in the window",
                "publisher": publisher, "cpu_pct": cpu_pct, "store_s": store_s}
    due, lat_ms = frame_latency_ms(live, stations, start_ns, window)
    # the pipeline's share: from the data's end (its frames' publication) to the message
    # leaving the pipeline (its own clock: same machine); the rest is MQTT both ways
    inside = np.array([(t - d) / 1e6 for d, t in sent if window[0] <= d < window[1]])
    first = lat_ms[due < window[0] + 5e9]
    last = lat_ms[due >= window[1] - 5e9]
    growth = float(np.median(last) - np.median(first))
    seen = {s for _r, s, d in live if window[0] <= d < window[1]}
    per_s = len(ages) / (n * (window[1] - window[0]) / 1e9)
    return {"n": n, "p50_ms": float(np.percentile(lat_ms, 50, method="higher")),
            "p99_ms": float(np.percentile(lat_ms, 99, method="higher")), "growth_ms": growth,
            "age_p50_ms": float(np.percentile(ages, 50)),
            "sent_p50_ms": float(np.percentile(inside, 50)),
            "sent_p99_ms": float(np.percentile(inside, 99)),
            "stations_live": len(seen), "live_per_station_s": per_s, "cpu_pct": cpu_pct,
            "publisher": publisher, "store_s": store_s,
            "keeps_up": bool(growth < 50 and len(seen) == n and np.isfinite(lat_ms).all()
                             and np.median(lat_ms) < 250)}


def frame_latency_ms(live: list[tuple[int, str, int]], stations: list[str], start_ns: int,
                     window: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For every station's frame tick due in the window: (due time in ns, ms from its due
    time to the arrival of the first live message whose data reaches it; inf if none)."""
    period = FRAME_MS * 1_000_000
    received: dict[str, list[tuple[int, int]]] = {s: [] for s in stations}
    for recv, station, data in live:
        if station in received:
            received[station].append((data, recv))
    dues, lats = [], []
    for i, station in enumerate(stations):
        offset = i * period // len(stations)
        ks = np.arange((window[0] - start_ns - offset) // period,
                       (window[1] - start_ns - offset) // period, dtype=np.int64)
        due = start_ns + offset + (ks + 1) * period
        lat = np.full(len(due), np.inf)
        msgs = np.array(sorted(received[station]), dtype=np.int64).reshape(-1, 2)
        if len(msgs):
            first_recv = np.minimum.accumulate(msgs[::-1, 1])[::-1]  # earliest at or after
            idx = np.searchsorted(msgs[:, 0], due, side="left")
            ok = idx < len(msgs)
            lat[ok] = (first_recv[idx[ok]] - due[ok]) / 1e6
        dues.append(due)
        lats.append(lat)
    return np.concatenate(dues), np.concatenate(lats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10,20,35,50", help="station counts to try")
    parser.add_argument("--seconds", type=float, default=40.0, help="streamed per step")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds not measured (standing + functional calibration)")
    parser.add_argument("--partitions", type=int, default=1,
                        help="pipeline processes (--partition I/N)")
    parser.add_argument("--batch-ms", type=int, default=100, help="[batch] interval_ms")
    parser.add_argument("--store", choices=("sqlite", "influx"), default="sqlite")
    parser.add_argument("--broker-inflight", type=int, default=0,
                        help="Mosquitto max_inflight_messages toward the pipeline (0 = no "
                             "limit; the tests' broker uses 100)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run the pipeline under cProfile; profiles go to DIR")
    parser.add_argument("--ceiling-messages", type=int, default=30000)
    parser.add_argument("--stop-after-failure", action=argparse.BooleanOptionalAction,
                        default=True, help="stop at the first step that does not keep up")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    descriptions, ticks = generate(args.seconds + 1)
    print(f"frames: {len(ticks[0])} per station per {FRAME_MS} ms = "
          f"{len(ticks[0]) * 1000 // FRAME_MS} frames/s per station; store {args.store}; "
          f"{args.partitions} pipeline process(es); batch {args.batch_ms} ms; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        influx = None
        if args.store == "influx":
            from tests.support.influxdb import InfluxDB
            influx = InfluxDB(Path(tmp) / "influxdb")
            influx.start()
            influx.create_database("hipstride", users={"writer": USERS["writer"]})
        counter = iter(range(1000))

        def store_for(workdir: Path) -> str:
            if influx is None:
                return f"sqlite:///{workdir / 'store.sqlite'}"
            db = f"bench{next(counter)}"
            influx.create_database(db, users={"writer": USERS["writer"]})
            return f"influx://writer@127.0.0.1:{influx.port}/{db}"
        try:
            rate = ceiling(Path(tmp), ticks, args.ceiling_messages)
            per_station = len(ticks[0]) * 1000 / FRAME_MS
            print(f"ceiling: raw paho QoS 1 -> Mosquitto -> paho QoS 1 subscriber: "
                  f"{rate:,.0f} messages/s = {rate / per_station:.0f} stations' frames")
            best = 0
            for n in steps:
                r = run_step(n, args, descriptions, ticks, Path(tmp) / f"step-{n}", store_for)
                pub = r["publisher"]
                cpu = " + ".join(f"{c:.0f}" for c in r["cpu_pct"])
                store = ", ".join(f"{total / max(1, k) * 1000:.0f} ms x {k:.0f}"
                                  for total, k in r["store_s"])
                if "p50_ms" in r:
                    print(f"{n:3d} stations: frame -> live latency p50 {r['p50_ms']:6.1f} ms, "
                          f"p99 {r['p99_ms']:7.1f} ms, growth {r['growth_ms']:+7.1f} ms (live "
                          f"message age p50 {r['age_p50_ms']:.0f} ms); live "
                          f"{r['stations_live']}/{n} stations, {r['live_per_station_s']:.1f}"
                          f"/s each, sent {r['sent_p50_ms']:.0f} / {r['sent_p99_ms']:.0f} ms "
                          f"(p50 / p99) after their data's end; pipeline CPU {cpu} % of a "
                          f"core; publisher late p99 "
                          f"{pub['late_p99_ms']:.1f} ms; store writes {store} -> "
                          f"{'keeps up' if r['keeps_up'] else 'FALLS BEHIND'}; "
                          f"{n * per_station / rate:.0%} of the ceiling's message rate")
                else:
                    print(f"{n:3d} stations: {r['note']} -> FALLS BEHIND")
                if r["keeps_up"]:
                    best = n
                    per = sum(r["cpu_pct"]) / n
                    print(f"     pipeline CPU per station {per:.1f} % of a core -> about "
                          f"{100 / per:.0f} stations per free core")
                elif args.stop_after_failure:
                    break
            print(f"largest step kept up: {best} stations "
                  f"({args.partitions} process(es); target >= 50 with p99 < 100 ms)")
        finally:
            if influx is not None:
                influx.stop()


if __name__ == "__main__":
    main()
