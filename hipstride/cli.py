"""The ``hipstride`` command. Each sub-command imports its component only when run, so the
edge agent on a Raspberry Pi never loads the pipeline's or the dashboard's libraries."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hipstride import __version__
from hipstride.config import ConfigError
from hipstride.logs import FORMATS
from hipstride.logs import configure as configure_logs

EXIT_OK, EXIT_RUNTIME, EXIT_CONFIG = 0, 1, 2

EDGE_HELP = """\
Stream a station's sensors to the MQTT broker, none lost.

Every frame is committed to an on-disk spool before it is published and leaves it only when
the broker has acknowledged it, so broker outages, Wi-Fi drops and agent restarts lose
nothing (when the spool is full the oldest data goes first, counted on the status topic).

sources:
  sim       physiological simulator (profiles: healthy, hamstring_dominant,
            limited_extension, asymmetry); settings in [sim]
  replay    a .hsrec recording or an EMG/IMU CSV pair; settings in [replay]
  hardware  IMUs over I2C and EMG through an SPI ADC; settings in [hardware]
  lsl       Lab Streaming Layer outlets (Delsys, OpenBCI, BITalino, ...); settings in [lsl]

configuration (lowest precedence first): --config FILE (TOML), HIPSTRIDE_STATION,
HIPSTRIDE_BROKER, HIPSTRIDE_BROKER_PASSWORD, HIPSTRIDE_SOURCE, HIPSTRIDE_SPOOL, then flags.
Passwords never go in the URL on a shared machine: use HIPSTRIDE_BROKER_PASSWORD or
[broker] password_file.

exit codes: 0 done, 1 runtime error, 2 bad configuration, 3 broker rejected the
credentials, 4 broker unreachable.

examples:
  hipstride edge --station treadmill-1 --broker mqtt://localhost:1883 --source sim
  hipstride edge --config /etc/hipstride/edge.toml --offline-ok
"""

TAP_HELP = """\
Subscribe to the broker and print, per station and stream, what is arriving: decoded sample
rate, frames, sequence gaps and duplicates, rejected frames, and latency from the first
sample to arrival — the tool to reach for when something looks wrong.

example:
  hipstride tap --broker mqtt://localhost:1883 --station treadmill-1
