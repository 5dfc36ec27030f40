"""The executor state machine on the local runtime: run, skip, fail, retry, lock."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

import pytest

from tests.conftest import ROOT, wait_until

# The register worker is the executor's unit here: a cheap worker with real outputs. What it reads (the preprocess
# unit's schema output, the pinned inference script) is staged in a bucket of its own by the fixture below.
EXEC_BUCKET = "exec-test-bucket"
INFERENCE = (ROOT / "models/abalone/scripts/inference.py").read_bytes()
SCHEMA = {"label": "y", "columns": ["x", "c", "y"], "categorical": {"c": ["a", "b"]}, "features": ["x", "c_a", "c_b"]}
REGISTER_INPUT = {
    "config": {
        "model_package_group": "",  # the runtime stack's group for pipeline "exec": set by the fixture
        "inference_instance_types": ["ml.m5.large"],
        "transform_instance_types": ["ml.m5.large"],
        "image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "preprocessing_image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "script": {
            "uri": f"s3://{EXEC_BUCKET}/runs/x/code/scripts/inference.py",
            "sha256": hashlib.sha256(INFERENCE).hexdigest(),
        },
        "runs_root": f"s3://{EXEC_BUCKET}/runs/x/",  # start_executor puts the run's own prefix here
        "problem_type": "regression",
    },
    "data": {"schema_uri": f"s3://{EXEC_BUCKET}/runs/x/preprocess/a1/schema/"},
    "model": {"model_data": f"s3://{EXEC_BUCKET}/runs/x/model.tar.gz"},
    "evaluation": {"metrics": {"rmse": 2.0}, "evaluation_uri": f"s3://{EXEC_BUCKET}/runs/x/evaluation.json"},
    "dataset": {"uri": f"s3://{EXEC_BUCKET}/data/x/a.csv", "version": "v1", "etag": "e"},
}


@pytest.fixture(autouse=True)
def register_inputs(runtime: Any) -> None:
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=EXEC_BUCKET)
    s3.put_object(Bucket=EXEC_BUCKET, Key="runs/x/code/scripts/inference.py", Body=INFERENCE)
    s3.put_object(Bucket=EXEC_BUCKET, Key="runs/x/preprocess/a1/schema/schema.json", Body=json.dumps(SCHEMA).encode())
    prefix = runtime.template.functions()["RegisterModelFunction"].environment.get("RESOURCE_PREFIX", "sfn-mlops")
    REGISTER_INPUT["config"]["model_package_group"] = f"{prefix}-exec"


def fp(name: str) -> str:
    """An inputs fingerprint as the planner makes them (a SHA-256 hex digest), named for the test."""
    return hashlib.sha256(name.encode()).hexdigest()


def planned(config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """``config`` as the planner would give it to ``run_id``: under the run's prefix, stamped with its digest."""
    from sfn_mlops.fingerprint import config_digest

    config = {**config, "runs_root": f"s3://{EXEC_BUCKET}/runs/exec/{run_id}/"}
    return {**config, "config_sha256": config_digest(config)}


def start_executor(
    runtime: Any,
    unit: str,
    run_id: str,
    inputs: dict[str, Any],
    worker: str,
    fingerprint: str = fp("fp-1"),
    policy: str = "resume",
    cache: dict[str, Any] | None = None,
    wait: bool = True,
) -> Any:
    sfn = runtime.client("stepfunctions")
    if "config" in inputs:  # a worker takes only a config for its own run (the planner's prefix and digest for it)
        inputs = {**inputs, "config": planned(inputs["config"], run_id)}
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
                "fingerprint": fingerprint,
                "policy": policy,
                "cache": cache or {"enabled": False, "max_age_s": 0},
                "lease_s": 900,
            }
        ),
    )["executionArn"]
    if not wait:
        return arn
    return finished(runtime, arn)


def finished(runtime: Any, arn: str) -> dict[str, Any]:
    sfn = runtime.client("stepfunctions")
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
    assert json.loads(record["inputs"]) == {
        **REGISTER_INPUT,
        "config": planned(REGISTER_INPUT["config"], "exec-20260101t000000-00000001"),
    }


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


