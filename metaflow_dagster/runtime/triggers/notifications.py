"""`dagster create --notify-on-error/--notify-on-success`: Dagster run-status sensors that
tell Slack, Microsoft Teams or PagerDuty when a run of the job ends.

The channels are Dagster resources of the definitions file, built from environment
variables (`EnvVar`) where the daemon evaluates the sensors: Slack's incoming webhook
(slack_sdk's `WebhookClient`, which dagster-slack brings; dagster-slack's own resource
posts with a bot token instead), dagster-msteams' `MSTeamsResource` and dagster-pagerduty's
`PagerDutyService`. A message names the flow, the Metaflow run and the Dagster run, each
failed step with its Metaflow task and attempt and the end of its error, and links to the
run in the Dagster UI.

The sensors watch the job through Dagster's own job selection, so they see the runs that
have the job's code location as their origin: those of schedules, sensors, the UI,
`dagster trigger`, the Deployer API and run retries. Runs started by `dagster job execute`
have no origin, and no run-status sensor with a job selection sees them.

A failed run that Dagster will retry (`create --run-retries`) does not notify; its retry
does when it ends. A send that fails fails the sensor's tick (the UI shows it, with the
channel's error) and is not repeated: Dagster moves a run-status sensor's cursor past the
run either way, so no run notifies twice.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import List, Optional

from dagster import (
    ConfigurableResource,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorDefinition,
)
from dagster._core.storage.tags import WILL_RETRY_TAG

from ... import naming

DEFAULT_INTERVAL_SECONDS = 30
# Seconds a channel gets to take a message (pypd, under PagerDutyService, sets no timeout).
SEND_TIMEOUT_SECONDS = 15
# How long to wait for the tag saying whether a failed run will be retried.
WILL_RETRY_WAIT_SECONDS = 1
# Lines of the end of a failed step's error in a message (after its first line, which names
# the task and attempt, and the lines that say why the task failed).
ERROR_TAIL_LINES = 8


class SlackWebhook(ConfigurableResource):
    """A Slack incoming webhook (https://api.slack.com/messaging/webhooks), as Argo's
    --notify-slack-webhook-url posts to."""

    url: str

    def post(self, text: str, blocks: list) -> None:
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(self.url, timeout=SEND_TIMEOUT_SECONDS).send(
            text=text, blocks=blocks)
        if response.status_code != 200:
            raise RuntimeError("Slack answered %s: %s" % (response.status_code,
                                                          response.body[:300]))


def notification_sensors(job, events: List[str], channels: List[str]) -> list:
    """A run-status sensor for each event ("error", "success") of the job's runs, sending
    to the channels (keys of naming.NOTIFY_RESOURCE_KEYS) through the definitions'
    resources."""
    sensors = []
    for event in events:
        failed = event == "error"
        sensors.append(RunStatusSensorDefinition(
            name="%s_notify_on_%s" % (job.name, event),
            run_status=DagsterRunStatus.FAILURE if failed else DagsterRunStatus.SUCCESS,
            run_status_sensor_fn=_notify(channels, failed),
            description="Tells %s when a run of %s %s." % (
                ", ".join(channels), job.name, "fails" if failed else "succeeds"),
            monitored_jobs=[job],
            minimum_interval_seconds=_interval(),
            default_status=DefaultSensorStatus.RUNNING,
            required_resource_keys={naming.NOTIFY_RESOURCE_KEYS[c] for c in channels},
        ))
    return sensors


def _notify(channels: List[str], failed: bool):
    """The sensor's function: it reads the channels' resources from the context (the
    daemon passes only the context; a direct call, as in tests, passes the required
    resources as keyword arguments too)."""
    def notify(context, **_resources):
        if failed and _will_retry(context):
            return  # its retry notifies when it ends
        _send(context.for_run_failure() if failed else context, channels, failed)

    return notify


def _will_retry(context) -> bool:
    """Whether Dagster will retry the failed run. The run's worker tags it just after it
    records the failure: a run of a job with retries that has no tag yet is read again."""
    run = context.dagster_run
    if WILL_RETRY_TAG not in run.tags and run.tags.get(naming.TAG_MAX_RETRIES, "0") != "0":
        time.sleep(WILL_RETRY_WAIT_SECONDS)
        run = context.instance.get_run_by_id(run.run_id) or run
    return run.tags.get(WILL_RETRY_TAG) == "true"


def _interval() -> int:
    """How often the sensors look for ended runs: NOTIFY_INTERVAL_ENV where Dagster loads
    the definitions (tests set a second), else Dagster's default for run-status sensors."""
    value = os.environ.get(naming.NOTIFY_INTERVAL_ENV)
    return max(1, int(value)) if value else DEFAULT_INTERVAL_SECONDS


# --- the message ------------------------------------------------------------------------


class Message:
    """What a notification says, for each channel's format."""

    def __init__(self, context, failed: bool):
        run = context.dagster_run
        self.failed = failed
        self.flow = run.tags.get(naming.TAG_FLOW_NAME, run.job_name)
        self.job = run.job_name
        self.dagster_run_id = run.run_id
        self.metaflow_run = "%s/%s" % (self.flow, naming.metaflow_run_id_of(run))
        self.title = run.tags.get(naming.TAG_TITLE)
        ui_base = os.environ.get(naming.UI_URL_ENV, naming.DEFAULT_UI_URL).rstrip("/")
        self.dagster_url = "%s/runs/%s" % (ui_base, run.run_id)
        metaflow_ui = os.environ.get("METAFLOW_UI_URL")
        self.metaflow_url = "%s/%s" % (metaflow_ui.rstrip("/"), self.metaflow_run) \
            if metaflow_ui else None
        self.failures = _step_failures(context) if failed else []
        self.run_error = context.failure_event.message if failed else None

    @property
    def summary(self) -> str:
        return "Metaflow run %s %s (Dagster job %s%s)" % (
            self.metaflow_run, "failed" if self.failed else "succeeded", self.job,
            ", %s" % self.title if self.title else "")

    def details(self) -> List[str]:
        """The failed steps, their tasks and errors; then where to look."""
        lines = []
        for failure in self.failures:
            task = failure["pathspec"] or "(no Metaflow task)"
            attempt = "" if failure["attempt"] is None else ", attempt %d" % failure["attempt"]
            lines.append("Step %s failed: %s%s" % (failure["step_key"], task, attempt))
            lines += ["    " + line for line in _tail(failure["error"])]
        if self.failed and not self.failures and self.run_error:
            lines.append("Dagster: %s" % self.run_error)
        lines.append("Metaflow run: %s" % self.metaflow_run)
        lines.append("Dagster run: %s" % self.dagster_url)
        if self.metaflow_url:
            lines.append("Metaflow UI: %s" % self.metaflow_url)
        return lines

    def text(self) -> str:
        return "\n".join([self.summary] + self.details())


def _tail(error: Optional[str]) -> List[str]:
    """What `dagster status` shows of it too: its first line, those saying why the task
    failed, and its end."""
    lines = (error or "(no error recorded)").splitlines()
    return naming.failure_excerpt(lines, ERROR_TAIL_LINES, keep_first=True)


def _step_failures(context) -> List[dict]:
    """Each failed step's last failure: its key, Metaflow task and attempt (the
    metadata of the op's Failure) and its error."""
    failures = {}
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        metadata = {k: v.value for k, v in (user.metadata if user else {}).items()}
        attempt = metadata.get("metaflow_attempt")
        failures[event.step_key] = {
            "step_key": event.step_key,
            "pathspec": metadata.get("metaflow_pathspec"),
            "attempt": int(attempt) if attempt is not None else None,
            "error": user.description if user and user.description else (
                data.error.message if data.error else None),
        }
    return list(failures.values())


# --- the channels -----------------------------------------------------------------------


def _send(context, channels: List[str], failed: bool) -> None:
    """Send the message to every channel at once, each within SEND_TIMEOUT_SECONDS; raise
    naming each channel that failed (the tick fails; the other channels were told)."""
    message = Message(context, failed)
    # Built here (EnvVar resolved, so an unset variable fails with its name), used below.
    resources = {name: getattr(context.resources, naming.NOTIFY_RESOURCE_KEYS[name])
                 for name in channels}
    pool = ThreadPoolExecutor(max_workers=len(channels))
    futures = {name: pool.submit(SENDERS[name], resources[name], message) for name in channels}
    wait(futures.values(), timeout=SEND_TIMEOUT_SECONDS)
    pool.shutdown(wait=False)
    errors = []
    for name, future in sorted(futures.items()):
        if not future.done():
            errors.append("%s: no answer within %d s" % (name, SEND_TIMEOUT_SECONDS))
        elif future.exception() is not None:
            errors.append("%s: %s" % (name, future.exception()))
        else:
            context.log.info("Told %s: %s" % (name, message.summary))
    if errors:
        raise RuntimeError("Could not notify about run %s: %s" % (
            message.dagster_run_id, "; ".join(errors)))


def _slack(resource: SlackWebhook, message: Message) -> None:
    icon = ":rotating_light:" if message.failed else ":white_check_mark:"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": "%s *%s*" % (icon, message.summary)}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": "```%s```" % "\n".join(message.details())}},
        {"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "View in Dagster UI"},
            "url": message.dagster_url}]},
    ]
    resource.post(message.text(), blocks)


def _msteams(resource, message: Message) -> None:
    from dagster_msteams import Card
    from dagster_msteams.adaptive_card import AdaptiveCard

    client = resource.get_client()
    card = Card() if client.is_legacy_webhook() else AdaptiveCard()
    card.add_attachment(message.text())
    client.post_message(card.payload)


def _pagerduty(resource, message: Message) -> None:
    """A failure triggers the job's alert; a success resolves it (Argo posts a change
    event instead, which dagster-pagerduty cannot send)."""
    import pypd

    events_url = os.environ.get(naming.PAGERDUTY_EVENTS_URL_ENV)
    if events_url:
        pypd.EventV2.base_url = events_url
    resource.EventV2_create(
        summary=message.summary,
        source=message.job,
        severity="error" if message.failed else "info",
        event_action="trigger" if message.failed else "resolve",
        dedup_key="metaflow-dagster/%s" % message.job,
        component=message.flow,
        custom_details={"details": message.details(), "metaflow_run": message.metaflow_run,
                        "dagster_run": message.dagster_url},
    )


SENDERS = {"slack": _slack, "msteams": _msteams, "pagerduty": _pagerduty}

