"""Live page latency and cost per viewer, against the running stack in a real browser.

A real Mosquitto, the pipeline subprocess (embedded SQLite store), the simulated station
``tm1`` as a real edge agent in real time, and ``hipstride dashboard --broker``; viewers are
Playwright pages in Debian's Chromium showing the Live page of ``tm1``.

1. Latency: from a stride's ``…/live`` message (its ``time_ns``, stamped by the pipeline as it
   publishes; a witness subscriber records which strides each message carries) to that
   stride's number on the page (a 50 ms poller in each page notes when the side's
   ``data-stride`` marker changes, in the same clock), p50 / p99, with 1, 5 and 10 viewers.
2. Cost: CPU of the dashboard process (``/proc/PID/stat``) per viewer, as % of one core, next
   to the baseline measured in the same run: the same process with its live feed connected and
   no page open (idle). A viewer "falls behind" when its p99 exceeds 2 s or it shows under
   80 % of the strides a single viewer could see (each side shows its newest stride only).

Run from the repository root: ``python benchmarks/bench_dashboard.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import sync_playwright

from hipstride import topics
from tests.support.browser import launch_chromium, start_stack_dashboard
from tests.support.mosquitto import free_port
from tests.support.pipeline import USERS, stop_process
from tests.support.stack import running_stack

POLLER = """
window.__hs = [];
setInterval(() => {
  for (const el of document.querySelectorAll('.hs-side .hs-last-stride')) {
    const v = el.getAttribute('data-stride');
    if (v && !window.__hs.some(r => r.v === v)) window.__hs.push({v: v, t: Date.now()});
  }
}, 50);
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_pct(pid: int, seconds: float) -> float:
    start, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_s(pid) - start) / (time.monotonic() - t0) * 100


class Witness:
    """Records, per stride marker ("l:12"), the ``time_ns`` of the live message carrying it."""

    def __init__(self, port: int) -> None:
        self.published: dict[str, int] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-witness")
        self.client.username_pw_set("coach", USERS["coach"])
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(topics.live("tm1"), qos=0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        body = json.loads(msg.payload)
        with self._lock:
            for row in body.get("strides") or ():
                self.published.setdefault(f"{row['side']}:{row['stride_index']}",
                                          int(body["time_ns"]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def open_viewer(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.set_default_timeout(60_000)
    page.add_init_script(POLLER)
    page.goto(url)
    page.get_by_role("link", name="Live", exact=True).click()
    page.wait_for_selector(".hs-side .hs-last-stride[data-stride^='l:']")
    return page


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(pages: list, witness: Witness, pid: int, seconds: float) -> dict:
    for page in pages:
        page.evaluate("window.__hs = []")
    start_ns = time.time_ns()
    cpu = cpu_pct(pid, seconds)
    end_ns = time.time_ns()
    latencies, shown = [], []
    expected = {k for k, t in witness.published.items() if start_ns + 2e9 <= t <= end_ns - 2e9}
    for page in pages:
        seen = {r["v"]: r["t"] for r in page.evaluate("window.__hs")}
        mine = [seen[k] - witness.published[k] / 1e6 for k in expected if k in seen]
        latencies += mine
        shown.append(len(mine) / max(1, len(expected)))
    return {"cpu_pct": cpu, "latencies_ms": latencies, "shown": shown,
            "strides": len(expected)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1,5,10", help="viewer counts (default 1,5,10)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per step")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds of running before the first step")
    args = parser.parse_args()
    steps = [int(n) for n in args.viewers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, \
            running_stack(Path(tmp)) as stack:
        stack.start_edge("tm1", duration_s=3600, seed=7)
        port = free_port()
        dash = start_stack_dashboard(stack, port)
        witness = Witness(stack.broker.port)
        url = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as pw:
                # Every viewer is a visible screen: no background-tab throttling.
                browser = launch_chromium(pw, "--disable-background-timer-throttling",
                                          "--disable-renderer-backgrounding",
                                          "--disable-backgrounding-occluded-windows")
                first = open_viewer(browser, url)  # starts the dashboard's live client
                first.close()
                time.sleep(max(0.0, args.warmup - 5))
                idle = cpu_pct(dash.pid, args.seconds / 2)
                print(f"dashboard idle (live feed connected, no viewer): {idle:5.1f} % of a "
                      "core  [baseline]")
                print(f"{'viewers':>7} {'CPU %':>7} {'per viewer':>10} {'x idle':>7} "
                      f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'shown':>6}  verdict")
                pages: list = []
                for n in steps:
                    while len(pages) < n:
                        pages.append(open_viewer(browser, url))
                    time.sleep(2)
                    r = measure(pages, witness, dash.pid, args.seconds)
                    lat = r["latencies_ms"]
                    if not lat:
                        print(f"{n:>7} no stride reached the page in {args.seconds:.0f} s")
                        continue
                    p50, p99 = statistics.median(lat), pct(lat, 99)
                    worst = min(r["shown"])
                    behind = p99 > 2000 or worst < 0.8
                    per = (r["cpu_pct"] - idle) / n
                    print(f"{n:>7} {r['cpu_pct']:7.1f} {per:10.1f} "
                          f"{r['cpu_pct'] / max(idle, 0.1):7.1f} {p50:7.0f} {p99:7.0f} "
                          f"{max(lat):7.0f} {worst:6.0%}  "
                          f"{'FALLS BEHIND' if behind else 'keeps up'} "
                          f"({r['strides']} strides published)")
                browser.close()
        finally:
            witness.close()
            stop_process(dash, 15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
