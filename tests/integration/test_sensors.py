"""Event and finish sensors evaluated for real (evaluate_tick, as the daemon calls it) against a
temporary SQLite Dagster instance, with tiny plain Dagster jobs standing in for compiled flows."""

import json
import os

import pytest
from _dagster_home import temp_instance
from dagster import (
    DagsterInstance,
    Field,
    ReexecutionOptions,
    build_sensor_context,
    execute_job,
    job,
    op,
    reconstructable,
)
from metaflow.events import Trigger

from metaflow_dagster import naming
from metaflow_dagster.deploy.events import send_event
from metaflow_dagster.runtime.triggers import sensors
from metaflow_dagster.runtime.triggers.sensors import event_sensor, finish_sensor

# --- a stand-in for a compiled flow: parameters are config of the start op ----------------------

PARAM_FIELDS = {"alpha": "alpha", "count": "count", "learning-rate": "learning_rate"}


@op(
    config_schema={
        "alpha": Field(str, is_required=False, default_value="default"),
        "count": Field(int, is_required=False, default_value=0),
        "learning_rate": Field(float, is_required=False, default_value=0.1),
    }
)
def start(context):
    return dict(context.op_config)


@job(tags={naming.TAG_FLOW_NAME: "Downstream"})
def downstream_job():
    start()


@op(config_schema={"fail": Field(bool, is_required=False, default_value=False)})
def upstream_op(context):
    if context.op_config["fail"]:
        raise RuntimeError("upstream failed on purpose")


@job
def upstream_job():
    upstream_op()


@op
def flaky_op():
    """Fails until the file named by FLAKY_FLAG exists (for re-execution)."""
    if not os.path.exists(os.environ["FLAKY_FLAG"]):
        raise RuntimeError("not yet")


@job(tags={naming.TAG_FLOW_NAME: "Flaky"})
def flaky_job():
    flaky_op()


@pytest.fixture
def instance():
    with temp_instance() as (_, instance):
        yield instance


def tick(sensor_def, instance, cursor):
    """One sensor evaluation: (run requests, new cursor)."""
    with build_sensor_context(instance=instance, cursor=cursor) as context:
        data = sensor_def.evaluate_tick(context)
    return list(data.run_requests or []), data.cursor


def triggers_of(request) -> list:
    meta = json.loads(request.tags[naming.TAG_TRIGGERS])
    Trigger(list(meta))  # the runtime hands this list to metaflow.events.Trigger as is
    return meta


# --- event_sensor -------------------------------------------------------------------------------

ONE_EVENT = [{"name": "data.ready", "parameters": {"alpha": "table", "count": "rows"}}]


def test_every_event_starts_exactly_one_run(instance):
    sensor_def = event_sensor(downstream_job, "start", ONE_EVENT, PARAM_FIELDS)
    ids_sent = [
        send_event("data.ready", {"table": "t%d" % i, "rows": i}, instance=instance)
        for i in range(3)
    ]
    send_event("unrelated", {"table": "x"}, instance=instance)

    requests, cursor = tick(sensor_def, instance, None)
    assert [r.run_key for r in requests] == ids_sent
    assert [r.run_config for r in requests] == [
        {"ops": {"start": {"config": {"alpha": "t%d" % i, "count": i}}}} for i in range(3)
    ]
    for request, event_id in zip(requests, ids_sent):
        (trigger,) = triggers_of(request)
        assert trigger["id"] == event_id
        assert trigger["name"] == "data.ready" and trigger["type"] == "event"
        assert isinstance(trigger["timestamp"], int)

    assert tick(sensor_def, instance, cursor)[0] == []
    send_event("data.ready", {"table": "t3"}, instance=instance)
    requests, _ = tick(sensor_def, instance, cursor)
    assert [r.run_config for r in requests] == [{"ops": {"start": {"config": {"alpha": "t3"}}}}]


def test_requested_run_config_is_valid_for_the_job(instance):
    sensor_def = event_sensor(downstream_job, "start", ONE_EVENT, PARAM_FIELDS)
    send_event("data.ready", {"table": "t9", "rows": "7"}, instance=instance)
    (request,), _ = tick(sensor_def, instance, None)
    result = downstream_job.execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance
    )
    assert result.output_for_node("start") == {
        "alpha": "t9",
        "count": 7,  # the string "7" fitted to the Int config field
        "learning_rate": 0.1,
    }
    assert result.dagster_run.tags[naming.TAG_TRIGGERS] == request.tags[naming.TAG_TRIGGERS]
    assert result.dagster_run.tags[naming.TAG_FLOW_NAME] == "Downstream"


