"""LslSource against real pylsl outlets in this process.

Outlets live in this process and are resolved over loopback with liblsl's default discovery
(multicast works here). Every test uses its own stream name and source_id, so streams elsewhere
on the network cannot be mistaken for the test's. A restricting configuration
(``pylsl.set_config_content`` with ``ResolveScope = machine`` / ``KnownPeers = {127.0.0.1}``) was
tried and left out: with liblsl 1.18 it made every timed-out resolve last ~5 s longer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np
import pylsl
import pytest

from hipstride.config import ConfigError, Section
from hipstride.edge.sources.base import Block, SourceError
from hipstride.edge.sources.lsl import from_config


@pytest.fixture
def outlet() -> Iterator:
    made = []

    def make(kind: str, labels: list[str], rate_hz: float, fmt: str = "float32"):
        name = f"hs_test_{uuid.uuid4().hex[:10]}"
        info = pylsl.StreamInfo(name, kind, len(labels), rate_hz, fmt, name)
        info.set_channel_labels(labels)
        out = pylsl.StreamOutlet(info)
        made.append(out)
        return name, out

    yield make
    made.clear()


def epoch_offset_s() -> float:
    return time.time() - pylsl.local_clock()


def collect(source, n_samples: int, stream: str, limit_s: float = 5.0) -> list[Block]:
    blocks: list[Block] = []
    deadline = time.monotonic() + limit_s
    while sum(len(b.samples) for b in blocks) < n_samples and time.monotonic() < deadline:
        blocks += [b for b in source.read(0.1) if b.stream == stream]
    return blocks


def test_emg_samples_come_back_exactly_mapped_with_lsl_timestamps(outlet):
    labels = ["EXG0", "EXG1", "EXG2", "EXG3"]
    name, out = outlet("EMG", labels, 250.0)
    source = from_config(Section({"stream": [{
        "type": "EMG", "name": name, "kind": "emg", "scale": 0.001,
        "channels": {"glute_max_l": "EXG2", "glute_max_r": "EXG0", "biceps_femoris_l": 3,
                     "biceps_femoris_r": "EXG1"},
    }]}, "lsl"))
    try:
        [desc] = source.descriptions
        assert desc.stream == "emg" and desc.rate_hz == 250.0 and desc.dtype == "float32"
        assert desc.channel_names == ("glute_max_l", "glute_max_r", "biceps_femoris_l",
                                      "biceps_femoris_r")
        assert {c.scale for c in desc.channels} == {0.001}
        data = np.random.default_rng(5).normal(0, 200, (500, 4)).astype(np.float32)
        t_first = pylsl.local_clock()
        for i in range(0, 500, 25):  # the timestamp of a chunk is its last sample's
            out.push_chunk(data[i:i + 25], t_first + (i + 24) / 250.0)
        blocks = collect(source, 500, "emg")
    finally:
        source.close()
    got = np.vstack([b.samples for b in blocks])
    assert np.array_equal(got, data[:, [2, 0, 3, 1]])
    offset_s = epoch_offset_s()
    assert abs(blocks[0].first_timestamp_ns / 1e9 - (t_first + offset_s)) < 0.002
    position = 0
    for b in blocks:  # contiguous at the nominal rate
        assert b.dropped_before == 0
        expected = blocks[0].first_timestamp_ns + round(position * 1e9 / 250.0)
        assert abs(b.first_timestamp_ns - expected) < 1000
        position += len(b.samples)


def test_a_jump_in_lsl_timestamps_is_reported_as_dropped_samples(outlet):
    name, out = outlet("EMG", ["glute_max_l", "glute_max_r"], 1000.0)
    source = from_config(Section({"stream": [{"name": name, "kind": "emg"}]}, "lsl"))
    try:
        data = np.arange(600, dtype=np.float32).reshape(300, 2)
        t = pylsl.local_clock()
        out.push_chunk(data[:100], t + 99 / 1000)
        first = collect(source, 100, "emg")
        out.push_chunk(data[100:], t + (50 + 299) / 1000)  # 50 samples never arrived
        rest = collect(source, 200, "emg")
    finally:
        source.close()
    assert np.array_equal(np.vstack([b.samples for b in first + rest]), data)
    assert rest[0].dropped_before == 50
    assert sum(b.dropped_before for b in first + rest) == 50
    assert source.dropped_samples == {"emg": 50}
    jump_ns = rest[0].first_timestamp_ns - first[0].first_timestamp_ns
    assert abs(jump_ns - 150 * 1_000_000) < 1000


def test_imu_stream_by_index_keeps_raw_counts_and_puts_the_scale_in_the_description(outlet):
    name, out = outlet("IMU", [f"ch{i}" for i in range(7)], 100.0, "int16")
    source = from_config(Section({"resolve_timeout_s": 2.0, "stream": [{
        "type": "IMU", "name": name, "kind": "imu", "segment": "thigh_l",
        "channels": ["", "gyr_x", "gyr_y", "gyr_z", "acc_x", "acc_y", "acc_z"],
        "acc_scale": 9.80665 / 2048, "gyr_scale": 1 / 16.4,
    }]}, "lsl"))
    try:
        [desc] = source.descriptions
        assert desc.stream == "imu_thigh_l" and desc.segment == "thigh_l"
        assert desc.dtype == "int16"
        assert [c.scale for c in desc.channels] == [9.80665 / 2048] * 3 + [1 / 16.4] * 3
        data = np.random.default_rng(2).integers(-3000, 3000, (120, 7)).astype(np.int16)
        out.push_chunk(data)
        blocks = collect(source, 120, "imu_thigh_l")
    finally:
        source.close()
    got = np.vstack([b.samples for b in blocks])
    assert got.dtype == np.int16
    assert np.array_equal(got, data[:, [4, 5, 6, 1, 2, 3]])


def test_a_stream_not_found_lists_the_visible_ones(outlet):
    name, _ = outlet("EMG", ["a"], 500.0)
    begin = time.monotonic()
    with pytest.raises(SourceError) as err:
        from_config(Section({"stream": [{"name": name + "_absent", "kind": "emg",
                                         "resolve_timeout_s": 0.5}]}, "lsl"))
    # 0.5 s resolve + 1 s listing; liblsl 1.18 sometimes adds ~5 s to its first failed resolve.
    assert time.monotonic() - begin < 10
    message = str(err.value)
    assert f"no LSL stream with name '{name}_absent' found within 0.5 s" in message
    assert f"name '{name}' type 'EMG' (1 ch @ 500 Hz" in message


def test_labels_that_are_not_canonical_need_a_mapping(outlet):
    name, _ = outlet("EMG", ["EXG0", "EXG1"], 500.0)
    with pytest.raises(SourceError, match=r"0:'EXG0', 1:'EXG1'.*channels = \{ glute_max_l = 0"):
        from_config(Section({"stream": [{"name": name, "kind": "emg"}]}, "lsl"))
    with pytest.raises(SourceError, match="no channel labelled 'EXG7'"):
        from_config(Section({"stream": [{"name": name, "kind": "emg",
                                         "channels": {"glute_max_l": "EXG7"}}]}, "lsl"))


def test_config_problems_name_the_field():
    cases = [
        ({}, "no \\[\\[lsl.stream\\]\\] entries"),
        ({"stream": [{"type": "EMG"}]}, "lsl\\.stream\\[0\\]\\] kind"),
        ({"stream": [{"kind": "emg"}]}, "select the LSL stream by name"),
        ({"stream": [{"type": "IMU", "kind": "imu"}]}, "segment: expected the body segment"),
        ({"stream": [{"type": "EMG", "kind": "emg", "channels": ["glute_max_x"]}]},
         "unknown channel name\\(s\\) glute_max_x"),
        ({"stream": [{"type": "EMG", "kind": "emg", "scale": 0}]}, "scale: expected a non-zero"),
        ({"stream": [{"type": "EMG", "kind": "emg", "colour": 1}]}, "unknown setting.*colour"),
    ]
    for data, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            from_config(Section(data, "lsl"))
