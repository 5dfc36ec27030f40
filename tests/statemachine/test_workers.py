"""Each worker state machine on the local runtime: real jobs on success, readable causes on failure."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, wait_until

RUN_ID = "abalone-20260101t000000-0000abcd"


def run_worker(runtime: Any, worker: str, unit: str, inputs: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
    sfn = runtime.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=runtime.state_machine_arn(worker),
        name=str(uuid.uuid4()),
        input=json.dumps({"run_id": RUN_ID, "pipeline": "abalone", "unit": unit, "attempt": attempt, "inputs": inputs}),
    )["executionArn"]
    return wait_until(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=120)


@pytest.fixture
def plan(runtime: Any) -> dict[str, Any]:
    """A planned run of the abalone pipeline (the flow's first step), without starting the flow."""
    from sfn_mlops_local.operations import publish_pipeline

    s3 = runtime.client("s3")
    target = runtime.target()
    publish_pipeline(target, ROOT / "models" / "abalone")
    # Upload outside data/ so that the trigger does not start a flow of its own.
    s3.put_object(
        Bucket=runtime.bucket,
        Key="staging/abalone.csv",
        Body=(ROOT / "models/abalone/data/abalone.csv").read_bytes(),
    )
    result, error = runtime.lambdas.invoke(
        runtime.physical("PlanRunFunction"),
        {
            "pipeline": "abalone",
            "run_id": RUN_ID,
            "dataset": {"bucket": runtime.bucket, "key": "staging/abalone.csv"},
        },
    )
    assert error is None, result
    plan: dict[str, Any] = result
    return plan


def run_chain(runtime: Any, plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The four workers in turn, each fed the previous ones' outputs, as the executor would (each must succeed)."""
    results: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Any] = {}
    units = plan["units"]
    steps = [
        ("PreprocessWorker", "preprocess", lambda: {"dataset": plan["dataset"]}),
        ("TrainWorker", "train", lambda: {"data": outputs["preprocess"]}),
        (
            "EvaluateWorker",
            "evaluate",
            lambda: {"model": outputs["train"], "data": outputs["preprocess"], "gate": plan["gate"]},
        ),
        (
            "RegisterWorker",
            "register",
            lambda: {
                "model": outputs["train"],
                "evaluation": outputs["evaluate"],
                "data": outputs["preprocess"],
                "dataset": plan["dataset"],
            },
        ),
    ]
    for worker, unit, inputs in steps:
        results[unit] = run_worker(runtime, worker, unit, {"config": units[unit], **inputs()})
        assert results[unit]["status"] == "SUCCEEDED", results[unit]
        outputs[unit] = json.loads(results[unit]["output"])
    return results


def test_preprocess_train_evaluate_register_workers_chain(runtime: Any, plan: dict[str, Any]) -> None:
    # When the four workers run in turn
    results = run_chain(runtime, plan)
    # preprocess: validated, snapshotted, split by a real processing job
    data = json.loads(results["preprocess"]["output"])
    assert data["job_name"] == f"{RUN_ID}-prep-a1"
    assert data["train_uri"].endswith("/preprocess/a1/train/")
    assert data["dataset_snapshot"].endswith(f"{RUN_ID}/input/abalone.csv")
    # and the data baseline of the raw training split, in Model Monitor's formats, next to it
    prefix = data["baseline_uri"]
    assert prefix.endswith("/preprocess/a1/baseline/")
    assert data["baseline"] == {"statistics": prefix + "statistics.json", "constraints": prefix + "constraints.json"}
    s3 = runtime.client("s3")
    statistics = json.loads(
        s3.get_object(Bucket=runtime.bucket, Key=data["baseline"]["statistics"].split("/", 3)[3])["Body"].read()
    )
    assert statistics["dataset"]["item_count"] == 2923.0
    assert [f["name"] for f in statistics["features"]] == [
        "sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight",
    ]  # fmt: skip
    # train: built-in XGBoost semantics, a model.tar.gz where SageMaker puts it
    model = json.loads(results["train"]["output"])
    assert model["model_data"].endswith(f"/train/a1/{RUN_ID}-train-a1/output/model.tar.gz")
    job = runtime.client("sagemaker").describe_training_job(TrainingJobName=model["job_name"])
    assert job["HyperParameters"]["num_round"] == "50"  # hyperparameters travel as strings
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "validation"]
    # user-published code runs without network access, with encrypted traffic between instances
    assert job["EnableNetworkIsolation"] is True and job["EnableInterContainerTrafficEncryption"] is True
    sagemaker = runtime.client("sagemaker")
    for unit in ("preprocess", "evaluate"):
        processing = sagemaker.describe_processing_job(
            ProcessingJobName=json.loads(results[unit]["output"])["job_name"]
        )
        assert processing["NetworkConfig"] == {
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
        }
    # evaluate: metrics for the gate
    evaluation = json.loads(results["evaluate"]["output"])
    gate = evaluation["gate"]
    assert gate == {**plan["gate"], "value": evaluation["metrics"]["rmse"], "baseline_value": gate["baseline_value"]}
    # the naive baseline (the training labels' mean) scores far worse than the model; no champion serves yet
    assert gate["baseline_value"] > gate["value"] and "champion_value" not in gate
    # and the predictions the deployment's smoke test will compare with, one per test row
    assert evaluation["predictions_uri"].endswith("/evaluation/predictions.csv")
    # register: an inference-pipeline package in the pipeline's group of this stack, pending approval
    package = json.loads(results["register"]["output"])
    assert package["model_package_group"] == plan["units"]["register"]["model_package_group"]
    assert package["model_package_group"].endswith("-abalone") and package["model_package_version"] == 1
    assert package["approval_status"] == "PendingManualApproval"
    described = runtime.client("sagemaker").describe_model_package(ModelPackageName=package["model_package_arn"])
    containers = described["InferenceSpecification"]["Containers"]
    assert [c["ModelDataUrl"] for c in containers] == [package["preprocessing_data"], model["model_data"]]
    assert containers[0]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    # with the data baseline as its drift check baseline
    quality = described["DriftCheckBaselines"]["ModelDataQuality"]
    assert quality["Statistics"] == {"ContentType": "application/json", "S3Uri": data["baseline"]["statistics"]}
    assert quality["Constraints"] == {"ContentType": "application/json", "S3Uri": data["baseline"]["constraints"]}


