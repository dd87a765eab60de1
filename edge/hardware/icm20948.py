"""TDK InvenSense ICM-20948 over I2C, read through the FIFO.

Registers live in four banks chosen by REG_BANK_SEL (0x7F, bits 5:4, present in every bank).
Bank 0 holds WHO_AM_I (0xEA), power, interrupts and the FIFO; bank 2 the sample-rate dividers
and accel/gyro configuration. ODR = 1.125 kHz / (1 + divider) for both sensors when their DLPF
is in use (FCHOICE = 1); the gyro divider is 8-bit, the accel divider 12-bit.
"""

from __future__ import annotations

from .device import DeviceError
from .imu import FifoImu, divider_for_rate, dlpf_for_rate

REG_BANK_SEL = 0x7F
# bank 0
WHO_AM_I = 0x00
USER_CTRL = 0x03
PWR_MGMT_1 = 0x06
PWR_MGMT_2 = 0x07
INT_ENABLE_2 = 0x12
INT_STATUS_2 = 0x1B
ACCEL_XOUT_H = 0x2D
FIFO_EN_1 = 0x66
FIFO_EN_2 = 0x67
FIFO_RST = 0x68
FIFO_MODE = 0x69
FIFO_COUNTH = 0x70
FIFO_R_W = 0x72
# bank 2
GYRO_SMPLRT_DIV = 0x00
GYRO_CONFIG_1 = 0x01
ODR_ALIGN_EN = 0x09
ACCEL_SMPLRT_DIV_1 = 0x10
ACCEL_SMPLRT_DIV_2 = 0x11
ACCEL_CONFIG = 0x14

ICM20948_ID = 0xEA
MPU_WHO_AM_I = 0x75  # where an MPU-6xxx at the same address keeps its ID
MPU_IDS = {0x68: "MPU-6050", 0x70: "MPU-6500", 0x71: "MPU-9250"}
PWR_DEVICE_RESET = 0x80
PWR_CLKSEL_AUTO = 0x01
FIFO_EN_2_ACCEL_GYRO = 0x1E  # ACCEL, GYRO_Z, GYRO_Y, GYRO_X
USER_FIFO_EN = 0x40
FIFO_OVERFLOW = 0x1F
BASE_RATE_HZ = 1125.0
#: Gyro 3 dB bandwidth (Hz) per GYRO_DLPFCFG, accel per ACCEL_DLPFCFG (FCHOICE = 1).
GYRO_DLPF_HZ = {0: 196.6, 1: 151.8, 2: 119.5, 3: 51.2, 4: 23.9, 5: 11.6, 6: 5.7}
ACCEL_DLPF_HZ = {0: 246.0, 2: 111.4, 3: 50.4, 4: 23.9, 5: 11.5, 6: 5.7}


def icm_rate_settings(rate_hz: float) -> tuple[int, int, int, float]:
    """(divider, GYRO_DLPFCFG, ACCEL_DLPFCFG, actual rate Hz): the lowest ODR >= rate_hz."""
    div, actual = divider_for_rate(BASE_RATE_HZ, rate_hz, 255)
    return div, dlpf_for_rate(GYRO_DLPF_HZ, actual), dlpf_for_rate(ACCEL_DLPF_HZ, actual), actual


def gyro_config_1(dlpf: int, fs_code: int) -> int:
    return (dlpf << 3) | (fs_code << 1) | 0x01  # GYRO_FCHOICE = 1: DLPF on


def accel_config(dlpf: int, fs_code: int) -> int:
    return (dlpf << 3) | (fs_code << 1) | 0x01  # ACCEL_FCHOICE = 1: DLPF on


class Icm20948(FifoImu):
    chip = "ICM-20948"
    fifo_bytes = 512

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.divider, self.gyro_dlpf, self.accel_dlpf, self.rate_hz = icm_rate_settings(
            self.requested_rate_hz)

    def _bank(self, bank: int) -> None:
        self._write(REG_BANK_SEL, bank << 4)

    def _configure(self) -> None:
        self._bank(0)
        who = self._read(WHO_AM_I)
        if who != ICM20948_ID:
            mpu = MPU_IDS.get(self._read(MPU_WHO_AM_I))
            found = f"it is an {mpu}: set chip = \"mpu6xxx\"" if mpu else "check chip and address"
            raise DeviceError(f"{self.name}: WHO_AM_I (bank 0, 0x00) is 0x{who:02x}, not 0xEA; "
                              + found)
        self._write(PWR_MGMT_1, PWR_DEVICE_RESET)
        self.clock.sleep(0.1)
        self._bank(0)  # the reset returns to bank 0; say so explicitly
        self._write(PWR_MGMT_1, PWR_CLKSEL_AUTO)  # wake, best clock
        self.clock.sleep(0.05)
        self._write(PWR_MGMT_2, 0x00)  # accel and gyro on
        self._bank(2)
        gyro, acc = (gyro_config_1(self.gyro_dlpf, self.gyro_code),
                     accel_config(self.accel_dlpf, self.accel_code))
        bank2 = {GYRO_SMPLRT_DIV: self.divider, GYRO_CONFIG_1: gyro,
                 ACCEL_SMPLRT_DIV_1: self.divider >> 8, ACCEL_SMPLRT_DIV_2: self.divider & 0xFF,
                 ACCEL_CONFIG: acc, ODR_ALIGN_EN: 0x01}
        for reg, value in bank2.items():
            self._write(reg, value)
        self._verify(bank2, " (bank 2)")
        self._bank(0)
        self._write(INT_ENABLE_2, 0x01)  # FIFO_OVERFLOW_EN for FIFO 0
        self._write(USER_CTRL, 0x00)  # no DMP, no I2C master, FIFO off while configuring
        self._write(FIFO_EN_1, 0x00)  # no external sensors
        self._write(FIFO_EN_2, FIFO_EN_2_ACCEL_GYRO)
        self._write(FIFO_MODE, 0x00)  # stream: oldest data overwritten when full
        self._verify({FIFO_EN_2: FIFO_EN_2_ACCEL_GYRO, PWR_MGMT_2: 0x00})
        self._fifo_reset()

    def _overflowed(self) -> bool:
        return bool(self._read(INT_STATUS_2) & FIFO_OVERFLOW)  # reading clears it

    def _fifo_count(self) -> int:
        high, low = self.bus.read_block(self.address, FIFO_COUNTH, 2)
        return ((high & 0x1F) << 8) | low

    def _fifo_read(self, n: int) -> bytes:
        return self.bus.read_block(self.address, FIFO_R_W, n)

    def _fifo_reset(self) -> None:
        self._write(USER_CTRL, 0x00)
        self._write(FIFO_RST, 0x1F)  # assert reset of all FIFOs ...
        self._write(FIFO_RST, 0x00)  # ... and release it
        self._read(INT_STATUS_2)
        self._write(USER_CTRL, USER_FIFO_EN)
