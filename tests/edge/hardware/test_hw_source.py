"""HardwareSource: config parsing, start-up errors, threads, and a device vanishing mid-run."""

from __future__ import annotations

import time
import tomllib

import numpy as np
import pytest

from hipstride.config import ConfigError, Section
from hipstride.edge.hardware.clock import ScaledClock
from hipstride.edge.sources.base import SourceError
from hipstride.edge.sources.hardware import (
    HardwareSource,
    build_devices,
    parse_hardware,
)

CONFIG = """
[hardware]
retry_s = 0.05
[hardware.emg]
chip = "ads1299"
drdy_gpio = { chip = "/dev/gpiochip0", line = 25 }
rate_hz = 500
channels = { 1 = "glute_max_l", 2 = "glute_max_r", 3 = "biceps_femoris_l", 4 = "biceps_femoris_r" }
[[hardware.imu]]
segment = "pelvis"
chip = "mpu6500"
address = 0x68
mounting = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]
[[hardware.imu]]
segment = "thigh_l"
chip = "icm20948"
address = 0x69
"""


def section(text: str = CONFIG) -> Section:
    return Section(tomllib.loads(text).get("hardware"), "hardware")


def collect(source: HardwareSource, seconds: float) -> dict[str, list]:
    out: dict[str, list] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for block in source.read(0.05):
            out.setdefault(block.stream, []).append(block)
    return out


def chip_of(source: HardwareSource, stream: str):
    dev = next(d for d in source.devices if d.stream == stream)
    driver = dev.driver
    if hasattr(driver, "bus"):
        return driver.bus._smbus.devices[driver.address]
    return driver.spi._spi.chip


def test_emulated_streams_and_descriptions():
    with HardwareSource.from_config(section(), emulate=True, clock=ScaledClock(4.0)) as src:
        desc = {d.stream: d for d in src.descriptions}
        assert set(desc) == {"emg", "imu_pelvis", "imu_thigh_l"}
        emg = desc["emg"]
        assert emg.dtype == "int32" and emg.rate_hz == 500
        assert emg.channel_names == ("glute_max_l", "glute_max_r", "biceps_femoris_l",
                                     "biceps_femoris_r")
        assert emg.channels[0].scale == pytest.approx(4500 / 24 / 2**23)
        assert emg.channels[0].range == pytest.approx((-187.5, 187.5), rel=1e-6)
        assert emg.extra["inputs"]["biceps_femoris_l"] == "CH3"
        pelvis = desc["imu_pelvis"]
        assert pelvis.dtype == "int16" and pelvis.sensor == "MPU-6500"
        assert pelvis.mounting == ((0, 1, 0), (-1, 0, 0), (0, 0, 1))
        assert pelvis.channels[0].scale == pytest.approx(9.80665 / 2048)
        assert desc["imu_thigh_l"].rate_hz == pytest.approx(225.0)
        blocks = collect(src, 0.6)
        assert set(blocks) == set(desc)
        for stream, bs in blocks.items():
            for b in bs:
                assert b.samples.dtype == np.dtype(desc[stream].dtype)
                assert b.samples.shape[1] == desc[stream].n_channels
        acc_y = np.vstack([desc["imu_pelvis"].to_physical(b.samples) for b in
                           blocks["imu_pelvis"]])[:, 1]
        assert 5.0 < acc_y.mean() < 15.0  # gravity on +y, in m/s²
        assert src.problems == []


@pytest.mark.parametrize("stream, expected", [
    ("imu_thigh_l", ["imu_thigh_l", "0x69", "i2cdetect -y 1"]),
    ("emg", ["emg", "SPI0.0", "dtparam=spi=on", "GPIO25"]),
])
def test_absent_device_at_start_is_a_clear_error(stream, expected):
    config = parse_hardware(section())
    devices = build_devices(config, emulate=True)
    dev = next(d for d in devices if d.stream == stream)
    if stream == "emg":
        dev.driver.spi._spi.chip.unplug()
    else:
        dev.driver.bus._smbus.devices[dev.driver.address].unplug()
    with pytest.raises(SourceError) as err:
        HardwareSource(devices)
    for text in expected:
        assert text in str(err.value)


