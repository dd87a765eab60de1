"""The read loop shared by the DRDY-driven SPI ADCs (ADS1299, ADS131M04).

The chip pulls DRDY low once per conversion. The loop waits for data-ready edges, reads the
conversion, and counts every edge it could not read as a dropped sample: if the reader was late
by k conversions, k edges are pending and only the data the chip still holds can be read.
"""

from __future__ import annotations

import numpy as np

from .bus import DataReady, SpiBus
from .clock import Clock, RealClock
from .device import DeviceAbsent, DeviceLost, Reading, SampleQueue


class DrdyAdc:
    chip = "ADC"
    dtype = "int32"

    def __init__(self, spi: SpiBus, drdy: DataReady, *, inputs: tuple[int, ...],
                 rate_hz: float, block_s: float = 0.02, lost_after_s: float = 0.5,
                 clock: Clock | None = None) -> None:
        if not inputs:
            raise ValueError("at least one input channel is needed")
        self.spi = spi
        self.drdy = drdy
        self.inputs = tuple(inputs)
        self.rate_hz = float(rate_hz)
        self.block = max(1, round(self.rate_hz * block_s))
        self.lost_after_s = max(lost_after_s, 20.0 / self.rate_hz)
        self.clock = clock or RealClock()
        self.bad_frames = 0
        self._queue = SampleQueue(len(self.inputs), self.dtype)
        self._t_edge = 0.0

    @property
    def n_channels(self) -> int:
        return len(self.inputs)

    @property
    def where(self) -> str:
        return f"{self.spi.name} with DRDY on {self.drdy.name}"

    @property
    def name(self) -> str:
        return f"{self.chip} on {self.where}"

    def open(self) -> None:
        self._queue.clear()
        try:
            self._configure()
        except OSError as err:
            raise DeviceAbsent(f"no answer from {self.name} ({err.strerror or err})") from None
        self._t_edge = self.clock.now()

    def read(self, timeout_s: float) -> Reading:
        """A block of consecutive conversions, or fewer when ``timeout_s`` runs out."""
        deadline = self.clock.now() + timeout_s
        while not self._queue.ready(self.block):
            edges = self.drdy.wait(max(0.0, deadline - self.clock.now()))
            now = self.clock.now()
            if not edges:
                if now - self._t_edge > self.lost_after_s:
                    raise DeviceLost(f"{self.name}: no data-ready pulse for "
                                     f"{now - self._t_edge:.1f} s; check its power, reset and "
                                     f"the DRDY wire to {self.drdy.name}")
                if now >= deadline:
                    break
                continue
            self._t_edge = now
            self._collect(edges)
        return self._queue.take(self.block)

    def close(self) -> None:
        """The SPI device and DRDY line belong to the source."""

    def _configure(self) -> None:
        raise NotImplementedError

    def _collect(self, edges: int) -> None:
        raise NotImplementedError

    def _select(self, values: np.ndarray, first_input: int) -> np.ndarray:
        """The configured inputs out of all channels of a conversion."""
        return values[[i - first_input for i in self.inputs]]


def all_ones(data: bytes) -> bool:
    """What a SPI read looks like with nothing driving MISO against the pull-up."""
    return all(b == 0xFF for b in data)
