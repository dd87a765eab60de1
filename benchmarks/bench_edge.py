"""Edge agent cost and throughput through a real Mosquitto, next to raw paho-mqtt.

1. Simulator alone: CPU to generate the full sensor set (6 EMG x 2 kHz, 5 IMUs x 200 Hz).
2. Agent CPU per second of streamed data: pre-generated blocks fed at real time through the
   whole agent (framing, clock, health, SQLite spool, paho QoS 1), as % of one core.
3. Throughput ceiling: the same blocks fed as fast as the agent takes them, frames/s until
   the broker has acknowledged all of them — next to raw paho-mqtt publishing the same
   payloads with QoS 1 and the same inflight window to the same broker (the ceiling).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipstride.config import Section
from hipstride.edge.agent import Agent
from hipstride.edge.config import load_edge_config
from hipstride.edge.framing import Framer
from hipstride.edge.sources import make_source
from hipstride.edge.sources.base import Block, Source
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


def run_agent(broker: Mosquitto, descriptions, blocks, speed: float, workdir: Path):
    os.environ["HIPSTRIDE_BROKER_PASSWORD"] = PASSWORD
    config = load_edge_config(None, station="bench", broker=broker.url_for(USER),
                              spool=str(workdir / f"spool-{speed}.sqlite"), drain_timeout_s=120)
    agent = Agent(config, PacedSource(descriptions, blocks, speed))
    wall, cpu = time.monotonic(), time.process_time()
    agent.run()
    return time.monotonic() - wall, time.process_time() - cpu, agent


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto", {USER: PASSWORD})
        broker.start()
        try:
            descriptions, blocks, sim_cpu = generate(args.burst_seconds)
            print(f"simulator alone: {sim_cpu / args.burst_seconds * 100:.2f} % of one core "
                  f"for the full sensor set in real time")
            live = [(t, b) for t, b in blocks if t < args.live_seconds]
            wall, cpu, agent = run_agent(broker, descriptions, live, 1.0, Path(tmp))
            agent_pct = cpu / wall * 100
            paced_pct = raw_paho_paced(broker, frame_all(descriptions, live))
            print(f"agent, live for {wall:.1f} s: {agent_pct:.2f} % of one core "
                  f"(target < 2 %); {sum(c.frames for c in agent.counters.values())} frames")
            print(f"bare paho publishing the same frames at the same pace: {paced_pct:.2f} % "
                  f"-> agent / bare paho = {agent_pct / paced_pct:.2f}")
            wall, cpu, agent = run_agent(broker, descriptions, blocks, 0.0, Path(tmp))
            frames = sum(c.frames for c in agent.counters.values())
            agent_rate = frames / wall
            payloads = [payload for _, payload in frame_all(descriptions, blocks)]
            raw_rate = raw_paho(broker, payloads, window=agent.config.max_inflight)
            seconds_per_s = args.burst_seconds / wall
            print(f"agent ceiling: {agent_rate:,.0f} frames/s = {seconds_per_s:.0f}x real "
                  f"time of the full sensor set ({frames} frames, spool and all)")
            print(f"raw paho QoS 1, same payloads and window: {raw_rate:,.0f} frames/s")
            print(f"ratio agent / raw paho: {agent_rate / raw_rate:.2f}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
