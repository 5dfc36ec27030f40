"""The local EventBridge Scheduler: when schedules fire (AWS's expression rules), and firing them from moto's API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sfn_mlops_local.local.scheduler import (
    LocalScheduler,
    ScheduleExpressionError,
    next_fire,
    provision_queues,
    provision_schedules,
    sqs_dead_letter,
)
from sfn_mlops_local.local.template import load_template
from tests.conftest import ROOT, wait_until

RETRAIN = "sfn-mlops-local-retrain"
ROLE = "arn:aws:iam::123456789012:role/scheduler"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:target"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:scheduler-dlq"
ALL_CONTEXT = json.dumps(
    {
        "arn": "<aws.scheduler.schedule-arn>",
        "time": "<aws.scheduler.scheduled-time>",
        "execution": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
    }
)


def retrain_template() -> Any:
    """The real template plus a retrain schedule declared in it (pipelines' own schedules are made by mlops
    publish; a template may still declare schedules of its own, which the service provisions)."""
    template = load_template(ROOT)
    template.raw["Resources"]["RetrainSchedule"] = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "Name": RETRAIN,
            "ScheduleExpression": "rate(7 days)",
            "State": "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": {"Fn::GetAtt": ["TriggerFunction", "Arn"]},
                "RoleArn": {"Fn::GetAtt": ["BatchScheduleRole", "Arn"]},
                "Input": json.dumps(
                    {"trigger": "schedule", "pipeline": "abalone", "time": "<aws.scheduler.scheduled-time>"}
                ),
                "RetryPolicy": {"MaximumRetryAttempts": 3},
                "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}},
            },
        },
    }
    return template


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def fires(expression: str, after: datetime, count: int, **options: Any) -> list[datetime]:
    """The next ``count`` fire times, each found from the one before."""
    found: list[datetime] = []
    while len(found) < count:
        moment = next_fire(expression, found[-1] if found else after, **options)
        assert moment is not None, f"{expression} stopped after {found}"
        found.append(moment)
    return found


# ------------------------------------------------------------------ rate
def test_rate_fires_every_period_counted_from_its_start_date() -> None:
    # Given a rate schedule that starts at 10:07
    start = utc(2026, 11, 29, 10, 7)
    # When it is asked for its fires from before the start, then from mid-period
    # Then the first is the start itself and the rest follow every 5 minutes from it
    assert fires("rate(5 minutes)", utc(2026, 11, 29, 9), 3, start=start) == [
        start,
        start + timedelta(minutes=5),
        start + timedelta(minutes=10),
    ]
    assert next_fire("rate(5 minutes)", utc(2026, 11, 29, 10, 13), start=start) == utc(2026, 11, 29, 10, 17)


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(15 minutes)", timedelta(minutes=15)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(2 hours)", timedelta(hours=2)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(7 days)", timedelta(days=7)),
    ],
)
def test_rate_accepts_every_unit_aws_names(expression: str, period: timedelta) -> None:
    # Given an anchor, When asked for the next fire just after it, Then it is one period later
    anchor = utc(2026, 11, 29, 21)
    assert next_fire(expression, anchor, anchor=anchor) == anchor + period


def test_rate_without_start_date_counts_from_the_minute_it_was_anchored() -> None:
    # Given no StartDate and no anchor, When asked mid-minute, Then the count starts on that minute boundary
    assert next_fire("rate(1 minute)", utc(2026, 11, 29, 20, 59, 30)) == utc(2026, 11, 29, 21)


# ------------------------------------------------------------------ cron
def test_cron_on_weekdays_skips_the_weekend() -> None:
    # Given Friday 2026-11-27 after 18:00, When the next three weekday 18:00 fires are found
    # Then Saturday and Sunday are skipped
    assert fires("cron(0 18 ? * MON-FRI *)", utc(2026, 11, 27, 19), 3) == [
        utc(2026, 11, 30, 18),
        utc(2026, 12, 1, 18),
        utc(2026, 12, 2, 18),
    ]


def test_cron_steps_over_an_hour_range_then_continue_the_next_day() -> None:
    # Given every 15 minutes from 8:00 to 9:45, When fires are found from 9:40
    # Then 9:45 is the last of the day and 8:00 the next morning follows
    assert fires("cron(0/15 8-9 * * ? *)", utc(2026, 11, 29, 9, 40), 3) == [
        utc(2026, 11, 29, 9, 45),
        utc(2026, 11, 30, 8, 0),
        utc(2026, 11, 30, 8, 15),
    ]


def test_cron_step_from_an_offset_starts_at_the_offset() -> None:
    # Given "1/10" minutes (AWS's example: the 11th, 21st, 31st ... minute), When fires are found from :00
    assert fires("cron(1/10 * * * ? *)", utc(2026, 11, 29, 10), 3) == [
        utc(2026, 11, 29, 10, 1),
        utc(2026, 11, 29, 10, 11),
        utc(2026, 11, 29, 10, 21),
    ]


def test_cron_lists_and_names_of_months_and_weekdays() -> None:
    # Given noon on Sundays of January and July only, When fires are found from the end of January 2027
    # Then February to June are skipped
    assert fires("cron(0 12 ? JAN,JUL SUN *)", utc(2027, 1, 30), 2) == [utc(2027, 1, 31, 12), utc(2027, 7, 4, 12)]


def test_cron_day_of_month_with_any_weekday() -> None:
    # Given 8:00 on the first of the month ("?" for day-of-week), Then each first of the month fires
    assert fires("cron(0 8 1 * ? *)", utc(2026, 11, 29), 2) == [utc(2026, 12, 1, 8), utc(2027, 1, 1, 8)]


def test_cron_year_field_limits_the_years_it_fires_in() -> None:
    # Given midnight on New Year's Day of 2030 and 2040 only
    # Then the years in between are skipped, and after the last year it never fires again
    assert fires("cron(0 0 1 1 ? 2030,2040)", utc(2026, 11, 29), 2) == [utc(2030, 1, 1), utc(2040, 1, 1)]
    assert next_fire("cron(0 0 1 1 ? 2030,2040)", utc(2040, 1, 1)) is None
    assert next_fire("cron(0 0 30 2 ? *)", utc(2026, 11, 29)) is None  # a date that never exists


@pytest.mark.parametrize(
    ("day_of_month", "day_of_week", "after", "expected"),
    [
        ("L", "?", utc(2027, 2, 1), utc(2027, 2, 28, 10)),  # last day of February
        ("LW", "?", utc(2027, 1, 1), utc(2027, 1, 29, 10)),  # Jan 31 2027 is a Sunday: Friday the 29th
        ("15W", "?", utc(2027, 5, 1), utc(2027, 5, 14, 10)),  # May 15 2027 is a Saturday: Friday the 14th
        ("1W", "?", utc(2027, 4, 15), utc(2027, 5, 3, 10)),  # May 1 2027 is a Saturday: Monday the 3rd
        ("?", "6#3", utc(2026, 12, 1), utc(2026, 12, 18, 10)),  # third Friday of December 2026
        ("?", "6L", utc(2026, 12, 1), utc(2026, 12, 25, 10)),  # last Friday of December 2026
        ("?", "L", utc(2026, 12, 1), utc(2026, 12, 5, 10)),  # last day of the week: Saturday
    ],
)
def test_cron_last_nearest_weekday_and_nth_weekday(
    day_of_month: str, day_of_week: str, after: datetime, expected: datetime
) -> None:
    assert next_fire(f"cron(0 10 {day_of_month} * {day_of_week} *)", after) == expected


# ------------------------------------------------------------------ at, time zones, dates
def test_at_fires_once_at_its_wall_time_in_its_time_zone_ignoring_start_and_end() -> None:
    # Given a one-time schedule at 22:00 Paris time (21:00 UTC in winter), with dates AWS ignores for at()
    expression, zone = "at(2026-11-29T22:00:00)", "Europe/Paris"
    start, end = utc(2027, 1, 1), utc(2026, 1, 1)
    # Then it fires at that moment, and never after it
    assert next_fire(expression, utc(2026, 11, 29, 12), timezone=zone, start=start, end=end) == utc(2026, 11, 29, 21)
    assert next_fire(expression, utc(2026, 11, 29, 21), timezone=zone) is None


def test_cron_in_a_time_zone_follows_daylight_saving() -> None:
    # Given 9:00 New York time every day, Then it is 14:00 UTC in winter and 13:00 UTC in summer
    expression, zone = "cron(0 9 * * ? *)", "America/New_York"
    assert next_fire(expression, utc(2027, 1, 10), timezone=zone) == utc(2027, 1, 10, 14)
    assert next_fire(expression, utc(2027, 7, 10), timezone=zone) == utc(2027, 7, 10, 13)


def test_a_time_skipped_by_daylight_saving_does_not_fire_and_a_repeated_one_fires_once() -> None:
    zone = "America/New_York"
    # Given 2:30 daily: on 2027-03-14 clocks jump from 2:00 to 3:00, so that day has no 2:30
    assert next_fire("cron(30 2 * * ? *)", utc(2027, 3, 13, 12), timezone=zone) == utc(2027, 3, 15, 6, 30)
    # Given 1:30 daily: on 2027-11-07 clocks go back, 1:30 happens twice, the schedule runs at the first only
    assert fires("cron(30 1 * * ? *)", utc(2027, 11, 7), 2, timezone=zone) == [
        utc(2027, 11, 7, 5, 30),
        utc(2027, 11, 8, 6, 30),
    ]


def test_start_and_end_dates_bound_a_recurring_schedule() -> None:
    # Given an hourly cron that may run from 10:30 and must stop before 13:00
    start, end = utc(2026, 11, 29, 10, 30), utc(2026, 11, 29, 13)
    # Then the first fire is the first after the start, and none is at or after the end
    assert fires("cron(0 * * * ? *)", utc(2026, 11, 29, 8), 2, start=start, end=end) == [
        utc(2026, 11, 29, 11),
        utc(2026, 11, 29, 12),
    ]
    assert next_fire("cron(0 * * * ? *)", utc(2026, 11, 29, 12), start=start, end=end) is None


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 18 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 18 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 18 * * ?)", "cron needs 6 fields"),
        ("cron(61 * * * ? *)", "minutes '61'"),
        ("cron(0 0 ? * 0 *)", "day-of-week '0'"),
        ("cron(0 0 ? * MON-FRI#2 *)", "# takes one weekday"),
        ("cron(0 0 ? JANUARY * *)", "month 'JANUARY'"),
        ("cron(0 0 * * ? 2200)", "year '2200'"),
        ("rate(0 minutes)", "positive"),
        ("rate(2 weeks)", "expected rate("),
        ("at(2026-13-01T00:00:00)", "month must be in 1..12"),
        ("every day", "expected rate("),
    ],
)
def test_a_refused_expression_gives_a_one_line_error_naming_it(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleExpressionError) as refused:
        next_fire(expression, utc(2026, 11, 29))
    assert str(refused.value).startswith(expression)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ScheduleExpressionError, match="Mars/Olympus: not an IANA time zone"):
        next_fire("cron(0 9 * * ? *)", utc(2026, 11, 29), timezone="Mars/Olympus")


# ------------------------------------------------------------------ with moto's Scheduler API
class FakeClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


class Target:
    """A deliver callable that records what it got and fails its first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[dict[str, Any], str]] = []
        self._lock = threading.Lock()

    def __call__(self, target: dict[str, Any], payload: str) -> None:
        with self._lock:
            self.calls.append((target, payload))
            if len(self.calls) <= self.failures:
                raise RuntimeError("target unavailable")

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(payload) for _, payload in self.calls]


