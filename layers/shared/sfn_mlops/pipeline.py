"""A pipeline's config: one ``models/<name>/pipeline.json``, published to S3 next to its scripts."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sfn_mlops.errors import InvalidPipelineConfig
from sfn_mlops.naming import PIPELINE_NAME_PATTERN as PIPELINE_NAME

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
ImageName = Literal["sklearn", "xgboost"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DataSpec(_Strict):
    label: str = Field(min_length=1)
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    sample_file: str = "data/dataset.csv"


class ComputeSpec(_Strict):
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=10)
    volume_size_gb: int = Field(default=30, ge=1, le=512)
    max_runtime_s: int = Field(default=3600, ge=60, le=432000)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not INSTANCE_TYPE.match(value):
            raise ValueError(f"not a SageMaker instance type: {value!r}")
        return value


class CacheSpec(_Strict):
    """Opt-in reuse of an earlier run's success with the same inputs fingerprint."""

    enabled: bool = False
    max_age_hours: float = Field(default=24 * 30, gt=0, le=24 * 365)


def _script_path(value: str) -> str:
    """A script is a .py file inside the pipeline folder, named by its relative path."""
    parts = value.split("/")
    if not value.endswith(".py") or value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"a script is a relative path to a .py file inside the pipeline folder, not {value!r}")
    return value


ScriptPath = Annotated[str, AfterValidator(_script_path)]


class PreprocessSpec(_Strict):
    script: ScriptPath = "scripts/preprocess.py"
    cache: CacheSpec = CacheSpec()
    image: ImageName = "sklearn"
    compute: ComputeSpec = ComputeSpec()
    train_ratio: float = Field(default=0.7, gt=0, lt=1)
    validation_ratio: float = Field(default=0.15, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _leaves_a_test_split(self) -> PreprocessSpec:
        if self.train_ratio + self.validation_ratio >= 1:
            raise ValueError("train_ratio + validation_ratio must leave rows for the test split")
        return self


class TrainSpec(_Strict):
    image: ImageName = "xgboost"
    cache: CacheSpec = CacheSpec()
    compute: ComputeSpec = ComputeSpec()
    # SageMaker passes hyperparameters as strings; we accept numbers in the config and convert.
    hyperparameters: dict[str, str | int | float] = Field(min_length=1)

    @field_validator("hyperparameters")
    @classmethod
    def _needs_num_round(cls, value: dict[str, str | int | float]) -> dict[str, str | int | float]:
        if "num_round" not in value:
            raise ValueError("the built-in XGBoost algorithm needs hyperparameter 'num_round'")
        return value


class EvaluateSpec(_Strict):
    script: ScriptPath = "scripts/evaluate.py"
    cache: CacheSpec = CacheSpec()
    image: ImageName = "xgboost"
    compute: ComputeSpec = ComputeSpec()


class RegisterSpec(_Strict):
    model_package_group: str = Field(min_length=1, max_length=63)
    approval_status: Literal["Approved", "PendingManualApproval", "Rejected"] = "PendingManualApproval"
    inference_instance_types: list[str] = Field(default_factory=lambda: ["ml.m5.large"])
    transform_instance_types: list[str] = Field(default_factory=lambda: ["ml.m5.large"])


class GateSpec(_Strict):
    metric: str = Field(min_length=1)
    threshold: float
    direction: Literal["minimize", "maximize"] = "minimize"


class ScheduleSpec(_Strict):
    expression: str = "rate(7 days)"
    enabled: bool = False


class PipelineConfig(_Strict):
    name: str
    description: str = ""
    problem_type: Literal["regression", "binary_classification"]
    data: DataSpec
    preprocess: PreprocessSpec = PreprocessSpec()
    train: TrainSpec
    evaluate: EvaluateSpec = EvaluateSpec()
    # "register" would shadow BaseModel's ABC register(): keep the JSON name, rename the attribute.
    registration: RegisterSpec = Field(alias="register")
    gate: GateSpec
    schedule: ScheduleSpec = ScheduleSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PIPELINE_NAME.match(value):
            raise ValueError("pipeline names are 1-24 characters: lowercase letters, digits and '-'")
        return value


def parse_pipeline_config(raw: bytes | str | dict[str, object], source: str) -> PipelineConfig:
    """Parse and validate a pipeline config, turning any problem into one readable error."""
    try:
        data = json.loads(raw) if isinstance(raw, bytes | str) else raw
        return PipelineConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise InvalidPipelineConfig(f"{source} is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidPipelineConfig(f"{source} is invalid: {problems}") from exc
