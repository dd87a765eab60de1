"""Frames of a simulated session, as an edge agent would publish them, for service tests.

``pieces`` picks parts of the session ((start_s, end_s) in simulator time) and lays them end
to end on the wire timeline from ``base_ns``, so a test can play the standing period, a bit
of running and one MVC trial without waiting through the whole protocol. Cuts fall in
still periods, where the samples on both sides match.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hipstride.edge.simulator.session import SimulatedSession
from hipstride.frames import encode_frame

FRAME_S = 0.05


@dataclass(frozen=True)
class WireFrame:
    stream: str
    t0_ns: int  # first sample on the wire timeline
    payload: bytes


def sim_frames(sim: SimulatedSession, base_ns: int, pieces: Sequence[tuple[float, float]],
               frame_s: float = FRAME_S) -> Iterator[WireFrame]:
    """Frames of every stream in time order (then stream), contiguous sequence numbers."""
    seq = dict.fromkeys((d.stream for d in sim.descriptions), 0)
    offset_s = 0.0
    for a, b in pieces:
        frames = []
        for d in sim.descriptions:
            n = round(frame_s * d.rate_hz)
            i0, i1 = round(a * d.rate_hz), round(b * d.rate_hz)
            for i in range(i0, i1, n):
                t0_ns = base_ns + round((offset_s + (i - i0) / d.rate_hz) * 1e9)
                frames.append((t0_ns, d.stream, i, min(i + n, i1)))
        for t0_ns, stream, i, j in sorted(frames):
            d = sim.description(stream)
            yield WireFrame(stream, t0_ns, encode_frame(stream, seq[stream], t0_ns, d.rate_hz,
                                                        sim.data[stream][i:j]))
            seq[stream] += 1
        offset_s += b - a
