"""Argo's operations options on a real `dg dev` (webserver and daemon): the run queue
ordered by --workflow-priority, whole-run retries (--run-retries), and notifications to
Slack, Microsoft Teams and PagerDuty, received by a local HTTP server standing in for all
three (Slack's and Teams' webhook URLs point at it, and PagerDuty's events endpoint with
METAFLOW_DAGSTER_PAGERDUTY_EVENTS_URL).

The instance runs one run at a time (`run_queue: max_concurrent_runs: 1`) and retries runs
(`run_retries: enabled: true`); the notification sensors look every second
(METAFLOW_DAGSTER_NOTIFY_INTERVAL_SECONDS=1 in the daemon's environment). The Slack and Teams
URLs are in the daemon's environment (env:NAME); the PagerDuty key is given literally and
kept in the `.env` file that `dg dev` loads. The three tests
share one `dg dev` (starting it is the slow part) and run in this order.
"""

import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from harness import (
    FLOWS,
    PYTHON,
    DagsterDev,
    compile_file,
    copy_flow,
    env_for,
    metaflow_run,
    result_of,
    wait_until,
)
from services import free_port

from metaflow_dagster import naming

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.xdist_group("operations")]

RUN_TIMEOUT = 240  # seconds for a few queued runs of a three-step flow, on a busy box
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 1
run_retries:
  enabled: true
