"""What the CLI does for serving, against any target: start deployments, read them and the endpoints, predict."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sfn_mlops_local.cli_errors import BadArgument, NotFound
from sfn_mlops_local.operations import Target, run_summary

# Read-only commands import no pydantic; these mirror sfn_mlops.deployment.
DEFAULT_STAGES = ["staging", "prod"]


def _stages(target: Target, pipeline: str) -> list[str]:
    """The stages of the pipeline as published (its deploy section), without validating the whole config."""
    try:
        body = target.s3.get_object(Bucket=target.bucket, Key=f"pipelines/{pipeline}/pipeline.json")["Body"].read()
    except target.s3.exceptions.NoSuchKey:
        raise NotFound(f"pipeline {pipeline!r} is not published: run it or `mlops publish {pipeline}` first") from None
    stages = (json.loads(body).get("deploy") or {}).get("stages") or DEFAULT_STAGES
    return [str(stage) for stage in stages]


def endpoint_for(target: Target, pipeline: str, stage: str | None) -> tuple[str, str]:
    """The endpoint name of a pipeline's stage (first stage by default) and the stage."""
    from sfn_mlops.deployment import endpoint_name
    from sfn_mlops.settings import Settings

    stages = _stages(target, pipeline)
    stage = stage or stages[0]
    if stage not in stages:
        raise NotFound(f"pipeline {pipeline} has no stage {stage!r} (its stages: {', '.join(stages)})")
    settings = Settings(table_name=target.table_name, artifact_bucket=target.bucket, resource_prefix=target.stack_name)
    return endpoint_name(settings, pipeline, stage), stage


def start_deployment(
    target: Target, pipeline: str, action: str, stage: str | None = None, package_arn: str | None = None
) -> tuple[str, str]:
    """Start the deployment flow; returns (deployment id, execution ARN). The flow validates the rest."""
    from sfn_mlops.deployment import new_deployment_id

    if not target.deployment_flow_arn:
        raise NotFound(f"{target.description} has no deployment flow (deploy the stack's newer template)")
    if stage is not None:
        endpoint_for(target, pipeline, stage)  # an unknown stage fails here, in one line
    deployment_id = new_deployment_id(pipeline, datetime.now(UTC), f"{action}|{stage}|{uuid.uuid4()}")
    request: dict[str, Any] = {"pipeline": pipeline, "run_id": deployment_id, "action": action, "trigger": "cli"}
    if stage:
        request["stage"] = stage
    if package_arn:
        request["model_package_arn"] = package_arn
    response = target.sfn.start_execution(
        stateMachineArn=target.deployment_flow_arn, name=deployment_id, input=json.dumps(request)
    )
    return deployment_id, str(response["executionArn"])


def start_deployment_rerun(target: Target, run: dict[str, Any], rerun: dict[str, Any]) -> str:
    """Start a recorded deployment's flow again (the same id: units that succeeded are skipped)."""
    deployment_id = run["PK"].split("#", 1)[1]
    request: dict[str, Any] = {
        "pipeline": run["pipeline"],
        "run_id": deployment_id,
        "stage": run.get("stage"),
        "action": run.get("deploy_action") or "deploy",
        "model_package_arn": run.get("model_package_arn"),
        "trigger": "rerun",
    }
    if rerun:
        request["rerun"] = rerun
    name = f"{deployment_id}-r{int(run.get('run_attempt') or 0) + 1}-{uuid.uuid4().hex[:8]}"
    response = target.sfn.start_execution(
        stateMachineArn=target.deployment_flow_arn, name=name, input=json.dumps(request)
    )
    return str(response["executionArn"])


def deployment_summary(target: Target, deployment_id: str, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object scripts read for a deployment."""
    run = run or target.table.get_run(deployment_id)
    if run is None or run.get("kind") != "deployment":
        raise NotFound(f"no deployment {deployment_id!r} in {target.table_name}")
    units = run_summary(target, deployment_id)["units"]
    return {
        "deployment_id": deployment_id,
        "pipeline": run.get("pipeline"),
        "stage": run.get("stage"),
        "action": run.get("deploy_action"),
        "trigger": run.get("deploy_trigger"),
        "status": run.get("status"),
        "model_package_arn": run.get("model_package_arn"),
        "previous_model_package_arn": run.get("previous_model_package_arn") or None,
        "endpoint_name": run.get("endpoint_name"),
        "strategy": run.get("strategy"),
        "traffic_steps": run.get("traffic_steps") or [],
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "flow_execution_arn": run.get("flow_execution_arn"),
        "units": units,
        "error": run.get("error") if run.get("status") in ("FAILED", "ROLLED_BACK") else None,
    }


def list_deployments(target: Target, pipeline: str, limit: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "deployment_id": run["PK"].split("#", 1)[1],
            "stage": run.get("stage"),
            "action": run.get("deploy_action"),
            "status": run.get("status"),
            "model_package_arn": run.get("model_package_arn"),
            "previous_model_package_arn": run.get("previous_model_package_arn") or None,
            "strategy": run.get("strategy"),
            "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"),
            "error": run.get("error") if run.get("status") in ("FAILED", "ROLLED_BACK") else None,
        }
        for run in target.table.list_deployments(pipeline, limit=limit)
    ]


def list_endpoints(target: Target) -> list[dict[str, Any]]:
    """The stack's endpoints as recorded, with SageMaker's live status."""
    endpoints = []
    for record in target.table.list_endpoints():
        try:
            status = target.sagemaker.describe_endpoint(EndpointName=record["endpoint_name"])["EndpointStatus"]
        except target.sagemaker.exceptions.ClientError:
            status = "Deleted"
        endpoints.append(
            {
                "name": record["endpoint_name"],
                "pipeline": record.get("pipeline"),
                "stage": record.get("stage"),
                "status": status,
                "model_package_arn": record.get("model_package_arn"),
                "previous_model_package_arn": record.get("previous_model_package_arn") or None,
                "updated_at": record.get("updated_at"),
            }
        )
    return endpoints


def predict(target: Target, pipeline: str, stage: str | None, data_file: Path) -> dict[str, Any]:
    """Send raw rows (the columns the pipeline trains on, without the label) to the stage's endpoint."""
    endpoint, stage = endpoint_for(target, pipeline, stage)
    if not data_file.is_file():
        raise NotFound(f"data file {data_file} does not exist")
    body = data_file.read_bytes()
    if not body.strip():
        raise BadArgument(f"data file {data_file} is empty")
    record = target.table.get_endpoint(endpoint) or {}
    runtime = target.client("sagemaker-runtime")
    try:
        response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body=body)
    except runtime.exceptions.ValidationError as exc:
        raise NotFound(f"{pipeline} has no endpoint for stage {stage} ({endpoint}): {exc}") from exc
    except runtime.exceptions.ModelError as exc:
        message = exc.response.get("OriginalMessage") or exc.response.get("Error", {}).get("Message")
        raise BadArgument(f"endpoint {endpoint} could not score {data_file}: {message}") from exc
    answer = response["Body"].read().decode()
    predictions = [float(value) for value in answer.replace(",", "\n").split()]
    return {
        "endpoint": endpoint,
        "stage": stage,
        "model_package_arn": record.get("model_package_arn"),
        "predictions": predictions,
    }
