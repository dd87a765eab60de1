"""Streaming engine cost per 50 ms frame per station, and how many stations that allows.

One simulated station (6 EMG x 2 kHz, 5 IMUs x 200 Hz) is fed frame by frame, as the
pipeline will; the baseline in the same run is the bare causal EMG envelope filter on the
same frames (the least any live EMG feedback must do).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.emg import EmgEnvelopeFilter, emg_filter_design
from hipstride.pipeline.engine.stream import EmgStream, ImuStream, StreamingEngine
from hipstride.pipeline.validation import engine_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="simulated running")
    parser.add_argument("--frame-ms", type=float, default=50.0)
    args = parser.parse_args()
    session = simulate(args.seconds + 60, profile="healthy", seed=1, mvc=True)
    emg, imus, mvc = engine_inputs(session)
    engine = StreamingEngine(
        EmgStream(emg.channels, emg.rate_hz, emg.signal),
        [ImuStream(s, imu.rate_hz, imu.mounting) for s, imu in imus.items()], mvc=mvc)
    seconds = len(emg.samples_mv) / emg.rate_hz
    n_frames = int(seconds * 1000 / args.frame_ms)
    e_step = round(emg.rate_hz * args.frame_ms / 1000)
    i_step = round(next(iter(imus.values())).rate_hz * args.frame_ms / 1000)
    costs, rows = [], 0
    for k in range(n_frames):
        started = time.perf_counter()
        engine.push_emg(emg.samples_mv[k * e_step:(k + 1) * e_step], k * args.frame_ms / 1000)
        for segment, imu in imus.items():
            sl = slice(k * i_step, (k + 1) * i_step)
            engine.push_imu(segment, imu.acc_mps2[sl], imu.gyr_dps[sl], k * args.frame_ms / 1000)
        rows += len(engine.poll().rows)
        costs.append(time.perf_counter() - started)
    costs_ms = np.array(costs[n_frames // 4:]) * 1000  # steady running, after calibration
    baseline = EmgEnvelopeFilter(emg_filter_design(emg.rate_hz), len(emg.channels))
    base = []
    for k in range(n_frames):
        started = time.perf_counter()
        baseline.process(emg.samples_mv[k * e_step:(k + 1) * e_step])
        base.append(time.perf_counter() - started)
    base_ms = np.array(base) * 1000
    p50, p99 = np.percentile(costs_ms, [50, 99])
    print(f"streaming engine, one station, {args.frame_ms:g} ms frames of the full set: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {costs_ms.mean():.2f} ms per frame "
          f"({rows} stride rows)")
    print(f"bare causal EMG envelope filter on the same frames: mean {base_ms.mean():.3f} ms "
          f"-> engine / bare = {costs_ms.mean() / base_ms.mean():.0f}x")
    per_s = costs_ms.mean() * 1000 / args.frame_ms / 1000
    print(f"one core: {1 / per_s:.0f} stations in real time at 100 % (the pipeline issue's "
          f"target is >= 50 stations per process)")


if __name__ == "__main__":
    main()
