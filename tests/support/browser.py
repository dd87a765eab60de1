"""The dashboard as the browser tests run it, and Debian's Chromium to look at it.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``; never ``playwright
install``). Screenshots go to ``artifacts/`` (ignored by git).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

from tests.support.pipeline import USERS, clean_env, stop_process
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
START_TIMEOUT_S = 40.0


def launch_chromium(pw: Playwright, *extra_args: str) -> Browser:
    """Chromium, headless; fails the test (never skips) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
    ARTIFACTS.mkdir(exist_ok=True)
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])


def start_dashboard(workdir: Path, port: int, *args: str, timeout_s: float = START_TIMEOUT_S,
                    **env: str) -> subprocess.Popen:
    """``hipstride dashboard --port PORT ARGS`` with ``env`` on top of a clean environment; the
    URL answers when it returns (fails the test with the log otherwise)."""
    log = (workdir / f"dashboard-{port}.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "dashboard", "--port", str(port), *args],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=clean_env(**env))
    deadline = time.monotonic() + timeout_s
    with log:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"dashboard exited with {proc.returncode}:\n{log.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=1) as r:
                    if r.status == 200:
                        return proc
            except OSError:
                pass
            if time.monotonic() > deadline:
                stop_process(proc)
                log.seek(0)
                pytest.fail(f"dashboard not up after {timeout_s} s:\n{log.read()}")
            time.sleep(0.2)


def start_stack_dashboard(stack: Stack, port: int, **env: str) -> subprocess.Popen:
    """``hipstride dashboard --store --broker`` on the running stack, as the coach account,
    its HOME and recordings in the stack's directory."""
    return start_dashboard(
        stack.workdir, port, "--store", stack.store_url, "--broker",
        stack.broker.url_for("coach"), HIPSTRIDE_BROKER_PASSWORD=USERS["coach"],
        HIPSTRIDE_RECORDINGS_DIR=str(stack.recordings), HOME=str(stack.workdir), **env)