"""


def _edge(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--station", help="station id, e.g. treadmill-1 (one per treadmill)")
    parser.add_argument("--broker", metavar="URL",
                        help="mqtt[s]://[user@]host[:port] (default mqtt://localhost:1883)")
    parser.add_argument("--source", choices=("sim", "replay", "hardware", "lsl"),
                        help="where samples come from (default sim)")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="stop after S seconds of data (default: until stopped; a "
                             "simulated session lasts [sim] duration_s, 1 hour by default; "
                             "0 = endless, the runner then follows calibrate commands)")
    parser.add_argument("--spool", metavar="PATH",
                        help="spool database (default ~/.local/state/hipstride/spool-ID.sqlite)")
    parser.add_argument("--offline-ok", action="store_true", default=None,
                        help="start even if the broker is unreachable; spool and retry")
    parser.add_argument("--emulate", action="store_true",
                        help="hardware source: use chip emulations instead of real devices")
    sim = parser.add_argument_group("simulator shortcuts (override [sim])")
    sim.add_argument("--profile", help="healthy | hamstring_dominant | limited_extension | "
                                       "asymmetry")
    sim.add_argument("--seed", type=int, help="random seed (same seed, same data)")
    sim.add_argument("--speed", type=float,
                     help="real-time factor: 1 = live, 10 = ten times faster, 0 = flat out")
    sim.add_argument("--ground-truth", metavar="FILE",
                     help="write the simulator's ground truth (events, angles) to FILE")

    def run(args: argparse.Namespace) -> int:
        from hipstride.edge.agent import Agent, install_signal_handlers
        from hipstride.edge.config import load_edge_config
        from hipstride.edge.sources import make_source
        from hipstride.edge.sources.base import SourceError
        from hipstride.mqtt import BrokerError

        config = load_edge_config(args.config, station=args.station, broker=args.broker,
                                  source=args.source, spool=args.spool,
                                  offline_ok=args.offline_ok)
        section = config.source_section()
        options: dict[str, object] = {}
        if config.source == "sim":
            shortcuts = {"profile": args.profile, "seed": args.seed, "speed": args.speed,
                         "ground_truth": args.ground_truth, "duration_s": args.duration}
            section.data = {**section.data,
                            **{k: v for k, v in shortcuts.items() if v is not None}}
        elif args.duration is not None:
            config = replace(config, duration_s=args.duration)
        if config.source == "hardware":
            options["emulate"] = args.emulate
        if config.source == "replay" and args.config:
            options["base_dir"] = Path(args.config).resolve().parent
        try:
            source = make_source(config.source, section, **options)
        except SourceError as err:
            print(f"hipstride edge: {err}", file=sys.stderr)
            return EXIT_RUNTIME
        try:
            agent = Agent(config, source)
        except BaseException:
            source.close()
            raise
        install_signal_handlers(agent)
        try:
            return agent.run()
        except BrokerError as err:
            print(f"hipstride edge: {err}", file=sys.stderr)
            return err.exit_code

    return run


def _tap(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--broker", metavar="URL", default=None,
                        help="mqtt[s]://[user@]host[:port] (default: HIPSTRIDE_BROKER or "
                             "mqtt://localhost:1883)")
    parser.add_argument("--station", help="only this station (default: all)")
    parser.add_argument("--interval", type=float, default=2.0, metavar="S",
                        help="print a table every S seconds (default 2)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per interval instead of a table")

    def run(args: argparse.Namespace) -> int:
        from hipstride.mqtt import BrokerError
        from hipstride.tap import run_tap

        try:
            return run_tap(args.broker, station=args.station, interval_s=args.interval,
                           duration_s=args.duration, as_json=args.json)
        except BrokerError as err:
            print(f"hipstride tap: {err}", file=sys.stderr)
            return err.exit_code

    return run


def _analyze(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from hipstride.pipeline.analyze import HELP, add_arguments

    parser.description = HELP  # the component keeps its own help text
    add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        from hipstride.pipeline.analyze import run as run_analyze

        return run_analyze(args)

    return run


def _pipeline(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from hipstride.pipeline.service import HELP, add_arguments

    parser.description = HELP
    add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        from hipstride.mqtt import BrokerError
        from hipstride.pipeline.service.config import load_pipeline_config
        from hipstride.pipeline.service.runtime import run_pipeline
        from hipstride.pipeline.store import StoreError, StoreSetupError

        config = load_pipeline_config(args.config, broker=args.broker, store=args.store,
                                      partition=args.partition, state_dir=args.state_dir,
                                      recordings_dir=args.recordings,
                                      metrics_port=args.metrics_port, duration_s=args.duration,
                                      create_database=args.create_database)
        try:
            if args.replay_refused:
                from hipstride.pipeline.service.refused import run_replay

                return run_replay(config)
            return run_pipeline(config)
        except StoreSetupError as err:
            print(f"hipstride pipeline: {err}", file=sys.stderr)
            return EXIT_CONFIG
        except BrokerError as err:
            print(f"hipstride pipeline: {err}", file=sys.stderr)
            return err.exit_code
        except (StoreError, OSError) as err:
            print(f"hipstride pipeline: {err}", file=sys.stderr)
            return EXIT_RUNTIME

    return run


def _session(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from hipstride.pipeline.service.control import HELP, add_arguments

    parser.description = HELP
    add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        from hipstride.pipeline.service.control import run as run_session

        return run_session(args)

    return run


def _admin(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from hipstride.admin import HELP, add_arguments, run

    parser.description = HELP
    add_arguments(parser)
    return run


def _dashboard(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from hipstride.dashboard.cli import HELP, add_arguments

    parser.description = HELP  # the component keeps its own help text
    add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        from hipstride.dashboard.cli import run as run_dashboard

        return run_dashboard(args)

    return run


def _demo(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from hipstride.demo import HELP, add_arguments

    parser.description = HELP
    add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        from hipstride.demo import run as run_demo

        return run_demo(args)

    return run


SIMULATE_HELP = """\
Write a simulated session to files: emg.csv and imu.csv (the CSV format of docs/formats.md),
session.hsrec (a recording, as the pipeline keeps them) and truth.json / truth.npz (the ground
truth: every stride's events and metrics, the hip and pelvis curves). Feed them to
`hipstride analyze` to see what the engine finds, and compare with the truth.

example:
  hipstride simulate --profile hamstring_dominant --duration 120 --out sim/
  hipstride analyze --emg sim/emg.csv --imu sim/imu.csv --out sim/results
"""


def _simulate(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--out", metavar="DIR", required=True, help="folder to write")
    parser.add_argument("--duration", type=float, default=120.0, metavar="S",
                        help="total seconds (default 120): 5 s standing, then running; --mvc "
                             "and --prone take about 50 s and 45 s of it at the end")
    parser.add_argument("--profile", default="healthy",
                        help="healthy | hamstring_dominant | limited_extension | asymmetry")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--mvc", action="store_true",
                        help="append MVC trials (per muscle, 5 s efforts) after running")
    parser.add_argument("--prone", action="store_true",
                        help="append a prone hip extension test after running")

    def run(args: argparse.Namespace) -> int:
        from hipstride.edge.simulator import simulate
        from hipstride.edge.simulator.export import write_csv_pair, write_recording

        try:
            session = simulate(args.duration, profile=args.profile, seed=args.seed,
                               mvc=args.mvc, prone=args.prone)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        out = Path(args.out)
        paths = [*write_csv_pair(session, out), write_recording(session, out / "session.hsrec"),
                 *session.truth.write(out / "truth")]
        for phase in session.truth.phases:
            print(f"{phase['name']:>9}: {phase['start_s']:7.1f} - {phase['end_s']:7.1f} s")
        print("wrote " + ", ".join(str(p) for p in paths))
        return EXIT_OK

    return run


COMMANDS = {
    "edge": ("run the edge agent (sensors -> MQTT)", EDGE_HELP, _edge),
    "tap": ("watch what a broker is carrying", TAP_HELP, _tap),
    "analyze": ("analyse a session file (CSV, recording, C3D) into strides and a report",
                "", _analyze),
    "pipeline": ("run the pipeline (MQTT -> engine -> store, live metrics)", "", _pipeline),
    "session": ("start, stop, mark or calibrate a station's session (control topic)", "",
                _session),
    "simulate": ("write a simulated session (CSV, recording, ground truth) to files",
                 SIMULATE_HELP, _simulate),
    "dashboard": ("open the dashboard: live feedback, sessions, calibration, tests, review",
                  "", _dashboard),
    "demo": ("run everything on this machine: broker, simulated stations, pipeline, "
             "dashboard", "", _demo),
    "admin": ("manage a deployment's accounts: stations, athletes, coaches", "", _admin),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    parser = argparse.ArgumentParser(
        prog="hipstride",
        description="HipStride: live glute-vs-hamstring and hip extension feedback for runners.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hipstride {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--log-format", choices=FORMATS,
                        default=os.environ.get("HIPSTRIDE_LOG_FORMAT", "text"),
                        help="text (default) or json: one JSON object per line, for log "
                             "collectors (also HIPSTRIDE_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners = {}
    for name, (summary, description, build) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        runners[name] = build(p)
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.log_format not in FORMATS:  # a bad HIPSTRIDE_LOG_FORMAT (argparse checks flags)
        print(f"hipstride: configuration error: HIPSTRIDE_LOG_FORMAT={args.log_format!r}: use "
              f"{' or '.join(FORMATS)}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logs(args.log_level, args.log_format)
    try:
        return runners[args.command](args)
    except ConfigError as err:
        print(f"hipstride {args.command}: configuration error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
