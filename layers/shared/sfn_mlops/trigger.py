"""Turn a trigger (S3 upload via EventBridge, or a schedule) into exactly one job flow execution."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models.s3 import S3EventNotificationObjectModel
from pydantic import BaseModel, ConfigDict, Field

from sfn_mlops.errors import InvalidEvent
from sfn_mlops.events import one_line, parse_event
from sfn_mlops.metadata import MetadataTable, deserialize, now_iso, serialize
from sfn_mlops.naming import PIPELINE_NAME_PATTERN, make_run_id
from sfn_mlops.settings import Settings

# Dedup records outlive EventBridge's retries (24 h at most) by far; TTL then removes them.
DEDUP_TTL_S = 30 * 24 * 3600

# The key policy for uploads that start runs (docs/decisions/0018): at most this many bytes (UTF-8), no "." or
# ".." segment, no empty segment, no "#" (our dedup and lineage keys use it as a separator), no control
# character; only S3's "safe" characters (letters, digits, ! - _ . * ' ( ) and /) plus = + , @ ~ and space.
MAX_KEY_BYTES = 512
KEY_CHARACTERS = re.compile(r"[A-Za-z0-9!\-_.*'()/=+,@~ ]")
S3_SOURCE = "aws.s3"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class S3Bucket(_Lenient):
    name: str = Field(min_length=1, max_length=255)


class S3Object(S3EventNotificationObjectModel):
    """Powertools' model of the object in S3's EventBridge event (key, size, etag, version-id, sequencer)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    sequencer: str = ""


class S3Detail(_Lenient):
    bucket: S3Bucket
    object: S3Object


class ObjectCreatedEvent(_Lenient):
    """S3's "Object Created" event on EventBridge: only the fields the trigger uses are required."""

    source: str
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    id: str = ""
    time: str | None = None
    detail: S3Detail


class ScheduledEvent(_Lenient):
    """What the pipeline's EventBridge Scheduler schedules send (a retrain, or a batch)."""

    trigger: Literal["schedule", "batch-schedule"]
    pipeline: str = Field(max_length=256)
    time: str | None = Field(default=None, max_length=64)


class ApprovalDetail(_Lenient):
    ModelPackageGroupName: str = Field(default="", max_length=256)
    ModelPackageArn: str = Field(default="", max_length=2048)
    ModelApprovalStatus: str | None = None
    ModelPackageVersion: int | str | None = None


class ApprovalEvent(_Lenient):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    id: str = ""
    time: str | None = None
    detail: ApprovalDetail