@pytest.fixture
def scheduler_api() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("scheduler")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 11, 29, 20, 59))


def local_scheduler(api: Any, deliver: Target, clock: FakeClock, **options: Any) -> LocalScheduler:
    return LocalScheduler(lambda: api, deliver, now=clock, poll_interval=0.01, retry_backoff=0, **options)


def settle(scheduler: LocalScheduler, clock: FakeClock, moment: datetime) -> None:
    """Move the clock, then wait until a whole poll has run at the new time."""
    clock.moment = moment
    seen = scheduler.polls
    wait_until(lambda: scheduler.polls >= seen + 2, timeout=10)


def create(api: Any, name: str, expression: str, **extra: Any) -> None:
    target = {"Arn": LAMBDA, "RoleArn": ROLE, "Input": ALL_CONTEXT, **extra.pop("target", {})}
    api.create_schedule(
        Name=name, ScheduleExpression=expression, FlexibleTimeWindow={"Mode": "OFF"}, Target=target, **extra
    )


def test_provisioning_creates_the_retrain_schedule_disabled_with_the_trigger_function_as_target(
    scheduler_api: Any,
) -> None:
    # Given a template that declares a retrain schedule
    template = retrain_template()
    # When its schedules are provisioned
    arns = provision_schedules(template, scheduler_api)
    # Then the retrain schedule exists, off, targeting the trigger function with the template's Input and retries
    assert arns == [f"arn:aws:scheduler:us-east-1:123456789012:schedule/default/{RETRAIN}"]
    schedule = scheduler_api.get_schedule(Name=RETRAIN)
    assert schedule["State"] == "DISABLED"
    assert schedule["ScheduleExpression"] == "rate(7 days)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == template.functions()["TriggerFunction"].arn
    assert json.loads(schedule["Target"]["Input"]) == {
        "trigger": "schedule",
        "pipeline": "abalone",
        "time": "<aws.scheduler.scheduled-time>",
    }
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 3
    # ... and with the template's dead-letter queue and the schedules' role (which may send to it)
    assert schedule["Target"]["DeadLetterConfig"]["Arn"] == template.physical["TriggerDeadLetterQueue"]["Arn"]
    assert schedule["Target"]["RoleArn"] == template.physical["BatchScheduleRole"]["Arn"]


