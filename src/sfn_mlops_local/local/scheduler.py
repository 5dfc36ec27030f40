"""EventBridge Scheduler, locally: schedules live in moto's Scheduler backend, a thread fires them as AWS would.

Provisioning rule: template.yaml owns every field of the schedules it declares except ``State``, which the
template sets only when a schedule is first created. A schedule turned on or off through the local endpoint
(``aws scheduler update-schedule --state ...``) keeps that state across restarts; anything else a user changed
locally is reset to the template on the next provisioning.

What is not reproduced: FlexibleTimeWindow (every fire is at its time, as with Mode OFF); MaximumEventAgeInSeconds;
retries beyond ``max_local_retries`` (AWS spreads up to 185 over a day, locally they are seconds apart); deleting
recurring schedules after their EndDate (ActionAfterCompletion DELETE is honoured for at() schedules only);
re-anchoring a rate schedule across restarts (after a restart it counts again from the minute it is first seen).
Missed fires are never replayed: after a pause only the latest due occurrence fires.
"""

from __future__ import annotations

import calendar
import functools
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sfn_mlops_local.local.template import ACCOUNT, PARTITION, ResolvedTemplate

logger = logging.getLogger(__name__)

Deliver = Callable[[dict[str, Any], str], None]
DeadLetter = Callable[[str, str, dict[str, str]], None]
"""(queue ARN, message body, message attributes): the service sends it to SQS."""

MAX_YEAR = 2199  # the last year a Scheduler cron expression can name


class ScheduleExpressionError(ValueError):
    """An expression AWS would refuse, or one this local scheduler does not implement; one line."""


# ------------------------------------------------------------------ expressions
@dataclass(frozen=True)
class Rate:
    period: timedelta


@dataclass(frozen=True)
class At:
    wall_time: datetime  # naive, read in the schedule's time zone


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: tuple[int, ...]
    matches_day: Callable[[date], bool]


Expression = Rate | At | Cron

_RATE = re.compile(r"rate\((\d+) (minutes?|hours?|days?)\)")
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_CRON = re.compile(r"cron\(([^()]*)\)")
_MONTHS = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


@functools.lru_cache(maxsize=256)
def parse_expression(expression: str) -> Expression:
    """rate(), cron() or at(), with AWS's rules; raises ScheduleExpressionError naming what is wrong."""
    text = expression.strip()
    if rate := _RATE.fullmatch(text):
        value = int(rate.group(1))
        if value < 1:
            raise ScheduleExpressionError(f"{expression}: the rate must be a positive number")
        return Rate(value * _UNITS[rate.group(2).rstrip("s")])
    if at := _AT.fullmatch(text):
        try:
            return At(datetime.fromisoformat(at.group(1)))
        except ValueError as error:
            raise ScheduleExpressionError(f"{expression}: {error}") from None
    if cron := _CRON.fullmatch(text):
        return _parse_cron(expression, cron.group(1).split())
    raise ScheduleExpressionError(
        f"{expression}: expected rate(value minute(s)|hour(s)|day(s)), cron(6 fields) or at(yyyy-mm-ddThh:mm:ss)"
    )


