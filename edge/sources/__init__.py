"""Sample sources behind one interface (:mod:`.base`): ``sim``, ``replay``, ``hardware``,
``lsl``. Each lives in its own module and is imported only when chosen, so a Pi that reads
hardware never imports the simulator's scipy or pylsl."""

from __future__ import annotations

from importlib import import_module

from hipstride.config import Section
from hipstride.edge.sources.base import Source

_MODULES = {"sim": "simulated", "replay": "replay", "hardware": "hardware", "lsl": "lsl"}


def make_source(kind: str, section: Section, **options: object) -> Source:
    """Build the source named ``kind`` from its TOML table (``[sim]``, ``[replay]``, ...)."""
    module = import_module(f"hipstride.edge.sources.{_MODULES[kind]}")
    return module.from_config(section, **options)
