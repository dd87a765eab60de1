"""The edge agent's settings: defaults < TOML file < HIPSTRIDE_* environment < CLI flags.

Example ``edge.toml`` (every key optional except the station)::

    station = "treadmill-1"
    source = "sim"              # sim | replay | hardware | lsl
    frame_ms = 50
    status_interval_s = 2

    [broker]
    url = "mqtt://edge-treadmill-1@broker.local:1883"
    password_file = "/etc/hipstride/broker-password"   # or HIPSTRIDE_BROKER_PASSWORD
    ca_file = "/etc/hipstride/ca.crt"                  # for mqtts://
    keepalive_s = 15
    connect_timeout_s = 10

    [spool]
    path = "/var/lib/hipstride/spool-treadmill-1.sqlite"
    capacity_mb = 512

    [store]      # the pipeline's store confirmation (docs/protocol.md)
    require_confirmation = true   # false: a frame leaves the spool on the broker's PUBACK
    confirm_timeout_s = 30        # resend what the broker took but the store never confirmed

    [sim]        # or [replay], [hardware], [lsl]: read by that source
    profile = "healthy"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hipstride import topics
from hipstride.config import BrokerURL, ConfigError, Section, env, load_toml, read_secret
from hipstride.mqtt import TLSFiles

SOURCES = ("sim", "replay", "hardware", "lsl")
#: The default sensor set (6 EMG x 2 kHz, 5 IMUs x 200 Hz) is about 80 kB/s of frames, so
#: 512 MB holds close to two hours of broker outage.
DEFAULT_SPOOL_MB = 512.0
_TOP_KEYS = {"station", "source", "frame_ms", "status_interval_s", "broker", "spool",
             "store", *SOURCES}


def default_spool_path(station: str) -> Path:
    """systemd's StateDirectory when run as a service, else the XDG state directory."""
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state" / "hipstride"
    return root / f"spool-{station}.sqlite"


@dataclass(frozen=True)
class EdgeConfig:
    station: str
    broker: BrokerURL
    source: str = "sim"
    broker_password: str | None = field(default=None, repr=False)
    tls: TLSFiles = field(default_factory=TLSFiles)
    keepalive_s: int = 15
    connect_timeout_s: float = 10.0
    frame_ms: float = 50.0
    status_interval_s: float = 2.0
    spool_path: Path | None = None
    spool_capacity_bytes: int = int(DEFAULT_SPOOL_MB * 1e6)
    max_inflight: int = 200
    duration_s: float | None = None
    offline_ok: bool = False
    drain_timeout_s: float = 30.0
    #: Keep a frame until the pipeline's store confirmation covers it (else: until PUBACK).
    require_store_confirmation: bool = True
    #: Resend frames acknowledged by the broker but not confirmed for this long (s).
    confirm_timeout_s: float = 30.0
    #: The whole TOML document, from which the chosen source reads its own table.
    document: dict[str, Any] = field(default_factory=dict, repr=False)

    def source_section(self) -> Section:
        return Section(self.document.get(self.source), self.source)

    @property
    def spool_file(self) -> Path:
        return self.spool_path or default_spool_path(self.station)


def load_edge_config(path: str | Path | None = None, **overrides: Any) -> EdgeConfig:
    """Build the configuration; ``overrides`` are CLI flags (``None`` = not given)."""
    document = load_toml(path) if path else {}
    top = Section(document, "")
    top.unknown_keys(_TOP_KEYS)
    broker_t = top.table("broker")
    broker_t.unknown_keys({"url", "password_file", "ca_file", "cert_file", "key_file",
                           "tls_insecure", "keepalive_s", "connect_timeout_s", "max_inflight"})
    spool_t = top.table("spool")
    spool_t.unknown_keys({"path", "capacity_mb"})
    store_t = top.table("store")
    store_t.unknown_keys({"require_confirmation", "confirm_timeout_s"})

    def pick(key: str, env_name: str | None, from_file: Any) -> Any:
        if overrides.get(key) is not None:
            return overrides[key]
        from_env = env(env_name) if env_name else None
        return from_env if from_env is not None else from_file

    station = pick("station", "STATION", top.string("station"))
    if not station:
        raise ConfigError("station: no station id given; pass --station ID, set "
                          "HIPSTRIDE_STATION or put station = \"...\" in the config file")
    try:
        topics.check_station(station)
    except ValueError as err:
        raise ConfigError(f"station: {err}") from None

    url = pick("broker", "BROKER", broker_t.string("url", "mqtt://localhost:1883"))
    broker = BrokerURL.parse(url)
    password = read_secret("BROKER_PASSWORD", broker_t.string("password_file"), "[broker]")

    source = pick("source", "SOURCE", top.string("source", "sim"))
    if source not in SOURCES:
        raise ConfigError(f"source: expected one of {', '.join(SOURCES)}, got {source!r}")

    spool_path = pick("spool", "SPOOL", spool_t.string("path"))
    frame_ms = top.number("frame_ms", 50.0, minimum=5, maximum=1000)
    config = EdgeConfig(
        station=station,
        broker=broker,
        source=source,
        broker_password=password,
        tls=TLSFiles(broker_t.string("ca_file"), broker_t.string("cert_file"),
                     broker_t.string("key_file"), bool(broker_t.boolean("tls_insecure", False))),
        keepalive_s=int(broker_t.number("keepalive_s", 15, minimum=5, maximum=600,
                                        integer=True)),
        connect_timeout_s=broker_t.number("connect_timeout_s", 10.0, minimum=0.5),
        max_inflight=int(broker_t.number("max_inflight", 200, minimum=1, maximum=500,
                                         integer=True)),
        frame_ms=frame_ms,
        status_interval_s=top.number("status_interval_s", 2.0, minimum=0.2, maximum=60),
        spool_path=Path(spool_path) if spool_path else None,
        spool_capacity_bytes=int(spool_t.number("capacity_mb", DEFAULT_SPOOL_MB, minimum=1)
                                 * 1e6),
        require_store_confirmation=bool(store_t.boolean("require_confirmation", True)),
        confirm_timeout_s=store_t.number("confirm_timeout_s", 30.0, minimum=1, maximum=3600),
        document=document,
    )
    extra = {k: overrides[k] for k in ("duration_s", "offline_ok", "drain_timeout_s")
             if overrides.get(k) is not None}
    if extra.get("duration_s") is not None and extra["duration_s"] <= 0:
        raise ConfigError(f"--duration: expected a positive number of seconds, got "
                          f"{extra['duration_s']}")
    return replace(config, **extra)
