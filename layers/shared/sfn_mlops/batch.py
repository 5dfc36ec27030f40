"""Batch inference: score a CSV of raw rows with an approved model package, checking the rows for drift first.

A batch is a run of the batch flow (its record is a run record with ``kind = "batch"``, listed with the
pipeline's runs), so the executor, reruns, locks and ``mlops status`` work for it as for a training run. Units:

- ``model``: a SageMaker model from the package (the deployment flow's model worker; the same name, so a
  package that already serves an endpoint, or an earlier batch, brings its model along);
- ``check``: the input against the package's drift baseline (schema, completeness, categories, distribution
  distance), written as Model Monitor's ``constraint_violations.json``; the rows are rewritten as the transform
  job reads them (no header, id columns first, then the model's columns in training order). What the
  pipeline's ``drift.action`` does with a drift: ``warn`` scores, ``block`` fails the run with
  ``DriftDetected``, ``retrain`` scores and starts the training flow on the newest training data, once;
- ``transform``: a transform job (``createTransformJob.sync``): one prediction per line, the id columns joined
  back with DataProcessing; a job that already completed under the attempt's name is adopted.

Everything a batch writes is under ``batch/<pipeline>/<run_id>/``; its input comes from anywhere in the bucket
(``mlops batch`` and uploads put it under ``batch/<pipeline>/incoming/``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from sfn_mlops.api_limits import refusal
from sfn_mlops.deployment import (
    DeploymentRefused,
    latest_approved_package,
    model_package_group,
    model_unit,
    package_version,
)
from sfn_mlops.errors import InvalidEvent, InvalidJobRequest, JobNameInUse, MlopsError
from sfn_mlops.events import S3_URI, BatchRecordEvent, WorkerEvent, is_run_of, parse_event
from sfn_mlops.fingerprint import canonical_hash, stamp_config_digests
from sfn_mlops.guardrails import check_cost_guardrails
from sfn_mlops.job_failures import readable_reason
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.naming import JOB_NAME, PIPELINE_NAME_PATTERN, make_run_id
from sfn_mlops.pipeline import PipelineConfig, parse_pipeline_config
from sfn_mlops.rerun import parse_rerun, unit_policies
from sfn_mlops.s3uri import s3_uri, split_s3_uri
from sfn_mlops.settings import Settings
from sfn_mlops.unit_configs import validated_config

BATCH_UNITS = ["model", "check", "transform"]
BATCH_PREFIX = "batch/"
INCOMING = "incoming/"
BATCH_ID = re.compile(r"^batch-[a-z][a-z0-9-]{0,23}-\d{8}t\d{6}-[0-9a-f]{8}$")
LEASE_MARGIN_S = 900
# Cells spelled like this are missing values (as preprocess.py and the inference script read them).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# The most problems an error message lists (the violations document has them all).
SHOWN = 5


class BatchRefused(MlopsError):
    """The batch cannot run: no such input, no approved package, a package without a drift baseline..."""


class DriftDetected(MlopsError):
    """The input drifted from the model's training baseline and the pipeline's drift action is ``block``."""


class UnscorableInput(MlopsError):
    """Rows the model cannot score: a column it needs is missing, a category it never saw, a missing value."""


class TransformOutputMismatch(MlopsError):
    """The transform job's output does not hold one prediction per input row."""


class BatchInput(BaseModel):
    """The object a batch scores (a version of it, when the upload event or the CLI named one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1, pattern=r"[^/]$")
    version_id: str | None = None


class BatchRequest(BaseModel):
    """The batch flow's input: from ``mlops batch``, an upload under incoming/, the schedule, or a rerun."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str = Field(pattern=PIPELINE_NAME_PATTERN.pattern)
    run_id: str = Field(pattern=BATCH_ID.pattern)
    input: BatchInput
    model_package_arn: str | None = None
    trigger: str = "cli"
    rerun: dict[str, Any] | None = None


class PlanBatchEvent(BaseModel):
    """What the batch flow's plan step is given: the flow's input and its execution."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    batch: BatchRequest
    execution_arn: str = Field(default="", max_length=2048)


class UnitEvent(WorkerEvent):
    """What a batch worker's function is given (the executor's worker input): a unit of a batch."""

    run_id: str = Field(pattern=BATCH_ID.pattern)


class ModelOutputs(BaseModel):
    """What the model unit returned, as the transform unit reads it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model_name: str = Field(pattern=JOB_NAME.pattern)


