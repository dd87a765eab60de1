"""The pipeline service's settings: defaults < TOML file < HIPSTRIDE_* environment < CLI flags.

Example ``pipeline.toml`` (every key optional)::

    state_dir = "/var/lib/hipstride/pipeline"       # dedup index, descriptions, store spool
    recordings_dir = "/var/lib/hipstride/recordings"
    partition = "0/1"                                # I/N: this process's share of stations

    [broker]
    url = "mqtts://pipeline@broker.local:8883"
    password_file = "/etc/hipstride/pipeline-password"   # or HIPSTRIDE_BROKER_PASSWORD
    ca_file = "/etc/hipstride/ca.crt"
    keepalive_s = 15

    [store]
    url = "influx://hipstride@db.local:8086/hipstride"
    token_file = "/etc/hipstride/influx-token"           # or HIPSTRIDE_STORE_TOKEN
    timeout_s = 5
    create_database = true   # a missing 1.x database is created (admin account); false: exit 2

    [batch]
    interval_ms = 100        # store writes (and MQTT acks) at most this far apart
    max_frames = 2000        # ... or as soon as this many frames are waiting
    spool_retry_s = 1        # first retry of a down store; doubles up to 30 s

    [metrics]
    port = 9464              # Prometheus text on http://127.0.0.1:PORT/metrics; 0 = off

    [limits]                 # bounds on what stations send (docs/protocol.md)
    max_past_s = 604800      # frames dated earlier than the clock minus this are refused
    max_future_s = 300       # ... or later than the clock plus this
    max_jump_s = 30          # a stream jumping further ahead restarts the engine (a gap)
    max_streams = 16         # per station
    max_stations = 500       # per process
    idle_close_s = 60        # a station's recordings are closed after this long idle
    description_interval_s = 1   # a stream's description changes at most this often
    max_epochs = 8           # epochs remembered per stream for de-duplication
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hipstride.config import BrokerURL, ConfigError, Section, env, load_toml, read_secret

from .limits import IngestLimits

__all__ = ["Partition", "PipelineConfig", "check_directories", "default_state_dir",
           "load_pipeline_config"]

_TOP_KEYS = {"state_dir", "recordings_dir", "partition", "broker", "store", "batch",
             "metrics", "log_interval_s", "limits"}
_LIMIT_KEYS = {"max_past_s", "max_future_s", "max_jump_s", "max_streams", "max_stations",
               "idle_close_s", "quarantine_keep", "quarantine_bytes", "description_interval_s",
               "max_epochs"}


def default_state_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the XDG state directory."""
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state" / "hipstride"
    return root / "pipeline"


