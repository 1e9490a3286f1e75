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


def test_the_batch_inference_surface_is_small() -> None:
    """What only one module (or its tests) uses stays out of the public names: the batch job's
    internal error and output schemas, the control plane's batch submitter type, the query
    builder's history helpers (the campaign imports `history_key` privately), and no old aliases."""
    import recipes.queries
    import serving.app
    import store.snapshots
    import training_jobs.batch_inference

    assert sorted(training_jobs.batch_inference.__all__) == [
        "batch_inference_task", "build_segments", "run_batch_inference"]
    assert not hasattr(training_jobs.batch_inference, "BatchFailed")
    assert "BatchSubmitter" not in serving.app.__all__
    assert sorted(recipes.queries.__all__) == ["Histories", "history_length", "request_query"]
    assert not hasattr(store.snapshots, "_read_manifest")