class CheckOutputs(BaseModel):
    """What the check unit returned, as the transform unit reads it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transform_input: str = Field(pattern=S3_URI, max_length=1100)
    input_file: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")


class TransformUnit(NamedTuple):
    """The transform worker's input, each part validated."""

    event: UnitEvent
    config: dict[str, Any]
    model: ModelOutputs
    check: CheckOutputs


def parse_unit_event(event: object) -> UnitEvent:
    """A batch worker's event (``InvalidEvent`` naming the bad field)."""
    return parse_event(UnitEvent, event, "batch unit input")


def parse_check_event(event: object) -> tuple[UnitEvent, dict[str, Any]]:
    """The check worker's event and its config, validated again (``InvalidEvent``, ``FingerprintMismatch``)."""
    unit = parse_unit_event(event)
    if unit.unit != "check":
        raise InvalidEvent(f"batch unit input is malformed: unit: the check worker was started for {unit.unit!r}")
    return unit, validated_config(unit)


def parse_transform_event(event: object) -> TransformUnit:
    """The transform worker's event: its config validated again (``InvalidEvent``, ``FingerprintMismatch``), the
    model and check units' outputs it reads."""
    unit = event if isinstance(event, UnitEvent) else parse_unit_event(event)
    if unit.unit != "transform":
        raise InvalidEvent(f"batch unit input is malformed: unit: the transform worker was started for {unit.unit!r}")
    config = validated_config(unit)
    model = parse_event(ModelOutputs, unit.inputs.get("model"), "transform input model (the model unit's outputs)")
    check = parse_event(CheckOutputs, unit.inputs.get("check"), "transform input check (the check unit's outputs)")
    return TransformUnit(unit, config, model, check)


def new_batch_id(pipeline: str, started: datetime, identity: str) -> str:
    """``batch-<pipeline>-<time>-<digest>``: the same for every delivery of one trigger (dedup)."""
    return f"batch-{make_run_id(pipeline, started, f'batch|{identity}')}"


def is_batch_id(value: str) -> bool:
    return bool(BATCH_ID.match(value))


def incoming_prefix(pipeline: str) -> str:
    return f"{BATCH_PREFIX}{pipeline}/{INCOMING}"


def batch_prefix(pipeline: str, run_id: str) -> str:
    return f"{BATCH_PREFIX}{pipeline}/{run_id}/"


def pipeline_for_batch_key(key: str) -> str | None:
    """batch/<pipeline>/incoming/<file>: the pipeline whose batch input this is (None for anything else,
    such as what batches write under batch/<pipeline>/<run_id>/)."""
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != BATCH_PREFIX.rstrip("/") or parts[2] != INCOMING.rstrip("/"):
        return None
    if not parts[-1] or not PIPELINE_NAME_PATTERN.match(parts[1]):
        return None
    return parts[1]


def transform_job_name(run_id: str, attempt: int) -> str:
    """Unique per run and attempt (a rerun never collides); shortened with a digest past SageMaker's 63."""
    name = f"{run_id}-tf-a{attempt}"
    if len(name) > 63:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{run_id[:40].rstrip('-')}-{digest}-tf-a{attempt}"
    if not JOB_NAME.match(name):
        raise BatchRefused(f"transform job name {name!r} is not a valid SageMaker job name")
    return name


# ------------------------------------------------------------------------------------------ planning
def _pinned_config(s3: Any, settings: Settings, pipeline: str, run_id: str) -> PipelineConfig:
    """The pipeline config the batch started with (pinned beside its outputs: a rerun scores the same way)."""
    from sfn_mlops.planner import load_pipeline_config

    key = f"{batch_prefix(pipeline, run_id)}pipeline.json"
    try:
        body = s3.get_object(Bucket=settings.artifact_bucket, Key=key)["Body"].read()
        return parse_pipeline_config(body, source=s3_uri(settings.artifact_bucket, key))
    except s3.exceptions.NoSuchKey:
        config = load_pipeline_config(s3, settings, pipeline)
        body = config.model_dump_json(indent=2, by_alias=True).encode()
        s3.put_object(Bucket=settings.artifact_bucket, Key=key, Body=body)
        return config


