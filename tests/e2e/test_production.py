"""Production features end to end: schedules, event and finish triggers under a real
`dg dev` (daemon included), exit hooks, @project branches and production tokens,
Configs, and --max-workers measured on a wide foreach."""

import json
import re
import subprocess
import time
from datetime import datetime, timezone

import pytest
from harness import (
    FLOWS,
    PYTHON,
    DagsterDev,
    compile_file,
    compile_flow,
    copy_flow,
    create,
    env_for,
    execute,
    execute_argv,
    failure_messages,
    job_runs,
    latest_run,
    load_definitions,
    metaflow_run,
    quiet_instance,
    result_of,
    sensor_ticked_after,
    wait_for_runs,
    wait_until,
)

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 180  # seconds for a daemon-launched run of a two-step flow, on a busy box
# A sensor ticks every few seconds (minimum_interval_seconds); the daemon may lag on a busy box.
SENSOR_TICK_TIMEOUT = 60


# --- schedules, evaluated in-process -------------------------------------------------------


def _schedule(compiled):
    (schedule,) = load_definitions(compiled.defs_file).defs.schedules
    return schedule


def test_schedule_cron_timezone_and_fire_times(tmp_path):
    from dagster import DefaultScheduleStatus, build_schedule_context
    from dagster._utils.schedules import cron_string_iterator

    compiled = compile_flow(tmp_path, "prod_schedule_flow")
    schedule = _schedule(compiled)
    assert schedule.job_name == compiled.job_name
    assert schedule.cron_schedule == "0 10 * * *"  # from EventBridge "0 10 * * ? *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING

    # 10:00 in Berlin is 09:00 UTC in winter and 08:00 UTC once DST starts (30 March 2025).
    start = datetime(2025, 3, 28, 12, 0, tzinfo=timezone.utc).timestamp()
    times = cron_string_iterator(start, schedule.cron_schedule, schedule.execution_timezone)
    fire_utc = [next(times).astimezone(timezone.utc) for _ in range(4)]
    assert [t.strftime("%m-%d %H:%M") for t in fire_utc] == [
        "03-29 09:00", "03-30 08:00", "03-31 08:00", "04-01 08:00"]

    # A tick at a fire time asks for exactly one run of the job, with no run config.
    context = build_schedule_context(scheduled_execution_time=fire_utc[0])
    data = schedule.evaluate_tick(context)
    assert len(data.run_requests) == 1 and not data.run_requests[0].run_config


def test_schedule_status_stopped_on_request(tmp_path):
    from dagster import DefaultScheduleStatus

    compiled = compile_flow(tmp_path, "prod_schedule_flow", "--schedule-status", "stopped")
    assert _schedule(compiled).default_status == DefaultScheduleStatus.STOPPED


# --- one `dg dev` for everything the daemon drives ----------------------------------------


