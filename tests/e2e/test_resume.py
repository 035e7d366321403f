"""Resume on real Dagster runs: `dagster resume` (CLI and Deployer) clones what
succeeded and re-runs the rest; Dagster's re-execution from failure continues the
same Metaflow run at the next attempt; Metaflow's own `resume` works on a run that
failed on Dagster. Each task execution leaves a line in executions.log, so the
tests count what ran again."""

import collections
import subprocess

import pytest
from commands import client, embedded, executions, field, flow_dir, mf, wait_for
from harness import PYTHON, compile_flow, env_for, execute, latest_run, output_metadata

from metaflow_dagster import naming

pytestmark = pytest.mark.e2e

RESUME = "resume_flow"


def _cloned(run):
    """task path (step/task id) -> whether it was cloned from the origin run."""
    return {"%s/%s" % (t.parent.id, t.id): "origin-task-id" in t.metadata_dict
            for step in run for t in step}


def test_resume_reruns_only_the_failed_split(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, RESUME)
    mf(directory, RESUME, "dagster", "create")
    target = embedded(dagster_home)
    (directory / "fail_split").touch()
    origin = mf(directory, RESUME, "dagster", "trigger", "--n", "3", dagster_home=dagster_home)
    origin_run = field(origin, "Dagster run id")
    assert wait_for(target, origin_run).status == "FAILURE"
    (directory / "fail_split").unlink()
    before = executions(directory)

    resumed = mf(directory, RESUME, "dagster", "resume", "--origin-run-id", origin_run,
                 dagster_home=dagster_home)
    origin_metaflow_run = naming.metaflow_run_id(origin_run)
    assert "Resuming ResumeFlow/%s" % origin_metaflow_run in resumed.stderr
    assert wait_for(target, field(resumed, "Dagster run id")).status == "SUCCESS"

    assert executions(directory) - before == {
        ("body", "t-1", "0"): 1, ("join", "t", "0"): 1, ("end", "t", "0"): 1}
    # A cloned task reports nothing itself: the op reads its artifacts from the datastore.
    start_outputs = [metadata for (step, _), metadata in output_metadata(
        dagster_home, field(resumed, "Dagster run id")).items()
        if step == "start" and "artifacts" in metadata]
    assert len(start_outputs) == 1 and "`[0, 1, 2]`" in start_outputs[0]["artifacts"], \
        start_outputs
    run = client(directory).Run(field(resumed, "Metaflow run"))
    assert run.successful
    assert run.data.n == 3  # the origin's Parameters (the default is 2)
    assert run["join"].task.data.values == [0, 10, 20]
    assert _cloned(run) == {
        "start/t": True, "body/t-0": True, "body/t-1": False, "body/t-2": True,
        "join/t": False, "end/t": False}
    assert {t.metadata_dict.get("origin-run-id") for s in run for t in s} == {
        origin_metaflow_run}


def test_resume_from_the_deployer_with_step_to_rerun(tmp_path, dagster_home):
    from metaflow import Deployer

    directory = flow_dir(tmp_path, RESUME)
    deployed = Deployer(str(directory / ("%s.py" % RESUME)), show_output=False,
                        cwd=str(directory)).dagster(dagster_home=str(dagster_home)).create()
    first = deployed.trigger(n=2)
    first.wait_for_completion(check_interval=1, timeout=150)
    assert first.status == "SUCCEEDED"
    before = executions(directory)

    again = first.resume(step_to_rerun="join")
    again.wait_for_completion(check_interval=1, timeout=150)
    assert again.status == "SUCCEEDED"
    assert executions(directory) - before == {("join", "t", "0"): 1, ("end", "t", "0"): 1}
    run = client(directory).Run(again.pathspec)
    assert run.successful and run["join"].task.data.values == [0, 10]
    assert _cloned(run) == {"start/t": True, "body/t-0": True, "body/t-1": True,
                            "join/t": False, "end/t": False}


REEXECUTE_SCRIPT = """
import sys

from dagster import DagsterInstance, ReexecutionOptions, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

if __name__ == "__main__":
    definitions, cwd, job_name, parent = sys.argv[1:]
    instance = DagsterInstance.get()
    job = ReconstructableRepository.for_file(definitions, "defs", cwd).get_reconstructable_job(
        job_name)
    options = ReexecutionOptions.from_failure(parent, instance)
    with execute_job(job, instance=instance, reexecution_options=options) as result:
        print("REEXECUTED", result.run_id, result.success)
"""


