"""Steps that Metaflow's compute layer runs (@kubernetes, @batch, `--with kubernetes`):
the op launches each task with Metaflow's own compute-layer command (`kubernetes step`
/ `batch step`), with the code package, as Metaflow's runtime does.

There is no Kubernetes cluster and no AWS Batch here. The jobs go to stand-ins of the
two APIs (tests/fake_cluster.py) that record what is submitted; everything up to the
wire is real: the Dagster run, our op, the exact launch command, Metaflow's own job
builders (kubernetes_job.py, batch_client.py) and the API clients' serialisation. No
container ever runs, so these runs never succeed: the checks are on what would run.
The datastore is a real S3-compatible server (moto).
"""

import os
import shlex
import subprocess

import pytest
from fake_cluster import FakeBatch, FakeKubernetes
from harness import (
    DAGSTER,
    FLOWS,
    PYTHON,
    compile_file,
    copy_flow,
    env_for,
    failure_messages,
    job_runs,
    latest_run,
    load_definitions,
    step_statuses,
    wait_until,
)

pytest_plugins = ["service_fixtures"]
pytestmark = [pytest.mark.e2e, pytest.mark.services]

LAUNCH = "Launching on Metaflow's compute layer: "


def _compile(tmp_path, s3_service, flow: str, *create_args, top_args=()):
    env = env_for(**s3_service.env("compute-%s" % tmp_path.name))
    compiled = compile_file(copy_flow(tmp_path, FLOWS / flow), *create_args, top_args=top_args,
                            env=env)
    return compiled, load_definitions(compiled.defs_file).FLOW.plan, env


def _execute(compiled, dagster_home, env):
    proc = subprocess.run([DAGSTER, "job", "execute", "-f", str(compiled.defs_file), "-j",
                           compiled.job_name], cwd=compiled.flow_dir, capture_output=True,
                          text=True, timeout=600, env=dict(env, DAGSTER_HOME=str(dagster_home)))
    return latest_run(dagster_home, compiled.job_name, proc.stdout + proc.stderr)


def _launch_commands(output: str):
    """The launch commands the op printed, as argv lists."""
    return [shlex.split(line.split(LAUNCH, 1)[1]) for line in output.splitlines()
            if LAUNCH in line]


def _expected_launch(plan, step_name, run_id, attempt, package_url):
    step = plan.step(step_name)
    return (["--quiet", "--no-pylint", "--package-suffixes=.py,.R,.RDS",
             "--with", "dagster_internal"]
            + step.compute["command"]
            + [step_name, plan.package["metadata"], plan.package["sha"], package_url]
            + step.compute["options"]
            + ["--run-id", run_id, "--task-id", "t", "--retry-count", str(attempt),
               "--max-user-code-retries", str(step.user_code_retries),
               "--input-paths", "%s/start/t" % run_id])


