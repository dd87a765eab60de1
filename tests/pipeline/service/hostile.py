"""What a hostile or buggy station sends, and a real :class:`Pipeline` to send it to without a
broker: the pipeline's own message handler (``_handle``), a real SQLite store and state DB in a
temp dir; only paho's client is replaced by :class:`Wire`, which records what the pipeline
publishes and acknowledges (the broker tests use the real one)."""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hipstride.config import BrokerURL
from hipstride.frames import HEADER, encode_frame
from hipstride.pipeline.service.config import PipelineConfig
from hipstride.pipeline.service.limits import IngestLimits
from hipstride.pipeline.service.runtime import Pipeline, _Message
from hipstride.streams import emg_description, imu_description

EMG = emg_description()


@dataclass
class Wire:
    """Stands in for paho's client: what the pipeline acknowledged and published."""

    acks: list[int] = field(default_factory=list)
    published: list[tuple[str, Any, int, bool]] = field(default_factory=list)

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append(mid)

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload, qos, retain))

    def disconnect(self) -> None:
        pass

    def loop_stop(self) -> None:
        pass

    def last(self, topic: str) -> dict[str, Any] | None:
        for t, payload, _q, _r in reversed(self.published):
            if t == topic:
                return json.loads(payload)
        return None


class Harness:
    """A real pipeline fed messages one by one through its handler."""

    def __init__(self, tmp: Path, limits: IngestLimits | None = None) -> None:
        config = PipelineConfig(broker=BrokerURL.parse("mqtt://127.0.0.1:1"),
                                store_url=f"sqlite:///{tmp / 'store.db'}",
                                state_dir=tmp / "state", recordings_dir=tmp / "recordings",
                                limits=limits or IngestLimits())
        self.pipeline = Pipeline(config)
        self.wire = Wire()
        self.pipeline.client = self.wire  # type: ignore[assignment]
        self.pipeline.connection.client = self.wire  # type: ignore[assignment]
        self.mid = 0
        self.sent: list[int] = []

    def send(self, topic: str, payload: bytes | str) -> int:
        self.mid += 1
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self.pipeline._handle(_Message(0, topic, data, self.mid, 1, time.time_ns()))
        self.sent.append(self.mid)
        return self.mid

    def flush(self) -> None:
        """Hand the open batch to the writer and wait: every message is acknowledged now."""
        p = self.pipeline
        p._wait_written()
        p._flush()
        p._wait_written()

    def rejected(self, station: str) -> dict[str, int]:
        return self.pipeline.rejected.for_station(station)

    def close(self) -> None:
        p = self.pipeline
        p.writer.close()
        p._shutdown()


# --- what stations send -----------------------------------------------------------------------
def now_ns() -> int:
    return time.time_ns()


def emg_frame(seq: int, t0_ns: int, *, stream: str = "emg", rate: float = 2000.0,
              channels: int = 6, epoch: int = 1, n: int = 100) -> bytes:
    rng = np.random.default_rng(seq % 1000)
    return encode_frame(stream, seq, t0_ns, rate,
                        (rng.standard_normal((n, channels)) * 0.05).astype(np.float32),
                        epoch=epoch)


def reheader(frame: bytes, **fields: Any) -> bytes:
    """The frame with header fields replaced (any u64/i64/f64 value) and a valid CRC."""
    names = ("magic", "version", "dtype", "flags", "name_len", "n_channels", "epoch", "seq",
             "t0_ns", "rate_hz", "n_samples")
    values = dict(zip(names, HEADER.unpack_from(frame), strict=True))
    values.update(fields)
    body = HEADER.pack(*(values[n] for n in names)) + frame[HEADER.size:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def description(**changes: Any) -> bytes:
    body = json.loads(EMG.to_json())
    body.update(changes)
    return json.dumps(body).encode()


def poison(station: str, base_ns: int) -> list[tuple[str, bytes]]:
    """Every poison of the issue, as (topic, payload) on the station's own prefix."""
    p = f"hipstride/v1/{station}"
    good = emg_frame(0, base_ns)
    many = {**json.loads(EMG.to_json()),
            "channels": [{"name": f"c{i}", "unit": "mV"} for i in range(20_000)]}
    day = 86_400 * 10**9
    out = [
        (f"{p}/streams/emg", EMG.to_json()),
        (f"{p}/frames/emg", reheader(good, seq=2**63)),
        (f"{p}/frames/emg", reheader(good, seq=2**64 - 1)),
        (f"{p}/streams/emg", description(rate_hz=1e-300)),
        (f"{p}/streams/emg", description(rate_hz=True)),
        (f"{p}/streams/emg", b'{"version": 1, "stream": "emg", "rate_hz": NaN}'),
        (f"{p}/streams/emg", description(rate_hz=float("inf"))),
        (f"{p}/streams/emg", json.dumps(many).encode()),
        (f"{p}/frames/emg", reheader(good, rate_hz=1e-300)),
        (f"{p}/frames/emg", emg_frame(1, 0)),  # 1970
        (f"{p}/frames/emg", emg_frame(2, -(2**63))),  # 1677
        (f"{p}/frames/emg", emg_frame(3, 2**63 - 10**12)),  # 2262
        (f"{p}/frames/emg", emg_frame(4, base_ns - day + 60 * 10**9)),  # a day back
        (f"{p}/frames/emg", emg_frame(5, base_ns - 2 * 3600 * 10**9)),  # a 22 h jump
        (f"{p}/frames/emg", emg_frame(6, base_ns)),  # a 2 h jump
        (f"{p}/frames/emg", emg_frame(7, base_ns + day)),  # + 1 day: in the future
        (f"{p}/frames/emg", b"garbage"),
        (f"{p}/frames/emg", b""),
        (f"{p}/streams/emg", b"\xff\xfe not json"),
        (f"{p}/control", b'{"version": 1, "command": "start", "athlete": "a\\nb"}'),
        (f"{p}/control", b"\x00" * 100),
    ]
    imu = json.loads(imu_description("pelvis").to_json())
    for i in range(40):
        out.append((f"{p}/streams/s{i:04d}", json.dumps({**imu, "stream": f"s{i:04d}"})
                    .encode()))
    return out
