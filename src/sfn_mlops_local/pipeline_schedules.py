"""A pipeline's EventBridge Scheduler schedules, kept in step with its ``pipeline.json`` by ``mlops publish``.

Each pipeline has two: ``<stack>-<pipeline>-retrain`` (``schedule``: retrain on the newest data) and
``<stack>-<pipeline>-batch`` (``batch.schedule``: score the newest object under ``batch/<pipeline>/incoming/``).
The template names no pipeline: it provides what the schedules invoke (the trigger), the role they run as and
the queue they dead-letter to; publishing creates or updates the schedules, disabled unless the config enables
them.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sfn_mlops.pipeline import PipelineConfig, ScheduleSpec

    from sfn_mlops_local.operations import Target

Kind = Literal["retrain", "batch"]
# EventBridge Scheduler: names of 1-64 characters from [0-9a-zA-Z-_.].
MAX_NAME = 64
# What each schedule's event asks the trigger for, and what it does.
TRIGGERS: dict[Kind, tuple[str, str]] = {
    "retrain": ("schedule", "Retrains {pipeline} on the newest object under data/{pipeline}/ (pipeline.json schedule)"),
    "batch": (
        "batch-schedule",
        "Scores the newest object under batch/{pipeline}/incoming/ (pipeline.json batch.schedule)",
    ),
}


def schedule_name(stack: str, pipeline: str, kind: Kind) -> str:
    """``<stack>-<pipeline>-<kind>``: Scheduler names are unique per account and Region, as stacks are. A name
    over 64 characters keeps a readable front and a hash of the whole, so two pipelines never share one."""
    name = f"{stack}-{pipeline}-{kind}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - len(digest) - 1]}-{digest}"


def _schedule(target: Target, config: PipelineConfig, kind: Kind, spec: ScheduleSpec) -> dict[str, Any]:
    trigger, description = TRIGGERS[kind]
    wiring = target.batch_schedule
    return {
        "Name": schedule_name(target.stack_name, config.name, kind),
        "ScheduleExpression": spec.expression,
        "State": "ENABLED" if spec.enabled else "DISABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Description": description.format(pipeline=config.name),
        "Target": {
            "Arn": wiring["target_arn"],
            "RoleArn": wiring["role_arn"],
            # The scheduled time makes retries of one scheduled invocation one run (the trigger's dedup key).
            "Input": json.dumps(
                {"trigger": trigger, "pipeline": config.name, "time": "<aws.scheduler.scheduled-time>"}
            ),
            "RetryPolicy": {"MaximumRetryAttempts": 3},
            **({"DeadLetterConfig": {"Arn": wiring["dead_letter_arn"]}} if wiring.get("dead_letter_arn") else {}),
        },
    }


def put_pipeline_schedules(target: Target, config: PipelineConfig) -> list[dict[str, Any]]:
    """Create or update the pipeline's retrain and batch schedules from its config; the requests sent."""
    scheduler = target.client("scheduler")
    sent = []
    for kind, spec in (("retrain", config.schedule), ("batch", config.batch.schedule)):
        schedule = _schedule(target, config, kind, spec)  # type: ignore[arg-type]
        try:
            scheduler.get_schedule(Name=schedule["Name"])
        except scheduler.exceptions.ResourceNotFoundException:
            scheduler.create_schedule(**schedule)
        else:
            scheduler.update_schedule(**schedule)
        sent.append(schedule)
    return sent
