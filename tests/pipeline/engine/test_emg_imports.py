"""The EMG engine stays pure: numpy/scipy/stdlib only, and importing it stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hipstride.pipeline.engine as engine

ENGINE_DIR = Path(engine.__file__).parent
EMG_MODULES = sorted(ENGINE_DIR.glob("emg*.py"))
ALLOWED_ROOTS = {"__future__", "numpy", "scipy", "collections", "dataclasses", "enum",
                 "typing", "math", "functools"}
# Top-level names only; stdlib modules such as socket are pulled in by scipy itself.
HEAVY = ("paho", "influxdb_client", "streamlit", "pandas", "matplotlib", "neurokit2")


def test_there_are_emg_modules_to_check():
    names = {p.name for p in EMG_MODULES}
    assert {"emg.py", "emg_filters.py", "emg_onset.py"} <= names


@pytest.mark.parametrize("path", EMG_MODULES, ids=lambda p: p.name)
def test_emg_modules_import_only_numpy_scipy_and_the_stdlib(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:  # relative: siblings in the engine only, never up a layer
                assert node.level == 1, f"{path.name}:{node.lineno} reaches out of the engine"
                continue
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            assert root in ALLOWED_ROOTS, f"{path.name}:{node.lineno} imports {root}"


def test_importing_the_emg_engine_pulls_in_no_io_or_heavy_libraries():
    code = ("import sys, hipstride.pipeline.engine.emg\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