def test_a_template_schedule_that_keeps_failing_leaves_its_event_in_the_templates_queue(
    scheduler_api: Any, clock: FakeClock
) -> None:
    # Given the template's queues and schedules provisioned, and a trigger that always fails
    template = retrain_template()
    sqs = boto3.client("sqs")
    urls = provision_queues(template, sqs)
    provision_schedules(template, scheduler_api)
    target = Target(failures=99)
    scheduler = local_scheduler(scheduler_api, target, clock, dead_letter=sqs_dead_letter(lambda: sqs))
    # When the retrain schedule fires
    outcome = scheduler.fire_now(RETRAIN)
    # Then after its retries the event is in the dead-letter queue, with the reason as attributes
    assert not outcome["Ok"] and len(target.calls) == 4
    (url,) = urls.values()
    (message,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"])["trigger"] == "schedule"
    assert message["MessageAttributes"]["RETRY_ATTEMPTS"]["StringValue"] == "3"
    assert "target unavailable" in message["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]


def test_provisioning_again_updates_in_place_and_keeps_a_state_chosen_locally(scheduler_api: Any) -> None:
    # Given provisioned schedules, one turned on through the API and its Input edited locally
    template = retrain_template()
    provision_schedules(template, scheduler_api)
    schedule = scheduler_api.get_schedule(Name=RETRAIN)
    scheduler_api.update_schedule(
        Name=RETRAIN,
        ScheduleExpression=schedule["ScheduleExpression"],
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={**schedule["Target"], "Input": "{}"},
        State="ENABLED",
    )
    # When the service restarts and provisions again
    provision_schedules(template, scheduler_api)
    # Then there is still one schedule, still ENABLED, and everything else is the template's again
    (only,) = scheduler_api.list_schedules()["Schedules"]
    assert only["Name"] == RETRAIN
    schedule = scheduler_api.get_schedule(Name=RETRAIN)
    assert schedule["State"] == "ENABLED"
    assert "<aws.scheduler.scheduled-time>" in schedule["Target"]["Input"]


def test_provisioning_also_creates_scheduler_schedule_resources_in_their_group(scheduler_api: Any) -> None:
    # Given a template that also declares an AWS::Scheduler::Schedule in its own group, targeting the flow
    template = load_template(ROOT)
    template.raw["Resources"]["NightlyRetrain"] = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "GroupName": "nightly",
            "ScheduleExpression": "cron(0 2 * * ? *)",
            "ScheduleExpressionTimezone": "Europe/Paris",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": {"Ref": "TrainingFlow"}, "RoleArn": ROLE, "Input": "{}"},
        },
    }
    # When its schedules are provisioned
    arns = provision_schedules(template, scheduler_api)
    # Then the group exists and the schedule targets the flow, ENABLED by default as in CloudFormation
    assert "arn:aws:scheduler:us-east-1:123456789012:schedule/nightly/sfn-mlops-local-NightlyRetrain" in arns
    schedule = scheduler_api.get_schedule(Name="sfn-mlops-local-NightlyRetrain", GroupName="nightly")
    assert schedule["Target"]["Arn"] == template.state_machines()["TrainingFlow"].arn
    assert (schedule["State"], schedule["ScheduleExpressionTimezone"]) == ("ENABLED", "Europe/Paris")


