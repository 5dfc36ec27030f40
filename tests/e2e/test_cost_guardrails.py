"""The stack's cost guardrails act locally as on AWS: the local runtime gives the planner the template's
AllowedInstanceTypes and MaxJobRuntimeSeconds, and a run asking for more fails at planning, before any job."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest

from tests.conftest import ROOT, service_target
from tests.e2e.bad_inputs import Cli

pytestmark = pytest.mark.e2e

# A type SageMaker trains on that the template's default AllowedInstanceTypes leaves out.
BEYOND_THE_LIST = "ml.m5.12xlarge"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Path, str]]:
    """A project beside the repository's (its template and state machines) and one local service for the module."""
    root = tmp_path_factory.mktemp("guardrails")
    for name in ("template.yaml", "statemachines"):
        (root / name).symlink_to(ROOT / name)
    (root / "models").mkdir()
    state = root / "state"
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    try:
        _, info = service_target(state)
        yield Cli(state), root, info.endpoint
    finally:
        from sfn_mlops_local.local import client

        client.stop(state)
        del os.environ["MLOPS_LOCAL_STATE"]


def pipeline_asking_for(root: Path, name: str, field: str, value: Any) -> None:
    config = json.loads((ROOT / "models" / "abalone" / "pipeline.json").read_text())
    config["name"] = name
    section, *rest = field.split(".")
    node = config[section]
    for part in rest[:-1]:
        node = node[part]
    node[rest[-1]] = value
    folder = root / "models" / name
    folder.mkdir()
    for part in ("scripts", "data"):
        (folder / part).symlink_to(ROOT / "models" / "abalone" / part)
    (folder / "pipeline.json").write_text(json.dumps(config, indent=2))


def test_the_instance_type_beyond_the_list_is_one_sagemaker_trains_on_but_the_default_leaves_out() -> None:
    from sfn_mlops_local.local.template import load_template

    training = botocore.session.get_session().get_service_model("sagemaker").shape_for("TrainingInstanceType")
    assert BEYOND_THE_LIST in training.enum  # type: ignore[attr-defined]  # a StringShape
    assert BEYOND_THE_LIST not in str(load_template(ROOT).parameters["AllowedInstanceTypes"]).split(",")


@pytest.mark.parametrize(
    ("name", "field", "value", "parameter"),
    [
        ("wide", "train.compute.instance_type", BEYOND_THE_LIST, "AllowedInstanceTypes"),
        ("slow", "preprocess.compute.max_runtime_s", 2 * 86400, "MaxJobRuntimeSeconds"),
    ],
)
def test_a_run_beyond_the_stacks_guardrails_fails_at_planning_naming_the_field_and_the_parameter(
    project: tuple[Cli, Path, str], name: str, field: str, value: Any, parameter: str
) -> None:
    cli, root, endpoint = project
    # Given a published pipeline that asks for more than the template's default guardrails allow
    pipeline_asking_for(root, name, field, value)
    published = cli("publish", name, cwd=root)
    assert published.code == 0, published.stderr
    # When it is run on the local runtime
    outcome = cli("run", name, cwd=root)
    # Then the run fails in planning, with one line naming the field and the stack parameter
    summary = outcome.answer
    assert outcome.code not in (0, None), outcome.stderr
    assert summary["status"] == "FAILED", summary
    cause = f"{summary['error'].get('error')}: {summary['error'].get('cause')}"
    assert "CostGuardrailExceeded" in cause and field in cause and parameter in cause, cause
    assert summary["model_package_arn"] is None
    # And no job was started for it
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint, region_name="us-east-1")
    jobs = [j["ProcessingJobName"] for j in sagemaker.list_processing_jobs()["ProcessingJobSummaries"]]
    jobs += [j["TrainingJobName"] for j in sagemaker.list_training_jobs()["TrainingJobSummaries"]]
    assert not [j for j in jobs if name in j], jobs
