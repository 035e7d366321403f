"""A deployment of one compiled flow on hosts that share only a network (tests/hosts.py), as
docs/deploy.md ("Many hosts") describes it, for the tests and the benchmark:

- head: PostgreSQL (Dagster's storage), Redis (Celery's broker), an S3 server (moto: Metaflow's
  datastore, op outputs, step logs), Metaflow's metadata service, and Dagster's webserver,
  daemon and run workers;
- worker-1, worker-2 (those asked for): a Celery worker each (dagster-celery);
- client: the user's shell: `create`, `trigger`/`status`/`resume`/`terminate` against the
  webserver, and Metaflow's Client.

Each host has its own files: the definitions file is deployed to head and workers at the same
path (as a code location image would be); nothing of the flow's directory leaves the client.

    with many_hosts.site(tmp / "hosts", FLOWS / "distributed_flow.py") as site:
        run_id = site.trigger("--width", "4")
"""

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import deployment
import hosts
import services

PYTHON = sys.executable
WORK = "/srv/work"  # the user's directory on the client, the workers' working directory
DAGSTER_HOME = "/srv/dagster"
FLOWS_DIR = "/srv/flows"  # where the definitions file is deployed, on head and workers
S3_PREFIX = "many-hosts"  # of the datastore in the bucket
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
LOGS_CAPTURED = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
  events { ... on LogsCapturedEvent { fileKey stepKeys } } } } }"""
CAPTURED_LOGS = "query($key: [String!]!) { capturedLogs(logKey: $key) { stdout } }"


class Site:
    """The hosts and what runs on them."""

    def __init__(self, net, flow_file: str, workers: Sequence[str]):
        self.net, self.flow_file = net, flow_file
        self.head, self.client = net["head"], net["client"]
        self.workers = [net[name] for name in workers]

    # ------------------------------------------------------------------ the user's shell

    def client_env(self) -> dict:
        return self.client.env(**self.s3.env(S3_PREFIX), **self.metadata.env())

    def mf(self, *args, timeout=180, check=True) -> subprocess.CompletedProcess:
        """`python <flow file> --datastore s3 --metadata service dagster <args>
        --dagster-url URL`, on the client, in the user's directory."""
        argv = [PYTHON, self.flow_file, "--datastore", "s3", "--metadata", "service", "dagster",
                *args, "--dagster-url", self.dagster.url]
        proc = self.client.run(argv, cwd=WORK, env=self.client_env(), capture_output=True,
                               text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def trigger(self, *args) -> str:
        out = self.mf("trigger", *args)
        return field(out.stdout + out.stderr, "Dagster run id")

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
        steps = self.mf("status", "--run-id", run_id, check=False)
        raise AssertionError("run %s still %s after %d s:\n%s\n%s\n%s" % (
            run_id, status, timeout, steps.stdout + steps.stderr, self.step_events(run_id),
            self.dagster.log_tails()))

    def step_events(self, run_id: str) -> str:
        """The run's step events, a line each: time, step, type, and a message's start."""
        return "\n".join(self.instance(lambda instance: [
            "%.1f %s %s %s" % (r.timestamp, r.dagster_event.step_key,
                               r.dagster_event.event_type_value,
                               (r.dagster_event.message or "")[:150].replace("\n", " "))
            for r in instance.all_logs(run_id)
            if r.dagster_event and r.dagster_event.step_key]))

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


def field(output: str, label: str) -> str:
    """The value of a `label: value` line a command printed."""
    for line in output.splitlines():
        if line.strip().startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no %r in:\n%s" % (label, output))


def _create_and_deploy(site: Site) -> str:
    """The user creates the job on the client; the operator deploys the definitions file to
    the head and every worker, at the same path (as an image of the code location). Its path
    there."""
    before = set(site.client.path(WORK).glob("*_dagster.py"))
    created = site.client.run(
        [PYTHON, site.flow_file, "--datastore", "s3", "--metadata", "service", "dagster",
         "create", "--executor", "celery"],
        cwd=WORK, env=site.client_env(), capture_output=True, text=True, timeout=180)
    assert created.returncode == 0, created.stdout + created.stderr
    written, = set(site.client.path(WORK).glob("*_dagster.py")) - before
    for host in [site.head, *site.workers]:
        target = host.path(FLOWS_DIR) / written.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(written, target)
    return "%s/%s" % (FLOWS_DIR, written.name)


@contextlib.contextmanager
def site(base, flow_file: Path, workers: Sequence[str] = ("worker-1", "worker-2"),
         concurrency: int = 2) -> Iterator[Site]:
    """The hosts and every server, ready; the flow (`flow_file`, copied to the client's
    WORK) created there with `--executor celery` and deployed. `site.start_seconds`, and
    each server's start_seconds and rss_mb(), say what they cost."""
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        net = stack.enter_context(hosts.topology(base))
        site = Site(net, Path(flow_file).name, workers)
        head, client = site.head, site.client
        site.pg = stack.enter_context(services.postgres("/srv/postgres", host=head))
        site.redis = stack.enter_context(services.redis("/srv/redis", host=head))
        site.s3 = stack.enter_context(services.s3_server("/srv/s3", host=head))
        site.metadata = stack.enter_context(services.metadata_service("/srv/metadata",
                                                                      host=head))
        client.path(WORK).mkdir(parents=True)
        shutil.copy(flow_file, client.path(WORK))
        defs = _create_and_deploy(site)
        # The head: Dagster's storage in PostgreSQL, step logs in S3; the run workers find
        # the broker in Celery's own variables; only credentials come from the environment.
        head.path(DAGSTER_HOME).mkdir(parents=True)
        (head.path(DAGSTER_HOME) / "dagster.yaml").write_text(services.dagster_yaml_for_postgres(
            site.pg, extra=services.dagster_yaml_for_s3_compute_logs(site.s3)))
        workspace = FLOWS_DIR + "/workspace.yaml"
        deployment.workspace_yaml(head.path(workspace), [defs], FLOWS_DIR)
        broker, backend = site.redis.url_for(0), site.redis.url_for(1)
        head_env = head.env(**services.FAKE_AWS, CELERY_BROKER_URL=broker,
                            CELERY_RESULT_BACKEND=backend)
        site.dagster = stack.enter_context(deployment.webserver_and_daemon(
            "/srv/dagster-logs", DAGSTER_HOME, workspace, head_env, locations=None,
            host=head))
        site.celery = {}
        for k, worker in enumerate(site.workers, start=1):
            worker.path(WORK).mkdir(parents=True, exist_ok=True)
            site.celery[worker.name] = stack.enter_context(services.celery_workers(
                "/srv/celery", broker, backend, n=1, names=[f"w{k}"], host=worker,
                env=worker.env(**services.FAKE_AWS), cwd=WORK, concurrency=concurrency,
                # Fetch a task only with a free process: a lost worker holds no queued ones.
                extra_args=("--without-mingle", "--without-gossip", "--disable-prefetch")))
        site.dagster.wait_ready(locations=1)
        site.start_seconds = time.monotonic() - started
        yield site


def figures(site: Site) -> str:
    """What the servers took to start and hold, per host."""
    return ("ready in %.1f s; start s: postgres %.1f, redis %.1f, moto %.1f, metadata %.1f, "
            "webserver+daemon %.1f, celery %s; RSS MB head: postgres %.0f, redis %.0f, "
            "moto %.0f, metadata %.0f, webserver+daemon %.0f; workers: %s" % (
                site.start_seconds, site.pg.start_seconds, site.redis.start_seconds,
                site.s3.start_seconds, site.metadata.start_seconds,
                site.dagster.start_seconds,
                {n: w.start_seconds for n, w in site.celery.items()}, site.pg.rss_mb(),
                site.redis.rss_mb(), site.s3.rss_mb(), site.metadata.rss_mb(),
                site.dagster.rss_mb(), {n: w.rss_mb() for n, w in site.celery.items()}))
