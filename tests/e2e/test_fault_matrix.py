"""Fault matrix: a failure injected at every Task state of the training flow, the executor and the workers,
then a rerun.

For each fault point the run must fail with that state's error recorded (on the run, or, where the fault
is in writing the run's own record, on the flow execution), and a plain rerun must end where a clean run
with the same config ends: every unit succeeded (or cached) once, exactly one model package for the run,
no lock left, no SageMaker job left running. Adding a Task state without a case here fails the test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SUMMARY

pytestmark = pytest.mark.e2e

INJECTED = "InjectedFault"
UNITS = ["preprocess", "train", "evaluate", "register"]
STEPS = ["plan", *UNITS]  # what a run's error can name as its unit, in flow order
MACHINES = ("TrainingFlow", "Executor", "PreprocessWorker", "TrainWorker", "EvaluateWorker", "RegisterWorker")
UNIT_CODES = {"preprocess": "prep", "train": "train", "evaluate": "eval", "register": "reg"}


@dataclass(frozen=True)
class FaultPoint:
    machine: str
    state: str
    unit: str  # the unit whose failure the run must report
    # Faults entered first so that the state under test is reached (e.g. a lock conflict, a failed worker).
    setup: tuple[tuple[str, str, str], ...] = field(default=())
    identical_data: bool = False  # reach the cache-hit path: the same bytes as the baseline run
    on_rerun: bool = False  # the state is only reached by a rerun (after the setup fault failed the run)
    # The state is only reached by a rerun with these options (--only, --set) of a run that succeeded:
    # the faults are injected after that clean run, before this rerun.
    rerun_with: Mapping[str, Any] = field(default_factory=dict)
    # False where the fault is in writing the run's own record: then only the flow execution carries it.
    run_record: bool = True
    # A Catch absorbs this fault by design: the run ends as it would have, the error only in its history.
    tolerated: bool = False
    ends: str = "SUCCEEDED"  # how a clean run with the same config (and overrides) ends

    @property
    def id(self) -> str:
        return f"{self.machine}:{self.state}"


LOCK_CONFLICT = ("Executor", "Start unit attempt", "DynamoDB.ConditionalCheckFailedException")
UNRECORDED_SUCCESS = ("Executor", "Record unit success", INJECTED)
STRICT_GATE = {"overrides": {"gate.threshold": 0.5}}  # no model of abalone's reaches it: the gate rejects
FAULT_POINTS = [
    FaultPoint("TrainingFlow", "Plan run", "plan"),
    FaultPoint(
        "TrainingFlow",
        "Record planning failure",
        "plan",
        setup=(("TrainingFlow", "Plan run", INJECTED),),
        run_record=False,
    ),
    FaultPoint("TrainingFlow", "Run preprocess", "preprocess"),
    FaultPoint("TrainingFlow", "Run train", "train"),
    FaultPoint("TrainingFlow", "Run evaluate", "evaluate"),
    FaultPoint("TrainingFlow", "Run register", "register"),
    FaultPoint("TrainingFlow", "Record run success", "register", run_record=False),
    FaultPoint(
        "TrainingFlow",
        "Record run failure",
        "train",
        setup=(("TrainWorker", "Train model", INJECTED),),
        run_record=False,
    ),
    FaultPoint("TrainingFlow", "Record partial run", "evaluate", rerun_with={"only": "evaluate"}, run_record=False),
    FaultPoint(
        "TrainingFlow",
        "Reject the earlier model package",
        "evaluate",
        rerun_with=STRICT_GATE,
        tolerated=True,
        ends="REJECTED",
    ),
    FaultPoint(
        "TrainingFlow", "Record rejection", "evaluate", rerun_with=STRICT_GATE, run_record=False, ends="REJECTED"
    ),
    FaultPoint("Executor", "Get unit record", "preprocess"),
    FaultPoint("Executor", "Look up cached success", "preprocess"),
    FaultPoint("Executor", "Record cache hit", "preprocess", identical_data=True),
    FaultPoint("Executor", "Start unit attempt", "preprocess"),
    FaultPoint("Executor", "Release expired lock", "preprocess", setup=(LOCK_CONFLICT,)),
    FaultPoint("Executor", "Run worker", "preprocess"),
    FaultPoint("Executor", "Record unit success", "preprocess"),
    FaultPoint("Executor", "Record failure to record success", "preprocess", setup=(UNRECORDED_SUCCESS,)),
    FaultPoint("Executor", "Record recovered success", "preprocess", setup=(UNRECORDED_SUCCESS,), on_rerun=True),
    FaultPoint(
        "Executor", "Record unit failure", "preprocess", setup=(("PreprocessWorker", "Validate dataset", INJECTED),)
    ),
    FaultPoint("PreprocessWorker", "Validate dataset", "preprocess"),
    FaultPoint("PreprocessWorker", "Build processing job request", "preprocess"),
    FaultPoint("PreprocessWorker", "Run preprocessing job", "preprocess"),
    FaultPoint("PreprocessWorker", "Write the data baseline", "preprocess"),
    FaultPoint("TrainWorker", "Build training job request", "train"),
    FaultPoint("TrainWorker", "Train model", "train"),
    FaultPoint("EvaluateWorker", "Build processing job request", "evaluate"),
    FaultPoint("EvaluateWorker", "Run evaluation job", "evaluate"),
    FaultPoint("EvaluateWorker", "Read evaluation metrics", "evaluate"),
    FaultPoint("RegisterWorker", "Register model package", "register"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One local runtime for the whole matrix, with a clean baseline run to compare against."""
    from sfn_mlops_local import operations
    from sfn_mlops_local.local.runtime import LocalRuntime

    state = tmp_path_factory.mktemp("faults")
    with LocalRuntime(root=ROOT, state_dir=state / "state", persist=False) as runtime:
        target = runtime.target()
        operations.publish_pipeline(target, ROOT / "models" / "abalone")
        data = (ROOT / "models/abalone/data/abalone.csv").read_bytes()
        baseline = start_and_follow(runtime, upload(runtime, state / "baseline", data))
        assert baseline["status"] == "SUCCEEDED", baseline.get("error")
        yield {"runtime": runtime, "dir": state, "data": data, "baseline": baseline}