@dataclass(frozen=True)
class Partition:
    """Share ``index`` (0-based) of ``count``: the stations whose stable hash falls in it.

    ``N`` processes started with ``0/N`` … ``N-1/N`` split the stations between them, each
    station wholly in one process; the hash (BLAKE2b of the station id) is the same on every
    machine and Python version, so a station stays where it is across restarts.
    """

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Partition:
        hint = "expected I/N with 0 <= I < N, e.g. 0/2 and 1/2 for two processes"
        try:
            i, n = (int(part) for part in str(text).split("/"))
        except ValueError:
            raise ConfigError(f"partition {text!r}: {hint}") from None
        if not (n >= 1 and 0 <= i < n):
            raise ConfigError(f"partition {text!r}: {hint}")
        return cls(i, n)

    def owns(self, station: str) -> bool:
        return station_bucket(station, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def station_bucket(station: str, count: int) -> int:
    """The partition (0..count-1) a station belongs to; stable everywhere."""
    digest = hashlib.blake2b(station.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True)
class PipelineConfig:
    broker: BrokerURL
    store_url: str
    broker_password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 15
    connect_timeout_s: float = 10.0
    store_token_file: str | None = None
    store_timeout_s: float = 5.0
    create_database: bool = True
    partition: Partition = field(default_factory=Partition)
    state_dir: Path = field(default_factory=default_state_dir)
    recordings_dir: Path | None = None
    batch_interval_s: float = 0.1
    batch_max_frames: int = 2000
    spool_retry_s: float = 1.0
    metrics_port: int = 0
    log_interval_s: float = 10.0
    duration_s: float | None = None
    limits: IngestLimits = field(default_factory=IngestLimits)

    @property
    def client_id(self) -> str:
        """Fixed per partition: the broker keeps this process's queue across restarts."""
        return f"hipstride-pipeline-{self.partition.index}-of-{self.partition.count}"

    @property
    def recordings(self) -> Path:
        return self.recordings_dir or self.state_dir / "recordings"


def load_pipeline_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """Build the configuration; ``overrides`` are CLI flags (``None`` = not given)."""
    document = load_toml(path) if path else {}
    top = Section(document, "")
    top.unknown_keys(_TOP_KEYS)
    broker_t = top.table("broker")
    broker_t.unknown_keys({"url", "password_file", "ca_file", "cert_file", "key_file",
                           "tls_insecure", "keepalive_s", "connect_timeout_s"})
    store_t = top.table("store")
    store_t.unknown_keys({"url", "token_file", "timeout_s", "create_database"})
    batch_t = top.table("batch")
    batch_t.unknown_keys({"interval_ms", "max_frames", "spool_retry_s"})
    metrics_t = top.table("metrics")
    metrics_t.unknown_keys({"port"})
    limits_t = top.table("limits")
    limits_t.unknown_keys(_LIMIT_KEYS)
    limits = _limits(limits_t)

    def pick(key: str, env_name: str | None, from_file: Any) -> Any:
        if overrides.get(key) is not None:
            return overrides[key]
        from_env = env(env_name) if env_name else None
        return from_env if from_env is not None else from_file

    broker = BrokerURL.parse(pick("broker", "BROKER",
                                  broker_t.string("url", "mqtt://localhost:1883")))
    password = read_secret("BROKER_PASSWORD", broker_t.string("password_file"), "[broker]")
    store_url = pick("store", "STORE", store_t.string("url"))
    if not store_url:
        raise ConfigError("store: no store given; pass --store sqlite:///PATH or "
                          "--store influx://USER@HOST:PORT/DATABASE, set HIPSTRIDE_STORE or "
                          "[store] url")
    from hipstride.pipeline.store.url import StoreURL

    token_file = store_t.string("token_file")
    StoreURL.parse(store_url, token_file=token_file)  # fail early, with the store's message
    partition = Partition.parse(pick("partition", "PARTITION", top.string("partition", "0/1")))
    state_dir = pick("state_dir", "STATE_DIR", top.string("state_dir"))
    recordings = pick("recordings_dir", "RECORDINGS_DIR", top.string("recordings_dir"))
    metrics_port = pick("metrics_port", "METRICS_PORT", metrics_t.number(
        "port", 0, minimum=0, maximum=65535, integer=True))
    try:
        metrics_port = int(metrics_port)
    except ValueError:
        raise ConfigError(f"metrics port: expected 0..65535, got {metrics_port!r}") from None
    if not 0 <= metrics_port <= 65535:
        raise ConfigError(f"metrics port: expected 0..65535, got {metrics_port}")
    config = PipelineConfig(
        broker=broker,
        broker_password=password,
        ca_file=broker_t.string("ca_file"),
        cert_file=broker_t.string("cert_file"),
        key_file=broker_t.string("key_file"),
        tls_insecure=bool(broker_t.boolean("tls_insecure", False)),
        keepalive_s=int(broker_t.number("keepalive_s", 15, minimum=5, maximum=600,
                                        integer=True)),
        connect_timeout_s=broker_t.number("connect_timeout_s", 10.0, minimum=0.5),
        store_url=store_url,
        store_token_file=token_file,
        store_timeout_s=store_t.number("timeout_s", 5.0, minimum=0.1, maximum=120),
        create_database=bool(pick("create_database", None,
                                  store_t.boolean("create_database", True))),
        partition=partition,
        state_dir=Path(state_dir) if state_dir else default_state_dir(),
        recordings_dir=Path(recordings) if recordings else None,
        batch_interval_s=batch_t.number("interval_ms", 100, minimum=5, maximum=5000) / 1000,
        batch_max_frames=int(batch_t.number("max_frames", 2000, minimum=1, integer=True)),
        spool_retry_s=batch_t.number("spool_retry_s", 1.0, minimum=0.05, maximum=60),
        metrics_port=metrics_port,
        log_interval_s=top.number("log_interval_s", 10.0, minimum=0.1),
        limits=limits,
    )
    duration = overrides.get("duration_s")
    if duration is not None:
        if duration <= 0:
            raise ConfigError(f"--duration: expected a positive number of seconds, got "
                              f"{duration}")
        config = replace(config, duration_s=float(duration))
    return config


def _limits(section: Section) -> IngestLimits:
    """``[limits]``: each key a positive number (counts whole), default as in IngestLimits."""
    defaults = IngestLimits()
    values: dict[str, Any] = {}
    for key in sorted(_LIMIT_KEYS):
        default = getattr(defaults, key)
        whole = isinstance(default, int)
        value = section.number(key, default, minimum=1 if whole else 0.001, integer=whole)
        values[key] = int(value) if whole else float(value)
    return IngestLimits(**values)


def check_directories(config: PipelineConfig) -> None:
    """At start-up: the state and recordings directories exist (created if missing) and are
    writable. Raise :class:`ConfigError` naming the setting and the path otherwise (the CLI
    exits 2), so a bad mount shows at once rather than at the first frame."""
    dirs = [("state_dir", "HIPSTRIDE_STATE_DIR", "--state-dir", config.state_dir)]
    if config.recordings_dir is None:
        dirs.append(("recordings_dir", "HIPSTRIDE_RECORDINGS_DIR", "--recordings",
                     config.recordings))
    else:
        dirs.append(("recordings_dir", "HIPSTRIDE_RECORDINGS_DIR", "--recordings",
                     config.recordings_dir))
    for key, env_name, flag, path in dirs:
        where = f"{key} ({flag}, {env_name} or {key} in the TOML file) = {str(path)!r}"
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():
                raise NotADirectoryError(f"{path} is not a directory")
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
                pass
        except OSError as err:
            what = err.strerror or str(err)
            raise ConfigError(f"{where}: cannot use it as a directory ({what}): make it a "
                              "writable directory for the pipeline's user, or choose "
                              "another path") from None