"""
TITLE = "Ops nightly"
PD_KEY = "pd-routing-key-for-tests"
RUN_ID = re.compile(r"/runs/([0-9a-f-]{36})")


class Recorder:
    """An HTTP server on 127.0.0.1 that answers every POST as Slack, Teams and PagerDuty
    do, and keeps (path, JSON body, arrival time) of each."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with recorder.lock:
                    recorder.posts.append((self.path, body, time.time()))
                answer = b'{"status": "success"}' if "pagerduty" in self.path else b"ok"
                self.send_response(202 if "pagerduty" in self.path else 200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def messages(self, dagster_run_id: str):
        """channel -> the bodies posted about this Dagster run."""
        found = {}
        with self.lock:
            for path, body, arrival in self.posts:
                ids = RUN_ID.findall(json.dumps(body))
                if dagster_run_id in ids:
                    found.setdefault(path.strip("/").split("/")[0], []).append((body, arrival))
        return found


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operations")
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = env_for(home, HOME=tmp, METAFLOW_TOKEN_HOME=tmp / "tokens", NO_PROXY="127.0.0.1")
    flow_file = copy_flow(tmp, FLOWS / "ops_flow.py")
    compiled = compile_file(
        flow_file, "--workflow-priority", "5", "--workflow-title", TITLE,
        "--run-retries", "1", "--notify-on-error", "--notify-on-success",
        "--notify-slack-webhook-url", "env:OPS_SLACK_URL",
        "--notify-msteams-webhook-url", "env:OPS_TEAMS_URL",
        # Given literally: kept in .env beside the definitions file, which `dg dev`
        # (started in that directory) loads.
        "--notify-pager-duty-integration-key", PD_KEY, "--notify-secrets-to-env-file",
        env=env)
    assert PD_KEY not in compiled.defs_file.read_text()
    recorder = Recorder()
    server = DagsterDev(home, [compiled.defs_file], compiled.flow_dir, env=dict(env))
    server.env.update({
        "OPS_SLACK_URL": recorder.url + "/slack/T000/B000/secret",
        "OPS_TEAMS_URL": recorder.url + "/teams/workflow",
        naming.PAGERDUTY_EVENTS_URL_ENV: recorder.url + "/pagerduty/v2/enqueue",
        naming.NOTIFY_INTERVAL_ENV: "1",
        naming.UI_URL_ENV: server.url,
    })
    try:
        with server:
            server.compiled, server.recorder, server.cli_env = compiled, recorder, env
            yield server
    finally:
        recorder.close()


def _trigger(ops, *args, to_webserver=True) -> str:
    """`python ops_flow.py dagster trigger [--dagster-url ...]`: the Dagster run id.
    Without the webserver, the run starts in the Dagster home at once (no queue)."""
    url = ["--dagster-url", ops.url] if to_webserver else []
    proc = subprocess.run(
        [PYTHON, ops.compiled.flow_dir / "ops_flow.py", "dagster", "trigger", *url,
         "--definitions-file", ops.compiled.defs_file, *args],
        cwd=ops.compiled.flow_dir, capture_output=True, text=True, env=ops.cli_env,
        timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return re.search(r"Dagster run id:\s+(\S+)", proc.stdout + proc.stderr).group(1)


def _run(ops, run_id):
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(ops.dagster_home)) as instance:
        return instance.get_run_record_by_id(run_id)


def _finished(ops, run_id, timeout=RUN_TIMEOUT):
    record = None

    def done():
        nonlocal record
        record = _run(ops, run_id)
        return record is not None and record.dagster_run.is_finished

    assert wait_until(done, timeout, interval=1), "run %s: %s\n%s" % (
        run_id, record and record.dagster_run.status, ops.log_tail())
    return record


def _retry_of(ops, run_id, timeout=RUN_TIMEOUT):
    """The run Dagster's run retries started for a failed run (its auto_retry_run_id)."""
    assert wait_until(lambda: "dagster/auto_retry_run_id" in _run(ops, run_id).dagster_run.tags,
                      timeout, interval=1), ops.log_tail()
    return _run(ops, run_id).dagster_run.tags["dagster/auto_retry_run_id"]


def _executions(ops):
    log = ops.compiled.flow_dir / "executions.log"
    return log.read_text().split("\n")[:-1] if log.exists() else []


def test_priority_orders_the_run_queue(ops):
    """One run at a time: while a long run holds the slot, a low-priority run, one of the
    job's priority and an urgent one are queued in that order; they start urgent first."""
    hold = ops.compiled.flow_dir / "hold"
    hold.touch()
    try:
        holder = _trigger(ops, "--hold", hold.name)
        assert wait_until(lambda: _run(ops, holder).dagster_run.status.value == "STARTED",
                          RUN_TIMEOUT, interval=0.5), ops.log_tail()
        low = _trigger(ops, "--workflow-priority", "1")
        default = _trigger(ops)
        urgent = _trigger(ops, "--workflow-priority", "10", "--run-title", "urgent fix")
        assert {_run(ops, r).dagster_run.status.value for r in (low, default, urgent)} == {
            "QUEUED"}
    finally:
        hold.unlink()

    records = {name: _finished(ops, run_id) for name, run_id in
               (("low", low), ("default", default), ("urgent", urgent), ("holder", holder))}
    assert {n: r.dagster_run.status.value for n, r in records.items()} == dict.fromkeys(
        records, "SUCCESS")
    tags = {n: r.dagster_run.tags for n, r in records.items()}
    assert {n: t.get(naming.TAG_PRIORITY) for n, t in tags.items()} == {
        "low": "1", "default": "5", "urgent": "10", "holder": "5"}
    assert {n: t.get(naming.TAG_TITLE) for n, t in tags.items()} == {
        "low": TITLE, "default": TITLE, "urgent": "urgent fix", "holder": TITLE}
    started = sorted(("urgent", "default", "low"), key=lambda n: records[n].start_time)
    assert started == ["urgent", "default", "low"], {
        n: (records[n].create_timestamp, records[n].start_time) for n in records}


def test_a_failed_run_is_retried_in_the_same_metaflow_run(ops):
    """`work` fails at its first attempt: Dagster retries the run from the failure, which
    continues the same Metaflow run (start is not run again, work runs as attempt 1), and
    only the retry, which succeeds, notifies. Metaflow's resume of it clones the attempt
    that succeeded."""
    before = len(_executions(ops))
    first = _trigger(ops, "--fail", "first_attempt")
    failed = _finished(ops, first).dagster_run
    assert failed.status.value == "FAILURE"
    retry = _finished(ops, _retry_of(ops, first)).dagster_run
    assert retry.status.value == "SUCCESS", ops.log_tail()
    assert retry.parent_run_id == first and retry.tags["dagster/retry_number"] == "1"
    metaflow_run_id = naming.metaflow_run_id_of(failed)
    assert naming.metaflow_run_id_of(retry) == metaflow_run_id
    assert _executions(ops)[before:] == ["start t 0", "work t 0", "work t 1", "end t 0"]

    run = metaflow_run(ops.compiled, result_of(ops.dagster_home, retry))
    assert run.successful and run["work"].task.current_attempt == 1
    assert run["work"].task.data.done and run["start"].task.current_attempt == 0

    # Metaflow's own resume of the retried run takes the attempt that succeeded.
    proc = subprocess.run([PYTHON, "ops_flow.py", "resume", "--origin-run-id", metaflow_run_id],
                          cwd=ops.compiled.flow_dir, capture_output=True, text=True,
                          env=ops.cli_env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resumed = metaflow_run(ops.compiled, result_of(ops.dagster_home, retry)).parent.latest_run
    assert resumed.id != metaflow_run_id and resumed.successful
    assert resumed["work"].task.metadata_dict["origin-run-id"] == metaflow_run_id
    assert resumed["work"].task.data.done

    time.sleep(5)  # several sensor intervals after the retry ended
    assert ops.recorder.messages(first) == {}
    told = ops.recorder.messages(retry.run_id)
    assert sorted(told) == ["pagerduty", "slack", "teams"], told
    assert all(len(bodies) == 1 for bodies in told.values()), told
    assert "OpsFlow/%s succeeded" % metaflow_run_id in told["slack"][0][0]["text"]
    assert told["pagerduty"][0][0]["event_action"] == "resolve"


def test_notifications_of_a_failing_and_a_succeeding_run(ops):
    """Each channel gets exactly one message per run: for the succeeding run, and for the
    failing run's retry (its first failure will be retried, so it says nothing), with the
    failed step, its Metaflow task and attempt, the end of its error and the links. The
    succeeding run is started in the Dagster home, not through the webserver: the sensors
    see runs of both kinds."""
    succeeding = _trigger(ops, to_webserver=False)
    failing = _trigger(ops, "--fail", "always")
    assert _finished(ops, succeeding).dagster_run.status.value == "SUCCESS"
    assert _finished(ops, failing).dagster_run.status.value == "FAILURE"
    final = _finished(ops, _retry_of(ops, failing))
    assert final.dagster_run.status.value == "FAILURE"
    failed_at = _run_failure_time(ops, final.dagster_run.run_id)
    metaflow_run = "OpsFlow/%s" % naming.metaflow_run_id_of(final.dagster_run)

    def told_everyone():
        return len(ops.recorder.messages(final.dagster_run.run_id)) == 3

    assert wait_until(told_everyone, 60, interval=0.2), ops.recorder.posts
    time.sleep(5)  # several sensor intervals more: nothing else may come
    assert ops.recorder.messages(failing) == {}
    failure = ops.recorder.messages(final.dagster_run.run_id)
    success = ops.recorder.messages(succeeding)
    for told in (failure, success):
        assert sorted(told) == ["pagerduty", "slack", "teams"], told
        assert all(len(bodies) == 1 for bodies in told.values()), told

    slack = failure["slack"][0][0]
    task = "%s/work/t, attempt 1" % metaflow_run
    assert "%s failed (Dagster job OpsFlow, %s)" % (metaflow_run, TITLE) in slack["text"]
    assert "Step work failed: %s" % task in slack["text"]
    assert "work failed on purpose at attempt 1" in slack["text"]
    assert "%s/runs/%s" % (ops.url, final.dagster_run.run_id) in slack["text"]
    assert any(b["type"] == "actions" for b in slack["blocks"])
    teams = failure["teams"][0][0]["attachments"][0]["content"]["body"][0]["text"]
    assert task in teams and "work failed on purpose at attempt 1" in teams
    pagerduty = failure["pagerduty"][0][0]
    assert pagerduty["routing_key"] == PD_KEY and pagerduty["event_action"] == "trigger"
    assert pagerduty["payload"]["severity"] == "error"
    assert pagerduty["payload"]["custom_details"]["metaflow_run"] == metaflow_run
    assert "succeeded" in success["slack"][0][0]["text"]

    delays = {channel: round(bodies[0][1] - failed_at, 2) for channel, bodies in failure.items()}
    print("notification delays after the run's failure (s):", delays)
    assert all(0 < delay < 30 for delay in delays.values()), delays


def _run_failure_time(ops, run_id) -> float:
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(ops.dagster_home)) as instance:
        (record,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
        return record.timestamp
