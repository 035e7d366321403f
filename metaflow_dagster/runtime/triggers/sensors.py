"""Sensors that start a compiled Metaflow job when events arrive (@trigger) or when upstream
flows finish (@trigger_on_finish).

Both are plain `@sensor`s reading the instance's event log after a JSON cursor
`{"after": <storage ids already read>, "pending": {key: arrival}}`, rather than Dagster's
ready-made sensors: `asset_sensor` sees only the latest materialization per tick, and
`run_status_sensor` owns its cursor, so neither can remember the pending half of an AND.

Inputs are ANDed, as Argo Events does for a Metaflow sensor with several dependencies: the run
starts once every listed event (or upstream flow) has arrived since the last run; a newer
arrival of a key replaces the pending one. With one input, every arrival starts one run. The
run key is the arrival's id (event id / upstream Dagster run id), joined with "+" for ANDs, so
each arrival starts at most one run even if the cursor is reset.

First tick (no cursor): arrivals since the definitions file was loaded count (within the last
`initial_lookback_seconds`), so an event sent between the flow's loading and the daemon's first
tick is not lost; anything older is skipped, as Argo Workflows skips events and upstream runs
from before `argo-workflows create`: deploying a flow replays no event sent before it.
"""

import json
import time

from dagster import (
    AssetRecordsFilter,
    DagsterEventType,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    RunStatusChangeRecordsFilter,
    SensorResult,
    sensor,
)
from dagster._config.config_type import ConfigScalarKind, ConfigTypeKind

from ... import naming
from ...plan import start_op_run_config
from .events import event_asset_key, read_event

MIN_INTERVAL_SECONDS = 5
FETCH_LIMIT = 100
INITIAL_LOOKBACK_SECONDS = 300
# Upstream runs are announced under their end step, which always runs once (task id "t").
# A flow with a custom-named end step still yields a usable id: Trigger.run only reads
# the "Flow/run" prefix.
END_STEP = "end"
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _trigger_sensor(job, name: str, description: str):
    """The @sensor of every trigger of a compiled job: it starts `job`, is running as
    soon as the definitions load (as Argo's sensors are), and ticks every
    MIN_INTERVAL_SECONDS."""
    return sensor(name=name, job=job, minimum_interval_seconds=MIN_INTERVAL_SECONDS,
                  default_status=DefaultSensorStatus.RUNNING, description=description)


def event_sensor(
    job,
    start_op: str,
    event_specs: list,
    param_fields: dict,
    name: "str | None" = None,
    initial_lookback_seconds: float = INITIAL_LOOKBACK_SECONDS,
):
    """Sensor starting `job` for the events of `event_specs` (triggers.trigger_specs()["events"]).

    `param_fields` maps each Metaflow parameter name to its config field of `start_op`
    (normally `{p: naming.config_field_name(p)}`). A payload field that is absent or null
    leaves the parameter at its default (payload_config).
    """
    names = [spec["name"] for spec in event_specs]
    _check_param_fields(event_specs, param_fields)
    fields = _config_fields(job, start_op)
    loaded_at = time.time()

    @_trigger_sensor(job, name or "%s_event_sensor" % job.name,
                     "Starts %s once each of these Metaflow events has arrived: %s."
                     % (job.name, ", ".join(names)))
    def _event_sensor(context):
        instance = context.instance
        state = _load_state(context.cursor, after={})
        since = max(loaded_at, time.time() - initial_lookback_seconds)
        for event_name in names:
            if event_name not in state["after"]:
                state["after"][event_name] = _initial_event_after(instance, event_name, since)
        _drop_stale(state["pending"], names)
        run_requests = []
        for event in _new_events(instance, names, state["after"]):
            state["after"][event["name"]] = event["storage_id"]
            complete = _arrive(state["pending"], event["name"], _event_arrival(event), names)
            if complete:
                config = _parameter_config(complete, event_specs, param_fields, fields,
                                           context.log)
                if config is not None:
                    run_requests.append(_run_request(complete, start_op, config))
        return SensorResult(run_requests=run_requests, cursor=_dump_state(state))

    return _event_sensor


