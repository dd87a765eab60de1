import numpy as np
import pytest

from hipstride.streams import (
    EMG_CHANNELS_DEFAULT,
    IMU_CHANNELS,
    Channel,
    DescriptionError,
    StreamDescription,
    emg_description,
    imu_description,
)


@pytest.mark.parametrize("description", [
    emg_description(), emg_description(dtype="int32", scale=1e-4, gain=24, sensor="ads1299"),
    imu_description("pelvis"),
    imu_description("thigh_l", mounting=((0, -1, 0), (1, 0, 0), (0, 0, 1)), dtype="int16",
                    acc_scale=9.80665 / 2048, gyr_scale=1 / 16.4)])
def test_descriptions_round_trip_through_json(description):
    assert StreamDescription.from_json(description.to_json()) == description


def test_default_sets_use_canonical_names():
    assert emg_description().channel_names == EMG_CHANNELS_DEFAULT
    d = imu_description("shank_r")
    assert d.stream == "imu_shank_r" and d.channel_names == IMU_CHANNELS
    assert [c.unit for c in d.channels] == ["m/s^2"] * 3 + ["deg/s"] * 3


def test_to_physical_applies_scale_and_offset():
    d = StreamDescription("x", "other", 10.0, "int16",
                          (Channel("a", "mV", scale=0.5, offset=1.0), Channel("b", "mV")))
    out = d.to_physical(np.array([[2, 3], [4, 5]], dtype=np.int16))
    assert out.tolist() == [[2.0, 3.0], [3.0, 5.0]]


@pytest.mark.parametrize("changes, message", [
    ({"kind": "eeg"}, "kind"), ({"rate_hz": 0}, "rate_hz"), ({"dtype": "complex64"}, "dtype"),
    ({"channels": ()}, "at least one"), ({"mounting": ((2, 0, 0), (0, 1, 0), (0, 0, 1))},
                                         "rotation"),
    ({"stream": "Bad Name"}, "stream name")])
def test_invalid_descriptions_say_what_is_wrong(changes, message):
    body = {"stream": "emg", "kind": "emg", "rate_hz": 2000.0, "dtype": "float32",
            "channels": (Channel("glute_max_l", "mV"),), **changes}
    with pytest.raises(DescriptionError, match=message):
        StreamDescription(**body)


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"version": 99}',
                                     b'{"version": 1, "stream": "emg"}'])
def test_unreadable_descriptions_raise_description_error(payload):
    with pytest.raises(DescriptionError):
        StreamDescription.from_json(payload)
