"""Real-time events (`client.events`): a user's interactions, acknowledged once durable in the
group's event log (`serving.events`), which campaigns read at their next request."""

from __future__ import annotations

from typing import Any

from sdk.types import PutEventsRequest, PutEventsResponse
from serving.events import EventsRefused
from store import Keys

from .common import ApiError, Ctx, Name, Strict, Tenant, live_group, resource_router

router = resource_router("events")


@router.post("/v1/dataset-groups/{group}/events", response_model=PutEventsResponse)
def put_events(group: Name, body: Strict[PutEventsRequest], t: Tenant, ctx: Ctx) -> dict[str, Any]:
    live_group(ctx, Keys(t), group)
    events = [e.model_dump(mode="json") for e in body.events]
    try:
        return ctx.event_logs.get(t, group).put(body.user_id, body.session_id, events)
    except EventsRefused as e:
        field = str(e).split(":", 1)[0] if str(e).startswith("events.") else None
        raise ApiError(400, "invalid_input", str(e), field) from None
