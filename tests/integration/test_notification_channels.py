"""The notification sensors' function, called as Dagster calls it (a real run of a small job on
an ephemeral instance, Dagster's own sensor context, the real Slack, Teams and PagerDuty
clients), for what the e2e test cannot cheaply show: a channel that refuses or never answers
fails the tick within seconds, naming each channel, and an unset variable names itself."""

import socket
import time

import pytest
from services import free_port

from metaflow_dagster import naming


def _success_context(resources):
    from dagster import DagsterInstance, build_run_status_sensor_context, job, op

    @op
    def noop():
        pass

    @job(name="OpsFlow", tags={naming.TAG_FLOW_NAME: "OpsFlow"})
    def ops_job():
        noop()

    instance = DagsterInstance.ephemeral()
    result = ops_job.execute_in_process(instance=instance)
    return ops_job, build_run_status_sensor_context(
        sensor_name="OpsFlow_notify_on_success", dagster_event=result.get_run_success_event(),
        dagster_instance=instance, dagster_run=result.dagster_run, resources=resources)


def test_unreachable_channels_fail_the_tick_within_seconds_naming_each(monkeypatch):
    import pypd
    from dagster_msteams import MSTeamsResource
    from dagster_pagerduty import PagerDutyService

    from metaflow_dagster.runtime import SlackWebhook, notification_sensors
    from metaflow_dagster.runtime.triggers.notifications import SEND_TIMEOUT_SECONDS

    refusing = "http://127.0.0.1:%d/hook" % free_port()  # nothing listens there
    silent = socket.socket()  # listens, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setattr(pypd.EventV2, "base_url", pypd.EventV2.base_url)  # restored after
    monkeypatch.setenv(naming.PAGERDUTY_EVENTS_URL_ENV,
                       "http://127.0.0.1:%d/v2/enqueue" % silent.getsockname()[1])
    job, context = _success_context({
        "notify_slack": SlackWebhook(url=refusing),
        "notify_msteams": MSTeamsResource(hook_url=refusing),
        "notify_pagerduty": PagerDutyService(routing_key="key"),
    })
    (sensor,) = notification_sensors(job, ["success"], ["msteams", "pagerduty", "slack"])
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as raised:
            sensor(context)
    finally:
        silent.close()
    took = time.monotonic() - started
    said = str(raised.value)
    assert "Could not notify about run %s" % context.dagster_run.run_id in said
    assert "pagerduty: no answer within %d s" % SEND_TIMEOUT_SECONDS in said
    assert "slack: " in said and "msteams: " in said and "refused" in said.lower(), said
    assert took < SEND_TIMEOUT_SECONDS + 5, took


def test_an_unset_variable_is_named(monkeypatch):
    from dagster import EnvVar

    from metaflow_dagster.runtime import SlackWebhook, notification_sensors

    monkeypatch.delenv("OPS_UNSET_SLACK_URL", raising=False)
    job, context = _success_context(
        {"notify_slack": SlackWebhook(url=EnvVar("OPS_UNSET_SLACK_URL"))})
    (sensor,) = notification_sensors(job, ["success"], ["slack"])
    with pytest.raises(Exception, match="OPS_UNSET_SLACK_URL"):
        sensor(context)
