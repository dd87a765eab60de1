"""The three Linux interfaces the drivers use, each a thin, lockable wrapper.

* :class:`I2CBus` — an ``smbus2.SMBus`` (or anything with its methods, e.g. the emulation's
  fake). Reads longer than the 32-byte SMBus block limit go out as one combined I2C transfer
  (``i2c_rdwr``: write the register, repeated start, read n bytes): a real FIFO burst read.
* :class:`SpiBus` — a ``spidev.SpiDev``; one :meth:`SpiBus.transfer` is one chip-select frame.
* :class:`GpioDataReady` — a falling-edge input through libgpiod v2, counting data-ready pulses
  (the kernel timestamps and numbers every edge, so pulses missed by a slow reader are counted).

smbus2, spidev and gpiod are imported only when a real device is opened.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from .device import DeviceAbsent

#: Longest read that fits one SMBus block transfer.
SMBUS_BLOCK_MAX = 32
#: Longest single I2C read message we send (a whole MPU-6050 FIFO is 1024 bytes).
I2C_BURST_MAX = 1024


class SMBusLike(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def i2c_rdwr(self, *msgs: Any) -> None: ...
    def close(self) -> None: ...


class SpiDevLike(Protocol):
    mode: int
    max_speed_hz: int

    def xfer2(self, values: list[int], speed_hz: int = 0, delay_usecs: int = 0,
              bits_per_word: int = 0) -> list[int]: ...
    def close(self) -> None: ...


class DataReady(Protocol):
    """A data-ready line: how many conversions completed since the last call."""

    name: str

    def wait(self, timeout_s: float) -> int:
        """Falling edges since the last call, waiting up to ``timeout_s`` for the first; 0 on
        timeout."""

    def clear(self) -> None:
        """Forget edges seen so far (before starting a stream)."""

    def close(self) -> None: ...


class I2CBus:
    """One I2C bus shared by the devices on it; every transaction holds the bus lock."""

    def __init__(self, bus: int, smbus: SMBusLike | None = None) -> None:
        self.number = bus
        self.lock = threading.Lock()
        if smbus is None:
            from smbus2 import SMBus

            try:
                smbus = SMBus(bus)
            except FileNotFoundError:
                raise DeviceAbsent(
                    f"/dev/i2c-{bus} does not exist: enable I2C (raspi-config, or "
                    "dtparam=i2c_arm=on in /boot/firmware/config.txt) and reboot") from None
            except PermissionError:
                raise DeviceAbsent(f"no permission to open /dev/i2c-{bus}: add the service "
                                   "user to the i2c group") from None
        self._smbus = smbus

    def read_byte(self, addr: int, reg: int) -> int:
        with self.lock:
            return self._smbus.read_byte_data(addr, reg)

    def write_byte(self, addr: int, reg: int, value: int) -> None:
        with self.lock:
            self._smbus.write_byte_data(addr, reg, value & 0xFF)

    def read_block(self, addr: int, reg: int, length: int) -> bytes:
        """``length`` bytes starting at ``reg`` in one transaction (the chip auto-increments, or
        repeats a FIFO register)."""
        if length <= SMBUS_BLOCK_MAX:
            with self.lock:
                return bytes(self._smbus.read_i2c_block_data(addr, reg, length))
        from smbus2 import i2c_msg

        out = bytearray()
        while len(out) < length:
            n = min(I2C_BURST_MAX, length - len(out))
            write, read = i2c_msg.write(addr, [reg]), i2c_msg.read(addr, n)
            with self.lock:
                self._smbus.i2c_rdwr(write, read)
            out += bytes(read)
        return bytes(out)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._smbus.close()


class SpiBus:
    """One SPI chip select (``/dev/spidev<bus>.<device>``)."""

    def __init__(self, bus: int, device: int, *, mode: int, max_speed_hz: int,
                 spi: SpiDevLike | None = None) -> None:
        self.bus, self.device = bus, device
        self.name = f"SPI{bus}.{device}"
        if spi is None:
            import spidev

            spi = spidev.SpiDev()
            try:
                spi.open(bus, device)
            except FileNotFoundError:
                raise DeviceAbsent(
                    f"/dev/spidev{bus}.{device} does not exist: enable SPI (raspi-config, or "
                    "dtparam=spi=on in /boot/firmware/config.txt; spi1 needs "
                    "dtoverlay=spi1-1cs or similar) and reboot") from None
            except PermissionError:
                raise DeviceAbsent(f"no permission to open /dev/spidev{bus}.{device}: add the "
                                   "service user to the spi group") from None
        spi.mode = mode
        spi.max_speed_hz = max_speed_hz
        self._spi = spi
        self.max_speed_hz = max_speed_hz

    def transfer(self, data: bytes | Sequence[int], speed_hz: int | None = None) -> bytes:
        """Clock ``data`` out and return what came in, in one chip-select frame."""
        return bytes(self._spi.xfer2(list(data), speed_hz or self.max_speed_hz))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._spi.close()


class GpioDataReady:
    """A chip's active-low DRDY output on a GPIO line, read as counted falling edges."""

    def __init__(self, chip: str, line: int, *, consumer: str = "hipstride") -> None:
        self.name = f"{chip} line {line}"
        try:
            import gpiod
            from gpiod.line import Bias, Direction, Edge
        except ImportError:
            raise DeviceAbsent("the gpiod Python bindings (libgpiod v2) are not installed: "
                               "pip install 'gpiod>=2'") from None
        settings = gpiod.LineSettings(direction=Direction.INPUT, edge_detection=Edge.FALLING,
                                      bias=Bias.PULL_UP)
        try:
            self._request = gpiod.request_lines(chip, consumer=consumer,
                                                config={line: settings}, event_buffer_size=1024)
        except FileNotFoundError:
            raise DeviceAbsent(f"GPIO chip {chip} does not exist (see `gpiodetect`)") from None
        except OSError as err:
            if err.errno == errno.EBUSY:
                raise DeviceAbsent(f"GPIO {self.name} is used by another program") from None
            raise
        self._last_seqno: int | None = None

    def wait(self, timeout_s: float) -> int:
        if not self._request.wait_edge_events(max(0.0, timeout_s)):
            return 0
        events = self._request.read_edge_events()
        if not events:
            return 0
        last = events[-1].line_seqno
        # The kernel numbers edges per line: a gap means its buffer overflowed, still counted.
        n = len(events) if self._last_seqno is None else last - self._last_seqno
        self._last_seqno = last
        return max(n, len(events))

    def clear(self) -> None:
        while self._request.wait_edge_events(0):
            events = self._request.read_edge_events()
            if events:
                self._last_seqno = events[-1].line_seqno

    def close(self) -> None:
        self._request.release()