@pytest.fixture
def dev(tmp_path):
    """Compile the minutely, event, upstream and downstream flows into one directory (one
    Metaflow datastore, so a downstream run can read its upstream run), and serve all but
    the upstream flow from one `dg dev`. The upstream flow is run with `dagster job
    execute`, outside any code location."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    quiet_instance(home)
    flows = {}
    for name in ("prod_minutely_flow", "prod_event_flow", "prod_upstream_flow",
                 "prod_downstream_flow"):
        flow_file = copy_flow(tmp_path, FLOWS / ("%s.py" % name))
        flows[name] = compile_file(flow_file)
    served = [flows[n].defs_file for n in ("prod_minutely_flow", "prod_event_flow",
                                           "prod_downstream_flow")]
    with DagsterDev(home, served, tmp_path / "flow") as server:
        server.flows = flows
        server.ready_at = time.time()
        yield server


def test_daemon_runs_schedule_events_and_finish_triggers(dev, subtests):
    """Schedule tick, event sensor and finish sensor on one real daemon: starting
    `dg dev` is the expensive part, so the three share it (one test, so that pytest-xdist
    cannot split them over two workers and start it twice). The events and the upstream run
    are sent first, so their runs proceed while the schedule waits for its minute."""
    events_sent = _send_events(dev)
    upstream = dev.flows["prod_upstream_flow"]
    upstream_proc = subprocess.Popen(  # `dagster job execute`: no code location
        execute_argv(upstream), cwd=upstream.flow_dir, env=env_for(dev.dagster_home),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with subtests.test(msg="@schedule: one run per real daemon tick"):
            _check_schedule_tick(dev)
        with subtests.test(msg="@trigger: one run per event, payload mapped to alpha, beta"):
            _check_event_runs(dev, events_sent)
        output = upstream_proc.communicate(timeout=RUN_TIMEOUT)[0]
        with subtests.test(msg="@trigger_on_finish: upstream run outside a code location"):
            _check_finish_trigger(dev, latest_run(dev.dagster_home, upstream.job_name, output))
    finally:
        if upstream_proc.poll() is None:
            upstream_proc.kill()
            upstream_proc.wait()


def _check_schedule_tick(dev):
    compiled = dev.flows["prod_minutely_flow"]
    try:
        # The daemon ticks at the first whole minute after it starts.
        wait_for_runs(dev.dagster_home, compiled.job_name, 1, 90, finished=False)
    finally:
        dev.stop_schedule(compiled.defs_file, "%s_schedule" % compiled.job_name)
    first = wait_for_runs(dev.dagster_home, compiled.job_name, 1, RUN_TIMEOUT)[0]
    assert first.tags["dagster/schedule_name"] == "%s_schedule" % compiled.job_name
    fired = datetime.fromisoformat(first.tags[".dagster/scheduled_execution_time"])
    assert fired.second == 0 and fired.timestamp() - dev.ready_at < 75
    result = result_of(dev.dagster_home, first)
    assert result.success, failure_messages(dev.dagster_home, result.dagster_run_id)
    run = metaflow_run(compiled, result)
    assert run.successful and run["start"].task.data.started_by == result.metaflow_run_id
    # One run per tick, never two.
    ticks = [r.tags[".dagster/scheduled_execution_time"]
             for r in job_runs(dev.dagster_home, compiled.job_name)]
    assert len(ticks) == len(set(ticks)), ticks


def _send_events(dev):
    """data_ready twice from the command line, twice from Python; the (alpha, beta) each
    run must see."""
    from dagster import DagsterInstance

    from metaflow_dagster.deploy.events import send_event

    sent = ["first", "second"]
    for value in sent:
        proc = subprocess.run(
            [PYTHON, "-m", "metaflow_dagster", "send-event", "data_ready",
             "--payload", "alpha_value=%s" % value],
            capture_output=True, text=True, env=env_for(dev.dagster_home), timeout=120)
        assert proc.returncode == 0 and "Event data_ready sent" in proc.stdout, proc.stderr
    with DagsterInstance.from_config(str(dev.dagster_home)) as instance:
        # A payload field that no parameter maps is ignored.
        send_event("data_ready", {"alpha_value": "third", "beta_value": "b", "unrelated": 1},
                   instance=instance)
        # A null is no value: alpha keeps its default, beta (no default) is None.
        send_event("data_ready", {"alpha_value": None, "beta_value": None}, instance=instance)
    return [(value, None) for value in sent] + [("third", "b"), ("unset", None)]


def _check_event_runs(dev, sent):
    compiled = dev.flows["prod_event_flow"]
    wait_for_runs(dev.dagster_home, compiled.job_name, len(sent), RUN_TIMEOUT)
    # One more tick of the sensor after that: nothing else may start.
    since = time.time()
    assert wait_until(lambda: sensor_ticked_after(
        dev.dagster_home, "%s_event_sensor" % compiled.job_name, since), SENSOR_TICK_TIMEOUT)
    runs = job_runs(dev.dagster_home, compiled.job_name)
    assert len(runs) == len(sent), [(r.run_id, r.run_config) for r in runs]
    seen = []
    for dagster_run in runs:
        result = result_of(dev.dagster_home, dagster_run)
        assert result.success, failure_messages(dev.dagster_home, result.dagster_run_id)
        data = metaflow_run(compiled, result)["start"].task.data
        assert data.event_name == "data_ready"
        seen.append((data.alpha_seen, data.beta_seen))
    assert sorted(seen, key=repr) == sorted(sent, key=repr)


def _check_finish_trigger(dev, upstream_result):
    upstream = dev.flows["prod_upstream_flow"]
    downstream = dev.flows["prod_downstream_flow"]
    assert upstream_result.success, upstream_result.output[-3000:]
    (run,) = wait_for_runs(dev.dagster_home, downstream.job_name, 1, RUN_TIMEOUT)
    since = time.time()
    assert wait_until(lambda: sensor_ticked_after(
        dev.dagster_home, "%s_finish_sensor" % downstream.job_name, since),
        SENSOR_TICK_TIMEOUT)
    assert len(job_runs(dev.dagster_home, downstream.job_name)) == 1
    result = result_of(dev.dagster_home, run)
    assert result.success, failure_messages(dev.dagster_home, result.dagster_run_id)
    data = metaflow_run(downstream, result)["start"].task.data
    assert data.upstream_pathspec == metaflow_run(upstream, upstream_result).pathspec
    assert data.upstream_message == "from upstream"


# --- exit hooks ------------------------------------------------------------------------------


def _hook_log(compiled):
    path = compiled.flow_dir / "hooks.log"
    return path.read_text().splitlines() if path.exists() else []


def test_exit_hook_on_success_runs_once(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "prod_exit_hook_flow")
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    pathspec = metaflow_run(compiled, result).pathspec
    assert _hook_log(compiled) == ["success %s" % pathspec]


def test_exit_hook_on_error_runs_once_and_success_hook_not(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "prod_exit_hook_flow")
    result = execute(compiled, dagster_home, {"ops": {"start": {"config": {"fail": True}}}})
    assert result.status == "FAILURE"
    pathspec = metaflow_run(compiled, result).pathspec
    assert _hook_log(compiled) == ["error %s" % pathspec]


def test_exit_hook_on_error_waits_for_running_branches(tmp_path, dagster_home):
    """As on Argo, the error hook runs after the branches still running when a step failed."""
    compiled = compile_flow(tmp_path, "prod_exit_hook_branch_flow")
    result = execute(compiled, dagster_home)
    assert result.status == "FAILURE"
    assert _hook_log(compiled) == ["error slow_done=True"]


# --- @project: branches, production, tokens --------------------------------------------------


def _token(output: str) -> str:
    tokens = set(re.findall(r"production:(\S+?)\"?\)?$", output, re.M))
    assert len(tokens) == 1, output
    return tokens.pop()


def _user(tmp_path, name):
    """A deployer: their own user name and their own production-token store."""
    return env_for(METAFLOW_USER=name, METAFLOW_TOKEN_HOME=tmp_path / ("tokens-" + name))


def _runs_in_namespace(name):
    """Pathspecs of the ProdProjectFlow runs the Client shows in namespace `name`."""
    from metaflow import Flow, namespace
    from metaflow.exception import MetaflowNamespaceMismatch

    namespace(name)
    try:
        return [run.pathspec for run in Flow("ProdProjectFlow")]
    except MetaflowNamespaceMismatch:  # no run of the flow at all in that namespace
        return []
    finally:
        namespace(None)


def test_project_branches_deploy_as_independent_jobs(tmp_path, dagster_home):
    flow_file = copy_flow(tmp_path, FLOWS / "prod_project_flow.py")
    alice = _user(tmp_path, "alice")
    branches = {b: compile_file(flow_file, top_args=["--branch", b], defs_name="%s.py" % b,
                                env=alice) for b in ("b1", "b2")}
    assert branches["b1"].job_name == "prod_demo_test_b1_ProdProjectFlow"
    assert branches["b2"].job_name == "prod_demo_test_b2_ProdProjectFlow"
    tokens = {b: _token(c.create_output) for b, c in branches.items()}
    assert tokens["b1"] != tokens["b2"]

    runs = {}
    for branch, compiled in branches.items():
        result = execute(compiled, dagster_home, env_extra={"METAFLOW_USER": "alice"})
        assert result.success, result.output[-3000:]
        runs[branch] = metaflow_run(compiled, result)
        data = runs[branch]["start"].task.data
        assert (data.project_name, data.branch_name) == ("prod_demo", "test.%s" % branch)
        assert data.project_flow_name == "prod_demo.test.%s.ProdProjectFlow" % branch
        assert data.namespace_seen == "production:%s" % tokens[branch]
        assert {"project:prod_demo", "project_branch:test.%s" % branch,
                "production:%s" % tokens[branch]} <= set(runs[branch].system_tags)
    for branch, token in tokens.items():
        assert _runs_in_namespace("production:%s" % token) == [runs[branch].pathspec]


def test_project_production_deployment(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "prod_project_flow", top_args=["--production"])
    assert compiled.job_name == "prod_demo_prod_ProdProjectFlow"
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    data = run["start"].task.data
    assert (data.branch_name, data.is_production) == ("prod", True)
    assert "project_branch:prod" in run.system_tags


def test_production_token_guards_redeployment(tmp_path, dagster_home):
    flow_file = copy_flow(tmp_path, FLOWS / "prod_project_flow.py")
    top = ["--branch", "shared"]
    first = compile_file(flow_file, top_args=top, env=_user(tmp_path, "alice"))
    token = _token(first.create_output)
    assert "first time you are deploying" in first.create_output

    bob = _user(tmp_path, "bob")
    refused = create(flow_file, top_args=top, env=bob, expect_ok=False)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "alice" in message and "--authorize" in message, message

    second = compile_file(flow_file, "--authorize", token, top_args=top, env=bob)
    assert _token(second.create_output) == token  # same production namespace
    fresh = compile_file(flow_file, "--generate-new-token", top_args=top, env=bob)
    new_token = _token(fresh.create_output)
    assert new_token != token

    result = execute(fresh, dagster_home, env_extra={"METAFLOW_USER": "bob"})
    assert result.success, result.output[-3000:]
    pathspec = metaflow_run(fresh, result).pathspec
    assert _runs_in_namespace("production:%s" % new_token) == [pathspec]
    assert _runs_in_namespace("production:%s" % token) == []


# --- Configs ---------------------------------------------------------------------------------


def _config_flow(tmp_path, file_value):
    flow_file = copy_flow(tmp_path, FLOWS / "prod_config_flow.py")
    (flow_file.parent / "cfg.json").write_text(json.dumps(file_value))
    return flow_file


def _seen_in_every_step(compiled, dagster_home):
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    return metaflow_run(compiled, result)["end"].task.data.seen


def test_config_value_given_at_create_reaches_every_step(tmp_path, dagster_home):
    flow_file = _config_flow(tmp_path, {"x": 1, "label": "file"})
    value = json.dumps({"x": 5, "label": "cli"})
    compiled = compile_file(flow_file, top_args=["--config-value", "cfg", value])
    expected = {"x": 5, "label": "cli", "env": "cli"}
    seen = _seen_in_every_step(compiled, dagster_home)
    assert seen == {step: expected for step in ("start", "middle", "end")}


def test_config_file_is_read_at_create_not_at_run(tmp_path, dagster_home):
    flow_file = _config_flow(tmp_path, {"x": 5, "label": "deployed"})
    compiled = compile_file(flow_file)
    (flow_file.parent / "cfg.json").write_text(json.dumps({"x": 99, "label": "changed"}))
    expected = {"x": 5, "label": "deployed", "env": "deployed"}
    seen = _seen_in_every_step(compiled, dagster_home)
    assert seen == {step: expected for step in ("start", "middle", "end")}


TOML_CONFIG = """
[model]
name = "resnet"
layers = 50

