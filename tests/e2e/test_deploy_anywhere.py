"""The job leaves the laptop: `dagster create` packages the flow's code (Metaflow's own
code package, in the flow's datastore) and writes a definitions file that carries no
path of the machine that made it and no credential; the job then runs from any
directory (as a file or as a module), on a worker whose environment holds only
credentials, after the flow's own directory is gone, and runs exactly the code that
was deployed.

S3 datastore: a real S3-compatible server (moto, tests/services.py). Artifacts are
read back through Metaflow's Client, in a separate process configured the way a
user's laptop is (the datastore settings in its environment).
"""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import services
from harness import (
    DAGSTER,
    FLOWS,
    PYTHON,
    Compiled,
    compile_file,
    env_for,
    failure_messages,
    latest_run,
    load_definitions,
    step_statuses,
    wait_for_runs,
)

from metaflow_dagster import naming

pytest_plugins = ["service_fixtures"]
pytestmark = pytest.mark.e2e

# Credentials planted in the environment of `dagster create`: none may reach the file.
PLANTED = {
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDACCESSKEY7",
    "AWS_SECRET_ACCESS_KEY": "planted/secret/access/key/0007",
    "AWS_SESSION_TOKEN": "planted-session-token-0007",
    "METAFLOW_SERVICE_AUTH_KEY": "planted-service-auth-key-0007",
}

READ_BACK = textwrap.dedent("""
    import json, sys
    from metaflow import Run, metadata, namespace
    metadata("local@" + sys.argv[1])
    namespace(None)
    run = Run(sys.argv[2])
    end = run["end"].task
    print(json.dumps({
        "successful": run.successful,
        "steps": sorted(step.id for step in run),
        "total": end.data.total,
        "greeting": end.data.greeting,
        "code": run.code.flowspec.decode() if isinstance(run.code.flowspec, bytes)
        else run.code.flowspec,
        "system_tags": sorted(run.system_tags),
    }))
""")


