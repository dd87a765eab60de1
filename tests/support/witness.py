"""An independent MQTT subscriber that records every frame it receives, for assertions."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipstride import topics
from hipstride.frames import decode_frame


@dataclass(frozen=True)
class Seen:
    seq: int
    epoch: int
    t0_ns: int
    n_samples: int
    n_channels: int
    rate_hz: float


class Witness:
    """Persistent-session QoS 1 subscriber (it keeps its queue across broker restarts)."""

    def __init__(self, port: int, user: str, password: str, station: str) -> None:
        self.frames: dict[str, list[Seen]] = defaultdict(list)
        self.retained: dict[str, bytes] = {}
        self.descriptions: dict[str, dict] = {}
        self.status: list[dict] = []
        self._lock = threading.RLock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"witness-{station}",
                                  clean_session=False)
        self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"{topics.prefix(station)}/#", qos=1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, msg) -> None:
        parsed = topics.parse(msg.topic)
        with self._lock:
            if parsed.kind == topics.FRAMES:
                f = decode_frame(msg.payload)
                self.frames[parsed.stream].append(
                    Seen(f.seq, f.epoch, f.t0_ns, f.n_samples, f.n_channels, f.rate_hz))
            elif parsed.kind == topics.STREAMS:
                self.descriptions[parsed.stream] = json.loads(msg.payload)
            elif parsed.kind == topics.STATUS:
                self.status.append(json.loads(msg.payload))
            if msg.retain:
                self.retained[msg.topic] = msg.payload

    def samples(self, stream: str) -> int:
        """Samples in distinct frames (duplicates counted once)."""
        with self._lock:
            return sum({(s.epoch, s.seq): s.n_samples for s in self.frames[stream]}.values())

    def wait_for(self, predicate, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                if predicate(self):
                    return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
