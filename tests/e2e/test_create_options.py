"""What the options of `dagster create` do to the tasks of a real run."""

import pytest
from harness import built_job, compile_flow, execute, metaflow_run

pytestmark = pytest.mark.e2e


def test_name_tag_and_namespace(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "tags_flow", "--name", "renamed_job",
                            "--tag", "team:ml", "--tag", "nightly",
                            "--namespace", "team_ns")
    assert compiled.job_name == "renamed_job"
    assert built_job(compiled).name == "renamed_job"

    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    tasks = [task for step in run for task in step]
    assert sorted(task.path_components[2] for task in tasks) == ["a", "end", "start"]
    for task in tasks:
        assert {"team:ml", "nightly"} <= set(task.tags), (task.pathspec, task.tags)
    assert {"team:ml", "nightly"} <= set(run.tags)
    assert run["start"].task.data.client_namespace == "team_ns"


def test_project_branch(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "project_flow", top_args=("--branch", "feature1"))
    assert "demo_project" in compiled.job_name and "feature1" in compiled.job_name

    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    data = metaflow_run(compiled, result)["start"].task.data
    assert data.project_name == "demo_project"
    assert data.branch_name == "test.feature1"
    assert data.project_flow_name == "demo_project.test.feature1.ProjectFlow"