def _env(container) -> dict:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_kubernetes_step_is_launched_with_metaflows_command_and_job_spec(
        s3_service, tmp_path, dagster_home):
    compiled, plan, env = _compile(tmp_path, s3_service, "compute_layer_flow.py")
    train = plan.step("train")
    assert train.compute["command"] == ["kubernetes", "step"]
    assert train.retry_delay_seconds == 0  # `kubernetes step` waits between retries itself

    with FakeKubernetes(refuse=True) as cluster:
        env = dict(env, KUBECONFIG=str(cluster.kubeconfig(tmp_path)))
        result = _execute(compiled, dagster_home, env)
    assert result.status == "FAILURE"
    assert step_statuses(result) == {"start": "SUCCESS", "train": "FAILURE"}
    run_id = result.metaflow_run_id

    # The exact commands the op ran: one per attempt (@retry(times=1)).
    commands = _launch_commands(result.output)
    assert len(commands) == 2, result.output[-3000:]
    for attempt, argv in enumerate(commands):
        assert os.path.realpath(argv[0]) == os.path.realpath(PYTHON)
        assert argv[1].endswith("/compute_layer_flow.py")
        assert argv[2:] == _expected_launch(plan, "train", run_id, attempt, plan.package["url"])

    # What Metaflow's own job builder submitted for them.
    jobs = cluster.submitted_jobs()
    assert [j["metadata"]["annotations"]["metaflow/attempt"] for j in jobs] == ["0", "1"]
    job = jobs[0]
    assert {k: job["metadata"]["annotations"][k] for k in (
        "metaflow/flow_name", "metaflow/run_id", "metaflow/step_name", "metaflow/task_id")} == {
        "metaflow/flow_name": "ComputeLayerFlow", "metaflow/run_id": run_id,
        "metaflow/step_name": "train", "metaflow/task_id": "t"}
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # @kubernetes(cpu=4, memory=16000) with @resources(memory=64000, disk=20480,
    # shared_memory=2048): Metaflow takes the larger of each; @timeout(minutes=10).
    assert container["resources"]["requests"] == {
        "cpu": "4.0", "memory": "64000.0M", "ephemeral-storage": "20480.0M"}
    assert {"mountPath": "/dev/shm", "name": "dhsm"} in container["volumeMounts"]
    assert {"name": "dhsm", "emptyDir": {"medium": "Memory", "sizeLimit": "2048Mi"}} \
        in pod["volumes"]
    assert pod["activeDeadlineSeconds"] == 600 and pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0  # retries are the op's (Dagster's RetryPolicy)
    pod_env = _env(container)
    assert {k: pod_env[k] for k in ("METAFLOW_CODE_SHA", "METAFLOW_CODE_URL",
                                    "METAFLOW_DEFAULT_DATASTORE", "METAFLOW_S3_ENDPOINT_URL",
                                    "METAFLOW_DATASTORE_SYSROOT_S3", "METAFLOW_INPUT_PATHS_0")} \
        == {"METAFLOW_CODE_SHA": plan.package["sha"], "METAFLOW_CODE_URL": plan.package["url"],
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_S3_ENDPOINT_URL": s3_service.endpoint_url,
            "METAFLOW_DATASTORE_SYSROOT_S3": plan.settings["METAFLOW_DATASTORE_SYSROOT_S3"],
            "METAFLOW_INPUT_PATHS_0": "%s/start/t" % run_id}
    script = container["command"][-1]
    key = plan.package["url"].split("/", 3)[3]
    assert '"%s", "%s", "job.tar"' % (s3_service.bucket, key) in script  # the package
    assert ("compute_layer_flow.py --quiet --datastore s3 --package-suffixes .py,.R,.RDS "
            "--with dagster_internal") in script
    assert ("step train --run-id %s --task-id t --retry-count 0 --max-user-code-retries 1 "
            "--input-paths ${METAFLOW_INPUT_PATHS_0}" % run_id) in script

    # Metaflow's own message, streamed into the op's log.
    assert "Unable to launch Kubernetes job.\n jobs.batch is forbidden" in result.output


