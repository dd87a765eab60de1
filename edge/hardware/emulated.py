"""Emulations of the chips behind the same bus API as smbus2, spidev and a gpiod DRDY line.

Each emulation keeps the chip's register map with its datasheet reset values, produces samples
on the chip's own schedule from a :mod:`clock` (sample k at anchor + k / rate, the anchor set
when the configuration starts conversions), and takes them from a *signal*: any callable mapping
an array of times (s) to an array (n, channels) in physical units — m/s² and deg/s for the IMUs,
millivolts at the input for the ADCs. Register addresses and bit layouts here are written out
independently of the drivers, so a wrong address in a driver is caught, not mirrored.

Faults: :meth:`Pluggable.unplug` (or ``vanish_at``/``return_at`` clock times) makes a chip absent:
I2C transfers then fail with ``OSError(EREMOTEIO)`` as on a Raspberry Pi, SPI reads return all
ones, DRDY stays high. A chip that comes back has been power-cycled (registers at reset values).
A FIFO overflows on its own when nobody reads it for long enough.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from .clock import Clock

Signal = Callable[[np.ndarray], np.ndarray]
G = 9.80665
STRIDE_HZ = 1.4  # ~170 steps/min


def imu_signal(t: np.ndarray) -> np.ndarray:
    """A running-like thigh IMU: gravity on +y, swing about z, impacts on y at stride rate."""
    w = 2 * math.pi * STRIDE_HZ * t
    return np.column_stack([
        2.0 * np.sin(w), G + 4.0 * np.sin(2 * w), 0.5 * np.cos(w),
        15.0 * np.sin(w), 10.0 * np.cos(w), 250.0 * np.sin(w),
    ])


def emg_signal(t: np.ndarray, n_channels: int = 8) -> np.ndarray:
    """Millivolt-level EMG-like tones, a different frequency per channel, modulated by stride."""
    t = np.asarray(t, dtype=float)[:, None]
    i = np.arange(n_channels)[None, :]
    burst = 0.6 + 0.4 * np.sin(2 * math.pi * STRIDE_HZ * t + i)
    return 0.5 * burst * np.sin(2 * math.pi * (60.0 + 17.0 * i) * t)


def envelope_signal(t: np.ndarray, n_channels: int = 8) -> np.ndarray:
    """MyoWare-like envelope output in mV (0..3300), rising and falling with the stride."""
    t = np.asarray(t, dtype=float)[:, None]
    i = np.arange(n_channels)[None, :]
    return 900.0 + 700.0 * np.sin(2 * math.pi * STRIDE_HZ * t + i)


def _eval(signal: Signal, t: np.ndarray, n_channels: int) -> np.ndarray:
    values = np.asarray(signal(np.asarray(t, dtype=float)), dtype=float)
    values = values.reshape(len(t), -1)
    if values.shape[1] < n_channels:
        values = np.hstack([values, np.zeros((len(t), n_channels - values.shape[1]))])
    return values


class Pluggable:
    """Presence of a chip on its bus, with fault injection."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.present = True
        self.vanish_at: float | None = None
        self.return_at: float | None = None
        self._was_present = True

    def is_present(self) -> bool:
        now = self.clock.now()
        present = self.present and not (
            self.vanish_at is not None and now >= self.vanish_at
            and (self.return_at is None or now < self.return_at))
        if present and not self._was_present:
            self.power_on_reset()
        self._was_present = present
        return present

    def unplug(self) -> None:
        self.present = False
        self.is_present()

    def plug(self) -> None:
        self.present = True
        self.is_present()

    def power_on_reset(self) -> None:
        raise NotImplementedError


