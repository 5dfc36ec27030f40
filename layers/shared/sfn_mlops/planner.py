"""Plan a run: pin the dataset and the code, resolve images and parameters, record the run."""

from __future__ import annotations

import hashlib
from typing import Any

from sfn_mlops.contract import contract_for_plan
from sfn_mlops.datasets import resolve_dataset
from sfn_mlops.errors import InvalidUnitInput, PipelineNotFound
from sfn_mlops.events import PlanRunEvent, is_run_of, parse_event
from sfn_mlops.fingerprint import stamp_config_digests, static_fingerprints
from sfn_mlops.guardrails import check_cost_guardrails
from sfn_mlops.images import image_uri
from sfn_mlops.lineage import record_dataset_use
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.pipeline import (
    CacheSpec,
    EvaluateSpec,
    PipelineConfig,
    PreprocessSpec,
    TrainSpec,
    parse_pipeline_config,
)
from sfn_mlops.registry import model_package_group
from sfn_mlops.rerun import apply_overrides, parse_rerun, unit_policies
from sfn_mlops.s3uri import s3_uri
from sfn_mlops.settings import Settings

UNIT_ORDER = ["preprocess", "train", "evaluate", "register"]
# A lock outlives its holder's longest possible run by this much before another execution may take it.
LEASE_MARGIN_S = 900
REGISTER_LEASE_S = 900


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


def load_run_config(s3: Any, settings: Settings, pipeline: str, run_id: str) -> PipelineConfig:
    """The config a run started with, pinned in the run's prefix: reruns use it, not a later publish."""
    key = f"{settings.runs_prefix}{pipeline}/{run_id}/code/pipeline.json"
    bucket = settings.artifact_bucket
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return parse_pipeline_config(body, source=s3_uri(bucket, key))
    except s3.exceptions.NoSuchKey:
        config = load_pipeline_config(s3, settings, pipeline)
        s3.put_object(Bucket=bucket, Key=key, Body=config.model_dump_json(indent=2, by_alias=True).encode())
        return config


