"""``hipstride pipeline --replay-refused``: write the batches the store refused again.

A batch lands in the state DB's ``refused`` table only when the store refused it for its
content (HTTP 400: a field type conflict, bad line protocol), never for an outage
(docs/pipeline.md, "Failure modes"). Once the cause is fixed (e.g. the conflicting
measurement dropped), this mode writes them again, oldest first, and says what it wrote and
what is still refused. Writes are idempotent, so a batch that had partly landed is simply
completed. It can run next to the pipeline: both use the state DB through SQLite's locking.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from hipstride.pipeline.store import (
    Store,
    StoreRejected,
    StoreUnavailable,
    open_store,
)

from .config import PipelineConfig
from .ingest import StateDB

__all__ = ["ReplayReport", "replay_refused", "run_replay", "state_path"]

#: A progress bar from this many batches on (on stderr, when it is a terminal).
PROGRESS_MIN = 20


@dataclass
class ReplayReport:
    """What a replay did: batches (and points) written, still refused (id, points, error),
    and, when the store became unavailable, how many were not tried."""

    written: int = 0
    written_points: int = 0
    still: list[tuple[int, int, str]] = field(default_factory=list)
    untried: int = 0
    unavailable: str | None = None

    @property
    def ok(self) -> bool:
        return not self.still and not self.untried

    def lines(self, where: Path) -> list[str]:
        total = self.written + len(self.still) + self.untried
        if not total:
            return [f"no refused batches in {where}"]
        out = [f"replayed {self.written} of {total} refused batch(es) "
               f"({self.written_points:,} points) from {where}"]
        for batch_id, n, error in self.still:
            out.append(f"still refused: batch {batch_id} ({n:,} points): {error}")
        if self.unavailable:
            out.append(f"store unavailable, {self.untried} batch(es) not tried (run again once "
                       f"it is back): {self.unavailable}")
        if self.still:
            out.append("fix the cause the store names (e.g. DROP MEASUREMENT for a field type "
                       "conflict, see docs/pipeline.md) and run --replay-refused again")
        return out


def replay_refused(store: Store, state: StateDB, *, progress: TextIO | None = None
                   ) -> ReplayReport:
    """Write every refused batch again, oldest first; forget those written, keep the others
    with the store's latest error. Stops at the first outage (nothing is lost)."""
    batches = state.refused_list()
    report = ReplayReport()
    bar = tqdm(total=len(batches), unit="batch", desc="refused batches",
               file=progress or sys.stderr, disable=len(batches) < PROGRESS_MIN or None)
    try:
        for i, (batch_id, n_points, _error) in enumerate(batches):
            try:
                store.write_points(state.refused_points(batch_id))
            except StoreRejected as err:
                state.refused_note(batch_id, str(err))
                report.still.append((batch_id, n_points, str(err)))
            except StoreUnavailable as err:
                report.unavailable = str(err)
                report.untried = len(batches) - i
                break
            else:
                state.refused_remove(batch_id)
                report.written += 1
                report.written_points += n_points
            bar.update()
    finally:
        bar.close()
    return report


def state_path(config: PipelineConfig) -> Path:
    """The partition's state DB (the same file :class:`.runtime.Pipeline` uses)."""
    part = config.partition
    return config.state_dir / f"pipeline-{part.index}-of-{part.count}.sqlite"


def run_replay(config: PipelineConfig, out: TextIO | None = None) -> int:
    """The CLI mode: 0 when every refused batch was written (or there were none), 1 when
    some are still refused or the store was unavailable. Raises ``StoreSetupError`` (exit 2)
    when the database is missing and may not be created."""
    out = out or sys.stdout
    path = state_path(config)
    if not path.exists():
        print(f"no state DB at {path} (check --state-dir and --partition): nothing refused",
              file=out)
        return 0
    state = StateDB(path)
    store = open_store(config.store_url, token_file=config.store_token_file,
                       timeout_s=config.store_timeout_s, ssl_ca_cert=config.ca_file)
    try:
        if not state.refused_depth():
            report = ReplayReport()
        else:
            with contextlib.suppress(StoreUnavailable):  # reported by the first write
                store.ensure_database(create=config.create_database)
            report = replay_refused(store, state)
    finally:
        store.close()
        state.close()
    for line in report.lines(path):
        print(line, file=out)
    return 0 if report.ok else 1
