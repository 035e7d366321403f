"""The guarantees that hold on every executor, on the local ones (SQLite instance, real runs):
run config switches the executor; the job's pool limit holds its ops to one at a time; a
terminated run's tasks are stopped. (Celery: e2e/test_distributed.py.)
Run with `-s` to see the time from terminate to the last task process gone."""

import time

import pytest
from commands import embedded, field, mf, wait_for
from harness import compile_flow, execute, process_alive, wait_until

pytestmark = pytest.mark.e2e


def _overlap(steps) -> int:
    edges = sorted([(s.start_time, 1) for s in steps] + [(s.end_time, -1) for s in steps])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def test_run_config_switches_the_executor_and_the_pool_limit_holds(tmp_path, dagster_home):
    from dagster import DagsterEventType, DagsterInstance

    compiled = compile_flow(tmp_path, "foreach_flow", "--pool-limit", "1")
    for choice in ("metaflow", "multiprocess"):
        config = {"execution": {"config": {choice: {}}},
                  "ops": {"start": {"config": {"n": 3}}}}
        result = execute(compiled, dagster_home, config)
        assert result.success, result.output[-3000:]
        body = [s for key, s in result.steps.items() if key.startswith("body[")]
        assert len(body) == 3 and _overlap(body) == 1, (choice, [
            (s.start_time, s.end_time) for s in body])
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            engine = [r.message for r in instance.all_logs(
                result.dagster_run_id, of_type=DagsterEventType.ENGINE_EVENT)]
            limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        said = {"metaflow": "threads of the run process", "multiprocess": "multiprocess"}
        assert any(said[choice] in m for m in engine), engine
        assert limits == {"ForeachFlow": 1}


@pytest.mark.parametrize("executor", ["metaflow", "multiprocess"])
def test_terminate_stops_the_task_on_each_local_executor(tmp_path, dagster_home, executor):
    compiled = compile_flow(tmp_path, "sleepy_flow", "--executor", executor)
    directory = compiled.flow_dir
    pid_files = [tmp_path / "nap.pid", tmp_path / "child.pid"]
    env = {"SLEEPY_PID_FILE": str(pid_files[0]), "SLEEPY_CHILD_PID_FILE": str(pid_files[1])}
    started = mf(directory, "sleepy_flow", "dagster", "trigger", "--seconds", "300",
                 "--definitions-file", compiled.defs_file.name, dagster_home=dagster_home, **env)
    run_id = field(started, "Dagster run id")
    assert wait_until(lambda: all(p.exists() for p in pid_files), 120)
    pids = [int(p.read_text()) for p in pid_files]
    assert all(process_alive(pid) for pid in pids)

    asked = time.monotonic()
    mf(directory, "sleepy_flow", "dagster", "terminate", "--run-id", run_id,
       dagster_home=dagster_home)
    gone = wait_until(lambda: not any(process_alive(pid) for pid in pids), 60, interval=0.2)
    seconds = time.monotonic() - asked
    print("\n%s: terminate command to the last task process gone: %.1f s" % (executor, seconds))
    assert gone and seconds <= 15, [pid for pid in pids if process_alive(pid)]
    assert wait_for(embedded(dagster_home), run_id, timeout=60).status == "CANCELED"
