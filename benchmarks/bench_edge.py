"""Edge agent cost and throughput through a real Mosquitto, next to raw paho-mqtt.

1. Simulator alone: CPU to generate the full sensor set (6 EMG x 2 kHz, 5 IMUs x 200 Hz).
2. Agent CPU per second of streamed data: pre-generated blocks fed at real time through the
   whole agent (framing, clock, health, SQLite spool, paho QoS 1), as % of one core.
   Measured with the store confirmation (a stand-in pipeline confirms what it receives, with
   the pipeline's own bookkeeping: DedupIndex, Confirmations, 100 ms batches) and without it
   (``require_store_confirmation = false``), next to bare paho at the same pace.
3. Throughput ceiling: the same blocks fed as fast as the agent takes them, frames/s until
   the broker has acknowledged all of them — next to raw paho-mqtt publishing the same
   payloads with QoS 1 and the same inflight window to the same broker (the ceiling).
4. Spool depth the confirmations need: one real agent among 1, 10 and 50 stations (the
   others' frames published at the same pace by one paho client) through the stand-in
   pipeline: the agent's unconfirmed frames, sampled every 0.2 s. This is the confirmation's
   own latency (broker, 100 ms batch, 0.5 s mark interval); a real pipeline adds its store
   write time (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipstride import topics
from hipstride.config import Section
from hipstride.edge.agent import Agent
from hipstride.edge.config import load_edge_config
from hipstride.edge.framing import Framer
from hipstride.edge.sources import make_source
from hipstride.edge.sources.base import Block, Source
from hipstride.pipeline.service.confirm import Confirmations
from hipstride.pipeline.service.ingest import DedupIndex
from tests.support.mosquitto import Mosquitto

USER, PASSWORD = "bench", "bench-secret"


class PacedSource(Source):
    """Pre-generated blocks, handed out at ``speed`` x real time (0 = all at once)."""

    def __init__(self, descriptions, blocks: list[tuple[float, Block]], speed: float) -> None:
        self.descriptions = descriptions
        self.blocks = blocks
        self.speed = speed
        self.realtime = speed == 1
        self._next = 0
        self._start = time.monotonic()

    @property
    def finished(self) -> bool:
        return self._next >= len(self.blocks)

    def read(self, timeout_s: float) -> list[Block]:
        if self.speed == 0:
            out = [b for _, b in self.blocks[self._next:self._next + 64]]
            self._next += len(out)
            return out
        now = (time.monotonic() - self._start) * self.speed
        due = self._next
        while due < len(self.blocks) and self.blocks[due][0] <= now:
            due += 1
        if due == self._next:
            time.sleep(min(timeout_s, max(0.0, (self.blocks[due][0] - now) / self.speed)
                           if due < len(self.blocks) else timeout_s))
            return []
        out = [b for _, b in self.blocks[self._next:due]]
        self._next = due
        return out


def generate(seconds: float):
    source = make_source("sim", Section({"speed": 0, "duration_s": seconds, "seed": 1}, "sim"))
    blocks, produced = [], {d.stream: 0 for d in source.descriptions}
    rates = {d.stream: d.rate_hz for d in source.descriptions}
    cpu = time.process_time()
    while not source.finished:
        for block in source.read(0.01):
            blocks.append((produced[block.stream] / rates[block.stream], block))
            produced[block.stream] += len(block.samples)
    cpu = time.process_time() - cpu
    blocks.sort(key=lambda tb: tb[0])
    return source.descriptions, blocks, cpu


class StandInPipeline:
    """Confirms what it receives like the pipeline (same DedupIndex and Confirmations, 100 ms
    batches), without engines or a store: the confirmation's own cost and latency."""

    def __init__(self, broker: Mosquitto) -> None:
        self.dedup = DedupIndex()
        self.lock = threading.Lock()
        self.keys: list = []
        self._stop = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pipeline",
                        clean_session=True)
        c.username_pw_set(USER, PASSWORD)
        c.on_message = self._on_message
        c.on_connect = lambda cl, *_: cl.subscribe(topics.subscription(topics.FRAMES), qos=1)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        self.client = c
        self.confirm = Confirmations(
            self.dedup, lambda t, b: c.publish(t, b, qos=1, retain=True), "0/1")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _on_message(self, _c, _u, msg) -> None:
        parsed = topics.parse(msg.topic)
        epoch, seq = struct.unpack_from("<IQ", msg.payload, 8)
        with self.lock:
            self.keys.append((parsed.station, parsed.stream, epoch, seq))

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            with self.lock:
                keys, self.keys = self.keys, []
            self.dedup.commit(keys)
            self.confirm.stored(keys)
            self.confirm.tick()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def run_agent(broker: Mosquitto, descriptions, blocks, speed: float, workdir: Path, *,
              confirm: bool = True, station: str = "bench", sample=None):
    os.environ["HIPSTRIDE_BROKER_PASSWORD"] = PASSWORD
    config = load_edge_config(None, station=station, broker=broker.url_for(USER),
                              spool=str(workdir / f"spool-{station}-{speed}-{confirm}.sqlite"),
                              drain_timeout_s=120)
    config = replace(config, require_store_confirmation=confirm)
    agent = Agent(config, PacedSource(descriptions, blocks, speed))
    sampler = None
    if sample is not None:
        sampler = threading.Thread(target=sample, args=(agent,), daemon=True)
        sampler.start()
    wall, cpu = time.monotonic(), time.process_time()
    agent.run()
    return time.monotonic() - wall, time.process_time() - cpu, agent


