"""Pure biomechanics engine: numpy arrays in, numpy arrays and small dataclasses out.

One module per signal, functions named ``signal_verb`` with the sampling rate always explicit
and units in names (``emg`` → :mod:`hipstride.pipeline.engine.emg`). Nothing here imports
file, MQTT, database or UI libraries, and this package imports no submodule eagerly, so
``import hipstride.pipeline.engine`` stays cheap on the edge device.
"""
