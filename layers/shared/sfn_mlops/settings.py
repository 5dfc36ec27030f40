"""Runtime configuration from environment variables, validated once into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table_name: str = Field(min_length=3)
    artifact_bucket: str = Field(min_length=3)
    training_flow_arn: str = ""
    data_prefix: str = "data/"
    pipelines_prefix: str = "pipelines/"
    runs_prefix: str = "runs/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            table_name=env.get("METADATA_TABLE", ""),
            artifact_bucket=env.get("ARTIFACT_BUCKET", ""),
            training_flow_arn=env.get("TRAINING_FLOW_ARN", ""),
            data_prefix=env.get("DATA_PREFIX", "data/"),
            pipelines_prefix=env.get("PIPELINES_PREFIX", "pipelines/"),
            runs_prefix=env.get("RUNS_PREFIX", "runs/"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
