"""A compiled flow on hosts that share only a network (tests/hosts.py), as a team that outgrew
one machine runs it (docs/deploy.md, "Many hosts"):

- head: PostgreSQL (Dagster's storage), Redis (Celery's broker), an S3 server (moto: Metaflow's
  datastore), Metaflow's metadata service, and Dagster's webserver, daemon and run workers;
- worker-1, worker-2: a Celery worker each (dagster-celery), two processes;
- client: the user's shell: `create`, `trigger`/`status`/`resume` against the webserver, and
  Metaflow's Client.

Each host has its own files: the definitions file is deployed to head and workers at the same
path (as a code location image would be); nothing of the flow's directory leaves the client.
One deployment serves the whole module. Run with `-s` to see the figures.
"""

import contextlib
import json
import shutil
import subprocess
import time

import deployment
import hosts
import pytest
import services
from harness import FLOWS, PYTHON, wait_until

from metaflow_dagster import naming

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.xdist_group("many_hosts")]

FLOW = "distributed_flow"
JOB = "DistributedFlow"
DEFS = "/srv/flows/distributedflow_dagster.py"  # the name `create` gives it
WORK = "/srv/work"  # the user's directory on the client, the workers' working directory
DAGSTER_HOME = "/srv/dagster"
WORKERS = ("worker-1", "worker-2")
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
LOGS_CAPTURED = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
  events { ... on LogsCapturedEvent { fileKey stepKeys } } } } }"""
CAPTURED_LOGS = "query($key: [String!]!) { capturedLogs(logKey: $key) { stdout } }"


class Site:
    """The hosts and what runs on them."""

    def __init__(self, net, stack):
        self.net, self.stack = net, stack
        self.head, self.client = net["head"], net["client"]
        self.workers = [net[name] for name in WORKERS]

    # ------------------------------------------------------------------ the user's shell

    def client_env(self) -> dict:
        return self.client.env(**self.s3.env("many-hosts"), **self.metadata.env())

    def mf(self, *args, timeout=180, check=True) -> subprocess.CompletedProcess:
        """`python distributed_flow.py --datastore s3 --metadata service dagster <args>
        --dagster-url URL`, on the client, in the user's directory."""
        argv = [PYTHON, FLOW + ".py", "--datastore", "s3", "--metadata", "service", "dagster",
                *args, "--dagster-url", self.dagster.url]
        proc = self.client.run(argv, cwd=WORK, env=self.client_env(), capture_output=True,
                               text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def trigger(self, *args) -> str:
        out = self.mf("trigger", *args)
        return _field(out.stdout + out.stderr, "Dagster run id")

    def graphql(self, query: str, variables=None) -> dict:
        """A query to the webserver, from the client host."""
        return self.client.call(services.graphql, self.dagster.url, query, variables)

    def run_status(self, run_id: str) -> str:
        data = self.graphql('{ runOrError(runId: "%s") { ... on Run { status } } }' % run_id)
        return data["runOrError"]["status"]

    def step_logs(self, run_id: str, step_key: str):
        """(file key, stdout) of a step's captured logs, as the webserver shows them (the
        UI's logs view of the step)."""
        events = self.graphql(LOGS_CAPTURED, {"runId": run_id})["logsForRun"]["events"]
        # The step's own capture (the run worker's covers every step, and holds nothing).
        keys = [e["fileKey"] for e in events if e and e.get("stepKeys") == [step_key]]
        assert len(keys) == 1, "captured logs of %s in run %s: %s" % (step_key, run_id, keys)
        logs = self.graphql(CAPTURED_LOGS, {"key": [run_id, "compute_logs", keys[0]]})
        return keys[0], logs["capturedLogs"]["stdout"] or ""

    def wait_finished(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            try:
                status = self.run_status(run_id)
            except AssertionError as error:  # the webserver answered with an error
                print("status of %s: %s" % (run_id, str(error)[:200]))
            if status in FINISHED:
                return status
            time.sleep(1)
        raise AssertionError("run %s still %s after %d s:\n%s" % (
            run_id, status, timeout, self.dagster.log_tails()))

    def metaflow(self, script: str) -> dict:
        """Run `script` (which prints JSON last) with Metaflow's Client on the client host."""
        code = "import json\nfrom metaflow import *\nnamespace(None)\n" + script
        proc = self.client.run([PYTHON, "-c", code], cwd=WORK, env=self.client_env(),
                               capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    # ------------------------------------------------------------------ Dagster's view

    def instance(self, fn):
        """fn(instance) with Dagster's instance (PostgreSQL on the head), from the client."""
        def with_instance():
            from dagster import DagsterInstance

            with DagsterInstance.from_config(str(self.head.path(DAGSTER_HOME))) as instance:
                return fn(instance)

        return self.client.call(with_instance)


def _field(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.strip().startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no %r in:\n%s" % (label, output))


def celery_workers_of(instance, run_id: str, step_key: str) -> list:
    """The Celery workers that took a step (one per attempt), from dagster-celery's events."""
    from dagster import DagsterEventType

    found = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event.step_key == step_key and "Celery worker" in event.engine_event_data.metadata:
            found.append(event.engine_event_data.metadata["Celery worker"].value)
    return found


def _deploy_definitions(site: Site) -> None:
    """The user creates the job on the client; the operator deploys the definitions file to
    the head and every worker, at the same path (as an image of the code location)."""
    created = site.client.path(WORK) / "distributedflow_dagster.py"
    for host in [site.head, *site.workers]:
        target = host.path(DEFS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(created, target)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        net = stack.enter_context(hosts.topology(tmp_path_factory.mktemp("hosts")))
        site = Site(net, stack)
        head, client = site.head, site.client
        site.pg = stack.enter_context(services.postgres("/srv/postgres", host=head))
        site.redis = stack.enter_context(services.redis("/srv/redis", host=head))
        site.s3 = stack.enter_context(services.s3_server("/srv/s3", host=head))
        site.metadata = stack.enter_context(services.metadata_service("/srv/metadata",
                                                                      host=head))
        # The user's shell: the flow in their directory, `create` there.
        client.path(WORK).mkdir(parents=True)
        shutil.copy(FLOWS / (FLOW + ".py"), client.path(WORK))
        created = client.run(
            [PYTHON, FLOW + ".py", "--datastore", "s3", "--metadata", "service", "dagster",
             "create", "--executor", "celery"],
            cwd=WORK, env=site.client_env(), capture_output=True, text=True, timeout=180)
        assert created.returncode == 0, created.stdout + created.stderr
        _deploy_definitions(site)
        # The head: Dagster's storage in PostgreSQL; the run workers find the broker in
        # Celery's own variables; only credentials come from the environment.
        head.path(DAGSTER_HOME).mkdir(parents=True)
        (head.path(DAGSTER_HOME) / "dagster.yaml").write_text(services.dagster_yaml_for_postgres(
            site.pg, extra=services.dagster_yaml_for_s3_compute_logs(site.s3)))
        deployment.workspace_yaml(head.path("/srv/flows/workspace.yaml"),
                                              [DEFS], "/srv/flows")
        broker, backend = site.redis.url_for(0), site.redis.url_for(1)
        head_env = head.env(**services.FAKE_AWS, CELERY_BROKER_URL=broker,
                            CELERY_RESULT_BACKEND=backend)
        site.dagster = stack.enter_context(deployment.webserver_and_daemon(
            "/srv/dagster-logs", DAGSTER_HOME, "/srv/flows/workspace.yaml", head_env,
            locations=None, host=head))
        site.celery = {}
        for k, worker in enumerate(site.workers, start=1):
            worker.path(WORK).mkdir(parents=True, exist_ok=True)
            site.celery[worker.name] = stack.enter_context(services.celery_workers(
                "/srv/celery", broker, backend, n=1, names=[f"w{k}"], host=worker,
                env=worker.env(**services.FAKE_AWS), cwd=WORK, concurrency=2,
                # Fetch a task only with a free process: a lost worker holds no queued ones.
                extra_args=("--without-mingle", "--without-gossip", "--disable-prefetch")))
        site.dagster.wait_ready(locations=1)
        site.start_seconds = time.monotonic() - started
        print("\nhosts: ready in %.1f s; start s: postgres %.1f, redis %.1f, moto %.1f, "
              "metadata %.1f, webserver+daemon %.1f, celery %s; RSS MB head: postgres %.0f, "
              "redis %.0f, moto %.0f, metadata %.0f, webserver+daemon %.0f; workers: %s" % (
                  site.start_seconds, site.pg.start_seconds, site.redis.start_seconds,
                  site.s3.start_seconds, site.metadata.start_seconds,
                  site.dagster.start_seconds,
                  {n: w.start_seconds for n, w in site.celery.items()}, site.pg.rss_mb(),
                  site.redis.rss_mb(), site.s3.rss_mb(), site.metadata.rss_mb(),
                  site.dagster.rss_mb(), {n: w.rss_mb() for n, w in site.celery.items()}))
        yield site


@pytest.fixture(scope="module")
def foreach_run(site):
    """A run of the flow with 4 splits (split 1 holds 3 s), triggered from the client; its
    Dagster run id, and the worker host of each step."""
    started = time.monotonic()
    run_id = site.trigger("--width", "4", "--hold", "1", "--hold_seconds", "3")
    assert site.wait_finished(run_id) == "SUCCESS", site.mf("status", "--run-id", run_id).stdout
    print("\nforeach of 4 on %d worker host(s): %.1f s from trigger to SUCCESS"
          % (len(site.workers), time.monotonic() - started))
    steps = ["start", "join", "end"] + ["body[%d]" % i for i in range(4)]
    took = site.instance(lambda instance: {
        key: [name.split("@")[1] for name in celery_workers_of(instance, run_id, key)]
        for key in steps})
    return run_id, took


def test_a_run_on_the_workers_is_seen_from_the_client(site, foreach_run):
    run_id, took = foreach_run
    # Every op ran once, on a worker host, none on the head.
    assert all(len(hosts_of_step) == 1 for hosts_of_step in took.values()), took
    assert {h for hosts_of_step in took.values() for h in hosts_of_step} <= set(WORKERS), took
    # What an op hands to the next (its task's path) went through S3, not a host's disk.
    prefix = "many-hosts/%s/dagster-outputs/%s/" % (JOB, run_id)
    outputs = site.client.call(lambda: [o["Key"][len(prefix):] for o in site.s3.client(
    ).list_objects_v2(Bucket=site.s3.bucket, Prefix=prefix).get("Contents", [])])
    assert {"start/result/0", "body[3]/result", "join/result"} <= set(outputs), outputs

    # The Client on the client host, through the metadata service and the datastore only.
    run = "%s/%s" % (JOB, naming.metaflow_run_id(run_id))
    read = site.metaflow(
        "run = Run(%r)\nt = Task(%r + '/body/t-1')\n"
        "print(json.dumps({'runs': [r.pathspec for r in Flow(%r).runs()], "
        "'ok': run.successful, 'count': run.data.count, 'square': t['square'].data, "
        "'attempt': t.current_attempt, 'stdout': t.stdout}))" % (run, run, JOB))
    assert run in read["runs"] and read["ok"] and read["count"] == 4, read
    assert read["square"] == 1 and read["attempt"] == 0, read
    assert "square of 1 is 1" in read["stdout"], read

    # Heartbeats: the run's, from the head while it ran; the held task's, from its worker.
    beats = site.metadata.requests("/heartbeat")
    run_url = "/flows/%s/runs/%s/heartbeat" % (JOB, naming.metaflow_run_id(run_id))
    task_url = "/flows/%s/runs/%s/steps/body/tasks/t-1/heartbeat" % (
        JOB, naming.metaflow_run_id(run_id))
    assert any(run_url in line and site.head.address in line for line in beats), beats
    worker_addresses = {w.address for w in site.workers}
    assert any(task_url in line and any(a in line for a in worker_addresses)
               for line in beats), beats


def test_the_ui_shows_the_logs_of_a_step_that_ran_on_a_worker(site, foreach_run):
    """Step logs go to S3 (S3ComputeLogManager in dagster.yaml) from the worker that ran the
    step; the webserver on the head reads them from there."""
    run_id, took = foreach_run
    worker = site.workers[-1]
    on_worker = [key for key, hosts_of_step in took.items()
                 if key.startswith("body[") and hosts_of_step == [worker.name]]
    assert on_worker, took
    index = int(on_worker[0][len("body["):-1])
    file_key, stdout = site.step_logs(run_id, on_worker[0])
    line = "square of %d is %d" % (index, index * index)
    assert line in stdout, stdout
    # The worker uploaded them; the webserver read them from there, not from a shared disk.
    key = "dagster-logs/storage/%s/compute_logs/%s.out" % (run_id, file_key)
    uploaded = site.client.call(lambda: site.s3.client().get_object(
        Bucket=site.s3.bucket, Key=key)["Body"].read().decode())
    assert line in uploaded, uploaded


def test_resume_from_the_client(site):
    origin = site.trigger("--width", "3")
    assert site.wait_finished(origin) == "SUCCESS"
    resumed = site.mf("resume", "--origin-run-id", origin, "--step-to-rerun", "join", "--wait",
                      timeout=300)
    new_run = _field(resumed.stdout + resumed.stderr, "Metaflow run")  # Flow/run id
    read = site.metaflow(
        "run = Run(%r)\n"
        "print(json.dumps({'ok': run.successful, 'count': run.data.count, 'cloned': {"
        "'%%s/%%s' %% (t.parent.id, t.id): 'origin-task-id' in t.metadata_dict "
        "for s in run for t in s}}))" % new_run)
    assert read["ok"] and read["count"] == 3, read
    assert read["cloned"] == {"start/t": True, "body/t-0": True, "body/t-1": True,
                              "body/t-2": True, "join/t": False, "end/t": False}, read


def _on_workers(site, pids) -> dict:
    """{worker host name: its pids among `pids`}."""
    return {w.name: [pid for pid in pids if w.owns(pid)] for w in site.workers}


def test_terminate_from_the_client_stops_the_tasks_on_every_worker(site):
    run_id = site.trigger("--width", "4", "--hold", "0,1,2,3", "--hold_seconds", "300")
    assert wait_until(lambda: len(services.task_processes(run_id, "body")) >= 2, 240,
                      interval=0.5), site.mf("status", "--run-id", run_id).stdout
    running = services.task_processes(run_id)
    assert not [pid for pid in running if not any(w.owns(pid) for w in site.workers)], \
        "task processes off the worker hosts"
    print("\nheld tasks per worker: %s" % {name: len(pids) for name, pids in
                                           _on_workers(site, running).items()})

    asked = time.monotonic()
    site.mf("terminate", "--run-id", run_id)
    gone = wait_until(lambda: not services.task_processes(run_id), 60, interval=0.2)
    seconds = time.monotonic() - asked
    print("terminate from the client to the last task process gone: %.1f s" % seconds)
    assert gone and seconds <= 15, _on_workers(site, services.task_processes(run_id))
    assert site.wait_finished(run_id, timeout=60) == "CANCELED"


def test_postgresql_restarted_mid_run(site):
    """Dagster's storage goes away for a few seconds while a step runs on a worker."""
    run_id = site.trigger("--width", "2", "--hold", "0", "--hold_seconds", "20")
    assert wait_until(lambda: services.task_processes(run_id, "body", "t-0"), 240,
                      interval=0.5), site.mf("status", "--run-id", run_id).stdout
    restarted = time.monotonic()
    down = site.pg.restart(down_seconds=3)
    status = site.wait_finished(run_id, timeout=300)
    print("\nPostgreSQL down %.1f s mid-run: the run finished %s %.1f s after the restart"
          % (down, status, time.monotonic() - restarted))
    if status != "SUCCESS":  # then it says why
        reasons = site.instance(lambda instance: [
            r.dagster_event.message for r in instance.all_logs(run_id)
            if r.dagster_event and r.dagster_event.is_failure])
        assert reasons, "failed without a reason"
        print("why: %s" % reasons[-1][:500])
    assert status in ("SUCCESS", "FAILURE")
