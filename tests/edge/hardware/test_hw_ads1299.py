"""ADS1299 driver against the SPI command-level emulation and its DRDY line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hipstride.edge.hardware import ads1299
from hipstride.edge.hardware.bus import SpiBus
from hipstride.edge.hardware.clock import VirtualClock
from hipstride.edge.hardware.device import DeviceError, DeviceLost, encode_int24_be
from hipstride.edge.hardware.emulated import (
    EmulatedAds1299,
    EmulatedDataReady,
    FakeSpiDev,
    emg_signal,
)


def make(inputs=(1, 2, 3, 4), rate_hz=2000, gain=24, chip_present=True, signal=None, mode=1):
    clock = VirtualClock(1.0)
    chip = EmulatedAds1299(clock, signal)
    spi = SpiBus(0, 0, mode=mode, max_speed_hz=4_000_000,
                 spi=FakeSpiDev(chip if chip_present else None))
    drdy = EmulatedDataReady(chip, clock)
    driver = ads1299.Ads1299(spi, drdy, inputs=inputs, rate_hz=rate_hz, gain=gain, clock=clock)
    return clock, chip, driver


def test_registers_written_as_the_datasheet_requires():
    _clock, chip, driver = make(inputs=(1, 3), rate_hz=1000, gain=12)
    driver.open()
    assert chip.regs[0x01] == 0x94  # CONFIG1: reserved 1, bits 4:3 = 10, DR 100 = 1 kSPS
    assert chip.regs[0x03] == 0xEC  # internal reference, bias
    assert chip.regs[0x05] == 0x50 and chip.regs[0x07] == 0x50  # gain 12, normal input
    assert chip.regs[0x06] == 0x81 and chip.regs[0x0C] == 0x81  # unused: powered down
    assert chip.regs[0x0D] == chip.regs[0x0E] == 0b101
    # SDATAC before any register access, START then RDATAC at the end
    assert chip.commands[-2:] == [0x08, 0x10]
    assert chip.rdatac and chip.running and chip.rate_hz == 1000


def test_blocks_match_the_signal_in_mv():
    _clock, chip, driver = make()
    driver.open()
    reading = driver.read(0.1)
    assert reading.samples.dtype == np.int32 and reading.samples.shape == (40, 4)
    t = chip._schedule.anchor + np.arange(1, 41) / 2000.0
    np.testing.assert_allclose(reading.samples * driver.scale_mv, emg_signal(t)[:, :4],
                               atol=2 * driver.scale_mv)
    assert driver.scale_mv == pytest.approx(4500 / 24 / 2**23)


def test_drdy_timing_gives_the_expected_count():
    clock, _chip, driver = make(rate_hz=500)
    driver.open()
    start = clock.now()
    total = 0
    while clock.now() - start < 3.0:
        reading = driver.read(0.05)
        total += len(reading.samples)
        assert reading.dropped_before == 0
    assert total == round((clock.now() - start) * 500)


def test_late_reader_counts_overwritten_conversions():
    clock, chip, driver = make()
    driver.open()
    first = driver.read(0.05)
    clock.advance(0.0105)  # 21 conversions pass unread: only the latest is still there
    second = driver.read(0.05)
    assert second.dropped_before == 20
    assert len(first.samples) + len(second.samples) + second.dropped_before == chip.conversions()


def test_absent_chip_reads_all_ones():
    _clock, _chip, driver = make(chip_present=False)
    with pytest.raises(DeviceError, match="ID register reads 0xff"):
        driver.open()


def test_wrong_spi_mode_is_caught_by_readback():
    _clock, _chip, driver = make(mode=0)
    with pytest.raises(DeviceError):
        driver.open()


def test_vanishing_chip_is_lost():
    _clock, chip, driver = make()
    driver.open()
    driver.read(0.05)
    chip.unplug()
    with pytest.raises(DeviceLost, match="no data-ready"):
        for _ in range(30):
            driver.read(0.05)


@given(st.lists(st.integers(-(2**23), 2**23 - 1), min_size=8, max_size=8))
def test_parse_frame(values):
    frame = bytes([0xC0, 0x0F, 0x00]) + encode_int24_be(np.array(values))
    status, parsed = ads1299.parse_frame(frame, 8)
    assert status == 0xC00F00
    assert parsed.tolist() == values


def test_rate_and_gain_validation():
    with pytest.raises(ValueError, match="250"):
        ads1299.data_rate_code(3000)
    with pytest.raises(ValueError):
        ads1299.gain_code(16)
    assert ads1299.config1(2000) == 0x93
