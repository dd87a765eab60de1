"""Plain-Python copies of results for ``json.dumps`` (numpy scalars and arrays included)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any, *, nan_as_null: bool = True) -> Any:
    """Dicts, lists, tuples, numpy arrays and scalars -> dicts, lists and Python numbers.

    With ``nan_as_null`` NaN and infinities become ``None`` (``null``): strict JSON, as
    ``summary.json`` promises its readers; without, they stay floats (Python's JSON dialect).
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, nan_as_null=nan_as_null) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, nan_as_null=nan_as_null) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), nan_as_null=nan_as_null)
    if isinstance(value, np.generic):
        value = value.item()
    if nan_as_null and isinstance(value, float) and not math.isfinite(value):
        return None
    return value