def others_paced(broker: Mosquitto, stations: int, timed_payloads, stop: threading.Event,
                 stats: dict) -> threading.Thread:
    """``stations`` more stations' frames (the same payloads) at the same pace, one client."""
    def run() -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-others",
                             clean_session=True)
        client.username_pw_set(USER, PASSWORD)
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        start = time.monotonic()
        names = [f"other-{i}" for i in range(stations)]
        for due, payload in timed_payloads:
            if stop.is_set():
                break
            delay = due - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
            for name in names:
                client.publish(f"hipstride/v1/{name}/frames/emg", payload, qos=1)
                stats["sent"] = stats.get("sent", 0) + 1
        stats["seconds"] = time.monotonic() - start
        client.disconnect()
        client.loop_stop()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def spool_depth(broker: Mosquitto, descriptions, blocks, stations: int, workdir: Path
                ) -> tuple[float, int, int, float, float]:
    """(mean, p95, max unconfirmed frames, max MB, the others' frames/s) of one agent among
    ``stations``."""
    depths: list[tuple[int, int]] = []

    def sample(agent: Agent) -> None:
        time.sleep(2.0)  # past the start
        while not agent._stop.is_set() and not agent.source.finished:
            d = agent.spool.depth()
            depths.append((d.frames, d.bytes))
            time.sleep(0.2)

    stop = threading.Event()
    stats: dict = {}
    others = others_paced(broker, stations - 1, frame_all(descriptions, blocks), stop, stats) \
        if stations > 1 else None
    run_agent(broker, descriptions, blocks, 1.0, workdir, station=f"depth-{stations}",
              sample=sample)
    stop.set()
    if others is not None:
        others.join(30)
    frames = sorted(f for f, _ in depths) or [0]
    return (sum(frames) / len(frames), frames[int(0.95 * (len(frames) - 1))], frames[-1],
            max((b for _, b in depths), default=0) / 1e6,
            stats.get("sent", 0) / max(stats.get("seconds", 1.0), 1e-3))


def raw_paho(broker: Mosquitto, payloads: list[bytes], window: int) -> float:
    done = threading.Semaphore(0)
    inflight = threading.Semaphore(window)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", clean_session=True)
    client.username_pw_set(USER, PASSWORD)
    client.max_inflight_messages_set(window)

    def on_publish(*_args) -> None:
        inflight.release()
        done.release()

    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    start = time.monotonic()
    for p in payloads:
        inflight.acquire()
        client.publish("hipstride/v1/bench/frames/emg", p, qos=1)
    for _ in payloads:
        done.acquire()
    elapsed = time.monotonic() - start
    client.disconnect()
    client.loop_stop()
    return len(payloads) / elapsed


