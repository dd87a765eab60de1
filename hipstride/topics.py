"""MQTT topic names (contract v1). Pure string work, no networking.

Every station has one prefix, ``hipstride/v1/<station>/``, under which:

=============================  ======  ========  ==============================================
topic                          QoS     retained  payload
=============================  ======  ========  ==============================================
``frames/<stream>``            1       no        binary frame (:mod:`hipstride.frames`)
``streams/<stream>``           1       yes       stream description, JSON (:mod:`hipstride.streams`)
``status``                     1       yes       agent status JSON; the last-will says offline
``control``                    1       no        commands to the station (start/stop/mark/...)
``live``                       0       no        live metrics from the pipeline
``cues``                       1       no        cues from the pipeline
``session``                    1       yes       session state from the pipeline (command replies)
``results``                    1       yes       calibration / prone-test results from the pipeline
``ingest``                     1       yes       the pipeline's ingest health for this station:
                                                 rejected frames by reason, sequence gaps
``stored``                     1       yes       how far the store holds each stream (the
                                                 pipeline's confirmation to the edge agent)
=============================  ======  ========  ==============================================

A broker ACL can then confine a station's account to ``hipstride/v1/<station>/#``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hipstride import names

ROOT = "hipstride/v1"
STATION_ID = names.STATION.pattern  # whole ids only: use fullmatch (or check_station)

FRAMES = "frames"
STREAMS = "streams"
STATUS = "status"
CONTROL = "control"
LIVE = "live"
CUES = "cues"
SESSION = "session"
RESULTS = "results"
INGEST = "ingest"
STORED = "stored"
KINDS = (FRAMES, STREAMS, STATUS, CONTROL, LIVE, CUES, SESSION, RESULTS, INGEST, STORED)
_PER_STREAM = (FRAMES, STREAMS)


def check_station(station: str) -> str:
    """Return ``station`` if it is a valid station id, else raise ValueError saying why
    (:class:`hipstride.names.BadName`; the rule is :data:`hipstride.names.STATION`)."""
    return names.check(names.STATION, station)


def prefix(station: str) -> str:
    return f"{ROOT}/{check_station(station)}"


def frames(station: str, stream: str) -> str:
    return f"{prefix(station)}/{FRAMES}/{stream}"


def stream_description(station: str, stream: str) -> str:
    return f"{prefix(station)}/{STREAMS}/{stream}"


def status(station: str) -> str:
    return f"{prefix(station)}/{STATUS}"


def control(station: str) -> str:
    return f"{prefix(station)}/{CONTROL}"


def live(station: str) -> str:
    return f"{prefix(station)}/{LIVE}"


def cues(station: str) -> str:
    return f"{prefix(station)}/{CUES}"


def session(station: str) -> str:
    """Retained session state of a station; the pipeline's reply to each control command."""
    return f"{prefix(station)}/{SESSION}"


def results(station: str) -> str:
    """Retained result of the station's latest calibration phase or prone test."""
    return f"{prefix(station)}/{RESULTS}"


def ingest(station: str) -> str:
    """Retained ingest health of a station (rejections by reason, sequence gaps)."""
    return f"{prefix(station)}/{INGEST}"


def stored(station: str) -> str:
    """Retained store confirmation of a station: per stream, the sequence numbers the store
    holds (docs/protocol.md, "Store confirmation"); only the pipeline writes it."""
    return f"{prefix(station)}/{STORED}"


def subscription(kind: str, station: str | None = None) -> str:
    """Wildcard filter for one kind of topic, for one station or (``None``) for all."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}; expected one of {KINDS}")
    who = "+" if station is None else check_station(station)
    suffix = f"{kind}/+" if kind in _PER_STREAM else kind
    return f"{ROOT}/{who}/{suffix}"


@dataclass(frozen=True)
class ParsedTopic:
    station: str
    kind: str
    stream: str | None = None


def parse(topic: str) -> ParsedTopic:
    """Split a concrete topic into station, kind and stream; ValueError if it is not ours."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT:
        raise ValueError(f"topic {topic!r} is not under {ROOT}/")
    station, kind, rest = parts[2], parts[3], parts[4:]
    check_station(station)
    if kind in _PER_STREAM and len(rest) == 1 and rest[0]:
        return ParsedTopic(station, kind, rest[0])
    if kind in KINDS and kind not in _PER_STREAM and not rest:
        return ParsedTopic(station, kind)
    raise ValueError(f"topic {topic!r} has an unknown layout")


# --- service topics ---------------------------------------------------------------------------
#: Topics only the services use, under a root no station can own (a station id starts with a
#: letter or digit, never ``_``); the broker ACL lets only the pipeline account write here.
SERVICE_ROOT = "_hipstride/v1"


def pipeline_claim(index: int, count: int) -> str:
    """Retained claim of pipeline partition ``index``/``count``: which process runs it, its
    heartbeat, and ``released`` when it stops (also its last will). docs/deployment.md."""
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ValueError(f"partition {index}/{count}: expected 0 <= I < N")
    return f"{SERVICE_ROOT}/pipeline/{index}-of-{count}"


def pipeline_claims() -> str:
    """Filter for every partition's claim (the pipeline account's ACL)."""
    return f"{SERVICE_ROOT}/pipeline/+"