def test_preprocess_worker_rejects_a_bad_dataset_before_any_job(runtime: Any, plan: dict[str, Any]) -> None:
    runtime.client("s3").put_object(Bucket=runtime.bucket, Key="staging/bad.csv", Body=b"a,b\n1,2\n")
    dataset = {**plan["dataset"], "key": "staging/bad.csv", "version_id": None, "size": 8}
    result = run_worker(
        runtime, "PreprocessWorker", "preprocess", {"config": plan["units"]["preprocess"], "dataset": dataset}
    )
    assert result["status"] == "FAILED"
    assert result["error"] == "DatasetValidationError"
    assert "no label column 'rings'" in result["cause"]
    assert runtime.jobs.jobs == {}


@pytest.mark.parametrize(
    ("worker", "unit", "error"),
    [
        ("PreprocessWorker", "preprocess", "ProcessingJobFailed"),
        ("TrainWorker", "train", "TrainingJobFailed"),
    ],
)
def test_a_failed_sagemaker_job_fails_the_worker_with_its_reason(
    runtime: Any, plan: dict[str, Any], worker: str, unit: str, error: str
) -> None:
    runtime.jobs.fault = lambda name, job: "AlgorithmError: injected failure (out of memory)"
    inputs: dict[str, Any] = {"config": plan["units"][unit]}
    if unit == "preprocess":
        inputs["dataset"] = plan["dataset"]
    else:
        inputs["data"] = {"train_uri": "s3://x/train/", "validation_uri": "s3://x/validation/"}
    result = run_worker(runtime, worker, unit, inputs)
    assert result["status"] == "FAILED"
    assert result["error"] == error
    assert "injected failure (out of memory)" in result["cause"]
    assert f"{RUN_ID}-" in result["cause"]  # the job name, so the user can find its logs


def test_evaluate_worker_fails_readably_when_the_report_lacks_the_gate_metric(
    runtime: Any, plan: dict[str, Any], tmp_path: Path
) -> None:
    # Given an evaluation script that writes a report without the gate's metric
    result, error = runtime.lambdas.invoke(
        runtime.physical("ReadMetricsFunction"),
        {"evaluation_uri": f"s3://{runtime.bucket}/runs/none/evaluation.json", "gate": plan["gate"]},
    )
    assert error == "Unhandled"
    assert result["errorType"] == "MetricsNotFound"
    assert "wrote no report" in result["errorMessage"]


