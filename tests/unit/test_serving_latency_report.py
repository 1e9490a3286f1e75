"""benchmarks/serving_latency.py's report formatting (the script is no package: loaded by path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_latency.py"


def _load():
    spec = importlib.util.spec_from_file_location("serving_latency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_without_an_answer_prints_a_dash_at_any_width() -> None:
    bench = _load()
    # A step past capacity can have no 200 at all: its p99 is None, printed with '.1f' in the p99 runs.
    assert bench._f(None, ".1f") == "-"
    assert bench._f(None, "7.1f") == "      -"
    assert bench._f(12.345, ".1f") == "12.3"