def _input_object(s3: Any, given: BatchInput) -> dict[str, Any]:
    bucket, key = given.bucket, given.key
    kwargs = {"Bucket": bucket, "Key": key, **({"VersionId": given.version_id} if given.version_id else {})}
    try:
        head = s3.head_object(**kwargs)
    except s3.exceptions.ClientError as exc:
        raise BatchRefused(f"batch input s3://{bucket}/{key} cannot be read: {exc}") from exc
    version = head.get("VersionId") or given.version_id
    etag = str(head.get("ETag", "")).strip('"')
    return {
        "bucket": bucket,
        "key": key,
        "version_id": version if version and version != "null" else None,
        "uri": s3_uri(bucket, key),
        # What this input is, whatever its name: a changed object is a different batch for fingerprints.
        "version": (version if version and version != "null" else None) or etag,
        "etag": etag,
        "size": int(head.get("ContentLength") or 0),
    }


def _baseline(package: dict[str, Any]) -> dict[str, str]:
    quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    constraints = (quality.get("Constraints") or {}).get("S3Uri")
    if not statistics or not constraints:
        raise BatchRefused(
            f"model package {package.get('ModelPackageArn')} has no drift baseline (DriftCheckBaselines."
            "ModelDataQuality): it was registered before baselines were; train and approve a newer one"
        )
    return {"statistics": str(statistics), "constraints": str(constraints)}


def resolve_package(sagemaker: Any, settings: Settings, request: BatchRequest, config: PipelineConfig) -> str:
    """``--package``, else the config's pin, else the group's latest Approved package."""
    group = model_package_group(settings, request.pipeline)
    try:
        return request.model_package_arn or config.batch.package_arn or latest_approved_package(sagemaker, group)
    except DeploymentRefused as exc:  # no approved package, or the group cannot be read
        raise BatchRefused(str(exc)) from exc


def _approved_package(sagemaker: Any, settings: Settings, pipeline: str, arn: str) -> dict[str, Any]:
    try:
        package = dict(sagemaker.describe_model_package(ModelPackageName=arn))
    except sagemaker.exceptions.ClientError as exc:
        raise BatchRefused(f"model package {arn} cannot be read: {exc}") from exc
    group = model_package_group(settings, pipeline)
    if package.get("ModelPackageGroupName") != group:
        raise BatchRefused(
            f"model package {arn} is in group {package.get('ModelPackageGroupName')!r}, not this pipeline's {group!r}"
        )
    if package.get("ModelApprovalStatus") != "Approved":
        raise BatchRefused(
            f"model package {arn} is {package.get('ModelApprovalStatus')}, not Approved: only approved packages score"
        )
    return package


