"""The executor state machine on the local runtime: run, skip, fail, retry, lock."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.conftest import wait_until

REGISTER_INPUT = {
    "config": {
        "model_package_group": "exec-test",
        "approval_status": "PendingManualApproval",
        "inference_instance_types": ["ml.m5.large"],
        "transform_instance_types": ["ml.m5.large"],
        "image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
    },
    "model": {"model_data": "s3://bucket/runs/x/model.tar.gz"},
    "evaluation": {"metrics": {"rmse": 2.0}, "evaluation_uri": "s3://bucket/runs/x/evaluation.json"},
    "dataset": {"uri": "s3://bucket/data/x/a.csv", "version": "v1", "etag": "e"},
}


def start_executor(runtime: Any, unit: str, run_id: str, inputs: dict[str, Any], worker: str) -> dict[str, Any]:
    sfn = runtime.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=runtime.state_machine_arn("Executor"),
        name=str(uuid.uuid4()),
        input=json.dumps(
            {
                "run_id": run_id,
                "pipeline": "exec",
                "unit": unit,
                "worker_arn": runtime.state_machine_arn(worker),
                "inputs": inputs,
            }
        ),
    )["executionArn"]
    return wait_until(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d)


def unit_record(runtime: Any, run_id: str, unit: str) -> dict[str, Any]:
    item = runtime.client("dynamodb").get_item(
        TableName=runtime.table, Key={"PK": {"S": f"RUN#{run_id}"}, "SK": {"S": f"UNIT#{unit}"}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_executor_runs_the_worker_and_records_success(runtime: Any) -> None:
    # Given a unit that never ran, When the executor runs it
    result = start_executor(runtime, "register", "exec-20260101t000000-00000001", REGISTER_INPUT, "RegisterWorker")
    # Then it succeeds, returns the worker's outputs and records them with attempt 1
    assert result["status"] == "SUCCEEDED"
    output = json.loads(result["output"])
    assert output["status"] == "SUCCEEDED" and output["attempt"] == 1
    assert output["outputs"]["model_package_arn"].startswith("arn:aws:sagemaker:")
    record = unit_record(runtime, "exec-20260101t000000-00000001", "register")
    assert record["status"] == "SUCCEEDED" and record["attempt"] == "1"
    assert json.loads(record["outputs"]) == output["outputs"]
    assert record["worker_execution_arn"].split(":")[-1] == "exec-20260101t000000-00000001-register-a1"
    assert json.loads(record["inputs"]) == REGISTER_INPUT


def test_executor_skips_a_unit_that_already_succeeded(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000002"
    first = json.loads(start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")["output"])
    invocations = len(runtime.lambdas.invocations)
    # When the same unit of the same run is executed again
    second = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    # Then it returns the recorded outputs without running the worker
    output = json.loads(second["output"])
    assert output["status"] == "SKIPPED" and output["attempt"] == 1
    assert output["outputs"] == first["outputs"]
    assert len(runtime.lambdas.invocations) == invocations


def test_executor_records_a_worker_failure_and_a_rerun_is_attempt_two(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000003"
    # Given the worker's function fails once with a named error
    failures = iter([RuntimeError("disk on fire")])
    runtime.lambdas.fault = lambda function, payload: (
        next(failures, None) if function == "RegisterModelFunction" else None
    )
    failed = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    # Then the executor fails with the worker's error, recorded on the unit
    assert failed["status"] == "FAILED"
    record = unit_record(runtime, run_id, "register")
    assert record["status"] == "FAILED"
    assert "RuntimeError" in record["error"] + record["cause"]
    assert "disk on fire" in record["cause"]
    # When it is executed again, it runs the worker as attempt 2 and succeeds
    rerun = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    assert rerun["status"] == "SUCCEEDED"
    assert json.loads(rerun["output"])["attempt"] == 2
    assert unit_record(runtime, run_id, "register")["status"] == "SUCCEEDED"


def test_executor_retries_a_throttled_lambda_and_succeeds(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000004"

    class TooManyRequestsException(Exception):
        pass

    # Lambda's throttling surfaces to Step Functions as Lambda.TooManyRequestsException.
    TooManyRequestsException.__name__ = "Lambda.TooManyRequestsException"
    failures = iter([TooManyRequestsException("Rate exceeded")])
    runtime.lambdas.fault = lambda function, payload: (
        next(failures, None) if function == "RegisterModelFunction" else None
    )
    result = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"])["attempt"] == 1
    assert sum(i["function"] == "RegisterModelFunction" for i in runtime.lambdas.invocations) == 2


def test_a_unit_that_is_running_cannot_be_started_twice(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000005"
    # Given the unit's record says another execution is running it
    runtime.client("dynamodb").put_item(
        TableName=runtime.table,
        Item={
            "PK": {"S": f"RUN#{run_id}"},
            "SK": {"S": "UNIT#register"},
            "status": {"S": "RUNNING"},
            "attempt": {"N": "1"},
        },
    )
    result = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    # Then the second execution fails fast with a named error and a readable cause
    assert result["status"] == "FAILED"
    assert result["error"] == "UnitAlreadyRunning"
    assert f"Unit register of run {run_id} is already running" in result["cause"]
