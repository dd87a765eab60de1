"""The demo's components as child processes (``python -m hipstride.cli …``).

Each child gets its own process group, so the terminal's Ctrl-C reaches only the demo, which
then stops the children in an order that loses nothing (:mod:`.runner`). On Linux a child
also dies with the demo should the demo itself be killed (``PR_SET_PDEATHSIG``), so nothing
is left running. Output goes to one log file per child.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setpgrp()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One component: ``hipstride <args>`` with its output in ``log_path``."""

    def __init__(self, name: str, args: list[str], log_path: Path,
                 env: dict[str, str]) -> None:
        self.name, self.args, self.log_path, self.env = name, args, log_path, env
        self.process: subprocess.Popen | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} hipstride "
                      f"{' '.join(self.args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hipstride.cli", *self.args], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=_child_setup)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> int | None:
        """The exit code once the child has ended, else None."""
        return None if self.process is None else self.process.poll()

    def send_signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)  # the child and anything it started

    def wait(self, timeout_s: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> int | None:
        """Ask it to stop (``sig``), wait up to ``timeout_s``, then kill; the exit code."""
        self.send_signal(sig)
        code = self.wait(timeout_s)
        if code is None:
            self.send_signal(signal.SIGKILL)
            code = self.wait(5.0)
        return code

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def stop_all(children: list[Child], sig: int, timeout_s: float) -> dict[str, int | None]:
    """Signal every child at once, then wait for all within ``timeout_s`` (kill the rest)."""
    for child in children:
        child.send_signal(sig)
    end = time.monotonic() + timeout_s
    codes = {c.name: c.wait(end - time.monotonic()) for c in children}
    for child in children:
        if codes[child.name] is None:
            codes[child.name] = child.stop(signal.SIGKILL, 5.0)
    return codes
