"""Deployments: which package goes to which endpoint, how, and what the deployment flow's units are given.

A deployment is a run of the deployment flow (its record is a run record with ``kind = "deployment"``), so
the executor, reruns, locks and ``mlops status`` work for it as for a training run. Its units:

- ``model``: a SageMaker model from the approved model package (an inference pipeline: the fitted
  preprocessing, then XGBoost);
- ``endpoint_config``: one production variant (instances or serverless) for that model;
- ``deploy``: ``CreateEndpoint`` the first time, otherwise ``UpdateEndpoint`` with a blue/green
  ``DeploymentConfig`` (traffic routing and auto-rollback on the endpoint's alarms);
- ``smoke_test``: rows of the package's own test split through the endpoint, compared with what the
  evaluate unit predicted for them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfn_mlops.errors import MlopsError
from sfn_mlops.events import DeploymentRecordEvent, is_run_of, parse_event
from sfn_mlops.fingerprint import canonical_hash
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.naming import PIPELINE_NAME_PATTERN, make_run_id
from sfn_mlops.pipeline import DeploySpec, PipelineConfig, parse_pipeline_config
from sfn_mlops.rerun import parse_rerun, unit_policies
from sfn_mlops.s3uri import s3_uri, split_s3_uri
from sfn_mlops.settings import Settings

DEPLOY_UNITS = ["model", "endpoint_config", "deploy", "smoke_test"]
VARIANT = "AllTraffic"
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# How often the deploy worker looks at the endpoint while it waits (a Wait state between DescribeEndpoints).
POLL_S = 1  # the deploy worker's Wait state (statelint wants a fixed number there)
LEASE_MARGIN_S = 900


class DeploymentRefused(MlopsError):
    """The package cannot be deployed there: not approved, rejected by its gate, not this pipeline's..."""


class SmokeTestFailed(MlopsError):
    """The endpoint's predictions for the smoke-test rows differ from the ones recorded at evaluation."""


class DeploymentRequest(BaseModel):
    """The deployment flow's input: from the approval trigger, ``mlops deploy|promote|rollback``, or a rerun."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str = Field(pattern=PIPELINE_NAME_PATTERN.pattern)
    run_id: str  # the deployment id: a run id of the pipeline
    stage: str | None = None  # default: the pipeline's first stage
    action: Literal["deploy", "promote", "rollback"] = "deploy"
    model_package_arn: str | None = None  # deploy: default the group's latest approved package
    trigger: str = "cli"
    rerun: dict[str, Any] | None = None


def new_deployment_id(pipeline: str, started: datetime, identity: str) -> str:
    return make_run_id(pipeline, started, f"deploy|{identity}")


def resource_name(settings: Settings, *parts: str) -> str:
    """A SageMaker/CloudWatch name of this stack: ``<prefix>-<parts>``, shortened with a hash past 63 chars."""
    name = "-".join([settings.resource_prefix, *parts])
    if len(name) > 63:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    if not SAGEMAKER_NAME.match(name):
        raise DeploymentRefused(f"{name!r} is not a valid SageMaker resource name")
    return name


def endpoint_name(settings: Settings, pipeline: str, stage: str) -> str:
    return resource_name(settings, pipeline, stage)


def champion_for(table: MetadataTable, settings: Settings, pipeline: str, stage: str) -> dict[str, str] | None:
    """The package serving a stage of the pipeline now, and its model artifact (one GetItem)."""
    record = table.get_endpoint(endpoint_name(settings, pipeline, stage))
    if not record or not record.get("model_data") or not record.get("model_package_arn"):
        return None
    return {"model_package_arn": str(record["model_package_arn"]), "model_data": str(record["model_data"])}


def model_package_group(settings: Settings, pipeline: str) -> str:
    from sfn_mlops.registry import model_package_group as group_of

    return group_of(settings.resource_prefix, pipeline)


def alarm_names(endpoint: str) -> dict[str, str]:
    return {"errors": f"{endpoint}-invocation-5xx", "latency": f"{endpoint}-model-latency"}


def deployment_config(spec: DeploySpec, alarms: list[str]) -> dict[str, Any]:
    """SageMaker's blue/green ``DeploymentConfig`` for an update (a first deployment has none)."""
    traffic = spec.traffic
    routing: dict[str, Any] = {"Type": traffic.type, "WaitIntervalInSeconds": traffic.wait_s}
    if traffic.type == "CANARY":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": traffic.canary_percent}
    elif traffic.type == "LINEAR":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": traffic.linear_step_percent}
    policy: dict[str, Any] = {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": traffic.termination_wait_s,
        "MaximumExecutionTimeoutInSeconds": traffic.max_execution_timeout_s,
    }
    return {
        "BlueGreenUpdatePolicy": policy,
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
    }


