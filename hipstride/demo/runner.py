"""The demo's orchestration: start everything in order, then stop it in an order that loses
nothing.

Start: broker (in this process) → pipeline → edge agents (simulator, endless) → a session per
station (the control topic, as ``hipstride session start``) → dashboard → browser → MVC trials
on every station whose athlete has no stored MVC reference (:mod:`.calibrate`, the stations in
parallel, while the browser shows them), after a short warm-up run that puts per-stride
numbers on the Live page first.
Stop (Ctrl-C, SIGTERM, or a component that died): close the sessions and wait for the
pipeline's replies → SIGINT the agents (they send what their spools still hold) → SIGINT the
pipeline (it flushes its batch and closes the recordings) → stop the dashboard → the broker.
A second Ctrl-C hurries every wait.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any

from . import PROFILES, STATION_NAMES
from .broker import BrokerStartError, EmbeddedBroker, free_port, port_in_use
from .calibrate import TRIAL_S, calibrate_station, plan
from .children import Child, stop_all

EXIT_OK, EXIT_RUNTIME = 0, 1
REPLY_JOIN_S = 12.0  # a calibration thread in the middle of a command finishes within this
#: First run: the runners run before their MVC trials until the engine has learnt their
#: stride (its live ``phase`` is ``running``) and a few strides are out — so the Live page
#: shows per-stride numbers (relative until the MVC references exist) within seconds — but
#: never longer than WARMUP_MAX_S (docs/demo.md, "The first minute").
WARMUP_STRIDES_S = 6.0
WARMUP_MAX_S = 30.0
ATHLETES = {"healthy": "demo-healthy-runner", "hamstring_dominant": "demo-hamstring-runner",
            "limited_extension": "demo-limited-runner", "asymmetry": "demo-asymmetry-runner"}


_SAY_LOCK = threading.Lock()


def say(what: str, end: str = "\n") -> None:
    with _SAY_LOCK:  # whole lines, also from the calibration threads
        print(what, end=end, file=sys.stderr, flush=True)


class DemoError(RuntimeError):
    """Something the user can fix; the message says what."""


class Demo:
    def __init__(self, *, data_dir: Path, dashboard_port: int, mqtt_port: int | None,
                 n_stations: int, open_browser: bool) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.dashboard_port = dashboard_port
        self.mqtt_port = mqtt_port
        self.profiles = PROFILES[:n_stations]
        self.stations = [STATION_NAMES[p] for p in self.profiles]
        self.open_browser = open_browser
        self.store_url = f"sqlite:///{self.data_dir / 'hipstride.sqlite'}"
        self.broker: EmbeddedBroker | None = None
        self.pipeline: Child | None = None
        self.agents: list[Child] = []
        self.dashboard: Child | None = None
        self.control: Any = None
        self.start_replies: dict[str, dict[str, Any] | None] = {}
        self.stopping = threading.Event()
        self.hurry = threading.Event()
        self._lock_file: Any = None

    # --- the whole run ------------------------------------------------------------------
    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        code = EXIT_OK
        try:
            self._start()
            code = self._watch()
        except DemoError as err:
            say(f"hipstride demo: {err}")
            code = EXIT_RUNTIME
        finally:
            self._stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping.is_set():
            self.hurry.set()
        else:
            say(f"\n{signal.Signals(signum).name}: stopping (again to hurry)")
            self.stopping.set()

    # --- start --------------------------------------------------------------------------
    def _start(self) -> None:
        self._lock_data_dir()
        if port_in_use(self.dashboard_port):
            raise DemoError(f"port {self.dashboard_port} is in use (another dashboard or demo?):"
                            f" pick another with --port, e.g. --port {self.dashboard_port + 1}")
        say(f"data        {self.data_dir}")
        port = self.mqtt_port or free_port()
        say(f"broker      mqtt://127.0.0.1:{port} … ", end="")
        try:
            self.broker = EmbeddedBroker(port).start()
        except BrokerStartError as err:
            say("failed")
            raise DemoError(str(err)) from None
        say("ok")
        self._write_password()
        env = self._child_env()
        url = self.broker.url
        say("pipeline    … ", end="")
        self.pipeline = Child("pipeline", [
            "--log-level", "WARNING", "pipeline", "--broker", url, "--store", self.store_url,
            "--state-dir", str(self.data_dir / "pipeline"),
            "--recordings", str(self.data_dir / "recordings")],
            self.data_dir / "logs" / "pipeline.log", env).start()
        self._connect_control()
        self._wait_for_pipeline()
        say("ok")
        for i, (station, profile) in enumerate(zip(self.stations, self.profiles, strict=True)):
            say(f"station     {station} ({profile}) … ", end="")
            self.agents.append(Child(station, [
                "--log-level", "INFO", "edge", "--station", station, "--broker", url,
                "--source", "sim", "--profile", profile, "--seed", str(i + 1),
                "--duration", "0", "--spool", str(self.data_dir / f"spool-{station}.sqlite")],
                self.data_dir / "logs" / f"{station}.log", env).start())
            self._check_alive()
            say("ok")
        for station, profile in zip(self.stations, self.profiles, strict=True):
            say(f"session     {station} … ", end="")
            say(self._start_session(station, ATHLETES[profile]))
        home = f"http://127.0.0.1:{self.dashboard_port}/"
        say(f"dashboard   {home} … ", end="")
        self.dashboard = Child("dashboard", [
            "dashboard", "--store", self.store_url, "--broker", url,
            "--port", str(self.dashboard_port)],
            self.data_dir / "logs" / "dashboard.log", env).start()
        self._wait_for_dashboard()
        say("ok")
        if self.open_browser and not self.stopping.is_set():
            webbrowser.open(home)  # the Live page is the dashboard's default page
        self._calibrate()
        if not self.stopping.is_set():
            say(f"\nHipStride demo running: {home}  (Ctrl-C to stop)")

    def _lock_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.data_dir / "demo.lock", "w")  # noqa: SIM115 - held all run
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DemoError(f"another demo is running on {self.data_dir}: stop it first, or "
                            "give this one another --data-dir") from None

    def _write_password(self) -> None:
        """The broker's password for this run, readable by this user only, so that
        ``hipstride tap`` or ``hipstride session`` can join (docs/demo.md)."""
        path = self.data_dir / "broker-password"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.broker.password + "\n")

    def _child_env(self) -> dict[str, str]:
        """The environment without any HIPSTRIDE_* setting of the user's (the demo's flags
        decide), plus the broker's password, which never goes on a command line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HIPSTRIDE_")}
        env["HIPSTRIDE_BROKER_PASSWORD"] = self.broker.password
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _connect_control(self) -> None:
        from hipstride.control import ControlClient

        self.control = ControlClient(self.broker.url, password=self.broker.password,
                                     name="demo", stations=self.stations,
                                     kinds=("session", "results", "streams")
                                     ).open(timeout_s=10.0)

    def _wait_for_pipeline(self, timeout_s: float = 60.0) -> None:
        """The pipeline is ready when it answers a command; ``stop`` on an idle station is a
        harmless question (refused with ``no_session``), and closes a session a killed demo
        left open."""
        from hipstride.control import build_command

        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.stopping.is_set():
            self._check_alive()
            reply = self.control.send(self.stations[0], build_command("stop"), timeout_s=1.0)
            if reply is not None:
                for station in self.stations[1:]:
                    self.control.send(station, build_command("stop"), timeout_s=5.0)
                return
        if not self.stopping.is_set():
            raise DemoError(f"the pipeline did not answer within {timeout_s:g} s; see "
                            f"{self.pipeline.log_path}")

    def _start_session(self, station: str, athlete: str) -> str:
        from hipstride.control import build_command

        reply = self.control.send(station, build_command("start", athlete=athlete,
                                                         label="demo run"), timeout_s=10.0)
        self.start_replies[station] = reply
        if reply is None:
            return "no reply from the pipeline (the data is kept as 'unassigned')"
        result = reply.get("result") or {}
        if not result.get("ok"):
            return f"refused: {result.get('message') or result.get('reason')}"
        return f"{reply.get('session')} ok"

    def _calibrate(self, channels_timeout_s: float = 15.0) -> None:
        """MVC trials on every station with a running session whose athlete has no stored
        MVC reference, the stations in parallel (docs/demo.md, "Calibration")."""
        started = [s for s, r in self.start_replies.items()
                   if ((r or {}).get("result") or {}).get("ok")]
        end = time.monotonic() + channels_timeout_s
        while (not self.stopping.is_set() and time.monotonic() < end
               and not all(self.control.emg_channels(s) for s in started)):
            self._check_alive()
            self.stopping.wait(0.2)
        threads: list[threading.Thread] = []
        warm: list[str] = []
        for station in started:
            channels = self.control.emg_channels(station)
            if not channels:
                say(f"calibrate   {station} … skipped: the station described no EMG channels "
                    f"within {channels_timeout_s:g} s (EMG ratios stay relative)")
                continue
            todo = plan(self.start_replies[station], channels).channels
            if todo:
                say(f"calibrate   {station} … no MVC reference yet: {len(todo)} maximal "
                    f"contractions, about {len(todo) * (TRIAL_S + 2):.0f} s, after a short "
                    "warm-up run")
                warm.append(station)
            threads.append(threading.Thread(
                target=self._calibrate_station, args=(station, channels), daemon=True,
                name=f"calibrate-{station}"))
        if warm:
            self._warm_up(warm)
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads) and not self.stopping.is_set():
            for t in threads:
                t.join(0.5)
            try:
                self._check_alive()
            except DemoError:
                self.stopping.set()  # the threads stop; the watch reports the child
                break
        for thread in threads:
            thread.join(REPLY_JOIN_S)

    def _warm_up(self, stations: list[str], strides_s: float = WARMUP_STRIDES_S,
                 max_s: float = WARMUP_MAX_S) -> None:
        """Let ``stations``' runners run until each engine has been ``running`` for
        ``strides_s`` (strides on the Live page), at most ``max_s``: a temporary client of
        the live topic, closed before the trials."""
        from hipstride.control import ControlClient
        from hipstride.mqtt import BrokerError

        end = time.monotonic() + max_s
        running: dict[str, float] = {}
        try:
            watch = ControlClient(self.broker.url, password=self.broker.password,
                                  name="demo-warmup", stations=stations, kinds=("live",)
                                  ).open(timeout_s=5.0)
        except BrokerError as err:  # the trials need no warm-up: go on without it
            say(f"warm-up     … skipped ({err})")
            return
        try:
            while not self.stopping.is_set() and time.monotonic() < end:
                now = time.monotonic()
                for station in stations:
                    got = watch.latest("live", station)
                    if got is not None and got.body.get("phase") == "running":
                        running.setdefault(station, now)
                if len(running) == len(stations) and all(
                        now - t >= strides_s for t in running.values()):
                    break
                self._check_alive()
                self.stopping.wait(0.3)
        finally:
            watch.close()
        late = [s for s in stations if s not in running]
        if late and not self.stopping.is_set():
            say(f"warm-up     {', '.join(late)} … no running stride within {max_s:g} s: "
                "MVC trials now")

    def _calibrate_station(self, station: str, channels: tuple[str, ...]) -> None:
        try:
            done = calibrate_station(self.control, station, self.start_replies[station],
                                     channels, say, stopping=self.stopping)
        except Exception as err:  # a failed calibration must not end the demo
            say(f"calibrate   {station} … failed ({type(err).__name__}: {err})")
            done = False
        if not done and not self.stopping.is_set():
            say(f"calibrate   {station} … not every channel has an MVC reference: its EMG "
                "ratios stay relative (no 'Drive from the glutes' against the norm)")

    def _wait_for_dashboard(self, timeout_s: float = 90.0) -> None:
        url = f"http://127.0.0.1:{self.dashboard_port}/_stcore/health"
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.stopping.is_set():
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        if not self.stopping.is_set():
            raise DemoError(f"the dashboard did not answer within {timeout_s:g} s; see "
                            f"{self.dashboard.log_path}")

    def _check_alive(self) -> None:
        for child in self._children():
            code = child.exited()
            if code is not None:
                raise DemoError(f"the {child.name} stopped (exit code {code}); the end of "
                                f"{child.log_path}:\n{child.log_tail()}")

    def _children(self) -> list[Child]:
        return [c for c in (self.pipeline, *self.agents, self.dashboard) if c is not None]

    # --- run ----------------------------------------------------------------------------
    def _watch(self) -> int:
        while not self.stopping.wait(0.5):
            try:
                self._check_alive()
            except DemoError as err:
                say(f"hipstride demo: {err}")
                return EXIT_RUNTIME
        return EXIT_OK

    # --- stop ---------------------------------------------------------------------------
    def _stop(self) -> None:
        self.stopping.set()
        if self.control is not None and self.pipeline is not None and not self.pipeline.exited():
            from hipstride.control import build_command

            for station in self.stations:
                if self.hurry.is_set():
                    break
                reply = self.control.send(station, build_command("stop"), timeout_s=5.0)
                result = (reply or {}).get("result") or {}
                if result.get("ok"):
                    say(f"session     {result.get('session') or station} closed")
        if self.control is not None:
            self.control.close()
        wait_s = 2.0 if self.hurry.is_set() else 10.0
        if self.agents:
            say("stations    … ", end="")
            stop_all(self.agents, signal.SIGINT, wait_s)
            say("stopped")
        if self.pipeline is not None:
            say("pipeline    … ", end="")
            self.pipeline.stop(signal.SIGINT, 2.0 if self.hurry.is_set() else 15.0)
            say("stopped")
        if self.dashboard is not None:
            self.dashboard.stop(signal.SIGTERM, 5.0)
        if self.broker is not None:
            self.broker.stop()
            say("broker      stopped")
        if self._lock_file is not None:
            self._lock_file.close()
        say(f"data kept in {self.data_dir}: run `hipstride demo` again to review it")
