"""The one interface every sample source implements.

A source knows its streams up front (:attr:`Source.descriptions`) and hands out contiguous
blocks of samples per stream from :meth:`Source.read`. Timestamps normally come from the
agent's sample clock (t0 + i / fs, re-anchored to the wall clock); a source that owns a clock
of its own (a replayed file, an LSL outlet) sets ``first_timestamp_ns`` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from hipstride.streams import StreamDescription


class SourceError(RuntimeError):
    """A source that cannot start or goes on no longer; the message says what to check."""


@dataclass(frozen=True, eq=False)
class Block:
    """Consecutive samples of one stream, shape (n_samples, n_channels), in the stream's dtype.

    ``dropped_before`` counts samples the source knows it lost just before this block (a FIFO
    overflow, a missed data-ready): the agent reports them and keeps the sample clock honest.
    """

    stream: str
    samples: np.ndarray
    first_timestamp_ns: int | None = None
    dropped_before: int = 0


class Source(ABC):
    #: Stream descriptions, one per stream this source produces; fixed once started.
    descriptions: tuple[StreamDescription, ...]
    #: True when the source paces itself at the real sample rate (hardware, live simulator),
    #: so its sample clock can be compared with the wall clock.
    realtime: bool = True
    #: Problems the source itself has noticed (a device that stopped answering, a corrupt
    #: recording), in words for the user; the agent publishes them in the station status.
    problems: list[str] = []  # noqa: RUF012 - read-only default, sources assign their own

    @abstractmethod
    def read(self, timeout_s: float) -> list[Block]:
        """Return the blocks that are ready, waiting at most ``timeout_s`` for the first.

        Returns an empty list on timeout. A finite source that has delivered everything sets
        :attr:`finished` and returns []. Raises :class:`SourceError` when it cannot go on.
        """

    @property
    def finished(self) -> bool:
        """True once a finite source (a replay, a --duration run) has delivered everything."""
        return False

    def control(self, command: dict) -> None:  # noqa: B027 - optional hook
        """React to a station control command (e.g. the simulator switching profile)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release hardware and threads. Safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
