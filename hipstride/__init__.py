"""HipStride: live glute-vs-hamstring and hip extension feedback for runners.

This package is the contract the components share — MQTT topics, the binary frame format,
stream descriptions, the recording format, configuration helpers and the ``hipstride`` CLI.
The components live beside it: ``hipstride.edge`` (edge/), ``hipstride.pipeline`` (pipeline/)
and ``hipstride.dashboard`` (dashboard/). Nothing here imports a component.
"""

__version__ = "0.1.0"