def read_back(metadata_dir: Path, pathspec: str, env: dict) -> dict:
    """The run as Metaflow's Client sees it, from a fresh process with `env`."""
    proc = subprocess.run([PYTHON, "-c", READ_BACK, str(metadata_dir), pathspec],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def laptop_copy(tmp_path: Path) -> Path:
    """The flow's directory on the user's laptop: the flow and a module it imports."""
    laptop = tmp_path / "laptop"
    shutil.copytree(FLOWS / "portable", laptop)
    return laptop / "portable_flow.py"


def edited_copy(tmp_path: Path) -> Path:
    """A later version of the flow: a step renamed and the helper changed. Running it
    instead of the deployed code would fail (no step `square`) or show `edited`."""
    edited = tmp_path / "edited"
    shutil.copytree(FLOWS / "portable", edited)
    flow = edited / "portable_flow.py"
    flow.write_text(flow.read_text().replace("def square(", "def cube(")
                    .replace("self.square", "self.cube"))
    helper = edited / "portable_helper.py"
    helper.write_text(helper.read_text().replace('"deployed"', '"edited"'))
    return flow


def move_to(compiled: Compiled, directory: Path) -> Compiled:
    directory.mkdir(parents=True, exist_ok=True)
    defs = directory / compiled.defs_file.name
    shutil.copy(compiled.defs_file, defs)
    return Compiled(directory, compiled.flow_name, defs, compiled.job_name,
                    compiled.create_output)


def execute_in(directory: Path, argv_tail, dagster_home: Path, env: dict):
    proc = subprocess.run([DAGSTER, "job", "execute", *argv_tail], cwd=directory,
                          capture_output=True, text=True, timeout=600,
                          env=dict(env, DAGSTER_HOME=str(dagster_home)))
    return proc


def s3_create_env(s3_service, prefix: str) -> dict:
    return env_for(**dict(s3_service.env(prefix), **PLANTED))


def worker_env(**extra) -> dict:
    """A worker's environment: credentials only, no Metaflow setting."""
    env = {k: v for k, v in env_for().items() if not k.startswith("METAFLOW_")}
    env["METAFLOW_USER"] = "worker"
    env.update(services.FAKE_AWS)
    env.update(extra)
    return env


# --- S3 datastore ------------------------------------------------------------------------


@pytest.mark.services
def test_s3_deployment_runs_elsewhere_after_the_flow_directory_is_deleted(
        s3_service, tmp_path, dagster_home):
    prefix = "anywhere-%s" % tmp_path.name
    compiled = compile_file(laptop_copy(tmp_path), env=s3_create_env(s3_service, prefix))
    text = compiled.defs_file.read_text()
    plan = load_definitions(compiled.defs_file).FLOW.plan

    # The file: no credential, no path of this machine, the token stays in the datastore.
    assert [name for name, value in PLANTED.items() if value in text] == []
    token = re.search(r"production:(\S+)", compiled.create_output).group(1)
    assert token not in text
    assert str(tmp_path) not in text and sys.executable not in text
    assert plan.settings == {
        "METAFLOW_DEFAULT_DATASTORE": "s3",
        "METAFLOW_DATASTORE_SYSROOT_S3": "s3://%s/%s" % (s3_service.bucket, prefix),
        "METAFLOW_S3_ENDPOINT_URL": s3_service.endpoint_url,
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DEFAULT_ENVIRONMENT": "local",
    }
    # The package is in the bucket, at the url the plan records.
    key = plan.package["url"].split("/", 3)[3]
    size = s3_service.client().head_object(Bucket=s3_service.bucket, Key=key)["ContentLength"]
    assert plan.package["sha"] in key and size > 100_000

    server = move_to(compiled, tmp_path / "server")
    shutil.rmtree(compiled.flow_dir)
    proc = execute_in(server.flow_dir, ["-f", server.defs_file.name, "-j", plan.job_name],
                      dagster_home, worker_env())
    result = latest_run(dagster_home, plan.job_name, proc.stdout + proc.stderr)
    assert result.success, result.output[-3000:]

    client_env = env_for(**s3_service.env(prefix))
    pathspec = "PortableFlow/%s" % result.metaflow_run_id
    run = read_back(server.flow_dir, pathspec, client_env)
    assert run["successful"] and (run["total"], run["greeting"]) == (14, "deployed")
    assert run["steps"] == ["end", "join", "square", "start"]
    assert "def square(" in run["code"]  # Run(...).code: the deployed package
    assert "production:%s" % token in run["system_tags"]

    # A later version of the flow, with a step renamed: triggering the deployed job
    # from it (`dagster trigger` and `status`) still runs the deployed code.
    edited = edited_copy(tmp_path)
    commands_env = dict(worker_env(), DAGSTER_HOME=str(dagster_home))
    trigger = subprocess.run(
        [PYTHON, edited.name, "dagster", "trigger", "--definitions-file", str(server.defs_file),
         "--n", "4"], cwd=edited.parent, capture_output=True, text=True, timeout=300,
        env=commands_env)
    assert trigger.returncode == 0, trigger.stdout + trigger.stderr
    runs = wait_for_runs(dagster_home, plan.job_name, count=2, timeout=600)
    status = subprocess.run([PYTHON, edited.name, "dagster", "status"], cwd=edited.parent,
                            capture_output=True, text=True, timeout=300, env=commands_env)
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert runs[-1].run_id in lines[0] and lines[0].endswith(": SUCCEEDED (Dagster SUCCESS)"), \
        status.stdout
    # Foreach splits are keyed by index and item (square[0_1] for n=1).
    assert sorted(line.split()[0] for line in lines[1:]) == [
        "end", "join", "square[0_1]", "square[1_2]", "square[2_3]", "square[3_4]", "start"]
    run = read_back(server.flow_dir, "PortableFlow/%s" % naming.metaflow_run_id_of(runs[-1]),
                    client_env)
    assert (run["total"], run["greeting"]) == (30, "deployed")
    assert "square" in run["steps"] and "cube" not in run["steps"]


@pytest.mark.services
def test_unreachable_s3_endpoint_fails_the_op_in_seconds_naming_the_setting(
        s3_service, tmp_path, dagster_home):
    prefix = "unreachable-%s" % tmp_path.name
    compiled = compile_file(laptop_copy(tmp_path), env=s3_create_env(s3_service, prefix))
    closed = "http://127.0.0.1:%d" % services.free_port()  # nothing listens there
    proc = execute_in(compiled.flow_dir, ["-f", compiled.defs_file.name, "-j",
                                          compiled.job_name],
                      dagster_home, worker_env(METAFLOW_S3_ENDPOINT_URL=closed))
    result = latest_run(dagster_home, compiled.job_name, proc.stdout + proc.stderr)
    assert result.status == "FAILURE"
    assert step_statuses(result) == {"start": "FAILURE"}
    start = result.steps["start"]
    seconds = start.end_time - start.start_time
    print("unreachable S3 endpoint: the start op failed after %.1f s" % seconds)
    # The bound: seconds, not the minutes Metaflow's S3 retries would take.
    assert seconds < 30, seconds
    [message] = failure_messages(dagster_home, result.dagster_run_id)
    assert "METAFLOW_S3_ENDPOINT_URL, set in this worker's environment" in message, message
    assert closed in message


# --- Local datastore -----------------------------------------------------------------------


def test_local_deployment_runs_from_other_directories_and_as_a_module(tmp_path, dagster_home):
    compiled = compile_file(laptop_copy(tmp_path))
    plan = load_definitions(compiled.defs_file).FLOW.plan
    datastore_dir = compiled.flow_dir  # the folder holding .metaflow: the runs go there
    assert plan.settings["METAFLOW_DATASTORE_SYSROOT_LOCAL"] == str(datastore_dir)
    # The one path of this machine in the file: the local datastore's root (the
    # setting, and the package's url in it).
    paths = set(re.findall(re.escape(str(tmp_path)) + r"[^\"'\s,]*",
                           compiled.defs_file.read_text()))
    assert paths == {str(datastore_dir), str(datastore_dir / ".metaflow" / "PortableFlow" / "data"
                                          / plan.package["sha"][:2] / plan.package["sha"])}

    server = move_to(compiled, tmp_path / "server")
    compiled.defs_file.unlink()
    # The live flow file now fails on import: only the deployed package may run.
    (compiled.flow_dir / "portable_flow.py").write_text("raise SystemExit('the live file ran')\n")

    cache = tmp_path / "package-cache"  # where ops unpack packages (default: a temp folder)
    env = worker_env(METAFLOW_DAGSTER_PACKAGE_CACHE=str(cache))
    as_file = execute_in(server.flow_dir, ["-f", server.defs_file.name, "-j", plan.job_name],
                         dagster_home, env)
    first = latest_run(dagster_home, plan.job_name, as_file.stdout + as_file.stderr)
    assert first.success, first.output[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    module = server.defs_file.stem
    as_module = execute_in(elsewhere, ["-m", module, "-d", str(server.flow_dir), "-j",
                                       plan.job_name], dagster_home, env)
    second = latest_run(dagster_home, plan.job_name, as_module.stdout + as_module.stderr)
    assert second.success and second.dagster_run_id != first.dagster_run_id, second.output[-3000:]

    for result in (first, second):
        run = read_back(datastore_dir, "PortableFlow/%s" % result.metaflow_run_id, env_for())
        assert (run["total"], run["greeting"]) == (14, "deployed")
    assert sorted(p.name for p in cache.iterdir()) == [plan.package["sha"]]
    assert (cache / plan.package["sha"] / "portable_helper.py").is_file()
    # Local metadata went to the datastore's root, not to where the job ran.
    assert not (server.flow_dir / ".metaflow").exists() and not (elsewhere / ".metaflow").exists()


def test_a_package_missing_from_the_datastore_fails_the_op_naming_url_and_setting(
        tmp_path, dagster_home):
    compiled = compile_file(laptop_copy(tmp_path))
    plan = load_definitions(compiled.defs_file).FLOW.plan
    empty = tmp_path / "empty"
    (empty / ".metaflow").mkdir(parents=True)
    proc = execute_in(compiled.flow_dir, ["-f", compiled.defs_file.name, "-j", plan.job_name],
                      dagster_home, worker_env(METAFLOW_DATASTORE_SYSROOT_LOCAL=str(empty)))
    result = latest_run(dagster_home, plan.job_name, proc.stdout + proc.stderr)
    assert result.status == "FAILURE" and step_statuses(result) == {"start": "FAILURE"}
    [message] = failure_messages(dagster_home, result.dagster_run_id)
    missing_at = str(empty / ".metaflow" / "PortableFlow" / "data" / plan.package["sha"][:2]
                     / plan.package["sha"])
    assert "is not at %s" % missing_at in message, message
    assert plan.package["url"] in message
    assert "METAFLOW_DATASTORE_SYSROOT_LOCAL, set in this worker's environment" in message
