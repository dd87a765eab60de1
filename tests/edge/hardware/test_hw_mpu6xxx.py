"""MPU-6050/6500/9250 driver against the register-level emulation, on a virtual clock."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hipstride.edge.hardware import mpu6xxx
from hipstride.edge.hardware.bus import I2CBus
from hipstride.edge.hardware.clock import VirtualClock
from hipstride.edge.hardware.device import DeviceAbsent, DeviceError, decode_int16_be
from hipstride.edge.hardware.emulated import EmulatedMpu6xxx, FakeSMBus, imu_signal
from hipstride.edge.hardware.imu import accel_scale_ms2, divider_for_rate, gyro_scale_dps


def make(model="MPU-6500", address=0x68, **kwargs):
    clock = VirtualClock(100.0)
    chip = EmulatedMpu6xxx(clock, model=model)
    bus = I2CBus(1, FakeSMBus(1, {address: chip}))
    driver = mpu6xxx.Mpu6xxx(bus, address, clock=clock, **kwargs)
    return clock, chip, driver


def read_for(driver, clock, seconds):
    end = clock.now() + seconds
    blocks = []
    while clock.now() < end:
        blocks.append(driver.read(0.05))
    return blocks


@pytest.mark.parametrize("model", ["MPU-6050", "MPU-6500", "MPU-9250"])
def test_configuration_follows_the_datasheet(model):
    _clock, chip, driver = make(model, rate_hz=200, accel_range_g=8, gyro_range_dps=1000)
    driver.open()
    writes = [(reg, value) for _, reg, value in chip.writes]
    # reset first, then wake with the PLL clock
    assert writes[0] == (0x6B, 0x80)
    assert writes[1] == (0x6B, 0x01)
    r = chip.regs
    assert r[0x19] == 4  # 1 kHz / (1 + 4) = 200 Hz
    assert r[0x1A] & 0x07 == 2  # DLPF ~98 Hz < 100 Hz Nyquist; enables the 1 kHz base
    assert (r[0x1B] >> 3) & 3 == 2 and (r[0x1C] >> 3) & 3 == 2  # ±1000 dps, ±8 g
    assert r[0x23] == 0x78  # accel + gyro into the FIFO
    assert r[0x6A] & 0x40  # FIFO on
    assert r[0x38] & 0x10  # FIFO overflow interrupt enabled
    assert (0x1D in [reg for reg, _ in writes]) == (model != "MPU-6050")
    assert driver.chip == model and driver.rate_hz == 200.0


def test_burst_reads_are_parsed_and_scaled():
    clock, _chip, driver = make(rate_hz=200, accel_range_g=16, gyro_range_dps=2000)
    driver.open()
    clock.advance(0.1)
    reading = driver.read(0.0)
    assert reading.samples.dtype == np.int16 and reading.samples.shape == (20, 6)
    t = 100.0 + 0.15 + np.arange(1, 21) / 200.0  # the FIFO started after reset and wake-up
    expected = imu_signal(t)
    physical = reading.samples * np.array(driver.scales)
    np.testing.assert_allclose(physical[:, :3], expected[:, :3], atol=accel_scale_ms2(16))
    np.testing.assert_allclose(physical[:, 3:], expected[:, 3:], atol=gyro_scale_dps(2000))


def test_sample_count_over_a_virtual_span():
    clock, chip, driver = make(rate_hz=100)
    driver.open()
    total = sum(len(b.samples) for b in read_for(driver, clock, 5.0))
    total += len(driver.read(0.0).samples)
    assert total == chip.produced
    assert abs(total - 500) <= 2


def test_fifo_overflow_is_reset_and_counted():
    clock, chip, driver = make("MPU-6050", rate_hz=200)
    driver.open()
    got = sum(len(b.samples) for b in read_for(driver, clock, 1.0))
    clock.advance(2.0)  # the 1024-byte FIFO holds 85 samples: 0.43 s
    after = driver.read(0.05)
    assert driver.overflows == 1
    assert after.dropped_before >= 390
    more = sum(len(b.samples) + b.dropped_before for b in read_for(driver, clock, 0.5))
    total = got + len(after.samples) + after.dropped_before + more
    assert abs(total - chip.produced) <= 1


def test_fifo_reset_needs_fifo_disabled():
    """The emulation honours the datasheet: FIFO_RESET with FIFO_EN set does nothing."""
    clock, chip, driver = make()
    driver.open()
    clock.advance(0.05)
    chip.write(0x6A, bytes([0x44]))
    assert len(chip.fifo) > 0
    chip.write(0x6A, bytes([0x04]))
    assert len(chip.fifo) == 0


def test_absent_device():
    clock = VirtualClock()
    driver = mpu6xxx.Mpu6xxx(I2CBus(1, FakeSMBus(1, {})), 0x68, clock=clock)
    with pytest.raises(DeviceAbsent, match="0x68"):
        driver.open()


def test_wrong_chip_is_named():
    _clock, _chip, driver = make("MPU-6500", expect="MPU-6050")
    with pytest.raises(DeviceError, match="MPU-6500"):
        driver.open()


def test_device_vanishing_raises_oserror():
    _clock, chip, driver = make()
    driver.open()
    chip.unplug()
    with pytest.raises(OSError):
        driver.read(0.05)


@given(st.lists(st.integers(-32768, 32767), min_size=6, max_size=60).filter(
    lambda v: len(v) % 6 == 0))
def test_decode_big_endian(values):
    data = np.array(values, dtype=">i2").tobytes()
    np.testing.assert_array_equal(decode_int16_be(data, 6).ravel(), values)


@given(st.floats(4.0, 1000.0))
def test_divider_gives_a_rate_at_or_above(rate):
    div, actual = divider_for_rate(1000.0, rate, 255)
    assert actual >= rate * (1 - 1e-9)
    assert 0 <= div <= 255
    assert div == 0 or 1000.0 / (div + 1 + 1) < rate
