"""The pure parts of the operations options: --notify-* checks, the plan's notifications,
and the header's regenerate command broken over lines the way a shell reads them."""

import shlex

from metaflow_dagster.compiler import notifications
from metaflow_dagster.compiler.render import MAX_COLUMNS, _shell_lines


def test_channels_name_environment_variables_and_literals_get_their_own():
    channels = {"slack": "env:SLACK_URL", "pagerduty": "0123abcd", "msteams": None}
    assert notifications.notification_plan("Proj_Flow", True, False, channels) == {
        "events": ["error"],
        "channels": {"pagerduty": "METAFLOW_DAGSTER_PROJ_FLOW_PAGERDUTY", "slack": "SLACK_URL"},
    }
    assert notifications.literal_secrets("Proj_Flow", channels) == {
        "METAFLOW_DAGSTER_PROJ_FLOW_PAGERDUTY": "0123abcd"}
    assert notifications.notification_plan("F", False, False, channels) == {}


def test_problems_name_the_option_and_never_the_secret():
    said = list(notifications.problems(True, False, {"slack": "https://hooks/x/SECRET"}))
    assert len(said) == 1 and "--notify-slack-webhook-url" in said[0]
    assert "SECRET" not in said[0] and "not supported" in said[0]
    assert list(notifications.problems(True, False, {"slack": "https://hooks/x/SECRET"},
                                       literal_ok=True)) == []
    assert "quotes" in next(notifications.problems(True, False, {"slack": "a'b"}, True))
    assert list(notifications.problems(False, False, {})) == []


def test_a_long_command_is_broken_between_arguments_as_the_shell_reads_it():
    command = " ".join(shlex.quote(a) for a in [
        "python", "flow.py", "dagster", "create", "--notify-on-error",
        "--notify-slack-webhook-url", "env:A_RATHER_LONG_VARIABLE_NAME_FOR_THE_URL",
        "--workflow-title", "Nightly scores of every order", "--run-retries", "2",
        "--workflow-description", "x" * 100])
    text = _shell_lines(command, "    ")
    lines = text.splitlines()
    assert len(lines) > 1 and all(line.endswith(" \\") for line in lines[:-1])
    assert all(len(line) <= MAX_COLUMNS for line in lines[:-1])
    assert "--notify-slack-webhook-url env:A_RATHER_LONG" in text  # option and value together
    assert shlex.split(text.replace("\\\n", " ")) == shlex.split(command)
    assert _shell_lines("python flow.py dagster create", "    ") == \
        "    python flow.py dagster create"
