"""The API's description: Swagger UI at /docs and ReDoc at /redoc from the package's own files
(no CDN), and an /openapi.json that is true to the API: the `{"error": ...}` answers each
operation gives instead of FastAPI's unused 422, and the campaign endpoints Ray Serve answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from recipes import RECIPE_IDS
from sdk.types import ErrorBody, RankRequest, RecommendRequest, RecommendResponse

__all__ = ["add_docs"]

_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5 and ReDoc files
_ERRORS = {
    "400": "Invalid input: `invalid_input` (`field` names the parameter or body field), `invalid_json` "
           "or `insufficient_data`.",
    "401": "`unauthenticated`: no API key, a malformed Authorization header or an unknown key.",
    "404": "`not_found`: no such resource (another tenant's resources answer the same).",
    "409": "`conflict`: the name exists, or the resource's state or children forbid the change; "
           "`idempotency_key_reused`: the Idempotency-Key was sent before with another body.",
    "413": "`payload_too_large`: the body is over the limit.",
}
# Operations without an Idempotency-Key that can still answer 409 (creates all can).
_CONFLICTS = {"delete_group", "delete_dataset", "delete_solution", "stop_version", "update_campaign",
              "delete_batch_inference_job", "download_batch_inference_output"}
_SECURITY = [{"bearer": []}, {"apiKey": []}]


def add_docs(app: FastAPI, serve_url: str | None) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc from the package's files (no CDN), and an
    OpenAPI document that describes the real API (errors, uploads, campaign endpoints)."""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js", swagger_css_url=f"{root}/docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}/docs/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/docs/favicon.png", with_google_fonts=False)

    app.mount("/docs", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe(FastAPI.openapi(app), serve_url)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class ErrorResponse(BaseModel):
    """Every error answer: `{"error": {"type", "message", "field"}}`."""

    error: ErrorBody


def _describe(spec: dict[str, Any], serve_url: str | None) -> dict[str, Any]:
    """FastAPI's document, made true: the `{"error": ...}` answers each operation can give
    instead of an unused 422, and the campaign endpoints, which Ray Serve answers."""
    schemas = spec["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _, defs = models_json_schema([(ErrorResponse, "serialization"), (RecommendRequest, "validation"),
                                  (RankRequest, "validation"), (RecommendResponse, "serialization")],
                                 ref_template="#/components/schemas/{model}")
    schemas.update(defs["$defs"])
    schemas["SolutionCreate"]["properties"]["recipe"]["enum"] = list(RECIPE_IDS)
    for item in spec["paths"].values():
        for op in item.values():
            responses = op["responses"]
            responses.pop("422", None)
            params = op.get("parameters", [])
            create = any(p["name"] == "Idempotency-Key" for p in params)
            if create:
                responses["200"] = {**responses["201"], "description": "A retry (the same Idempotency-Key "
                                                                       "and body): what the first created."}
            codes = {"400": bool(params) or "requestBody" in op, "401": "security" in op,
                     "404": any(p["in"] == "path" for p in params),
                     "409": create or op["operationId"] in _CONFLICTS, "413": "requestBody" in op}
            responses.update({c: _error_response(_ERRORS[c]) for c, on in codes.items() if on})
    spec["paths"].update(_campaign_paths(serve_url))
    return spec


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _campaign_paths(serve_url: str | None) -> dict[str, Any]:
    """POST <campaign endpoint>/recommend and /rank: served by each campaign's Ray Serve app."""
    server: dict[str, Any] = {"url": "{serve_url}", "description": "Ray Serve, where campaigns answer",
                              "variables": {"serve_url": {"default": "http://127.0.0.1:8000"}}}
    if serve_url:
        server = {"url": serve_url.rstrip("/"), "description": "Ray Serve, where campaigns answer"}
    where = ("Served by the campaign's endpoint (Ray Serve), not by the control plane: send it to the "
             "campaign's `endpoint` URL followed by `/{op}`, with the same API key.")
    paths = {}
    for op, request, summary in (("recommend", RecommendRequest, "Recommend items for a user"),
                                 ("rank", RankRequest, "Rank the given items for a user")):
        paths[f"/campaigns/{{endpoint_id}}/{op}"] = {"servers": [server], "post": {
            "tags": ["campaign endpoints"], "operationId": op, "summary": summary,
            "description": where.format(op=op), "security": _SECURITY,
            "parameters": [{"name": "endpoint_id", "in": "path", "required": True,
                            "description": "The last segment of the campaign's `endpoint` URL.",
                            "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{request.__name__}"}}}},
            "responses": {
                "200": {"description": "The items, best first.", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RecommendResponse"}}}},
                **{c: _error_response(_ERRORS[c]) for c in ("400", "401", "404", "413")},
                "429": {"description": "Over capacity (more than the campaign's max_queued_requests "
                                       "waiting): retry after Retry-After seconds. Ray Serve's "
                                       "plain-text body.",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "503": {"description": "The campaign has no running replica (Ray Serve's plain-text body).",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
            }}}
    return paths


