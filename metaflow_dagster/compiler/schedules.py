"""@schedule -> the cron and timezone of a Dagster ScheduleDefinition.

Metaflow documents `@schedule(cron=...)` as an AWS EventBridge expression: six fields
(`minute hour day-of-month month day-of-week year`), `?` in one of the day fields, weekdays
numbered 1-7 with 1 = Sunday, plus `L`, `W` and `#`. Dagster accepts only five-field cron, read
by its vendored croniter (weekdays 0-6 with 0 = Sunday). This module converts one into the other,
and refuses, naming the expression, whatever has no exact equivalent.
"""

import zoneinfo

from .errors import CreateError

# The shortcut flags in the precedence ScheduleDecorator.flow_init applies (cron first).
SHORTCUT_CRONS = (
    ("weekly", "0 0 * * 0"),
    ("hourly", "0 * * * *"),
    ("daily", "0 0 * * *"),
)
DEFAULT_TIMEZONE = "UTC"
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_REWRITE_HINT = (
    "Rewrite @schedule(cron=...) as a five-field cron "
    "(minute hour day-of-month month day-of-week, weekdays 0-6 with 0 = Sunday) "
    "that Dagster accepts."
)


class ScheduleNotSupported(CreateError, ValueError):
    """A @schedule that no Dagster schedule can reproduce exactly."""


def schedule_spec(flow) -> "dict | None":
    """{"cron": five-field cron, "timezone": IANA name} for the flow's @schedule, or None.

    Reads the decorator's attributes rather than `deco.schedule` so the shortcuts map to plain
    five-field crons (weekly = Sundays at midnight). A @schedule whose flags are all false
    (e.g. `@schedule(daily=False)`) means no schedule, as on Argo Workflows.
    """
    decos = flow._flow_decorators.get("schedule")
    if not decos:
        return None
    attributes = decos[0].attributes
    cron = _cron_from_attributes(attributes)
    if cron is None:
        return None
    timezone = attributes.get("timezone") or DEFAULT_TIMEZONE
    _check_timezone(timezone)
    return {"cron": cron, "timezone": timezone}


def _cron_from_attributes(attributes: dict) -> "str | None":
    if attributes.get("cron"):
        return aws_cron_to_dagster(attributes["cron"])
    for flag, cron in SHORTCUT_CRONS:
        if attributes.get(flag):
            return cron
    return None


def _check_timezone(timezone: str) -> None:
    """Fail at compile time, not when Dagster loads the definitions file."""
    if timezone == DEFAULT_TIMEZONE:
        return
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleNotSupported(
            "@schedule timezone %r is not supported: it is not an IANA timezone name "
            "(e.g. 'Europe/Berlin', 'America/Los_Angeles')." % timezone
        ) from e


def aws_cron_to_dagster(expr: str) -> str:
    """Convert an EventBridge six-field cron to a Dagster five-field cron.

    A five-field cron is taken to be standard cron already and is returned unchanged (after
    checking Dagster accepts it). Raises ScheduleNotSupported for anything else.
    """
    fields = expr.split()
    if len(fields) == 5:
        cron = " ".join(fields)
        _require_valid(cron, expr)
        return cron
    if len(fields) != 6:
        raise _unsupported(expr, "it has %d fields; expected 6 (EventBridge) or 5" % len(fields))
    minute, hour, dom, month, dow, year = fields
    if year != "*":
        raise _unsupported(expr, "Dagster schedules cannot restrict the year (%r)" % year)
    cron = " ".join([minute, hour, _convert_dom(dom, expr), month, _convert_dow(dow, expr)])
    _require_valid(cron, expr)
    return cron


def _convert_dom(dom: str, expr: str) -> str:
    """`?` means "no constraint"; a lone `L` (last day of month) croniter reads alike."""
    if dom == "?":
        return "*"
    upper = dom.upper()
    if "W" in upper:
        raise _unsupported(expr, "Dagster's cron has no 'W' (nearest weekday)")
    if "L" in upper and upper != "L":
        raise _unsupported(expr, "Dagster's cron supports 'L' only alone in day-of-month")
    return dom


def _convert_dow(dow: str, expr: str) -> str:
    if dow in ("?", "*"):
        return "*"
    return ",".join(_convert_dow_item(item, expr) for item in dow.split(","))


def _convert_dow_item(item: str, expr: str) -> str:
    """One list element of an EventBridge day-of-week field, in croniter's syntax."""
    upper = item.upper()
    if "/" in upper:
        raise _unsupported(expr, "a step ('/') in day-of-week has no defined meaning")
    if upper == "L":
        raise _unsupported(expr, "a lone 'L' in day-of-week (last day of the week) is ambiguous")
    if "#" in upper:
        day, nth = upper.split("#", 1)
        return "%s#%s" % (_convert_day(day, expr), nth)
    if upper.endswith("L"):
        # EventBridge "5L" (last Thursday) is croniter's "L4".
        return "L" + _convert_day(upper[:-1], expr)
    if "-" in upper:
        first, last = upper.split("-", 1)
        return "%s-%s" % (_convert_day(first, expr), _convert_day(last, expr))
    return _convert_day(upper, expr)


def _convert_day(token: str, expr: str) -> str:
    """EventBridge weekday 1-7 (1 = SUN) -> cron 0-6 (0 = SUN); names pass through."""
    if token in DAY_NAMES:
        return token
    if token.isdigit() and 1 <= int(token) <= 7:
        return str(int(token) - 1)
    raise _unsupported(expr, "%r is not a day of week (1-7 or SUN-SAT)" % token)


def _require_valid(cron: str, expr: str) -> None:
    """Dagster's own rule (dagster._utils.schedules.is_valid_cron_string), with the
    croniter it vendors: importing dagster would be most of the compile time."""
    if not _is_valid_for_dagster(cron):
        raise _unsupported(expr, "Dagster does not accept the converted cron %r" % cron)


def _is_valid_for_dagster(cron: str) -> bool:
    from croniter import croniter

    if not croniter.is_valid(cron):
        return False
    fields = croniter.expand(cron)[0]
    if len(fields) != 5:  # Dagster has no seconds or years
        return False
    _, _, days, months, _ = fields
    return not (months == [2] and len(days) == 1 and days[0] in (30, 31))


def _unsupported(expr: str, reason: str) -> ScheduleNotSupported:
    return ScheduleNotSupported(
        "@schedule cron %r is not supported on Dagster: %s. %s" % (expr, reason, _REWRITE_HINT)
    )