def test_the_retrain_schedule_enabled_every_minute_fires_once_per_minute_boundary(
    scheduler_api: Any, clock: FakeClock
) -> None:
    # Given the template's schedules and a running scheduler that has taken its first look
    template = retrain_template()
    provision_schedules(template, scheduler_api)
    target = Target()
    with local_scheduler(scheduler_api, target, clock) as scheduler:
        settle(scheduler, clock, utc(2026, 11, 29, 21))
        assert target.calls == []  # DISABLED: nothing fires
        # When the retrain schedule is turned on through the API as rate(1 minute) at 21:00
        schedule = scheduler_api.get_schedule(Name=RETRAIN)
        scheduler_api.update_schedule(
            Name=RETRAIN,
            ScheduleExpression="rate(1 minute)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=schedule["Target"],
            State="ENABLED",
        )
        # Then, like AWS, a rate schedule without StartDate fires at once, then on every minute boundary only
        for moment, expected in [
            (utc(2026, 11, 29, 21, 0, 0), 1),
            (utc(2026, 11, 29, 21, 0, 59), 1),
            (utc(2026, 11, 29, 21, 1, 0), 2),
            (utc(2026, 11, 29, 21, 1, 30), 2),
            (utc(2026, 11, 29, 21, 2, 0), 3),
        ]:
            settle(scheduler, clock, moment)
            assert len(target.calls) == expected, moment
    assert {sent["Arn"] for sent, _ in target.calls} == {template.functions()["TriggerFunction"].arn}
    assert [payload["time"] for payload in target.payloads()] == [
        "2026-11-29T21:00:00Z",
        "2026-11-29T21:01:00Z",
        "2026-11-29T21:02:00Z",
    ]
    assert [(fired.name, fired.ok) for fired in scheduler.fired] == [(RETRAIN, True)] * 3


