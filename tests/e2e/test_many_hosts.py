"""A compiled flow on hosts that share only a network (tests/many_hosts.py: head, two worker
hosts, a client), as a team that outgrew one machine runs it (docs/deploy.md, "Many hosts").
One deployment serves the whole module. Run with `-s` to see the figures.
"""

import time

import many_hosts
import pytest
import services
from deployment import celery_workers_of
from harness import FLOWS, wait_until
from many_hosts import S3_PREFIX, field

from metaflow_dagster import naming

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.xdist_group("many_hosts")]

JOB = "DistributedFlow"
WORKERS = ("worker-1", "worker-2")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with many_hosts.site(tmp_path_factory.mktemp("hosts"), FLOWS / "distributed_flow.py",
                         WORKERS) as site:
        print("\nhosts: " + many_hosts.figures(site))
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
    prefix = "%s/%s/dagster-outputs/%s/" % (S3_PREFIX, JOB, run_id)
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
    new_run = field(resumed.stdout + resumed.stderr, "Metaflow run")  # Flow/run id
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


ATTEMPTS = """t = Task(%r)
print(json.dumps({'current': t.current_attempt, 'square': t['square'].data,
                  'sha': t['square'].sha, 'first_done': Task(%r, attempt=0).finished}))"""


def _succeeded(site, run_id: str, step_key: str) -> bool:
    return site.instance(lambda instance: any(
        r.dagster_event and r.dagster_event.step_key == step_key
        and r.dagster_event.event_type_value == "STEP_SUCCESS"
        for r in instance.all_logs(run_id)))


def test_a_worker_cut_off_mid_task_is_retried_on_the_other(site):
    """worker-2's cable is pulled while it runs a split (held 120 s), until the run is over:
    the split is retried on worker-1 as Metaflow's next attempt, and the run succeeds. The
    cut attempt never overwrites the accepted attempt's artifacts (Metaflow's attempt ids
    keep them apart)."""
    one, two = site.workers
    # Everything of the run starts on worker-2: worker-1 takes no task until the split holds.
    site.celery[one.name].consume(False)
    try:
        run_id = site.trigger("--width", "2", "--hold", "0", "--hold_seconds", "120")
        assert wait_until(lambda: services.task_processes(run_id, "body", "t-0")
                          and _succeeded(site, run_id, "body[1]"), 240, interval=1), \
            site.mf("status", "--run-id", run_id).stdout
    finally:
        site.celery[one.name].consume(True)
    assert all(two.owns(pid) for pid in services.task_processes(run_id, "body", "t-0"))
    cut_at = time.time()
    two.unplug()
    try:
        assert site.wait_finished(run_id, timeout=600) == "SUCCESS"
        finished = time.time()
    finally:
        two.plug()
    noticed = site.instance(lambda instance: [
        r.timestamp for r in instance.all_logs(run_id) if r.dagster_event
        and r.dagster_event.step_key == "body[0]"
        and r.dagster_event.event_type_value in ("STEP_UP_FOR_RETRY", "STEP_FAILURE")])
    print("\nworker-2 cut off mid-task: noticed (the step failed) %.1f s after the cut, the "
          "run succeeded %.1f s after it" % (min(noticed) - cut_at, finished - cut_at))
    took = site.instance(lambda instance: celery_workers_of(instance, run_id, "body[0]"))
    assert [name.split("@")[1] for name in took] == ["worker-2", "worker-1"], took
    task = "%s/%s/body/t-0" % (JOB, naming.metaflow_run_id(run_id))
    accepted = site.metaflow(ATTEMPTS % (task, task))
    assert accepted["current"] == 1, accepted

    # The cut attempt, once worker-2 is back, ends there too.
    assert wait_until(lambda: not [pid for pid in services.task_processes(run_id)
                                   if two.owns(pid)], 300, interval=1)
    late = site.metaflow(ATTEMPTS % (task, task))
    print("the cut attempt ended %.1f s after the run; attempt 0 finished: %s"
          % (time.time() - finished, late["first_done"]))
    assert late["current"] == 1 and late["sha"] == accepted["sha"], (accepted, late)


def test_postgresql_restarted_mid_run(site):
    """Dagster's storage goes away for a few seconds while a step runs on a worker. (Last in
    the module: the webserver answers requests with its lost connections for a while.)"""
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
