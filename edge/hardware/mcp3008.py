"""Microchip MCP3008 (8-channel 10-bit SAR ADC) over SPI, for EMG modules that output an envelope.

SPI mode 0. One conversion is a 3-byte transaction: 0x01 (start bit), then SGL/DIFF, D2, D1, D0
in the top nibble of the second byte, then a dummy byte. The reply's second byte carries a null
bit (bit 2, always 0 from a live chip) and B9..B8 (bits 1:0), the third byte B7..B0. The chip
has no sample clock or DRDY: the driver samples on a timed schedule, one channel after another.
Value in volts = code * VREF / 1024.
"""

from __future__ import annotations

import numpy as np

from .bus import SpiBus
from .clock import Clock, RealClock
from .device import DeviceAbsent, DeviceLost, Reading, SampleQueue

SPI_MODE = 0
MAX_CODE = 1023
N_INPUTS = 8


def request(channel: int, single_ended: bool = True) -> bytes:
    if not 0 <= channel < N_INPUTS:
        raise ValueError(f"MCP3008 channels are 0..7, got {channel}")
    return bytes([0x01, (0x80 if single_ended else 0x00) | (channel << 4), 0x00])


def parse_reply(reply: bytes) -> int | None:
    """The 10-bit code, or None when the null bit is not 0 (no chip driving MISO)."""
    if len(reply) != 3 or reply[1] & 0x04:
        return None
    return ((reply[1] & 0x03) << 8) | reply[2]


def lsb_mv(vref_v: float) -> float:
    return vref_v * 1000.0 / 1024


class Mcp3008:
    chip = "MCP3008"
    dtype = "int16"

    def __init__(self, spi: SpiBus, *, inputs: tuple[int, ...], rate_hz: float = 1000.0,
                 vref_v: float = 3.3, block_s: float = 0.02, clock: Clock | None = None) -> None:
        for ch in inputs:
            request(ch)
        if not inputs:
            raise ValueError("at least one input channel is needed")
        self.spi = spi
        self.inputs = tuple(inputs)
        self.rate_hz = float(rate_hz)
        self.vref_v = vref_v
        self.block = max(1, round(self.rate_hz * block_s))
        self.clock = clock or RealClock()
        self._queue = SampleQueue(len(self.inputs), self.dtype)
        self._t0 = 0.0
        self._k = 0

    n_channels = property(lambda self: len(self.inputs))

    @property
    def where(self) -> str:
        return self.spi.name

    @property
    def name(self) -> str:
        return f"{self.chip} on {self.where}"

    @property
    def scale_mv(self) -> float:
        return lsb_mv(self.vref_v)

    def open(self) -> None:
        self._queue.clear()
        try:
            self._sample()
        except DeviceLost:
            raise DeviceAbsent(f"no MCP3008 answered on {self.where}: the null bit reads 1 "
                               "(MISO floats high)") from None
        except OSError as err:
            raise DeviceAbsent(f"no answer from {self.name} ({err.strerror or err})") from None
        self._t0 = self.clock.now()
        self._k = 0

    def _sample(self) -> np.ndarray:
        row = np.empty(len(self.inputs), dtype=np.int16)
        for i, ch in enumerate(self.inputs):
            code = parse_reply(self.spi.transfer(request(ch)))
            if code is None:
                raise DeviceLost(f"{self.name} stopped answering (null bit reads 1)")
            row[i] = code
        return row

    def read(self, timeout_s: float) -> Reading:
        """Samples on the schedule t0 + k / rate; ticks missed by a late reader count as dropped."""
        deadline = self.clock.now() + timeout_s
        while not self._queue.ready(self.block):
            tick = self._t0 + self._k / self.rate_hz
            now = self.clock.now()
            if tick > now:
                if tick > deadline:
                    break
                self.clock.sleep(tick - now)
                continue
            missed = int((now - tick) * self.rate_hz)
            if missed:
                self._queue.lose(missed)
                self._k += missed
            self._queue.emit(self._sample())
            self._k += 1
        return self._queue.take(self.block)

    def close(self) -> None:
        """The SPI device belongs to the source."""