class _Schedule:
    """Sample k of a configuration at anchor + k / rate, k = 1, 2, ..."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.anchor = 0.0
        self.done = 0  # samples of this configuration already produced

    def set(self, rate: float | None, now: float) -> None:
        if rate != self.rate:
            self.rate, self.anchor, self.done = rate, now, 0

    def due(self, now: float) -> int:
        if self.rate is None:
            return 0
        return max(0, math.floor((now - self.anchor) * self.rate + 1e-9))

    def take(self, now: float) -> np.ndarray:
        """Times of the samples that became due since the last call."""
        total = self.due(now)
        if total <= self.done:
            return np.empty(0)
        k = np.arange(self.done + 1, total + 1)
        self.done = total
        return self.anchor + k / self.rate

    def next_time(self, now: float) -> float | None:
        if self.rate is None:
            return None
        return self.anchor + (self.due(now) + 1) / self.rate


# --------------------------------------------------------------------------------------------
# I2C
# --------------------------------------------------------------------------------------------
class FakeSMBus:
    """``smbus2.SMBus`` over emulated chips, keyed by 7-bit address."""

    I2C_M_RD = 0x0001
    BLOCK_MAX = 32

    def __init__(self, bus: int = 1, devices: dict[int, _FifoImuChip] | None = None) -> None:
        self.bus = bus
        self.devices = dict(devices or {})
        self._pointer: dict[int, int] = {}
        self.closed = False

    def attach(self, address: int, chip: _FifoImuChip) -> None:
        self.devices[address] = chip

    def _chip(self, addr: int) -> _FifoImuChip:
        chip = self.devices.get(addr)
        if chip is None or not chip.is_present():
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        return chip

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._chip(i2c_addr).read(register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        self._chip(i2c_addr).write(register, bytes([value & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        if length > self.BLOCK_MAX:
            raise ValueError(f"Desired block length over {self.BLOCK_MAX} bytes")
        return list(self._chip(i2c_addr).read(register, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None:
        self._chip(i2c_addr).write(register, bytes(data))

    def i2c_rdwr(self, *i2c_msgs) -> None:
        for msg in i2c_msgs:
            chip = self._chip(msg.addr)
            if msg.flags & self.I2C_M_RD:
                data = chip.read(self._pointer.get(msg.addr, 0), msg.len)
                ctypes.memmove(msg.buf, data, msg.len)
            else:
                payload = bytes(msg)
                if payload:
                    self._pointer[msg.addr] = payload[0]
                    if len(payload) > 1:
                        chip.write(payload[0], payload[1:])

    def close(self) -> None:
        self.closed = True


class _FifoImuChip(Pluggable):
    """Registers, a FIFO and a sample schedule shared by the InvenSense emulations."""

    fifo_bytes = 1024
    ACCEL_LSB_PER_G = (16384.0, 8192.0, 4096.0, 2048.0)
    GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)

    def __init__(self, clock: Clock, signal: Signal | None = None, *,
                 fifo_bytes: int | None = None) -> None:
        super().__init__(clock)
        self.signal = signal or imu_signal
        if fifo_bytes:
            self.fifo_bytes = fifo_bytes
        self.writes: list[tuple[int, int, int]] = []  # (bank, register, value)
        self.power_on_reset()

    def power_on_reset(self) -> None:
        self.fifo = bytearray()
        self.produced = 0  # samples written to the FIFO, including ones lost to overflow
        self.overflows = 0
        self.latest = np.zeros(7, dtype=np.int16)  # ax ay az temp gx gy gz
        self._schedule = _Schedule()
        self._reset_registers()

    # chip specifics ----------------------------------------------------------------------
    def _reset_registers(self) -> None:
        raise NotImplementedError

    def _rate(self) -> float | None:
        raise NotImplementedError

    def _fifo_layout(self) -> tuple[bool, bool, bool, bool, bool] | None:
        """(accel, temp, gyro_x, gyro_y, gyro_z) written to the FIFO, or None when it is off."""
        raise NotImplementedError

    def _ranges(self) -> tuple[int, int]:
        """(accel FS code, gyro FS code)."""
        raise NotImplementedError

    def _stop_when_full(self) -> bool:
        raise NotImplementedError

    def _flag_overflow(self) -> None:
        raise NotImplementedError

    # sampling ------------------------------------------------------------------------------
    def _produce(self) -> None:
        now = self.clock.now()
        self._schedule.set(self._rate(), now)
        t = self._schedule.take(now)
        if not t.size:
            return
        afs, gfs = self._ranges()
        phys = _eval(self.signal, t, 6)
        acc = phys[:, :3] / G * self.ACCEL_LSB_PER_G[afs]
        gyr = phys[:, 3:6] * self.GYRO_LSB_PER_DPS[gfs]
        temp = np.full((len(t), 1), 0.0)  # 0 counts ~ 21 °C on the 6050, 21 °C ICM offset
        raw = np.clip(np.rint(np.hstack([acc, temp, gyr])), -32768, 32767).astype(np.int16)
        self.latest = raw[-1]
        layout = self._fifo_layout()
        if layout is None:
            return
        accel, temp_on, gx, gy, gz = layout
        cols = ([0, 1, 2] if accel else []) + ([3] if temp_on else []) + [
            c for c, on in ((4, gx), (5, gy), (6, gz)) if on]
        if not cols:
            return
        self.produced += len(t)
        self._push(raw[:, cols].astype(">i2").tobytes())

    def _push(self, data: bytes) -> None:
        space = self.fifo_bytes - len(self.fifo)
        if len(data) <= space:
            self.fifo += data
            return
        self.overflows += 1
        self._flag_overflow()
        if self._stop_when_full():
            self.fifo += data[:space]
        else:
            self.fifo = (self.fifo + data)[-self.fifo_bytes:]

    def _pop(self) -> int:
        if not self.fifo:
            return 0xFF
        value = self.fifo[0]
        del self.fifo[0]
        return value

    def _data_register(self, offset: int) -> int:
        """Byte ``offset`` of ACCEL_XOUT_H .. GYRO_ZOUT_L (accel, temp, gyro, big-endian)."""
        word = int(self.latest[offset // 2]) & 0xFFFF
        return (word >> 8) if offset % 2 == 0 else (word & 0xFF)

    def next_sample_time(self) -> float | None:
        return self._schedule.next_time(self.clock.now())


class EmulatedMpu6xxx(_FifoImuChip):
    """MPU-6050 (WHO_AM_I 0x68, 1024-byte FIFO), MPU-6500 (0x70) or MPU-9250 (0x71)."""

    MODELS: ClassVar[dict[str, tuple[int, int]]] = {
        "MPU-6050": (0x68, 1024), "MPU-6500": (0x70, 4096), "MPU-9250": (0x71, 512)}

    def __init__(self, clock: Clock, signal: Signal | None = None, *, model: str = "MPU-6050",
                 fifo_bytes: int | None = None) -> None:
        if model not in self.MODELS:
            raise ValueError(f"model {model!r}: one of {list(self.MODELS)}")
        self.model = model
        self.who_am_i, default_fifo = self.MODELS[model]
        super().__init__(clock, signal, fifo_bytes=fifo_bytes or default_fifo)

    def _reset_registers(self) -> None:
        self.regs = bytearray(128)
        self.regs[0x6B] = 0x40 if self.model == "MPU-6050" else 0x01  # PWR_MGMT_1
        self.regs[0x75] = self.who_am_i

    def _rate(self) -> float | None:
        if self.regs[0x6B] & 0x40:  # SLEEP
            return None
        dlpf = self.regs[0x1A] & 0x07
        fchoice_b = self.regs[0x1B] & 0x03 if self.model != "MPU-6050" else 0
        base = 8000.0 if dlpf in (0, 7) or fchoice_b else 1000.0
        return base / (1 + self.regs[0x19])

    def _fifo_layout(self):
        if not self.regs[0x6A] & 0x40:
            return None
        en = self.regs[0x23]
        return bool(en & 0x08), bool(en & 0x80), bool(en & 0x40), bool(en & 0x20), bool(en & 0x10)

    def _ranges(self) -> tuple[int, int]:
        return (self.regs[0x1C] >> 3) & 3, (self.regs[0x1B] >> 3) & 3

    def _stop_when_full(self) -> bool:
        return self.model != "MPU-6050" and bool(self.regs[0x1A] & 0x40)

    def _flag_overflow(self) -> None:
        self.regs[0x3A] |= 0x10  # INT_STATUS.FIFO_OFLOW_INT

    def read(self, reg: int, n: int) -> bytes:
        self._produce()
        count = len(self.fifo)
        out = bytearray()
        for _ in range(n):
            if reg == 0x74:  # FIFO_R_W: no auto-increment
                out.append(self._pop())
                continue
            if reg == 0x72:
                out.append((count >> 8) & 0x1F)
            elif reg == 0x73:
                out.append(count & 0xFF)
            elif 0x3B <= reg <= 0x48:
                out.append(self._data_register(reg - 0x3B))
            elif reg == 0x3A:
                out.append(self.regs[0x3A] | (0x01 if self._schedule.done else 0))
                self.regs[0x3A] = 0  # cleared by reading
            else:
                out.append(self.regs[reg])
            reg = (reg + 1) & 0x7F
        return bytes(out)

    def write(self, reg: int, data: bytes) -> None:
        for value in data:
            self._produce()
            self.writes.append((0, reg, value))
            if reg == 0x6B and value & 0x80:  # DEVICE_RESET
                self.power_on_reset()
            elif reg == 0x6A:  # USER_CTRL; FIFO_RESET only while FIFO_EN is 0
                if value & 0x04 and not value & 0x40:
                    self.fifo.clear()
                self.regs[reg] = value & ~0x07  # reset bits clear themselves
            elif reg not in (0x3A, 0x75, 0x72, 0x73, 0x74) and not 0x3B <= reg <= 0x48:
                self.regs[reg] = value
            reg = (reg + 1) & 0x7F
        self._produce()


class EmulatedIcm20948(_FifoImuChip):
    """ICM-20948: four register banks, FIFO in bank 0, sensor configuration in bank 2."""

    fifo_bytes = 512

    def _reset_registers(self) -> None:
        self.banks = [bytearray(128) for _ in range(4)]
        self.bank = 0
        self.banks[0][0x00] = 0xEA  # WHO_AM_I
        self.banks[0][0x05] = 0x40  # LP_CONFIG
        self.banks[0][0x06] = 0x41  # PWR_MGMT_1: SLEEP, CLKSEL 1
        self.banks[2][0x01] = 0x01  # GYRO_CONFIG_1: FCHOICE
        self.banks[2][0x14] = 0x01  # ACCEL_CONFIG: FCHOICE

    @property
    def b0(self) -> bytearray:
        return self.banks[0]

    @property
    def b2(self) -> bytearray:
        return self.banks[2]

    def accel_rate(self) -> float:
        div = ((self.b2[0x10] & 0x0F) << 8) | self.b2[0x11]
        return 1125.0 / (1 + div) if self.b2[0x14] & 0x01 else 4500.0

    def gyro_rate(self) -> float:
        return 1125.0 / (1 + self.b2[0x00]) if self.b2[0x01] & 0x01 else 9000.0

    def _rate(self) -> float | None:
        if self.b0[0x06] & 0x40 or self.b0[0x07] & 0x3F:  # asleep or sensors off
            return None
        return self.gyro_rate()

    def _fifo_layout(self):
        if not self.b0[0x03] & 0x40 or self.b0[0x68] & 0x1F:  # FIFO off or held in reset
            return None
        en = self.b0[0x67]
        return bool(en & 0x10), bool(en & 0x01), bool(en & 0x02), bool(en & 0x04), bool(en & 0x08)

    def _ranges(self) -> tuple[int, int]:
        return (self.b2[0x14] >> 1) & 3, (self.b2[0x01] >> 1) & 3

    def _stop_when_full(self) -> bool:
        return bool(self.b0[0x69] & 0x01)

    def _flag_overflow(self) -> None:
        self.b0[0x1B] |= 0x01  # INT_STATUS_2.FIFO_OVERFLOW_INT[0]

    def read(self, reg: int, n: int) -> bytes:
        self._produce()
        count = len(self.fifo)
        regs = self.banks[self.bank]
        out = bytearray()
        for _ in range(n):
            if reg == 0x7F:
                out.append(self.bank << 4)
            elif self.bank == 0 and reg == 0x72:  # FIFO_R_W
                out.append(self._pop())
                continue
            elif self.bank == 0 and reg == 0x70:
                out.append((count >> 8) & 0x1F)
            elif self.bank == 0 and reg == 0x71:
                out.append(count & 0xFF)
            elif self.bank == 0 and 0x2D <= reg <= 0x3A:
                # ACCEL (0x2D), GYRO (0x33), TEMP (0x39)
                offset = reg - 0x2D
                order = [0, 1, 2, 4, 5, 6, 3]
                word = int(self.latest[order[offset // 2]]) & 0xFFFF
                out.append((word >> 8) if offset % 2 == 0 else word & 0xFF)
            elif self.bank == 0 and reg == 0x1B:
                out.append(regs[reg])
                regs[reg] = 0
            else:
                out.append(regs[reg])
            reg = (reg + 1) & 0x7F
        return bytes(out)

    def write(self, reg: int, data: bytes) -> None:
        for value in data:
            self._produce()
            self.writes.append((self.bank, reg, value))
            if reg == 0x7F:
                self.bank = (value >> 4) & 0x03
            elif self.bank == 0 and reg == 0x06 and value & 0x80:
                self.power_on_reset()
            elif self.bank == 0 and reg == 0x68:
                if value & 0x1F:
                    self.fifo.clear()
                self.b0[reg] = value
            elif not (self.bank == 0 and reg in (0x00, 0x1B, 0x70, 0x71, 0x72)):
                self.banks[self.bank][reg] = value
            reg = (reg + 1) & 0x7F
        self._produce()


# --------------------------------------------------------------------------------------------
# SPI
# --------------------------------------------------------------------------------------------
class FakeSpiDev:
    """``spidev.SpiDev`` whose chip select reaches one emulated chip (or nothing)."""

    def __init__(self, chip: _SpiChip | None = None) -> None:
        self.chip = chip
        self.mode = 0
        self.max_speed_hz = 500_000
        self.bits_per_word = 8
        self.speeds: list[int] = []
        self.closed = False

    def open(self, bus: int, device: int) -> None:
        self.closed = False

    def xfer2(self, values: Sequence[int], speed_hz: int = 0, delay_usecs: int = 0,
              bits_per_word: int = 0) -> list[int]:
        self.speeds.append(speed_hz or self.max_speed_hz)
        data = bytes(values)
        if self.chip is None or not self.chip.is_present():
            return [0xFF] * len(data)
        out = self.chip.transfer(data)
        if self.mode != self.chip.spi_mode:
            # Sampling on the wrong clock edge: every bit arrives one position late.
            value = int.from_bytes(out, "big") >> 1
            out = value.to_bytes(len(out), "big")
        return list(out)

    xfer = xfer2

    def close(self) -> None:
        self.closed = True


class _SpiChip(Pluggable):
    spi_mode = 1

    def transfer(self, data: bytes) -> bytes:
        raise NotImplementedError

    def conversions(self) -> int:
        """Conversions completed so far (one DRDY falling edge each)."""
        return 0

    def next_conversion_time(self) -> float | None:
        return None


class EmulatedDataReady:
    """The DRDY line of an emulated ADC: counts its conversions, silent while it is absent."""

    def __init__(self, chip: _SpiChip, clock: Clock, name: str = "emulated DRDY") -> None:
        self.chip = chip
        self.clock = clock
        self.name = name
        self._seen = 0

    def _edges(self) -> int:
        if not self.chip.is_present():
            return 0
        total = self.chip.conversions()
        n, self._seen = max(0, total - self._seen), max(total, self._seen)
        return n

    def wait(self, timeout_s: float) -> int:
        deadline = self.clock.now() + max(0.0, timeout_s)
        while True:
            n = self._edges()
            now = self.clock.now()
            if n or now >= deadline:
                return n
            nxt = self.chip.next_conversion_time() if self.chip.is_present() else None
            self.clock.sleep((deadline if nxt is None else min(nxt, deadline)) - now)

    def clear(self) -> None:
        self._seen = self.chip.conversions()

    def close(self) -> None:
        pass


class EmulatedAds1299(_SpiChip):
    """ADS1299 (8 channels, ID 0x3E) or ADS1299-4/-6 (``channels`` 4 or 6)."""

    IDS: ClassVar[dict[int, int]] = {4: 0x3C, 6: 0x3D, 8: 0x3E}
    GAINS = (1, 2, 4, 6, 8, 12, 24, 24)

    def __init__(self, clock: Clock, signal: Signal | None = None, *, channels: int = 8,
                 vref_v: float = 4.5) -> None:
        super().__init__(clock)
        self.n_channels = channels
        self.signal = signal or (lambda t: emg_signal(t, channels))
        self.vref_v = vref_v
        self.writes: list[tuple[int, int]] = []
        self.commands: list[int] = []
        self.power_on_reset()

    def power_on_reset(self) -> None:
        self.regs = bytearray(0x18)
        self.regs[0x00] = self.IDS[self.n_channels]
        self.regs[0x01], self.regs[0x02], self.regs[0x03] = 0x96, 0xC0, 0x60
        for i in range(self.n_channels):
            self.regs[0x05 + i] = 0x61
        self.rdatac = True  # the device wakes up reading data continuously
        self.running = False
        self._schedule = _Schedule()
        self._total = 0

    @property
    def rate_hz(self) -> float:
        return 16000.0 / (1 << min(self.regs[0x01] & 0x07, 6))

    def conversions(self) -> int:
        return self._total + self._schedule.due(self.clock.now())

    def next_conversion_time(self) -> float | None:
        return self._schedule.next_time(self.clock.now()) if self.running else None

    def _start(self) -> None:
        self._total = self.conversions()
        self._schedule = _Schedule()
        self._schedule.set(self.rate_hz, self.clock.now())
        self.running = True

    def _stop(self) -> None:
        self._total = self.conversions()
        self._schedule = _Schedule()
        self.running = False

    def frame(self) -> bytes:
        """Status and channel data of the latest conversion."""
        due = self._schedule.due(self.clock.now())
        codes = np.zeros(self.n_channels, dtype=np.int64)
        if due:
            t = np.array([self._schedule.anchor + due / self._schedule.rate])
            mv = _eval(self.signal, t, self.n_channels)[0]
            for i in range(self.n_channels):
                chset = self.regs[0x05 + i]
                if chset & 0x80 or chset & 0x07 == 0x01:  # powered down / input shorted
                    continue
                gain = self.GAINS[(chset >> 4) & 0x07]
                lsb = self.vref_v * 1000.0 / (gain * 2**23)
                codes[i] = min(2**23 - 1, max(-(2**23), round(mv[i] / lsb)))
        body = b"".join(int(c & 0xFFFFFF).to_bytes(3, "big") for c in codes)
        return bytes([0xC0, 0x00, 0x00]) + body

    def transfer(self, data: bytes) -> bytes:
        out = bytearray(len(data))
        if self.rdatac:
            frame = self.frame()
            out[: min(len(frame), len(out))] = frame[: len(out)]
            if data and data[0] in (0x02, 0x04, 0x06, 0x08, 0x0A, 0x11):
                self._command(data[0])
            return bytes(out)
        i = 0
        while i < len(data):
            op = data[i]
            if op & 0xE0 in (0x20, 0x40) and i + 1 < len(data):
                addr, n = op & 0x1F, data[i + 1] + 1
                for j in range(n):
                    pos, reg = i + 2 + j, addr + j
                    if pos >= len(data) or reg >= len(self.regs):
                        break
                    if op & 0xE0 == 0x20:
                        out[pos] = self.regs[reg]
                    else:
                        self.writes.append((reg, data[pos]))
                        if reg != 0x00:  # ID is read-only
                            self.regs[reg] = data[pos]
                        if reg == 0x01 and self.running:
                            self._start()  # a new data rate restarts the conversions
                i += 2 + n
            elif op == 0x12:  # RDATA
                frame = self.frame()
                end = min(len(out), i + 1 + len(frame))
                out[i + 1:end] = frame[: end - i - 1]
                i = end
            else:
                self._command(op)
                i += 1
        return bytes(out)

    def _command(self, op: int) -> None:
        self.commands.append(op)
        if op == 0x06:
            self.power_on_reset()
        elif op == 0x08:
            self._start()
        elif op in (0x0A, 0x04):
            self._stop()
        elif op == 0x10:
            self.rdatac = True
        elif op == 0x11:
            self.rdatac = False


class EmulatedAds131m04(_SpiChip):
    """ADS131M04 with 24-bit words, its 2-deep conversion FIFO and output CRC."""

    OSR = (128, 256, 512, 1024, 2048, 4096, 8192, 16256)

    def __init__(self, clock: Clock, signal: Signal | None = None, *,
                 clkin_hz: float = 8_192_000.0) -> None:
        super().__init__(clock)
        self.signal = signal or (lambda t: emg_signal(t, 4))
        self.clkin_hz = clkin_hz
        self.writes: list[tuple[int, int]] = []
        self.corrupt_next = 0  # fault injection: flip a bit in the next n output frames
        self.power_on_reset()

    def power_on_reset(self) -> None:
        self.regs = [0] * 64
        self.regs[0x00] = 0x2400
        self.regs[0x02] = 0x0510  # MODE
        self.regs[0x03] = 0x0F0E  # CLOCK
        self.regs[0x06] = 0x0600  # CFG
        for ch in range(4):
            self.regs[0x09 + 5 * ch + 3] = 0x8000  # CHn_GCAL_MSB
        self._response: int | None = 0xFF24
        self._fifo: deque[float] = deque(maxlen=2)
        self._last = np.zeros(4, dtype=np.int64)
        self._total = 0
        self._schedule = _Schedule()
        self._schedule.set(self.rate_hz, self.clock.now())
        self.overwritten = 0

    @property
    def rate_hz(self) -> float:
        return self.clkin_hz / 2 / self.OSR[(self.regs[0x03] >> 2) & 0x07]

    def conversions(self) -> int:
        return self._total + self._schedule.due(self.clock.now())

    def next_conversion_time(self) -> float | None:
        return self._schedule.next_time(self.clock.now())

    def _produce(self) -> None:
        t = self._schedule.take(self.clock.now())
        self.overwritten += max(0, len(self._fifo) + len(t) - 2)
        for ti in t[-2:]:
            self._fifo.append(float(ti))

    def _restart(self) -> None:
        self._total = self.conversions()
        self._schedule = _Schedule()
        self._schedule.set(self.rate_hz, self.clock.now())
        self._fifo.clear()

    def _codes(self, t: float) -> np.ndarray:
        mv = _eval(self.signal, np.array([t]), 4)[0]
        codes = np.zeros(4, dtype=np.int64)
        for ch in range(4):
            if not self.regs[0x03] & (1 << (8 + ch)):
                continue
            gain = 1 << ((self.regs[0x04] >> (4 * ch)) & 0x07)
            lsb = 1200.0 / (gain * 2**23)
            codes[ch] = min(2**23 - 1, max(-(2**23), round(mv[ch] / lsb)))
        return codes

    def status(self) -> int:
        drdy = 0x0F if self._fifo else 0
        return (self.regs[0x02] & 0x0F00) | drdy  # CRC_TYPE, RESET, WLENGTH from MODE

    def transfer(self, data: bytes) -> bytes:
        self._produce()
        words = [(data[i] << 8) | data[i + 1] for i in range(0, len(data) - 2, 3)]
        response = self.status() if self._response is None else self._response
        if len(words) >= 5 and self._fifo:  # long enough to shift channel data out
            self._last = self._codes(self._fifo.popleft())
        body = bytes([(response >> 8) & 0xFF, response & 0xFF, 0]) + b"".join(
            int(c & 0xFFFFFF).to_bytes(3, "big") for c in self._last)
        crc = 0xFFFF
        for byte in body:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        out = bytearray(body + bytes([crc >> 8, crc & 0xFF, 0]))
        if self.corrupt_next:
            self.corrupt_next -= 1
            out[5] ^= 0x01
        out = (out + bytes(max(0, len(data) - len(out))))[: len(data)]
        self._execute(words)
        return bytes(out)

    def _execute(self, words: list[int]) -> None:
        cmd = words[0] if words else 0
        if cmd == 0x0011:
            self.power_on_reset()
            self._response = 0xFF24
        elif cmd in (0x0022, 0x0033, 0x0555, 0x0655):
            self._response = cmd
        elif cmd & 0xE000 == 0xA000:
            addr, n = (cmd >> 7) & 0x3F, (cmd & 0x7F) + 1
            self._response = (self.status() if addr == 0x01 else self.regs[addr]) if n == 1 \
                else 0xE000 | (addr << 7) | (n - 1)
        elif cmd & 0xE000 == 0x6000:
            addr, n = (cmd >> 7) & 0x3F, (cmd & 0x7F) + 1
            for j, value in enumerate(words[1:1 + n]):
                reg = addr + j
                self.writes.append((reg, value))
                if reg not in (0x00, 0x01) and reg < 64:
                    self.regs[reg] = value
                if reg == 0x03:
                    self._restart()
            self._response = 0x4000 | (addr << 7) | (n - 1)
        else:
            self._response = None  # NULL (and unknown commands): STATUS in the next frame


class EmulatedMcp3008(_SpiChip):
    """MCP3008: converts when asked; Hi-Z bits before the null bit read as ones."""

    spi_mode = 0

    def __init__(self, clock: Clock, signal: Signal | None = None, *,
                 vref_v: float = 3.3) -> None:
        super().__init__(clock)
        self.signal = signal or (lambda t: envelope_signal(t, 8))
        self.vref_v = vref_v
        self.conversions_done = 0

    def power_on_reset(self) -> None:
        pass

    def transfer(self, data: bytes) -> bytes:
        if len(data) != 3 or not data[0] & 0x01:
            return bytes([0xFF] * len(data))
        single = bool(data[1] & 0x80)
        ch = (data[1] >> 4) & 0x07
        mv = _eval(self.signal, np.array([self.clock.now()]), 8)[0]
        value = mv[ch] if single else mv[ch & 0x06] - mv[(ch & 0x06) + 1]
        if not single and ch & 0x01:  # odd code: IN+ is the odd channel
            value = -value
        code = int(min(1023, max(0, round(value / (self.vref_v * 1000.0 / 1024)))))
        self.conversions_done += 1
        return bytes([0xFF, 0xF8 | (code >> 8), code & 0xFF])