def build_batch_plan(
    s3: Any, sagemaker: Any, table: MetadataTable, settings: Settings, event: dict[str, Any] | BatchRequest
) -> dict[str, Any]:
    """The batch's plan: each unit's worker config, and each executor's policy, fingerprint and lease."""
    request = event if isinstance(event, BatchRequest) else parse_event(BatchRequest, event, "batch input")
    if not is_run_of(request.run_id.removeprefix("batch-"), request.pipeline):  # BATCH_ID: it starts batch-
        raise BatchRefused(f"{request.run_id!r} is not a batch id of pipeline {request.pipeline!r}")
    recorded = table.get_run(request.run_id) or {}
    # A rerun scores the object version the batch first read.
    given = BatchInput.model_validate(
        {k: recorded["input"].get(k) for k in ("bucket", "key", "version_id")}
        if recorded.get("input")
        else request.input
    )
    if given.bucket != settings.artifact_bucket or not given.key.startswith(f"{BATCH_PREFIX}{request.pipeline}/"):
        raise BatchRefused(
            f"batch input s3://{given.bucket}/{given.key} is not under "
            f"s3://{settings.artifact_bucket}/{BATCH_PREFIX}{request.pipeline}/ "
            f"(upload it to {incoming_prefix(request.pipeline)})"
        )
    config = _pinned_config(s3, settings, request.pipeline, request.run_id)
    check_cost_guardrails(config, settings)  # the newest published config: the training run never saw it
    spec = config.batch
    source = _input_object(s3, given)
    package_arn = str(recorded.get("model_package_arn") or resolve_package(sagemaker, settings, request, config))
    package = _approved_package(sagemaker, settings, request.pipeline, package_arn)
    baseline = _baseline(package)
    version = package_version(package, package_arn)
    prefix = batch_prefix(request.pipeline, request.run_id)
    drift = config.drift.model_dump(mode="json")
    units: dict[str, dict[str, Any]] = {
        "model": model_unit(settings, request.pipeline, package_arn, version),
        "check": {
            "input": source,
            "baseline": baseline,
            "drift": drift,
            "label": config.data.label,
            "categorical": config.data.categorical,
            "id_columns": spec.id_columns,
            "output_prefix": s3_uri(settings.artifact_bucket, f"{prefix}check/"),
        },
        "transform": {
            "model_package_arn": package_arn,
            "id_columns": len(spec.id_columns),
            "output_prefix": s3_uri(settings.artifact_bucket, f"{prefix}output/"),
            "instance_type": spec.instance_type,
            "instance_count": spec.instance_count,
            "max_payload_mb": spec.max_payload_mb,
            "max_concurrent_transforms": spec.max_concurrent_transforms,
            "max_runtime_s": spec.max_runtime_s,
        },
    }
    options = parse_rerun(request.rerun)
    policies = unit_policies(BATCH_UNITS, options, recorded.get("units") or {})
    control = {
        unit: {
            "policy": policies.get(unit),
            # The check's and transform's fingerprints also take the upstream outputs (in the flow).
            "fingerprint": canonical_hash({"unit": unit, **units[unit]}),
            "cache": {"enabled": False, "max_age_s": 0},
            "lease_s": spec.max_runtime_s + LEASE_MARGIN_S,
        }
        for unit in BATCH_UNITS
    }
    stamp_config_digests(units)  # after the fingerprints: the check and transform workers verify their config
    return {
        "run_id": request.run_id,
        "kind": "batch",
        "pipeline": request.pipeline,
        "trigger": request.trigger,
        "input": source,
        "model_package_arn": package_arn,
        "model_package_version": version,
        "drift_action": drift.get("action"),
        "order": BATCH_UNITS,
        "scope": {"only": options.only or "", "from": options.from_unit or ""},
        "units": units,
        "control": control,
    }


def plan_batch(
    s3: Any, sagemaker: Any, table: MetadataTable, settings: Settings, event: dict[str, Any] | PlanBatchEvent
) -> dict[str, Any]:
    """``event``: ``{"batch": <the flow's input>, "execution_arn": ...}``; records the batch run."""
    request = event if isinstance(event, PlanBatchEvent) else parse_event(PlanBatchEvent, event, "batch flow input")
    plan = build_batch_plan(s3, sagemaker, table, settings, request.batch)
    plan["run_attempt"] = table.start_batch(plan, flow_execution_arn=request.execution_arn)
    return plan


# ------------------------------------------------------------------------------------------ check
def _read_csv(text: str, source: str) -> tuple[list[str], list[list[str]]]:
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text, newline="")) if any(row)]
    if len(rows) < 2:
        raise UnscorableInput(f"{source} has no data rows: a batch is a CSV with a header row, then rows")
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header) or not all(header):
        raise UnscorableInput(f"{source}: the header row must name each column once, not {','.join(header)}")
    ragged = next((i for i, row in enumerate(body, start=2) if len(row) != len(header)), None)
    if ragged is not None:
        raise UnscorableInput(f"{source} line {ragged} has {len(body[ragged - 2])} fields, the header {len(header)}")
    return header, body


def _get_json(s3: Any, uri: str) -> dict[str, Any]:
    bucket, key = split_s3_uri(uri)
    try:
        return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except s3.exceptions.NoSuchKey as exc:
        raise BatchRefused(f"the package's drift baseline {uri} does not exist") from exc


def model_columns(constraints: dict[str, Any], label: str) -> list[str]:
    """The columns the model reads, in training order: the baseline's features without the label."""
    return [str(f["name"]) for f in constraints.get("features") or [] if f.get("name") != label]


