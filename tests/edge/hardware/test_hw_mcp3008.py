"""MCP3008 driver: 3-byte transactions, null bit, timed sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hipstride.edge.hardware import mcp3008
from hipstride.edge.hardware.bus import SpiBus
from hipstride.edge.hardware.clock import VirtualClock
from hipstride.edge.hardware.device import DeviceAbsent, DeviceLost
from hipstride.edge.hardware.emulated import EmulatedMcp3008, FakeSpiDev


def make(inputs=(0, 5), rate_hz=1000, present=True, signal=None):
    clock = VirtualClock(3.0)
    chip = EmulatedMcp3008(clock, signal)
    spi = SpiBus(0, 0, mode=0, max_speed_hz=1_000_000, spi=FakeSpiDev(chip if present else None))
    return clock, chip, mcp3008.Mcp3008(spi, inputs=inputs, rate_hz=rate_hz, clock=clock)


def test_request_bytes():
    assert mcp3008.request(0) == bytes([0x01, 0x80, 0x00])
    assert mcp3008.request(5) == bytes([0x01, 0xD0, 0x00])


@given(st.integers(0, 1023), st.integers(0, 31))
def test_parse_reply_masks_hi_z_bits(code, junk):
    reply = bytes([0xFF, (junk << 3) | (code >> 8), code & 0xFF])
    assert mcp3008.parse_reply(reply) == code
    assert mcp3008.parse_reply(reply[:1] + bytes([reply[1] | 0x04]) + reply[2:]) is None


def test_values_and_timing():
    def signal(t):
        return np.column_stack([np.full(len(t), 1000.0 + 100 * i) for i in range(8)])

    clock, _chip, driver = make(signal=signal)
    driver.open()
    start = clock.now()
    n = 0
    while clock.now() - start < 2.0:
        r = driver.read(0.05)
        n += len(r.samples)
        assert r.dropped_before == 0
    assert abs(n - (clock.now() - start) * 1000) <= 1
    np.testing.assert_allclose(r.samples[-1] * driver.scale_mv, [1000.0, 1500.0],
                               atol=driver.scale_mv)


def test_late_reader_skips_ticks():
    clock, _chip, driver = make()
    driver.open()
    driver.read(0.02)
    clock.advance(0.1)
    r = driver.read(0.02)
    assert 95 <= r.dropped_before <= 101


def test_absent_and_lost():
    with pytest.raises(DeviceAbsent, match="null bit"):
        make(present=False)[2].open()
    _clock, chip, driver = make()
    driver.open()
    chip.unplug()
    with pytest.raises(DeviceLost):
        driver.read(0.05)
