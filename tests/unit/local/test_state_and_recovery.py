"""The local service's state file and its recovery of work a stopped or killed service left in flight."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import TABLE


def test_a_saved_state_reads_back_with_its_stamp(tmp_path: Path) -> None:
    from sfn_mlops_local.local.state import dump_state, load_state

    # Given a state saved by this version
    dump_state(tmp_path / "state.pkl", "5.2.5", {"s3": b"blob"}, {"jobs": {}})
    # When it is loaded by the same version, Then it reads back whole
    saved = load_state(tmp_path / "state.pkl", "5.2.5")
    assert saved is not None and saved["backends"] == {"s3": b"blob"} and saved["jobs"] == {}
    # And no temporary file is left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["state.pkl"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a pickle", "cannot read the local state"),
        (pickle.dumps({"backends": {}}), "is not a local state file of this version"),
        (pickle.dumps({"format": "sfn-mlops-local-state", "version": 1, "moto": "5.2.5"}), "state format 1"),
        (pickle.dumps({"format": "sfn-mlops-local-state", "version": 2, "moto": "5.0.0"}), "with moto 5.0.0"),
    ],
)
def test_a_state_file_of_another_kind_or_version_is_refused_naming_the_way_out(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    from sfn_mlops_local.local.state import StateFormatError, load_state

    (tmp_path / "state.pkl").write_bytes(content)
    with pytest.raises(StateFormatError, match=expected) as refused:
        load_state(tmp_path / "state.pkl", "5.2.5")
    assert "mlops local reset" in str(refused.value) and "\n" not in str(refused.value)


def _put(item: dict[str, Any]) -> None:
    from sfn_mlops.metadata import serialize

    boto3.client("dynamodb").put_item(TableName=TABLE, Item=serialize(item))


def test_work_in_flight_at_a_restart_is_marked_interrupted_once(table: str) -> None:
    from sfn_mlops_local.local.recovery import mark_interrupted_work
    from sfn_mlops_local.operations import Target

    # Given a run that was RUNNING in train (its preprocess done) and an older run that finished
    _put({"PK": "RUN#r1", "SK": "RUN", "status": "RUNNING", "pipeline": "abalone"})
    _put({"PK": "RUN#r1", "SK": "UNIT#preprocess", "status": "SUCCEEDED", "attempt": 1})
    _put({"PK": "RUN#r1", "SK": "UNIT#train", "status": "RUNNING", "attempt": 2})
    _put({"PK": "RUN#r0", "SK": "RUN", "status": "SUCCEEDED", "pipeline": "abalone"})
    target = Target.from_clients(boto3.client, "bucket", TABLE, "arn:flow", "test")
    # When the service restarts after a kill
    marked = mark_interrupted_work(target, stopped_cleanly=False)
    # Then the run reads FAILED with a cause naming the unit and the way on, and the unit ABANDONED
    assert sorted((m["run_id"], m["unit"] or "", m["status"]) for m in marked) == [
        ("r1", "", "FAILED"),
        ("r1", "train", "ABANDONED"),
    ]
    run = target.table.get_run("r1")
    assert run is not None and run["status"] == "FAILED"
    assert run["error"]["error"] == "LocalServiceInterrupted" and run["error"]["unit"] == "train"
    assert "killed" in run["error"]["cause"] and "mlops rerun r1" in run["error"]["cause"]
    train = run["units"]["train"]
    assert train["status"] == "ABANDONED" and train["error"] == "LocalServiceInterrupted"
    assert run["units"]["preprocess"]["status"] == "SUCCEEDED"
    assert target.table.get_run("r0")["status"] == "SUCCEEDED"  # type: ignore[index]
    # And a second restart finds nothing left to mark
    assert mark_interrupted_work(target, stopped_cleanly=True) == []


def test_a_job_running_when_the_service_stopped_comes_back_failed(tmp_path: Path) -> None:
    from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner

    runner = LocalJobRunner(lambda: None, tmp_path, tmp_path)
    interrupted = runner.restore({"a": {"status": "InProgress"}, "b": {"status": "Completed"}})
    assert interrupted == ["a"]
    assert runner.jobs["a"]["status"] == "Failed" and "stopped" in runner.jobs["a"]["failure_reason"]
    assert runner.jobs["b"]["status"] == "Completed"
    assert json.loads(json.dumps(runner.snapshot(), default=str))["b"] == {"status": "Completed"}


def test_the_console_rerun_policy_is_the_planners_force() -> None:
    from sfn_mlops.rerun import FORCE

    from sfn_mlops_local import operations

    assert operations.FORCE == FORCE


@pytest.mark.parametrize(
    ("method", "target", "read"),
    [
        ("GET", "", True),
        ("HEAD", "", True),
        ("POST", "DynamoDB_20120810.Query", True),
        ("POST", "AWSStepFunctions.DescribeExecution", True),
        ("POST", "SageMaker.ListModelPackages", True),
        ("POST", "DynamoDB_20120810.UpdateItem", False),
        ("POST", "AWSStepFunctions.StartExecution", False),
        ("PUT", "", False),
        ("DELETE", "", False),
    ],
)
def test_only_requests_that_can_change_state_make_the_service_save(method: str, target: str, read: bool) -> None:
    from sfn_mlops_local.local.service import _is_read

    assert _is_read({"REQUEST_METHOD": method, "HTTP_X_AMZ_TARGET": target}) is read