def unscorable(
    header: list[str], rows: list[list[str]], columns: list[str], categorical: dict[str, list[str]]
) -> list[str]:
    """Why the model could not score these rows (the inference container would refuse them), at most SHOWN."""
    missing = [c for c in columns if c not in header]
    problems = [f"column {c!r} is missing" for c in missing]
    where = {c: header.index(c) for c in columns if c in header}
    for number, row in enumerate(rows, start=1):
        if len(problems) >= SHOWN:
            break
        for column, index in where.items():
            cell = row[index]
            if cell.lower() in MISSING:
                problems.append(f"row {number}, column {column!r}: missing value")
            elif column in categorical and cell not in categorical[column]:
                problems.append(f"row {number}, column {column!r}: unknown category {cell!r}")
            elif column not in categorical:
                try:
                    float(cell)
                except ValueError:
                    problems.append(f"row {number}, column {column!r}: non-numeric value {cell!r}")
    return problems[:SHOWN]


def check_input(
    s3: Any,
    cloudwatch: Any,
    sfn: Any,
    table: MetadataTable,
    settings: Settings,
    run_id: str,
    pipeline: str,
    attempt: int,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The check unit: drift report, violations document, metrics, the transform's input; the drift action."""
    from sfn_mlops import drift
    from sfn_mlops.pipeline import DriftSpec

    source = config["input"]
    kwargs = {"Bucket": source["bucket"], "Key": source["key"]}
    if source.get("version_id"):
        kwargs["VersionId"] = source["version_id"]
    try:
        text = s3.get_object(**kwargs)["Body"].read().decode("utf-8-sig")
    except s3.exceptions.ClientError as exc:
        raise BatchRefused(f"batch input {source['uri']} cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UnscorableInput(f"{source['uri']} is not UTF-8 text (byte {exc.start})") from exc
    header, rows = _read_csv(text, source["uri"])
    id_columns = list(config.get("id_columns") or [])
    absent_ids = [c for c in id_columns if c not in header]
    if absent_ids:
        raise UnscorableInput(f"{source['uri']} has no id column {', '.join(absent_ids)} (batch.id_columns)")
    statistics = _get_json(s3, config["baseline"]["statistics"])
    constraints = _get_json(s3, config["baseline"]["constraints"])
    spec = DriftSpec.model_validate(config["drift"])
    report = drift.check_input(header, rows, statistics, constraints, spec, id_columns=tuple(id_columns))
    out_bucket, out_key = split_s3_uri(config["output_prefix"])
    attempt_key = f"{out_key}a{attempt}/"
    violations_key = f"{attempt_key}constraint_violations.json"
    s3.put_object(
        Bucket=out_bucket,
        Key=violations_key,
        Body=json.dumps(report.violations_document(), indent=2).encode(),
        ContentType="application/json",
    )
    metric_data = drift.metric_data(report, pipeline)
    for start in range(0, len(metric_data), 1000):  # PutMetricData takes at most 1000 values
        cloudwatch.put_metric_data(
            Namespace=drift.DRIFT_METRICS_NAMESPACE, MetricData=metric_data[start : start + 1000]
        )
    summary: dict[str, Any] = {
        "status": report.status,
        "row_count": report.row_count,
        "violations": [v.model_dump() for v in report.violations],
        "features": {name: feature.model_dump() for name, feature in report.features.items()},
        "violations_uri": s3_uri(out_bucket, violations_key),
    }
    table.record_batch_drift(run_id, summary)
    action = spec.action
    if report.status == "DRIFT" and action == "block":
        shown = "; ".join(
            f"{v.description} ({v.constraint_check_type})"
            for v in report.violations[:SHOWN]  # names the feature
        )
        more = f" and {len(report.violations) - SHOWN} more" if len(report.violations) > SHOWN else ""
        raise DriftDetected(
            f"{source['uri']} drifted from the baseline of {config.get('model_package_arn') or 'the model'} "
            f"(drift.action block: nothing scored): {shown}{more}; see {summary['violations_uri']}"
        )
    retrain = None
    if report.status == "DRIFT" and action == "retrain":
        retrain = start_retraining(sfn, s3, table, settings, pipeline, run_id)
    columns = model_columns(constraints, config["label"])
    problems = unscorable(header, rows, columns, config.get("categorical") or {})
    if problems:
        raise UnscorableInput(
            f"{source['uri']}: the model cannot score these rows ({'; '.join(problems)}); drift {report.status}, "
            f"see {summary['violations_uri']}"
        )
    # The transform job's input: no header, id columns first, then the model's columns in training order.
    order = [header.index(c) for c in [*id_columns, *columns]]
    body = "".join(",".join(row[i] for i in order) + "\n" for row in rows)
    input_key = f"{attempt_key}input/rows.csv"
    s3.put_object(Bucket=out_bucket, Key=input_key, Body=body.encode(), ContentType="text/csv")
    return {
        "drift_status": report.status,
        "violations": len(report.violations),
        "violations_uri": summary["violations_uri"],
        "row_count": report.row_count,
        "transform_input": s3_uri(out_bucket, f"{attempt_key}input/"),
        "input_file": "rows.csv",
        "retrain": retrain,
    }


def start_retraining(
    sfn: Any, s3: Any, table: MetadataTable, settings: Settings, pipeline: str, batch_id: str
) -> dict[str, Any]:
    """Start the training flow on the pipeline's newest training data, once per version of that data: the
    claim is keyed on the dataset, so every drifted batch (and every delivery of one) finds the same run."""
    from datetime import UTC

    from sfn_mlops.trigger import latest_dataset, start_run

    newest = latest_dataset(s3, settings, pipeline)
    if newest is None:
        return {"started": False, "reason": f"no training data under {settings.data_prefix}{pipeline}/"}
    identity = f"{settings.artifact_bucket}/{newest['Key']}#{str(newest.get('ETag', '')).strip(chr(34))}"
    run_id = make_run_id(pipeline, datetime.now(UTC), f"{identity}#drift")
    dataset = {"bucket": settings.artifact_bucket, "key": newest["Key"], "version_id": None}
    decision = start_run(sfn, table, settings, f"drift-retrain#s3://{identity}", pipeline, run_id, dataset)
    return {"started": decision.started, "run_id": decision.run_id, "reason": decision.reason, "by": batch_id}


# ------------------------------------------------------------------------------------------ transform
def _data_processing(id_columns: int) -> dict[str, str] | None:
    """Id columns skip the model and come back joined to its prediction (SageMaker's DataProcessing)."""
    if id_columns == 0:
        return None
    kept = ",".join(str(i) for i in range(id_columns))
    return {"InputFilter": f"$[{id_columns}:]", "JoinSource": "Input", "OutputFilter": f"$[{kept},-1]"}


def transform_request(
    run_id: str, pipeline: str, attempt: int, config: dict[str, Any], model_name: str, check: dict[str, Any]
) -> dict[str, Any]:
    name = transform_job_name(run_id, attempt)
    output_path = f"{config['output_prefix']}a{attempt}/"
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": config["max_payload_mb"],
        "MaxConcurrentTransforms": config["max_concurrent_transforms"],
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": check["transform_input"]}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_path, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": config["instance_type"], "InstanceCount": config["instance_count"]},
        # The XGBoost container refuses a request body over MAX_CONTENT_LENGTH (6 MiB unless set) with a 413,
        # whatever MaxPayloadInMB allows: the containers are told the payload the job sends.
        "Environment": {"MAX_CONTENT_LENGTH": str(int(config["max_payload_mb"]) * 1024 * 1024)},
        "Tags": [{"Key": "sfn-mlops:run-id", "Value": run_id}, {"Key": "sfn-mlops:pipeline", "Value": pipeline}],
    }
    processing = _data_processing(int(config["id_columns"]))
    if processing:
        request["DataProcessing"] = processing
    return {"request": request, "output_uri": f"{output_path}{check['input_file']}.out"}


