"""Fault matrix of the batch flow: a failure injected at every Task state of the batch flow and its workers, then a
rerun of the batch.

For each fault point the batch must end FAILED with that state's error recorded (on the batch, or, where the fault
is in planning or writing its record, on the flow execution), and a plain rerun must end as a clean batch ends:
SUCCEEDED, one prediction per row, the units that had succeeded skipped, one completed transform job for the batch,
no unit left RUNNING. Adding a Task state without a case fails the test. A transform worker executed again for the
same attempt adopts the job that completed under its name.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.fault_points import INJECTED, assert_every_task_state_covered, inject

pytestmark = pytest.mark.e2e

MACHINES = ("BatchFlow", "ModelWorker", "CheckWorker", "TransformWorker")
CHECK = ("CheckWorker", "Check the input for drift", INJECTED)
ROWS = 60


@dataclass(frozen=True)
class FaultPoint:
    machine: str
    state: str
    unit: str | None  # the unit the batch's error names (None: planning)
    new_model: bool = False  # reached only when the package's model does not exist yet
    setup: tuple[tuple[str, str, str], ...] = field(default=())
    record: bool = True  # False where the fault is in planning or writing the batch's record

    @property
    def id(self) -> str:
        return f"{self.machine}:{self.state}"


FAULT_POINTS = [
    FaultPoint("BatchFlow", "Plan the batch", None, record=False),
    FaultPoint("BatchFlow", "Run model", "model"),
    FaultPoint("BatchFlow", "Run check", "check"),
    FaultPoint("BatchFlow", "Run transform", "transform"),
    FaultPoint("BatchFlow", "Record the batch", None, record=False),
    FaultPoint("BatchFlow", "Record the failed batch", "check", setup=(CHECK,), record=False),
    FaultPoint("ModelWorker", "Look for the model", "model"),
    FaultPoint("ModelWorker", "Create the model", "model", new_model=True),
    FaultPoint("CheckWorker", "Check the input for drift", "check"),
    FaultPoint("TransformWorker", "Prepare the transform job", "transform"),
    FaultPoint("TransformWorker", "Score the rows", "transform"),
]


def follow(runtime: Any, batch_id: str, arn: str) -> dict[str, Any]:
    from sfn_mlops_local import batch_operations, operations

    target = runtime.target()
    followed = operations.follow_run(target, batch_id, arn, lambda _: None, timeout=300, poll_s=0.05)
    return {**batch_operations.batch_summary(target, batch_id, followed), "execution_arn": arn}


def rerun(runtime: Any, failed: dict[str, Any]) -> dict[str, Any]:
    """Rerun a batch: `mlops rerun`, or (planning failed, nothing recorded) a new execution of the flow on its input."""
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations

    target = runtime.target()
    if target.table.get_run(failed["run_id"]) is None:
        sfn = runtime.client("stepfunctions")
        given = sfn.describe_execution(executionArn=failed["execution_arn"])["input"]
        arn = sfn.start_execution(stateMachineArn=target.batch_flow_arn, name=f"{failed['run_id']}-again", input=given)[
            "executionArn"
        ]
    else:
        arn = operations.start_rerun(target, failed["run_id"], RerunOptions.model_validate({}))
    return follow(runtime, failed["run_id"], arn)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An approved abalone package and a small batch of its rows to score."""
    from sfn_mlops_local import approval_operations, operations
    from sfn_mlops_local.local.runtime import LocalRuntime

    state = tmp_path_factory.mktemp("batch-faults")
    with LocalRuntime(root=ROOT, state_dir=state / "state", persist=False) as runtime:
        target = runtime.target()
        operations.publish_pipeline(target, ROOT / "models" / "abalone")
        key, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
        run_id, arn = operations.find_run_for_upload(target, key, version)
        first = operations.follow_run(target, run_id, arn, lambda _: None, timeout=300)
        assert first["status"] == "SUCCEEDED", first["error"]
        approval_operations.approve_package(target, first["model_package_arn"], "fault matrix")
        with (ROOT / "models/abalone/data/abalone.csv").open() as source:
            rows = list(csv.reader(source))
        body = rows[1:][:: (len(rows) - 1) // ROWS][:ROWS]
        data = state / "rows.csv"
        data.write_text("\n".join(",".join(r[:-1]) for r in [rows[0], *body]) + "\n")
        yield {"runtime": runtime, "package": first["model_package_arn"], "data": data}


def batch(lab: dict[str, Any]) -> dict[str, Any]:
    from sfn_mlops_local import batch_operations

    batch_id, arn = batch_operations.start_batch(lab["runtime"].target(), "abalone", lab["data"])
    return follow(lab["runtime"], batch_id, arn)


def completed_jobs(runtime: Any, batch_id: str) -> list[str]:
    jobs = runtime.client("sagemaker").list_transform_jobs(NameContains=batch_id)["TransformJobSummaries"]
    return [j["TransformJobName"] for j in jobs if j["TransformJobStatus"] == "Completed"]


def test_every_task_state_of_the_batch_flow_has_a_fault_case(
    lab: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    covered = {(p.machine, p.state) for p in FAULT_POINTS}
    assert_every_task_state_covered(lab["runtime"], MACHINES, covered, request, "batch")


@pytest.mark.parametrize("point", FAULT_POINTS, ids=[p.id for p in FAULT_POINTS])
def test_batch_fault_then_rerun_ends_like_a_clean_batch_with_nothing_run_twice(
    lab: dict[str, Any], point: FaultPoint
) -> None:
    runtime = lab["runtime"]
    if point.new_model:  # the package's model is gone, so the worker creates it
        sagemaker = runtime.client("sagemaker")
        version = lab["package"].rsplit("/", 1)[-1]
        for model in sagemaker.list_models(NameContains=f"-abalone-v{version}-")["Models"]:
            sagemaker.delete_model(ModelName=model["ModelName"])
    # Given a fault at this Task state (after whatever makes the batch reach it)
    inject(runtime, point.machine, point.state, point.setup)
    # When a batch is scored
    failed = batch(lab)
    assert runtime.pending_task_faults() == [], "every injected fault must have been reached"
    # Then it fails there, with the error recorded (or on the flow execution)
    if point.record:
        assert failed["status"] == "FAILED", (point.id, failed)
        error = failed["error"]
        assert error["unit"] == point.unit and error["error"] == INJECTED, error
        assert f"{point.machine}/{point.state}" in error["cause"], error
    else:
        described = runtime.client("stepfunctions").describe_execution(executionArn=failed["execution_arn"])
        assert described["status"] == "FAILED" and INJECTED in (described.get("error"), described.get("cause") or "")
    done_before = {u["name"] for u in failed["units"] if u.get("recorded_status") == "SUCCEEDED"}
    # When the batch is rerun
    again = rerun(runtime, failed)
    # Then it ends as a clean batch: every row scored, what had succeeded skipped, one transform job, no lock left
    assert again["status"] == "SUCCEEDED", (point.id, again.get("error"))
    assert again["rows_scored"] == ROWS and again["drift"]["status"] == "OK"
    statuses = {u["name"]: u["status"] for u in again["units"]}
    assert all(statuses[name] == "SKIPPED" for name in done_before), (point.id, statuses, done_before)
    assert len(completed_jobs(runtime, again["run_id"])) == 1
    records = runtime.target().table.get_run(again["run_id"])["units"]
    assert not [u for u, r in records.items() if r["status"] == "RUNNING"], "no lock left"


def test_a_transform_worker_run_again_for_the_same_attempt_adopts_the_completed_job(lab: dict[str, Any]) -> None:
    runtime = lab["runtime"]
    clean = batch(lab)
    assert clean["status"] == "SUCCEEDED", clean["error"]
    transform = next(u for u in clean["units"] if u["name"] == "transform")
    sfn = runtime.client("stepfunctions")
    worker = sfn.describe_execution(executionArn=transform["worker_execution_arn"])
    # Given the worker's execution for this attempt, When it is executed again (a redrive or a retried start)
    arn = sfn.start_execution(
        stateMachineArn=worker["stateMachineArn"], name=f"{clean['run_id']}-again", input=worker["input"]
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Then it succeeds with the same outputs, and no second job was started
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == json.loads(worker["output"])
    assert completed_jobs(runtime, clean["run_id"]) == [json.loads(worker["output"])["job_name"]]
