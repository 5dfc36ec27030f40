"""A pipeline's config: one ``models/<name>/pipeline.json``, published to S3 next to its scripts."""

from __future__ import annotations

import difflib
import json
import math
import re
from functools import cache
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sfn_mlops.contract import DataContract
from sfn_mlops.errors import InvalidPipelineConfig
from sfn_mlops.naming import PIPELINE_NAME_PATTERN as PIPELINE_NAME

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
ImageName = Literal["sklearn", "xgboost"]
# Preprocess may also run on the Spark processing image (engine "spark": a PySpark script under spark-submit).
PreprocessImage = Literal["sklearn", "xgboost", "spark"]


# The SageMaker API's own enumerations of instance types, per kind of job (botocore's service model).
INSTANCE_TYPE_SHAPES = {
    "ProcessingInstanceType": "processing job",
    "TrainingInstanceType": "training job",
    "TransformInstanceType": "transform job",
    "ProductionVariantInstanceType": "endpoint",
}


@cache
def sagemaker_instance_types() -> dict[str, frozenset[str]]:
    """Loaded once, on the first config validated (about 60 ms once botocore is imported): never on import, so
    commands that only read records (runs, status) do not pay for it."""
    import botocore.loaders

    shapes = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")["shapes"]
    return {shape: frozenset(shapes[shape]["enum"]) for shape in INSTANCE_TYPE_SHAPES}


def check_instance_type(value: str, shape: str) -> str:
    """``value`` is one of the SageMaker API's instance types for ``shape``; the error names close ones."""
    allowed = sagemaker_instance_types()[shape]
    if value in allowed:
        return value
    close = difflib.get_close_matches(value, sorted(allowed), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (e.g. {', '.join(sorted(allowed)[:3])})"
    raise ValueError(f"{value!r} is not a SageMaker {INSTANCE_TYPE_SHAPES[shape]} instance type{hint}")


class _Strict(BaseModel):
    # No NaN or infinity in any number of a config (a float field, a hyperparameter, an override).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class DataSpec(_Strict):
    label: str = Field(min_length=1)
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    sample_file: str = "data/dataset.csv"
    # What every dataset must look like (columns, types, domains, ranges, the label's); None: the first
    # successful validation pins the contract it infers, and `mlops contract update` changes it.
    contract: DataContract | None = None

    @model_validator(mode="after")
    def _agrees_with_contract(self) -> DataSpec:
        if self.contract is None:
            return self
        if self.contract.label.name != self.label:
            raise ValueError(f"the contract's label {self.contract.label.name!r} is not the label {self.label!r}")
        if not self.categorical:  # declared once, in the contract
            return self.model_copy(update={"categorical": self.contract.categorical})
        if self.categorical != self.contract.categorical:
            raise ValueError(
                "categorical must match the contract's categorical columns and domains (or be left out): "
                f"{self.categorical} vs {self.contract.categorical}"
            )
        return self


class ComputeSpec(_Strict):
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=10)
    volume_size_gb: int = Field(default=30, ge=1, le=512)
    max_runtime_s: int = Field(default=3600, ge=60, le=432000)
    instance_shape: ClassVar[str] = "ProcessingInstanceType"

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not INSTANCE_TYPE.match(value):
            raise ValueError(f"not a SageMaker instance type: {value!r}")
        return check_instance_type(value, cls.instance_shape)


