"""The stack's cost guardrails (AllowedInstanceTypes, MaxJobRuntimeSeconds), checked when a run is planned.

IAM denies the same job requests (template.yaml), but only when a job starts, after earlier units were paid for,
and never locally: the planner refuses the config first, naming the field and the stack parameter."""

from __future__ import annotations

from sfn_mlops.errors import CostGuardrailExceeded
from sfn_mlops.pipeline import PipelineConfig
from sfn_mlops.settings import Settings


def _instance_types(config: PipelineConfig) -> dict[str, str]:
    """Each instance type the config can start, by the field that names it."""
    found = {
        "preprocess.compute.instance_type": config.preprocess.compute.instance_type,
        "train.compute.instance_type": config.train.compute.instance_type,
        "evaluate.compute.instance_type": config.evaluate.compute.instance_type,
        "batch.instance_type": config.batch.instance_type,
    }
    if config.deploy.serverless is None:  # a serverless endpoint has no instance type
        found["deploy.instance_type"] = config.deploy.instance_type
    return found


def _runtimes(config: PipelineConfig) -> dict[str, int]:
    return {
        "preprocess.compute.max_runtime_s": config.preprocess.compute.max_runtime_s,
        "train.compute.max_runtime_s": config.train.compute.max_runtime_s,
        "evaluate.compute.max_runtime_s": config.evaluate.compute.max_runtime_s,
        "batch.max_runtime_s": config.batch.max_runtime_s,
    }


def guardrail_problems(config: PipelineConfig, settings: Settings) -> list[str]:
    """What the config asks for beyond the guardrails, one phrase each (none when the stack sets none)."""
    problems = []
    allowed = settings.allowed_instance_types
    if allowed:
        problems += [
            f"{field} {value!r} is not in the stack's AllowedInstanceTypes ({', '.join(allowed)})"
            for field, value in _instance_types(config).items()
            if value not in allowed
        ]
    limit = settings.max_job_runtime_s
    if limit is not None:
        problems += [
            f"{field} {value} is over the stack's MaxJobRuntimeSeconds ({limit})"
            for field, value in _runtimes(config).items()
            if value > limit
        ]
    return problems


def check_cost_guardrails(config: PipelineConfig, settings: Settings) -> None:
    """Raise CostGuardrailExceeded, one line naming the first field and parameter (and how many more there are)."""
    problems = guardrail_problems(config, settings)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CostGuardrailExceeded(
            f"pipeline {config.name!r}: {problems[0]}{more}; change pipeline.json (or the --set override) "
            "or deploy the stack with a wider guardrail"
        )
