"""The edge agent: reads sensors on a Raspberry Pi and streams them to MQTT, none lost.

``sources`` (simulator, replay, hardware, LSL) all yield :class:`~hipstride.edge.sources.base.Block`
objects; ``framing`` cuts them into timestamped frames; ``spool`` keeps every frame on disk
until the broker acknowledges it; ``publisher`` talks MQTT; ``agent`` ties them together.
Only numpy and paho-mqtt are needed at import time; source-specific libraries load lazily.
"""
