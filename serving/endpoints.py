"""Names of a campaign on Ray Serve (shared by the control plane and the deployments)."""

from __future__ import annotations

import hashlib

__all__ = ["app_name", "endpoint_path"]


def app_name(tenant: str, group: str, campaign: str) -> str:
    """The Serve application of a campaign."""
    return f"campaign--{tenant}--{group}--{campaign}"


def endpoint_path(tenant: str, group: str, campaign: str) -> str:
    """The route prefix: an opaque id, so a URL says nothing about the tenant."""
    digest = hashlib.sha256(f"{tenant}/{group}/{campaign}".encode()).hexdigest()[:24]
    return f"/campaigns/{digest}"
