"""`dagster create`'s operations options (Argo's names): priority, title, description, whole-run
retries and notifications, as the definitions file carries them; what `create` refuses.
tests/e2e/test_operations.py runs them under a real daemon."""

import pytest
from harness import FLOWS, compile_flow, copy_flow, create, load_definitions
from test_create import lint

from metaflow_dagster import naming

OPTIONS = [
    "--workflow-priority", "7", "--workflow-title", "Nightly scoring",
    "--workflow-description", "Scores yesterday's orders.", "--run-retries", "2",
    "--notify-on-error", "--notify-on-success",
    "--notify-slack-webhook-url", "env:SLACK_WEBHOOK_URL",
    "--notify-msteams-webhook-url", "env:TEAMS_WEBHOOK_URL",
    "--notify-pager-duty-integration-key", "env:PAGERDUTY_KEY",
]


@pytest.fixture
def compiled(tmp_path):
    return compile_flow(tmp_path, "ops_flow", *OPTIONS)


def test_every_run_gets_the_jobs_priority_title_and_retries(compiled):
    defs = load_definitions(compiled.defs_file).defs
    job = defs.get_job_def(compiled.job_name)
    assert job.tags == {
        naming.TAG_FLOW_NAME: "OpsFlow",
        naming.TAG_TITLE: "Nightly scoring",
        naming.TAG_PRIORITY: "7",
        naming.TAG_MAX_RETRIES: "2",
        naming.TAG_RETRY_STRATEGY: "FROM_FAILURE",
    }
    # The given description first, then the flow's docstring (Argo shows only the given one).
    assert job.description == "Scores yesterday's orders.\n\nOperations test flow."


def test_notifications_are_run_status_sensors_with_secrets_from_the_environment(
        compiled, monkeypatch):
    text = compiled.defs_file.read_text()
    assert "EnvVar('SLACK_WEBHOOK_URL')" in text and "EnvVar('PAGERDUTY_KEY')" in text
    defs = load_definitions(compiled.defs_file).defs
    sensors = {s.name: s for s in defs.sensors}
    assert sorted(sensors) == ["OpsFlow_notify_on_error", "OpsFlow_notify_on_success"]
    for sensor in sensors.values():
        assert sensor.required_resource_keys == {
            "notify_slack", "notify_msteams", "notify_pagerduty"}
        assert sensor.default_status.value == "RUNNING"
    # The file holds no secret: the resources read them when a sensor sends.
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/xyz")
    slack = defs.resources["notify_slack"]
    assert type(slack).__name__ == "SlackWebhook"
    assert slack.url.get_value() == "https://hooks.slack.com/services/T/B/xyz"


def test_the_file_stays_deterministic_and_lint_clean(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "ops_flow.py")
    long_description = "A description longer than a line of the definitions file, " * 3
    create(flow_file, *OPTIONS, "--workflow-description", long_description)
    defs = flow_file.parent / "ops_flow_dagster.py"
    first = defs.read_bytes()
    create(flow_file, *OPTIONS, "--workflow-description", long_description)
    assert defs.read_bytes() == first
    # The header's command, broken over lines as a shell reads it, is the one typed.
    assert "--notify-pager-duty-integration-key env:PAGERDUTY_KEY" in first.decode()
    compiled = type("Compiled", (), {"defs_file": defs, "flow_dir": flow_file.parent})
    assert lint(compiled) == ""


@pytest.mark.parametrize("args,said", [
    (["--notify-on-error", "--notify-slack-webhook-url", "https://hooks.slack.com/x"],
     "--notify-slack-webhook-url takes env:NAME"),
    (["--notify-on-error", "--notify-pager-duty-integration-key", "env:1KEY"],
     "'1KEY' is not an environment variable name"),
    (["--notify-on-success"], "--notify-on-error and --notify-on-success need a channel"),
    (["--notify-msteams-webhook-url", "env:TEAMS"], "neither --notify-on-error nor"),
    (["--run-retries", "-1"], "--run-retries must be at least 0"),
])
def test_bad_operations_options_are_refused_and_nothing_is_written(tmp_path, args, said):
    flow_file = copy_flow(tmp_path, FLOWS / "ops_flow.py")
    proc = create(flow_file, *args, expect_ok=False)
    assert proc.returncode == 1 and said in proc.stderr, proc.stderr
    assert "https://hooks.slack.com/x" not in proc.stdout + proc.stderr
    assert not (flow_file.parent / "ops_flow_dagster.py").exists()


def test_a_literal_secret_is_not_supported(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "ops_flow.py")
    proc = create(flow_file, "--notify-on-error", "--notify-pagerduty-integration-key",
                  "0123456789abcdef", expect_ok=False)
    assert "not supported" in proc.stderr
    assert "written into the definitions file" in proc.stderr
    assert "--notify-secrets-to-env-file" in proc.stderr


def test_a_literal_secret_told_so_is_kept_in_the_env_file_only(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "ops_flow.py")
    (flow_file.parent / ".env").write_text("OTHER=kept\nMETAFLOW_DAGSTER_OPSFLOW_SLACK=old\n")
    url = "https://hooks.slack.com/services/T1/B2/sekrit"
    proc = create(flow_file, "--notify-on-error", "--notify-secrets-to-env-file",
                  "--notify-slack-webhook-url=%s" % url,
                  "--notify-pager-duty-integration-key", "0123456789abcdef")
    assert "Warning: kept the secrets given on the command line" in proc.stdout + proc.stderr
    env_file = flow_file.parent / ".env"
    assert env_file.read_text() == (
        "OTHER=kept\nMETAFLOW_DAGSTER_OPSFLOW_PAGERDUTY='0123456789abcdef'\n"
        "METAFLOW_DAGSTER_OPSFLOW_SLACK='%s'\n" % url)
    assert env_file.stat().st_mode & 0o077 == 0
    text = (flow_file.parent / "ops_flow_dagster.py").read_text()
    assert url not in text and "0123456789abcdef" not in text
    assert "--notify-slack-webhook-url=env:METAFLOW_DAGSTER_OPSFLOW_SLACK" in text
    assert "EnvVar('METAFLOW_DAGSTER_OPSFLOW_PAGERDUTY')" in text
    from dotenv import dotenv_values  # what Dagster's CLI reads

    assert dotenv_values(env_file)["METAFLOW_DAGSTER_OPSFLOW_SLACK"] == url