def upload(runtime: Any, folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "abalone.csv"
    path.write_bytes(data)
    return path


def start_and_follow(runtime: Any, path: Path) -> dict[str, Any]:
    from sfn_mlops_local import operations

    target = runtime.target()
    key, version = operations.upload_dataset(target, "abalone", path)
    run_id, arn = operations.find_run_for_upload(target, key, version)
    return follow(runtime, run_id, arn)


def follow(runtime: Any, run_id: str, arn: str) -> dict[str, Any]:
    """The run as scripts see it when its flow execution ends, with that execution's ARN."""
    from sfn_mlops_local import operations

    summary = operations.follow_run(runtime.target(), run_id, arn, lambda _: None, timeout=300, poll_s=0.05)
    return {**summary, "execution_arn": arn}


def rerun_and_follow(runtime: Any, run_id: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations

    target = runtime.target()
    if target.table.get_run(run_id) is None:
        # Nothing recorded the run (its planning failed and so did recording that): resume it as the
        # console does, with a new execution of the flow on the same input.
        sfn = runtime.client("stepfunctions")
        previous = next(
            e["executionArn"]
            for e in sfn.list_executions(stateMachineArn=target.training_flow_arn)["executions"]
            if json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])["run_id"] == run_id
        )
        arn = sfn.start_execution(
            stateMachineArn=target.training_flow_arn,
            name=str(uuid.uuid4()),
            input=sfn.describe_execution(executionArn=previous)["input"],
        )["executionArn"]
    else:
        arn = operations.start_rerun(target, run_id, RerunOptions.model_validate(options or {}))
    return follow(runtime, run_id, arn)


def flow_error(runtime: Any, execution_arn: str) -> dict[str, Any]:
    described = runtime.client("stepfunctions").describe_execution(executionArn=execution_arn)
    return {"error": described.get("error"), "cause": described.get("cause") or ""}


def failed_tasks(runtime: Any, execution_arn: str) -> list[dict[str, Any]]:
    events = runtime.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]


def packages_of_run(runtime: Any, run_id: str) -> list[str]:
    sm = runtime.client("sagemaker")
    # the stack's group for the pipeline: <resource prefix>-abalone
    groups = [g["ModelPackageGroupName"] for g in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]]
    arns = [
        p["ModelPackageArn"]
        for group in groups
        if group.endswith("-abalone")
        for p in sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    ]
    return [
        arn
        for arn in arns
        if sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties", {}).get("sfn-mlops:run-id")
        == run_id
    ]


def test_every_task_state_has_a_fault_case(lab: dict[str, Any], request: pytest.FixtureRequest) -> None:
    covered = {(p.machine, p.state) for p in FAULT_POINTS}
    task_states = lab["runtime"].task_states()
    expected = {(machine, state) for machine in MACHINES for state in task_states[machine]}
    assert covered == expected, f"missing: {sorted(expected - covered)}; unknown: {sorted(covered - expected)}"
    request.config.stash[SUMMARY].append(
        f"fault matrix: {len(covered)} fault points across {len({m for m, _ in covered})} state machines"
    )


