from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS


@pytest.fixture
def broker(tmp_path) -> Iterator[Mosquitto]:
    """A real Mosquitto with the service tests' accounts."""
    b = Mosquitto(tmp_path / "mosquitto", USERS)
    b.start()
    yield b
    b.stop()