def prepare_transform(sagemaker: Any, event: dict[str, Any] | UnitEvent | TransformUnit) -> dict[str, Any]:
    """The transform worker's first step: the job request, or the job this attempt already completed.

    The config is validated again (``InvalidEvent``, ``FingerprintMismatch``), the upstream outputs too."""
    unit, config, model, check = event if isinstance(event, TransformUnit) else parse_transform_event(event)
    prepared = transform_request(unit.run_id, unit.pipeline, unit.attempt, config, model.model_name, check.model_dump())
    message = refusal("CreateTransformJob", prepared["request"])
    if message is not None:  # refused here, naming the limit, rather than by SageMaker after the call's retries
        raise InvalidJobRequest(f"unit transform: SageMaker would refuse its CreateTransformJob request: {message}")
    name = prepared["request"]["TransformJobName"]
    try:
        described = sagemaker.describe_transform_job(TransformJobName=name)
    except sagemaker.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in {"ValidationException", "ResourceNotFound"} and (
            "not found" in str(error.get("Message", "")).lower()
            or "could not find" in str(error.get("Message", "")).lower()
        ):
            return {**prepared, "adopted": None}
        raise
    if described.get("TransformJobStatus") != "Completed":
        raise JobNameInUse(
            f"SageMaker transform job {name} already exists with status {described.get('TransformJobStatus')} "
            f"({readable_reason(described.get('FailureReason') or 'no failure reason')}); "
            "rerun the unit to start a new attempt"
        )
    adopted = {"job_name": name, "job_arn": described["TransformJobArn"], "output_uri": prepared["output_uri"]}
    return {**prepared, "adopted": adopted}