def production_variant(spec: DeploySpec, model: str) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model}
    if spec.serverless is not None:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": spec.serverless.memory_size_mb,
            "MaxConcurrency": spec.serverless.max_concurrency,
        }
    else:
        variant["InstanceType"] = spec.instance_type
        variant["InitialInstanceCount"] = spec.initial_instance_count
    return variant


def alarm_specs(spec: DeploySpec, endpoint: str) -> list[dict[str, Any]]:
    """The two alarms each endpoint gets (PutMetricAlarm arguments): 5XX errors and model latency."""
    names = alarm_names(endpoint)
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": VARIANT}]
    common = {"Namespace": "AWS/SageMaker", "Dimensions": dimensions, "Period": 60, "EvaluationPeriods": 1}
    return [
        {
            **common,
            "AlarmName": names["errors"],
            "AlarmDescription": f"{endpoint}: invocations answered with a 5XX error (deployments roll back on it)",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Threshold": float(spec.alarms.invocation_5xx_errors),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            **common,
            "AlarmName": names["latency"],
            "AlarmDescription": f"{endpoint}: model latency above {spec.alarms.model_latency_ms} ms",
            "MetricName": "ModelLatency",
            "Statistic": "Average",
            # ModelLatency is reported in microseconds.
            "Threshold": float(spec.alarms.model_latency_ms * 1000),
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    ]


# ------------------------------------------------------------------------------------------ planning
def _pinned_config(s3: Any, settings: Settings, pipeline: str, run_id: str) -> PipelineConfig:
    """The pipeline config a deployment started with (pinned in its prefix: a rerun deploys the same way)."""
    from sfn_mlops.planner import load_pipeline_config

    key = f"{settings.runs_prefix}{pipeline}/{run_id}/code/pipeline.json"
    try:
        body = s3.get_object(Bucket=settings.artifact_bucket, Key=key)["Body"].read()
        return parse_pipeline_config(body, source=s3_uri(settings.artifact_bucket, key))
    except s3.exceptions.NoSuchKey:
        config = load_pipeline_config(s3, settings, pipeline)
        body = config.model_dump_json(indent=2, by_alias=True).encode()
        s3.put_object(Bucket=settings.artifact_bucket, Key=key, Body=body)
        return config


def _live_config(sagemaker: Any, endpoint: str) -> str:
    """The endpoint config an endpoint serves now ("" if there is no such endpoint)."""
    try:
        return str(sagemaker.describe_endpoint(EndpointName=endpoint).get("EndpointConfigName") or "")
    except sagemaker.exceptions.ClientError:
        return ""


def _package(sagemaker: Any, arn: str) -> dict[str, Any]:
    try:
        return dict(sagemaker.describe_model_package(ModelPackageName=arn))
    except sagemaker.exceptions.ClientError as exc:
        raise DeploymentRefused(f"model package {arn} cannot be read: {exc}") from exc


def latest_approved_package(sagemaker: Any, group: str) -> str:
    try:
        page = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except sagemaker.exceptions.ClientError as exc:
        raise DeploymentRefused(f"model package group {group} cannot be read: {exc}") from exc
    packages = page.get("ModelPackageSummaryList") or []
    if not packages:
        raise DeploymentRefused(f"model package group {group} has no approved package: approve one first")
    return str(packages[0]["ModelPackageArn"])


def check_deployable(package: dict[str, Any], group: str) -> None:
    arn = package.get("ModelPackageArn", "?")
    if package.get("ModelPackageGroupName") != group:
        raise DeploymentRefused(
            f"model package {arn} is in group {package.get('ModelPackageGroupName')!r}, not this pipeline's {group!r}"
        )
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise DeploymentRefused(f"model package {arn} is {status}, not Approved: only approved packages deploy")


def _smoke_test_data(table: MetadataTable, package: dict[str, Any]) -> dict[str, Any]:
    """Where the package's run left its test split and the evaluate unit's predictions for it; refused if the
    run's quality gate (perhaps on a later rerun with a stricter gate) rejected the model."""
    arn = package.get("ModelPackageArn")
    run_id = (package.get("CustomerMetadataProperties") or {}).get("sfn-mlops:run-id")
    run = table.get_run(run_id) if run_id else None
    if run is None:
        raise DeploymentRefused(f"model package {arn} names no run of this stack")
    if run.get("status") == "REJECTED":
        reasons = "; ".join((run.get("gate_verdict") or {}).get("reasons") or []) or f"see mlops status {run_id}"
        raise DeploymentRefused(f"model package {arn}: the quality gate of run {run_id} rejected it ({reasons})")
    # The units as they stood when this package was registered (a later rerun of the run evaluates a later
    # model elsewhere), else the run's current records.
    registered = table.registered_units(str(arn)) or {}
    units = run.get("units") or {}
    preprocess = registered.get("preprocess") or units.get("preprocess", {}).get("outputs") or {}
    evaluate = registered.get("evaluate") or units.get("evaluate", {}).get("outputs") or {}
    return {
        "run_id": run_id,
        "raw_test_uri": preprocess.get("raw_test_uri"),
        "predictions_uri": evaluate.get("predictions_uri"),
    }


def resolve_package(
    sagemaker: Any, table: MetadataTable, settings: Settings, request: DeploymentRequest, stages: list[str], stage: str
) -> str:
    group = model_package_group(settings, request.pipeline)
    if request.action == "deploy":
        return request.model_package_arn or latest_approved_package(sagemaker, group)
    if request.action == "promote":
        index = stages.index(stage)
        if index == 0:
            raise DeploymentRefused(f"{stage} is the first stage: deploy to it, promote from it")
        source = table.get_endpoint(endpoint_name(settings, request.pipeline, stages[index - 1]))
        if not source or not source.get("model_package_arn"):
            raise DeploymentRefused(f"nothing serves stage {stages[index - 1]} of {request.pipeline} to promote")
        return str(source["model_package_arn"])
    current = table.get_endpoint(endpoint_name(settings, request.pipeline, stage))
    if not current or not current.get("previous_model_package_arn"):
        raise DeploymentRefused(f"stage {stage} of {request.pipeline} has no previous package to roll back to")
    return str(current["previous_model_package_arn"])


def package_version(package: dict[str, Any], package_arn: str) -> str:
    return str(package.get("ModelPackageVersion") or package_arn.rsplit("/", 1)[-1])


def model_unit(settings: Settings, pipeline: str, package_arn: str, version: str) -> dict[str, str]:
    """The model worker's config: one SageMaker model per package, named the same whichever flow needs it (a
    deployment or a batch), so the one that comes second finds it and reuses it."""
    return {
        "model_name": resource_name(settings, pipeline, f"v{version}", canonical_hash(package_arn)[:6]),
        "model_package_arn": package_arn,
        "execution_role_arn": settings.sagemaker_role_arn,
    }


class PlanDeploymentEvent(BaseModel):
    """What the deployment flow's plan step is given: the flow's input and its execution."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    deployment: DeploymentRequest
    execution_arn: str = Field(default="", max_length=2048)


def build_deployment_plan(
    s3: Any, sagemaker: Any, table: MetadataTable, settings: Settings, event: dict[str, Any] | DeploymentRequest
) -> dict[str, Any]:
    """The deployment's plan: each unit's worker config, and each executor's policy, fingerprint and lease."""
    if isinstance(event, DeploymentRequest):
        request = event
    else:
        request = parse_event(DeploymentRequest, event, "deployment input")
    if not is_run_of(request.run_id, request.pipeline):
        raise DeploymentRefused(f"{request.run_id!r} is not a deployment id of pipeline {request.pipeline!r}")
    config = _pinned_config(s3, settings, request.pipeline, request.run_id)
    spec = config.deploy
    stage = request.stage or spec.stages[0]
    if stage not in spec.stages:
        raise DeploymentRefused(f"{request.pipeline} has no stage {stage!r} (its stages: {', '.join(spec.stages)})")
    recorded = table.get_run(request.run_id) or {}
    package_arn = recorded.get("model_package_arn") or resolve_package(
        sagemaker, table, settings, request, spec.stages, stage
    )
    package = _package(sagemaker, package_arn)
    check_deployable(package, model_package_group(settings, request.pipeline))
    endpoint = endpoint_name(settings, request.pipeline, stage)
    serving = table.get_endpoint(endpoint) or {}
    live = _live_config(sagemaker, endpoint)
    version = package_version(package, package_arn)
    model_config = model_unit(settings, request.pipeline, package_arn, version)
    model = model_config["model_name"]
    config_name = resource_name(settings, request.pipeline, stage, request.run_id.rsplit("-", 1)[-1])
    alarms = alarm_specs(spec, endpoint)
    units: dict[str, dict[str, Any]] = {
        "model": model_config,
        "endpoint_config": {"endpoint_config_name": config_name, "variant": production_variant(spec, model)},
        "deploy": {
            "endpoint_name": endpoint,
            "endpoint_config_name": config_name,
            "deployment_config": deployment_config(spec, [a["AlarmName"] for a in alarms]),
            "alarms": alarms,
            "max_polls": max(1, spec.endpoint_wait_s // POLL_S),
        },
        "smoke_test": {
            "endpoint_name": endpoint,
            "model_package_arn": package_arn,
            "rows": spec.smoke_test.rows,
            "tolerance": spec.smoke_test.tolerance,
            **_smoke_test_data(table, package),
        },
    }
    options = parse_rerun(request.rerun)
    policies = unit_policies(DEPLOY_UNITS, options, recorded.get("units") or {})
    lease = spec.endpoint_wait_s + LEASE_MARGIN_S
    control = {
        unit: {
            "policy": policies.get(unit),
            # The endpoint's state is part of what a deployment starts from: a rerun after someone else
            # changed the endpoint deploys again rather than reusing the recorded outcome.
            # The endpoint's live config is part of what deploy starts from: after the flow put the previous config
            # back (a failed smoke test), a rerun deploys again instead of reusing the recorded success.
            "fingerprint": canonical_hash(
                {"unit": unit, **units[unit], "endpoint": endpoint, **({"live": live} if unit == "deploy" else {})}
            ),
            "cache": {"enabled": False, "max_age_s": 0},
            "lease_s": lease,
        }
        for unit in DEPLOY_UNITS
    }
    return {
        "run_id": request.run_id,
        "kind": "deployment",
        "pipeline": request.pipeline,
        "stage": stage,
        "action": request.action,
        "trigger": request.trigger,
        "model_package_arn": package_arn,
        "model_package_version": version,
        # The model itself (the last container's artifact): the champion the next training run is scored against.
        "model_data": ((package.get("InferenceSpecification") or {}).get("Containers") or [{}])[-1].get("ModelDataUrl"),
        "endpoint_name": endpoint,
        "previous_model_package_arn": serving.get("model_package_arn") or "",
        "previous_endpoint_config_name": serving.get("endpoint_config_name") or "",
        "strategy": spec.traffic.type if serving.get("endpoint_config_name") else "CREATE",
        "order": DEPLOY_UNITS,
        "scope": {"only": options.only or "", "from": options.from_unit or ""},
        "units": units,
        "control": control,
    }


def plan_deployment(
    s3: Any, sagemaker: Any, table: MetadataTable, settings: Settings, event: dict[str, Any] | PlanDeploymentEvent
) -> dict[str, Any]:
    """``event``: ``{"deployment": <the flow's input>, "execution_arn": ...}``; records the deployment."""
    if isinstance(event, PlanDeploymentEvent):
        request = event
    else:
        request = parse_event(PlanDeploymentEvent, event, "deployment flow input")
    plan = build_deployment_plan(s3, sagemaker, table, settings, request.deployment)
    plan["run_attempt"] = table.start_deployment(plan, flow_execution_arn=request.execution_arn)
    return plan


# ------------------------------------------------------------------------------------------ smoke test
def _csv_rows(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines() if line.strip()]


def smoke_test(s3: Any, runtime: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Send the first rows of the package's raw test split to the endpoint; each prediction must equal the one
    the evaluate unit recorded for that row, within the tolerance."""
    for field in ("raw_test_uri", "predictions_uri"):
        if not config.get(field):
            raise SmokeTestFailed(f"the package's run recorded no {field}: rerun its preprocess and evaluate units")
    bucket, key = split_s3_uri(config["raw_test_uri"])
    raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    bucket, key = split_s3_uri(config["predictions_uri"])
    expected_text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    rows = [line for line in raw.splitlines() if line.strip()][: int(config["rows"])]
    expected = [float(value) for value in expected_text.split()][: len(rows)]
    if not rows or len(expected) < len(rows):
        raise SmokeTestFailed(f"{config['raw_test_uri']} and {config['predictions_uri']} do not hold matching rows")
    try:
        response = runtime.invoke_endpoint(
            EndpointName=config["endpoint_name"], ContentType="text/csv", Accept="text/csv", Body="\n".join(rows)
        )
    except runtime.exceptions.ClientError as exc:
        raise SmokeTestFailed(f"endpoint {config['endpoint_name']} did not answer the smoke test: {exc}") from exc
    answer = response["Body"].read().decode()
    got = [float(value) for value in answer.replace(",", "\n").split()]
    if len(got) != len(rows):
        raise SmokeTestFailed(
            f"endpoint {config['endpoint_name']} answered {len(got)} predictions for {len(rows)} rows"
        )
    worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
    if worst > float(config["tolerance"]):
        row = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if abs(a - b) == worst)
        raise SmokeTestFailed(
            f"endpoint {config['endpoint_name']} predicted {got[row]!r} for smoke-test row {row + 1}, evaluation "
            f"recorded {expected[row]!r} (difference {worst:.3g} > tolerance {config['tolerance']})"
        )
    return {"rows": len(rows), "max_abs_difference": worst, "endpoint_name": config["endpoint_name"]}


# ------------------------------------------------------------------------------------------ outcome
ROLLED_BACK_ERRORS = frozenset({"DeploymentRolledBack"})


def record_outcome(table: MetadataTable, event: dict[str, Any] | DeploymentRecordEvent) -> dict[str, Any]:
    """``event``: ``{plan, results, execution_arn}`` and, for a failed deployment, ``error`` (``{unit, error,
    cause}``, as the flow explained it) and ``rolled_back`` (the flow put the previous config back after the new
    one failed its smoke test). Returns the deployment's summary."""
    if isinstance(event, DeploymentRecordEvent):
        given = event
    else:
        given = parse_event(DeploymentRecordEvent, event, "deployment outcome")
    plan = given.plan.model_dump()
    results = given.results_dump()
    error = given.error.model_dump() if given.error else None
    if error is None:
        status = "SUCCEEDED"
    elif given.rolled_back or error["error"] in ROLLED_BACK_ERRORS:
        status = "ROLLED_BACK"
    else:
        status = "FAILED"
    deploy_outputs = (results.get("deploy") or {}).get("outputs") or {}
    outcome = {
        "status": status,
        "results": results,
        "error": error,
        "flow_execution_arn": given.execution_arn,
        "traffic_steps": deploy_outputs.get("traffic_steps") or [],
    }
    table.record_deployment(plan, outcome)
    return {
        "deployment_id": plan["run_id"],
        "pipeline": plan["pipeline"],
        "stage": plan["stage"],
        "status": status,
        "model_package_arn": plan["model_package_arn"],
        "previous_model_package_arn": plan["previous_model_package_arn"] or None,
        "endpoint_name": plan["endpoint_name"],
        "strategy": plan["strategy"],
        "traffic_steps": outcome["traffic_steps"],
        "units": {name: (results.get(name) or {}).get("status") for name in plan["order"]},
        "error": error,
    }