def test_fire_now_delivers_a_disabled_schedule_with_the_scheduled_time_substituted(
    scheduler_api: Any, clock: FakeClock
) -> None:
    # Given the template's retrain schedule, which is DISABLED
    template = retrain_template()
    provision_schedules(template, scheduler_api)
    target = Target()
    clock.moment = utc(2026, 11, 29, 21, 0, 0, 250_000)
    # When it is fired by hand
    delivered = local_scheduler(scheduler_api, target, clock).fire_now(RETRAIN)
    # Then the trigger function gets the template's Input with the scheduled time in AWS's form
    ((sent_to, payload),) = target.calls
    assert sent_to["Arn"] == template.functions()["TriggerFunction"].arn
    assert json.loads(payload) == {"trigger": "schedule", "pipeline": "abalone", "time": "2026-11-29T21:00:00Z"}
    assert delivered["Input"] == payload
    assert delivered["Ok"] is True and delivered["Attempts"] == 1


def test_fire_now_substitutes_every_context_attribute(scheduler_api: Any, clock: FakeClock) -> None:
    # Given a schedule whose Input uses all four context attributes
    create(scheduler_api, "all-context", "cron(0 9 * * ? *)")
    target = Target()
    # When it is fired by hand
    delivered = local_scheduler(scheduler_api, target, clock).fire_now("all-context")
    # Then each keyword is replaced
    (payload,) = target.payloads()
    assert payload["arn"] == "arn:aws:scheduler:us-east-1:123456789012:schedule/default/all-context"
    assert payload["time"] == "2026-11-29T20:59:00Z"
    assert payload["attempt"] == "1"
    assert len(payload["execution"]) == 16 and "<" not in payload["execution"]
    assert delivered["ScheduleArn"] == payload["arn"]


def test_a_failing_delivery_is_retried_per_retry_policy_then_dead_lettered(
    scheduler_api: Any, clock: FakeClock
) -> None:
    # Given a target that always fails, two retries allowed and a dead-letter queue
    create(
        scheduler_api,
        "flaky",
        "rate(5 minutes)",
        target={"RetryPolicy": {"MaximumRetryAttempts": 2}, "DeadLetterConfig": {"Arn": QUEUE}},
    )
    target = Target(failures=99)
    dead_letters: list[tuple[str, str, dict[str, str]]] = []
    scheduler = local_scheduler(scheduler_api, target, clock, dead_letter=lambda *letter: dead_letters.append(letter))
    # When it fires
    delivered = scheduler.fire_now("flaky")
    # Then it was tried three times, each attempt numbered, and the last attempt went to the queue
    assert [payload["attempt"] for payload in target.payloads()] == ["1", "2", "3"]
    ((queue, body, attributes),) = dead_letters
    assert queue == QUEUE
    assert json.loads(body)["attempt"] == "3"
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["TARGET_ARN"] == LAMBDA
    assert delivered["Ok"] is False and "sent to" in delivered["Error"]
    assert scheduler.fired[-1].ok is False


