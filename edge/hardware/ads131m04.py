"""TI ADS131M04 (4-channel 24-bit simultaneous-sampling delta-sigma ADC) over SPI.

SPI mode 1, 24-bit words by default. Every frame is one command word in and, out, the response
to the previous frame's command, one word per channel, and a CRC word: CRC-16-CCITT (x^16 + x^12
+ x^5 + 1, seed 0xFFFF) over all bytes before it. Commands: NULL 0x0000 (response: STATUS),
RESET 0x0011 (response 0xFF24 for the 4-channel part), RREG 101a_aaaa_annn_nnnn, WREG
011a_aaaa_annn_nnnn (data words follow in the same frame; response 010a_aaaa_ammm_mmmm).
CLOCK (0x03): CHn_EN bits 11:8, OSR bits 4:2, PWR bits 1:0; fDATA = fCLKIN / 2 / OSR. GAIN1
(0x04): PGAGAINn in bits 4n+2:4n, gain 2**code. MODE (0x02) DRDY_FMT = 1 gives a DRDY pulse per
conversion. Each channel holds a 2-deep FIFO of unread conversions.
1 LSB = 1.2 V / (gain * 2**23).
"""

from __future__ import annotations

import numpy as np

from .adc import DrdyAdc, all_ones
from .device import DeviceError, DeviceLost, decode_int24_be

NULL, RESET, STANDBY, WAKEUP, LOCK, UNLOCK = 0x0000, 0x0011, 0x0022, 0x0033, 0x0555, 0x0655
ID, STATUS, MODE, CLOCK, GAIN1, CFG = 0x00, 0x01, 0x02, 0x03, 0x04, 0x06

SPI_MODE = 1
N_CHANNELS = 4
WORD_BYTES = 3
FRAME_WORDS = N_CHANNELS + 2
RESET_ACK = 0xFF24
ID_HIGH_BYTE = 0x24
#: WLENGTH 24-bit, SPI timeout on, DRDY_SEL most lagging, DRDY_FMT pulse; RESET flag cleared.
MODE_VALUE = 0x0111
PWR_HIGH_RESOLUTION = 0b10
OSR = {0: 128, 1: 256, 2: 512, 3: 1024, 4: 2048, 5: 4096, 6: 8192, 7: 16256}
FIFO_DEPTH = 2
FULL_SCALE_V = 1.2


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def rreg_word(addr: int, count: int = 1) -> int:
    return 0xA000 | (addr << 7) | (count - 1)


def wreg_word(addr: int, count: int = 1) -> int:
    return 0x6000 | (addr << 7) | (count - 1)


def wreg_ack(addr: int, count: int = 1) -> int:
    return 0x4000 | (addr << 7) | (count - 1)


def osr_code(rate_hz: float, clkin_hz: float = 8_192_000.0) -> int:
    for code, osr in OSR.items():
        if abs(clkin_hz / 2 / osr - rate_hz) <= 1e-6 * rate_hz:
            return code
    rates = ", ".join(f"{clkin_hz / 2 / osr:g}" for osr in OSR.values())
    raise ValueError(f"rate {rate_hz} Hz: with a {clkin_hz / 1e6:g} MHz clock the ADS131M04 "
                     f"runs at {rates} Hz")


def gain_code(gain: float) -> int:
    for code in range(8):
        if gain == 2**code:
            return code
    raise ValueError(f"gain {gain}: the ADS131M04 PGA offers 1, 2, 4, ..., 128")


def clock_value(channels: tuple[int, ...], rate_hz: float, clkin_hz: float) -> int:
    mask = sum(1 << ch for ch in channels)
    return (mask << 8) | (osr_code(rate_hz, clkin_hz) << 2) | PWR_HIGH_RESOLUTION


def gain1_value(gain: float) -> int:
    code = gain_code(gain)
    return sum(code << (4 * ch) for ch in range(N_CHANNELS))


def lsb_mv(gain: float) -> float:
    return FULL_SCALE_V * 1000.0 / (gain * 2**23)


def frame(words: list[int], n_words: int = FRAME_WORDS) -> bytes:
    """16-bit command/data words, each MSB-aligned in a 24-bit word, padded to ``n_words``."""
    padded = list(words) + [0] * max(0, n_words - len(words))
    return b"".join(bytes([(w >> 8) & 0xFF, w & 0xFF, 0]) for w in padded)


