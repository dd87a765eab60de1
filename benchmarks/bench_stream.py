"""Streaming engine cost per 50 ms frame per station, and how many stations that allows.

One simulated station (6 EMG x 2 kHz, 5 IMUs x 200 Hz) is fed frame by frame, as the
pipeline will; the baseline in the same run is the bare causal EMG envelope filter on the
same frames (the least any live EMG feedback must do). The engine runs ``--repeat`` times on
the same session and the median of each figure is printed: the machine is shared, so both
wall time and the process's CPU time are measured (CPU time is what a core can give to
stations; wall time also counts the time other processes took the core).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.emg import EmgEnvelopeFilter, emg_filter_design
from hipstride.pipeline.engine.stream import EmgStream, ImuStream, StreamingEngine
from hipstride.pipeline.validation import engine_inputs


def run_engine(emg, imus, mvc, frame_ms: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Wall and CPU ms of each frame in steady running (after calibration), and the rows."""
    engine = StreamingEngine(
        EmgStream(emg.channels, emg.rate_hz, emg.signal),
        [ImuStream(s, imu.rate_hz, imu.mounting) for s, imu in imus.items()], mvc=mvc)
    seconds = len(emg.samples_mv) / emg.rate_hz
    n_frames = int(seconds * 1000 / frame_ms)
    e_step = round(emg.rate_hz * frame_ms / 1000)
    i_step = round(next(iter(imus.values())).rate_hz * frame_ms / 1000)
    wall, cpu, rows = [], [], 0
    for k in range(n_frames):
        started, cpu0 = time.perf_counter(), time.process_time()
        engine.push_emg(emg.samples_mv[k * e_step:(k + 1) * e_step], k * frame_ms / 1000)
        for segment, imu in imus.items():
            sl = slice(k * i_step, (k + 1) * i_step)
            engine.push_imu(segment, imu.acc_mps2[sl], imu.gyr_dps[sl], k * frame_ms / 1000)
        rows += len(engine.poll().rows)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu0)
    steady = slice(n_frames // 4, None)  # steady running, after calibration
    return np.array(wall[steady]) * 1000, np.array(cpu[steady]) * 1000, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="simulated running")
    parser.add_argument("--frame-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="engine runs on the same session; medians are printed")
    args = parser.parse_args()
    session = simulate(args.seconds + 60, profile="healthy", seed=1, mvc=True)
    emg, imus, mvc = engine_inputs(session)
    figures, rows = [], 0
    for _ in range(max(1, args.repeat)):
        wall_ms, cpu_ms, rows = run_engine(emg, imus, mvc, args.frame_ms)
        figures.append((*np.percentile(wall_ms, [50, 99]), wall_ms.mean(), cpu_ms.mean()))
    p50, p99, mean, cpu_mean = np.median(np.array(figures), axis=0)

    e_step = round(emg.rate_hz * args.frame_ms / 1000)
    baseline = EmgEnvelopeFilter(emg_filter_design(emg.rate_hz), len(emg.channels))
    base = []
    for k in range(len(emg.samples_mv) // e_step):
        started = time.perf_counter()
        baseline.process(emg.samples_mv[k * e_step:(k + 1) * e_step])
        base.append(time.perf_counter() - started)
    base_ms = np.array(base) * 1000
    print(f"streaming engine, one station, {args.frame_ms:g} ms frames of the full set "
          f"(median of {len(figures)} runs): p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
          f"mean {mean:.2f} ms wall, {cpu_mean:.2f} ms CPU per frame ({rows} stride rows)")
    print(f"bare causal EMG envelope filter on the same frames: mean {base_ms.mean():.3f} ms "
          f"-> engine / bare = {mean / base_ms.mean():.0f}x")
    for label, cost in (("CPU", cpu_mean), ("wall", mean)):
        stations = args.frame_ms / cost
        print(f"one core, from the mean {label} time: {stations:.0f} stations in real time at "
              f"100 % (the pipeline issue's target is >= 50 stations per process)")


if __name__ == "__main__":
    main()
