"""``hipstride analyze``: one session file in; strides.csv, summary.json and report.html out.

The imperative shell around the engine: read (``pipeline.io``), analyse
(``pipeline.engine.analysis``), write. Every problem the readers or the engine found is in
``summary.json`` and the report, and printed.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI builds its parser from this module: keep its import light
    from hipstride.pipeline.engine.data import EmgData
    from hipstride.pipeline.engine.result import AnalysisResult
    from hipstride.pipeline.io import SessionInput

HELP = """\
Analyse one session file: per-stride glute-vs-hamstring ratio, muscle onsets, hip extension
and pelvic tilt, cues, and (when the session has one) the prone hip extension test.

inputs (one of):
  --emg EMG.csv --imu IMU.csv   the CSV pair of docs/formats.md (time_s + canonical columns)
  --recording FILE.hsrec        a HipStride recording (raw frames, as the pipeline keeps them)
  --c3d FILE.c3d                a C3D file: analog EMG and IMU channels (--map for labels);
                                strides from its force plates, EVENT section or markers
                                when it has no thigh/shank IMU (docs/formats.md, C3D)

outputs in --out DIR:
  strides.csv    one row per stride and side (DOMAIN.md's metrics, plus side, stride_index,
                 toe_off_pct, valid, normalization, gait_method, quality)
  summary.json   per side: means, variability, symmetry, cues raised, quality
  report.html    a report to hand to the athlete: plots, findings, advice

The first --standing-s seconds (default 5) must be quiet standing: they calibrate the IMUs.
A session recording from the pipeline that starts mid-run has no standing period: it carries
the station's calibration, and is analysed with it (the live pipeline's strides, again).
Without --mvc, EMG is normalised to the session's first 30 steady strides and every ratio is
labelled "relative". Holes in a recording (frames missing for a while) split the analysis into
parts: no stride spans one, and summary.json lists them (docs/engine.md). Exit codes: 0 done,
1 nothing to analyse, 2 an input or calibration window that cannot be used (the message says
which and what to do).

examples:
  hipstride analyze --emg run_emg.csv --imu run_imu.csv --out results/
  hipstride analyze --c3d lab.c3d --map delsys.toml --mvc mvc_emg.csv --out results/
  hipstride analyze --c3d run.c3d --static standing.c3d --emg-unit mV --out results/
"""


def add_arguments(parser: Any) -> None:
    source = parser.add_argument_group("input (choose one)")
    source.add_argument("--emg", metavar="CSV", help="EMG CSV (time_s + canonical columns, mV)")
    source.add_argument("--imu", metavar="CSV",
                        help="IMU CSV (time_s + <segment>_<acc|gyr>_<x|y|z>)")
    source.add_argument("--recording", metavar="HSREC", help="a HipStride recording")
    source.add_argument("--c3d", metavar="FILE", help="a C3D file")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    parser.add_argument("--map", metavar="FILE",
                        help="column/label renames: TOML table or 'old=new' lines")
    parser.add_argument("--static", metavar="C3D",
                        help="a C3D static trial (standing, same markers): the zero of the "
                             "hip and pelvis angles from a lab file's markers")
    parser.add_argument("--standing-s", type=float, default=5.0, metavar="S",
                        help="seconds of quiet standing at the start (default 5)")
    parser.add_argument("--mvc", metavar="CSV",
                        help="EMG CSV of maximal voluntary contraction trials")
    parser.add_argument("--mvc-window", metavar="START:END",
                        help="session seconds of MVC trials in the same file (instead of --mvc)")
    parser.add_argument("--prone", metavar="START:END",
                        help="session seconds of a prone hip extension test in the same file")
    for kind, example in (("emg", "V, mV, uV"), ("acc", "m/s^2, g"), ("gyr", "deg/s, rad/s")):
        parser.add_argument(f"--{kind}-unit", metavar="UNIT",
                            help=f"unit of the file's {kind.upper()} channels ({example}); "
                                 "overrides a C3D's ANALOG:UNITS")
    parser.add_argument("--athlete", help="athlete name for the report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_input(args: Any) -> SessionInput:
    from hipstride.csvformat import load_rename
    from hipstride.pipeline.io import (
        SessionInputError,
        read_c3d,
        read_csv_session,
        read_recording,
    )

    rename = load_rename(args.map) if args.map else None
    chosen = [name for name in ("recording", "c3d") if getattr(args, name)]
    if args.emg or args.imu:
        chosen.append("csv")
    if len(chosen) != 1:
        raise SessionInputError("give exactly one input: --emg/--imu, --recording or --c3d")
    if chosen == ["recording"]:
        return read_recording(args.recording, standing_s=args.standing_s)
    units = {f"{kind}_unit": getattr(args, f"{kind}_unit", None) for kind in ("emg", "acc", "gyr")}
    if chosen == ["c3d"]:
        return read_c3d(args.c3d, mapping=rename, standing_s=args.standing_s,
                        static=getattr(args, "static", None), **units)
    return read_csv_session(args.emg, args.imu, rename=rename, standing_s=args.standing_s,
                            **{k: v for k, v in units.items() if v})


def read_mvc(path: str | None, rename: dict | None = None) -> EmgData | None:
    from hipstride.csvformat import read_emg_csv
    from hipstride.pipeline.engine.data import EmgData

    if not path:
        return None
    table = read_emg_csv(path, rename=rename, required=())
    return EmgData(table.samples, tuple(table.channels), table.rate_hz)


def parse_window(text: str | None, option: str) -> tuple[float, float] | None:
    """``"120:160"`` -> (120.0, 160.0); ValueError naming the option otherwise."""
    if not text:
        return None
    try:
        start, end = (float(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected START:END in seconds, e.g. 120:165"
                         ) from None
    if not 0 <= start < end:
        raise ValueError(f"{option} {text!r}: START must be >= 0 and before END")
    return start, end


def write_strides_csv(rows: list[dict], path: Path) -> None:
    from hipstride.pipeline.engine.schema import STRIDE_COLUMNS

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=STRIDE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v)
                                 else round(v, 4) if isinstance(v, float) else v)
                             for k, v in row.items()})


def write_outputs(result: AnalysisResult, session: SessionInput, out: Path, *,
                  athlete: str | None) -> dict[str, Path]:
    from hipstride import __version__
    from hipstride.jsonsafe import jsonable
    from hipstride.pipeline.report import render_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"strides": out / "strides.csv", "summary": out / "summary.json",
             "report": out / "report.html"}
    write_strides_csv(result.rows, paths["strides"])
    summary = dict(result.summary)
    summary.update(source=session.source, hipstride_version=__version__,
                   athlete=athlete, start_time_ns=session.start_time_ns,
                   duration_s=session.end_s)
    paths["summary"].write_text(json.dumps(jsonable(summary), indent=2))
    result.summary.update(summary)
    paths["report"].write_text(render_report(result, title="HipStride session report",
                                             athlete=athlete, source=session.source))
    return paths


def calibration_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What summary.json says about a calibration taken from the recording."""
    return {"source": "recording", "station": record.get("station"),
            "made_ns": record.get("made_ns"), "data_ns": record.get("data_ns"),
            "learned_until_ns": record.get("learned_until_ns"),
            "resumed": record.get("resumed", False)}