def finish_sensor(
    job,
    start_op: str,
    upstream_flows: list,
    name: "str | None" = None,
    initial_lookback_seconds: float = INITIAL_LOOKBACK_SECONDS,
):
    """Sensor starting `job` when the runs of `upstream_flows` (triggers.trigger_specs()["flows"])
    succeed, matched by the job tags every compiled job carries.

    Project and branch must match exactly: an upstream spec without them matches only runs
    without @project, as Argo's event names (`metaflow.[project.branch.]Flow.end`) do. The run
    gets its parameters' defaults (Argo passes none either); `start_op` is checked to exist.
    """
    job.graph.node_named(start_op)
    keys = [_namespaced_flow(spec) for spec in upstream_flows]
    loaded_at = time.time()

    @_trigger_sensor(job, name or "%s_finish_sensor" % job.name,
                     "Starts %s once each of these flows has finished successfully: %s."
                     % (job.name, ", ".join(keys)))
    def _finish_sensor(context):
        instance = context.instance
        state = _load_state(context.cursor, after=None)
        if state["after"] is None:
            state["after"] = _initial_success_after(
                instance, max(loaded_at, time.time() - initial_lookback_seconds)
            )
        _drop_stale(state["pending"], keys)
        records = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(
                DagsterEventType.RUN_SUCCESS, after_storage_id=state["after"]
            ),
            limit=FETCH_LIMIT,
            ascending=True,
        ).records
        runs = _runs_by_id(instance, records)
        run_requests = []
        for record in records:
            state["after"] = record.storage_id
            run = runs.get(record.event_log_entry.run_id)
            key = _upstream_key(run, upstream_flows)
            if key is None:
                continue
            complete = _arrive(
                state["pending"], key, _run_arrival(run, key, record.timestamp), keys
            )
            if complete:
                run_requests.append(_run_request(complete, start_op, {}))
        return SensorResult(run_requests=run_requests, cursor=_dump_state(state))

    return _finish_sensor


# --- the AND join and the cursor -------------------------------------------------------------


def _arrive(pending: dict, key: str, arrival: dict, keys: list) -> "list | None":
    """Record an arrival; when every key has one, return them in `keys` order and clear."""
    pending[key] = arrival
    if any(k not in pending for k in keys):
        return None
    complete = [pending[k] for k in keys]
    pending.clear()
    return complete


def _drop_stale(pending: dict, keys: list) -> None:
    """Forget pending arrivals of keys the (redeployed) flow no longer listens to."""
    for key in [k for k in pending if k not in keys]:
        del pending[key]


def _load_state(cursor: "str | None", after) -> dict:
    if not cursor:
        return {"after": after, "pending": {}}
    return json.loads(cursor)


def _dump_state(state: dict) -> str:
    return json.dumps(state, sort_keys=True)


def _run_request(complete: list, start_op: str, config: dict) -> RunRequest:
    """One run for a complete set of arrivals; `naming.TAG_TRIGGERS` feeds `current.trigger`."""
    return RunRequest(
        run_key="+".join(arrival["key"] for arrival in complete),
        run_config=start_op_run_config(start_op, config),
        tags={naming.TAG_TRIGGERS: json.dumps([arrival["trigger"] for arrival in complete])},
    )


# --- events ----------------------------------------------------------------------------------


