"""Register a trained model in the SageMaker Model Registry, with its metrics and lineage attached."""

from __future__ import annotations

import hashlib
from typing import Any

from sfn_mlops.errors import InvalidUnitInput, RegistrationError
from sfn_mlops.metadata import MetadataTable


def ensure_group(sm: Any, group: str, pipeline: str) -> None:
    """Pipelines are folders: the first registration of a pipeline creates its group."""
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except sm.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
            raise
        sm.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"Models trained by the sfn-mlops pipeline '{pipeline}'",
            Tags=[{"Key": "sfn-mlops:pipeline", "Value": pipeline}],
        )


def customer_metadata(run_id: str, pipeline: str, dataset: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    """Run and dataset identity on the package itself, so the link shows in SageMaker Studio too."""
    properties = {
        "sfn-mlops:run-id": run_id,
        "sfn-mlops:pipeline": pipeline,
        "sfn-mlops:dataset-uri": dataset["uri"],
        "sfn-mlops:dataset-version": str(dataset.get("version") or ""),
        "sfn-mlops:dataset-etag": str(dataset.get("etag") or ""),
    }
    properties.update({f"metric:{name}": f"{value:.6g}" for name, value in metrics.items()})
    return {k: v[:256] for k, v in properties.items()}


def register_model(sm: Any, table: MetadataTable, event: dict[str, Any]) -> dict[str, Any]:
    try:
        run_id, pipeline = str(event["run_id"]), str(event["pipeline"])
        inputs = event["inputs"]
        config, dataset = inputs["config"], inputs["dataset"]
        model_data = inputs["model"]["model_data"]
        evaluation = inputs["evaluation"]
        metrics = evaluation["metrics"]
    except (KeyError, TypeError) as exc:
        raise InvalidUnitInput(f"register input is missing {exc}") from exc

    # The same artifact is registered once per group: a rerun of this unit returns the package it made.
    group = config["model_package_group"]
    existing = table.find_package_for_artifact(model_data)
    if existing is not None:
        described = sm.describe_model_package(ModelPackageName=existing["model_package_arn"])
        if described.get("ModelPackageGroupName") == group:
            reason = f"set by sfn-mlops run {run_id} (register.approval_status)"
            return _result(_decide_if_undecided(sm, described, config["approval_status"], reason), reused=True)
        # --set register.model_package_group=...: the artifact is registered in that group too.

    ensure_group(sm, group, pipeline)
    try:
        response = sm.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"{pipeline} run {run_id} on {dataset['uri']}",
            ClientToken=hashlib.sha256(f"{run_id}|{model_data}".encode()).hexdigest()[:36],
            InferenceSpecification={
                "Containers": [{"Image": config["image_uri"], "ModelDataUrl": model_data}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
                "SupportedRealtimeInferenceInstanceTypes": config["inference_instance_types"],
                "SupportedTransformInstanceTypes": config["transform_instance_types"],
            },
            ModelApprovalStatus=config["approval_status"],
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": evaluation["evaluation_uri"]}
                }
            },
            CustomerMetadataProperties=customer_metadata(run_id, pipeline, dataset, metrics),
            Tags=[
                {"Key": "sfn-mlops:run-id", "Value": run_id},
                {"Key": "sfn-mlops:pipeline", "Value": pipeline},
            ],
        )
    except sm.exceptions.ClientError as exc:
        raise RegistrationError(f"could not register {model_data} in group {group}: {exc}") from exc
    arn = response["ModelPackageArn"]
    upstream = {unit: state for unit, state in table.unit_snapshot(run_id).items() if unit != "register"}
    table.record_model_package(model_data, arn, run_id, dataset, metrics, units=upstream)
    return _result(sm.describe_model_package(ModelPackageName=arn), reused=False)


def _decide_if_undecided(sm: Any, described: dict[str, Any], approval_status: str, reason: str) -> dict[str, Any]:
    """An approval status set by a run (--set register.approval_status, or the quality gate rejecting a
    rerun) applies to a package nobody has decided on yet; a decision already given is never undone."""
    current = described.get("ModelApprovalStatus")
    if current != "PendingManualApproval" or approval_status == current:
        return described
    sm.update_model_package(
        ModelPackageArn=described["ModelPackageArn"],
        ModelApprovalStatus=approval_status,
        ApprovalDescription=reason[:1000],
        # passed again: the run and dataset identity must stay on the package
        CustomerMetadataProperties=described.get("CustomerMetadataProperties") or {},
    )
    updated: dict[str, Any] = sm.describe_model_package(ModelPackageName=described["ModelPackageArn"])
    return updated


def reject_superseded_package(sm: Any, event: dict[str, Any]) -> dict[str, Any]:
    """A rerun the quality gate rejects also rejects the package an earlier execution of the run registered,
    unless somebody has already approved or rejected it."""
    try:
        arn, run_id = str(event["model_package_arn"]), str(event["run_id"])
        gate, value = event["gate"], float(event["value"])
        comparison = "<" if gate["direction"] == "minimize" else ">"
        reason = f"rejected by the quality gate of run {run_id}: {gate['metric']} {value:.6g} is not {comparison} "
        reason += f"{gate['threshold']}"
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidUnitInput(f"reject input is missing or malformed: {exc}") from exc
    described = sm.describe_model_package(ModelPackageName=arn)
    before = described.get("ModelApprovalStatus")
    after = _decide_if_undecided(sm, described, "Rejected", reason).get("ModelApprovalStatus")
    return {"model_package_arn": arn, "approval_status": after, "changed": after != before}


def _result(described: dict[str, Any], reused: bool) -> dict[str, Any]:
    return {
        "model_package_arn": described["ModelPackageArn"],
        "model_package_group": described.get("ModelPackageGroupName"),
        "model_package_version": described.get("ModelPackageVersion"),
        "approval_status": described.get("ModelApprovalStatus"),
        "reused": reused,
    }