# The matrix is the longest module: its second half runs from test_fault_matrix_second_half.py, so that
# `make test` (one module per worker) runs the two halves side by side.
FIRST_HALF = FAULT_POINTS[: len(FAULT_POINTS) // 2]
SECOND_HALF = FAULT_POINTS[len(FAULT_POINTS) // 2 :]


@pytest.mark.parametrize("point", FIRST_HALF, ids=[p.id for p in FIRST_HALF])
def test_fault_then_rerun_ends_like_a_clean_run(lab: dict[str, Any], point: FaultPoint) -> None:
    check_fault_then_rerun(lab, point)


def check_fault_then_rerun(lab: dict[str, Any], point: FaultPoint) -> None:
    runtime = lab["runtime"]
    # (different bytes per case, so the cache does not skip the work under test; or identical for the cache-hit path)
    extra_row = f"M,0.5,0.4,0.1,0.5,0.2,0.1,0.15,{FAULT_POINTS.index(point) + 1}\n".encode()
    data = lab["data"] if point.identical_data else lab["data"].rstrip(b"\n") + b"\n" + extra_row
    folder = lab["dir"] / point.id.replace(":", "_").replace(" ", "_")
    if point.rerun_with:  # Given a run that succeeded, for the rerun that reaches the state
        clean = start_and_follow(runtime, upload(runtime, folder, data))
        assert clean["status"] == "SUCCEEDED", clean.get("error")
    # Given a fault at this Task state (after whatever makes the run reach it)
    for machine, state, error in point.setup:
        runtime.fail_task(machine, state, error=error, cause=f"setup fault at {machine}/{state}")
    runtime.fail_task(point.machine, point.state, error=INJECTED, cause=f"injected at {point.machine}/{point.state}")
    # When the run executes (and, for a state only a rerun reaches, is rerun once)
    if point.rerun_with:
        failed = rerun_and_follow(runtime, clean["run_id"], point.rerun_with)
    else:
        failed = start_and_follow(runtime, upload(runtime, folder, data))
    if point.on_rerun:
        assert failed["status"] == "FAILED" and failed["error"]["cause"].startswith("setup fault")
        failed = rerun_and_follow(runtime, failed["run_id"])
    assert runtime.pending_task_faults() == [], "every injected fault must have been reached"
    if point.tolerated:
        # Then the run ends as it would have, and the fault shows in its flow execution's history
        assert failed["status"] == point.ends, failed.get("error")
        assert {"error": INJECTED, "cause": f"injected at {point.machine}/{point.state}"} in [
            {k: t.get(k) for k in ("error", "cause")} for t in failed_tasks(runtime, failed["execution_arn"])
        ]
    else:
        # Then it fails in the expected unit, with the injected error and cause recorded on the run (or, where
        # writing the run's record is what failed, on its flow execution)
        assert failed["status"] == "FAILED", f"{point.id}: {failed['status']}"
        error = failed["error"] if point.run_record else flow_error(runtime, failed["execution_arn"])
        if point.run_record:
            assert error["unit"] == point.unit
        assert error["error"] == INJECTED, error
        assert f"{point.machine}/{point.state}" in error["cause"]
    # When the run is rerun
    rerun = rerun_and_follow(runtime, failed["run_id"])
    # Then it ends as a clean run ends
    assert rerun["status"] == point.ends, rerun.get("error")
    statuses = {u["name"]: u["status"] for u in rerun["units"]}
    # A rejected rerun does not reach register: the package an earlier execution registered is out of date
    done = [u for u in UNITS if not (point.ends == "REJECTED" and u == "register")]
    assert all(statuses[u] in ("SUCCEEDED", "SKIPPED", "CACHED") for u in done), statuses
    if point.ends == "REJECTED":
        assert statuses["register"] == "STALE" and rerun["model_package_arn"] is None, statuses
    for unit in STEPS[1 : STEPS.index(point.unit)]:  # what had succeeded before the fault was not redone
        assert statuses[unit] in ("SKIPPED", "CACHED"), (unit, statuses)
    assert len(packages_of_run(runtime, failed["run_id"])) == 1, "exactly one model package for the run"
    records = runtime.target().table.get_run(failed["run_id"])["units"]
    assert not [u for u, r in records.items() if r["status"] == "RUNNING"], "no lock left"
    assert all(records[u]["status"] in ("SUCCEEDED", "CACHED") for u in UNITS)
    jobs = [job for name, job in runtime.jobs.jobs.items() if name.startswith(failed["run_id"])]
    assert not [j for j in jobs if j.get("status") == "InProgress"], "no orphaned job"
    for unit in ("preprocess", "train", "evaluate"):
        job_name = (records[unit].get("outputs") or {}).get("job_name")
        if records[unit]["status"] == "SUCCEEDED" and job_name:
            assert runtime.jobs.jobs[job_name]["status"] == "Completed"
    assert rerun["metrics"]["rmse"] == pytest.approx(lab["baseline"]["metrics"]["rmse"], abs=0.5)
    # Work that completed is not redone: a unit whose job completed but whose success could not be
    # recorded is recorded on the rerun, with its one job, as the attempt that did the work. (Only when
    # recording the failure fails too is nothing kept to recover from: then the unit runs again.)
    if point.state in ("Record unit success", "Record recovered success"):
        assert (statuses[point.unit], records[point.unit]["attempt"]) == ("SUCCEEDED", 1)
        completed = [n for n, j in runtime.jobs.jobs.items() if n.startswith(f"{failed['run_id']}-prep-")]
        assert completed == [f"{failed['run_id']}-prep-a1"]
