"""What the CLI does for batch inference, against any target: start batches, rerun them, read them (the
per-pipeline batch schedule is kept by pipeline_schedules.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from sfn_mlops.naming import PIPELINE_NAME_PATTERN

from sfn_mlops_local.cli_errors import BadArgument, NotFound
from sfn_mlops_local.operations import Target, run_summary


def start_batch(target: Target, pipeline: str, data_file: Path, package_arn: str | None = None) -> tuple[str, str]:
    """Upload the rows beside the pipeline's batches and start the batch flow on them; (batch id, execution).

    The file goes under ``batch/<pipeline>/requests/``, not ``incoming/``: an upload there starts a batch of its
    own. The flow validates the rest (the pipeline, the package, the rows)."""
    from sfn_mlops.batch import new_batch_id

    if not target.batch_flow_arn:
        raise NotFound(f"{target.description} has no batch flow (deploy the stack's newer template)")
    if not PIPELINE_NAME_PATTERN.match(pipeline):
        raise BadArgument(f"{pipeline!r} is not a pipeline name (lowercase letters, digits and '-', 24 at most)")
    if not data_file.is_file():
        raise NotFound(f"data file {data_file} does not exist")
    if not data_file.read_bytes().strip():
        raise BadArgument(f"data file {data_file} is empty")
    # Refused before the upload, so a batch of a pipeline that is not there leaves no object behind
    # (the flow's plan checks it again: it is the boundary for every other way a batch starts).
    config_key = f"pipelines/{pipeline}/pipeline.json"
    try:
        target.s3.head_object(Bucket=target.bucket, Key=config_key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        raise NotFound(
            f"pipeline {pipeline!r} is not published (no s3://{target.bucket}/{config_key}); "
            f"publish it with 'mlops publish {pipeline}'"
        ) from None
    started = datetime.now(UTC)
    token = uuid.uuid4().hex[:8]
    key = f"batch/{pipeline}/requests/{started:%Y%m%dT%H%M%S}-{token}/{data_file.name}"
    with data_file.open("rb") as body:
        response = target.s3.put_object(Bucket=target.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    batch_id = new_batch_id(pipeline, started, f"cli|{key}")
    request: dict[str, Any] = {
        "pipeline": pipeline,
        "run_id": batch_id,
        "input": {"bucket": target.bucket, "key": key, "version_id": response.get("VersionId")},
        "trigger": "cli",
    }
    if package_arn:
        request["model_package_arn"] = package_arn
    execution = target.sfn.start_execution(
        stateMachineArn=target.batch_flow_arn, name=batch_id, input=json.dumps(request)
    )
    return batch_id, str(execution["executionArn"])


def start_batch_rerun(target: Target, run: dict[str, Any], rerun: dict[str, Any]) -> str:
    """Start a recorded batch's flow again (the same id: units that succeeded with the same inputs are skipped)."""
    batch_id = run["PK"].split("#", 1)[1]
    source = run.get("input") or {}
    request: dict[str, Any] = {
        "pipeline": run["pipeline"],
        "run_id": batch_id,
        "input": {"bucket": source.get("bucket"), "key": source.get("key"), "version_id": source.get("version_id")},
        "model_package_arn": run.get("model_package_arn"),
        "trigger": "rerun",
    }
    if rerun:
        request["rerun"] = rerun
    name = f"{batch_id}-r{int(run.get('run_attempt') or 0) + 1}-{uuid.uuid4().hex[:8]}"
    response = target.sfn.start_execution(stateMachineArn=target.batch_flow_arn, name=name, input=json.dumps(request))
    return str(response["executionArn"])


def batch_summary(target: Target, batch_id: str, followed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object scripts read for a batch (``mlops batch --json``)."""
    from sfn_mlops.batch import summary_of

    run = target.table.get_run(batch_id)
    if run is None:  # refused before it was planned: only the flow knows why
        error = (followed or {}).get("error")
        return {
            "run_id": batch_id,
            "pipeline": None,
            "status": "FAILED",
            "model_package_arn": None,
            "output_uri": None,
            "rows_scored": 0,
            "drift": {"status": None, "violations": []},
            "units": [],
            "error": error,
        }
    if run.get("kind") != "batch":
        raise BadArgument(f"{batch_id} is a {run.get('kind') or 'training'} run, not a batch")
    units = [{k: v for k, v in u.items() if k != "outputs"} for u in run_summary(target, batch_id)["units"]]
    return {**summary_of(batch_id, run), "units": units}


def read_predictions(target: Target, output_uri: str) -> list[str]:
    """The transform job's output lines (one per input row: the id columns, if any, then the prediction)."""
    bucket, key = output_uri[5:].split("/", 1)
    body = target.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [line for line in body.splitlines() if line.strip()]
