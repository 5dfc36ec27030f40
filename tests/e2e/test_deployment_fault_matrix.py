"""Fault matrix of the deployment flow: a failure injected at every Task state of the deployment flow and its
workers, then a rerun of the deployment.

For each fault point the deployment must end FAILED (or ROLLED_BACK where the new config took traffic) with that
state's error recorded (on the deployment, or, where the fault is in writing its record, on the flow execution),
and a plain rerun must end as a clean deployment ends: SUCCEEDED, the endpoint on the deployment's config and
package, the endpoint record saying so, no unit left RUNNING. Adding a Task state without a case fails the test.
(The executor's own states are covered by the training flow's matrix: it is the same executor.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.fault_points import INJECTED, assert_every_task_state_covered, inject

pytestmark = pytest.mark.e2e

MACHINES = ("DeploymentFlow", "ModelWorker", "EndpointConfigWorker", "DeployWorker", "SmokeTestWorker")
SMOKE = ("SmokeTestWorker", "Invoke the endpoint with test rows", INJECTED)
FAST = {"type": "ALL_AT_ONCE", "wait_s": 0, "termination_wait_s": 0}


@dataclass(frozen=True)
class FaultPoint:
    machine: str
    state: str
    unit: str | None  # the unit the deployment's error names (None: planning)
    fresh: bool = False  # reached by a first deployment to a stage (no endpoint yet), not by an update
    new_model: bool = False  # reached only when the package's model does not exist yet
    setup: tuple[tuple[str, str, str], ...] = field(default=())
    status: str = "FAILED"  # how the faulty deployment ends
    record: bool = True  # False where the fault is in writing the deployment's record

    @property
    def id(self) -> str:
        return f"{self.machine}:{self.state}"


FAULT_POINTS = [
    FaultPoint("DeploymentFlow", "Plan deployment", None, record=False),
    FaultPoint("DeploymentFlow", "Run model", "model"),
    FaultPoint("DeploymentFlow", "Run endpoint_config", "endpoint_config"),
    FaultPoint("DeploymentFlow", "Run deploy", "deploy"),
    FaultPoint("DeploymentFlow", "Run smoke_test", "smoke_test", status="ROLLED_BACK"),
    FaultPoint("DeploymentFlow", "Record the deployment", "smoke_test", record=False),
    FaultPoint("DeploymentFlow", "Put the previous endpoint config back", "smoke_test", setup=(SMOKE,)),
    FaultPoint(
        "DeploymentFlow", "Delete the endpoint this deployment created", "smoke_test", fresh=True, setup=(SMOKE,)
    ),
    FaultPoint(
        "DeploymentFlow",
        "Record the failed deployment",
        "model",
        setup=(("ModelWorker", "Look for the model", INJECTED),),
        record=False,
    ),
    FaultPoint("ModelWorker", "Look for the model", "model"),
    FaultPoint("ModelWorker", "Create the model", "model", new_model=True),
    FaultPoint("EndpointConfigWorker", "Look for the endpoint config", "endpoint_config"),
    FaultPoint("EndpointConfigWorker", "Create the endpoint config", "endpoint_config"),
    FaultPoint("DeployWorker", "Put one alarm", "deploy"),
    FaultPoint("DeployWorker", "Look for the endpoint", "deploy"),
    FaultPoint("DeployWorker", "Create the endpoint", "deploy", fresh=True),
    FaultPoint("DeployWorker", "Describe the endpoint", "deploy"),
    FaultPoint("DeployWorker", "Update the endpoint", "deploy"),
    FaultPoint("DeployWorker", "Look at the endpoint", "deploy"),
    FaultPoint("SmokeTestWorker", "Invoke the endpoint with test rows", "smoke_test", status="ROLLED_BACK"),
]


def follow(runtime: Any, deployment_id: str, arn: str) -> dict[str, Any]:
    from sfn_mlops_local import deployments, operations

    target = runtime.target()
    followed = operations.follow_run(target, deployment_id, arn, lambda _: None, timeout=300, poll_s=0.05)
    if target.table.get_run(deployment_id) is None:
        return {"deployment_id": deployment_id, "status": followed["status"], "execution_arn": arn}
    return {**deployments.deployment_summary(target, deployment_id), "execution_arn": arn}


def deploy(runtime: Any, package: str, stage: str) -> dict[str, Any]:
    from sfn_mlops_local import deployments

    deployment_id, arn = deployments.start_deployment(runtime.target(), "abalone", "deploy", stage, package)
    return follow(runtime, deployment_id, arn)


def rerun(runtime: Any, failed: dict[str, Any]) -> dict[str, Any]:
    """Rerun a deployment: `mlops rerun`, or (nothing recorded it) a new execution of the flow on its input."""
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations

    target = runtime.target()
    if target.table.get_run(failed["deployment_id"]) is None:
        sfn = runtime.client("stepfunctions")
        given = sfn.describe_execution(executionArn=failed["execution_arn"])["input"]
        arn = sfn.start_execution(
            stateMachineArn=target.deployment_flow_arn, name=f"{failed['deployment_id']}-again", input=given
        )["executionArn"]
    else:
        arn = operations.start_rerun(target, failed["deployment_id"], RerunOptions.model_validate({}))
    return follow(runtime, failed["deployment_id"], arn)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two approved packages of abalone; staging serves one (the approvals deployed it), "blue" the other."""
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import approval_operations, operations
    from sfn_mlops_local.local.runtime import LocalRuntime

    state = tmp_path_factory.mktemp("deploy-faults")
    with LocalRuntime(root=ROOT, state_dir=state / "state", persist=False) as runtime:
        target = runtime.target()
        operations.publish_pipeline(target, ROOT / "models" / "abalone")
        key = "pipelines/abalone/pipeline.json"
        config = json.loads(target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read())
        config["deploy"].update({"stages": ["staging", "blue", "fresh"], "traffic": FAST})
        target.s3.put_object(Bucket=target.bucket, Key=key, Body=json.dumps(config).encode())
        key_, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
        run_id, arn = operations.find_run_for_upload(target, key_, version)
        first = operations.follow_run(target, run_id, arn, lambda _: None, timeout=300)
        options = RerunOptions.model_validate({"from": "train", "overrides": {"train.hyperparameters.num_round": 40}})
        second_arn = operations.start_rerun(target, run_id, options)
        second = operations.follow_run(target, run_id, second_arn, lambda _: None, timeout=300)
        packages = [first["model_package_arn"], second["model_package_arn"]]
        for done, package in enumerate(packages, start=1):
            approval_operations.approve_package(target, package, "fault matrix")
            deadline = time.monotonic() + 120  # each approval deploys to staging on its own: let it finish
            while [d["status"] for d in target.table.list_deployments("abalone", 5)].count("SUCCEEDED") < done:
                assert time.monotonic() < deadline, "the approval did not deploy"
                time.sleep(0.1)
        baseline = deploy(runtime, packages[0], "blue")
        assert baseline["status"] == "SUCCEEDED", baseline["error"]
        yield {"runtime": runtime, "packages": packages}


