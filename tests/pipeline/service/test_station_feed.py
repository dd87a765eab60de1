"""A station's conversion of raw frame samples to engine units (``_Feed.engine_units``) gives
exactly what ``description.to_physical(...)[:, index] * factor`` gives: float32 data, scaled
int16 data, and IMU channels in another order than the engine's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.pipeline.service.station import _feed_for
from hipstride.streams import StreamDescription


@pytest.fixture(scope="module")
def sim():
    return simulate(1.0, seed=1)


def check(description: StreamDescription, raw: np.ndarray) -> None:
    feed, why = _feed_for(description)
    assert feed is not None, why
    want = description.to_physical(raw)[:, feed.index] * feed.factor
    got = feed.engine_units(raw)
    assert got.dtype == np.float64 and np.array_equal(got, want)


def test_simulator_streams(sim):
    for d in sim.descriptions:
        check(d, np.asarray(sim.data[d.stream][:100]))


def test_scaled_int16_and_reordered_imu_channels(sim):
    imu = next(d for d in sim.descriptions if d.kind == "imu")
    body = json.loads(imu.to_json())
    body["dtype"] = "int16"
    body["channels"] = body["channels"][::-1]  # gyro first, z to x
    for i, c in enumerate(body["channels"]):
        c["scale"], c["offset"] = 0.001 * (i + 1), 0.25 * i - 0.5
    d = StreamDescription.from_json(json.dumps(body))
    raw = (np.random.default_rng(2).normal(size=(10, d.n_channels)) * 3000).astype(np.int16)
    check(d, raw)
    feed, _ = _feed_for(d)
    assert not feed.all_columns and not feed.unit_scale