def test_payload_values_are_fitted_to_config_types(instance):
    specs = [{"name": "e", "parameters": {"alpha": "a", "count": "c", "learning-rate": "lr"}}]
    sensor_def = event_sensor(downstream_job, "start", specs, PARAM_FIELDS)
    send_event("e", {"a": {"k": [1, 2]}, "c": 4.0, "lr": "0.5"}, instance=instance)
    send_event("e", {"a": "s", "c": "many", "lr": True}, instance=instance)
    (fits, misfits), _ = tick(sensor_def, instance, None)
    assert fits.run_config["ops"]["start"]["config"] == {
        "alpha": '{"k": [1, 2]}',
        "count": 4,
        "learning_rate": 0.5,
    }
    # Values that do not fit are left out, so those parameters keep their defaults.
    assert misfits.run_config["ops"]["start"]["config"] == {"alpha": "s"}


@op(config_schema={"who": Field(str), "alpha": Field(str, is_required=False,
                                                    default_value="default")})
def greet(context):
    return dict(context.op_config)


@job
def greet_job():
    greet()


def test_a_null_field_starts_a_run_with_the_default(instance):
    specs = [{"name": "e", "parameters": {"who": "who", "alpha": "a"}}]
    sensor_def = event_sensor(greet_job, "greet", specs, {"who": "who", "alpha": "alpha"})
    send_event("e", {"who": "Ada", "a": None}, instance=instance)
    (request,), _ = tick(sensor_def, instance, None)
    assert request.run_config == {"ops": {"greet": {"config": {"who": "Ada"}}}}
    result = greet_job.execute_in_process(run_config=request.run_config, instance=instance)
    assert result.output_for_node("greet") == {"who": "Ada", "alpha": "default"}


def test_no_value_for_a_required_parameter_starts_no_run(instance, capfd):
    # Such a run request is one Dagster cannot create: its daemon would retry it at
    # every tick and start no other run. The events after it still start theirs.
    specs = [{"name": "e", "parameters": {"who": "who", "alpha": "a"}}]
    sensor_def = event_sensor(greet_job, "greet", specs, {"who": "who", "alpha": "alpha"})
    null = send_event("e", {"who": None, "a": "x"}, instance=instance)
    send_event("e", {"a": "y"}, instance=instance)
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    # The sensor's log (its console, and the tick's log in the UI) says why.
    logged = capfd.readouterr().err
    assert "WARNING - Event e (%s): no payload field gave a value for the required " \
        "parameter(s) 'who'; no run started." % null in logged, logged
    send_event("e", {"who": "Ada"}, instance=instance)
    (request,), _ = tick(sensor_def, instance, cursor)
    assert request.run_config == {"ops": {"greet": {"config": {"who": "Ada"}}}}


def test_and_semantics_waits_for_every_event(instance):
    specs = [
        {"name": "a", "parameters": {"alpha": "x"}},
        {"name": "b", "parameters": {"count": "n"}},
    ]
    sensor_def = event_sensor(downstream_job, "start", specs, PARAM_FIELDS)
    send_event("a", {"x": "old"}, instance=instance)
    newer_a = send_event("a", {"x": "new"}, instance=instance)
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    assert json.loads(cursor)["pending"]["a"]["key"] == newer_a

    b_id = send_event("b", {"n": 5}, instance=instance)
    (request,), cursor = tick(sensor_def, instance, cursor)
    assert request.run_key == "%s+%s" % (newer_a, b_id)
    assert request.run_config == {"ops": {"start": {"config": {"alpha": "new", "count": 5}}}}
    assert sorted(t["name"] for t in triggers_of(request)) == ["a", "b"]

    send_event("b", {"n": 6}, instance=instance)
    requests, cursor = tick(sensor_def, instance, cursor)
    assert requests == []  # b alone again: waits for a new a
    send_event("a", {"x": "again"}, instance=instance)
    (request,), _ = tick(sensor_def, instance, cursor)
    assert request.run_config == {"ops": {"start": {"config": {"alpha": "again", "count": 6}}}}


