"""The platform itself: `GET /healthz` (no key) and `GET /v1/whoami`."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from .common import Tenant, resource_router

router = resource_router("platform")


@router.get("/healthz")
def healthz(request: Request) -> dict[str, Any]:
    return {"status": "ok", "version": request.app.version}


@router.get("/v1/whoami")
def whoami(t: Tenant) -> dict[str, str]:
    return {"tenant": t}