def raw_paho_paced(broker: Mosquitto, timed_payloads: list[tuple[float, bytes]]) -> float:
    """CPU (% of one core) of bare paho publishing the same frames at the same pace."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paced", clean_session=True)
    client.username_pw_set(USER, PASSWORD)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    start, cpu = time.monotonic(), time.process_time()
    for due, payload in timed_payloads:
        delay = due - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
        client.publish("hipstride/v1/bench/frames/emg", payload, qos=1)
    wall, cpu = time.monotonic() - start, time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    return cpu / wall * 100


def frame_all(descriptions, blocks) -> list[tuple[float, bytes]]:
    """The frames the agent would send, with the time each becomes complete."""
    framers = {d.stream: Framer(d, frame_ms=50, next_seq=0, epoch=0) for d in descriptions}
    out = []
    for t, block in blocks:
        out += [(t, f.payload) for f in framers[block.stream].push(block, 10**18)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--burst-seconds", type=float, default=120.0)
    parser.add_argument("--depth-seconds", type=float, default=10.0)
    parser.add_argument("--depth-stations", default="1,10,50")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto", {USER: PASSWORD})
        broker.start()
        try:
            descriptions, blocks, sim_cpu = generate(args.burst_seconds)
            print(f"simulator alone: {sim_cpu / args.burst_seconds * 100:.2f} % of one core "
                  f"for the full sensor set in real time")
            live = [(t, b) for t, b in blocks if t < args.live_seconds]
            pipeline = StandInPipeline(broker)
            try:
                wall, cpu, agent = run_agent(broker, descriptions, live, 1.0, Path(tmp))
                agent_pct = cpu / wall * 100
                wall_off, cpu_off, _ = run_agent(broker, descriptions, live, 1.0, Path(tmp),
                                                 confirm=False)
                off_pct = cpu_off / wall_off * 100
                paced_pct = raw_paho_paced(broker, frame_all(descriptions, live))
                print(f"agent with store confirmation, live for {wall:.1f} s: "
                      f"{agent_pct:.2f} % of one core (target < 2 %); "
                      f"{sum(c.frames for c in agent.counters.values())} frames, "
                      f"{sum(agent._confirmed.values())} confirmed, "
                      f"{agent._resends} resend rounds")
                print(f"agent without (require_store_confirmation = false): {off_pct:.2f} %")
                print(f"bare paho publishing the same frames at the same pace: "
                      f"{paced_pct:.2f} % -> agent / bare paho = {agent_pct / paced_pct:.2f} "
                      f"(without confirmation {off_pct / paced_pct:.2f})")
                for n in (int(x) for x in args.depth_stations.split(",")):
                    depth_blocks = [(t, b) for t, b in blocks if t < args.depth_seconds]
                    mean, p95, peak, mb, rate = spool_depth(broker, descriptions,
                                                            depth_blocks, n, Path(tmp))
                    print(f"spool depth for confirmations, {n:>2} station(s): unconfirmed "
                          f"frames mean {mean:.0f}, p95 {p95}, max {peak} ({mb:.2f} MB) = "
                          f"{peak / 120:.1f} s of the full sensor set"
                          + (f"; the other stations' frames at {rate:,.0f}/s (real time: "
                             f"{120 * (n - 1):,}/s)" if n > 1 else ""))
                wall, cpu, agent = run_agent(broker, descriptions, blocks, 0.0, Path(tmp),
                                             station="burst")
                frames = sum(c.frames for c in agent.counters.values())
                confirmed = sum(agent._confirmed.values())
                wall_off, _, _ = run_agent(broker, descriptions, blocks, 0.0, Path(tmp),
                                           station="burst-off", confirm=False)
            finally:
                pipeline.close()
            agent_rate = frames / wall
            payloads = [payload for _, payload in frame_all(descriptions, blocks)]
            raw_rate = raw_paho(broker, payloads, window=agent.config.max_inflight)
            seconds_per_s = args.burst_seconds / wall
            print(f"agent ceiling, until the store confirmed all: {agent_rate:,.0f} frames/s = "
                  f"{seconds_per_s:.0f}x real time of the full sensor set ({frames} frames, "
                  f"{confirmed} confirmed, spool and all); until PUBACK "
                  f"(require_store_confirmation = false): {frames / wall_off:,.0f} frames/s")
            print(f"raw paho QoS 1, same payloads and window: {raw_rate:,.0f} frames/s")
            print(f"ratio agent / raw paho: {agent_rate / raw_rate:.2f}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
