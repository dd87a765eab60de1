"""HipStride pipeline: turns the edge agent's EMG and IMU frames into per-stride metrics and cues.

``engine`` holds the pure biomechanics (numpy/scipy functions on arrays, no I/O: EMG filtering
and onsets, gait events, hip and pelvis angles, per-stride metrics); the runtime around it feeds
the engine from the broker or from recordings and writes results to the stores the dashboard
reads. Only the engine is imported by tests that need no services.
"""
