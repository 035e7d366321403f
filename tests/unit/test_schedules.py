"""@schedule -> Dagster schedules: cron conversion, and real ScheduleDefinitions evaluated."""

import datetime
import zoneinfo

import pytest
from _flow_init import TwoStepFlow, init_flow
from dagster import ScheduleDefinition, build_schedule_context, job, op
from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string
from metaflow import schedule

from metaflow_dagster.compiler.schedules import (
    ScheduleNotSupported,
    aws_cron_to_dagster,
    schedule_spec,
)

# --- aws_cron_to_dagster ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aws, expected",
    [
        ("0 10 * * ? *", "0 10 * * *"),
        ("0 0 ? * SUN *", "0 0 * * SUN"),  # what ScheduleDecorator.flow_init stores for weekly
        ("0 * * * ? *", "0 * * * *"),
        ("0 0 * * ? *", "0 0 * * *"),
        ("15 12 ? * 1 *", "15 12 * * 0"),  # EventBridge 1 = Sunday
        ("0 8 ? * 7 *", "0 8 * * 6"),  # 7 = Saturday
        ("0 8 ? * 2-6 *", "0 8 * * 1-5"),
        ("0 8 ? * 1,7 *", "0 8 * * 0,6"),
        ("0 8 ? * 1,3-5 *", "0 8 * * 0,2-4"),
        ("0 8 ? * MON-FRI *", "0 8 * * MON-FRI"),
        ("0 8 ? * mon-fri *", "0 8 * * MON-FRI"),
        ("0 8 ? * 2#1 *", "0 8 * * 1#1"),  # first Monday
        ("0 8 ? * MON#2 *", "0 8 * * MON#2"),
        ("0 8 ? * 6L *", "0 8 * * L5"),  # last Friday
        ("0 0 L * ? *", "0 0 L * *"),  # last day of the month
        ("*/15 * * * ? *", "*/15 * * * *"),
        ("0/10 9-17 ? * 2-6 *", "0/10 9-17 * * 1-5"),
        ("0 0 1,15 * ? *", "0 0 1,15 * *"),
        ("0 0 1 JAN-MAR ? *", "0 0 1 JAN-MAR *"),
        ("  0   10 * * ?   * ", "0 10 * * *"),
    ],
)
def test_aws_cron_converts(aws, expected):
    assert aws_cron_to_dagster(aws) == expected
    assert is_valid_cron_string(expected)


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/5 * * * 1-5", "0 0 1 * *", "30 6 * * SUN"])
def test_five_field_cron_is_unchanged(cron):
    assert aws_cron_to_dagster(cron) == cron


@pytest.mark.parametrize(
    "aws, reason",
    [
        ("0 10 * * ? 2026", "year"),
        ("0 10 * * ? 2025-2030", "year"),
        ("0 10 15W * ? *", "'W'"),
        ("0 10 LW * ? *", "'W'"),
        ("0 10 L-2 * ? *", "'L'"),
        ("0 10 ? * L *", "'L'"),
        ("0 10 ? * 1/2 *", "step"),
        ("0 10 ? * 8 *", "day of week"),
        ("0 10 ? * 0 *", "day of week"),
        ("0 10 ? * 2#6 *", "converted cron"),
        ("0 0 3 * * * *", "7 fields"),
        ("0 10 *", "3 fields"),
        ("0 0 31 2 *", "converted cron"),  # five fields, but never fires
        ("0 0 31 2 ? *", "converted cron"),
        ("61 10 * * ? *", "converted cron"),
    ],
)
def test_unsupported_cron_is_refused_by_name(aws, reason):
    with pytest.raises(ScheduleNotSupported) as e:
        aws_cron_to_dagster(aws)
    message = str(e.value)
    assert repr(aws) in message
    assert "not supported" in message
    assert reason in message
    assert "five-field cron" in message  # says what to do


# --- schedule_spec ------------------------------------------------------------------------------


class _Base(TwoStepFlow):
    pass


@schedule(weekly=True, timezone="Europe/Berlin")
class WeeklyFlow(_Base):
    pass


@schedule(daily=True)
class DailyFlow(_Base):
    pass


@schedule
class DefaultScheduleFlow(_Base):
    pass


@schedule(hourly=True)
class HourlyFlow(_Base):
    pass


@schedule(cron="0 10 ? * 2-6 *", timezone="America/New_York")
class CronFlow(_Base):
    pass


@schedule(cron="0 10 * * ? *", weekly=True)
class CronWinsFlow(_Base):
    pass


@schedule(daily=False)
class NoScheduleFlow(_Base):
    pass


class UnscheduledFlow(_Base):
    pass


@schedule(cron="0 10 * * ? 2030")
class YearFlow(_Base):
    pass


@schedule(daily=True, timezone="Mars/Olympus")
class BadZoneFlow(_Base):
    pass


