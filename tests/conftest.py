from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import pipeline
from tests.support.influxdb import InfluxDB
from tests.support.mosquitto import Mosquitto

USERS = {"edge-tm1": "tm1-secret", "edge-tm2": "tm2-secret", "witness": "witness-secret"}


@pytest.fixture
def mosquitto(tmp_path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto", USERS)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(tmp_path) -> Iterator[Mosquitto]:
    """A real Mosquitto with the service tests' accounts (pipeline, stations, coach)."""
    b = Mosquitto(tmp_path / "mosquitto", pipeline.USERS)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory) -> Iterator[InfluxDB]:
    """One real influxd (Debian's 1.6.7) for the whole run; tests make their own databases."""
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()
