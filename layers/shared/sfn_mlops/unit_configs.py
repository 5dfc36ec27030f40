"""A training unit's config as its worker receives it (``inputs.config``), validated again by the worker.

The planner resolved it from the pipeline config; the worker does not trust it as given: the same specs as
``pipeline.json`` (``ComputeSpec``...), finite numbers, S3 URIs under the run's own prefix, and the digest the
planner put on it (``config_sha256``) must still match (``FingerprintMismatch`` otherwise).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfn_mlops.contract import DataContract
from sfn_mlops.errors import FingerprintMismatch
from sfn_mlops.events import S3_URI, SHA256_HEX, WorkerEvent, parse_event
from sfn_mlops.fingerprint import config_digest
from sfn_mlops.pipeline import ComputeSpec, TrainingComputeSpec

IMAGE_URI = r"^[A-Za-z0-9][A-Za-z0-9.:_/@+-]{2,511}$"


class _Config(BaseModel):
    # Unknown fields are dropped, not passed on: the job request is built from what validated only.
    model_config = ConfigDict(extra="ignore", frozen=True)

    runs_root: str = Field(pattern=S3_URI, max_length=512)
    config_sha256: str | None = Field(default=None, pattern=SHA256_HEX)


class PinnedScript(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(pattern=S3_URI, max_length=1100)
    sha256: str = Field(pattern=SHA256_HEX)


class PreprocessConfig(_Config):
    image_uri: str = Field(pattern=IMAGE_URI)
    script: PinnedScript
    compute: ComputeSpec
    label: str = Field(min_length=1, max_length=256)
    categorical: list[str] = Field(default_factory=list)
    train_ratio: float = Field(gt=0, lt=1, allow_inf_nan=False)
    validation_ratio: float = Field(gt=0, lt=1, allow_inf_nan=False)
    seed: int
    contract: DataContract | None = None


class TrainConfig(_Config):
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


class EvaluateConfig(_Config):
    image_uri: str = Field(pattern=IMAGE_URI)
    script: PinnedScript
    compute: ComputeSpec
    gate: GateConfig
    champion: Champion | None = None


class RegisterConfig(_Config):
    model_package_group: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    inference_instance_types: list[str] = Field(min_length=1, max_length=20)
    transform_instance_types: list[str] = Field(min_length=1, max_length=20)
    image_uri: str = Field(pattern=IMAGE_URI)
    preprocessing_image_uri: str = Field(pattern=IMAGE_URI)
    script: PinnedScript
    problem_type: Literal["regression", "binary_classification"]


CONFIGS: dict[str, type[_Config]] = {
    "preprocess": PreprocessConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "register": RegisterConfig,
}


def validated_config(event: WorkerEvent) -> dict[str, Any]:
    """The unit's ``inputs.config`` validated for its unit kind, as a plain dict of what validated.

    Raises ``InvalidEvent`` naming the bad field, or ``FingerprintMismatch`` when the config no longer hashes to the
    digest the planner gave it."""
    model = CONFIGS[event.unit]
    raw = event.inputs.get("config")
    config = parse_event(model, raw, f"{event.unit} input config")
    suffix = f"/{event.pipeline}/{event.run_id}/"
    if not config.runs_root.endswith(suffix):
        from sfn_mlops.errors import InvalidEvent

        raise InvalidEvent(
            f"{event.unit} input config is malformed: runs_root {config.runs_root!r} is not run {event.run_id}'s prefix"
        )
    if config.config_sha256 is not None and isinstance(raw, dict):
        actual = config_digest(raw)
        if actual != config.config_sha256:
            raise FingerprintMismatch(
                f"{event.unit} input config of run {event.run_id} does not match the fingerprint its plan recorded "
                f"(config_sha256 {config.config_sha256[:12]}..., the config given hashes to {actual[:12]}...): "
                "it was changed after planning; rerun the run to plan it again"
            )
    return config.model_dump(exclude_none=True)
