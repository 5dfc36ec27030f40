"""The stack's cost guardrails (AllowedInstanceTypes, MaxJobRuntimeSeconds): given to the planners by the template,
read into Settings, and checked when a run is planned, before any job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, ROOT, TABLE

RUN_ID = "abalone-20261123t101500-1a2b3c4d"
PLANNERS = ("PlanRunFunction", "PlanBatchFunction", "PlanDeploymentFunction")


def config(**changes: Any) -> Any:
    """The abalone config, with ``changes`` ({"train.compute.instance_type": ...}) applied as overrides."""
    from sfn_mlops.pipeline import parse_pipeline_config
    from sfn_mlops.rerun import apply_overrides

    base = parse_pipeline_config(Path(ROOT / "models/abalone/pipeline.json").read_bytes(), source="abalone")
    return apply_overrides(base, {k.replace("__", "."): v for k, v in changes.items()}, "abalone")


def settings(types: tuple[str, ...] = ("ml.m5.large", "ml.m5.xlarge"), runtime: int | None = 7200) -> Any:
    from sfn_mlops.settings import Settings

    return Settings(table_name=TABLE, artifact_bucket=BUCKET, allowed_instance_types=types, max_job_runtime_s=runtime)


def test_settings_read_the_guardrails_from_the_environment_and_none_means_no_limit() -> None:
    from sfn_mlops.settings import Settings

    base = {"METADATA_TABLE": TABLE, "ARTIFACT_BUCKET": BUCKET}
    # Given the variables the template sets (a comma-separated list: variables are strings)
    given = Settings.from_env(
        {**base, "ALLOWED_INSTANCE_TYPES": "ml.m5.large, ml.c5.xlarge,", "MAX_JOB_RUNTIME_SECONDS": "600"}
    )
    # Then they are read as a list and a number
    assert given.allowed_instance_types == ("ml.m5.large", "ml.c5.xlarge")
    assert given.max_job_runtime_s == 600
    # And without them (a caller outside a stack) nothing is limited
    unset = Settings.from_env(base)
    assert unset.allowed_instance_types == () and unset.max_job_runtime_s is None


def test_every_planner_gets_the_stacks_guardrails_locally_as_on_aws() -> None:
    from sfn_mlops.settings import Settings

    from sfn_mlops_local.local.template import load_template

    # Given the template as the local runtime resolves it (parameters' defaults)
    resolved = load_template(ROOT)
    default_types = tuple(str(resolved.parameters["AllowedInstanceTypes"]).split(","))
    for logical in PLANNERS:
        environment = resolved.functions()[logical].environment
        # When the planner reads its settings, Then they are the stack parameters' values
        read = Settings.from_env(environment)
        assert read.allowed_instance_types == default_types, logical
        assert read.max_job_runtime_s == int(str(resolved.parameters["MaxJobRuntimeSeconds"])), logical
    # And on AWS the variables are the parameters themselves (strings, as environment variables must be)
    for logical in PLANNERS:
        variables = resolved.raw["Resources"][logical]["Properties"]["Environment"]["Variables"]
        assert variables["ALLOWED_INSTANCE_TYPES"] == {"Ref": "AllowedInstanceTypes"}, logical
        assert variables["MAX_JOB_RUNTIME_SECONDS"] == {"Ref": "MaxJobRuntimeSeconds"}, logical
    assert resolved.raw["Parameters"]["AllowedInstanceTypes"]["Type"] == "String"


@pytest.mark.parametrize(
    ("change", "field", "parameter"),
    [
        (
            {"preprocess__compute__instance_type": "ml.c5.xlarge"},
            "preprocess.compute.instance_type",
            "AllowedInstanceTypes",
        ),
        ({"train__compute__instance_type": "ml.m5.4xlarge"}, "train.compute.instance_type", "AllowedInstanceTypes"),
        (
            {"evaluate__compute__instance_type": "ml.c5.2xlarge"},
            "evaluate.compute.instance_type",
            "AllowedInstanceTypes",
        ),
        ({"batch__instance_type": "ml.c5.xlarge"}, "batch.instance_type", "AllowedInstanceTypes"),
        ({"deploy__instance_type": "ml.c5.large"}, "deploy.instance_type", "AllowedInstanceTypes"),
        ({"train__compute__max_runtime_s": 7201}, "train.compute.max_runtime_s", "MaxJobRuntimeSeconds"),
        ({"evaluate__compute__max_runtime_s": 86400}, "evaluate.compute.max_runtime_s", "MaxJobRuntimeSeconds"),
        ({"batch__max_runtime_s": 10000}, "batch.max_runtime_s", "MaxJobRuntimeSeconds"),
    ],
)
def test_a_config_beyond_a_guardrail_is_refused_in_one_line_naming_the_field_and_the_stack_parameter(
    change: dict[str, Any], field: str, parameter: str
) -> None:
    from sfn_mlops.errors import CostGuardrailExceeded, InvalidPipelineConfig
    from sfn_mlops.guardrails import check_cost_guardrails

    # When a config asking for one thing beyond the guardrails is checked
    with pytest.raises(CostGuardrailExceeded) as raised:
        check_cost_guardrails(config(**change), settings())
    # Then the refusal is one line naming the field, its value and the stack parameter (a config error too)
    message = str(raised.value)
    assert field in message and parameter in message and str(next(iter(change.values()))) in message, message
    assert "\n" not in message and "(and" not in message
    assert isinstance(raised.value, InvalidPipelineConfig)


def test_several_problems_name_the_first_and_count_the_rest() -> None:
    from sfn_mlops.errors import CostGuardrailExceeded
    from sfn_mlops.guardrails import check_cost_guardrails

    with pytest.raises(CostGuardrailExceeded, match=r"preprocess\.compute\.instance_type .*\(and 4 more\)"):
        check_cost_guardrails(config(), settings(types=("ml.t3.medium",)))


def test_a_serverless_deployment_has_no_instance_type_to_hold_to_the_list() -> None:
    from sfn_mlops.guardrails import guardrail_problems

    # Given a config whose deploy instance type is outside the list
    outside = config(deploy__instance_type="ml.c5.large")
    assert guardrail_problems(outside, settings())
    # When its endpoints are serverless, Then the instance type is not used, and not refused
    serverless = config(deploy__instance_type="ml.c5.large", deploy__serverless={"memory_size_mb": 2048})
    assert guardrail_problems(serverless, settings()) == []


def test_without_guardrails_nothing_is_refused_and_the_defaults_fit_the_example() -> None:
    from sfn_mlops.guardrails import guardrail_problems

    from sfn_mlops_local.local.template import load_template

    wide = config(train__compute__instance_type="ml.p3.16xlarge", train__compute__max_runtime_s=432000)
    assert guardrail_problems(wide, settings(types=(), runtime=None)) == []
    parameters = load_template(ROOT).parameters
    defaults = settings(
        types=tuple(str(parameters["AllowedInstanceTypes"]).split(",")),
        runtime=int(str(parameters["MaxJobRuntimeSeconds"])),
    )
    assert guardrail_problems(config(), defaults) == []


def test_the_planner_refuses_the_run_before_any_unit_is_planned(published: str) -> None:
    import boto3
    from sfn_mlops.errors import CostGuardrailExceeded
    from sfn_mlops.planner import build_plan

    # Given the published abalone pipeline and a rerun that asks for a type outside the stack's list
    s3 = boto3.client("s3")
    event = {
        "pipeline": "abalone",
        "run_id": RUN_ID,
        "dataset": {"bucket": BUCKET, "key": "data/abalone/missing.csv"},
        "rerun": {"overrides": {"train.compute.instance_type": "ml.m5.4xlarge"}},
    }
    # When the run is planned, Then it is refused naming the field, before the dataset is even looked at
    with pytest.raises(
        CostGuardrailExceeded, match=r"train\.compute\.instance_type 'ml\.m5\.4xlarge'.*AllowedInstanceTypes"
    ):
        build_plan(s3, settings(), event)
    # And no script was pinned for the run
    pinned = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"runs/abalone/{RUN_ID}/code/scripts/")
    assert pinned.get("KeyCount", 0) == 0
