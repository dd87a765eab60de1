"""The pipeline service as the tests run it: a restartable subprocess on a real broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.support.mosquitto import Mosquitto, free_port

#: Broker accounts of the service tests: the pipeline, two stations and a coach (sessions).
USERS = {"pipeline": "pipeline-secret", "edge-tm1": "tm1-secret", "edge-tm2": "tm2-secret",
         "coach": "coach-secret"}


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> object:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Terminate ``proc`` if it still runs; kill it if it has not ended in ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPSTRIDE_")}
    env.update(extra)
    return env



def scrape_metrics(port: int) -> dict[str, float]:
    """A pipeline's /metrics as {name with labels: value}; {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {name: float(value) for name, value in re.findall(r"^(\S+) (\S+)$", text, re.M)}

class PipelineProcess:
    """The pipeline as a subprocess, restartable on the same state directory."""

    def __init__(self, broker: Mosquitto, store: str, workdir: Path, token: str = "") -> None:
        self.broker, self.store, self.workdir = broker, store, workdir
        self.port = free_port()
        self.env = clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["pipeline"])
        if token:
            self.env["HIPSTRIDE_STORE_TOKEN"] = token
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = open(self.workdir / f"pipeline-{self.runs}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hipstride.cli", "pipeline", "--broker",
             self.broker.url_for("pipeline"), "--store", self.store, "--state-dir",
             str(self.workdir / "state"), "--recordings", str(self.workdir / "recordings"),
             "--metrics-port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: self.metric("hipstride_pipeline_mqtt_subscribed") == 1, 30,
                   "the pipeline to subscribe")

    def log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.workdir.glob("pipeline-*.log")))

    def metrics(self) -> dict[str, float]:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"pipeline exited ({self.proc.returncode}):\n{self.log()}")
        return scrape_metrics(self.port)

    def metric(self, name: str) -> float | None:
        return self.metrics().get(name)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


def hs_session(broker: Mosquitto, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hipstride.cli", "session", *args, "--station", "tm1",
         "--broker", broker.url_for("coach"), "--timeout", "10"],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["coach"]), capture_output=True,
        text=True, timeout=30)


