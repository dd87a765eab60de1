"""Structured logs: ``--log-format json`` / ``HIPSTRIDE_LOG_FORMAT`` give one JSON object per
line on stderr, with the caller's ``extra`` fields; a bad format is a configuration error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SNIPPET = """
import logging
from hipstride.logs import configure
configure("INFO", "json")
log = logging.getLogger("hipstride.pipeline")
log.debug("not shown at INFO")
log.warning("frame rejected: %s", "truncated", extra={"station": "tm1", "reason": "truncated"})
try:
    1 / 0
except ZeroDivisionError:
    log.exception("store write failed")
"""


def test_json_lines_carry_level_logger_extras_and_exceptions() -> None:
    out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True,
                         timeout=60, check=True)
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert [r["message"] for r in records] == ["frame rejected: truncated",
                                               "store write failed"]
    first, second = records
    assert first["level"] == "WARNING" and first["logger"] == "hipstride.pipeline"
    assert first["station"] == "tm1" and first["reason"] == "truncated"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert "exception" not in first
    assert second["level"] == "ERROR" and "ZeroDivisionError" in second["exception"]


def test_a_bad_log_format_in_the_environment_is_a_configuration_error() -> None:
    env = {**os.environ, "HIPSTRIDE_LOG_FORMAT": "xml"}
    out = subprocess.run([sys.executable, "-m", "hipstride.cli", "tap", "--broker",
                          "mqtt://127.0.0.1:1"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 2
    assert "HIPSTRIDE_LOG_FORMAT='xml'" in out.stderr and "text or json" in out.stderr
