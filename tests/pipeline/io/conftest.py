from __future__ import annotations

import pytest

from hipstride.edge.simulator import SimulatedSession, simulate


@pytest.fixture(scope="session")
def sim() -> SimulatedSession:
    """8 s: 5 s standing, then running; sensors mounted along the segment axes."""
    return simulate(8.0, seed=3, mounting="identity")


@pytest.fixture(scope="session")
def sim_straps() -> SimulatedSession:
    """The same with the straps' known, non-identity mountings."""
    return simulate(8.0, seed=4)
