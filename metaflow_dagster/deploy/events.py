"""Sending a Metaflow event to the Dagster instance, where the event sensors of
compiled flows pick it up (the Dagster counterpart of `ArgoEvent(name).publish()`).
The event's layout is runtime/triggers/events.py's."""

import json
import time
import uuid
from typing import List, Optional

from dagster import AssetMaterialization, DagsterInstance, MetadataValue

from ..naming import EVENT_NAME_RE
from ..runtime.triggers.events import EVENT_ID_KEY, PAYLOAD_KEY, TIMESTAMP_KEY, event_asset_key
from .targets.home import dagster_home


def send_event(name: str, payload: dict, instance: "DagsterInstance | None" = None) -> str:
    """Record event `name` with `payload`; return its id.

    `instance` defaults to the one of the Dagster home (DAGSTER_HOME, or the default one,
    see targets/home.py). The timestamp is whole epoch seconds because
    metaflow.events.Trigger converts only int timestamps to datetimes.
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
    if instance is None:
        with DagsterInstance.from_config(dagster_home()) as own:
            own.report_runless_asset_event(materialization)
    else:
        instance.report_runless_asset_event(materialization)
    return event_id


def listening_deployments(name: str, home: Optional[str] = None) -> List[str]:
    """"Flow (job)" for each deployment recorded in the Dagster home (registry.py)
    whose flow has @trigger on event `name`."""
    from .definitions import DefinitionsFile
    from .errors import CommandError
    from .registry import registered_deployments

    listening = []
    for record in registered_deployments(home):
        try:
            plan = DefinitionsFile(record.definitions_file).plan
        except CommandError:
            continue  # a stale file: no sensor of it runs either
        if any(spec["name"] == name for spec in plan.triggers.get("events", [])):
            listening.append("%s (job %s)" % (plan.flow_name, plan.job_name))
    return listening


def _check_payload(payload: dict) -> None:
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise ValueError("An event payload must be a dict with string keys, got %r" % (payload,))
    json.dumps(payload)  # raises TypeError on values JSON cannot hold
