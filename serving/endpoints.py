"""Names of a campaign on Ray Serve (shared by the control plane and the deployments)."""

from __future__ import annotations

import hashlib

__all__ = ["app_name", "endpoint_path"]


def _digest(tenant: str, group: str, campaign: str) -> str:
    # Names never contain "/", so distinct (tenant, group, campaign) never share a digest input.
    return hashlib.sha256(f"{tenant}/{group}/{campaign}".encode()).hexdigest()[:24]


def app_name(tenant: str, group: str, campaign: str) -> str:
    """The Serve application of a campaign (unique per tenant, group and campaign)."""
    return f"campaign-{_digest(tenant, group, campaign)}"


def endpoint_path(tenant: str, group: str, campaign: str) -> str:
    """The route prefix: an opaque id, so a URL says nothing about the tenant."""
    return f"/campaigns/{_digest(tenant, group, campaign)}"
