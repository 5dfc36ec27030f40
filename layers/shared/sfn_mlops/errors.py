"""Named exceptions. Lambda raises them and ASL ``Retry``/``Catch`` match them by class name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def validation_problems(exc: ValidationError, root: str = "<input>", limit: int | None = None) -> str:
    """A pydantic error as one line for a refusal: ``field.path: message; ...`` for the first ``limit`` problems
    (``root`` names a whole-input error), ``(and N more)`` for the rest, control characters escaped."""
    from sfn_mlops.oneline import one_line  # errors.py is imported by everything: it imports nothing at load

    errors = exc.errors()
    shown = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in errors[:limit])
    more = f" (and {len(errors) - limit} more)" if limit is not None and len(errors) > limit else ""
    return one_line(shown + more)


class MlopsError(Exception):
    """Base class: a failure with a message meant for the person reading the run's error."""


class PipelineNotFound(MlopsError):
    """No pipeline config is published under the pipeline's prefix."""


class InvalidPipelineConfig(MlopsError):
    """The pipeline config does not validate."""


class DatasetValidationError(MlopsError):
    """The input dataset cannot be used (empty, not CSV, missing label, non-numeric values...)."""


class MetricsNotFound(MlopsError):
    """The evaluation report is missing or does not contain the gate's metric."""


class RegistrationError(MlopsError):
    """The model package could not be registered."""


class InvalidUnitInput(MlopsError):
    """A worker was started with input it cannot use."""


class InvalidRerun(MlopsError):
    """A rerun asks for something the run cannot do (unknown unit, --only without its upstream...)."""


class UnitAlreadyRunning(MlopsError):
    """Another execution holds the unit's lock and its lease has not expired."""


class JobNameInUse(MlopsError):
    """A SageMaker job already exists under this attempt's name and did not complete: it cannot be adopted."""


class LineageNotFound(MlopsError):
    """The metadata table has no lineage for this dataset or model package."""


class ModelPackageNotFound(MlopsError):
    """No such model package, or it is not in one of this stack's model package groups."""


class ApprovalRefused(MlopsError):
    """An approval or rejection that cannot be given (no reason, the quality gate rejected the package...)."""


class InvalidBaseline(MlopsError):
    """The data baseline (statistics.json, constraints.json) is missing or malformed, or cannot be made."""


class InvalidEvent(InvalidUnitInput):
    """A Lambda function was invoked with an event that does not match its model (raised before any side effect).

    A kind of InvalidUnitInput, so callers that already handle a worker's bad input handle this one too; ASL
    matches it by its own name (``InvalidEvent``)."""


class FingerprintMismatch(InvalidUnitInput):
    """A unit's config does not hash to the digest its run planned: the input was changed after planning."""


class NonFiniteNumber(MlopsError):
    """A NaN or infinite number was about to be stored (DynamoDB item) or used (metric, config)."""


class InvalidDataContract(MlopsError):
    """A data contract (declared, pinned or given to `mlops contract update`) does not validate."""


class CostGuardrailExceeded(InvalidPipelineConfig):
    """A pipeline config asks for an instance type outside the stack's AllowedInstanceTypes, or a longer runtime
    than its MaxJobRuntimeSeconds: raised when the run is planned, before any job starts (IAM would deny it later)."""


class InvalidJobRequest(InvalidUnitInput):
    """A SageMaker job request breaks the API's own limits (an instance type the job kind does not offer, an
    argument over 256 characters, a runtime over the maximum...): refused before it is sent, with the
    ValidationException message SageMaker would answer (sfn_mlops.api_limits). A kind of InvalidUnitInput; ASL
    matches it by its own name."""
