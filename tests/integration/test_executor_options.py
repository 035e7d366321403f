"""`dagster create --executor / --pool / --pool-limit`, and what Dagster's own CLI says of
execution config the job does not know (no run starts in these tests)."""

import subprocess

import yaml
from harness import DAGSTER, FLOWS, built_job, compile_flow, copy_flow, create, env_for


def test_create_refuses_an_executor_whose_package_is_missing(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    # Python imports sitecustomize at start: dagster-celery looks uninstalled to `create`.
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['dagster_celery'] = None\n")
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    proc = create(flow_file, "--executor", "celery", expect_ok=False,
                  env=env_for(PYTHONPATH=str(shim)))
    assert proc.returncode != 0
    assert "The celery executor needs dagster-celery, which is not installed: pip install " \
        "'metaflow-on-dagster[celery]'" in proc.stderr
    assert not (flow_file.parent / "linear_flow_dagster.py").exists()


def test_executor_and_pool_options_reach_the_job(tmp_path):
    compiled = compile_flow(tmp_path, "foreach_flow", "--executor", "celery", "--pool",
                            "team-flows", "--pool-limit", "4")
    job = built_job(compiled)
    field = job.executor_def.config_schema.as_field()
    assert field.default_value == {"celery": {}}
    assert {node.definition.pool for node in job.graph.nodes} == {"team-flows"}
    text = compiled.defs_file.read_text()
    assert "pool_limit=4" in text and "redis://" not in text

    proc = create(compiled.flow_dir / "foreach_flow.py", "--pool-limit", "0",
                  defs_name="other.py", expect_ok=False)
    assert proc.returncode != 0 and "--pool-limit must be at least 1" in proc.stderr


def test_misspelt_execution_config_is_an_error_not_ignored(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "linear_flow")
    config = tmp_path / "run_config.yaml"
    # dagster-celery's documented shape, on a job whose default executor is metaflow: it used
    # to be accepted, ignored, and the run went on in threads.
    config.write_text(yaml.safe_dump({"execution": {"config": {
        "broker": "redis://127.0.0.1:6379/0"}}}))
    proc = subprocess.run([DAGSTER, "job", "execute", "-f", str(compiled.defs_file),
                           "-j", compiled.job_name, "-c", str(config)],
                          cwd=compiled.flow_dir, capture_output=True, text=True,
                          env=env_for(dagster_home), timeout=120)
    assert proc.returncode != 0
    assert 'Received unexpected config entry "broker" at path root:execution:config' \
        in proc.stdout + proc.stderr
