"""`python flow.py dagster create`: what the command writes and what it refuses
(compiling only; tests/e2e/test_create_options.py runs what it writes)."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from harness import (
    EXAMPLES,
    FLOWS,
    PYTHON,
    built_job,
    compile_flow,
    copy_flow,
    create,
    env_for,
    executor_of,
)

pytest_plugins = ["service_fixtures"]


@pytest.fixture
def short_tmp():
    """A temporary directory with a short path: the definitions file embeds
    absolute paths, and pytest's tmp_path alone is about 70 characters long."""
    path = Path(tempfile.mkdtemp(prefix="mfdlint-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)



@pytest.mark.parametrize("name,source", [
    ("linear_flow", FLOWS),
    ("foreach_flow", FLOWS),
    ("nested_foreach_flow", FLOWS),
    ("switch_flow", FLOWS),
    ("switch_in_foreach_flow", FLOWS),
    ("params_flow", FLOWS),
    ("decorators_flow", FLOWS),
    ("retry_timeout_flow", EXAMPLES),
    ("metadata_flow", FLOWS),  # docstrings: descriptions wrapped over several lines
])
def test_output_is_deterministic(tmp_path, name, source):
    flow_file = copy_flow(tmp_path, source / ("%s.py" % name))
    defs = flow_file.parent / ("%s_dagster.py" % name)
    create(flow_file)
    first = defs.read_bytes()
    create(flow_file)
    assert defs.read_bytes() == first


@pytest.mark.parametrize("name,source", [
    ("linear_flow", FLOWS),
    ("branch_flow", FLOWS),
    ("foreach_flow", FLOWS),
    ("nested_foreach_flow", FLOWS),
    ("switch_flow", FLOWS),
    ("switch_in_foreach_flow", FLOWS),
    ("params_flow", FLOWS),
    ("timeout_flow", FLOWS),
    ("catch_divide_flow", EXAMPLES),
    ("retry_timeout_flow", EXAMPLES),
    ("decorators_flow", FLOWS),
    ("hello_flow", EXAMPLES),
    ("deployment_info_flow", EXAMPLES),
    ("metadata_flow", FLOWS),
])
def test_output_is_lint_clean(short_tmp, name, source):
    compiled = compile_flow(short_tmp, name, source_dir=source)
    assert lint(compiled) == ""


def test_output_is_lint_clean_in_a_deep_directory(tmp_path):
    deep = tmp_path / "projects" / "analytics-team" / "forecasting" / "pipelines"
    deep.mkdir(parents=True)
    assert lint(compile_flow(deep, "linear_flow")) == ""


def lint(compiled) -> str:
    """ruff's findings on the definitions file, run where the user keeps it (so
    metaflow_dagster counts as a third-party import, as it does for users)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,B",
         compiled.defs_file.name],
        cwd=compiled.flow_dir, capture_output=True, text=True,
    )
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr


def test_file_defaults_to_lowercase_flow_name(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    create(flow_file, with_file=False)
    written = sorted(p.name for p in flow_file.parent.glob("*.py"))
    assert written == ["linear_flow.py", "linearflow_dagster.py"]



def test_max_workers_is_the_executors_foreach_limit(tmp_path):
    compiled = compile_flow(tmp_path, "foreach_flow", "--max-workers", "7")
    limits = executor_of(built_job(compiled))._tag_concurrency_limits
    assert [limit["limit"] for limit in limits] == [7]


def test_parallel_step_is_refused(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "bad_parallel_flow.py")
    proc = create(flow_file, expect_ok=False)
    assert proc.returncode != 0
    assert "not supported" in proc.stderr
    assert "Step train: @parallel" in proc.stderr and "*" not in proc.stderr  # plain text
    assert not (flow_file.parent / "bad_parallel_flow_dagster.py").exists()
    assert list(flow_file.parent.glob("*.py")) == [flow_file]


def test_every_problem_is_reported_at_once(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "two_problems_flow.py")
    proc = create(flow_file, "--max-workers", "0", expect_ok=False)
    assert proc.returncode != 0
    problems = [line for line in proc.stderr.splitlines() if line.startswith("  - ")]
    assert any("Step train:" in p and "@parallel" in p for p in problems), proc.stderr
    assert any("Step output:" in p and "name" in p for p in problems), proc.stderr
    assert any("--max-workers" in p for p in problems), proc.stderr
    assert not (flow_file.parent / "two_problems_flow_dagster.py").exists()


def test_a_directory_that_does_not_exist_is_refused(tmp_path):
    """A typo in the directory writes nothing anywhere: no file, no directory, no token."""
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    proc = create(flow_file, defs_name="typo/defs/linear_dagster.py", expect_ok=False)
    assert proc.returncode == 1
    assert "Cannot write the definitions file typo/defs/linear_dagster.py: the directory %s " \
        "does not exist" % (flow_file.parent / "typo" / "defs") in proc.stderr
    assert "Internal error" not in proc.stderr
    assert not (flow_file.parent / "typo").exists()
    assert not (tmp_path / "tokens").exists()  # resolved only after the path is checked


def _refused_for_its_datastore(flow_file, tmp_path, proc, where, setting):
    """`create` said which datastore it cannot write and what to do, once, and wrote
    nothing: no definitions file, no production token."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = proc.stderr.split("Error: ", 1)[1]
    assert error.startswith("Cannot write to the flow's "), error
    assert where in error and setting in error, error
    assert "Traceback" not in proc.stderr and "Internal error" not in proc.stderr
    assert not (flow_file.parent / "linear_flow_dagster.py").exists()
    assert not (tmp_path / "tokens").exists()


def test_a_datastore_under_a_regular_file_is_refused(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    (tmp_path / "a_file").write_text("not a directory")
    sysroot = tmp_path / "a_file" / "datastore"
    proc = create(flow_file, expect_ok=False,
                  env=env_for(METAFLOW_DATASTORE_SYSROOT_LOCAL=sysroot))
    _refused_for_its_datastore(flow_file, tmp_path, proc, "the directory %s" % sysroot,
                               "point METAFLOW_DATASTORE_SYSROOT_LOCAL at a directory")
    assert "Not a directory" in proc.stderr


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "ro", "none",
                            "/mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs `unshare -m` and mount")
def test_a_datastore_on_a_read_only_file_system_is_refused(tmp_path):
    """Root may write anywhere chmod forbids: the datastore's directory is a read-only
    bind mount, made in a mount namespace of the command's own (gone with it)."""
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    sysroot = tmp_path / "read_only"
    sysroot.mkdir()
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && '
              'exec "$@"')
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(sysroot), PYTHON, flow_file.name,
         "dagster", "create"],
        cwd=flow_file.parent, capture_output=True, text=True,
        env=env_for(METAFLOW_DATASTORE_SYSROOT_LOCAL=sysroot))
    _refused_for_its_datastore(flow_file, tmp_path, proc, "the directory %s" % sysroot,
                               "METAFLOW_DATASTORE_SYSROOT_LOCAL")
    assert "Read-only file system" in proc.stderr
    assert list(sysroot.iterdir()) == []


