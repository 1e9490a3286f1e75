"""The code's layout, as the design states it: jobs never import the serving side (the Serve
deployments and event logs that share the runner's Ray cluster live in `serving`), and the control
plane has one router module per collection of the SDK."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sdk.resources
from serving.api import ROUTERS

ROOT = Path(__file__).resolve().parents[2]


def test_training_jobs_never_import_serving() -> None:
    found = []
    for path in sorted((ROOT / "training_jobs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n == "serving" or n.startswith("serving.")]
    assert not found, found


def test_one_router_per_sdk_collection() -> None:
    modules = {r.routes[0].endpoint.__module__.rsplit(".", 1)[-1] for r in ROUTERS}
    expected = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in sdk.resources.__all__}
    assert expected <= modules, sorted(expected - modules)
    assert modules - expected == {"platform"}  # healthz and whoami: no collection
