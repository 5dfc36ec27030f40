"""The local job API as AWS enforces it: a request beyond SageMaker's limits is refused with AWS's
ValidationException before any job exists; a job past its MaxRuntimeInSeconds ends Stopped (a training job with
SecondaryStatus MaxRuntimeExceeded); a job asking for several instances is refused at its start, never run on one."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import wait_until
from tests.unit.local.job_runner import local_job_runner
from tests.unit.local.model_fixtures import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE

BUCKET = "job-limits-tests"


@pytest.fixture
def runner(aws: None, tmp_path: Path) -> Iterator[Any]:
    with local_job_runner(tmp_path, BUCKET) as (local, _):
        yield local


def put(key: str, body: str) -> None:
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def processing_request(name: str, script: str = "print('ok')\n", **changes: Any) -> dict[str, Any]:
    put(f"code/{name}/job.py", textwrap.dedent(script))
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/code/job.py"],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{BUCKET}/code/{name}/",
                    "LocalPath": "/opt/ml/processing/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    request.update(changes)
    return request


def training_request(name: str, **changes: Any) -> dict[str, Any]:
    rows = "\n".join(f"{i % 7},{i},{i * 2 % 5}" for i in range(200))
    put(f"train/{name}/train.csv", rows + "\n")
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        # far more rounds than a second allows: the job is still training when its runtime is up
        "HyperParameters": {"num_round": "10000000", "objective": "reg:squarederror", "max_depth": "8"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/train/{name}/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1},
    }
    request.update(changes)
    return request


def ended(runner: Any, kind: str, name: str) -> dict[str, Any]:
    status_key = "ProcessingJobStatus" if kind == "processing" else "TrainingJobStatus"
    return wait_until(
        lambda: (d := runner.describe(kind, name))[status_key] not in ("InProgress", "Stopping") and d, timeout=90
    )


# ------------------------------------------------------------------------------------------- request limits
def test_a_training_only_instance_type_on_a_processing_job_is_refused_before_the_job_exists(runner: Any) -> None:
    # When a processing job asks for ml.p4d.24xlarge (a training instance type, not a processing one)
    request = processing_request("p4d")
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.p4d.24xlarge"
    status, answer = runner.handle("CreateProcessingJob", request)
    # Then CreateProcessingJob answers 400 ValidationException in AWS's words, and no job was created
    assert status == 400 and answer["Error"]["Code"] == "ValidationException"
    assert answer["Error"]["Message"].startswith(
        "1 validation error detected: Value 'ml.p4d.24xlarge' at 'processingResources.clusterConfig.instanceType' "
        "failed to satisfy constraint: Member must satisfy enum value set: [ml.t3.medium, "
    )
    assert runner.jobs == {}


@pytest.mark.parametrize(
    ("arguments", "path", "constraint"),
    [
        (["--features", "c" * 257], "appSpecification.containerArguments.2.member", "length less than or equal to 256"),
        (["-v"] * 101, "appSpecification.containerArguments", "length less than or equal to 100"),
    ],
)
def test_container_arguments_over_aws_limits_are_refused(
    runner: Any, arguments: list[str], path: str, constraint: str
) -> None:
    request = processing_request("long-args")
    request["AppSpecification"]["ContainerArguments"] = arguments
    status, answer = runner.handle("CreateProcessingJob", request)
    assert status == 400 and answer["Error"]["Code"] == "ValidationException"
    assert f"at '{path}' failed to satisfy constraint: Member must have {constraint}" in answer["Error"]["Message"]
    assert runner.jobs == {}


def test_a_training_job_beyond_the_runtime_bound_is_refused(runner: Any) -> None:
    status, answer = runner.handle(
        "CreateTrainingJob", training_request("too-long", StoppingCondition={"MaxRuntimeInSeconds": 0})
    )
    assert status == 400
    assert (
        "at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: Member must have value "
        in (answer["Error"]["Message"])
    )


# ------------------------------------------------------------------------------------------- runtime limits
def test_a_processing_job_past_its_max_runtime_ends_stopped_without_a_failure_reason(runner: Any) -> None:
    # Given a processing job whose script sleeps far longer than its MaxRuntimeInSeconds of 1
    request = processing_request(
        "sleepy",
        "import time\nprint('working', flush=True)\ntime.sleep(60)\n",
        StoppingCondition={"MaxRuntimeInSeconds": 1},
    )
    started = time.monotonic()
    assert runner.handle("CreateProcessingJob", request)[0] == 200
    # When its runtime is up
    described = ended(runner, "processing", "sleepy")
    # Then it ends Stopped (as SageMaker stops it), promptly, with no FailureReason (it did not fail)
    assert described["ProcessingJobStatus"] == "Stopped"
    assert "FailureReason" not in described
    assert time.monotonic() - started < 30
    # and its run time, which the state machines read, is at least its maximum
    ran = (described["ProcessingEndTime"] - described["ProcessingStartTime"]).total_seconds()
    assert ran >= described["StoppingCondition"]["MaxRuntimeInSeconds"]


def test_a_training_job_past_its_max_runtime_ends_stopped_with_max_runtime_exceeded(runner: Any) -> None:
    # Given a training job with far more rounds than its MaxRuntimeInSeconds of 1 allows
    assert runner.handle("CreateTrainingJob", training_request("long-train"))[0] == 200
    # When its runtime is up
    described = ended(runner, "training", "long-train")
    # Then it ends Stopped with SecondaryStatus MaxRuntimeExceeded, the last transition saying why
    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "FailureReason" not in described
    last = described["SecondaryStatusTransitions"][-1]
    assert last["Status"] == "MaxRuntimeExceeded" and "MaxRuntimeInSeconds" in last["StatusMessage"]
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting",
        "Training",
        "MaxRuntimeExceeded",
    ]


def test_a_stopped_job_is_stopping_then_stopped_with_its_own_secondary_status(runner: Any) -> None:
    request = processing_request(
        "to-stop", "import time\ntime.sleep(60)\n", StoppingCondition={"MaxRuntimeInSeconds": 600}
    )
    runner.handle("CreateProcessingJob", request)
    wait_until(lambda: "to-stop" in runner._processes, timeout=90)
    assert runner.handle("StopProcessingJob", {"ProcessingJobName": "to-stop"}) == (200, {})
    assert runner.describe("processing", "to-stop")["ProcessingJobStatus"] in ("Stopping", "Stopped")
    assert ended(runner, "processing", "to-stop")["ProcessingJobStatus"] == "Stopped"


# ------------------------------------------------------------------------------------------- instance count
@pytest.mark.parametrize("kind", ["processing", "training"])
def test_a_job_asking_for_two_instances_is_refused_at_its_start_with_a_clear_reason(runner: Any, kind: str) -> None:
    # Given a job asking for InstanceCount 2, which the local runtime would otherwise run on one
    if kind == "processing":
        request = processing_request("two-hosts")
        request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
        runner.handle("CreateProcessingJob", request)
    else:
        request = training_request("two-hosts")
        request["ResourceConfig"]["InstanceCount"] = 2
        runner.handle("CreateTrainingJob", request)
    # Then it fails at once with a ClientError saying why and what to do, instead of running on one host
    described = ended(runner, kind, "two-hosts")
    assert described[f"{kind.title()}JobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith("ClientError: the local runtime runs one instance: InstanceCount 2")
    assert reason.endswith("set instance_count 1 for local runs")


def test_an_image_that_runs_the_distributed_contract_may_ask_for_several_instances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sfn_mlops_local.local import sagemaker_jobs

    # Given the Spark image (its local mode stands for several instances), Then it may ask for three ...
    spark = "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu"
    assert sagemaker_jobs.instance_count_refusal(spark, 3) is None
    # ... because the per-image hook says so: without it, it is refused like any other image
    monkeypatch.setattr(sagemaker_jobs, "MULTI_INSTANCE_IMAGES", frozenset())
    assert sagemaker_jobs.instance_count_refusal(spark, 3) is not None
    assert sagemaker_jobs.instance_count_refusal(SKLEARN_IMAGE, 1) is None