[train]
rate = 0.01
shards = 2
"""
TOML_TASKS = ("start", "body", "body", "join", "end")


def _toml_config_flow(tmp_path, release):
    """The TOML flow; counted.toml names the log its parser appends a line to."""
    flow_file = copy_flow(tmp_path, FLOWS / "prod_toml_config_flow.py")
    log = tmp_path / "parsed.log"
    (flow_file.parent / "cfg.toml").write_text(TOML_CONFIG)
    (flow_file.parent / "counted.toml").write_text(
        'release = "%s"\nparse_log = "%s"\n' % (release, log))
    return flow_file, log


def _seen_by_every_task(compiled, result):
    run = metaflow_run(compiled, result)
    return [(task.parent.id, task.data.seen[task.parent.id])
            for step in ("start", "body", "join", "end") for task in run[step]]


def test_toml_config_with_tomllib_parser_reaches_every_task(tmp_path, dagster_home):
    flow_file, _ = _toml_config_flow(tmp_path, "r7")
    compiled = compile_file(flow_file)
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    expected = {"model": "resnet", "layers": 50, "rate": 0.01, "release": "r7"}
    assert _seen_by_every_task(compiled, result) == [(s, expected) for s in TOML_TASKS]
    assert metaflow_run(compiled, result)["join"].task.data.bodies == ["r7", "r7"]


def test_config_parser_runs_once_at_create_never_in_a_task(tmp_path, dagster_home):
    # The file given with --config at create, not the default one, is the one parsed.
    flow_file, log = _toml_config_flow(tmp_path, "default")
    given = flow_file.parent / "given.toml"
    given.write_text('release = "given"\nparse_log = "%s"\n' % log)
    compiled = compile_file(flow_file, top_args=["--config", "counted", "given.toml"])
    assert log.read_text() == "parsed\n"
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    assert [seen["release"] for _, seen in _seen_by_every_task(compiled, result)] == \
        ["given"] * len(TOML_TASKS)
    # Five tasks (and `flow.py init`) ran; none of them ran the parser again.
    assert log.read_text() == "parsed\n"


# --- --max-workers under load ----------------------------------------------------------------


def _max_overlap(intervals) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, delta in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += delta
        peak = max(peak, running)
    return peak


def test_max_workers_caps_a_foreach_of_50(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "prod_wide_foreach_flow", "--max-workers", "4")
    # The executor would run up to 16 steps at once; the cap is what holds it to 4.
    started = time.time()
    result = execute(compiled, dagster_home, timeout=600)
    wall = time.time() - started
    assert result.success, result.output[-3000:]
    tasks = list(metaflow_run(compiled, result)["body"])
    assert len(tasks) == 50
    metaflow_peak = _max_overlap([(t.created_at, t.finished_at) for t in tasks])
    steps = [s for key, s in result.steps.items() if key.startswith("body[")]
    dagster_peak = _max_overlap([(s.start_time, s.end_time) for s in steps])
    print("max-workers 4: Metaflow peak %d, Dagster peak %d, wall %.0fs"
          % (metaflow_peak, dagster_peak, wall))
    assert 2 < metaflow_peak <= 4 and dagster_peak <= 4, (metaflow_peak, dagster_peak)
