"""A compiled flow on Dagster's distributed deployment, all of it started here on 127.0.0.1:
a Dagster instance on PostgreSQL, a Redis broker, two Celery workers (two processes each)
started from a directory other than the flow's, Metaflow's S3 datastore on a local S3 server
(moto), and Dagster's webserver and daemon (tests/deployment.py). Runs are submitted with
`python flow.py dagster trigger --dagster-url`, followed with `status`, stopped with
`terminate`, and read back with Metaflow's Client.

One deployment serves the whole module; its last test kills a worker.
Run with `-s` to see the figures (wall times, start times, memory).
"""

import json
import os
import shutil
import signal
import subprocess
import time

import deployment
import pytest
import services
from harness import FLOWS, PYTHON, wait_until

pytest_plugins = ["service_fixtures"]
# One deployment for the whole module, in one xdist worker (`--dist loadgroup`): its tests
# share it, and the last one kills a Celery worker.
pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.xdist_group("distributed")]

FLOW = "distributed_flow"
CAPPED_JOB = "DistributedFlowCapped"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


class Cluster:
    def __init__(self, home, flow_dir, elsewhere, worker_dir, env, workers, dagster):
        self.home, self.flow_dir, self.elsewhere = home, flow_dir, elsewhere
        self.worker_dir = worker_dir
        self.env, self.workers, self.dagster = env, workers, dagster

    def mf(self, directory, *args, timeout=180) -> subprocess.CompletedProcess:
        """`python distributed_flow.py --datastore s3 dagster <args> --dagster-url URL`."""
        argv = [PYTHON, FLOW + ".py", "--datastore", "s3", "dagster", *args,
                "--dagster-url", self.dagster.url]
        proc = subprocess.run(argv, cwd=directory, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def trigger(self, directory, *args) -> str:
        out = self.mf(directory, "trigger", *args)
        return _field(out.stdout + out.stderr, "Dagster run id")

    def status(self, run_id) -> list:
        """The lines `dagster status` prints, from a directory with no definitions file."""
        return self.mf(self.elsewhere, "status", "--run-id", run_id).stdout.splitlines()

    def wait_finished(self, run_id, timeout=300) -> list:
        """Wait (reading the instance: a `status` command a second would load the machine)
        until the run has finished; then what `dagster status` says of it."""
        def finished():
            with self.instance() as instance:
                return instance.get_run_by_id(run_id).status.value in FINISHED

        assert wait_until(finished, timeout, interval=1), "still running:\n%s\n%s" % (
            "\n".join(self.status(run_id)), self.dagster.log_tails())
        return self.status(run_id)

    def instance(self):
        from dagster import DagsterInstance

        return DagsterInstance.from_config(str(self.home))

    def client(self, script: str) -> dict:
        """Run `script` (which prints JSON) with Metaflow's Client on the S3 datastore.
        The tasks' local metadata is where the workers run (the `.metaflow` Metaflow
        finds from their working directory): one host, one folder, here."""
        code = "from metaflow import *\nmetadata('local@%s')\nnamespace(None)\n%s" % (
            self.worker_dir, script)
        proc = subprocess.run([PYTHON, "-c", code], env=self.env, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _field(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.strip().startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no %r in:\n%s" % (label, output))


@pytest.fixture(scope="module")
def cluster(postgres_service, postgres_dagster_home, redis_service, s3_service,
            celery_workers_factory, tmp_path_factory):
    base = tmp_path_factory.mktemp("distributed")
    flow_dir, elsewhere, worker_dir = base / "flow", base / "elsewhere", base / "workers"
    for directory in (flow_dir, elsewhere, worker_dir):
        directory.mkdir()
        shutil.copy(FLOWS / (FLOW + ".py"), directory)
    env = dict(os.environ, METAFLOW_USER="ci", **s3_service.env("distributed"))
    env.pop("DAGSTER_HOME", None)
    for defs, extra in (("defs.py", []), ("capped.py", ["--name", CAPPED_JOB, "--max-workers",
                                                       "1"])):
        proc = subprocess.run([PYTHON, FLOW + ".py", "--datastore", "s3", "dagster", "create",
                               defs, "--executor", "celery", *extra],
                              cwd=flow_dir, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    workspace = deployment.workspace_yaml(base / "workspace.yaml",
                                          [flow_dir / "defs.py", flow_dir / "capped.py"],
                                          flow_dir)
    # The run workers submit to the workers' broker (Celery's own variables); the workers'
    # broker databases are known before they start.
    broker, backend = celery_workers_factory.next_urls()
    env.update(CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=backend)
    with deployment.webserver_and_daemon(base / "dagster", postgres_dagster_home, workspace,
                                         env, locations=None) as dagster:
        workers = celery_workers_factory(
            n=2, cwd=worker_dir, env=env, concurrency=2,
            # Fetch a task only with a free process: a dead worker holds no queued ones.
            extra_args=("--without-mingle", "--without-gossip", "--disable-prefetch"))
        assert (workers.broker_url, workers.backend_url) == (broker, backend)
        dagster.wait_ready(locations=2)
        print("\nservices: start seconds postgres %.1f, redis %.1f, moto %.1f, 2 celery "
              "workers %.1f, webserver+daemon %.1f; RSS MB postgres %.0f, redis %.0f, moto "
              "%.0f, workers %.0f, webserver+daemon %.0f" % (
                  postgres_service.start_seconds, redis_service.start_seconds,
                  s3_service.start_seconds, workers.start_seconds, dagster.start_seconds,
                  postgres_service.rss_mb(), redis_service.rss_mb(),
                  s3_service.rss_mb(), workers.rss_mb(), dagster.rss_mb()))
        yield Cluster(postgres_dagster_home, flow_dir, elsewhere, worker_dir,
                      dict(env, DAGSTER_HOME=str(postgres_dagster_home)), workers, dagster)


def captured_stdout(instance, run_id: str, step_key: str) -> str:
    from dagster import DagsterEventType

    for record in instance.all_logs(run_id, of_type=DagsterEventType.LOGS_CAPTURED):
        data = record.dagster_event.event_specific_data
        if step_key in data.step_keys:
            manager = instance.compute_log_manager
            log_key = manager.build_log_key_for_run(run_id, data.file_key)
            return (manager.get_log_data(log_key).stdout or b"").decode()
    return ""


K8S_FLOW = """
from metaflow import FlowSpec, kubernetes, resources, step, timeout


class TrainFlow(FlowSpec):
    @resources(cpu=2, memory=4096)
    @timeout(minutes=10)
    @step
    def start(self):
        self.next(self.train)

    @kubernetes(image="registry.example.com/flows/train:1.4")
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TrainFlow()
"""


def test_a_steps_pod_spec_from_the_flow(s3_service, tmp_path):
    """@kubernetes needs an object-store datastore at `create` (hence this module). No cluster
    can run here: the Job dagster-k8s would submit for a step is built by its own functions
    from the op's tags, and checked. A @kubernetes step runs on Metaflow's compute layer
    (tests/e2e/test_compute_layer.py): its op's pod only waits for it, with no settings."""
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from harness import load_definitions

    (tmp_path / "train_flow.py").write_text(K8S_FLOW)
    env = dict(os.environ, METAFLOW_USER="ci", **s3_service.env("k8s"))
    proc = subprocess.run([PYTHON, "train_flow.py", "--datastore", "s3", "dagster", "create",
                           "train.py", "--executor", "k8s"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = load_definitions(tmp_path / "train.py").defs.get_job_def("TrainFlow")
    tags = job.graph.node_named("start").definition.tags
    pod = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(job_image="registry.example.com/flows/base:1",
                                       dagster_home="/opt/dagster/dagster_home"),
        args=["dagster", "api", "execute_step"], job_name="dagster-step-start",
        component="step_worker", user_defined_k8s_config=get_user_defined_k8s_config(tags))
    container = pod.spec.template.spec.containers[0]
    assert container.image == "registry.example.com/flows/base:1"
    assert container.resources.requests == {"cpu": "2", "memory": "4096M"}
    assert pod.spec.active_deadline_seconds > 600
    assert "dagster-k8s/config" not in job.graph.node_named("train").definition.tags


def test_a_foreach_of_20_spreads_over_both_workers(cluster):
    started = time.monotonic()
    # From a directory holding only the flow: the webserver has the job.
    run_id = cluster.trigger(cluster.elsewhere)
    lines = cluster.wait_finished(run_id)
    wall = time.monotonic() - started
    print("\nforeach of 20 on 2 Celery workers: %.1f s from trigger to SUCCESS" % wall)
    assert "SUCCESS" in lines[0], "\n".join(lines)
    assert sum("body[" in line and "SUCCESS" in line for line in lines) == 20, lines

    with cluster.instance() as instance:
        workers = {key: deployment.celery_workers_of(instance, run_id, key)
                   for key in ["body[%d]" % i for i in range(20)]}
        per_worker = {name: sum(w == [name] for w in workers.values())
                      for name in cluster.workers.names}
        print("body tasks per worker: %s" % per_worker)
        assert all(len(w) == 1 for w in workers.values()), workers
        assert all(count >= 1 for count in per_worker.values()), per_worker
        assert sum(per_worker.values()) == 20
        # The task's own output, live in the step's Dagster logs.
        assert "square of 7 is 49" in captured_stdout(instance, run_id, "body[7]")

    from metaflow_dagster import naming

    run = "DistributedFlow/%s" % naming.metaflow_run_id(run_id)
    read = cluster.client(
        "import json\nrun = Run(%r)\nt = Task(%r + '/body/t-7')\n"
        "print(json.dumps({'ok': run.successful, 'count': run.data.count, "
        "'square': t.data.square, 'attempt': t.current_attempt, 'stdout': t.stdout}))"
        % (run, run))
    assert read["ok"] and read["count"] == 20 and read["square"] == 49, read
    assert read["attempt"] == 0 and "square of 7 is 49" in read["stdout"], read


def test_terminate_stops_the_tasks_on_the_workers(cluster):
    # The capped job (--max-workers 1): one split at a time, though two workers are free.
    run_id = cluster.trigger(cluster.flow_dir, "--definitions-file", "capped.py",
                             "--width", "2", "--hold", "0,1")
    assert wait_until(lambda: services.task_processes(run_id, "body"), 150, interval=0.5), \
        cluster.status(run_id)
    time.sleep(5)  # time enough for a second split to start, if the cap let it
    assert len(services.task_processes(run_id, "body")) == 1, cluster.status(run_id)

    asked = time.monotonic()
    cluster.mf(cluster.elsewhere, "terminate", "--run-id", run_id)
    gone = wait_until(lambda: not services.task_processes(run_id), 60, interval=0.2)
    seconds = time.monotonic() - asked
    print("\ncelery: terminate command to the last task process gone: %.1f s" % seconds)
    assert gone and seconds <= 15, services.task_processes(run_id)
    lines = cluster.wait_finished(run_id, timeout=60)
    assert "CANCELED" in lines[0], lines


def test_a_worker_killed_mid_task_leads_to_a_retry(cluster):
    run_id = cluster.trigger(cluster.elsewhere, "--width", "2", "--hold", "0")
    assert wait_until(lambda: services.task_processes(run_id, "body", "t-0"), 150, interval=0.5), \
        cluster.status(run_id)
    task = services.task_processes(run_id, "body", "t-0")[0]
    worker = task
    leaders = {proc.pid for proc in cluster.workers.procs}
    while worker not in leaders:
        worker = services._proc_stat(worker)[1]
    # The worker's host is lost: the worker, its pool and the task it runs, all at once.
    victims = services.process_tree(worker)
    assert task in victims
    killed = time.monotonic()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    lines = cluster.wait_finished(run_id)
    print("\nworker killed mid-task: run finished %.1f s later: %s"
          % (time.monotonic() - killed, lines[0]))
    assert "SUCCESS" in lines[0], lines
    with cluster.instance() as instance:
        stats = {s.step_key: s for s in instance.get_run_step_stats(run_id)}
        assert stats["body[0]"].attempts == 2
        first, second = deployment.celery_workers_of(instance, run_id, "body[0]")
        assert first != second, (first, second)

    from metaflow_dagster import naming

    read = cluster.client(
        "import json\nt = Task('DistributedFlow/%s/body/t-0')\n"
        "print(json.dumps({'attempt': t.current_attempt, 'square': t.data.square}))"
        % naming.metaflow_run_id(run_id))
    assert read == {"attempt": 1, "square": 0}, read
