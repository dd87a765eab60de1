from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mosquitto import Mosquitto

USERS = {"edge-tm1": "tm1-secret", "edge-tm2": "tm2-secret", "witness": "witness-secret"}


@pytest.fixture
def mosquitto(tmp_path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto", USERS)
    broker.start()
    yield broker
    broker.stop()