def pin_script(s3: Any, settings: Settings, pipeline: str, run_id: str, script: str) -> dict[str, str]:
    """Copy a published script into the run's prefix once, so reruns of a run use the same code.

    Pinned under its path in the pipeline folder: two scripts with one file name stay two scripts."""
    source_key = f"{settings.pipelines_prefix}{pipeline}/{script}"
    target_key = f"{settings.runs_prefix}{pipeline}/{run_id}/code/{script}"
    bucket = settings.artifact_bucket
    try:
        body = s3.get_object(Bucket=bucket, Key=target_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        try:
            body = s3.get_object(Bucket=bucket, Key=source_key)["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise PipelineNotFound(
                f"pipeline {pipeline!r} has no script s3://{bucket}/{source_key}: publish it again "
                f"('mlops publish {pipeline}')"
            ) from exc
        s3.put_object(Bucket=bucket, Key=target_key, Body=body)
    return {"uri": s3_uri(bucket, target_key), "sha256": hashlib.sha256(body).hexdigest()}


def _hyperparameters(config: PipelineConfig) -> dict[str, str]:
    return {k: str(v) for k, v in config.train.hyperparameters.items()}


def _control(cache: CacheSpec | None, lease_s: int, policy: str | None, fingerprint: str) -> dict[str, Any]:
    return {
        "policy": policy,
        "fingerprint": fingerprint,
        "cache": {
            "enabled": bool(cache and cache.enabled),
            "max_age_s": int((cache.max_age_hours if cache else 0) * 3600),
        },
        "lease_s": lease_s,
    }


def build_plan(
    s3: Any,
    settings: Settings,
    event: dict[str, Any],
    recorded: dict[str, Any] | None = None,
    table: MetadataTable | None = None,
) -> dict[str, Any]:
    """The run's plan: each unit's worker config, and each executor's policy, fingerprint, cache and lease.

    With ``table``, the model serving the pipeline's first stage is the champion the evaluate unit also scores
    (a different champion is a different input: evaluate runs again)."""
    pipeline = str(event.get("pipeline", ""))
    run_id = str(event.get("run_id", ""))
    raw_dataset = event.get("dataset") or {}
    if not is_run_of(run_id, pipeline):
        raise InvalidUnitInput(f"run_id {run_id!r} is not a run id of pipeline {pipeline!r}")
    if not raw_dataset.get("bucket") or not raw_dataset.get("key"):
        raise InvalidUnitInput("the run input needs dataset.bucket and dataset.key")
    options = parse_rerun(event.get("rerun"))
    recorded = recorded or {}
    # --set accumulates over a run's reruns: resuming the run keeps the parameters it last ran with.
    overrides = {**(recorded.get("overrides") or {}), **options.overrides}
    config = apply_overrides(load_run_config(s3, settings, pipeline, run_id), overrides, source=pipeline)
    check_cost_guardrails(config, settings)  # before any job starts (IAM would deny it only then)
    policies = unit_policies(UNIT_ORDER, options, recorded.get("units") or {})
    dataset = resolve_dataset(s3, raw_dataset["bucket"], raw_dataset["key"], raw_dataset.get("version_id"))
    runs_root = s3_uri(settings.artifact_bucket, f"{settings.runs_prefix}{pipeline}/{run_id}/")
    categorical = [f"{col}={','.join(values)}" for col, values in config.data.categorical.items()]
    xgboost_image = image_uri("xgboost")
    units: dict[str, dict[str, Any]] = {
        "preprocess": {
            "image_uri": image_uri(config.preprocess.image),
            # How the script is started (python3 or smspark-submit): another engine is another job, so it is
            # part of the unit's fingerprint.
            "engine": config.preprocess.engine,
            "script": pin_script(s3, settings, pipeline, run_id, config.preprocess.script),
            "compute": config.preprocess.compute.model_dump(),
            "label": config.data.label,
            "categorical": categorical,
            "train_ratio": config.preprocess.train_ratio,
            "validation_ratio": config.preprocess.validation_ratio,
            "seed": config.preprocess.seed,
            # The contract the data is checked against is part of the unit's inputs: updating it reruns preprocess.
            "contract": contract_for_plan(s3, settings.artifact_bucket, pipeline, config.data.contract),
            # What the label must be (a binary classification's has two classes): the data's checks read it.
            "problem_type": config.problem_type,
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
            "gate": {"metric": config.gate.metric, "direction": config.gate.direction},
            "runs_root": runs_root,
        },
        # An inference pipeline: the fitted preprocessing (inference script, scikit-learn image), then the model.
        # The group is the pipeline's own in this stack, and the worker, not the run, decides the approval.
        "register": {
            "model_package_group": model_package_group(settings.resource_prefix, pipeline),
            "inference_instance_types": config.registration.inference_instance_types,
            "transform_instance_types": config.registration.transform_instance_types,
            "image_uri": xgboost_image,
            "preprocessing_image_uri": image_uri("sklearn"),
            "script": pin_script(s3, settings, pipeline, run_id, config.registration.inference_script),
            "runs_root": runs_root,
            "problem_type": config.problem_type,
        },
    }
    if table is not None and config.gate.champion_margin is not None:
        from sfn_mlops.deployment import champion_for

        champion = champion_for(table, settings, pipeline, config.deploy.stages[0])
        if champion:
            units["evaluate"]["champion"] = champion
    dataset_dict = dataset.to_dict()
    fingerprints = static_fingerprints(units, dataset_dict)
    stamp_config_digests(units)  # after the fingerprints: workers check their config against it
    specs: dict[str, PreprocessSpec | TrainSpec | EvaluateSpec] = {
        "preprocess": config.preprocess,
        "train": config.train,
        "evaluate": config.evaluate,
    }
    control = {
        unit: _control(
            specs[unit].cache if unit in specs else None,
            specs[unit].compute.max_runtime_s + LEASE_MARGIN_S if unit in specs else REGISTER_LEASE_S,
            policies.get(unit),
            fingerprints[unit],
        )
        for unit in UNIT_ORDER
    }
    return {
        "run_id": run_id,
        "pipeline": pipeline,
        "dataset": dataset_dict,
        "gate": config.gate.model_dump(),
        "order": UNIT_ORDER,
        # The job flow ends after this unit ("" = run to the end): how --only stops short.
        "scope": {"only": options.only or "", "from": options.from_unit or ""},
        "overrides": overrides,
        # A package an earlier execution registered ("" if none): a rejecting gate rejects it too.
        "earlier_model_package_arn": recorded.get("model_package_arn") or "",
        "units": units,
        "control": control,
        "results": {},
    }


def plan_run(s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any] | PlanRunEvent) -> dict[str, Any]:
    """``event``: ``{"run": <the job flow's input>, "execution_arn": ...}`` (or the flow input itself)."""
    request = event if isinstance(event, PlanRunEvent) else parse_event(PlanRunEvent, event, "training flow input")
    run = request.run.model_dump(exclude_none=True)
    recorded = table.get_run(request.run.run_id)
    plan = build_plan(s3, settings, run, recorded, table)
    plan["run_attempt"] = table.start_run(plan, flow_execution_arn=request.execution_arn)
    record_dataset_use(table, plan["run_id"], plan["pipeline"], plan["dataset"])
    return plan
