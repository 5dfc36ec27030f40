"""A unit's config as its worker receives it (``inputs.config``), validated again by the worker.

The planner resolved it from the pipeline config; the worker does not trust it as given: the same specs as
``pipeline.json`` (``ComputeSpec``...), finite numbers, no field the planner does not write, S3 URIs under the
run's own prefix, and the digest the planner put on it (``config_sha256``, always there) must still match
(``FingerprintMismatch`` otherwise). Training units (``preprocess``...) and the batch flow's ``check`` and
``transform``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sfn_mlops.contract import DataContract
from sfn_mlops.errors import FingerprintMismatch, InvalidEvent
from sfn_mlops.events import S3_URI, SHA256_HEX, WorkerEvent, parse_event
from sfn_mlops.fingerprint import config_digest
from sfn_mlops.pipeline import (
    INSTANCE_TYPE,
    MODEL_PACKAGE_ARN,
    BatchSpec,
    ComputeSpec,
    DriftSpec,
    TrainingComputeSpec,
    check_instance_type,
)

IMAGE_URI = r"^[A-Za-z0-9][A-Za-z0-9.:_/@+-]{2,511}$"


class _Config(BaseModel):
    # An unknown field is refused: the planner writes every field there is (and the digest proves it did).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Fields holding an S3 prefix of the run's own, and what follows the run's prefix in each.
    RUN_PREFIXES: ClassVar[dict[str, str]] = {"runs_root": ""}

    config_sha256: str = Field(pattern=SHA256_HEX)


class _TrainingConfig(_Config):
    runs_root: str = Field(pattern=S3_URI, max_length=512)


class PinnedScript(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(pattern=S3_URI, max_length=1100)
    sha256: str = Field(pattern=SHA256_HEX)


ProblemType = Literal["regression", "binary_classification"]


class PreprocessConfig(_TrainingConfig):
    image_uri: str = Field(pattern=IMAGE_URI)
    engine: Literal["pandas", "spark"] = "pandas"
    script: PinnedScript
    compute: ComputeSpec
    label: str = Field(min_length=1, max_length=256)
    categorical: list[str] = Field(default_factory=list)
    train_ratio: float = Field(gt=0, lt=1, allow_inf_nan=False)
    validation_ratio: float = Field(gt=0, lt=1, allow_inf_nan=False)
    seed: int
    contract: DataContract | None = None
    problem_type: ProblemType | None = None


class TrainConfig(_TrainingConfig):
    image_uri: str = Field(pattern=IMAGE_URI)
    compute: TrainingComputeSpec
    hyperparameters: dict[str, str] = Field(min_length=1)


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1)
    direction: Literal["minimize", "maximize"]


class Champion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_package_arn: str
    model_data: str = Field(pattern=S3_URI)


class EvaluateConfig(_TrainingConfig):
    image_uri: str = Field(pattern=IMAGE_URI)
    script: PinnedScript
    compute: ComputeSpec
    gate: GateConfig
    champion: Champion | None = None


class RegisterConfig(_TrainingConfig):
    model_package_group: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    inference_instance_types: list[str] = Field(min_length=1, max_length=20)
    transform_instance_types: list[str] = Field(min_length=1, max_length=20)
    image_uri: str = Field(pattern=IMAGE_URI)
    preprocessing_image_uri: str = Field(pattern=IMAGE_URI)
    script: PinnedScript
    problem_type: ProblemType


class BatchSource(BaseModel):
    """The object a batch scores, as the planner resolved it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = Field(default=None, max_length=1024)
    uri: str = Field(pattern=S3_URI, max_length=1100)
    version: str = Field(max_length=1024)
    etag: str = Field(max_length=256)
    size: int = Field(ge=0)


class Baseline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    statistics: str = Field(pattern=S3_URI, max_length=1100)
    constraints: str = Field(pattern=S3_URI, max_length=1100)


class CheckInputConfig(_Config):
    """The batch flow's ``check`` unit: the input against the package's drift baseline."""

    RUN_PREFIXES: ClassVar[dict[str, str]] = {"output_prefix": "check/"}

    input: BatchSource
    baseline: Baseline
    drift: DriftSpec
    label: str = Field(min_length=1, max_length=256)
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    id_columns: list[str] = Field(default_factory=list, max_length=5)
    output_prefix: str = Field(pattern=S3_URI, max_length=512)


class TransformConfig(_Config):
    """The batch flow's ``transform`` unit: the transform job's settings (``pipeline.json``'s ``batch``)."""

    RUN_PREFIXES: ClassVar[dict[str, str]] = {"output_prefix": "output/"}

    model_package_arn: str = Field(pattern=MODEL_PACKAGE_ARN.pattern)
    id_columns: int = Field(ge=0, le=5)
    output_prefix: str = Field(pattern=S3_URI, max_length=512)
    instance_type: str = Field(pattern=INSTANCE_TYPE.pattern)
    # The same bounds as pipeline.json's batch section.
    instance_count: int = Field(ge=1, le=10)
    max_payload_mb: int = Field(ge=1, le=100)
    max_concurrent_transforms: int = Field(ge=1, le=16)
    max_runtime_s: int = Field(ge=60, le=172800)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return check_instance_type(value, BatchSpec.instance_shape)


CONFIGS: dict[str, type[_Config]] = {
    "preprocess": PreprocessConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "register": RegisterConfig,
    "check": CheckInputConfig,
    "transform": TransformConfig,
}


def validated_config(event: WorkerEvent) -> dict[str, Any]:
    """The unit's ``inputs.config`` validated for its unit kind, as a plain dict of what validated.

    Raises ``InvalidEvent`` naming the bad field, or ``FingerprintMismatch`` when the config no longer hashes to the
    digest the planner gave it."""
    model = CONFIGS.get(event.unit)
    if model is None:
        raise InvalidEvent(f"{event.unit} input config is malformed: unit: no worker of {event.unit!r} takes a config")
    raw = event.inputs.get("config")
    config = parse_event(model, raw, f"{event.unit} input config")
    for field, tail in model.RUN_PREFIXES.items():
        uri = getattr(config, field)
        if not uri.endswith(f"/{event.pipeline}/{event.run_id}/{tail}"):
            raise InvalidEvent(
                f"{event.unit} input config is malformed: {field} {uri!r} is not run {event.run_id}'s prefix"
            )
    if isinstance(raw, dict):  # parse_event refused anything else
        actual = config_digest(raw)
        if actual != config.config_sha256:
            raise FingerprintMismatch(
                f"{event.unit} input config of run {event.run_id} does not match the fingerprint its plan recorded "
                f"(config_sha256 {config.config_sha256[:12]}..., the config given hashes to {actual[:12]}...): "
                "it was changed after planning; rerun the run to plan it again"
            )
    return config.model_dump(exclude_none=True)