def test_and_semantics_keeps_event_order_across_pages(instance, monkeypatch):
    monkeypatch.setattr(sensors, "FETCH_LIMIT", 2)
    specs = [{"name": "a", "parameters": {"alpha": "x"}}, {"name": "b", "parameters": {}}]
    sensor_def = event_sensor(downstream_job, "start", specs, PARAM_FIELDS)
    for x in ("1", "2", "3"):
        send_event("a", {"x": x}, instance=instance)
    send_event("b", {}, instance=instance)
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []  # b is newer than the unread third a: it waits
    (request,), _ = tick(sensor_def, instance, cursor)
    assert request.run_config == {"ops": {"start": {"config": {"alpha": "3"}}}}


def test_many_events_are_read_page_by_page(instance, monkeypatch):
    monkeypatch.setattr(sensors, "FETCH_LIMIT", 2)
    sensor_def = event_sensor(downstream_job, "start", ONE_EVENT, PARAM_FIELDS)
    sent = [send_event("data.ready", {"table": str(i)}, instance=instance) for i in range(5)]
    seen, cursor = [], None
    for _ in range(4):
        requests, cursor = tick(sensor_def, instance, cursor)
        seen.extend(r.run_key for r in requests)
    assert seen == sent


def test_first_tick_skips_events_older_than_the_lookback(instance):
    sensor_def = event_sensor(
        downstream_job, "start", ONE_EVENT, PARAM_FIELDS, initial_lookback_seconds=0
    )
    send_event("data.ready", {"table": "before"}, instance=instance)
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    send_event("data.ready", {"table": "after"}, instance=instance)
    (request,), _ = tick(sensor_def, instance, cursor)
    assert request.run_config["ops"]["start"]["config"] == {"alpha": "after"}


def test_an_event_sent_before_the_flow_was_deployed_starts_no_run(instance):
    """As on Argo Workflows: the sensor (the flow's definitions, loaded) comes after the
    event, well within the first tick's lookback; only later events start runs."""
    send_event("data.ready", {"table": "before"}, instance=instance)
    sensor_def = event_sensor(downstream_job, "start", ONE_EVENT, PARAM_FIELDS)
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    send_event("data.ready", {"table": "after"}, instance=instance)
    (request,), _ = tick(sensor_def, instance, cursor)
    assert request.run_config["ops"]["start"]["config"] == {"alpha": "after"}


def test_event_sensor_definition():
    sensor_def = event_sensor(downstream_job, "start", ONE_EVENT, PARAM_FIELDS)
    assert sensor_def.name == "downstream_job_event_sensor"
    assert sensor_def.job_name == "downstream_job"
    assert sensor_def.minimum_interval_seconds == sensors.MIN_INTERVAL_SECONDS
    assert sensor_def.default_status.value == "RUNNING"
    named = event_sensor(downstream_job, "start", ONE_EVENT, PARAM_FIELDS, name="on_data")
    assert named.name == "on_data"


def test_event_sensor_refuses_unmapped_parameters():
    specs = [{"name": "e", "parameters": {"ghost": "f"}}]
    with pytest.raises(ValueError, match="ghost"):
        event_sensor(downstream_job, "start", specs, PARAM_FIELDS)


# --- finish_sensor ------------------------------------------------------------------------------


def run_upstream(instance, flow, project=None, branch=None, fail=False):
    tags = {naming.TAG_FLOW_NAME: flow}
    if project:
        tags.update({naming.TAG_PROJECT: project, naming.TAG_BRANCH: branch})
    result = upstream_job.execute_in_process(
        instance=instance,
        tags=tags,
        run_config={"ops": {"upstream_op": {"config": {"fail": fail}}}},
        raise_on_error=False,
    )
    return result.dagster_run.run_id


UP = [{"flow": "Up", "project": None, "branch": None}]


