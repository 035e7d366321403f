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
from metaflow_dagster.runtime.launch import preflight

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


def test_s3_unreachable_from_one_worker(site):
    """worker-2 cannot reach the S3 server (PostgreSQL, Redis and the metadata service still
    answer it): each op it takes fails within seconds, naming the S3 endpoint, and the op's
    retry runs on worker-1; the run succeeds."""
    one, two = site.workers
    endpoint = "http://%s:%d" % (site.head.address, site.s3.port)
    two.cut_off_from(site.head, site.s3.port)
    time.sleep(preflight.FRESH_SECONDS)  # a check passed before the cut is trusted that long
    try:
        # The run's first op goes to worker-2; worker-1 takes work again once it has.
        site.celery[one.name].consume(False)
        try:
            run_id = site.trigger("--width", "4")
            assert wait_until(lambda: site.instance(lambda instance: celery_workers_of(
                instance, run_id, "start")), 120, interval=0.5)
        finally:
            site.celery[one.name].consume(True)
        assert site.wait_finished(run_id, timeout=300) == "SUCCESS", \
            site.mf("status", "--run-id", run_id).stdout
    finally:
        two.reconnect_to(site.head, site.s3.port)

    steps = ["start", "join", "end"] + ["body[%d]" % i for i in range(4)]
    took = site.instance(lambda instance: {
        key: [name.split("@")[1] for name in celery_workers_of(instance, run_id, key)]
        for key in steps})
    assert took["start"] == ["worker-2", "worker-1"], took
    # Every attempt worker-2 took failed; each such op's next attempt ran on worker-1.
    for hosts in took.values():
        assert hosts[-1] == "worker-1" and set(hosts[:-1]) <= {"worker-2"}, took
    failures = site.instance(lambda instance: _first_attempt_failures(instance, run_id))
    print("\nS3 cut off from worker-2: its ops failed %s s after they started"
          % sorted(round(seconds, 1) for seconds, _ in failures.values()))
    assert set(failures) == {key for key, hosts in took.items() if len(hosts) == 2}, failures
    for key, (seconds, message) in failures.items():
        assert endpoint in message, (key, message)
        assert seconds < 30, (key, seconds, message)
    count = site.metaflow("r = Run(%r)\nprint(json.dumps(r['join'].task['count'].data))"
                          % ("%s/%s" % (JOB, naming.metaflow_run_id(run_id))))
    assert count == 4


def _first_attempt_failures(instance, run_id: str) -> dict:
    """step key -> (seconds from its first start to its first failure, the failure's text)."""
    started, failed = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started.setdefault(event.step_key, record.timestamp)
        elif event.event_type_value in ("STEP_UP_FOR_RETRY", "STEP_FAILURE") \
                and event.step_key not in failed:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            text = error.to_string() if error is not None else (event.message or "")
            failed[event.step_key] = (record.timestamp - started[event.step_key], text)
    return failed


def test_a_worker_cut_off_mid_task_is_retried_on_the_other(site):
    """worker-2's cable is pulled while it runs two splits (each held 90 s), and plugged back
    once both have been retried on worker-1, while a third split still holds there: the
    splits' next attempts ran on worker-1 as Metaflow's next attempts, the cut attempts are
    stopped once worker-2 is back and report nothing (Dagster's step-delegating loop would
    fail the run on a report it does not expect), and the run succeeds. The cut attempts
    never overwrite the accepted attempts' artifacts (Metaflow's attempt ids keep them
    apart)."""
    one, two = site.workers
    on_two = lambda: [pid for pid in services.task_processes(run_id, "body")  # noqa: E731
                      if two.owns(pid)]
    # worker-2 takes the start and two splits (its two processes), worker-1 the third.
    site.celery[one.name].consume(False)
    try:
        run_id = site.trigger("--width", "3", "--hold", "0,1,2", "--hold_seconds", "90")
        assert wait_until(lambda: len(on_two()) == 2, 240, interval=0.5), \
            site.mf("status", "--run-id", run_id).stdout
    finally:
        site.celery[one.name].consume(True)
    splits = ("body[0]", "body[1]", "body[2]")
    first = site.instance(lambda instance: {
        key: celery_workers_of(instance, run_id, key)[:1] for key in splits})
    cut = sorted(key for key, took in first.items() if took == ["w2@worker-2"])
    held = (set(splits) - set(cut)).pop()
    assert len(cut) == 2 and wait_until(
        lambda: services.task_processes(run_id, "body", _task_id(held)), 120, interval=0.5)
    cut_at = time.time()
    two.unplug()
    try:
        assert wait_until(lambda: all(_succeeded(site, run_id, key) for key in cut), 240,
                          interval=1), site.mf("status", "--run-id", run_id).stdout
    finally:
        two.plug()
    back_at = time.time()
    assert wait_until(lambda: not on_two(), 60, interval=0.5), on_two()
    stopped_at = time.time()
    assert site.run_status(run_id) == "STARTED"  # the third split still holds on worker-1
    assert site.wait_finished(run_id, timeout=300) == "SUCCESS"
    finished = time.time()

    noticed = site.instance(lambda instance: [
        r.timestamp for r in instance.all_logs(run_id) if r.dagster_event
        and r.dagster_event.step_key in cut
        and r.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"])
    print("\nworker-2 cut off mid-task: the steps failed %.1f s after the cut; the cable was "
          "back %.1f s after the cut, the cut attempts were stopped %.1f s after that; the "
          "run succeeded %.1f s after the cut" % (
              min(noticed) - cut_at, back_at - cut_at, stopped_at - back_at,
              finished - cut_at))
    for key in cut:
        took = site.instance(lambda instance, key=key: celery_workers_of(instance, run_id,
                                                                          key))
        assert [name.split("@")[1] for name in took] == ["worker-2", "worker-1"], took
        ends = site.instance(lambda instance, key=key: [
            r.dagster_event.event_type_value for r in instance.all_logs(run_id)
            if r.dagster_event and r.dagster_event.step_key == key
            and r.dagster_event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE",
                                                     "STEP_UP_FOR_RETRY")])
        assert ends == ["STEP_UP_FOR_RETRY", "STEP_SUCCESS"], (key, ends)
        task = "%s/%s/body/%s" % (JOB, naming.metaflow_run_id(run_id), _task_id(key))
        read = site.metaflow(ATTEMPTS % (task, task))
        assert read["current"] == 1 and not read["first_done"], read
        assert read["square"] == int(key[5]) ** 2, read


def _task_id(step_key: str) -> str:
    """The Metaflow task id of a split (`body[2]` -> `t-2`)."""
    return "t-" + step_key[step_key.index("[") + 1:-1]


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
