"""ADS131M04 driver against the frame-level emulation: commands, CRC, FIFO, DRDY."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hipstride.edge.hardware import ads131m04 as m04
from hipstride.edge.hardware.bus import SpiBus
from hipstride.edge.hardware.clock import VirtualClock
from hipstride.edge.hardware.device import DeviceError, encode_int24_be
from hipstride.edge.hardware.emulated import (
    EmulatedAds131m04,
    EmulatedDataReady,
    FakeSpiDev,
    emg_signal,
)


def make(inputs=(0, 1, 2, 3), rate_hz=2000, gain=32, present=True):
    clock = VirtualClock(2.0)
    chip = EmulatedAds131m04(clock)
    spi = SpiBus(0, 1, mode=1, max_speed_hz=8_000_000, spi=FakeSpiDev(chip if present else None))
    driver = m04.Ads131m04(spi, EmulatedDataReady(chip, clock), inputs=inputs, rate_hz=rate_hz,
                           gain=gain, clock=clock)
    return clock, chip, driver


def test_registers():
    _clock, chip, driver = make(inputs=(0, 2), rate_hz=1000, gain=8)
    driver.open()
    assert chip.regs[m04.CLOCK] == (0b0101 << 8) | (5 << 2) | 0b10  # CH0+CH2, OSR 4096
    assert chip.regs[m04.GAIN1] == 0x3333
    assert chip.regs[m04.MODE] == 0x0111
    assert chip.rate_hz == 1000


def test_samples_scale_and_count():
    clock, _chip, driver = make()
    driver.open()
    start = clock.now()
    blocks = []
    while clock.now() - start < 1.0:
        blocks.append(driver.read(0.05))
    samples = np.vstack([b.samples for b in blocks])
    assert sum(b.dropped_before for b in blocks) == 0
    assert len(samples) == round((clock.now() - start) * 2000)
    first = blocks[0].samples[:5]
    t = start + np.arange(1, 6) / 2000.0
    np.testing.assert_allclose(first * driver.scale_mv, emg_signal(t, 4)[:, :4],
                               atol=2 * driver.scale_mv)


def test_fifo_keeps_two_and_drops_the_rest():
    clock, _chip, driver = make()
    driver.open()
    driver.read(0.02)
    clock.advance(0.005)  # 10 conversions unread; the 2-deep FIFO keeps the last two
    reading = driver.read(0.0)
    assert reading.dropped_before == 8
    assert len(reading.samples) == 2


def test_crc_error_is_a_dropped_sample():
    _clock, chip, driver = make()
    driver.open()
    driver.read(0.01)
    chip.corrupt_next = 1
    readings = [driver.read(0.01) for _ in range(3)]
    assert driver.crc_errors == 1
    assert sum(r.dropped_before for r in readings) == 1


def test_absent():
    _clock, _chip, driver = make(present=False)
    with pytest.raises(DeviceError, match=r"no ADS131M04 answered on SPI0\.1"):
        driver.open()


def test_crc_reference_value():
    assert m04.crc16_ccitt(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value


@given(st.integers(0, 0xFFFF), st.lists(st.integers(-(2**23), 2**23 - 1), min_size=4,
                                         max_size=4))
def test_parse_frame_roundtrip(response, values):
    body = bytes([response >> 8, response & 0xFF, 0]) + encode_int24_be(np.array(values))
    crc = m04.crc16_ccitt(body)
    got_response, got, ok = m04.parse_frame(body + bytes([crc >> 8, crc & 0xFF, 0]))
    assert ok and got_response == response and got.tolist() == values
    _, _, bad = m04.parse_frame(body + bytes([crc >> 8, (crc ^ 1) & 0xFF, 0]))
    assert not bad


def test_command_words():
    assert m04.rreg_word(0x03) == 0xA180
    assert m04.wreg_word(0x04, 2) == 0x6201
    with pytest.raises(ValueError, match="2000"):
        m04.osr_code(3000)