def run(args: Any) -> int:
    import numpy as np

    from hipstride.csvformat import CsvFormatError, load_rename
    from hipstride.pipeline.engine.analysis import (
        NUMERICS_ADVICE,
        AnalysisError,
        analyze,
        analyze_calibrated,
    )
    from hipstride.pipeline.io import SessionInputError
    from hipstride.pipeline.io.recording import describe_calibration

    try:
        session = read_input(args)
        mvc = read_mvc(args.mvc, load_rename(args.map) if args.map else None)
    except (SessionInputError, CsvFormatError) as err:
        print(f"hipstride analyze: {err}", file=sys.stderr)
        return 2
    if session.events:
        print("strides from the file's gait events: " + ", ".join(
            f"{side} {ev.method}" for side, ev in sorted(session.events.items())))
    elif session.calibration is not None:
        print(f"calibration from the recording, {describe_calibration(session.calibration)} "
              "(the file has no standing period)")
    else:
        print(f"calibration from the standing period (first {args.standing_s:g} s)")
    for problem in session.problems:
        print(f"note: {problem}", file=sys.stderr)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=100, desc="analysing", unit="%", file=sys.stderr,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def progress(stage: str, fraction: float) -> None:
        if bar is not None:
            bar.set_postfix_str(stage)
            bar.update(round(fraction * 100) - bar.n)

    try:
        prone = parse_window(args.prone, "--prone")
        mvc_window = parse_window(args.mvc_window, "--mvc-window")
        if mvc_window is not None:
            from hipstride.pipeline.engine.analysis import window

            if session.emg is None:
                raise ValueError("--mvc-window needs EMG in the file")
            mvc = window(session.emg, mvc_window)
        running_end_s = mvc_window[0] if mvc_window else None
        if session.calibration is not None:
            result = analyze_calibrated(
                session.emg, session.imus, session.calibration["state"],
                settings=session.calibration.get("settings"), mvc=mvc, prone_s=prone,
                running_end_s=running_end_s, progress=progress)
            result.summary["calibration"] = calibration_summary(session.calibration)
        else:
            result = analyze(session.emg, session.imus, standing_s=(0.0, args.standing_s),
                             mvc=mvc, prone_s=prone, running_end_s=running_end_s,
                             events=session.events or None, kinematics=session.kinematics,
                             progress=progress)
    except AnalysisError as err:
        print(f"hipstride analyze: {err}", file=sys.stderr)
        return 2
    except np.linalg.LinAlgError as err:  # one the engine did not name: still no traceback
        print(f"hipstride analyze: numerical failure in the engine: {err}; {NUMERICS_ADVICE}",
              file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"hipstride analyze: {err}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    result.problems[:0] = session.problems
    result.summary["quality"]["problems"] = result.problems
    paths = write_outputs(result, session, Path(args.out), athlete=args.athlete)
    valid = sum(1 for r in result.rows if r["valid"])
    print(f"{valid} valid strides ({len(result.rows) - valid} rejected); wrote "
          + ", ".join(str(p) for p in paths.values()))
    for problem in result.problems[len(session.problems):]:
        print(f"note: {problem}", file=sys.stderr)
    return 0