def test_device_vanishing_mid_run_others_continue():
    src = HardwareSource.from_config(section(), emulate=True, clock=ScaledClock(2.0))
    try:
        collect(src, 0.2)
        pelvis = chip_of(src, "imu_pelvis")
        pelvis.unplug()
        during = collect(src, 0.4)
        assert "imu_pelvis" not in during or sum(
            len(b.samples) for b in during["imu_pelvis"]) < 60  # a FIFO's worth at most
        assert len(during["emg"]) > 5 and len(during["imu_thigh_l"]) > 5
        assert any("imu_pelvis" in p and "0x68" in p for p in src.problems)
        pelvis.plug()
        after = collect(src, 0.4)
        assert src.problems == []
        assert after["imu_pelvis"][0].dropped_before > 50  # the gap is accounted for
    finally:
        src.close()
        src.close()  # safe twice


def test_mcp3008_describes_an_envelope():
    text = """
[hardware.emg]
chip = "mcp3008"
rate_hz = 1000
channels = { ch0 = "glute_max_l", ch1 = "glute_max_r" }
"""
    with HardwareSource.from_config(section(text), emulate=True) as src:
        (desc,) = src.descriptions
        assert desc.dtype == "int16" and desc.extra["signal"] == "envelope"
        assert desc.channels[0].range == (0.0, 3300.0)
        blocks = collect(src, 0.2)
        values = np.vstack([desc.to_physical(b.samples) for b in blocks["emg"]])
        assert 0 < values.mean() < 3300


BASE_EMG = """
[hardware.emg]
chip = "ads1299"
drdy_gpio = { line = 25 }
channels = { 1 = "glute_max_l" }
"""


@pytest.mark.parametrize("text, field", [
    (BASE_EMG.replace('"ads1299"', '"ads1298"'), "[hardware.emg] chip"),
    (BASE_EMG.replace("glute_max_l", "glute_l"), "[hardware.emg] channels"),
    (BASE_EMG.replace("1 = ", "9 = "), "[hardware.emg] channels"),
    (BASE_EMG + "rate_hz = 3000\n", "[hardware.emg] rate_hz"),
    (BASE_EMG + "gain = 16\n", "[hardware.emg] gain"),
    (BASE_EMG + "rate = 2000\n", "unknown setting(s) rate"),
    (BASE_EMG.replace("drdy_gpio = { line = 25 }\n", ""), "[hardware.emg] drdy_gpio"),
    (BASE_EMG.replace("{ line = 25 }", '{ chip = "/dev/gpiochip0" }'),
     "[hardware.emg.drdy_gpio] line"),
    ('[[hardware.imu]]\nsegment = "arm"\nchip = "mpu6050"\n', "imu[0]] segment"),
    ('[[hardware.imu]]\nsegment = "pelvis"\nchip = "bno055"\n', "imu[0]] chip"),
    ('[[hardware.imu]]\nsegment = "pelvis"\nchip = "mpu6050"\naddress = 0x50\n',
     "imu[0]] address"),
    ('[[hardware.imu]]\nsegment = "pelvis"\nchip = "mpu6050"\naccel_range_g = 3\n',
     "imu[0]] accel_range_g"),
    ('[[hardware.imu]]\nsegment = "pelvis"\nchip = "mpu6050"\n'
     'mounting = [[1, 0, 0], [0, 1, 0], [0, 0, 2]]\n', "imu[0]] mounting"),
    ('[[hardware.imu]]\nsegment = "pelvis"\nchip = "mpu6050"\n'
     '[[hardware.imu]]\nsegment = "thigh_l"\nchip = "mpu6050"\n', "both at I2C bus 1"),
    ("[hardware]\nretry_s = 1\n", "no devices"),
])
def test_bad_config_names_the_field(text, field):
    with pytest.raises(ConfigError) as err:
        HardwareSource.from_config(section(text), emulate=True)
    assert field in str(err.value)
