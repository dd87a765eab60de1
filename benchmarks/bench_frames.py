"""Frame encode/decode cost, next to the raw-bytes floor and JSON, in the same run."""

from __future__ import annotations

import json

import numpy as np
from timing import per_call_us  # benchmarks/timing.py

from hipstride.frames import decode_frame, encode_frame


def main() -> None:
    rng = np.random.default_rng(0)
    cases = {"emg 100x6 float32": rng.standard_normal((100, 6)).astype(np.float32),
             "imu 10x6 float32": rng.standard_normal((10, 6)).astype(np.float32),
             "imu 10x6 int16": rng.integers(-3000, 3000, (10, 6)).astype(np.int16)}
    print(f"{'frame':<20} {'encode us':>10} {'decode us':>10} {'raw us':>8} {'json us':>8} "
          f"{'enc/raw':>8} {'json/enc':>9} {'bytes':>6} {'json B':>7}")
    for name, samples in cases.items():
        payload = encode_frame("emg", 1, 1_700_000_000_000_000_000, 2000.0, samples)
        enc = per_call_us(lambda s=samples: encode_frame("emg", 1, 1, 2000.0, s))
        dec = per_call_us(lambda p=payload: decode_frame(p))
        raw = per_call_us(lambda s=samples: np.frombuffer(s.tobytes(), s.dtype))
        text = json.dumps({"t0": 1, "samples": samples.tolist()})
        js = per_call_us(lambda s=samples: json.loads(json.dumps({"t0": 1,
                                                                  "samples": s.tolist()})),
                         repeat=2000)
        print(f"{name:<20} {enc:>10.2f} {dec:>10.2f} {raw:>8.2f} {js:>8.1f} {enc / raw:>8.1f} "
              f"{js / (enc + dec):>9.1f} {len(payload):>6} {len(text):>7}")
    full_set_frames_per_s = 20 * 6  # 1 EMG + 5 IMU streams at 50 ms
    emg_cost = per_call_us(lambda: encode_frame("emg", 1, 1, 2000.0, cases["emg 100x6 float32"]))
    print(f"\nencoding the full sensor set costs ~{full_set_frames_per_s * emg_cost / 1e4:.3f} % "
          "of one core (upper bound: every frame priced as an EMG frame)")


if __name__ == "__main__":
    main()