class TrainingComputeSpec(ComputeSpec):
    instance_shape: ClassVar[str] = "TrainingInstanceType"


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
    # pandas: a Python script run by python3; spark: a PySpark script run by spark-submit on the Spark image.
    engine: Literal["pandas", "spark"] = "pandas"
    cache: CacheSpec = CacheSpec()
    image: PreprocessImage = "sklearn"
    compute: ComputeSpec = ComputeSpec()
    train_ratio: float = Field(default=0.7, gt=0, lt=1)
    validation_ratio: float = Field(default=0.15, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _leaves_a_test_split(self) -> PreprocessSpec:
        if self.train_ratio + self.validation_ratio >= 1:
            raise ValueError("train_ratio + validation_ratio must leave rows for the test split")
        if (self.engine == "spark") != (self.image == "spark"):
            raise ValueError(
                f"engine {self.engine!r} does not run on image {self.image!r}: the spark engine runs on the spark "
                "image, and only it does"
            )
        return self


class TrainSpec(_Strict):
    image: ImageName = "xgboost"
    cache: CacheSpec = CacheSpec()
    compute: TrainingComputeSpec = TrainingComputeSpec()
    # SageMaker passes hyperparameters as strings; we accept numbers in the config and convert.
    hyperparameters: dict[str, str | int | float] = Field(min_length=1)

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _booleans_as_sagemaker_text(cls, value: object) -> object:
        # A JSON true would otherwise pass as the int 1 (pydantic's lax mode): SageMaker's form, which the
        # XGBoost container's true/false hyperparameters expect, is the text "true"/"false".
        if isinstance(value, dict):
            return {name: str(given).lower() if isinstance(given, bool) else given for name, given in value.items()}
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _needs_num_round(cls, value: dict[str, str | int | float]) -> dict[str, str | int | float]:
        if "num_round" not in value:
            raise ValueError("the built-in XGBoost algorithm needs hyperparameter 'num_round'")
        for name, given in value.items():
            if isinstance(given, str) and is_non_finite_text(given):
                raise ValueError(f"hyperparameter {name!r} is {given!r}: not a finite number")
        return value


class EvaluateSpec(_Strict):
    script: ScriptPath = "scripts/evaluate.py"
    cache: CacheSpec = CacheSpec()
    image: ImageName = "xgboost"
    compute: ComputeSpec = ComputeSpec()


class RegisterSpec(_Strict):
    # Approval is a person's act (`mlops approve`), or the stack's when it is deployed with auto-approval on:
    # a run registers packages pending approval, whatever its config says.
    approval_status: Literal["PendingManualApproval"] = "PendingManualApproval"
    # A package is an inference pipeline that takes raw rows: this script runs the fitted preprocessing in the
    # scikit-learn container, in front of the model's container.
    inference_script: ScriptPath = "scripts/inference.py"
    inference_instance_types: list[str] = Field(default_factory=lambda: ["ml.m5.large"], min_length=1)
    transform_instance_types: list[str] = Field(default_factory=lambda: ["ml.m5.large"], min_length=1)

    @field_validator("inference_instance_types")
    @classmethod
    def _inference_types(cls, value: list[str]) -> list[str]:
        return [check_instance_type(v, "ProductionVariantInstanceType") for v in value]

    @field_validator("transform_instance_types")
    @classmethod
    def _transform_types(cls, value: list[str]) -> list[str]:
        return [check_instance_type(v, "TransformInstanceType") for v in value]

    @model_validator(mode="before")
    @classmethod
    def _no_group(cls, data: object) -> object:
        if isinstance(data, dict) and "model_package_group" in data:
            raise ValueError(
                "model_package_group is no longer configurable: a pipeline's packages are registered in the "
                "stack's group for the pipeline (<resource prefix>-<pipeline>); remove it from the register section"
            )
        return data

    @field_validator("approval_status", mode="before")
    @classmethod
    def _only_pending(cls, value: object) -> object:
        if value != "PendingManualApproval":
            raise ValueError(
                f"a run registers packages PendingManualApproval, not {value!r}: approval is a person's act "
                "(mlops approve PACKAGE_ARN --reason TEXT)"
            )
        return value


class GateSpec(_Strict):
    metric: str = Field(min_length=1)
    threshold: float = Field(allow_inf_nan=False)
    direction: Literal["minimize", "maximize"] = "minimize"
    # Champion/challenger: the new model must beat the model serving the first deploy stage by at least this
    # much of the metric (0: at least as good); None turns the comparison off.
    champion_margin: float | None = Field(default=0.0, ge=0, allow_inf_nan=False)
    # ... and a naive baseline (mean of the training labels, or the majority class) by at least this much.
    baseline_margin: float | None = Field(default=0.0, ge=0, allow_inf_nan=False)


ENDPOINT_STAGE = re.compile(r"^[a-z][a-z0-9]{0,11}$")


class ServerlessSpec(_Strict):
    memory_size_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(default=5, ge=1, le=200)


class TrafficSpec(_Strict):
    """SageMaker deployment guardrails: how an update shifts traffic to the new fleet (blue/green)."""

    type: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "CANARY"
    canary_percent: int = Field(default=10, ge=1, le=50)  # CANARY: the first step's share of capacity
    linear_step_percent: int = Field(default=25, ge=5, le=50)  # LINEAR: each step's share
    wait_s: int = Field(default=300, ge=0, le=3600)  # baking time between steps (alarms watched)
    termination_wait_s: int = Field(default=300, ge=0, le=3600)  # old fleet kept (and alarms watched) after
    max_execution_timeout_s: int = Field(default=3600, ge=600, le=14400)


class AlarmSpec(_Strict):
    """The CloudWatch alarms a deployment creates for its endpoint and rolls back on."""

    invocation_5xx_errors: int = Field(default=1, ge=1)  # Invocation5XXErrors summed over one minute
    model_latency_ms: int = Field(default=1000, ge=1)  # ModelLatency average over one minute


class SmokeTestSpec(_Strict):
    rows: int = Field(default=10, ge=1, le=1000)
    tolerance: float = Field(default=1e-6, ge=0, allow_inf_nan=False)


class DeploySpec(_Strict):
    instance_shape: ClassVar[str] = "ProductionVariantInstanceType"
    # One endpoint per stage; the first is deployed on approval, each next one by `mlops promote`.
    stages: list[str] = Field(default_factory=lambda: ["staging", "prod"], min_length=1, max_length=4)
    instance_type: str = "ml.m5.large"
    initial_instance_count: int = Field(default=1, ge=1, le=10)
    serverless: ServerlessSpec | None = None
    traffic: TrafficSpec = TrafficSpec()
    alarms: AlarmSpec = AlarmSpec()
    smoke_test: SmokeTestSpec = SmokeTestSpec()
    endpoint_wait_s: int = Field(default=3600, ge=60, le=14400)  # the longest wait for InService

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[str]) -> list[str]:
        bad = [stage for stage in value if not ENDPOINT_STAGE.match(stage)]
        if bad or len(set(value)) != len(value):
            raise ValueError(f"stages are distinct names of 1-12 lowercase letters and digits, not {value}")
        return value

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not INSTANCE_TYPE.match(value):
            raise ValueError(f"not a SageMaker instance type: {value!r}")
        return check_instance_type(value, cls.instance_shape)


