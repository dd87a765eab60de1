"""Real sensors: an SPI EMG ADC read on DRDY and I2C IMUs read through their FIFOs.

Built from the ``[hardware]`` table of the edge config (see ``docs/raspberry-pi.md``)::

    [hardware]
    retry_s = 2.0                       # how often a vanished device is re-initialised

    [hardware.emg]
    chip = "ads1299"                    # ads1299 | ads131m04 | mcp3008
    spi_bus = 0
    spi_device = 0
    drdy_gpio = { chip = "/dev/gpiochip0", line = 25 }   # not for mcp3008
    rate_hz = 2000
    gain = 24
    channels = { 1 = "glute_max_l", 2 = "glute_max_r", 3 = "biceps_femoris_l",
                 4 = "biceps_femoris_r" }

    [[hardware.imu]]
    segment = "pelvis"
    chip = "mpu6500"                    # mpu6050 | mpu6500 | mpu9250 | mpu6xxx | icm20948
    i2c_bus = 1
    address = 0x68
    rate_hz = 200
    mounting = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]

Each device gets a reader thread; blocks of raw integers (int32 for the 24-bit ADCs, int16 for
the IMUs and the MCP3008) go through one queue, with each channel's ``scale`` in the stream
description turning them into mV at the electrode, m/s² and deg/s. A device that does not answer
at start is a :class:`SourceError` naming it and what to check. One that vanishes later goes
silent, its problem is listed in :attr:`HardwareSource.problems`, and its thread re-initialises
it every ``retry_s``; the others carry on. ``emulate=True`` swaps every chip for its emulation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hipstride.config import ConfigError, Section
from hipstride.streams import (
    EMG_MUSCLES,
    IDENTITY_MOUNTING,
    IMU_SEGMENTS,
    StreamDescription,
    emg_description,
    imu_description,
)

from ..hardware import ads131m04, ads1299, icm20948, mcp3008, mpu6xxx
from ..hardware import emulated as emu
from ..hardware.bus import GpioDataReady, I2CBus, SpiBus
from ..hardware.clock import Clock, RealClock
from ..hardware.device import DeviceError, Reading
from ..hardware.imu import ACCEL_RANGES_G, GYRO_RANGES_DPS, STANDARD_GRAVITY
from .base import Block, Source, SourceError

log = logging.getLogger(__name__)

EMG_CHIPS = ("ads1299", "ads131m04", "mcp3008")
IMU_CHIPS = ("mpu6050", "mpu6500", "mpu9250", "mpu6xxx", "icm20948")
MPU_MODELS = {"mpu6050": "MPU-6050", "mpu6500": "MPU-6500", "mpu9250": "MPU-9250"}
#: Input numbers as each datasheet counts them.
EMG_INPUTS = {"ads1299": range(1, 9), "ads131m04": range(0, 4), "mcp3008": range(0, 8)}
EMG_DEFAULT_RATE = {"ads1299": 2000.0, "ads131m04": 2000.0, "mcp3008": 1000.0}
EMG_DEFAULT_GAIN = {"ads1299": 24.0, "ads131m04": 32.0}
EMG_CHANNEL = re.compile(rf"^({'|'.join(EMG_MUSCLES)})_[lr]$")
INPUT_KEY = re.compile(r"^(?:ch|in|ain)?(\d+)$", re.IGNORECASE)
COMMON_EMG_KEYS = {"chip", "spi_bus", "spi_device", "spi_speed_hz", "rate_hz", "channels",
                   "block_ms"}
EMG_KEYS = {
    "ads1299": COMMON_EMG_KEYS | {"drdy_gpio", "gain", "vref_v", "bias", "frontend_gain"},
    "ads131m04": COMMON_EMG_KEYS | {"drdy_gpio", "gain", "clkin_hz", "frontend_gain"},
    "mcp3008": COMMON_EMG_KEYS | {"vref_v"},
}
IMU_KEYS = {"segment", "chip", "i2c_bus", "address", "rate_hz", "accel_range_g",
            "gyro_range_dps", "mounting"}
SPI_PINS = {0: "MOSI GPIO10, MISO GPIO9, SCLK GPIO11", 1: "MOSI GPIO20, MISO GPIO19, SCLK GPIO21"}
CE_PINS = {(0, 0): "CE0 GPIO8", (0, 1): "CE1 GPIO7", (1, 0): "CE0 GPIO18", (1, 1): "CE1 GPIO17",
           (1, 2): "CE2 GPIO16"}


# --------------------------------------------------------------------------------------------
# configuration (pure)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmgConfig:
    chip: str
    channels: tuple[tuple[int, str], ...]  # (ADC input, canonical name), in input order
    spi_bus: int = 0
    spi_device: int = 0
    spi_speed_hz: int = 4_000_000
    drdy_chip: str = "/dev/gpiochip0"
    drdy_line: int | None = None
    rate_hz: float = 2000.0
    gain: float = 1.0
    frontend_gain: float = 1.0
    vref_v: float = 4.5
    clkin_hz: float = 8_192_000.0
    bias: bool = True
    block_s: float = 0.02

    @property
    def inputs(self) -> tuple[int, ...]:
        return tuple(i for i, _ in self.channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for _, n in self.channels)


@dataclass(frozen=True)
class ImuConfig:
    segment: str
    chip: str
    i2c_bus: int = 1
    address: int = 0x68
    rate_hz: float = 200.0
    accel_range_g: int = 16
    gyro_range_dps: int = 2000
    mounting: tuple[tuple[float, float, float], ...] = IDENTITY_MOUNTING


@dataclass(frozen=True)
class HardwareConfig:
    emg: EmgConfig | None
    imus: tuple[ImuConfig, ...]
    retry_s: float = 2.0


def _whole(section: Section, key: str, default: float, minimum: float, maximum: float) -> int:
    return int(section.number(key, default, minimum=minimum, maximum=maximum, integer=True))


def parse_emg(section: Section) -> EmgConfig:
    chip = section.string("chip", choices=EMG_CHIPS)
    if chip is None:
        raise section.fail("chip", "one of " + ", ".join(repr(c) for c in EMG_CHIPS))
    section.unknown_keys(EMG_KEYS[chip])
    where = section.where("channels")
    raw = section.data.get("channels")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: expected a table of ADC input -> channel name, e.g. "
                          '{ 1 = "glute_max_l" }, got ' + repr(raw))
    channels: dict[int, str] = {}
    for key, name in raw.items():
        m = INPUT_KEY.match(str(key))
        if not m or int(m.group(1)) not in EMG_INPUTS[chip]:
            valid = EMG_INPUTS[chip]
            raise ConfigError(f"{where}: input {key!r} does not exist on the {chip}; inputs are "
                              f"{valid.start}..{valid.stop - 1} as the datasheet numbers them")
        if not isinstance(name, str) or not EMG_CHANNEL.match(name):
            raise ConfigError(f"{where}.{key}: {name!r} is not a canonical EMG channel "
                              "(<muscle>_l or _r, muscle one of " + ", ".join(EMG_MUSCLES) + ")")
        if name in channels.values():
            raise ConfigError(f"{where}: channel {name!r} is assigned to two inputs")
        channels[int(m.group(1))] = name
    rate = section.number("rate_hz", EMG_DEFAULT_RATE[chip], minimum=1, maximum=32000)
    kwargs: dict[str, Any] = {}
    if chip != "mcp3008":
        drdy = section.table("drdy_gpio")
        if "drdy_gpio" not in section.data:
            raise ConfigError(f"{section.where('drdy_gpio')}: the {chip} is read on its DRDY "
                              'pin; give it as { chip = "/dev/gpiochip0", line = 25 }')
        drdy.unknown_keys({"chip", "line"})
        kwargs["drdy_chip"] = drdy.string("chip", "/dev/gpiochip0")
        kwargs["drdy_line"] = _whole(drdy, "line", None, 0, 1023) if "line" in drdy.data else \
            _missing(drdy, "line", "the GPIO line number (BCM numbering)")
        gain = section.number("gain", EMG_DEFAULT_GAIN[chip])
        try:
            (ads1299.gain_code if chip == "ads1299" else ads131m04.gain_code)(gain)
        except ValueError as err:
            raise ConfigError(f"{section.where('gain')}: {err}") from None
        kwargs["gain"] = gain
        kwargs["frontend_gain"] = section.number("frontend_gain", 1.0, minimum=1e-3)
    if chip == "ads1299":
        kwargs["vref_v"] = section.number("vref_v", 4.5, minimum=1.0, maximum=5.0)
        kwargs["bias"] = section.boolean("bias", True)
        check = ads1299.data_rate_code
    elif chip == "ads131m04":
        clkin = section.number("clkin_hz", 8_192_000.0, minimum=1e5, maximum=8.25e6)
        kwargs["clkin_hz"] = clkin

        def check(r: float) -> int:
            return ads131m04.osr_code(r, clkin)
    else:
        kwargs["vref_v"] = section.number("vref_v", 3.3, minimum=1.0, maximum=5.5)

        def check(r: float) -> int:
            if r > 4000:
                raise ValueError(f"rate {r} Hz: timed MCP3008 sampling goes up to 4000 Hz")
            return 0
    try:
        check(rate)
    except ValueError as err:
        raise ConfigError(f"{section.where('rate_hz')}: {err}") from None
    return EmgConfig(
        chip=chip, channels=tuple(sorted(channels.items())),
        spi_bus=_whole(section, "spi_bus", 0, 0, 6),
        spi_device=_whole(section, "spi_device", 0, 0, 2),
        spi_speed_hz=_whole(section, "spi_speed_hz", 1_000_000 if chip == "mcp3008"
                            else 4_000_000, 10_000, 25_000_000),
        rate_hz=rate, block_s=section.number("block_ms", 20, minimum=1, maximum=500) / 1000,
        **kwargs)


def _missing(section: Section, key: str, expected: str) -> Any:
    raise section.fail(key, expected)


def _mounting(section: Section) -> tuple[tuple[float, float, float], ...]:
    raw = section.data.get("mounting")
    if raw is None:
        return IDENTITY_MOUNTING
    try:
        m = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-3) or \
            not np.isclose(np.linalg.det(m), 1.0, atol=1e-3):
        raise section.fail("mounting", "a 3x3 rotation matrix (rows: segment axes in sensor "
                                       "coordinates), e.g. [[1,0,0],[0,1,0],[0,0,1]]")
    return tuple(tuple(float(v) for v in row) for row in m)


def parse_imu(section: Section) -> ImuConfig:
    section.unknown_keys(IMU_KEYS)
    segment = section.string("segment", choices=IMU_SEGMENTS)
    if segment is None:
        raise section.fail("segment", "one of " + ", ".join(IMU_SEGMENTS))
    chip = section.string("chip", choices=IMU_CHIPS)
    if chip is None:
        raise section.fail("chip", "one of " + ", ".join(IMU_CHIPS))
    rate = section.number("rate_hz", 200.0, minimum=4.5, maximum=1000.0)
    accel = section.number("accel_range_g", 16, integer=True)
    if accel not in ACCEL_RANGES_G:
        raise section.fail("accel_range_g", "one of " + ", ".join(map(str, ACCEL_RANGES_G)))
    gyro = section.number("gyro_range_dps", 2000, integer=True)
    if gyro not in GYRO_RANGES_DPS:
        raise section.fail("gyro_range_dps", "one of " + ", ".join(map(str, GYRO_RANGES_DPS)))
    address = _whole(section, "address", 0x68, 0x03, 0x77)
    if address not in (0x68, 0x69):
        raise section.fail("address", "0x68 (AD0 low) or 0x69 (AD0 high)")
    return ImuConfig(segment=segment, chip=chip, i2c_bus=_whole(section, "i2c_bus", 1, 0, 255),
                     address=address, rate_hz=rate, accel_range_g=accel, gyro_range_dps=gyro,
                     mounting=_mounting(section))


def parse_hardware(section: Section) -> HardwareConfig:
    """``[hardware]`` -> :class:`HardwareConfig`; each problem is a ConfigError naming the field."""
    section.unknown_keys({"emg", "imu", "retry_s"})
    emg = parse_emg(section.table("emg")) if "emg" in section.data else None
    imus = tuple(parse_imu(s) for s in section.tables("imu"))
    if emg is None and not imus:
        raise ConfigError(f"[{section.name}]: no devices; add [{section.name}.emg] and/or "
                          f"[[{section.name}.imu]] tables")
    seen: dict[tuple[int, int], str] = {}
    segments: set[str] = set()
    for imu in imus:
        if imu.segment in segments:
            raise ConfigError(f"[{section.name}.imu]: segment {imu.segment!r} appears twice")
        segments.add(imu.segment)
        key = (imu.i2c_bus, imu.address)
        if key in seen:
            raise ConfigError(f"[{section.name}.imu]: {imu.segment} and {seen[key]} are both at "
                              f"I2C bus {key[0]} address 0x{key[1]:02x}; tie AD0 high on one "
                              "(0x69), or put it on another bus or TCA9548A channel")
        seen[key] = imu.segment
    return HardwareConfig(emg=emg, imus=imus,
                          retry_s=section.number("retry_s", 2.0, minimum=0.01, maximum=3600))


# --------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Device:
    """A driver and what the source needs to run it and explain it."""

    stream: str
    driver: Any  # FifoImu | DrdyAdc | Mcp3008: open(), read(timeout_s), close(), rate_hz
    describe: Callable[[Any], StreamDescription]
    hint: str
    description: StreamDescription | None = None
    problem: str | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def i2c_hint(bus: int, address: int) -> str:
    return (f"the wiring (SDA GPIO2 pin 3, SCL GPIO3 pin 5, 3.3 V, GND), that AD0 sets "
            f"address 0x{address:02x}, and that `i2cdetect -y {bus}` lists it")


def spi_hint(cfg: EmgConfig) -> str:
    pins = SPI_PINS.get(cfg.spi_bus, "the SPI pins")
    ce = CE_PINS.get((cfg.spi_bus, cfg.spi_device), f"CE{cfg.spi_device}")
    hint = (f"the wiring ({pins}, {ce}), power, and that SPI is enabled "
            f"(dtparam=spi=on; /dev/spidev{cfg.spi_bus}.{cfg.spi_device} exists)")
    if cfg.drdy_line is not None:
        hint += f"; DRDY goes to GPIO{cfg.drdy_line} on {cfg.drdy_chip}"
    return hint


def _emg_description(cfg: EmgConfig, driver: Any) -> StreamDescription:
    if cfg.chip == "mcp3008":
        scale = mcp3008.lsb_mv(cfg.vref_v)
        desc = emg_description(cfg.names, rate_hz=cfg.rate_hz, dtype="int16", scale=scale,
                               full_scale_mv=cfg.vref_v * 1000, sensor="MCP3008")
        channels = tuple(dataclasses.replace(c, range=(0.0, cfg.vref_v * 1000.0))
                         for c in desc.channels)
        extra = {"signal": "envelope", "unit_at": "module output",
                 "note": "rectified, smoothed EMG envelope from an analog module (e.g. MyoWare), "
                         "in mV at the module output, not raw EMG at the electrode: do not "
                         "band-pass or rectify it again",
                 "adc": "MCP3008", "bits": 10, "vref_v": cfg.vref_v,
                 "inputs": {n: f"CH{i}" for i, n in cfg.channels},
                 "sampling": "sequential, timed by the agent"}
        return dataclasses.replace(desc, channels=channels, extra=extra)
    total_gain = cfg.gain * cfg.frontend_gain
    scale = driver.scale_mv / cfg.frontend_gain
    full_scale = scale * 2**23
    chip = "ADS1299" if cfg.chip == "ads1299" else "ADS131M04"
    desc = emg_description(cfg.names, rate_hz=cfg.rate_hz, dtype="int32", scale=scale,
                           full_scale_mv=full_scale, gain=total_gain, sensor=chip)
    prefix = "CH" if cfg.chip == "ads1299" else "AIN"
    extra = {"signal": "raw", "adc": chip, "bits": 24, "pga_gain": cfg.gain,
             "frontend_gain": cfg.frontend_gain,
             "inputs": {n: f"{prefix}{i}" for i, n in cfg.channels},
             "sampling": "simultaneous, DRDY-driven"}
    if cfg.chip == "ads1299":
        extra["vref_v"] = cfg.vref_v
    else:
        extra["clkin_hz"] = cfg.clkin_hz
    return dataclasses.replace(desc, extra=extra)


def _imu_description(cfg: ImuConfig, driver: Any) -> StreamDescription:
    desc = imu_description(
        cfg.segment, rate_hz=driver.rate_hz, dtype="int16",
        acc_scale=driver.scales[0], gyr_scale=driver.scales[3],
        acc_range=cfg.accel_range_g * STANDARD_GRAVITY, gyr_range_dps=float(cfg.gyro_range_dps),
        mounting=cfg.mounting, sensor=driver.chip)
    extra = {**desc.extra, "i2c": f"bus {cfg.i2c_bus} address 0x{cfg.address:02x}",
             "requested_rate_hz": cfg.rate_hz}
    return dataclasses.replace(desc, extra=extra)


def build_devices(config: HardwareConfig, *, emulate: bool = False, clock: Clock | None = None,
                  signals: Mapping[str, emu.Signal] | None = None) -> list[Device]:
    """Drivers on real buses, or on emulated chips when ``emulate``; nothing is opened yet
    except the Linux device files."""
    clock = clock or RealClock()
    signals = signals or {}
    devices: list[Device] = []
    buses: dict[int, I2CBus] = {}
    hint = ""
    try:
        for imu in config.imus:
            stream = f"imu_{imu.segment}"
            hint = i2c_hint(imu.i2c_bus, imu.address)
            if imu.i2c_bus not in buses:
                smbus = emu.FakeSMBus(imu.i2c_bus) if emulate else None
                buses[imu.i2c_bus] = I2CBus(imu.i2c_bus, smbus)
            bus = buses[imu.i2c_bus]
            if emulate:
                chip = (emu.EmulatedIcm20948(clock, signals.get(stream))
                        if imu.chip == "icm20948" else emu.EmulatedMpu6xxx(
                            clock, signals.get(stream),
                            model=MPU_MODELS.get(imu.chip, "MPU-6500")))
                bus._smbus.attach(imu.address, chip)  # type: ignore[attr-defined]
            kwargs = dict(rate_hz=imu.rate_hz, accel_range_g=imu.accel_range_g,
                          gyro_range_dps=imu.gyro_range_dps, clock=clock)
            driver = (icm20948.Icm20948(bus, imu.address, **kwargs) if imu.chip == "icm20948"
                      else mpu6xxx.Mpu6xxx(bus, imu.address, expect=MPU_MODELS.get(imu.chip),
                                           **kwargs))
            devices.append(Device(stream, driver, lambda d, c=imu: _imu_description(c, d), hint))
        if devices:
            devices[0].closers.extend(b.close for b in buses.values())
        if config.emg is not None:
            hint = spi_hint(config.emg)
            devices.append(_build_emg(config.emg, emulate, clock, signals.get("emg")))
    except DeviceError as err:
        for d in devices:
            for close in d.closers:
                close()
        for b in buses.values():
            b.close()
        raise SourceError(f"{err}. Check: {hint}") from None
    return devices


def _build_emg(cfg: EmgConfig, emulate: bool, clock: Clock, signal: emu.Signal | None) -> Device:
    hint = spi_hint(cfg)
    mode = mcp3008.SPI_MODE if cfg.chip == "mcp3008" else ads1299.SPI_MODE
    chip: Any = None
    if emulate:
        chip = {"ads1299": lambda: emu.EmulatedAds1299(clock, signal, vref_v=cfg.vref_v),
                "ads131m04": lambda: emu.EmulatedAds131m04(clock, signal, clkin_hz=cfg.clkin_hz),
                "mcp3008": lambda: emu.EmulatedMcp3008(clock, signal, vref_v=cfg.vref_v),
                }[cfg.chip]()
    spi = SpiBus(cfg.spi_bus, cfg.spi_device, mode=mode, max_speed_hz=cfg.spi_speed_hz,
                 spi=emu.FakeSpiDev(chip) if emulate else None)
    closers: list[Callable[[], None]] = [spi.close]
    if cfg.chip == "mcp3008":
        driver: Any = mcp3008.Mcp3008(spi, inputs=cfg.inputs, rate_hz=cfg.rate_hz,
                                      vref_v=cfg.vref_v, block_s=cfg.block_s, clock=clock)
    else:
        try:
            drdy: Any = (emu.EmulatedDataReady(chip, clock, f"GPIO{cfg.drdy_line} (emulated)")
                         if emulate else GpioDataReady(cfg.drdy_chip, int(cfg.drdy_line or 0)))
        except DeviceError:
            spi.close()
            raise
        closers.append(drdy.close)
        common = dict(inputs=cfg.inputs, rate_hz=cfg.rate_hz, gain=cfg.gain,
                      block_s=cfg.block_s, clock=clock)
        driver = (ads1299.Ads1299(spi, drdy, vref_v=cfg.vref_v, bias=cfg.bias, **common)
                  if cfg.chip == "ads1299"
                  else ads131m04.Ads131m04(spi, drdy, clkin_hz=cfg.clkin_hz, **common))
    return Device("emg", driver, lambda d: _emg_description(cfg, d), hint, closers=closers)


# --------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------
class HardwareSource(Source):
    """One reader thread per device; :meth:`read` drains their common queue."""

    realtime = True

    def __init__(self, devices: list[Device], *, retry_s: float = 2.0,
                 clock: Clock | None = None, read_timeout_s: float = 0.05,
                 max_queued_blocks: int = 4096) -> None:
        self.devices = devices
        self.retry_s = retry_s
        self.clock = clock or RealClock()
        self.read_timeout_s = read_timeout_s
        self._queue: queue.Queue[Block] = queue.Queue(maxsize=max_queued_blocks)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.dropped_in_queue = 0
        opened: list[Device] = []
        try:
            for dev in devices:
                try:
                    dev.driver.open()
                except (DeviceError, OSError) as err:
                    raise SourceError(f"{dev.stream}: {err}. Check: {dev.hint}") from None
                opened.append(dev)
                dev.description = dev.describe(dev.driver)
        except SourceError:
            self._release()
            raise
        self.descriptions = tuple(d.description for d in devices if d.description)
        for dev in devices:
            t = threading.Thread(target=self._run, args=(dev,), daemon=True,
                                 name=f"hipstride-hw-{dev.stream}")
            t.start()
            self._threads.append(t)

    @classmethod
    def from_config(cls, section: Section, *, emulate: bool = False, clock: Clock | None = None,
                    signals: Mapping[str, emu.Signal] | None = None) -> HardwareSource:
        """From the ``[hardware]`` table. ``emulate`` replaces every chip by its emulation;
        ``signals`` (stream name -> callable of time) feeds the emulations."""
        config = parse_hardware(section)
        clock = clock or RealClock()
        devices = build_devices(config, emulate=emulate, clock=clock, signals=signals)
        return cls(devices, retry_s=config.retry_s, clock=clock)

    @property
    def problems(self) -> list[str]:
        """Current problems, one sentence each, for the agent to publish in its status."""
        with self._lock:
            return [d.problem for d in self.devices if d.problem]

    def read(self, timeout_s: float) -> list[Block]:
        try:
            blocks = [self._queue.get(timeout=max(0.0, timeout_s))]
        except queue.Empty:
            return []
        while True:
            try:
                blocks.append(self._queue.get_nowait())
            except queue.Empty:
                return blocks

    def _set_problem(self, dev: Device, problem: str | None) -> None:
        with self._lock:
            if problem != dev.problem:
                if problem:
                    log.warning("%s", problem)
                else:
                    log.info("%s: back", dev.stream)
            dev.problem = problem

    def _run(self, dev: Device) -> None:
        driver = dev.driver
        pending_dropped = 0
        lost_at: float | None = None
        t_ok = self.clock.now()
        while not self._stop.is_set():
            if lost_at is not None:
                if self._stop.wait(self.retry_s):
                    return
                try:
                    driver.close()
                    driver.open()
                except (DeviceError, OSError) as err:
                    self._set_problem(dev, f"{dev.stream}: {err}; retrying every "
                                           f"{self.retry_s:g} s. Check: {dev.hint}")
                    continue
                # Everything the chip would have sampled while it was away is lost.
                pending_dropped += round((self.clock.now() - t_ok) * driver.rate_hz)
                lost_at = None
                self._set_problem(dev, None)
            try:
                reading: Reading = driver.read(self.read_timeout_s)
            except (DeviceError, OSError) as err:
                lost_at = self.clock.now()
                reason = err.strerror if isinstance(err, OSError) and err.strerror else err
                self._set_problem(dev, f"{dev.stream}: {driver.name} stopped answering "
                                       f"({reason}); its stream is silent, retrying every "
                                       f"{self.retry_s:g} s. Check: {dev.hint}")
                continue
            except Exception as err:  # a bug must not kill the other devices' streams
                log.exception("%s: reader failed", dev.stream)
                lost_at = self.clock.now()
                self._set_problem(dev, f"{dev.stream}: reader failed ({err!r}); retrying")
                continue
            n = len(reading.samples)
            if not n:
                continue
            t_ok = self.clock.now()
            block = Block(dev.stream, reading.samples,
                          dropped_before=reading.dropped_before + pending_dropped)
            try:
                self._queue.put_nowait(block)
                pending_dropped = 0
            except queue.Full:  # nobody is reading: count the samples rather than grow
                pending_dropped = block.dropped_before + n
                with self._lock:
                    self.dropped_in_queue += n

    def _release(self) -> None:
        for dev in self.devices:
            with contextlib.suppress(DeviceError, OSError):
                dev.driver.close()
            for close in dev.closers:
                with contextlib.suppress(OSError):
                    close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        self._release()


#: The module-level entry point every source module offers (see hipstride.edge.sources).
from_config = HardwareSource.from_config
