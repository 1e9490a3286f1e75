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


def _step(p99: float) -> dict:
    return {"requests": 10, "sent_total": 12, "ok": 10, "errors": 0, "error_codes": {}, "r429": 0,
            "achieved_rps": 5.0, "p50_ms": p99 / 2, "p90_ms": p99, "p99_ms": p99, "max_ms": p99,
            "send_lag_p99_ms": 0.1, "client_cpu_pct": 3.0, "replica_cpu_ms_per_req": 4.0,
            "proxy_cpu_ms_per_req": 2.0, "load1": 1.0}


def test_a_sog_run_prints_its_post_requests_abridged(capsys) -> None:
    bench = _load()
    content = "my ros node does not see the topic after launch " * 200  # a long post's body
    request = {"fields": {"title": "ROS topic not found", "content": content}, "num_results": 5}
    doc = {
        "duration_s": 2.0, "warmup_s": 1.0, "repeats": 1, "cpus": 2, "ray": "2.60.0", "replicas": 1,
        "max_ongoing_requests": 128, "max_queued_requests": 64, "events": False, "recipe": "sog",
        "verb": "generate-tags", "request": request, "answer_bytes": 250,
        "data": {"dataset": "stackexchange-robotics-kaggle", "rows": {"items": 2771}},
        "hyperparameters": {"epochs": 1, "seed": 1, "max_length": 128},
        "results": {t: {"5": bench.summarize([_step(p99)])}
                    for t, p99 in (("bare", 10.0), ("campaign", 40.0))},
        "p99_ratio_campaign_vs_bare": {"5": 4.0},
        "highest_rate_held": {"bare": 5.0, "campaign": 5.0},
        "sequential": {"bare": None, "campaign": None},
        "goals": {"rate_goal_rps": 200.0, "rate_goal_met": False, "rates_below_capacity": [5.0],
                  "errors_goal_met": True, "errors_below_capacity": 0, "ratio_goal": 3.0,
                  "ratio_goal_met": False},
        "predictor": {"threads": 1, "model_1_ms": 20.0, "model_16_ms": 90.0, "score_batch_1_ms": 21.0,
                      "score_batch_16_ms": 92.0, "json_encode_ms": 0.01, "validate_ms": 0.02,
                      "handler_1_ms": 25.0, "handler_16_ms": 100.0},
        "memory_mib": {w: {"bare": [], "campaign": []} for w in ("before_load", "after_load")},
        "setup_seconds": {"import": 3.0, "train": 60.0, "deploy": 20.0}, "total_seconds": 120.0,
        "loadavg_start": [1.0, 1.0, 1.0], "loadavg_end": [2.0, 2.0, 2.0],
    }
    bench.print_report(doc)
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "POST /generate-tags" in ln)
    assert "stackexchange-robotics-kaggle ({'items': 2771} rows)" in line
    assert "for random posts of the folder (5 tags decoded greedily: 5 forward passes)" in line
    assert "'title': 'ROS topic not found'" in line
    assert f"'content': '{content[:40]}…'" in line  # the post's body cut, not 10,000 characters
    assert len(line) < 600