class ScheduleSpec(_Strict):
    expression: str = "rate(7 days)"
    enabled: bool = False


MODEL_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[\w-]{1,63}/\d+$")


class BatchSpec(_Strict):
    """Batch inference: a transform job of the approved package over a CSV under batch/<pipeline>/incoming/."""

    instance_shape: ClassVar[str] = "TransformInstanceType"

    # Scores the newest object under batch/<pipeline>/incoming/ (an EventBridge Scheduler schedule per pipeline).
    schedule: ScheduleSpec = ScheduleSpec(expression="rate(1 day)")
    # Columns of the input that identify a row: not features; joined back onto each prediction.
    id_columns: list[str] = Field(default_factory=list, max_length=5)
    # Score with this package instead of the group's latest Approved one (it must be Approved too).
    package_arn: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1, le=10)
    max_payload_mb: int = Field(default=6, ge=1, le=100)
    max_concurrent_transforms: int = Field(default=1, ge=1, le=16)
    max_runtime_s: int = Field(default=3600, ge=60, le=172800)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not INSTANCE_TYPE.match(value):
            raise ValueError(f"not a SageMaker instance type: {value!r}")
        return check_instance_type(value, cls.instance_shape)

    @field_validator("package_arn")
    @classmethod
    def _package_arn(cls, value: str | None) -> str | None:
        if value is not None and not MODEL_PACKAGE_ARN.match(value):
            raise ValueError(f"not a versioned model package ARN: {value!r}")
        return value

    @field_validator("id_columns")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or not all(value):
            raise ValueError(f"id columns are distinct non-empty names, not {value}")
        return value


class DriftSpec(_Strict):
    """How batch input is compared with the training baseline, and what drift does to the batch run."""

    # warn: score and record; block: score nothing, the run fails with the violations; retrain: score, and
    # start the training flow on the newest training data.
    action: Literal["warn", "block", "retrain"] = "warn"
    psi_threshold: float = Field(default=0.2, gt=0, allow_inf_nan=False)  # numeric: PSI on the baseline's deciles
    ks_threshold: float = Field(default=0.1, gt=0, le=1, allow_inf_nan=False)  # numeric: KS distance
    categorical_method: Literal["LInfinity", "ChiSquared"] = "LInfinity"
    # LInfinity: the distance above which a categorical feature drifted; ChiSquared: the p-value below which.
    categorical_threshold: float = Field(default=0.1, gt=0, lt=1, allow_inf_nan=False)
    # How far a feature's completeness may fall below the baseline's before it is a violation.
    completeness_tolerance: float = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)


