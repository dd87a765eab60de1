"""Offline engine speed: seconds to analyse the full sensor set, as a real-time factor.

The full set is 6 EMG channels x 2 kHz and 5 IMUs x 200 Hz. The baseline in the same run is
NeuroKit2's ``emg_process`` on the same EMG (one channel of a one-minute slice, scaled up:
it processes every sample in pandas, so a whole session would take too long to wait for).
Target: at least 500x real time on one core.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.validation import engine_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="running time to simulate and analyse (default 10)")
    args = parser.parse_args()
    started = time.perf_counter()
    session = simulate(args.minutes * 60 + 55, profile="healthy", seed=1, mvc=True)
    emg, imus, mvc = engine_inputs(session)
    seconds = len(emg.samples_mv) / emg.rate_hz
    print(f"simulated {seconds:.0f} s of the full sensor set in "
          f"{time.perf_counter() - started:.1f} s")

    cpu = time.process_time()
    wall = time.perf_counter()
    result = analyze(emg, imus, mvc=mvc)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rtf = seconds / cpu
    print(f"hipstride engine: {cpu:.2f} s CPU ({wall:.2f} s wall) for {seconds:.0f} s, "
          f"{len(result.rows)} stride rows -> {rtf:.0f}x real time (target >= 500x); "
          f"one hour would take {3600 / rtf:.1f} s")

    import neurokit2 as nk

    slice_s = 60.0
    one = emg.samples_mv[: round(slice_s * emg.rate_hz), 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.process_time()
        nk.emg_process(one, sampling_rate=int(emg.rate_hz))
        nk_cpu = (time.process_time() - t) * (seconds / slice_s) * emg.samples_mv.shape[1]
    nk_rtf = seconds / nk_cpu
    print(f"NeuroKit2 emg_process, EMG only (6 channels, scaled from {slice_s:.0f} s of one): "
          f"{nk_cpu:.1f} s -> {nk_rtf:.1f}x real time")
    print(f"ratio hipstride (EMG + IMU + strides + cues) / NeuroKit2 (EMG only): "
          f"{rtf / nk_rtf:.0f}x faster")
    extension = [r["peak_hip_extension_deg"] for r in result.rows if r["valid"]]
    print(f"sanity: median peak hip extension {np.nanmedian(extension):.1f} deg")


if __name__ == "__main__":
    main()
