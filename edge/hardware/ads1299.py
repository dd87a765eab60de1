"""TI ADS1299 (8-channel 24-bit biopotential ADC, as on OpenBCI Cyton boards) over SPI.

SPI mode 1. Single-byte opcodes: WAKEUP 0x02, STANDBY 0x04, RESET 0x06, START 0x08, STOP 0x0A,
RDATAC 0x10, SDATAC 0x11, RDATA 0x12; register access RREG 0x20|addr, WREG 0x40|addr, each
followed by (count - 1). The chip powers up in RDATAC mode, where it ignores RREG/WREG, so
SDATAC comes first. ID (0x00) = 0x3E for the 8-channel part (bits 3:2 = 11, NU_CH bits 1:0).
CONFIG1 DR[2:0] sets the rate (16 kSPS >> DR); CHnSET holds PD (7), GAIN[6:4] (1..24), SRB2 (3)
and MUX[2:0]. A conversion is 3 status bytes (1100 + LOFF_STATP + LOFF_STATN + GPIO) then a
big-endian 24-bit two's-complement word per channel; 1 LSB = VREF / (gain * 2**23).
"""

from __future__ import annotations

import numpy as np

from .adc import DrdyAdc, all_ones
from .device import DeviceError, DeviceLost, decode_int24_be

WAKEUP, STANDBY, RESET, START, STOP = 0x02, 0x04, 0x06, 0x08, 0x0A
RDATAC, SDATAC, RDATA = 0x10, 0x11, 0x12
RREG, WREG = 0x20, 0x40

ID = 0x00
CONFIG1, CONFIG2, CONFIG3, LOFF = 0x01, 0x02, 0x03, 0x04
CH1SET = 0x05
BIAS_SENSP, BIAS_SENSN = 0x0D, 0x0E
MISC1 = 0x15
CONFIG4 = 0x17

SPI_MODE = 1
COMMAND_SPEED_HZ = 1_000_000  # slow enough for the 4-tCLK decode time between command bytes
DATA_RATES_HZ = {16000: 0, 8000: 1, 4000: 2, 2000: 3, 1000: 4, 500: 5, 250: 6}
GAINS = {1: 0, 2: 1, 4: 2, 6: 3, 8: 4, 12: 5, 24: 6}
CHANNELS_BY_NU_CH = {0: 4, 1: 6, 2: 8}
CONFIG1_BASE = 0x90  # reserved bit 7 = 1, bits 4:3 = 10, daisy-chain mode, no clock output
CONFIG2_NO_TEST = 0xC0
CONFIG3_REF_BIAS = 0xEC  # internal reference buffer on, internal BIASREF, bias buffer on
CONFIG3_REF_ONLY = 0xE0
CHNSET_OFF = 0x81  # powered down, input shorted
STATUS_MARK = 0xC  # top nibble of the first status byte
TOTAL_CHANNELS = 8


def data_rate_code(rate_hz: float) -> int:
    code = DATA_RATES_HZ.get(int(rate_hz)) if float(rate_hz).is_integer() else None
    if code is None:
        raise ValueError(f"rate {rate_hz} Hz: the ADS1299 runs at "
                         + ", ".join(str(r) for r in sorted(DATA_RATES_HZ)) + " Hz")
    return code


def gain_code(gain: float) -> int:
    if gain not in GAINS:
        raise ValueError(f"gain {gain}: the ADS1299 PGA offers {', '.join(map(str, GAINS))}")
    return GAINS[int(gain)]


def config1(rate_hz: float) -> int:
    return CONFIG1_BASE | data_rate_code(rate_hz)


def chnset(gain: float, used: bool) -> int:
    """CHnSET: normal electrode input (MUX 000), SRB2 open, the gain; or powered down."""
    return (gain_code(gain) << 4) if used else CHNSET_OFF


def lsb_mv(vref_v: float, gain: float) -> float:
    """Millivolts at the input per count."""
    return vref_v * 1000.0 / (gain * 2**23)


def id_channels(device_id: int) -> int | None:
    """Channel count from the ID register, or None when it is not an ADS1299."""
    if device_id & 0x1C != 0x1C:  # bit 4 reads 1, DEV_ID bits 3:2 = 11
        return None
    return CHANNELS_BY_NU_CH.get(device_id & 0x03)


def rreg(addr: int, count: int) -> bytes:
    return bytes([RREG | addr, count - 1]) + bytes(count)


def wreg(addr: int, values: list[int]) -> bytes:
    return bytes([WREG | addr, len(values) - 1, *values])


def frame_bytes(n_channels: int) -> int:
    return 3 + 3 * n_channels