# ------------------------------------------------------------------------------------------ outcome
def _count_rows(s3: Any, uri: str) -> int:
    bucket, key = split_s3_uri(uri)
    try:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except s3.exceptions.NoSuchKey as exc:
        raise TransformOutputMismatch(f"the transform job wrote no {uri}") from exc
    return sum(1 for line in text.splitlines() if line.strip())


def record_outcome(s3: Any, table: MetadataTable, event: dict[str, Any] | BatchRecordEvent) -> dict[str, Any]:
    """``event``: ``{plan, results, execution_arn}`` and, for a failed batch, ``error`` (``{unit, error, cause}``,
    as the flow explained it). Checks one prediction per row, records the run and lineage; the summary."""
    given = event if isinstance(event, BatchRecordEvent) else parse_event(BatchRecordEvent, event, "batch outcome")
    plan = given.plan.model_dump()
    results = given.results_dump()
    error = given.error.model_dump() if given.error else None
    transform = (results.get("transform") or {}).get("outputs") or {}
    check = (results.get("check") or {}).get("outputs") or {}
    output_uri = transform.get("output_uri") if error is None else None
    rows_scored = 0
    if output_uri:
        rows_scored = _count_rows(s3, output_uri)
        if rows_scored != int(check.get("row_count") or 0):
            error = {
                "unit": "transform",
                "error": TransformOutputMismatch.__name__,
                "cause": f"{output_uri} holds {rows_scored} predictions for {check.get('row_count')} input rows",
            }
            output_uri, rows_scored = None, 0
    status = "SUCCEEDED" if error is None else "FAILED"
    outcome = {
        "status": status,
        "results": results,
        "error": error,
        "flow_execution_arn": given.execution_arn,
        "output_uri": output_uri,
        "rows_scored": rows_scored,
        "retrain": check.get("retrain"),
    }
    table.record_batch(plan, outcome)
    if error is not None and error["error"] == TransformOutputMismatch.__name__ and given.error is None:
        raise TransformOutputMismatch(error["cause"])  # recorded: now the flow's execution fails too
    run = table.get_run(plan["run_id"]) or {}
    return summary_of(plan["run_id"], run)


def summary_of(run_id: str, run: dict[str, Any]) -> dict[str, Any]:
    """The batch's summary, as ``mlops batch --json`` prints it."""
    drift = run.get("drift") or {}
    results = run.get("unit_results") or {}
    order = run.get("unit_order") or BATCH_UNITS
    return {
        "run_id": run_id,
        "pipeline": run.get("pipeline"),
        "status": run.get("status"),
        "model_package_arn": run.get("model_package_arn"),
        "output_uri": run.get("output_uri") or None,
        "rows_scored": int(run.get("rows_scored") or 0),
        "drift": {
            "status": drift.get("status"),
            "violations": [
                {k: v.get(k) for k in ("feature_name", "constraint_check_type", "description")}
                for v in drift.get("violations") or []
            ],
        },
        "units": {name: (results.get(name) or {}).get("status") for name in order},
        "error": run.get("error") if run.get("status") == "FAILED" else None,
    }
