"""Metaflow events stored in a Dagster instance.

An event is a runless AssetMaterialization of AssetKey(["metaflow_event", <name>]): it needs no
broker, survives daemon restarts, shows up in the Dagster UI, and every occurrence keeps its own
event-log record, so a sensor can read all of them (not only the latest). This module is the one
home of that layout: `send_event` writes it, `read_event` reads it back.
"""

import json
import time
import uuid

from dagster import AssetKey, AssetMaterialization, DagsterInstance, MetadataValue

from .triggers import EVENT_NAME_RE

EVENT_ASSET_PREFIX = "metaflow_event"
PAYLOAD_KEY = "payload"
EVENT_ID_KEY = "event_id"
TIMESTAMP_KEY = "timestamp"


def event_asset_key(name: str) -> AssetKey:
    return AssetKey([EVENT_ASSET_PREFIX, name])


def send_event(name: str, payload: dict, instance: "DagsterInstance | None" = None) -> str:
    """Record event `name` with `payload`; return its id.

    `instance` defaults to the one DAGSTER_HOME points at. The timestamp is whole epoch
    seconds because metaflow.events.Trigger converts only int timestamps to datetimes.
    """
    if not EVENT_NAME_RE.match(name):
        raise ValueError(
            "Event name %r is invalid: use letters, digits, '_', '-' and '.' only." % name
        )
    _check_payload(payload)
    event_id = str(uuid.uuid4())
    materialization = AssetMaterialization(
        asset_key=event_asset_key(name),
        description="Metaflow event %s" % name,
        metadata={
            PAYLOAD_KEY: MetadataValue.json(payload),
            EVENT_ID_KEY: MetadataValue.text(event_id),
            TIMESTAMP_KEY: MetadataValue.int(int(time.time())),
        },
    )
    (instance or DagsterInstance.get()).report_runless_asset_event(materialization)
    return event_id


def _check_payload(payload: dict) -> None:
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise ValueError("An event payload must be a dict with string keys, got %r" % (payload,))
    json.dumps(payload)  # raises TypeError on values JSON cannot hold


def read_event(record) -> dict:
    """{"name", "id", "timestamp", "payload", "storage_id"} of a materialization record.

    Materializations of an event key not written by send_event (someone else reporting the
    asset) lack our metadata; they still count as an event, identified by their storage id.
    """
    materialization = record.asset_materialization
    metadata = materialization.metadata
    payload = getattr(metadata.get(PAYLOAD_KEY), "value", None)
    event_id = metadata.get(EVENT_ID_KEY)
    timestamp = metadata.get(TIMESTAMP_KEY)
    return {
        "name": materialization.asset_key.path[-1],
        "id": event_id.value if event_id else "storage-%d" % record.storage_id,
        "timestamp": timestamp.value if timestamp else int(record.timestamp),
        "payload": dict(payload) if isinstance(payload, dict) else {},
        "storage_id": record.storage_id,
    }