def test_the_same_attempt_executed_again_adopts_its_completed_job(runtime: Any, plan: dict[str, Any]) -> None:
    # Given preprocess attempt 1 completed its processing job
    inputs = {"config": plan["units"]["preprocess"], "dataset": plan["dataset"]}
    first = run_worker(runtime, "PreprocessWorker", "preprocess", inputs)
    assert first["status"] == "SUCCEEDED"
    jobs = dict(runtime.jobs.jobs)
    # When attempt 1 is executed again (a redrive, or a retry after the job was created)
    again = run_worker(runtime, "PreprocessWorker", "preprocess", inputs)
    # Then the completed job is adopted: same outputs (the data baseline too), no second job, no name collision
    assert again["status"] == "SUCCEEDED", again.get("cause")
    assert json.loads(again["output"]) == json.loads(first["output"])
    assert "baseline" in json.loads(again["output"])
    assert dict(runtime.jobs.jobs).keys() == jobs.keys()


def test_the_same_attempt_cannot_adopt_a_failed_job(runtime: Any, plan: dict[str, Any]) -> None:
    # Given train attempt 1's job failed
    runtime.jobs.fault = lambda name, job: "AlgorithmError: injected failure"
    data = {"train_uri": f"s3://{runtime.bucket}/x/train/", "validation_uri": f"s3://{runtime.bucket}/x/validation/"}
    inputs = {"config": plan["units"]["train"], "data": data}
    assert run_worker(runtime, "TrainWorker", "train", inputs)["status"] == "FAILED"
    runtime.jobs.fault = None
    # When attempt 1 is executed again, Then it fails readably instead of colliding on the name
    again = run_worker(runtime, "TrainWorker", "train", inputs)
    assert again["status"] == "FAILED" and again["error"] == "JobNameInUse"
    assert f"{RUN_ID}-train-a1 already exists with status Failed" in again["cause"]


def _transient(error_name: str) -> Exception:
    """An exception whose type name is the error Step Functions reports for a failed Lambda invoke."""
    return type(error_name, (Exception,), {})("Rate exceeded")


def _task_errors(runtime: Any, execution_arn: str) -> list[str]:
    """The errors of the execution's failed task attempts, in order (each one retried)."""
    events = runtime.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"]


def test_each_worker_retries_a_transient_error_and_succeeds(runtime: Any, plan: dict[str, Any]) -> None:
    # Given every worker's first call throttled once (Lambda) or refused for capacity once (SageMaker)
    throttled = {"ValidateDatasetFunction", "PrepareJobFunction", "ReadMetricsFunction", "RegisterModelFunction"}
    first_calls: set[str] = set()

    def throttle_first_call(function: str, payload: Any) -> Exception | None:
        if function in throttled and function not in first_calls:
            first_calls.add(function)
            return _transient("Lambda.TooManyRequestsException")
        return None

    runtime.lambdas.fault = throttle_first_call
    runtime.fail_task("TrainWorker", "Train model", "SageMaker.ResourceLimitExceededException")
    # When the four workers run in turn
    results = run_chain(runtime, plan)
    # Then each retried its failed call once and succeeded, with one job per unit and one model package
    throttling = "Lambda.TooManyRequestsException"
    errors = {unit: _task_errors(runtime, result["executionArn"]) for unit, result in results.items()}
    assert errors == {
        "preprocess": [throttling, throttling],  # validate dataset, build the job request
        "train": ["SageMaker.ResourceLimitExceededException"],
        "evaluate": [throttling],  # read metrics (the job request function was throttled once already)
        "register": [throttling],
    }
    assert first_calls == throttled and runtime.pending_task_faults() == []
    assert sorted(runtime.jobs.jobs) == sorted(f"{RUN_ID}-{code}-a1" for code in ("prep", "train", "eval"))
    group = plan["units"]["register"]["model_package_group"]
    packages = runtime.client("sagemaker").list_model_packages(ModelPackageGroupName=group)
    assert len(packages["ModelPackageSummaryList"]) == 1


def test_a_worker_fails_with_the_transient_error_once_its_retries_are_spent(runtime: Any, plan: dict[str, Any]) -> None:
    # Given the register function throttled on every call (1 call + 3 retries)
    runtime.lambdas.fault = lambda function, payload: (
        _transient("Lambda.TooManyRequestsException") if function == "RegisterModelFunction" else None
    )
    inputs = {
        "config": plan["units"]["register"],
        "model": {"model_data": f"s3://{runtime.bucket}/x/model.tar.gz"},
        "evaluation": {"metrics": {"rmse": 2.0}, "evaluation_uri": f"s3://{runtime.bucket}/x/evaluation.json"},
        "dataset": plan["dataset"],
    }
    # When the register worker runs
    result = run_worker(runtime, "RegisterWorker", "register", inputs)
    # Then it fails with the throttling error after four calls, and registered nothing
    assert (result["status"], result["error"]) == ("FAILED", "Lambda.TooManyRequestsException")
    assert sum(i["function"] == "RegisterModelFunction" for i in runtime.lambdas.invocations) == 4
    groups = runtime.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert groups == []
