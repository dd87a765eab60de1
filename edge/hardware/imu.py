"""What the InvenSense IMUs share: full-scale codes, sensitivities and the FIFO read loop.

Both families (MPU-6050/6500/9250 and ICM-20948) store accelerometer then gyroscope samples in
their FIFO as big-endian int16 in register order (ACCEL_X, Y, Z, GYRO_X, Y, Z: 12 bytes a set)
when only those sensors are enabled. The driver reads whole sets only; a FIFO overflow is reset
and the samples lost are counted from the time since the last drain.
"""

from __future__ import annotations

import math

import numpy as np

from .bus import I2CBus
from .clock import Clock, RealClock
from .device import DeviceAbsent, DeviceError, Reading, decode_int16_be, empty_reading

STANDARD_GRAVITY = 9.80665
SET_BYTES = 12  # accel xyz + gyro xyz, int16 each
N_CHANNELS = 6
#: Largest FIFO in either family; a FIFO_COUNT above it is garbage and handled as an overflow.
FIFO_COUNT_MAX = 4096

ACCEL_RANGES_G = (2, 4, 8, 16)
GYRO_RANGES_DPS = (250, 500, 1000, 2000)
#: Datasheet sensitivities: LSB per g and LSB per deg/s for each full-scale code.
ACCEL_LSB_PER_G = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}
GYRO_LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}


def accel_fs_code(range_g: int) -> int:
    """ACCEL_FS_SEL value for ±``range_g`` g."""
    if range_g not in ACCEL_RANGES_G:
        raise ValueError(f"accelerometer range ±{range_g} g: expected one of {ACCEL_RANGES_G}")
    return ACCEL_RANGES_G.index(range_g)


def gyro_fs_code(range_dps: int) -> int:
    """GYRO_FS_SEL value for ±``range_dps`` deg/s."""
    if range_dps not in GYRO_RANGES_DPS:
        raise ValueError(f"gyroscope range ±{range_dps} deg/s: expected one of {GYRO_RANGES_DPS}")
    return GYRO_RANGES_DPS.index(range_dps)


def accel_scale_ms2(range_g: int) -> float:
    """m/s² per count."""
    return STANDARD_GRAVITY / ACCEL_LSB_PER_G[range_g]


def gyro_scale_dps(range_dps: int) -> float:
    """deg/s per count."""
    return 1.0 / GYRO_LSB_PER_DPS[range_dps]


def divider_for_rate(base_hz: float, rate_hz: float, max_divider: int) -> tuple[int, float]:
    """Sample-rate divider giving the lowest rate ``base_hz / (1 + div)`` at or above ``rate_hz``.

    Returns (divider, actual rate). Raises ValueError when the rate is out of reach.
    """
    if not (base_hz / (1 + max_divider) <= rate_hz * (1 + 1e-9) and rate_hz <= base_hz):
        raise ValueError(f"rate {rate_hz} Hz is outside {base_hz / (1 + max_divider):.3g}.."
                         f"{base_hz:g} Hz")
    div = max(0, min(max_divider, math.floor(base_hz / rate_hz + 1e-9) - 1))
    return div, base_hz / (1 + div)


def dlpf_for_rate(bandwidths: dict[int, float], rate_hz: float) -> int:
    """The DLPF code with the widest bandwidth that stays below Nyquist (narrowest if none)."""
    fitting = [(bw, code) for code, bw in bandwidths.items() if bw <= rate_hz / 2]
    if not fitting:
        return min(bandwidths.items(), key=lambda kv: kv[1])[0]
    return max(fitting)[1]


class FifoImu:
    """An I2C IMU read through its FIFO. Subclasses know the registers."""

    chip = "IMU"
    fifo_bytes = 512

    def __init__(self, bus: I2CBus, address: int, *, rate_hz: float = 200.0,
                 accel_range_g: int = 16, gyro_range_dps: int = 2000,
                 clock: Clock | None = None) -> None:
        self.bus = bus
        self.address = address
        self.requested_rate_hz = rate_hz
        self.accel_range_g = accel_range_g
        self.gyro_range_dps = gyro_range_dps
        self.accel_code = accel_fs_code(accel_range_g)
        self.gyro_code = gyro_fs_code(gyro_range_dps)
        self.clock = clock or RealClock()
        self.rate_hz = rate_hz
        self.overflows = 0
        self._t_drain = 0.0
        self._pending_dropped = 0

    # -- what the source needs ---------------------------------------------------------------
    @property
    def where(self) -> str:
        return f"I2C bus {self.bus.number} address 0x{self.address:02x}"

    @property
    def name(self) -> str:
        return f"{self.chip} on {self.where}"

    n_channels = N_CHANNELS
    dtype = "int16"

    @property
    def scales(self) -> tuple[float, ...]:
        acc, gyr = accel_scale_ms2(self.accel_range_g), gyro_scale_dps(self.gyro_range_dps)
        return (acc,) * 3 + (gyr,) * 3

    def open(self) -> None:
        """Probe, reset and configure the chip, and start its FIFO."""
        try:
            self._configure()
        except OSError as err:
            raise DeviceAbsent(f"no answer from {self.name} ({err.strerror or err})") from None
        self._t_drain = self.clock.now()
        self._pending_dropped = 0

    def read(self, timeout_s: float) -> Reading:
        """Whole sample sets from the FIFO, waiting up to ``timeout_s`` for the first."""
        deadline = self.clock.now() + timeout_s
        poll_s = min(0.02, 0.25 * self.fifo_bytes / SET_BYTES / self.rate_hz)
        while True:
            overflow = self._overflowed()
            count = self._fifo_count()
            if overflow or count > FIFO_COUNT_MAX:
                self._fifo_reset()
                now = self.clock.now()
                self._pending_dropped += max(1, round((now - self._t_drain) * self.rate_hz))
                self._t_drain = now
                self.overflows += 1
                count = self._fifo_count()
            n_sets = count // SET_BYTES
            if n_sets:
                data = self._fifo_read(n_sets * SET_BYTES)
                self._t_drain = self.clock.now()
                dropped, self._pending_dropped = self._pending_dropped, 0
                return Reading(decode_int16_be(data, N_CHANNELS), dropped)
            now = self.clock.now()
            if now >= deadline:
                return empty_reading(N_CHANNELS, self.dtype)
            self.clock.sleep(min(poll_s, deadline - now))

    def close(self) -> None:
        """Nothing to release: the bus belongs to the source."""

    # -- chip specifics ----------------------------------------------------------------------
    def _configure(self) -> None:
        raise NotImplementedError

    def _overflowed(self) -> bool:
        raise NotImplementedError

    def _fifo_count(self) -> int:
        raise NotImplementedError

    def _fifo_read(self, n: int) -> bytes:
        raise NotImplementedError

    def _fifo_reset(self) -> None:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------
    def _write(self, reg: int, value: int) -> None:
        self.bus.write_byte(self.address, reg, value)

    def _read(self, reg: int) -> int:
        return self.bus.read_byte(self.address, reg)

    def _verify(self, expected: dict[int, int], what: str = "") -> None:
        for reg, value in expected.items():
            got = self._read(reg)
            if got != value:
                raise DeviceError(
                    f"{self.name}: register 0x{reg:02x}{what} reads 0x{got:02x} after writing "
                    f"0x{value:02x}; check the wiring and that no other program uses the chip")


def as_samples(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int16).reshape(-1, N_CHANNELS)