def parse_frame(data: bytes, n_channels: int = N_CHANNELS) -> tuple[int, np.ndarray, bool]:
    """(response word, int32 value per channel, CRC ok) from one output frame."""
    size = (n_channels + 2) * WORD_BYTES
    if len(data) < size:
        raise ValueError(f"an ADS131M04 frame is {size} bytes, got {len(data)}")
    body = bytes(data[: size - WORD_BYTES])
    crc = (data[size - 3] << 8) | data[size - 2]
    response = (data[0] << 8) | data[1]
    values = decode_int24_be(body[WORD_BYTES:])
    return response, values, crc16_ccitt(body) == crc


class Ads131m04(DrdyAdc):
    """``inputs`` are channel numbers 0..3 (AIN0..AIN3)."""

    chip = "ADS131M04"

    def __init__(self, spi, drdy, *, inputs: tuple[int, ...], rate_hz: float = 2000.0,
                 gain: float = 32, clkin_hz: float = 8_192_000.0, **kwargs) -> None:
        super().__init__(spi, drdy, inputs=inputs, rate_hz=rate_hz, **kwargs)
        if any(not 0 <= i < N_CHANNELS for i in inputs):
            raise ValueError(f"ADS131M04 inputs are 0..3, got {inputs}")
        self.gain = gain
        self.clkin_hz = clkin_hz
        self.settings = {MODE: MODE_VALUE,
                         CLOCK: clock_value(self.inputs, rate_hz, clkin_hz),
                         GAIN1: gain1_value(gain)}
        self.crc_errors = 0

    @property
    def scale_mv(self) -> float:
        return lsb_mv(self.gain)

    def _frame(self, words: list[int]) -> int:
        """Send a frame; return the response word it carried (to the previous command)."""
        return self._checked(self.spi.transfer(frame(words)))[0]

    def _checked(self, data: bytes) -> tuple[int, np.ndarray, bool]:
        if all_ones(data):
            raise DeviceLost(f"{self.name} does not answer (SPI reads all ones)")
        return parse_frame(data)

    def _register(self, addr: int) -> int:
        self._frame([rreg_word(addr)])
        return self._frame([NULL])

    def _configure(self) -> None:
        try:
            self._frame([RESET])
            self.clock.sleep(0.001)
            ack = self._frame([NULL])
        except DeviceLost:
            raise DeviceError(f"no ADS131M04 answered on {self.where} (SPI reads all "
                              "ones)") from None
        if ack != RESET_ACK:
            raise DeviceError(f"{self.name}: RESET answered 0x{ack:04x}, expected 0x{RESET_ACK:04x}"
                              " (0x0000: nothing on MISO; 0xFF22/0xFF28: an ADS131M02/M08)")
        device_id = self._register(ID)
        if device_id >> 8 != ID_HIGH_BYTE:
            raise DeviceError(f"{self.name}: ID register 0x{device_id:04x} is not an "
                              "ADS131M04's (0x24xx)")
        for addr, value in self.settings.items():
            self._frame([wreg_word(addr), value])
            ack = self._frame([NULL])
            if ack != wreg_ack(addr):
                raise DeviceError(f"{self.name}: WREG 0x{addr:02x} answered 0x{ack:04x}")
            got = self._register(addr)
            if got != value:
                raise DeviceError(f"{self.name}: register 0x{addr:02x} reads 0x{got:04x} after "
                                  f"writing 0x{value:04x}; check wiring and SPI mode 1")
        # Empty the 2-deep FIFO, then count conversions from here on.
        for _ in range(FIFO_DEPTH):
            self._frame([NULL])
        self.drdy.clear()

    def _collect(self, edges: int) -> None:
        readable = min(edges, FIFO_DEPTH)
        self._queue.lose(edges - readable)  # overwritten in the FIFO before we came
        for _ in range(readable):
            _, values, crc_ok = self._checked(self.spi.transfer(frame([NULL])))
            if not crc_ok:
                self.crc_errors += 1
                self._queue.lose(1)
                continue
            self._queue.emit(self._select(values, 0))
