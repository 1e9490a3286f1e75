"""Tenants and their API keys. Keys are stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

from .registry import NotFound, Registry, now_iso, validate_name

__all__ = ["create_tenant", "create_api_key", "resolve_api_key", "list_tenants", "KEY_PREFIX"]

KEY_PREFIX = "tgr_"

def _hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()

def create_tenant(registry: Registry, tenant: str) -> str:
    """Create `tenant` and its first API key (returned once, never stored in clear)."""
    validate_name(tenant, "tenant")
    registry.create(f"system/tenants/{tenant}.json", {"name": tenant, "created_at": now_iso()})
    return create_api_key(registry, tenant)

def create_api_key(registry: Registry, tenant: str) -> str:
    if not registry.backend.exists(f"system/tenants/{validate_name(tenant, 'tenant')}.json"):
        raise NotFound(f"tenant {tenant}")
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    registry.create(f"system/api-keys/{_hash(api_key)}.json",
                    {"tenant": tenant, "created_at": now_iso(), "hint": api_key[:8]})
    return api_key

def resolve_api_key(registry: Registry, api_key: str) -> str | None:
    """The tenant an API key belongs to, or None for an unknown or malformed key."""
    if not api_key.startswith(KEY_PREFIX) or len(api_key) > 100:
        return None
    try:
        return registry.read(f"system/api-keys/{_hash(api_key)}.json")["tenant"]
    except NotFound:
        return None

def list_tenants(registry: Registry) -> list[str]:
    return sorted(d["name"] for d in registry.list("system/tenants", ".json"))

