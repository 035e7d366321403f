"""A compiled flow on hosts that share only a network (tests/many_hosts.py: head, two worker
hosts, a client), as a team that outgrew one machine runs it (docs/deploy.md, "Many hosts").
One deployment serves the whole module. Run with `-s` to see the figures.
"""

import time

import many_hosts
import pytest
import services
from harness import FLOWS, wait_until
from many_hosts import S3_PREFIX, celery_workers_of, field

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


def _task_ids(pids) -> set:
    ids = set()
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        ids.update(b for a, b in zip(argv, argv[1:]) if a == "--task-id")
    return ids


ATTEMPTS = """t = Task(%r)
print(json.dumps({'current': t.current_attempt, 'square': t['square'].data,
                  'sha': t['square'].sha, 'first_done': Task(%r, attempt=0).finished}))"""


def test_a_worker_cut_off_mid_task_is_retried_on_the_other(site):
    """worker-2's cable is pulled while it runs held splits: each is retried on worker-1 as
    Metaflow's next attempt, and the run succeeds. When the cable is back, the cut attempt
    finishes on worker-2 too, into attempt 0's own files: the accepted attempt stays 1."""
    one, two = site.workers
    run_id = site.trigger("--width", "4", "--hold", "0,1,2,3", "--hold_seconds", "40")

    def held_on_two():
        return [pid for pid in services.task_processes(run_id, "body") if two.owns(pid)]

    assert wait_until(held_on_two, 240, interval=0.5), site.mf("status", "--run-id", run_id)
    cut_ids = _task_ids(held_on_two())
    two.unplug()
    cut = time.monotonic()
    try:
        status = site.wait_finished(run_id, timeout=600)
        print("\nworker-2 cut off mid-task (%s): run %s %.1f s later"
              % (sorted(cut_ids), status, time.monotonic() - cut))
        assert status == "SUCCESS"
        keys = {"body[%s]" % task_id.split("-")[1] for task_id in cut_ids}
        took = site.instance(lambda instance: {
            key: celery_workers_of(instance, run_id, key) for key in keys})
        assert all([n.split("@")[1] for n in names] == ["worker-2", "worker-1"]
                   for names in took.values()), took
        run = "%s/%s" % (JOB, naming.metaflow_run_id(run_id))
        task = "%s/body/%s" % (run, sorted(cut_ids)[0])
        accepted = site.metaflow(ATTEMPTS % (task, task))
        assert accepted["current"] == 1 and not accepted["first_done"], accepted
    finally:
        two.plug()
    # The cut attempt goes on once worker-2 is back: it finishes (or its op stops it).
    back = time.monotonic()
    assert wait_until(lambda: not held_on_two(), 300, interval=1), held_on_two()
    print("the cut attempt's processes were gone %.1f s after the cable was back"
          % (time.monotonic() - back))
    late = site.metaflow(ATTEMPTS % (task, task))
    print("attempt 0 finished late: %s" % late["first_done"])
    assert late["current"] == 1 and late["sha"] == accepted["sha"], (accepted, late)
