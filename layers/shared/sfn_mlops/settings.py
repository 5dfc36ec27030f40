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
    deployment_flow_arn: str = ""
    batch_flow_arn: str = ""
    # Names the stack's own SageMaker models, endpoint configs, endpoints and alarms (IAM is scoped to it).
    resource_prefix: str = "sfn-mlops"
    sagemaker_role_arn: str = ""
    # Off unless the stack is deployed with AutoApproval=true: then a run approves what passed its gate.
    auto_approve: bool = False
    data_prefix: str = "data/"
    pipelines_prefix: str = "pipelines/"
    runs_prefix: str = "runs/"
    # Cost guardrails (stack parameters AllowedInstanceTypes, MaxJobRuntimeSeconds), given to the planners.
    # Unset (empty, None): no limit, as for a caller outside a stack; the template always sets both.
    allowed_instance_types: tuple[str, ...] = ()
    max_job_runtime_s: int | None = Field(default=None, ge=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            table_name=env.get("METADATA_TABLE", ""),
            artifact_bucket=env.get("ARTIFACT_BUCKET", ""),
            training_flow_arn=env.get("TRAINING_FLOW_ARN", ""),
            deployment_flow_arn=env.get("DEPLOYMENT_FLOW_ARN", ""),
            batch_flow_arn=env.get("BATCH_FLOW_ARN", ""),
            resource_prefix=env.get("RESOURCE_PREFIX", "sfn-mlops"),
            sagemaker_role_arn=env.get("SAGEMAKER_ROLE_ARN", ""),
            auto_approve=env.get("AUTO_APPROVE", "false").lower() == "true",
            data_prefix=env.get("DATA_PREFIX", "data/"),
            pipelines_prefix=env.get("PIPELINES_PREFIX", "pipelines/"),
            runs_prefix=env.get("RUNS_PREFIX", "runs/"),
            # A comma-separated list: environment variables are strings.
            allowed_instance_types=tuple(
                t.strip() for t in env.get("ALLOWED_INSTANCE_TYPES", "").split(",") if t.strip()
            ),
            max_job_runtime_s=int(env["MAX_JOB_RUNTIME_SECONDS"]) if env.get("MAX_JOB_RUNTIME_SECONDS") else None,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
