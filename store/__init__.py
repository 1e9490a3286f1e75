"""The storage layer shared by every server-side part: backends, keys, records, snapshots."""

from __future__ import annotations

from .fs import Backend, PreconditionFailed, StoreConfig, open_backend
from .registry import AlreadyExists, Keys, NotFound, Registry, dump_json, now_iso, validate_name

__all__ = [
    "Store",
    "StoreConfig",
    "Backend",
    "Keys",
    "Registry",
    "AlreadyExists",
    "NotFound",
    "PreconditionFailed",
    "dump_json",
    "now_iso",
    "validate_name",
]


class Store:
    """A backend and the resource registry over it."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.backend = open_backend(config)
        self.registry = Registry(self.backend)

    def keys(self, tenant: str) -> Keys:
        return Keys(tenant)