# No dependency in the environment parses AWS's 6-field cron (`?`, year, L/W/#), and none may be added:
# this small parser covers the documented syntax and is tested field by field.
def _parse_cron(expression: str, fields: list[str]) -> Cron:
    def fail(reason: str) -> ScheduleExpressionError:
        return ScheduleExpressionError(f"{expression}: {reason}")

    if len(fields) != 6:
        raise fail(f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise fail("exactly one of day-of-month and day-of-week must be '?'")

    def values(field: str, what: str, low: int, high: int, names: dict[str, int] | None = None) -> list[int]:
        def number(token: str) -> int:
            if names and token.upper() in names:
                return names[token.upper()]
            if not token.isdigit():
                raise fail(f"{what} '{field}': '{token}' is not a value")
            return int(token)

        result: set[int] = set()
        for part in field.split(","):
            body, slash, step_text = part.partition("/")
            step = number(step_text) if slash else 1
            if body == "*":
                first, last = low, high
            elif "-" in body:
                start_text, _, end_text = body.partition("-")
                first, last = number(start_text), number(end_text)
            else:
                first = number(body)
                last = high if slash else first  # "5/15": from 5 to the end of the field, every 15
            if not low <= first <= last <= high or step < 1:
                raise fail(f"{what} '{field}': values run from {low} to {high}, ranges low to high, steps of 1 or more")
            result.update(range(first, last + 1, step))
        return sorted(result)

    if day_of_week == "?":
        matches_day = _day_of_month_rule(day_of_month, lambda field: set(values(field, "day-of-month", 1, 31)), fail)
    else:
        matches_day = _day_of_week_rule(
            day_of_week, lambda field: set(values(field, "day-of-week", 1, 7, _WEEKDAYS)), fail
        )
    return Cron(
        minutes=tuple(values(minutes, "minutes", 0, 59)),
        hours=tuple(values(hours, "hours", 0, 23)),
        months=frozenset(values(month, "month", 1, 12, _MONTHS)),
        years=tuple(values(year, "year", 1970, MAX_YEAR)),
        matches_day=matches_day,
    )


def _aws_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7 + 1  # SUN=1 ... SAT=7


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _day_of_month_rule(
    field: str, values: Callable[[str], set[int]], fail: Callable[[str], Exception]
) -> Callable[[date], bool]:
    if field == "L":
        return lambda day: day.day == _last_day(day)
    if field == "LW":

        def last_weekday(day: date) -> bool:
            last = _last_day(day)
            shift = {7: 1, 1: 2}.get(_aws_weekday(day.replace(day=last)), 0)  # Saturday, Sunday → Friday
            return day.day == last - shift

        return last_weekday
    if nearest := re.fullmatch(r"(\d{1,2})W", field):
        wanted = int(nearest.group(1))
        if not 1 <= wanted <= 31:
            raise fail(f"day-of-month '{field}': W needs a day from 1 to 31")

        def nearest_weekday(day: date) -> bool:
            last = _last_day(day)
            if wanted > last:
                return False
            weekday = _aws_weekday(day.replace(day=wanted))
            target = wanted
            if weekday == 7:  # Saturday → Friday, or Monday when that would leave the month
                target = wanted + 2 if wanted == 1 else wanted - 1
            elif weekday == 1:  # Sunday → Monday, or Friday when that would leave the month
                target = wanted - 2 if wanted == last else wanted + 1
            return day.day == target

        return nearest_weekday
    if "L" in field.upper() or "W" in field.upper():
        raise fail(f"day-of-month '{field}': L and W stand alone (L, LW, or nW)")
    days = values(field)
    return lambda day: day.day in days


def _day_of_week_rule(
    field: str, values: Callable[[str], set[int]], fail: Callable[[str], Exception]
) -> Callable[[date], bool]:
    def weekday(token: str) -> int:
        numbers = values(token)
        if len(numbers) != 1:
            raise fail(f"day-of-week '{field}': L and # take a single weekday")
        return numbers.pop()

    if field.upper() == "L":
        return lambda day: _aws_weekday(day) == 7  # the last day of the week: Saturday
    if last := re.fullmatch(r"(\w+?)L", field, re.IGNORECASE):
        wanted = weekday(last.group(1))
        return lambda day: _aws_weekday(day) == wanted and day.day + 7 > _last_day(day)
    if "#" in field:
        nth = re.fullmatch(r"(\w+)#([1-5])", field)
        if not nth:
            raise fail(f"day-of-week '{field}': # takes one weekday and an instance 1-5, e.g. 3#2")
        wanted, instance = weekday(nth.group(1)), int(nth.group(2))
        return lambda day: _aws_weekday(day) == wanted and (day.day - 1) // 7 + 1 == instance
    days = values(field)
    return lambda day: _aws_weekday(day) in days


def time_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleExpressionError(f"{name}: not an IANA time zone") from None


def next_fire(
    expression: str,
    after: datetime,
    *,
    timezone: str | None = "UTC",
    start: datetime | None = None,
    end: datetime | None = None,
    anchor: datetime | None = None,
) -> datetime | None:
    """The first time (UTC) strictly after ``after`` the schedule fires, or None if it never fires again.

    A rate counts from ``start``, else from ``anchor`` (default: the minute of ``after``). StartDate and EndDate
    bound recurring schedules (start inclusive, end exclusive); at() ignores them, as AWS does.
    """
    parsed = parse_expression(expression)
    zone = time_zone(timezone)
    after = after.astimezone(UTC)
    if isinstance(parsed, At):
        when = _wall_to_utc(parsed.wall_time, zone)
        return when if when > after else None
    if start is not None and start.astimezone(UTC) > after:
        after = start.astimezone(UTC) - timedelta(microseconds=1)
    if isinstance(parsed, Rate):
        base = (start or anchor or _floor_minute(after)).astimezone(UTC)
        steps = 0 if after < base else (after - base) // parsed.period + 1
        when = base + steps * parsed.period
    else:
        found = _next_cron(parsed, after, zone)
        if found is None:
            return None
        when = found
    return None if end is not None and when >= end.astimezone(UTC) else when


def _next_cron(cron: Cron, after: datetime, zone: ZoneInfo) -> datetime | None:
    """Walk the wall clock of ``zone``: a time skipped by DST never fires, a repeated one fires once."""
    wall = _floor_minute(after.astimezone(zone).replace(tzinfo=None)) + timedelta(minutes=1)
    day, earliest = wall.date(), wall.time()
    while day.year <= MAX_YEAR:
        if day.year not in cron.years:
            later = [year for year in cron.years if year > day.year]
            if not later:
                return None
            day, earliest = date(later[0], 1, 1), time()
            continue
        if day.month not in cron.months:
            day, earliest = (day.replace(day=1) + timedelta(days=32)).replace(day=1), time()
            continue
        if cron.matches_day(day):
            for hour in cron.hours:
                for minute in cron.minutes:
                    if (hour, minute) < (earliest.hour, earliest.minute):
                        continue
                    candidate = datetime.combine(day, time(hour, minute))
                    if _exists(candidate, zone):
                        when = _wall_to_utc(candidate, zone)
                        if when > after:
                            return when
        day, earliest = day + timedelta(days=1), time()
    return None


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return _wall_to_utc(wall, zone).astimezone(zone).replace(tzinfo=None) == wall


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # fold=0: the first of a repeated hour


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def scheduled_time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ provisioning
def provision_schedules(template: ResolvedTemplate, scheduler_client: Any) -> list[str]:
    """Create or update the template's schedules (SAM ScheduleV2 events, AWS::Scheduler::Schedule); their ARNs."""
    arns = []
    for spec in _template_schedules(template):
        group = spec.get("GroupName") or "default"
        try:
            existing = scheduler_client.get_schedule(Name=spec["Name"], GroupName=group)
        except scheduler_client.exceptions.ResourceNotFoundException:
            existing = None
        if existing is None:
            _ensure_group(scheduler_client, group)
            response = scheduler_client.create_schedule(**spec)
        else:
            # The template's State applies only at creation: a state chosen locally survives restarts.
            spec = {**spec, "State": existing.get("State") or spec["State"]}
            response = scheduler_client.update_schedule(**spec)
        arns.append(response["ScheduleArn"])
    return arns


def _template_schedules(template: ResolvedTemplate) -> list[dict[str, Any]]:
    specs = []
    for function in template.functions().values():
        for event_id, event in function.events.items():
            if event.get("Type") != "ScheduleV2":
                continue
            props = event.get("Properties", {})
            target: dict[str, Any] = {
                "Arn": function.arn,
                # SAM creates this role; its ARN is only recorded locally.
                "RoleArn": props.get("RoleArn")
                or f"arn:{PARTITION}:iam::{ACCOUNT}:role/{template.stack_name}-{function.logical_id}{event_id}Role",
            }
            for key in ("Input", "RetryPolicy"):
                if key in props:
                    target[key] = props[key]
            if "Arn" in props.get("DeadLetterConfig", {}):  # a SAM-made queue (Type: SQS) has no local twin
                target["DeadLetterConfig"] = {"Arn": props["DeadLetterConfig"]["Arn"]}
            specs.append(
                _schedule_spec(props, target, default_name=f"{template.stack_name}-{function.logical_id}{event_id}")
            )
    for logical, resource in template.resources("AWS::Scheduler::Schedule").items():
        props = template.resolve(resource["Properties"])
        specs.append(_schedule_spec(props, props["Target"], default_name=f"{template.stack_name}-{logical}"))
    return specs


def _schedule_spec(props: dict[str, Any], target: dict[str, Any], default_name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Name": props.get("Name") or default_name,
        "ScheduleExpression": props["ScheduleExpression"],
        "FlexibleTimeWindow": props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
        "State": props.get("State", "ENABLED"),
        "Target": target,
    }
    optional = ("GroupName", "Description", "ScheduleExpressionTimezone", "StartDate", "EndDate", "KmsKeyArn")
    spec.update({key: props[key] for key in optional if props.get(key)})
    if "ActionAfterCompletion" in props:
        spec["ActionAfterCompletion"] = props["ActionAfterCompletion"]
    return spec


def provision_queues(template: ResolvedTemplate, sqs_client: Any) -> dict[str, str]:
    """Create the template's SQS queues (the dead-letter queues), so that a failed delivery is kept, as on AWS.

    Returns their URLs by ARN. Only the attributes the local service can honour are passed on."""
    urls = {}
    for logical, resource in template.resources("AWS::SQS::Queue").items():
        props = template.resolve(resource.get("Properties", {}))
        attributes = (
            {"MessageRetentionPeriod": str(props["MessageRetentionPeriod"])}
            if "MessageRetentionPeriod" in props
            else {}
        )
        physical = template.physical[logical]
        urls[physical["Arn"]] = sqs_client.create_queue(QueueName=physical["QueueName"], Attributes=attributes)[
            "QueueUrl"
        ]
    return urls


def sqs_dead_letter(client_factory: Callable[[], Any]) -> DeadLetter:
    """A ``dead_letter`` for LocalScheduler that sends to the queue named by its ARN in this account and Region."""

    def send(queue_arn: str, body: str, attributes: dict[str, str]) -> None:
        sqs = client_factory()
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
        )

    return send


