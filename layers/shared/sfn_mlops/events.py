"""The events Lambda functions are invoked with, as pydantic models: each handler parses its event once, here.

A bad event becomes ``InvalidEvent`` with one readable line naming the bad fields (never pydantic's
``ValidationError``, never a ``KeyError`` from deep inside the domain code).
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sfn_mlops.errors import InvalidEvent, validation_problems
from sfn_mlops.naming import PIPELINE_NAME_PATTERN
from sfn_mlops.oneline import one_line

M = TypeVar("M", bound=BaseModel)

# A run id of any kind: training run or deployment (<pipeline>-<time>-<digest>) or batch (batch-<...>).
ANY_RUN_ID = r"^(batch-)?[a-z][a-z0-9-]{0,23}-\d{8}t\d{6}-[0-9a-f]{8}$"
UNIT_NAME = r"^[a-z][a-z_]{0,31}$"
SHA256_HEX = r"^[0-9a-f]{64}$"
S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S.*$"


def is_run_of(run_id: str, pipeline: str, *, batch: bool = False) -> bool:
    """Whether ``run_id`` is a run (``batch``: or a batch) of exactly ``pipeline``: a prefix test would take a run
    of pipeline ``a-b`` for a run of ``a``."""
    kind = "(batch-)?" if batch else ""
    return re.fullmatch(rf"{kind}{re.escape(pipeline)}-\d{{8}}t\d{{6}}-[0-9a-f]{{8}}", run_id) is not None


def parse_event(model: type[M], event: object, what: str) -> M:
    """``event`` as ``model``, or ``InvalidEvent("<what> is malformed: <field>: <problem>")``."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"{what} is malformed: the event is a {type(event).__name__}, not a JSON object")
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise InvalidEvent(f"{what} is malformed: {validation_problems(exc, root='<event>', limit=3)}") from exc
    except (TypeError, ValueError, RecursionError) as exc:  # a validator's own failure on an odd input
        raise InvalidEvent(f"{what} is malformed: {one_line(str(exc))}") from exc


class _Event(BaseModel):
    # Step Functions adds fields of its own (AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID): extra keys are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# ------------------------------------------------------------------------------------------------ workers
class WorkerEvent(_Event):
    """What the executor starts a worker with, and what the worker's functions are given."""

    run_id: str = Field(pattern=ANY_RUN_ID)
    pipeline: str = Field(pattern=PIPELINE_NAME_PATTERN.pattern)
    unit: str = Field(pattern=UNIT_NAME)
    attempt: int = Field(ge=1, le=10_000)
    inputs: dict[str, Any]

    @model_validator(mode="after")
    def _run_of_the_pipeline(self) -> WorkerEvent:
        if not is_run_of(self.run_id, self.pipeline, batch=True):
            raise ValueError(f"run_id {self.run_id!r} is not a run of pipeline {self.pipeline!r}")
        return self


class RegisterEvent(WorkerEvent):
    unit: Literal["register"] = "register"


class JobEvent(WorkerEvent):
    unit: Literal["preprocess", "train", "evaluate"]


# ------------------------------------------------------------------------------------------------ executor
class CacheLookupEvent(_Event):
    pipeline: str = Field(pattern=PIPELINE_NAME_PATTERN.pattern)
    run_id: str = Field(pattern=ANY_RUN_ID)
    unit: str = Field(pattern=UNIT_NAME)
    fingerprint: str = Field(pattern=SHA256_HEX)
    max_age_s: int = Field(default=0, ge=0, le=10 * 365 * 24 * 3600)
    # The unit's inputs as the executor was given them: where the fingerprint is made of them alone, it is checked.
    inputs: dict[str, Any]


class ReleaseLockEvent(_Event):
    run_id: str = Field(pattern=ANY_RUN_ID)
    unit: str = Field(pattern=UNIT_NAME)
    execution_arn: str = Field(default="", max_length=2048)


