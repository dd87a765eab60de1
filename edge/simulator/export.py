"""Write a simulated session to files: the CSV pair, a ``.hsrec`` recording, the truth.

What ``hipstride simulate`` runs, and what the validation script and tests feed to
``hipstride analyze``: the same files a lab or the pipeline would produce.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hipstride.csvformat import CsvTable, write_csv
from hipstride.recording import RecordingWriter
from hipstride.streams import IMU_CHANNELS

from ..framing import Framer
from ..sources.base import Block
from .session import SimulatedSession


def write_csv_pair(session: SimulatedSession, folder: str | Path) -> tuple[Path, Path]:
    """``emg.csv`` (mV) and ``imu.csv`` (segment frame: the known mounting applied)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    emg_d = session.description("emg")
    emg = CsvTable.from_arrays("emg", emg_d.channel_names, session.data["emg"], emg_d.rate_hz)
    columns, blocks, rate = [], [], None
    for name in session.data:
        d = session.description(name)
        if d.kind != "imu":
            continue
        mounting = np.asarray(d.mounting, dtype=float)
        data = np.asarray(session.data[name], dtype=float)
        blocks += [data[:, :3] @ mounting.T, data[:, 3:] @ mounting.T]
        columns += [f"{d.segment}_{c}" for c in IMU_CHANNELS]
        rate = d.rate_hz
    imu = CsvTable.from_arrays("imu", columns, np.hstack(blocks), rate)
    return write_csv(folder / "emg.csv", emg), write_csv(folder / "imu.csv", imu)


def write_recording(session: SimulatedSession, path: str | Path, *,
                    start_ns: int | None = None, frame_ms: float = 50.0) -> Path:
    """The session as the edge agent would have published it, frame by frame."""
    start_ns = time.time_ns() if start_ns is None else start_ns
    path = Path(path)
    with RecordingWriter(path) as writer:
        meta = session.truth.metadata
        writer.write_metadata({"source": "simulator", "profile": meta.get("profile"),
                               "seed": meta.get("seed")})
        for name, samples in session.data.items():
            d = session.description(name)
            writer.write_description(d)
            framer = Framer(d, frame_ms=frame_ms, next_seq=0, epoch=1)
            frames = framer.push(Block(name, samples, first_timestamp_ns=start_ns))
            frames += framer.flush()
            for f in frames:
                writer.write_frame(f.payload, name)
    return path