def serving(runtime: Any, stage: str) -> dict[str, Any]:
    from sfn_mlops.deployment import endpoint_name
    from sfn_mlops.settings import Settings

    target = runtime.target()
    settings = Settings(table_name=target.table_name, artifact_bucket=target.bucket, resource_prefix=target.stack_name)
    name = endpoint_name(settings, "abalone", stage)
    return {"name": name, "record": target.table.get_endpoint(name) or {}}


def make_fresh(runtime: Any, stage: str) -> None:
    """No endpoint for the stage, and no record of one."""
    from sfn_mlops.metadata import ENDPOINT_SK, endpoint_pk, serialize

    target = runtime.target()
    name = serving(runtime, stage)["name"]
    sagemaker = runtime.client("sagemaker")
    if name in [e["EndpointName"] for e in sagemaker.list_endpoints(NameContains=name)["Endpoints"]]:
        sagemaker.delete_endpoint(EndpointName=name)
    target.dynamodb.delete_item(
        TableName=target.table_name, Key=serialize({"PK": endpoint_pk(name), "SK": ENDPOINT_SK})
    )


def test_every_task_state_of_the_deployment_flow_has_a_fault_case(
    lab: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    covered = {(p.machine, p.state) for p in FAULT_POINTS}
    assert_every_task_state_covered(lab["runtime"], MACHINES, covered, request, "deployment")


@pytest.mark.parametrize("point", FAULT_POINTS, ids=[p.id for p in FAULT_POINTS])
def test_deployment_fault_then_rerun_ends_like_a_clean_deployment(lab: dict[str, Any], point: FaultPoint) -> None:
    runtime = lab["runtime"]
    stage = "fresh" if point.fresh else "blue"
    if point.fresh:
        make_fresh(runtime, stage)
    current = serving(runtime, stage)["record"].get("model_package_arn")
    package = next(p for p in lab["packages"] if p != current)
    if point.new_model:  # the package's model is gone, so the worker creates it
        sagemaker = runtime.client("sagemaker")
        version = package.rsplit("/", 1)[-1]
        for model in sagemaker.list_models(NameContains=f"-abalone-v{version}-")["Models"]:
            sagemaker.delete_model(ModelName=model["ModelName"])
    # Given a fault at this Task state (after whatever makes the deployment reach it)
    inject(runtime, point.machine, point.state, point.setup)
    # When the package is deployed
    failed = deploy(runtime, package, stage)
    assert runtime.pending_task_faults() == [], "every injected fault must have been reached"
    # Then the deployment fails there, with the error recorded (or on the flow execution)
    if point.record:
        assert failed["status"] == point.status, (point.id, failed["status"], failed.get("error"))
        error = failed["error"]
        assert error["unit"] == point.unit
        assert error["error"] == INJECTED or point.setup, error
        assert (f"{point.machine}/{point.state}" in error["cause"]) or point.setup, error
    else:
        described = runtime.client("stepfunctions").describe_execution(executionArn=failed["execution_arn"])
        assert described["status"] == "FAILED" and INJECTED in (described.get("error"), described.get("cause") or "")
    # When the deployment is rerun
    again = rerun(runtime, failed)
    # Then it ends as a clean deployment: the endpoint serves the package, recorded, nothing left RUNNING
    assert again["status"] == "SUCCEEDED", (point.id, again.get("error"))
    live = runtime.client("sagemaker").describe_endpoint(EndpointName=again["endpoint_name"])
    assert live["EndpointStatus"] == "InService"
    assert live["EndpointConfigName"] == again["units"][1]["outputs"]["endpoint_config_name"]
    assert serving(runtime, stage)["record"]["model_package_arn"] == package
    records = runtime.target().table.get_run(again["deployment_id"])["units"]
    assert not [u for u, r in records.items() if r["status"] == "RUNNING"], "no lock left"
