"""ICM-20948 driver against the banked-register emulation."""

from __future__ import annotations

import numpy as np
import pytest

from hipstride.edge.hardware import icm20948
from hipstride.edge.hardware.bus import I2CBus
from hipstride.edge.hardware.clock import VirtualClock
from hipstride.edge.hardware.device import DeviceError
from hipstride.edge.hardware.emulated import EmulatedIcm20948, EmulatedMpu6xxx, FakeSMBus


def make(rate_hz=200.0, **kwargs):
    clock = VirtualClock(5.0)
    chip = EmulatedIcm20948(clock)
    driver = icm20948.Icm20948(I2CBus(1, FakeSMBus(1, {0x69: chip})), 0x69, clock=clock,
                               rate_hz=rate_hz, **kwargs)
    return clock, chip, driver


def test_registers_in_the_right_banks():
    _clock, chip, driver = make(accel_range_g=4, gyro_range_dps=500)
    driver.open()
    b0, b2 = chip.banks[0], chip.banks[2]
    assert b2[0x00] == 4 and b2[0x10] == 0 and b2[0x11] == 4  # 1125 / 5 = 225 Hz >= 200
    assert driver.rate_hz == pytest.approx(225.0)
    assert chip.accel_rate() == chip.gyro_rate() == pytest.approx(225.0)
    assert (b2[0x01] >> 1) & 3 == 1 and b2[0x01] & 1  # ±500 dps, DLPF on
    assert (b2[0x14] >> 1) & 3 == 1 and b2[0x14] & 1  # ±4 g, DLPF on
    assert b0[0x67] == 0x1E and b0[0x03] & 0x40 and b0[0x68] == 0  # FIFO: accel+gyro, running
    assert not b0[0x06] & 0x40  # awake
    banks_written = {bank for bank, reg, _ in chip.writes if reg != 0x7F}
    assert banks_written == {0, 2}
    assert chip.bank == 0  # FIFO reads need bank 0


def test_samples_and_overflow():
    clock, chip, driver = make()
    driver.open()
    got = 0
    start = clock.now()
    while clock.now() < start + 2.0:
        got += len(driver.read(0.05).samples)
    assert abs(got - (clock.now() - start) * 225) <= 2
    clock.advance(1.0)  # 512-byte FIFO = 42 samples = 0.19 s at 225 Hz
    after = driver.read(0.05)
    assert driver.overflows == 1 and after.dropped_before > 200
    assert abs(got + len(after.samples) + after.dropped_before - chip.produced) <= 1
    assert np.all(np.abs(after.samples[:, 1] * driver.scales[1] - 9.8) < 5)


def test_mpu_at_the_address_is_named():
    clock = VirtualClock()
    chip = EmulatedMpu6xxx(clock, model="MPU-6050")
    driver = icm20948.Icm20948(I2CBus(1, FakeSMBus(1, {0x68: chip})), 0x68, clock=clock)
    with pytest.raises(DeviceError, match="is 0x00, not 0xEA; it is an MPU-6050"):
        driver.open()
