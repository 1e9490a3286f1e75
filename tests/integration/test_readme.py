"""The README's "SDK in ten lines", run as written, as a new user would: a fresh TAGREC_HOME, no
platform running (``Client()`` starts the local one, with its Ray cluster), an interactions-only
CSV of 5,000 rows, 200 users and 300 items (where some held-out items never reach training: that
made perplexity infinite and crashed the version wait)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"


def ten_lines() -> str:
    text = README.read_text()
    section = text[text.index("## The SDK in ten lines"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README lost its SDK example"
    return match.group(1)


def write_events(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 200, 5_000)
    # A long tail: many items are seen a handful of times, some only in a user's latest rows.
    items = np.minimum(rng.zipf(1.3, 5_000) - 1, 299)
    times = 1_700_000_000 + np.sort(rng.integers(0, 30 * 86_400, 5_000))
    # Every id exists (u42, i7 included); the tail items only among the latest rows, which the
    # temporal hold-out keeps out of training.
    users[:200], items[-300:] = np.arange(200), np.arange(300)
    lines = ["user_id,item_id,timestamp"] + [f"u{u},i{i},{t}" for u, i, t in zip(users, items, times)]
    path.write_text("\n".join(lines) + "\n")


def test_the_sdk_in_ten_lines_runs_as_written(tmp_path: Path) -> None:
    code = ten_lines()
    assert len([ln for ln in code.splitlines() if ln.strip() and not ln.startswith(" ")]) <= 12
    write_events(tmp_path / "events.csv")
    env = {**os.environ, "TAGREC_HOME": str(tmp_path / "home"), "TAGREC_PORT": str(free_port()),
           "TAGREC_SERVE_PORT": str(free_port())}
    for k in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE", "TAGREC_STORE", "TAGREC_PLATFORM_ID"):
        env.pop(k, None)
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=900)
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
        lines = proc.stdout.strip().splitlines()
        ndcg, popularity = (float(x) for x in lines[0].split())
        assert 0.0 <= ndcg <= 1.0 and 0.0 <= popularity <= 1.0
        assert "RecommendedItem" in lines[1] or "item_id" in lines[1], lines[1]
        # Starting the local platform is said on stderr (stdout stays the program's own).
        assert "started the local platform" in proc.stderr
        # `tagrec versions list` reads the same record back.
        listed = subprocess.run([sys.executable, "-m", "tagrec.cli", "-o", "json", "versions", "list",
                                 "-g", "shop", "-s", "next"], env=env, text=True, capture_output=True,
                                timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert '"ACTIVE"' in listed.stdout
    finally:
        subprocess.run([sys.executable, "-m", "tagrec.cli", "down"], env=env, capture_output=True,
                       timeout=120)