def test_terminating_the_run_stops_the_kubernetes_job(s3_service, tmp_path, dagster_home):
    compiled, plan, env = _compile(tmp_path, s3_service, "compute_layer_flow.py")
    with FakeKubernetes() as cluster:
        env = dict(env, KUBECONFIG=str(cluster.kubeconfig(tmp_path)),
                   DAGSTER_HOME=str(dagster_home))

        def dagster_command(*args):
            proc = subprocess.run([PYTHON, compiled.defs_file.parent / "compute_layer_flow.py",
                                   "dagster", *args], cwd=compiled.flow_dir, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc

        dagster_command("trigger", "--definitions-file", str(compiled.defs_file))
        # The task is submitted and, as no container ever runs, stays pending.
        assert wait_until(lambda: cluster.submitted_jobs(), 300, interval=1)
        [run] = job_runs(dagster_home, compiled.job_name)
        dagster_command("terminate", "--run-id", run.run_id)
        assert wait_until(lambda: job_runs(dagster_home, compiled.job_name)[0].status.value
                          == "CANCELED", 120, interval=1)
    # `kubernetes step` got SIGINT and stopped its job, as on Ctrl-C under `flow.py run`.
    assert cluster.job_patches() == [{"spec": {"parallelism": 0}}]


def test_with_kubernetes_sends_every_step_to_the_compute_layer(s3_service, tmp_path):
    _, plan, _ = _compile(tmp_path, s3_service, "linear_flow.py",
                          "--with", "kubernetes:memory=20000,cpu=2")
    for step in plan.steps:
        assert step.compute["command"] == ["kubernetes", "step"], step.name
        options = step.compute["options"]
        assert options[options.index("--memory") + 1] == "20000"
        assert options[options.index("--cpu") + 1] == "2"
        # The task's own `step` in the pod gets the decorator too, as under `run --with`.
        assert any(spec.startswith("kubernetes:") for spec in step.decospecs)


def test_kubernetes_step_takes_configs_from_the_code_package(s3_service, tmp_path,
                                                            dagster_home):
    # Configs with parsers, one of them counting its runs: `kubernetes step` on the op's
    # host and the task in the pod both name them only (kv.NAME) and never parse again.
    flow_file = copy_flow(tmp_path, FLOWS / "prod_toml_config_flow.py")
    log = tmp_path / "parsed.log"
    (flow_file.parent / "cfg.toml").write_text('[model]\nname = "m"\nlayers = 1\n'
                                               '[train]\nrate = 0.1\nshards = 1\n')
    (flow_file.parent / "counted.toml").write_text('release = "r"\nparse_log = "%s"\n' % log)
    env = env_for(**s3_service.env("compute-%s" % tmp_path.name))
    compiled = compile_file(flow_file, "--with", "kubernetes", env=env)
    assert log.read_text() == "parsed\n"
    with FakeKubernetes(refuse=True) as cluster:
        env = dict(env, KUBECONFIG=str(cluster.kubeconfig(tmp_path)))
        result = _execute(compiled, dagster_home, env)
    assert step_statuses(result) == {"start": "FAILURE"}
    by_name = ["--config-value", "cfg", "kv.cfg", "--config-value", "counted", "kv.counted"]
    for argv in _launch_commands(result.output):
        at = argv.index("--config-value")
        assert argv[at:at + 6] == by_name, argv
    # Metaflow's own `kubernetes step` got past the configs and built the pod's command.
    assert "Unable to launch Kubernetes job" in result.output, result.output[-3000:]
    script = cluster.submitted_jobs()[0]["spec"]["template"]["spec"]["containers"][0][
        "command"][-1]
    assert " ".join(by_name) in script
    assert log.read_text() == "parsed\n"


def test_batch_step_is_launched_with_metaflows_command_and_job(s3_service, tmp_path,
                                                                dagster_home):
    compiled, plan, env = _compile(tmp_path, s3_service, "batch_compute_flow.py")
    assert plan.step("crunch").compute["command"] == ["batch", "step"]
    with FakeBatch(refuse=True) as aws_batch:
        env = dict(env, AWS_ENDPOINT_URL_BATCH=aws_batch.url)
        result = _execute(compiled, dagster_home, env)
    assert step_statuses(result) == {"start": "SUCCESS", "crunch": "FAILURE"}
    [argv] = _launch_commands(result.output)
    assert argv[2:] == _expected_launch(plan, "crunch", result.metaflow_run_id, 0,
                                        plan.package["url"])

    [definition] = aws_batch.job_definitions()
    container = definition["containerProperties"]
    assert container["image"] == "python:3.11"
    assert container["jobRoleArn"] == "arn:aws:iam::123456789012:role/metaflow-batch"
    assert container["linuxParameters"]["sharedMemorySize"] == 1024
    [submitted] = aws_batch.submitted_jobs()
    assert submitted["jobQueue"] == "metaflow-queue"
    assert submitted["timeout"] == {"attemptDurationSeconds": 300}
    overrides = submitted["containerOverrides"]
    assert sorted((r["type"], r["value"]) for r in overrides["resourceRequirements"]) == [
        ("MEMORY", "8000"), ("VCPU", "2")]
    batch_env = {e["name"]: e["value"] for e in overrides["environment"]}
    assert batch_env["METAFLOW_CODE_SHA"] == plan.package["sha"]
    assert batch_env["METAFLOW_CODE_URL"] == plan.package["url"]
    assert "step crunch --run-id %s --task-id t" % result.metaflow_run_id \
        in overrides["command"][-1]
    # Metaflow's `batch step` does not retry a job AWS Batch refused (exit 202).
    assert any("A test double: no AWS Batch here" in m
               for m in failure_messages(dagster_home, result.dagster_run_id))