# ------------------------------------------------------------------------------------------------ training flow
class DatasetRef(_Event):
    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = Field(default=None, max_length=1024)


class RunRequest(_Event):
    """The training flow's input (from the trigger, ``mlops run`` or ``mlops rerun``)."""

    pipeline: str = Field(pattern=PIPELINE_NAME_PATTERN.pattern)
    run_id: str = Field(pattern=ANY_RUN_ID)
    dataset: DatasetRef
    rerun: dict[str, Any] | None = None


class PlanRunEvent(_Event):
    run: RunRequest
    execution_arn: str = Field(default="", max_length=2048)

    @model_validator(mode="before")
    @classmethod
    def _flow_input_itself(cls, data: Any) -> Any:
        # Called with the flow's input itself (no "run" envelope): the planner has always accepted both.
        if isinstance(data, dict) and "run" not in data:
            return {"run": data, "execution_arn": data.get("execution_arn", "")}
        return data


class GateEvent(_Event):
    model_config = ConfigDict(extra="allow", frozen=True)

    metric: str = Field(min_length=1, max_length=128)
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    direction: Literal["minimize", "maximize"] = "minimize"


class ReadMetricsEvent(_Event):
    evaluation_uri: str = Field(pattern=S3_URI, max_length=1100)
    gate: GateEvent


class RejectEvent(_Event):
    run_id: str = Field(pattern=ANY_RUN_ID)
    model_package_arn: str = Field(min_length=1, max_length=2048)
    gate: GateEvent
    value: float = Field(allow_inf_nan=False)


# ------------------------------------------------------------------------------------------------ flows' ends
class PlanRef(_Event):
    model_config = ConfigDict(extra="allow", frozen=True)

    run_id: str = Field(pattern=ANY_RUN_ID)
    pipeline: str = Field(pattern=PIPELINE_NAME_PATTERN.pattern)


class BatchPlanRef(PlanRef):
    """What recording a batch reads of its plan."""

    input: dict[str, Any]
    model_package_arn: str = Field(min_length=1, max_length=2048)
    order: list[str] = Field(min_length=1)


class DeploymentPlanRef(PlanRef):
    """What recording a deployment reads of its plan."""

    stage: str = Field(min_length=1, max_length=64)
    model_package_arn: str = Field(min_length=1, max_length=2048)
    previous_model_package_arn: str = Field(default="", max_length=2048)
    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    strategy: str = Field(min_length=1, max_length=64)
    order: list[str] = Field(min_length=1)


class UnitResult(_Event):
    """A unit's result as a flow collected it (the executor's output)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: str | None = None
    outputs: dict[str, Any] | None = None


class FlowError(_Event):
    """Why a flow failed, as its "Explain the failure" step put it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    unit: str | None = None
    error: str = Field(min_length=1, max_length=256)
    cause: str = ""


class RecordEvent(_Event):
    """What a flow's last step is given: its plan, the units' results and, when it failed, the error."""

    plan: PlanRef
    results: dict[str, UnitResult] = Field(default_factory=dict)
    error: FlowError | None = None
    rolled_back: bool = False
    execution_arn: str = Field(default="", max_length=2048)

    def results_dump(self) -> dict[str, Any]:
        """The results as the flow gave them (nothing added)."""
        return {unit: result.model_dump(exclude_unset=True) for unit, result in self.results.items()}


class BatchRecordEvent(RecordEvent):
    plan: BatchPlanRef


class DeploymentRecordEvent(RecordEvent):
    plan: DeploymentPlanRef


class SmokeTestConfig(_Event):
    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    raw_test_uri: str | None = Field(default=None, max_length=1100)
    predictions_uri: str | None = Field(default=None, max_length=1100)
    rows: int = Field(ge=1, le=1000)
    tolerance: float = Field(ge=0, allow_inf_nan=False)


def smoke_test_config(event: WorkerEvent) -> SmokeTestConfig:
    return parse_event(SmokeTestConfig, event.inputs.get("config"), "smoke-test input config")