# What the evaluation script reports per problem type, and which way is better (the gate's direction).
GATE_METRICS: dict[str, dict[str, str]] = {
    "regression": {"rmse": "minimize", "mae": "minimize", "r2": "maximize"},
    "binary_classification": {
        "auc": "maximize",
        "accuracy": "maximize",
        "precision": "maximize",
        "recall": "maximize",
        "f1": "maximize",
    },
}
# The built-in XGBoost 1.7 objectives that produce what each problem type evaluates (its learning_objective docs).
OBJECTIVES: dict[str, frozenset[str]] = {
    "regression": frozenset(
        {
            "reg:squarederror",
            "reg:squaredlogerror",
            "reg:pseudohubererror",
            "reg:absoluteerror",
            "reg:gamma",
            "reg:tweedie",
            "count:poisson",
        }
    ),
    "binary_classification": frozenset({"binary:logistic", "binary:logitraw", "binary:hinge"}),
}


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
    deploy: DeploySpec = DeploySpec()
    schedule: ScheduleSpec = ScheduleSpec()
    batch: BatchSpec = BatchSpec()
    drift: DriftSpec = DriftSpec()

    @model_validator(mode="after")
    def _fits_the_problem(self) -> PipelineConfig:
        # A gate on a metric the evaluation never reports, or an objective for another kind of problem, would
        # only fail (or mislead) after a training job was paid for: refuse it when the config is read.
        metrics = GATE_METRICS[self.problem_type]
        if self.gate.metric not in metrics:
            raise ValueError(
                f"gate.metric {self.gate.metric!r} is not reported for a {self.problem_type} pipeline: "
                f"use one of {', '.join(metrics)}"
            )
        expected = metrics[self.gate.metric]
        if self.gate.direction != expected:
            raise ValueError(
                f"gate.direction must be {expected!r} for {self.gate.metric} (a better model has a "
                f"{'lower' if expected == 'minimize' else 'higher'} {self.gate.metric})"
            )
        self._label_fits()
        objective = str(self.train.hyperparameters.get("objective", ""))
        if objective and objective not in OBJECTIVES[self.problem_type]:
            raise ValueError(
                f"train.hyperparameters.objective {objective!r} does not fit a {self.problem_type} pipeline: "
                f"use one of {', '.join(sorted(OBJECTIVES[self.problem_type]))}"
            )
        return self

    def _label_fits(self) -> None:
        """A declared contract's label fits the problem: a regression's is numeric; a binary classification's is
        two categories with a positive class, or numeric 0/1 (what the built-in algorithm trains on)."""
        label = self.data.contract.label if self.data.contract else None
        if label is None:
            return
        if self.problem_type == "regression" and label.type == "categorical":
            raise ValueError(
                f"data.contract.label {label.name!r} is categorical: a regression pipeline needs a numeric label"
            )
        binary_numeric = self.problem_type == "binary_classification" and label.type == "numeric"
        if binary_numeric and (label.min, label.max, label.integer) != (0, 1, True):
            raise ValueError(
                f"data.contract.label {label.name!r} of a binary_classification pipeline is either numeric 0/1 "
                "(min 0, max 1, integer true) or categorical with two values and a positive class "
                '({"type": "categorical", "domain": [...], "positive": ...})'
            )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PIPELINE_NAME.match(value):
            raise ValueError("pipeline names are 1-24 characters: lowercase letters, digits and '-'")
        return value


def is_non_finite_text(text: str) -> bool:
    """``NaN``, ``inf``, ``-Infinity``... as text: what float() (and a job's hyperparameter parser) reads as one."""
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _refuse_constant(name: str) -> object:
    # json.loads reads NaN, Infinity and -Infinity, which JSON itself does not have.
    raise ValueError(f"{name} is not a number JSON allows (no NaN or infinity in a config)")


def parse_pipeline_config(raw: bytes | str | dict[str, object], source: str) -> PipelineConfig:
    """Parse and validate a pipeline config, turning any problem into one readable error."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant) if isinstance(raw, bytes | str) else raw
        return PipelineConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise InvalidPipelineConfig(f"{source} is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidPipelineConfig(f"{source} is not UTF-8 text: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidPipelineConfig(f"{source} is invalid: {problems}") from exc
    except ValueError as exc:  # a NaN/Infinity constant in the JSON text
        raise InvalidPipelineConfig(f"{source} is not valid JSON: {exc}") from exc