def _ensure_group(scheduler_client: Any, group: str) -> None:
    try:
        scheduler_client.get_schedule_group(Name=group)
    except scheduler_client.exceptions.ResourceNotFoundException:
        scheduler_client.create_schedule_group(Name=group)


# ------------------------------------------------------------------ the scheduler
@dataclass(frozen=True)
class Fired:
    """One firing, as the service lists it (``vars()`` of it is its JSON)."""

    name: str
    scheduled_time: datetime
    ok: bool
    error: str | None


@dataclass
class _Tracked:
    signature: tuple[Any, ...]  # a change of expression, zone or dates starts the schedule afresh
    cursor: datetime  # occurrences after this one are still to fire
    anchor: datetime  # where a rate without StartDate counts from
    problem: str | None = None


class LocalScheduler:
    """Fires the ENABLED schedules found through the Scheduler API, about once a second, on a daemon thread."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        deliver: Deliver,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        dead_letter: DeadLetter | None = None,
        poll_interval: float = 1.0,
        retry_backoff: float = 0.2,
        max_local_retries: int = 10,
        history: int = 500,
    ) -> None:
        self._client_factory = client_factory
        self._deliver = deliver
        self._now = now
        self._dead_letter = dead_letter
        self._poll_interval = poll_interval
        self._retry_backoff = retry_backoff
        self._max_local_retries = max_local_retries
        self.fired: deque[Fired] = deque(maxlen=history)
        self.polls = 0  # completed passes; lets callers wait for "the scheduler has looked since"
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._last_poll: datetime | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LocalScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll()
            except Exception:  # the API unreachable for a moment must not end scheduling
                logger.exception("local scheduler: poll failed")
            self._stopping.wait(self._poll_interval)

    # -------------------------------------------------------------- firing
    def poll(self) -> None:
        """One pass: fire every ENABLED schedule whose next time has come."""
        now = self._now().astimezone(UTC)
        client = self._scheduler()
        enabled = set()
        for page in client.get_paginator("list_schedules").paginate(State="ENABLED"):
            for summary in page["Schedules"]:
                key = (summary.get("GroupName") or "default", summary["Name"])
                try:
                    schedule = client.get_schedule(Name=key[1], GroupName=key[0])
                except client.exceptions.ResourceNotFoundException:
                    continue  # deleted between the two calls
                if schedule.get("State") == "ENABLED":
                    enabled.add(key)
                    self._poll_schedule(key, schedule, now)
        for gone in set(self._tracked) - enabled:
            del self._tracked[gone]
        self._last_poll = now
        self.polls += 1

    def _poll_schedule(self, key: tuple[str, str], schedule: dict[str, Any], now: datetime) -> None:
        expression = schedule["ScheduleExpression"]
        start, end = schedule.get("StartDate"), schedule.get("EndDate")
        zone = schedule.get("ScheduleExpressionTimezone")
        tracked = self._tracked.get(key)
        if tracked is None or tracked.signature != (expression, zone, start, end):
            anchor = _floor_minute(now)
            # Seen at start: nothing missed while the service was down is replayed. Seen later: it was enabled
            # since the last look, so whatever fell due since then fires (a poll may lag its due time).
            cursor = now if self._last_poll is None else self._last_poll
            if self._last_poll is not None and expression.strip().startswith("rate(") and start is None:
                cursor = min(cursor, anchor - timedelta(microseconds=1))  # AWS fires a new rate schedule at once
            tracked = self._tracked[key] = _Tracked((expression, zone, start, end), cursor, anchor)
        try:
            due = self._latest_due(tracked, expression, zone, start, end, now)
        except ScheduleExpressionError as error:
            if tracked.problem != str(error):
                tracked.problem = str(error)
                logger.warning("local scheduler: schedule %s/%s never fires: %s", *key, error)
            return
        if due is None:
            return
        tracked.cursor = due
        self._fire(schedule, due)
        if isinstance(parse_expression(expression), At) and schedule.get("ActionAfterCompletion") == "DELETE":
            self._scheduler().delete_schedule(Name=key[1], GroupName=key[0])

    def _latest_due(
        self,
        tracked: _Tracked,
        expression: str,
        zone: str | None,
        start: datetime | None,
        end: datetime | None,
        now: datetime,
    ) -> datetime | None:
        def following(moment: datetime) -> datetime | None:
            return next_fire(expression, moment, timezone=zone, start=start, end=end, anchor=tracked.anchor)

        due = following(tracked.cursor)
        if due is None or due > now:
            return None
        # After a pause several may be due; like AWS after an outage, missed ones are not replayed.
        while (later := following(due)) is not None and later <= now:
            due = later
        return due

    def fire_now(self, name: str, group: str = "default") -> dict[str, Any]:
        """Fire one schedule now whatever its state; returns what was delivered and how it went."""
        schedule = self._scheduler().get_schedule(Name=name, GroupName=group)
        return self._fire(schedule, self._now().astimezone(UTC).replace(microsecond=0))

    def _fire(self, schedule: dict[str, Any], scheduled_time: datetime) -> dict[str, Any]:
        target = schedule["Target"]
        retries = min(int(target.get("RetryPolicy", {}).get("MaximumRetryAttempts", 185)), self._max_local_retries)
        error: str | None = None
        attempt, payload, execution_id = 0, "", ""
        for attempt in range(1, retries + 2):
            execution_id = uuid.uuid4().hex[:16]  # AWS gives every attempt its own execution id
            # Without an Input the target gets an empty JSON object locally.
            payload = _with_context(target.get("Input", "{}"), schedule["Arn"], scheduled_time, execution_id, attempt)
            try:
                self._deliver(target, payload)
                error = None
                break
            except Exception as failure:  # a failing target is retried, then dead-lettered, never fatal
                error = f"{type(failure).__name__}: {failure}"
                logger.warning("local scheduler: %s attempt %d failed: %s", schedule["Name"], attempt, error)
                if attempt <= retries:
                    self._stopping.wait(min(self._retry_backoff * 2 ** (attempt - 1), 2.0))
        if error is not None:
            error = self._dead_letter_failure(schedule, payload, error, execution_id, attempt - 1) or error
        self.fired.append(Fired(schedule["Name"], scheduled_time, error is None, error))
        return {
            "ScheduleArn": schedule["Arn"],
            "ScheduledTime": scheduled_time_text(scheduled_time),
            "Target": target,
            "Input": payload,
            "Attempts": attempt,
            "Ok": error is None,
            "Error": error,
        }

    def _dead_letter_failure(
        self, schedule: dict[str, Any], payload: str, error: str, execution_id: str, retries: int
    ) -> str | None:
        """Hand the failed event to the target's DLQ; returns a changed error text when that is not possible."""
        queue = schedule["Target"].get("DeadLetterConfig", {}).get("Arn")
        if not queue:
            return None
        if self._dead_letter is None:
            return f"{error} (dead-letter queue {queue} not reachable locally)"
        # Shaped after the attributes AWS adds to a Scheduler dead-letter message.
        attributes = {
            "ERROR_CODE": error.split(":", 1)[0],
            "ERROR_MESSAGE": error,
            "EXECUTION_ID": execution_id,
            "RETRY_ATTEMPTS": str(retries),
            "SCHEDULE_ARN": schedule["Arn"],
            "TARGET_ARN": schedule["Target"]["Arn"],
        }
        try:
            self._dead_letter(queue, payload, attributes)
        except Exception as failure:
            return f"{error} (dead-lettering to {queue} failed: {failure})"
        return f"{error} (sent to {queue})"

    def _scheduler(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client


def _with_context(template: str, schedule_arn: str, scheduled_time: datetime, execution_id: str, attempt: int) -> str:
    values = {
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": scheduled_time_text(scheduled_time),
        "<aws.scheduler.execution-id>": execution_id,
        "<aws.scheduler.attempt-number>": str(attempt),
    }
    for keyword, value in values.items():
        template = template.replace(keyword, value)
    return template
