"""Adopt, not recreate: a SageMaker job that already completed under the name this attempt would use.

Names are unique per run, unit and attempt, so the same name comes back only when the same attempt is
executed again (a Step Functions redrive of a worker, a retried task after the job was created). Then a
completed job is the work already done: the worker takes its result instead of failing on the name.
"""

from __future__ import annotations

from typing import Any

from sfn_mlops.errors import JobNameInUse
from sfn_mlops.job_failures import readable_reason

DESCRIBE = {"processing": "describe_processing_job", "training": "describe_training_job"}
NAME_FIELD = {"processing": "ProcessingJobName", "training": "TrainingJobName"}


def _describe(sm: Any, kind: str, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = getattr(sm, DESCRIBE[kind])(**{NAME_FIELD[kind]: name})
    except sm.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        message = str(error.get("Message", "")).lower()
        # AWS: "Requested resource not found." (training), "Could not find requested job..." (processing)
        if error.get("Code") in {"ValidationException", "ResourceNotFound"} and (
            "not found" in message or "could not find" in message
        ):
            return None
        raise
    return result


def completed_job(sm: Any, kind: str, name: str) -> dict[str, Any] | None:
    """The worker's job result if a job under ``name`` completed; None if there is none."""
    described = _describe(sm, kind, name)
    if described is None:
        return None
    status = described.get("ProcessingJobStatus") or described.get("TrainingJobStatus")
    if status != "Completed":
        raise JobNameInUse(
            f"SageMaker {kind} job {name} already exists with status {status} "
            f"({readable_reason(described.get('FailureReason') or 'no failure reason')}); "
            "rerun the unit to start a new attempt"
        )
    if kind == "training":
        return {
            "job_name": described["TrainingJobName"],
            "job_arn": described["TrainingJobArn"],
            "model_data": described["ModelArtifacts"]["S3ModelArtifacts"],
        }
    return {"job_name": described["ProcessingJobName"], "job_arn": described["ProcessingJobArn"]}
