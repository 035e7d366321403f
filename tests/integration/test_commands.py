"""The run commands before any run starts: which definitions file each finds
(named after the job, so @project branches never share one), and how they say
what is wrong (plain text, a suggestion for a typo)."""

import subprocess

import pytest
from harness import FLOWS, PYTHON, copy_flow, create, env_for

from metaflow_dagster.deploy.errors import CommandError
from metaflow_dagster.deploy.targets.graphql import GraphQLTarget

PROJECT = "prod_project_flow"


def _run(flow_file, *args, expect_rc=0, **env):
    proc = subprocess.run([PYTHON, flow_file.name, *args], cwd=flow_file.parent,
                          capture_output=True, text=True, env=env_for(**env), timeout=180)
    assert proc.returncode == expect_rc, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_each_project_branch_gets_its_own_default_file(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / (PROJECT + ".py"))
    deployments = {"a": ["--branch", "a"], "b": ["--branch", "b"], "prod": ["--production"]}
    for top in deployments.values():
        create(flow_file, top_args=top, with_file=False)
    written = {p.name for p in flow_file.parent.glob("*_dagster.py")}
    assert written == {"prod_demo_test_a_prodprojectflow_dagster.py",
                       "prod_demo_test_b_prodprojectflow_dagster.py",
                       "prod_demo_prod_prodprojectflow_dagster.py"}

    # The other commands compute the same name from the same options: `delete` under
    # --branch a removes a's deployment and nothing else.
    said = _run(flow_file, "--branch", "a", "dagster", "delete")
    assert "prod_demo_test_a_prodprojectflow_dagster.py" in said
    assert {p.name for p in flow_file.parent.glob("*_dagster.py")} == written - {
        "prod_demo_test_a_prodprojectflow_dagster.py"}
    # ... and `status` looks for the runs of that job (there are none yet).
    said = _run(flow_file, "--branch", "b", "dagster", "status", expect_rc=1)
    assert "No run of job prod_demo_test_b_ProdProjectFlow (flow ProdProjectFlow)" in said


def test_status_takes_a_definitions_file(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    create(flow_file, "--name", "nightly", defs_name="nightly.py")
    said = _run(flow_file, "dagster", "status", "--definitions-file", "nightly.py",
                expect_rc=1)
    assert "No run of job nightly (flow LinearFlow)" in said


def test_errors_are_plain_text_and_typos_get_a_suggestion(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "params_flow.py")
    create(flow_file, with_file=False)

    no_step = _run(flow_file, "dagster", "resume", "--origin-run-id",
                   "dagster-0123456789abcdef", "--step-to-rerun", "nosuch", expect_rc=1)
    assert "Error: Step nosuch is not a step of ParamsFlow" in no_step
    assert "*" not in no_step.split("Error:", 1)[1]

    typo = _run(flow_file, "dagster", "trigger", "--lable", "x", expect_rc=2)
    assert "no such option: --lable" in typo and "Did you mean --label?" in typo
    command = _run(flow_file, "dagster", "triger", expect_rc=2)
    assert "Did you mean trigger?" in command


CLASHING_FLOW = '''
from metaflow import FlowSpec, Parameter, step


class ClashFlow(FlowSpec):
    wait = Parameter("wait", default="no")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ClashFlow()
'''


def test_a_parameter_named_like_an_option_is_refused(tmp_path):
    flow_file = tmp_path / "clash_flow.py"
    flow_file.write_text(CLASHING_FLOW)
    said = _run(flow_file, "dagster", "trigger", "--wait", "yes", expect_rc=2)
    assert "Parameter wait has the name of an option of `dagster trigger`" in said
    assert "not supported" in said


def test_trigger_on_a_webserver_needs_no_local_file(tmp_path):
    """No definitions file here: the job name and the Parameters' config come from the
    flow itself; the (absent) webserver is asked for the job under that name."""
    flow_file = copy_flow(tmp_path, FLOWS / (PROJECT + ".py"))
    said = _run(flow_file, "--branch", "x", "dagster", "trigger", "--dagster-url",
                "http://127.0.0.1:9", expect_rc=1)
    assert "No definitions file" not in said
    assert "the Dagster webserver at http://127.0.0.1:9" in said


def test_suspending_through_a_webserver_is_not_supported():
    """Dagster's GraphQL API has no mutation for run tags."""
    with pytest.raises(CommandError, match="not supported"):
        GraphQLTarget("http://127.0.0.1:9").tag_run("some-run", {"metaflow/suspended": "true"})


def test_a_webserver_that_does_not_answer_is_named_not_queried(tmp_path):
    """Nothing listens at the URL: `trigger` and `status` say the same thing (which
    URL, which setting), and print no GraphQL query."""
    from services import free_port

    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    url = "http://127.0.0.1:%d" % free_port()
    for command in ("trigger", "status"):
        said = _run(flow_file, "dagster", command, "--dagster-url", url, expect_rc=1)
        error = said.split("Error: ", 1)[1]
        assert error.startswith("the Dagster webserver at %s did not answer %s/graphql: "
                                % (url, url)), said
        assert "Connection refused" in error and "--dagster-url" in error
        assert "query" not in said.lower() and "Traceback" not in said