@pytest.mark.parametrize(
    "flow_cls, expected",
    [
        (WeeklyFlow, {"cron": "0 0 * * 0", "timezone": "Europe/Berlin"}),
        (DailyFlow, {"cron": "0 0 * * *", "timezone": "UTC"}),
        (DefaultScheduleFlow, {"cron": "0 0 * * *", "timezone": "UTC"}),
        (HourlyFlow, {"cron": "0 * * * *", "timezone": "UTC"}),
        (CronFlow, {"cron": "0 10 * * 1-5", "timezone": "America/New_York"}),
        (CronWinsFlow, {"cron": "0 10 * * *", "timezone": "UTC"}),
        (NoScheduleFlow, None),
        (UnscheduledFlow, None),
    ],
)
def test_schedule_spec(flow_cls, expected):
    assert schedule_spec(init_flow(flow_cls)) == expected


def test_schedule_spec_refuses_year_and_unknown_timezone():
    with pytest.raises(ScheduleNotSupported, match="year"):
        schedule_spec(init_flow(YearFlow))
    with pytest.raises(ScheduleNotSupported, match="Mars/Olympus"):
        schedule_spec(init_flow(BadZoneFlow))


# --- real Dagster schedules ---------------------------------------------------------------------


@op
def _noop():
    pass


@job
def tiny_job():
    _noop()


def _schedule(spec: dict) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="tiny_schedule",
        job=tiny_job,
        cron_schedule=spec["cron"],
        execution_timezone=spec["timezone"],
    )


def _next_fires(schedule_def: ScheduleDefinition, after: datetime.datetime, n: int) -> list:
    fires = cron_string_iterator(
        after.timestamp(), schedule_def.cron_schedule, schedule_def.execution_timezone
    )
    return [next(fires) for _ in range(n)]


def test_weekly_fires_sunday_midnight_in_its_timezone():
    schedule_def = _schedule(schedule_spec(init_flow(WeeklyFlow)))
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    # Wednesday 2026-03-25; Berlin switches to summer time on Sunday 2026-03-29.
    fires = _next_fires(schedule_def, datetime.datetime(2026, 3, 25, 12, tzinfo=berlin), 3)
    for fire in fires:
        local = fire.astimezone(berlin)
        assert (local.weekday(), local.hour, local.minute) == (6, 0, 0)  # Sunday 00:00
    assert [f.astimezone(berlin).day for f in fires] == [29, 5, 12]
    assert fires[0].astimezone(datetime.timezone.utc).hour == 23  # 00:00 CET = 23:00 UTC
    assert fires[1].astimezone(datetime.timezone.utc).hour == 22  # 00:00 CEST = 22:00 UTC


def test_converted_weekday_cron_fires_on_weekdays_in_new_york():
    schedule_def = _schedule(schedule_spec(init_flow(CronFlow)))
    new_york = zoneinfo.ZoneInfo("America/New_York")
    fires = _next_fires(schedule_def, datetime.datetime(2026, 1, 2, 11, tzinfo=new_york), 5)
    local = [f.astimezone(new_york) for f in fires]
    assert [d.strftime("%a %H:%M") for d in local] == [
        "Mon 10:00",
        "Tue 10:00",
        "Wed 10:00",
        "Thu 10:00",
        "Fri 10:00",
    ]


@pytest.mark.parametrize(
    "aws, expected_days",
    [
        ("0 0 ? * 6L *", ["Fri 30 Jan", "Fri 27 Feb", "Fri 27 Mar"]),
        ("0 0 ? * 2#2 *", ["Mon 12 Jan", "Mon 09 Feb", "Mon 09 Mar"]),
        ("0 0 L * ? *", ["Sat 31 Jan", "Sat 28 Feb", "Tue 31 Mar"]),
    ],
)
def test_quartz_wildcards_fire_on_the_right_days(aws, expected_days):
    schedule_def = _schedule({"cron": aws_cron_to_dagster(aws), "timezone": "UTC"})
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    assert [f.strftime("%a %d %b") for f in _next_fires(schedule_def, start, 3)] == expected_days


def test_schedule_evaluation_requests_one_run():
    schedule_def = _schedule(schedule_spec(init_flow(DailyFlow)))
    when = datetime.datetime(2026, 5, 1, tzinfo=datetime.timezone.utc)
    with build_schedule_context(scheduled_execution_time=when) as context:
        data = schedule_def.evaluate_tick(context)
    assert len(data.run_requests) == 1
    assert data.run_requests[0].run_key is None


@pytest.mark.parametrize(
    "cron",
    ["0 3 * * *", "*/15 * * * *", "0 0 * * 1-5", "0 9 * * MON", "0 0 31 2 *", "0 0 30 2 *",
     "0 0 29 2 *", "0 0 3 * * *", "61 * * * *", "0 0 ? * *", "0 0 1,31 2 *", "@daily", "x"],
)
def test_the_cron_check_at_create_time_is_dagsters(cron):
    """`create` checks crons without importing dagster; it must agree with Dagster."""
    from metaflow_dagster.compiler.schedules import _is_valid_for_dagster

    assert _is_valid_for_dagster(cron) == is_valid_cron_string(cron)
