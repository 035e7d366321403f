"""Step logs in object storage (dagster-aws's S3ComputeLogManager, what a deployment on many
hosts configures) on the default executor: each step's task output is uploaded whole."""

import pytest
import services
from harness import compile_flow, execute

pytest_plugins = ["service_fixtures"]
pytestmark = [pytest.mark.services, pytest.mark.e2e]


def test_each_steps_output_is_uploaded_whole(tmp_path, dagster_home, s3_service, monkeypatch):
    pytest.importorskip("dagster_aws", reason="dagster-aws is not installed")
    for name, value in services.FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        + services.dagster_yaml_for_s3_compute_logs(s3_service, prefix="steps-in-s3"))
    compiled = compile_flow(tmp_path, "linear_flow")
    result = execute(compiled, dagster_home)
    assert result.success, result.output

    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.storage.compute_log_manager import ComputeIOType

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        manager = instance.compute_log_manager
        captured = {}
        for record in instance.all_logs(result.dagster_run_id,
                                        of_type=DagsterEventType.LOGS_CAPTURED):
            data = record.dagster_event.event_specific_data
            log_key = manager.build_log_key_for_run(result.dagster_run_id, data.file_key)
            # Complete in S3 (not just the partial uploads made while the step ran).
            assert manager.cloud_storage_has_logs(log_key, ComputeIOType.STDOUT), data.step_keys
            captured[tuple(data.step_keys)] = manager.get_log_data(log_key).stdout.decode()
    assert "trail so far: ['start', 'a']" in captured[("a",)], captured
