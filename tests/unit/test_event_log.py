"""The event log's checks against the interactions schema, on a local-folder store (no Ray):
a non-nullable TAGS field (sdk.hetrec's shape) takes events that carry tags and refuses, naming
the event and field, one that does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.types import FieldType, Role, Schema, SchemaField
from serving.events import EventLog, EventsRefused
from store import Keys, Store, StoreConfig


def test_a_non_nullable_tags_field_takes_tagged_events_and_names_the_untagged(tmp_path: Path) -> None:
    config = {"uri": (tmp_path / "store").as_uri()}
    schema = Schema(fields=[
        SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID),
        SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID),
        SchemaField(name="timestamp", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
        SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=False)])
    record = {"kind": "interactions", "schema": schema.model_dump(mode="json")}
    Store(StoreConfig(**config)).registry.create(Keys("t1").dataset_record("g", "interactions"), record)
    log = EventLog(config, "t1", "g", autostart=False)
    ack = log.put("u1", "s1", [{"item_id": "i1", "tags": ["pixar"], "event_id": "e1", "timestamp": 1.0}])
    assert ack["accepted"] == 1
    with pytest.raises(EventsRefused, match=r"events\.1\.tags: required .*'tags' field is not nullable"):
        log.put("u1", "s1", [{"item_id": "i1", "tags": ["x"]}, {"item_id": "i2"}])