def parse_frame(frame: bytes, n_channels: int) -> tuple[int, np.ndarray]:
    """(24-bit status word, int32 value per channel) from one conversion's bytes."""
    if len(frame) != frame_bytes(n_channels):
        raise ValueError(f"an ADS1299 frame with {n_channels} channels has "
                         f"{frame_bytes(n_channels)} bytes, got {len(frame)}")
    status = (frame[0] << 16) | (frame[1] << 8) | frame[2]
    return status, decode_int24_be(bytes(frame[3:]))


class Ads1299(DrdyAdc):
    """``inputs`` are the channel numbers used, CH1..CH8 as the datasheet numbers them."""

    chip = "ADS1299"

    def __init__(self, spi, drdy, *, inputs: tuple[int, ...], rate_hz: float = 2000.0,
                 gain: float = 24, vref_v: float = 4.5, bias: bool = True, **kwargs) -> None:
        super().__init__(spi, drdy, inputs=inputs, rate_hz=rate_hz, **kwargs)
        if any(not 1 <= i <= TOTAL_CHANNELS for i in inputs):
            raise ValueError(f"ADS1299 inputs are 1..8, got {inputs}")
        self.gain = gain
        self.vref_v = vref_v
        self.bias = bias
        self.rate_code = data_rate_code(rate_hz)
        gain_code(gain)
        self.chip_channels = TOTAL_CHANNELS

    @property
    def scale_mv(self) -> float:
        return lsb_mv(self.vref_v, self.gain)

    def _command(self, data: bytes) -> bytes:
        return self.spi.transfer(data, COMMAND_SPEED_HZ)

    def _configure(self) -> None:
        self._command(bytes([SDATAC]))  # in case it streams from a previous run
        self._command(bytes([RESET]))
        self.clock.sleep(0.001)  # > 18 tCLK
        self._command(bytes([SDATAC]))  # RESET puts it back in RDATAC mode
        reply = self._command(rreg(ID, 1))
        device_id = reply[2]
        n = id_channels(device_id)
        if all_ones(reply[2:]) or device_id == 0x00:
            raise DeviceError(f"no ADS1299 answered on {self.where}: the ID register reads "
                              f"0x{device_id:02x}")
        if n is None:
            raise DeviceError(f"{self.name}: ID register 0x{device_id:02x} is not an ADS1299's "
                              "(expected 0x3E, 0x3D or 0x3C)")
        if max(self.inputs) > n:
            raise DeviceError(f"{self.name}: this ADS1299 has {n} channels, the config uses "
                              f"CH{max(self.inputs)}")
        self.chip_channels = n
        mask = sum(1 << (i - 1) for i in self.inputs)
        self._command(wreg(CONFIG3, [CONFIG3_REF_BIAS if self.bias else CONFIG3_REF_ONLY]))
        self.clock.sleep(0.15)  # internal reference settling
        settings = {
            CONFIG1: config1(self.rate_hz),
            CONFIG2: CONFIG2_NO_TEST,
            **{CH1SET + i: chnset(self.gain, i + 1 in self.inputs) for i in range(n)},
            BIAS_SENSP: mask if self.bias else 0,
            BIAS_SENSN: mask if self.bias else 0,
        }
        self._command(wreg(CONFIG1, [settings[CONFIG1], settings[CONFIG2]]))
        self._command(wreg(CH1SET, [settings[CH1SET + i] for i in range(n)]))
        self._command(wreg(BIAS_SENSP, [settings[BIAS_SENSP], settings[BIAS_SENSN]]))
        self._command(wreg(MISC1, [0x00]))  # SRB1 open: bipolar (differential) EMG inputs
        first, last = CONFIG1, BIAS_SENSN
        readback = self._command(rreg(first, last - first + 1))[2:]
        for reg, value in settings.items():
            if readback[reg - first] != value:
                raise DeviceError(f"{self.name}: register 0x{reg:02x} reads "
                                  f"0x{readback[reg - first]:02x} after writing 0x{value:02x}; "
                                  "check MISO/MOSI wiring and SPI mode 1")
        self.drdy.clear()
        self._command(bytes([START]))
        self._command(bytes([RDATAC]))

    def _collect(self, edges: int) -> None:
        # Only the latest conversion is held; earlier ones behind these edges were overwritten.
        self._queue.lose(edges - 1)
        frame = self.spi.transfer(bytes(frame_bytes(self.chip_channels)))
        if all_ones(frame):
            raise DeviceLost(f"{self.name} stopped answering (SPI reads all ones)")
        status, values = parse_frame(frame, self.chip_channels)
        if status >> 20 != STATUS_MARK:
            self.bad_frames += 1
            self._queue.lose(1)
            return
        self._queue.emit(self._select(values, 1))
