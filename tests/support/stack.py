"""The running stack the dashboard tests talk to: a real Mosquitto, the pipeline subprocess
writing a SQLite store, and (when a test asks) the simulated station as an edge subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS, PipelineProcess, clean_env, stop_process


@dataclass
class Stack:
    broker: Mosquitto
    pipeline: PipelineProcess
    db: Path
    workdir: Path
    edges: list[subprocess.Popen] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def recordings(self) -> Path:
        return self.workdir / "recordings"

    def dashboard_env(self) -> dict[str, str]:
        """What ``hipstride dashboard`` needs to reach the broker and the store (as coach)."""
        return {"HIPSTRIDE_BROKER": self.broker.url_for("coach"),
                "HIPSTRIDE_BROKER_PASSWORD": USERS["coach"],
                "HIPSTRIDE_STORE": self.store_url,
                "HIPSTRIDE_RECORDINGS_DIR": str(self.recordings)}

    def start_edge(self, station: str = "tm1", *, duration_s: float = 600, seed: int = 3,
                   extra: tuple[str, ...] = ()) -> subprocess.Popen:
        user = f"edge-{station}"
        log = open(self.workdir / f"edge-{station}-{len(self.edges)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hipstride.cli", "edge", "--station", station, "--broker",
             self.broker.url_for(user), "--source", "sim", "--duration", str(duration_s),
             "--seed", str(seed), "--spool", str(self.workdir / f"edge-{station}.sqlite"),
             *extra],
            env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS[user]), stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        self.edges.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.edges:
            stop_process(proc)
        self.pipeline.stop()
        self.broker.stop()


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Broker and pipeline up (the pipeline subscribed); everything stopped afterwards."""
    broker = Mosquitto(workdir / "mosquitto", USERS)
    broker.start()
    db = workdir / "store.sqlite"
    pipeline = PipelineProcess(broker, f"sqlite:///{db}", workdir)
    stack = Stack(broker, pipeline, db, workdir)
    try:
        pipeline.start()
        yield stack
    finally:
        stack.close()
