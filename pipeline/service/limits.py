"""What the pipeline accepts from a station beyond the wire format: documented bounds.

Pure checks, no I/O. The decoder (``hipstride.frames``) and the description reader
(``hipstride.streams``) bound every count, size and rate; this module adds what depends on the
pipeline: sequence numbers that fit the stores' signed 64-bit integers, timestamps in a window
around the pipeline's clock, how far a stream may jump forward before the jump is taken as a
gap (never filled in), and how many streams and stations one process keeps state for.
docs/protocol.md, "Bounds and rejections", lists them for station authors.
"""

from __future__ import annotations

from dataclasses import dataclass

from hipstride.frames import Frame

__all__ = ["MAX_SEQ", "IngestLimits", "LimitExceeded", "check_frame"]

#: Sequence numbers must be below this: SQLite's INTEGER (and InfluxDB's) is signed 64-bit,
#: and the dedup index keeps the end of a run as ``seq + 1``.
MAX_SEQ = 2**63 - 1


class LimitExceeded(Exception):
    """A bound was hit; ``reason`` is a rejection reason of :data:`.ingest.REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class IngestLimits:
    """The configurable bounds (``[limits]`` in the pipeline's TOML file)."""

    #: A frame's first sample at most this long before the pipeline's clock (s): older data
    #: (a clock set to 1970) is refused, not stored. A week: a Pi may spool through a long weekend
    #: with the server down, and its frames are still data.
    max_past_s: float = 604_800.0
    #: ... and at most this far after it (s): clocks disagree a little, not by days.
    max_future_s: float = 300.0
    #: A stream's frame starting more than this after the end of its previous one (s) is a
    #: time jump: the engine is restarted at it instead of filling the gap with samples.
    max_jump_s: float = 30.0
    #: Streams (descriptions) one station may have.
    max_streams: int = 16
    #: Stations one pipeline process keeps state for.
    max_stations: int = 500
    #: A station's recording files are closed after this long without a frame (s).
    idle_close_s: float = 60.0
    #: A stream's description may change at most once per this interval (s): each change is
    #: written to the state DB and every open recording.
    description_interval_s: float = 1.0
    #: Epochs remembered per stream for de-duplication; a new one beyond it forgets the
    #: oldest (an epoch changes only when an agent lost its spool).
    max_epochs: int = 8
    #: Messages kept in the quarantine table (oldest dropped first), and bytes per message.
    quarantine_keep: int = 200
    quarantine_bytes: int = 64 * 1024

    def problems(self) -> list[str]:
        """What is wrong with these settings (empty when usable)."""
        out = []
        for name in ("max_past_s", "max_future_s", "max_jump_s", "idle_close_s",
                     "description_interval_s"):
            if not getattr(self, name) > 0:
                out.append(f"limits.{name} must be > 0 s")
        for name in ("max_streams", "max_stations", "quarantine_keep", "quarantine_bytes",
                     "max_epochs"):
            if not getattr(self, name) >= 1:
                out.append(f"limits.{name} must be at least 1")
        return out


def check_frame(frame: Frame, now_ns: int, limits: IngestLimits) -> None:
    """Raise :class:`LimitExceeded` for a decoded frame outside the pipeline's bounds."""
    if frame.seq >= MAX_SEQ:
        raise LimitExceeded("seq_range", f"stream {frame.stream!r} frame seq {frame.seq} is "
                            f"not below 2**63 - 1 (the stores' signed 64-bit integers): count "
                            "frames from 0 per epoch")
    past_ns = round(limits.max_past_s * 1e9)
    future_ns = round(limits.max_future_s * 1e9)
    if frame.t0_ns < now_ns - past_ns or frame.t0_ns > now_ns + future_ns:
        off_s = (frame.t0_ns - now_ns) / 1e9
        raise LimitExceeded("time_window", f"stream {frame.stream!r} frame {frame.seq} is "
                            f"dated {off_s:+.0f} s from the pipeline's clock (allowed "
                            f"-{limits.max_past_s:g} s .. +{limits.max_future_s:g} s): set the "
                            "station's clock (chrony/NTP) and restart its agent")