def test_finish_sensor_fires_once_per_successful_upstream_run(instance):
    sensor_def = finish_sensor(downstream_job, "start", UP)
    first = run_upstream(instance, "Up")
    run_upstream(instance, "Up", fail=True)
    run_upstream(instance, "Other")
    run_upstream(instance, "Up", project="p", branch="prod")  # another namespace

    (request,), cursor = tick(sensor_def, instance, None)
    assert request.run_key == first
    assert request.run_config == {}
    (trigger,) = triggers_of(request)
    assert trigger["type"] == "run"
    assert trigger["name"] == "metaflow.Up.end"
    assert trigger["id"] == "Up/%s/end/t" % naming.metaflow_run_id(first)
    assert isinstance(trigger["timestamp"], int)

    assert tick(sensor_def, instance, cursor)[0] == []
    second = run_upstream(instance, "Up")
    requests, _ = tick(sensor_def, instance, cursor)
    assert [r.run_key for r in requests] == [second]


def test_finish_sensor_matches_project_and_branch(instance):
    spec = [{"flow": "Up", "project": "p", "branch": "prod"}]
    sensor_def = finish_sensor(downstream_job, "start", spec)
    run_upstream(instance, "Up")
    run_upstream(instance, "Up", project="p", branch="user.dev")
    wanted = run_upstream(instance, "Up", project="p", branch="prod")
    (request,), _ = tick(sensor_def, instance, None)
    assert request.run_key == wanted
    (trigger,) = triggers_of(request)
    assert trigger["name"] == "metaflow.p.prod.Up.end"
    assert trigger["id"].startswith("Up/%s/" % naming.metaflow_run_id(wanted))


def test_finish_sensor_waits_for_every_upstream_flow(instance):
    spec = [{"flow": "A", "project": None, "branch": None}, {"flow": "B"}]
    sensor_def = finish_sensor(downstream_job, "start", spec)
    run_upstream(instance, "A")
    newer_a = run_upstream(instance, "A")
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    b = run_upstream(instance, "B")
    (request,), cursor = tick(sensor_def, instance, cursor)
    assert request.run_key == "%s+%s" % (newer_a, b)
    assert sorted(t["name"] for t in triggers_of(request)) == ["metaflow.A.end", "metaflow.B.end"]
    assert tick(sensor_def, instance, cursor)[0] == []


def test_an_upstream_run_before_the_flow_was_deployed_starts_no_run(instance):
    run_upstream(instance, "Up")
    sensor_def = finish_sensor(downstream_job, "start", UP)
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    later = run_upstream(instance, "Up")
    assert [r.run_key for r in tick(sensor_def, instance, cursor)[0]] == [later]


def test_finish_sensor_first_tick_skips_old_runs(instance):
    sensor_def = finish_sensor(downstream_job, "start", UP, initial_lookback_seconds=0)
    run_upstream(instance, "Up")
    requests, cursor = tick(sensor_def, instance, None)
    assert requests == []
    later = run_upstream(instance, "Up")
    assert [r.run_key for r in tick(sensor_def, instance, cursor)[0]] == [later]


# The test module is not importable from executor subprocesses; run steps in process.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def test_reexecuted_upstream_is_named_by_its_root_run(tmp_path, monkeypatch):
    """A Dagster re-execution continues the same Metaflow run: the trigger names the root."""
    monkeypatch.setenv("FLAKY_FLAG", str(tmp_path / "ok"))
    with temp_instance() as (home, _):
        monkeypatch.setenv("DAGSTER_HOME", home)
        instance = DagsterInstance.get()  # execute_job's subprocesses need DAGSTER_HOME
        sensor_def = finish_sensor(downstream_job, "start", [{"flow": "Flaky"}])
        job_ = reconstructable(flaky_job)
        with execute_job(job_, instance, run_config=IN_PROCESS) as failed:
            assert not failed.success
        (tmp_path / "ok").write_text("")
        options = ReexecutionOptions.from_failure(failed.run_id, instance)
        with execute_job(
            job_, instance, run_config=IN_PROCESS, reexecution_options=options
        ) as retried:
            assert retried.success
        (request,), _ = tick(sensor_def, instance, None)
        assert request.run_key == retried.run_id
        (trigger,) = triggers_of(request)
        assert trigger["id"] == "Flaky/%s/end/t" % naming.metaflow_run_id(failed.run_id)
        instance.dispose()


def test_finish_sensor_definition():
    sensor_def = finish_sensor(downstream_job, "start", UP)
    assert sensor_def.name == "downstream_job_finish_sensor"
    assert sensor_def.job_name == "downstream_job"
    assert sensor_def.default_status.value == "RUNNING"
    with pytest.raises(Exception, match="nope"):
        finish_sensor(downstream_job, "nope", UP)