def key_problem(key: str) -> str | None:
    """Why an uploaded object's key cannot start a run (None: it can)."""
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        return f"the key is {size} bytes long (at most {MAX_KEY_BYTES})"
    control = next((c for c in key if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if control is not None:
        return f"the key has a control character ({control!r})"
    if "#" in key:
        return "the key has a '#'"
    segments = key.split("/")
    if any(s in (".", "..") for s in segments):
        return "the key has a '.' or '..' segment"
    if any(not s for s in segments):
        return "the key has an empty segment ('//' or a trailing '/')"
    bad = sorted({c for c in key if not KEY_CHARACTERS.fullmatch(c)})
    if bad:
        return f"the key has characters outside the accepted set: {''.join(bad)!r}"
    if key != key.strip():
        return "the key starts or ends with a space"
    return None


def refuse_upload(settings: Settings, event: ObjectCreatedEvent) -> str | None:
    """The trigger policy for uploads: from S3, in the artifact bucket, with an acceptable key."""
    bucket, key = event.detail.bucket.name, event.detail.object.key
    where = one_line(f"s3://{bucket}/{key}", 300)
    if event.source != S3_SOURCE:
        return f"an Object Created event from {one_line(event.source, 80)!r}, not {S3_SOURCE}: ignored ({where})"
    if bucket != settings.artifact_bucket:
        return f"{where} is not in the artifact bucket {settings.artifact_bucket}"
    problem = key_problem(key)
    return f"{where} cannot start a run: {problem}" if problem else None


class TriggerDecision(BaseModel):
    started: bool
    reason: str
    pipeline: str | None = None
    run_id: str | None = None
    execution_arn: str | None = None
    duplicate: bool = False


def pipeline_for_key(settings: Settings, key: str) -> str | None:
    """data/<pipeline>/<file>: the folder right under the data prefix names the pipeline."""
    if not key.startswith(settings.data_prefix):
        return None
    parts = key[len(settings.data_prefix) :].split("/")
    if len(parts) < 2 or not parts[-1] or not PIPELINE_NAME_PATTERN.match(parts[0]):
        return None
    return parts[0]


def pipeline_exists(s3: Any, settings: Settings, pipeline: str) -> bool:
    try:
        s3.head_object(Bucket=settings.artifact_bucket, Key=f"{settings.pipelines_prefix}{pipeline}/pipeline.json")
    except s3.exceptions.ClientError:
        return False
    return True


def _event_time(event: dict[str, Any]) -> datetime:
    raw = event.get("time")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def claim_trigger(table: MetadataTable, trigger_key: str, run_id: str, pipeline: str) -> str | None:
    """Record that this trigger was handled; returns the run id of an earlier claim if there was one."""
    item = {
        "PK": f"TRIGGER#{trigger_key}",
        "SK": "TRIGGER",
        "run_id": run_id,
        "pipeline": pipeline,
        "created_at": now_iso(),
        "expires_at": int(time.time()) + DEDUP_TTL_S,
    }
    try:
        table.client.put_item(
            TableName=table.table_name,
            Item=serialize(item),
            ConditionExpression="attribute_not_exists(PK)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except table.client.exceptions.ConditionalCheckFailedException as exc:
        old = exc.response.get("Item") or table.client.get_item(
            TableName=table.table_name, Key=serialize({"PK": item["PK"], "SK": "TRIGGER"}), ConsistentRead=True
        ).get("Item", {})
        return str(deserialize(old).get("run_id") or "(unknown run)")
    return None


def release_trigger(table: MetadataTable, trigger_key: str) -> None:
    table.client.delete_item(
        TableName=table.table_name, Key=serialize({"PK": f"TRIGGER#{trigger_key}", "SK": "TRIGGER"})
    )


def _execution_exists(sfn: Any, flow_arn: str, run_id: str) -> bool:
    execution_arn = f"{flow_arn.replace(':stateMachine:', ':execution:', 1)}:{run_id}"
    try:
        sfn.describe_execution(executionArn=execution_arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def start_run(
    sfn: Any,
    table: MetadataTable,
    settings: Settings,
    trigger_key: str,
    pipeline: str,
    run_id: str,
    dataset: dict[str, Any],
    flow_arn: str | None = None,
    run_input: dict[str, Any] | None = None,
) -> TriggerDecision:
    """Start the flow (the training flow unless ``flow_arn`` says otherwise) once per trigger: a dedup record
    in the table, then the run id as execution name.

    A delivery that finds the record but no execution takes over: the delivery that claimed it crashed or
    timed out before starting the run. Starting is idempotent (the execution name is the run id)."""
    flow_arn = flow_arn or settings.training_flow_arn
    earlier = claim_trigger(table, trigger_key, run_id, pipeline)
    taking_over = earlier is not None and not _execution_exists(sfn, flow_arn, earlier)
    if earlier is not None and not taking_over:
        return TriggerDecision(
            started=False,
            duplicate=True,
            reason=f"duplicate delivery of {trigger_key}: run {earlier} was started for it",
            pipeline=pipeline,
            run_id=earlier,
        )
    run_id = earlier or run_id
    run_input = {**(run_input or {"pipeline": pipeline, "dataset": dataset}), "run_id": run_id}
    try:
        response = sfn.start_execution(stateMachineArn=flow_arn, name=run_id, input=json.dumps(run_input))
    except sfn.exceptions.ExecutionAlreadyExists:
        return TriggerDecision(
            started=False, duplicate=True, reason="already started", pipeline=pipeline, run_id=run_id
        )
    except Exception:
        release_trigger(table, trigger_key)  # so that Lambda's retry (or a redelivery from the DLQ) starts it
        raise
    return TriggerDecision(
        started=True,
        reason="started (an earlier delivery claimed it but did not start it)" if taking_over else "started",
        pipeline=pipeline,
        run_id=run_id,
        execution_arn=response["executionArn"],
    )


def handle_s3_event(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]
) -> TriggerDecision:
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name", "")
    obj = detail.get("object") or {}
    key = str(obj.get("key", ""))
    pipeline = pipeline_for_key(settings, key)
    if pipeline is None:
        return TriggerDecision(
            started=False, reason=f"s3://{bucket}/{key} is not under {settings.data_prefix}<pipeline>/"
        )
    if not pipeline_exists(s3, settings, pipeline):
        return TriggerDecision(
            started=False, pipeline=pipeline, reason=f"unknown pipeline {pipeline!r} for s3://{bucket}/{key}"
        )
    version = obj.get("version-id") or obj.get("etag") or ""
    identity = f"{bucket}/{key}#{version}#{obj.get('sequencer', '')}"
    run_id = make_run_id(pipeline, _event_time(event), identity)
    dataset = {"bucket": bucket, "key": key, "version_id": obj.get("version-id")}
    return start_run(sfn, table, settings, f"s3://{bucket}/{key}#{version}", pipeline, run_id, dataset)


def latest_dataset(s3: Any, settings: Settings, pipeline: str) -> dict[str, Any] | None:
    """The newest object under the pipeline's data prefix: what a scheduled retrain trains on."""
    return newest_object(s3, settings.artifact_bucket, f"{settings.data_prefix}{pipeline}/")


def newest_object(s3: Any, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The most recently modified object under ``prefix`` (folder markers aside), or None."""
    newest: dict[str, Any] | None = None
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/") and (newest is None or obj["LastModified"] > newest["LastModified"]):
                newest = obj
    return newest


def handle_schedule(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]
) -> TriggerDecision:
    pipeline = str(event.get("pipeline", ""))
    if not PIPELINE_NAME_PATTERN.match(pipeline) or not pipeline_exists(s3, settings, pipeline):
        return TriggerDecision(started=False, reason=f"unknown pipeline {pipeline!r} in scheduled retrain")
    newest = latest_dataset(s3, settings, pipeline)
    if newest is None:
        return TriggerDecision(
            started=False,
            pipeline=pipeline,
            reason=f"no dataset under s3://{settings.artifact_bucket}/{settings.data_prefix}{pipeline}/",
        )
    identity = f"{settings.artifact_bucket}/{newest['Key']}#{newest.get('ETag', '')}#schedule"
    run_id = make_run_id(pipeline, _event_time(event), identity)
    dataset = {"bucket": settings.artifact_bucket, "key": newest["Key"], "version_id": None}
    trigger_key = f"schedule#{pipeline}#{event.get('time') or run_id}"
    return start_run(sfn, table, settings, trigger_key, pipeline, run_id, dataset)


def handle_batch_upload(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]
) -> TriggerDecision:
    """An object under batch/<pipeline>/incoming/: score it, once per object version (like a dataset upload)."""
    from sfn_mlops.batch import incoming_prefix, new_batch_id, pipeline_for_batch_key

    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name", "")
    obj = detail.get("object") or {}
    key = str(obj.get("key", ""))
    pipeline = pipeline_for_batch_key(key)
    if pipeline is None:  # e.g. what a batch wrote under batch/<pipeline>/<run id>/
        return TriggerDecision(started=False, reason=f"s3://{bucket}/{key} is not under batch/<pipeline>/incoming/")
    if bucket != settings.artifact_bucket or not pipeline_exists(s3, settings, pipeline):
        return TriggerDecision(
            started=False, pipeline=pipeline, reason=f"unknown pipeline {pipeline!r} for s3://{bucket}/{key}"
        )
    version = obj.get("version-id") or obj.get("etag") or ""
    identity = f"{bucket}/{key}#{version}#{obj.get('sequencer', '')}"
    run_id = new_batch_id(pipeline, _event_time(event), identity)
    request = {
        "pipeline": pipeline,
        "input": {"bucket": bucket, "key": key, "version_id": obj.get("version-id")},
        "trigger": f"upload to {incoming_prefix(pipeline)}",
    }
    return start_run(
        sfn,
        table,
        settings,
        f"batch#s3://{bucket}/{key}#{version}",
        pipeline,
        run_id,
        {},
        flow_arn=settings.batch_flow_arn,
        run_input=request,
    )


def latest_batch_input(s3: Any, settings: Settings, pipeline: str) -> dict[str, Any] | None:
    """The newest object under batch/<pipeline>/incoming/: what the batch schedule scores."""
    from sfn_mlops.batch import incoming_prefix

    return newest_object(s3, settings.artifact_bucket, incoming_prefix(pipeline))


def handle_batch_schedule(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]
) -> TriggerDecision:
    """The pipeline's batch schedule: score the newest batch input, once per scheduled time."""
    from sfn_mlops.batch import incoming_prefix, new_batch_id

    pipeline = str(event.get("pipeline", ""))
    if not PIPELINE_NAME_PATTERN.match(pipeline) or not pipeline_exists(s3, settings, pipeline):
        return TriggerDecision(started=False, reason=f"unknown pipeline {pipeline!r} in scheduled batch")
    newest = latest_batch_input(s3, settings, pipeline)
    if newest is None:
        return TriggerDecision(
            started=False,
            pipeline=pipeline,
            reason=f"no batch input under s3://{settings.artifact_bucket}/{incoming_prefix(pipeline)}",
        )
    identity = f"{settings.artifact_bucket}/{newest['Key']}#{newest.get('ETag', '')}#schedule"
    run_id = new_batch_id(pipeline, _event_time(event), identity)
    request = {
        "pipeline": pipeline,
        "input": {"bucket": settings.artifact_bucket, "key": newest["Key"], "version_id": None},
        "trigger": "schedule",
    }
    trigger_key = f"batch-schedule#{pipeline}#{event.get('time') or run_id}"
    return start_run(
        sfn, table, settings, trigger_key, pipeline, run_id, {}, flow_arn=settings.batch_flow_arn, run_input=request
    )


APPROVAL_EVENT = "SageMaker Model Package State Change"


def handle_approval(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]
) -> TriggerDecision:
    """A package of one of this stack's groups became Approved: deploy it to its pipeline's first stage, once
    per approval (duplicate deliveries of the event carry the same id)."""
    detail = event.get("detail") or {}
    group = str(detail.get("ModelPackageGroupName", ""))
    arn = str(detail.get("ModelPackageArn", ""))
    prefix = f"{settings.resource_prefix}-"
    pipeline = group[len(prefix) :] if group.startswith(prefix) else ""
    if detail.get("ModelApprovalStatus") != "Approved" or not arn:
        return TriggerDecision(started=False, reason=f"{arn or 'a model package'} is not Approved: nothing to deploy")
    if not PIPELINE_NAME_PATTERN.match(pipeline) or not pipeline_exists(s3, settings, pipeline):
        return TriggerDecision(started=False, reason=f"model package group {group!r} is not a pipeline of this stack")
    identity = f"{arn}#{event.get('id') or detail.get('ModelPackageVersion')}"
    from sfn_mlops.deployment import new_deployment_id

    run_id = new_deployment_id(pipeline, _event_time(event), identity)
    request = {"pipeline": pipeline, "action": "deploy", "model_package_arn": arn, "trigger": "approval"}
    return start_run(
        sfn,
        table,
        settings,
        f"approval#{identity}",
        pipeline,
        run_id,
        {},
        flow_arn=settings.deployment_flow_arn,
        run_input=request,
    )


def parse_trigger_event(event: object) -> ObjectCreatedEvent | ApprovalEvent | ScheduledEvent | None:
    """The trigger's event as its model; None for an event of no kind the trigger handles; ``InvalidEvent`` for
    an event of a known kind with bad fields."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"trigger event is malformed: a {type(event).__name__}, not a JSON object")
    if event.get("detail-type") == "Object Created":
        return parse_event(ObjectCreatedEvent, event, "S3 Object Created event")
    if event.get("detail-type") == APPROVAL_EVENT and event.get("source") == "aws.sagemaker":
        return parse_event(ApprovalEvent, event, "model package state change event")
    if event.get("trigger") in ("schedule", "batch-schedule"):
        return parse_event(ScheduledEvent, event, "scheduled event")
    return None


def handle_trigger(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]
) -> TriggerDecision:
    """One decision per event. An event that is refused (malformed, from elsewhere, a key outside the policy)
    is a rejection with its reason, not an error: raising would only make EventBridge deliver it again."""
    try:
        parsed = parse_trigger_event(event)
    except InvalidEvent as exc:
        return TriggerDecision(started=False, reason=str(exc))
    if isinstance(parsed, ObjectCreatedEvent):
        refused = refuse_upload(settings, parsed)
        if refused:
            return TriggerDecision(started=False, reason=refused)
        # The domain handlers read the event as a dict: give them the validated one.
        valid = parsed.model_dump(by_alias=True)
        if parsed.detail.object.key.startswith("batch/"):
            return handle_batch_upload(sfn, s3, table, settings, valid)
        return handle_s3_event(sfn, s3, table, settings, valid)
    if isinstance(parsed, ApprovalEvent):
        return handle_approval(sfn, s3, table, settings, parsed.model_dump(by_alias=True))
    if isinstance(parsed, ScheduledEvent):
        valid = parsed.model_dump()
        if parsed.trigger == "batch-schedule":
            return handle_batch_schedule(sfn, s3, table, settings, valid)
        return handle_schedule(sfn, s3, table, settings, valid)
    return TriggerDecision(started=False, reason="unrecognised trigger event")
