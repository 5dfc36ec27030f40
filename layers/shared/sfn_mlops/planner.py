"""Plan a run: pin the dataset and the code, resolve images and parameters, record the run."""

from __future__ import annotations

import hashlib
from typing import Any

from sfn_mlops.datasets import resolve_dataset
from sfn_mlops.errors import InvalidUnitInput, PipelineNotFound
from sfn_mlops.images import image_uri
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.naming import is_run_id
from sfn_mlops.pipeline import PipelineConfig, parse_pipeline_config
from sfn_mlops.s3uri import s3_uri
from sfn_mlops.settings import Settings

UNIT_ORDER = ["preprocess", "train", "evaluate", "register"]


def config_key(settings: Settings, pipeline: str) -> str:
    return f"{settings.pipelines_prefix}{pipeline}/pipeline.json"


def load_pipeline_config(s3: Any, settings: Settings, pipeline: str) -> PipelineConfig:
    key = config_key(settings, pipeline)
    try:
        body = s3.get_object(Bucket=settings.artifact_bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        raise PipelineNotFound(
            f"pipeline {pipeline!r} is not published (no s3://{settings.artifact_bucket}/{key}); "
            f"publish it with 'mlops publish {pipeline}'"
        ) from exc
    config = parse_pipeline_config(body, source=s3_uri(settings.artifact_bucket, key))
    if config.name != pipeline:
        raise PipelineNotFound(f"{key} names pipeline {config.name!r}, expected {pipeline!r}")
    return config


def pin_script(s3: Any, settings: Settings, pipeline: str, run_id: str, script: str) -> dict[str, str]:
    """Copy a published script into the run's prefix once, so reruns of a run use the same code."""
    name = script.rsplit("/", 1)[-1]
    source_key = f"{settings.pipelines_prefix}{pipeline}/{script}"
    target_key = f"{settings.runs_prefix}{pipeline}/{run_id}/code/{name}"
    bucket = settings.artifact_bucket
    try:
        body = s3.get_object(Bucket=bucket, Key=target_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        try:
            body = s3.get_object(Bucket=bucket, Key=source_key)["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise PipelineNotFound(f"pipeline {pipeline!r} has no script s3://{bucket}/{source_key}") from exc
        s3.put_object(Bucket=bucket, Key=target_key, Body=body)
    return {"uri": s3_uri(bucket, target_key), "sha256": hashlib.sha256(body).hexdigest()}


def _hyperparameters(config: PipelineConfig) -> dict[str, str]:
    return {k: str(v) for k, v in config.train.hyperparameters.items()}


def build_plan(s3: Any, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    pipeline = str(event.get("pipeline", ""))
    run_id = str(event.get("run_id", ""))
    raw_dataset = event.get("dataset") or {}
    if not is_run_id(run_id) or not run_id.startswith(f"{pipeline}-"):
        raise InvalidUnitInput(f"run_id {run_id!r} is not a run id of pipeline {pipeline!r}")
    if not raw_dataset.get("bucket") or not raw_dataset.get("key"):
        raise InvalidUnitInput("the run input needs dataset.bucket and dataset.key")
    config = load_pipeline_config(s3, settings, pipeline)
    dataset = resolve_dataset(s3, raw_dataset["bucket"], raw_dataset["key"], raw_dataset.get("version_id"))
    runs_root = s3_uri(settings.artifact_bucket, f"{settings.runs_prefix}{pipeline}/{run_id}/")
    categorical = [f"{col}={','.join(values)}" for col, values in config.data.categorical.items()]
    xgboost_image = image_uri("xgboost")
    return {
        "run_id": run_id,
        "pipeline": pipeline,
        "dataset": dataset.to_dict(),
        "gate": config.gate.model_dump(),
        "order": UNIT_ORDER,
        "units": {
            "preprocess": {
                "image_uri": image_uri(config.preprocess.image),
                "script": pin_script(s3, settings, pipeline, run_id, config.preprocess.script),
                "compute": config.preprocess.compute.model_dump(),
                "label": config.data.label,
                "categorical": categorical,
                "train_ratio": config.preprocess.train_ratio,
                "validation_ratio": config.preprocess.validation_ratio,
                "seed": config.preprocess.seed,
                "runs_root": runs_root,
            },
            "train": {
                "image_uri": image_uri(config.train.image),
                "compute": config.train.compute.model_dump(),
                "hyperparameters": _hyperparameters(config),
                "runs_root": runs_root,
            },
            "evaluate": {
                "image_uri": image_uri(config.evaluate.image),
                "script": pin_script(s3, settings, pipeline, run_id, config.evaluate.script),
                "compute": config.evaluate.compute.model_dump(),
                "runs_root": runs_root,
            },
            "register": {
                **config.registration.model_dump(),
                "image_uri": xgboost_image,
                "problem_type": config.problem_type,
            },
        },
    }


def plan_run(s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    plan = build_plan(s3, settings, event)
    plan["run_attempt"] = table.start_run(plan, flow_execution_arn=str(event.get("execution_arn", "")))
    return plan