def _initial_event_after(instance, event_name: str, since: float) -> int:
    """Storage id of the newest event older than `since` (-1 if none): later ones count."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=event_asset_key(event_name), before_timestamp=since),
        limit=1,
    ).records
    return records[0].storage_id if records else -1


def _new_events(instance, names: list, after: dict) -> list:
    """Unread events of all names in storage order.

    When a name has more than FETCH_LIMIT unread events, events of other names past its last
    fetched one wait for the next tick, so the AND sees arrivals in their true order.
    """
    events, horizon = [], None
    for event_name in names:
        result = instance.fetch_materializations(
            AssetRecordsFilter(
                asset_key=event_asset_key(event_name), after_storage_id=after[event_name]
            ),
            limit=FETCH_LIMIT,
            ascending=True,
        )
        events.extend(read_event(record) for record in result.records)
        if result.has_more:
            last = result.records[-1].storage_id
            horizon = last if horizon is None else min(horizon, last)
    events.sort(key=lambda event: event["storage_id"])
    return [e for e in events if horizon is None or e["storage_id"] <= horizon]


def _event_arrival(event: dict) -> dict:
    return {
        "key": event["id"],
        "payload": event["payload"],
        "trigger": {
            "timestamp": event["timestamp"],
            "id": event["id"],
            "name": event["name"],
            "type": "event",
        },
    }


def _check_param_fields(event_specs: list, param_fields: dict) -> None:
    for spec in event_specs:
        missing = [p for p in spec["parameters"] if p not in param_fields]
        if missing:
            raise ValueError(
                "Event %r maps to parameters %s that have no config field of the start op."
                % (spec["name"], ", ".join(missing))
            )


def _parameter_config(complete, event_specs, param_fields, fields, log) -> "dict | None":
    """Start-op config from the payloads of a complete set of arrivals; None, with a
    warning, when a required Parameter gets no value from them: Dagster could not create
    that run, and its daemon would retry the request at every tick, starting no other."""
    field_types = {name: field.config_type for name, field in fields.items()}
    events = ", ".join("%s (%s)" % (spec["name"], arrival["key"])
                       for spec, arrival in zip(event_specs, complete))
    config = {}
    for spec, arrival in zip(event_specs, complete):
        config.update(payload_config(spec, arrival["payload"], param_fields, field_types,
                                     "%s (%s)" % (spec["name"], arrival["key"]), log))
    parameters = {field: param for param, field in param_fields.items()}
    missing = sorted(parameters.get(name, name) for name, field in fields.items()
                     if field.is_required and name not in config)
    if missing:
        log.warning(
            "Event %s: no payload field gave a value for the required parameter(s) %s; "
            "no run started. Send the event with a value for it, or give the Parameter a "
            "default." % (events, ", ".join(repr(p) for p in missing))
        )
        return None
    return config


def payload_config(spec: dict, payload: dict, param_fields: dict, field_types: dict,
                   event: str, log) -> dict:
    """The start-op config one event's payload sets: for each parameter `spec` maps,
    its payload field's value fitted to the parameter's config type.

    A field that is absent or null (JSON's "no value") sets nothing: the parameter keeps
    its default, or None if it has none, whatever its type (a null is never the text
    'null'). A value that does not fit sets nothing either, with a warning naming `event`.
    """
    config = {}
    for param, payload_field in spec["parameters"].items():
        value = payload.get(payload_field)
        if value is None:
            continue
        field = param_fields[param]
        try:
            config[field] = _coerce(value, field_types.get(field))
        except (TypeError, ValueError) as e:
            log.warning(
                "Event %s: field %r = %r does not fit parameter %r (%s); using its "
                "default." % (event, payload_field, value, param, e)
            )
    return config


def _config_fields(job, start_op: str) -> dict:
    """{config field name: Dagster Field} of the start op (empty if it has no fields)."""
    schema = job.graph.node_named(start_op).definition.config_schema
    return dict(getattr(getattr(schema, "config_type", None), "fields", None) or {})


def _coerce(value, config_type):
    """Payload values are JSON; fit them to the scalar type the config field declares."""
    if config_type is not None and config_type.kind == ConfigTypeKind.NONEABLE:
        config_type = config_type.inner_type
    kind = getattr(config_type, "scalar_kind", None)
    if kind == ConfigScalarKind.STRING:
        return value if isinstance(value, str) else json.dumps(value)
    if kind == ConfigScalarKind.INT:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("not an integer")
        return int(value)
    if kind == ConfigScalarKind.FLOAT:
        if isinstance(value, bool):
            raise ValueError("not a number")
        return float(value)
    if kind == ConfigScalarKind.BOOL:
        return _to_bool(value)
    return value


def _to_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("not a boolean")


# --- upstream runs ---------------------------------------------------------------------------


def _initial_success_after(instance, since: float) -> int:
    """Storage id of the newest run success older than `since` (-1 if none)."""
    records = instance.fetch_run_status_changes(
        RunStatusChangeRecordsFilter(DagsterEventType.RUN_SUCCESS, before_timestamp=since),
        limit=1,
    ).records
    return records[0].storage_id if records else -1


def _runs_by_id(instance, records) -> dict:
    run_ids = sorted({record.event_log_entry.run_id for record in records})
    if not run_ids:
        return {}
    return {run.run_id: run for run in instance.get_runs(filters=RunsFilter(run_ids=run_ids))}


def _namespaced_flow(spec: dict) -> str:
    """Metaflow's project_flow_name: "project.branch.Flow", or "Flow" without @project."""
    return ".".join(
        part for part in (spec.get("project"), spec.get("branch"), spec["flow"]) if part
    )


def _upstream_key(run, upstream_flows: list) -> "str | None":
    if run is None:
        return None
    tags = run.tags
    for spec in upstream_flows:
        if (
            tags.get(naming.TAG_FLOW_NAME) == spec["flow"]
            and tags.get(naming.TAG_PROJECT) == spec.get("project")
            and tags.get(naming.TAG_BRANCH) == spec.get("branch")
        ):
            return _namespaced_flow(spec)
    return None


def _run_arrival(run, key: str, timestamp: float) -> dict:
    """The upstream run as metaflow.events.Trigger expects it: `id` must be a task pathspec
    (Trigger.runs slices "Flow/run" out of it), `name` is Argo's "metaflow.<flow>.end"."""
    flow = run.tags[naming.TAG_FLOW_NAME]
    run_id = naming.metaflow_run_id_of(run)
    return {
        "key": run.run_id,
        "trigger": {
            "timestamp": int(timestamp),
            "id": "%s/%s" % (flow, naming.task_pathspec(run_id, END_STEP, naming.task_id())),
            "name": "metaflow.%s.end" % key,
            "type": "run",
        },
    }
