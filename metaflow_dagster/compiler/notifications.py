"""`dagster create --notify-*`: which runs notify whom, checked and put in the plan's form.

A channel's secret (a webhook URL holds its token, a PagerDuty integration key is one) never
goes into the definitions file: the option names the environment variable that holds it,
`env:NAME`, which the Dagster processes evaluating the job's sensors (the daemon's code
server) read when a run ends. Argo's integration writes the literal value into the
WorkflowTemplate, without a word; here a literal value is refused, unless
--notify-secrets-to-env-file says to keep it in the `.env` file beside the definitions file
(Dagster's CLI loads `.env` from the directory it starts in), under the name
secret_env_name() gives it.
"""

import re
from typing import Dict, Iterator, Optional

# Channel -> its `dagster create` option (Argo's name where Argo has the channel).
CHANNEL_OPTIONS = {
    "slack": "--notify-slack-webhook-url",
    "pagerduty": "--notify-pager-duty-integration-key",
    "msteams": "--notify-msteams-webhook-url",
}
# The Python package each channel needs in the Dagster processes (pip extra of ours).
CHANNEL_PACKAGES = {"slack": "dagster_slack", "pagerduty": "dagster_pagerduty",
                    "msteams": "dagster_msteams"}
ENV_PREFIX = "env:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_name(value: str) -> Optional[str]:
    """NAME of `env:NAME`, or None for anything else (a literal)."""
    if not value.startswith(ENV_PREFIX):
        return None
    name = value[len(ENV_PREFIX):]
    return name if _ENV_NAME.match(name) else None


def secret_env_name(job_name: str, channel: str) -> str:
    """The variable a literal secret is kept under in `.env`."""
    return re.sub(r"[^A-Z0-9_]", "_", ("METAFLOW_DAGSTER_%s_%s" % (job_name, channel)).upper())


def problems(on_error: bool, on_success: bool, channels: Dict[str, Optional[str]],
             literal_ok: bool = False) -> Iterator[str]:
    """What is wrong with the --notify-* options (nothing if none is given)."""
    given = {name: value for name, value in channels.items() if value}
    if (on_error or on_success) and not given:
        yield ("--notify-on-error and --notify-on-success need a channel: %s (each as "
               "env:NAME, the environment variable of the Dagster daemon holding it)."
               % ", ".join(CHANNEL_OPTIONS.values()))
    if given and not (on_error or on_success):
        yield ("%s is given but neither --notify-on-error nor --notify-on-success: say "
               "which runs notify." % ", ".join(CHANNEL_OPTIONS[n] for n in sorted(given)))
    for name, value in sorted(given.items()):
        option = CHANNEL_OPTIONS[name]
        if value.startswith(ENV_PREFIX) and env_name(value) is None:
            yield "%s %s: %r is not an environment variable name." % (
                option, value, value[len(ENV_PREFIX):])
        elif env_name(value) is None and not literal_ok:
            yield ("%s takes env:NAME, the environment variable of the Dagster daemon that "
                   "holds the secret; a literal value is not supported, since it would be "
                   "written into the definitions file (and its header). Set it in the "
                   "daemon's environment, e.g. `export SLACK_WEBHOOK_URL=...`, and pass "
                   "%s env:SLACK_WEBHOOK_URL; or add --notify-secrets-to-env-file to keep "
                   "it in the .env file beside the definitions file." % (option, option))
        elif env_name(value) is None and any(c in value for c in "'\"\n\\"):
            yield "%s: a secret with quotes, backslashes or line ends is not supported." % (
                option)


def package_missing(channels: Dict[str, Optional[str]], module_found) -> Optional[str]:
    """What to install for the channels given, or None (as naming.executor_package_missing
    does for executors: Dagster runs the job's sensors with the same packages)."""
    missing = sorted(CHANNEL_PACKAGES[name].replace("_", "-")
                     for name, value in channels.items()
                     if value and not module_found(CHANNEL_PACKAGES[name]))
    if not missing:
        return None
    return ("Notifications through %s need %s, here and where Dagster runs the job's "
            "sensors: pip install %s" % (", ".join(missing), ", ".join(missing),
                                          " ".join(missing)))


def literal_secrets(job_name: str, channels: Dict[str, Optional[str]]) -> Dict[str, str]:
    """The literal values given (not env:NAME), by the variable they are kept under."""
    return {secret_env_name(job_name, name): value for name, value in channels.items()
            if value and env_name(value) is None}


def notification_plan(job_name: str, on_error: bool, on_success: bool,
                      channels: Dict[str, Optional[str]]) -> Dict[str, object]:
    """plan.FlowPlan.notifications for valid options ({} without notifications)."""
    events = [event for event, on in (("error", on_error), ("success", on_success)) if on]
    given = {name: env_name(value) or secret_env_name(job_name, name)
             for name, value in channels.items() if value}
    if not events or not given:
        return {}
    return {"events": events, "channels": dict(sorted(given.items()))}
