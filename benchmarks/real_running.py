"""Engine accuracy on real running: virtual IMUs from motion capture, force plate as truth.

Builds virtual IMUs (pelvis, thighs, shanks) from the marker clusters of a treadmill-running
trial (``hipstride.pipeline.virtual_imu``), runs the engine's IMU chain and gait detection on
them with and without the shank sensors, and prints initial-contact and toe-off errors against
the force plate and peak hip extension and tilt errors against the markers (median and 90th
percentile of the absolute errors; bias = median signed error, engine − truth). "earlier
landmarks" rows score the landmarks the engine used before (toe-off at the shank's swing
minimum, thigh IC from flexion alone) on the same virtual sensors.

    python benchmarks/real_running.py                      # the 20 s excerpt in tests/data
    python benchmarks/real_running.py --c3d RUN.c3d --static STATIC.c3d   # a whole trial

This is a figure, not a timed assertion; docs/validation.md ("Real data") shows its output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hipstride.pipeline import real_running, virtual_imu

EXCERPT = Path(__file__).resolve().parents[1] / "tests" / "data" / "rbds001_run35_excerpt.npz"

SCENARIOS = {
    "straps 4° off": virtual_imu.SensorModel(),
    "straps 10° off, 3x noise": virtual_imu.SensorModel(gyro_noise_dps=0.9,
                                                        acc_noise_mps2=0.15,
                                                        misalignment_deg=10.0),
}


def _fmt(x: float, unit: str) -> str:
    return "–" if not np.isfinite(x) else f"{x:.1f}" if unit == "ms" else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--c3d", type=Path, help="running trial (C3D; needs --static)")
    parser.add_argument("--static", type=Path, help="the same runner's static trial (C3D)")
    parser.add_argument("--seeds", type=int, default=3, help="sensor noise draws (default 3)")
    parser.add_argument("--cutoffs", default="10,15,30,45",
                        help="marker low-pass cut-offs (Hz) for the sensitivity table "
                             "(default 10,15,30,45; the main table uses 20)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.c3d:
        if not args.static:
            parser.error("--c3d needs --static (the anatomical zero)")
        trial = virtual_imu.load_c3d_trial(args.c3d, args.static)
        source = args.c3d.name
    else:
        trial = virtual_imu.load_trial(EXCERPT)
        source = EXCERPT.name
    seconds = len(next(iter(trial.markers.values()))) / trial.marker_rate_hz
    print(f"{source}: {seconds:.0f} s of running, {args.seeds} noise draws per scenario\n")
    print("| sensors | scenario | landmarks | contacts | IC median / p90 (bias) ms "
          "| toe-off median / p90 (bias) ms | peak hip ext. median / p90 ° | tilt median / p90 ° |")
    print("|---|---|---|---|---|---|---|---|")
    for shanks in (True, False):
        for name, model in SCENARIOS.items():
            for legacy in (False, True):
                scores = [real_running.score(virtual_imu.virtual_session(trial, seed=s,
                                                                         model=model),
                                             shanks=shanks, legacy=legacy)
                          for s in range(1, args.seeds + 1)]
                pooled = real_running.RealScore(
                    shanks, sum(s.contacts for s in scores),
                    float(np.mean([s.recall for s in scores])),
                    *(np.concatenate([getattr(s, f) for s in scores]) for f in
                      ("ic_ms", "toe_off_ms", "hip_extension_deg", "tilt_deg")),
                    scores[0].methods).summary()
                cells = [
                    "pelvis, thighs, shanks" if shanks else "pelvis, thighs",
                    name, "earlier" if legacy else "current",
                    f"{pooled['contacts']:.0f} (recall {pooled['recall']:.2f})"]
                for key, unit in (("ic_ms", "ms"), ("toe_off_ms", "ms")):
                    cells.append(f"{_fmt(pooled[key + '_median'], unit)} / "
                                 f"{_fmt(pooled[key + '_p90'], unit)} "
                                 f"({_fmt(pooled[key + '_bias'], unit)})")
                for key in ("hip_extension_deg", "tilt_deg"):
                    cells.append(f"{_fmt(pooled[key + '_median'], '°')} / "
                                 f"{_fmt(pooled[key + '_p90'], '°')}")
                print("| " + " | ".join(cells) + " |")
    print("\nSensitivity to the marker low-pass (seed 1, straps 4° off; median |error|, bias):\n")
    print("| marker low-pass Hz | IC with shanks ms | toe-off ms | IC without shanks ms "
          "| peak hip ext. ° |")
    print("|---|---|---|---|---|")
    for fc in [float(x) for x in args.cutoffs.split(",") if x.strip()]:
        vs = virtual_imu.virtual_session(trial, seed=1, cutoff_hz=fc)
        a = real_running.score(vs).summary()
        b = real_running.score(vs, shanks=False).summary()
        print(f"| {fc:g} | {a['ic_ms_median']:.1f} ({a['ic_ms_bias']:+.1f}) "
              f"| {a['toe_off_ms_median']:.1f} ({a['toe_off_ms_bias']:+.1f}) "
              f"| {b['ic_ms_median']:.1f} ({b['ic_ms_bias']:+.1f}) "
              f"| {a['hip_extension_deg_median']:.2f} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