def test_a_delivery_that_recovers_within_its_retries_succeeds_without_dead_letter(
    scheduler_api: Any, clock: FakeClock
) -> None:
    # Given a target failing twice and three retries allowed
    create(scheduler_api, "recovers", "rate(5 minutes)", target={"RetryPolicy": {"MaximumRetryAttempts": 3}})
    target = Target(failures=2)
    # When it fires, Then the third attempt succeeds
    delivered = local_scheduler(scheduler_api, target, clock).fire_now("recovers")
    assert delivered["Ok"] is True and delivered["Attempts"] == 3


def test_a_failing_target_without_dead_letter_queue_is_recorded_and_scheduling_goes_on(
    scheduler_api: Any, clock: FakeClock
) -> None:
    # Given a running scheduler and a target that always fails
    target = Target(failures=99)
    with local_scheduler(scheduler_api, target, clock) as scheduler:
        settle(scheduler, clock, utc(2026, 11, 29, 21))
        # When an every-minute schedule without retries is created and two minutes pass
        create(scheduler_api, "broken", "rate(1 minute)", target={"RetryPolicy": {"MaximumRetryAttempts": 0}})
        settle(scheduler, clock, utc(2026, 11, 29, 21, 0, 30))
        settle(scheduler, clock, utc(2026, 11, 29, 21, 1))
    # Then each fire is recorded as failed, and the thread kept firing
    assert [(fired.scheduled_time, fired.ok) for fired in scheduler.fired] == [
        (utc(2026, 11, 29, 21, 0), False),
        (utc(2026, 11, 29, 21, 1), False),
    ]
    assert scheduler.fired[0].error == "RuntimeError: target unavailable"
    # And each firing reads as a plain record (the service lists them with vars())
    assert vars(scheduler.fired[0])["ok"] is False


def test_a_fire_missed_while_the_service_was_down_is_not_replayed(scheduler_api: Any, clock: FakeClock) -> None:
    # Given an hourly schedule whose 21:00 fire passed while the service was down
    create(scheduler_api, "hourly", "cron(0 * * * ? *)")
    target = Target()
    clock.moment = utc(2026, 11, 29, 21, 30)
    # When the scheduler starts at 21:30
    with local_scheduler(scheduler_api, target, clock) as scheduler:
        settle(scheduler, clock, utc(2026, 11, 29, 21, 30))
        missed = len(target.calls)
        settle(scheduler, clock, utc(2026, 11, 29, 22))
    # Then 21:00 is not fired; the first fire is 22:00
    assert missed == 0
    assert [payload["time"] for payload in target.payloads()] == ["2026-11-29T22:00:00Z"]


def test_a_one_time_schedule_fires_once_and_is_deleted_when_it_asks_to_be(scheduler_api: Any, clock: FakeClock) -> None:
    # Given a running scheduler, then two at() schedules for 22:00 Paris time (21:00 UTC), one to delete after
    target = Target()
    with local_scheduler(scheduler_api, target, clock) as scheduler:
        settle(scheduler, clock, utc(2026, 11, 29, 20, 59))
        for name, after_completion in [("once", "NONE"), ("once-then-gone", "DELETE")]:
            create(
                scheduler_api,
                name,
                "at(2026-11-29T22:00:00)",
                ScheduleExpressionTimezone="Europe/Paris",
                ActionAfterCompletion=after_completion,
            )
        # When the time comes and goes
        settle(scheduler, clock, utc(2026, 11, 29, 21))
        settle(scheduler, clock, utc(2026, 11, 29, 21, 5))
    # Then each fired once, and only the one asking for it was deleted
    assert sorted(fired.name for fired in scheduler.fired) == ["once", "once-then-gone"]
    assert {fired.scheduled_time for fired in scheduler.fired} == {utc(2026, 11, 29, 21)}
    assert [s["Name"] for s in scheduler_api.list_schedules()["Schedules"]] == ["once"]


def test_stop_ends_the_thread(scheduler_api: Any, clock: FakeClock) -> None:
    scheduler = local_scheduler(scheduler_api, Target(), clock)
    scheduler.start()
    wait_until(lambda: scheduler.polls > 0, timeout=10)
    scheduler.stop()
    assert not any(thread.name == "local-scheduler" for thread in threading.enumerate())
