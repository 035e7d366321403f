"""Metaflow events stored in a Dagster instance.

An event is a runless AssetMaterialization of AssetKey(["metaflow_event", <name>]): it needs no
broker, survives daemon restarts, shows up in the Dagster UI, and every occurrence keeps its own
event-log record, so a sensor can read all of them (not only the latest). This module is the one
home of that layout: `read_event` reads it back for the sensors, and
metaflow_dagster/deploy/events.py's `send_event` writes it.
"""

from dagster import AssetKey

EVENT_ASSET_PREFIX = "metaflow_event"
PAYLOAD_KEY = "payload"
EVENT_ID_KEY = "event_id"
TIMESTAMP_KEY = "timestamp"


def event_asset_key(name: str) -> AssetKey:
    return AssetKey([EVENT_ASSET_PREFIX, name])


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