@pytest.mark.services
def test_an_s3_bucket_that_refuses_is_named(tmp_path, s3_service):
    """The bucket does not exist (an S3-compatible server, moto, answers for it)."""
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    env = env_for(**s3_service.env())
    env["METAFLOW_DATASTORE_SYSROOT_S3"] = "s3://no-such-bucket/metaflow"
    proc = create(flow_file, expect_ok=False, env=env)
    _refused_for_its_datastore(flow_file, tmp_path, proc,
                               "the S3 location s3://no-such-bucket/metaflow",
                               "point METAFLOW_DATASTORE_SYSROOT_S3 at a bucket")


def test_metaflows_graph_checks_refuse_a_flow_before_anything_is_written(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "unknown_step_flow.py")
    proc = create(flow_file, expect_ok=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # Metaflow's own words, as `python flow.py check` says them.
    check = subprocess.run([PYTHON, flow_file.name, "check"], cwd=flow_file.parent,
                           capture_output=True, text=True, env=env_for())
    assert check.returncode == 1
    message = "Step start specifies a self.next() transition to an unknown step, ending."
    found = "Validity checker found an issue in file %s on line 10:\n    %s" % (
        flow_file, message)
    assert found in check.stderr and found in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "KeyError" not in proc.stderr
    assert list(flow_file.parent.glob("*.py")) == [flow_file]
    assert not (tmp_path / "tokens").exists()


def test_create_runs_pylint_as_metaflow_does_unless_told_not_to(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    with_pylint = create(flow_file).stderr
    without = create(flow_file, top_args=["--no-pylint"]).stderr
    assert "The graph looks good!" in with_pylint and "The graph looks good!" in without
    # Pylint itself, when installed, else Metaflow's notice that it is not.
    assert "Running pylint..." in with_pylint
    assert "Running pylint..." not in without and "Pylint" not in without
