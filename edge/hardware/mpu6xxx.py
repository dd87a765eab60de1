"""InvenSense MPU-6050 / MPU-6500 / MPU-9250 over I2C, read through the FIFO.

Register map (MPU-6000/6050 register map rev 4.2, MPU-6500 and MPU-9250 register maps): the
sample rate is the internal rate (1 kHz with the DLPF on) / (1 + SMPLRT_DIV); DLPF_CFG in CONFIG
sets the gyro (and on the 6050 also the accel) bandwidth, ACCEL_CONFIG2 the accel bandwidth on
the 6500/9250. FIFO_EN 0x78 puts accel + gyro (12 bytes a sample) in the FIFO; FIFO_COUNT is
big-endian at 0x72/0x73 and FIFO_R_W at 0x74 does not auto-increment, so a burst read of n bytes
pops n bytes. FIFO_RESET only acts while USER_CTRL.FIFO_EN is 0.
"""

from __future__ import annotations

from .device import DeviceError
from .imu import FifoImu, divider_for_rate, dlpf_for_rate

SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
ACCEL_CONFIG2 = 0x1D  # MPU-6500 / MPU-9250 only
FIFO_EN = 0x23
INT_PIN_CFG = 0x37
INT_ENABLE = 0x38
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
PWR_MGMT_2 = 0x6C
FIFO_COUNTH = 0x72
FIFO_R_W = 0x74
WHO_AM_I = 0x75

PWR_DEVICE_RESET = 0x80
PWR_CLKSEL_PLL_XGYRO = 0x01
FIFO_EN_ACCEL_GYRO = 0x78  # XG, YG, ZG, ACCEL
INT_FIFO_OFLOW = 0x10
USER_FIFO_EN = 0x40
USER_FIFO_RESET = 0x04

CHIPS = {0x68: "MPU-6050", 0x70: "MPU-6500", 0x71: "MPU-9250"}
FIFO_BYTES = {"MPU-6050": 1024, "MPU-6500": 4096, "MPU-9250": 512}
INTERNAL_RATE_HZ = 1000.0  # with the DLPF enabled (DLPF_CFG 1..6)
#: Gyro 3 dB bandwidth (Hz) per DLPF_CFG with a 1 kHz internal rate (6050 values; the 6500's are
#: a few Hz lower).
GYRO_DLPF_HZ = {1: 188.0, 2: 98.0, 3: 42.0, 4: 20.0, 5: 10.0, 6: 5.0}
#: Accel 3 dB bandwidth (Hz) per A_DLPF_CFG (ACCEL_CONFIG2, ACCEL_FCHOICE_B = 0).
ACCEL_DLPF_HZ = {1: 218.1, 2: 99.0, 3: 44.8, 4: 21.2, 5: 10.2, 6: 5.05}


def mpu_rate_settings(rate_hz: float) -> tuple[int, int, int, float]:
    """(SMPLRT_DIV, DLPF_CFG, A_DLPF_CFG, actual rate Hz) for a requested rate."""
    div, actual = divider_for_rate(INTERNAL_RATE_HZ, rate_hz, 255)
    return div, dlpf_for_rate(GYRO_DLPF_HZ, actual), dlpf_for_rate(ACCEL_DLPF_HZ, actual), actual


class Mpu6xxx(FifoImu):
    """One MPU-6050/6500/9250. ``expect`` names the chip the config asked for (None: any)."""

    def __init__(self, *args, expect: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expect = expect
        self.chip = expect or "MPU-6xxx"
        self.smplrt_div, self.dlpf_cfg, self.accel_dlpf_cfg, self.rate_hz = mpu_rate_settings(
            self.requested_rate_hz)

    def _configure(self) -> None:
        who = self._read(WHO_AM_I)
        chip = CHIPS.get(who)
        if chip is None:
            raise DeviceError(f"{self.name}: WHO_AM_I is 0x{who:02x}, not an MPU-6050 (0x68), "
                              "MPU-6500 (0x70) or MPU-9250 (0x71); check chip and address")
        if self.expect and chip != self.expect:
            raise DeviceError(f"{self.name}: the chip is an {chip} (WHO_AM_I 0x{who:02x}); set "
                              f"chip = \"{chip.replace('-', '').lower()}\" or \"mpu6xxx\"")
        self.chip = chip
        self.fifo_bytes = FIFO_BYTES[chip]
        self._write(PWR_MGMT_1, PWR_DEVICE_RESET)
        self.clock.sleep(0.1)
        self._write(PWR_MGMT_1, PWR_CLKSEL_PLL_XGYRO)  # wake, PLL clock
        self.clock.sleep(0.05)
        self._write(PWR_MGMT_2, 0x00)  # all axes on
        self._write(SMPLRT_DIV, self.smplrt_div)
        self._write(CONFIG, self.dlpf_cfg)  # FIFO_MODE 0, no FSYNC
        self._write(GYRO_CONFIG, self.gyro_code << 3)  # FCHOICE_B = 0
        self._write(ACCEL_CONFIG, self.accel_code << 3)
        expected = {SMPLRT_DIV: self.smplrt_div, CONFIG: self.dlpf_cfg,
                    GYRO_CONFIG: self.gyro_code << 3, ACCEL_CONFIG: self.accel_code << 3}
        if chip != "MPU-6050":
            self._write(ACCEL_CONFIG2, self.accel_dlpf_cfg)
            expected[ACCEL_CONFIG2] = self.accel_dlpf_cfg
        self._write(INT_ENABLE, INT_FIFO_OFLOW)
        self._write(FIFO_EN, FIFO_EN_ACCEL_GYRO)
        self._verify(expected | {FIFO_EN: FIFO_EN_ACCEL_GYRO})
        self._fifo_reset()

    def _overflowed(self) -> bool:
        return bool(self._read(INT_STATUS) & INT_FIFO_OFLOW)  # reading clears it

    def _fifo_count(self) -> int:
        high, low = self.bus.read_block(self.address, FIFO_COUNTH, 2)
        return ((high & 0x1F) << 8) | low

    def _fifo_read(self, n: int) -> bytes:
        return self.bus.read_block(self.address, FIFO_R_W, n)

    def _fifo_reset(self) -> None:
        self._write(USER_CTRL, 0x00)  # FIFO off: FIFO_RESET only works while FIFO_EN = 0
        self._write(USER_CTRL, USER_FIFO_RESET)
        self._read(INT_STATUS)  # clear a stale overflow flag
        self._write(USER_CTRL, USER_FIFO_EN)