def _reexecute_from_failure(tmp_path, compiled, dagster_home, parent_run_id):
    script = tmp_path / "reexecute.py"
    script.write_text(REEXECUTE_SCRIPT)
    proc = subprocess.run(
        [PYTHON, str(script), str(compiled.defs_file), str(compiled.flow_dir),
         compiled.job_name, parent_run_id],
        cwd=compiled.flow_dir, capture_output=True, text=True, env=env_for(dagster_home),
        timeout=300)
    assert "REEXECUTED" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]


def _op_log(dagster_home, run_id, step_key) -> str:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        return "\n".join(r.user_message for r in instance.all_logs(run_id)
                         if r.step_key == step_key and r.dagster_event is None)


def test_reexecution_continues_the_run_and_metaflow_resume_works(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, RESUME)
    directory = compiled.flow_dir
    (directory / "fail_split").touch()
    failed = execute(compiled, dagster_home)
    assert failed.status == "FAILURE", failed.output[-2000:]
    (directory / "fail_split").unlink()

    # Metaflow's own runtime resumes the run that failed on Dagster (local debugging).
    before = executions(directory)
    mf(directory, RESUME, "resume", "--origin-run-id", failed.metaflow_run_id)
    ran = (executions(directory) - before).elements()
    steps_run = collections.Counter(step for step, _, _ in ran)
    assert steps_run == {"body": 1, "join": 1, "end": 1}
    metaflow = client(directory)
    local = metaflow.Flow("ResumeFlow").latest_run
    assert local.successful and not local.id.startswith(naming.RUN_ID_PREFIX)
    assert local["start"].task.metadata_dict["origin-run-id"] == failed.metaflow_run_id

    # Dagster's re-execution from failure (what execute_job does; it copies no tags).
    before = executions(directory)
    _reexecute_from_failure(tmp_path, compiled, dagster_home, failed.dagster_run_id)
    child = latest_run(dagster_home, compiled.job_name)
    assert child.status == "SUCCESS" and child.dagster_run_id != failed.dagster_run_id
    assert child.metaflow_run_id == failed.metaflow_run_id
    # Only the failed split and what follows ran, the split as its next attempt.
    assert executions(directory) - before == {
        ("body", "t-1", "1"): 1, ("join", "t", "0"): 1, ("end", "t", "0"): 1}
    run = metaflow.Run("ResumeFlow/%s" % failed.metaflow_run_id)
    assert run.successful
    assert {t.id: t.current_attempt for t in run["body"]} == {"t-0": 0, "t-1": 1}
    # The op's log names that attempt too, not Dagster's retry number (0).
    assert "ResumeFlow/%s/body/t-1 (attempt 1)" % failed.metaflow_run_id in \
        _op_log(dagster_home, child.dagster_run_id, "body[1]")
    first_attempt = metaflow.Task(run["body"]["t-1"].pathspec, attempt=0)
    assert not first_attempt.successful
    assert run["join"].task.data.values == [0, 10]


def test_reexecuting_a_nested_foreach_runs_only_what_failed(tmp_path, dagster_home):
    """One op runs each outer split's inner foreach (a region): re-executed, it
    skips the region's tasks that already succeeded in the run."""
    compiled = compile_flow(tmp_path, "region_flow")
    directory = compiled.flow_dir
    (directory / "fail_inner").touch()
    failed = execute(compiled, dagster_home)
    assert failed.status == "FAILURE", failed.output[-2000:]
    (directory / "fail_inner").unlink()
    before = executions(directory)

    _reexecute_from_failure(tmp_path, compiled, dagster_home, failed.dagster_run_id)
    assert latest_run(dagster_home, compiled.job_name).status == "SUCCESS"
    assert executions(directory) - before == {
        ("inner", "t-1-1", "1"): 1, ("inner_join", "t-1", "0"): 1,
        ("outer_join", "t", "0"): 1, ("end", "t", "0"): 1}
    run = client(directory).Run("RegionFlow/%s" % failed.metaflow_run_id)
    assert run.successful and run["end"].task.data.results == ["x1", "x2", "y1", "y2"]
    assert run["inner"]["t-1-1"].current_attempt == 1