def test_two_simultaneous_executions_of_one_unit_run_it_once(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000005"
    # Given one execution of the unit is inside its worker (held there until we let it go)
    release = threading.Event()
    runtime.lambdas.fault = lambda function, payload: (
        release.wait(60) and None if function == "RegisterModelFunction" else None
    )
    first = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker", wait=False)
    wait_until(lambda: unit_record_or_none(runtime, run_id, "register"))
    # When a second execution of the same unit of the same run starts
    second = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    release.set()
    # Then the second fails fast with a named error and a readable cause, and the first completes alone
    assert second["status"] == "FAILED" and second["error"] == "UnitAlreadyRunning"
    assert f"unit register of run {run_id} is already running in {first}" in second["cause"]
    assert finished(runtime, first)["status"] == "SUCCEEDED"
    record = unit_record(runtime, run_id, "register")
    assert record["status"] == "SUCCEEDED" and record["attempt"] == "1"
    assert sum(i["function"] == "RegisterModelFunction" for i in runtime.lambdas.invocations) == 1


def test_a_crashed_holders_lock_is_released_and_the_unit_runs(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000006"
    # Given the unit is RUNNING, held by an execution that ended without recording an outcome
    sfn = runtime.client("stepfunctions")
    crashed = sfn.start_execution(
        stateMachineArn=runtime.state_machine_arn("Executor"), name=str(uuid.uuid4()), input="{}"
    )["executionArn"]
    finished(runtime, crashed)
    put_running_record(runtime, run_id, holder=crashed, started_at="2026-01-01T00:00:00Z", lease_s=86400 * 3650)
    # When the unit is executed again
    result = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    # Then the dead lock is released, the unit runs as attempt 2 and succeeds
    assert result["status"] == "SUCCEEDED", result.get("cause")
    record = unit_record(runtime, run_id, "register")
    assert record["status"] == "SUCCEEDED" and record["attempt"] == "2"


def test_a_lock_whose_lease_expired_is_taken_over_and_its_worker_stopped(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000007"
    sfn = runtime.client("stepfunctions")
    # Given a live execution holds the unit, stuck in its worker, and its lease ran out long ago
    release = threading.Event()
    blocked: list[str] = []

    def block_first_registration(function: str, payload: Any) -> None:
        if function == "RegisterModelFunction" and not blocked:
            blocked.append(function)
            release.wait(60)

    runtime.lambdas.fault = block_first_registration
    holder = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker", wait=False)
    wait_until(lambda: blocked)
    runtime.client("dynamodb").update_item(
        TableName=runtime.table,
        Key={"PK": {"S": f"RUN#{run_id}"}, "SK": {"S": "UNIT#register"}},
        UpdateExpression="SET started_at = :long_ago, lease_s = :lease",
        ExpressionAttributeValues={":long_ago": {"S": "2026-01-01T00:00:00Z"}, ":lease": {"N": "60"}},
    )
    stuck_worker = (
        f"{runtime.state_machine_arn('RegisterWorker').replace(':stateMachine:', ':execution:')}:{run_id}-register-a1"
    )
    # When the unit is executed again
    result = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker")
    # Then the expired lock is taken over (attempt 2), the abandoned attempt's worker is stopped,
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert unit_record(runtime, run_id, "register")["attempt"] == "2"
    # (moto applies a stop when the stopped execution next moves; AWS at once)
    release.set()
    assert wait_until(
        lambda: (s := sfn.describe_execution(executionArn=stuck_worker)["status"]) != "RUNNING" and s
    ) == ("ABORTED")
    # and the old holder cannot overwrite the new attempt's record
    old = finished(runtime, holder)
    assert old["status"] == "FAILED" and old["error"] == "UnitLockLost"
    record = unit_record(runtime, run_id, "register")
    assert record["status"] == "SUCCEEDED" and record["attempt"] == "2"


def test_changed_inputs_fingerprint_reruns_and_force_reruns(runtime: Any) -> None:
    run_id = "exec-20260101t000000-00000008"
    start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker", fingerprint=fp("fp-a"))
    # When the unit's inputs fingerprint changes, it runs again (attempt 2)
    changed = json.loads(
        start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker", fingerprint=fp("fp-b"))["output"]
    )
    assert changed["status"] == "SUCCEEDED" and changed["attempt"] == 2
    # When it is forced with the same fingerprint, it runs again (attempt 3)
    forced = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker", fp("fp-b"), policy="force")
    assert json.loads(forced["output"])["attempt"] == 3
    # When --only's upstream policy "reuse" meets a different fingerprint, the recorded outputs are returned
    reused = start_executor(runtime, "register", run_id, REGISTER_INPUT, "RegisterWorker", fp("fp-c"), policy="reuse")
    assert json.loads(reused["output"])["status"] == "SKIPPED"
    assert json.loads(reused["output"])["attempt"] == 3


def test_cache_reuses_another_runs_success_with_the_same_fingerprint(runtime: Any) -> None:
    cache = {"enabled": True, "max_age_s": 3600}
    first = start_executor(
        runtime, "register", "exec-20260101t000000-00000009", REGISTER_INPUT, "RegisterWorker", fp("fp-z"), cache=cache
    )
    invocations = len(runtime.lambdas.invocations)
    # When another run executes the unit with the same fingerprint and the cache on
    second = start_executor(
        runtime, "register", "exec-20260101t000000-00000010", REGISTER_INPUT, "RegisterWorker", fp("fp-z"), cache=cache
    )
    # Then it is CACHED from the first run, without running the worker
    assert second["status"] == "SUCCEEDED", second.get("cause")
    output = json.loads(second["output"])
    assert output["status"] == "CACHED"
    assert output["cached_from"]["run_id"] == "exec-20260101t000000-00000009"
    assert output["outputs"] == json.loads(first["output"])["outputs"]
    assert not any(i["function"] == "RegisterModelFunction" for i in runtime.lambdas.invocations[invocations:])
    record = unit_record(runtime, "exec-20260101t000000-00000010", "register")
    assert record["status"] == "CACHED"
    assert json.loads(record["cached_from"])["run_id"] == "exec-20260101t000000-00000009"
    # And with the cache off, or another fingerprint, it runs
    other = start_executor(
        runtime, "register", "exec-20260101t000000-00000011", REGISTER_INPUT, "RegisterWorker", fp("fp-y"), cache=cache
    )
    assert json.loads(other["output"])["status"] == "SUCCEEDED"


def unit_record_or_none(runtime: Any, run_id: str, unit: str) -> dict[str, Any] | None:
    item = (
        runtime.client("dynamodb")
        .get_item(TableName=runtime.table, Key={"PK": {"S": f"RUN#{run_id}"}, "SK": {"S": f"UNIT#{unit}"}})
        .get("Item")
    )
    return item


def put_running_record(runtime: Any, run_id: str, holder: str, started_at: str, lease_s: int) -> None:
    runtime.client("dynamodb").put_item(
        TableName=runtime.table,
        Item={
            "PK": {"S": f"RUN#{run_id}"},
            "SK": {"S": "UNIT#register"},
            "status": {"S": "RUNNING"},
            "attempt": {"N": "1"},
            "executor_execution_arn": {"S": holder},
            "started_at": {"S": started_at},
            "lease_s": {"N": str(lease_s)},
        },
    )
