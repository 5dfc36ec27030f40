"""Job limits through the local service's SageMaker API, as a user's boto3 client meets them, and a timed-out job
as the worker state machine explains it (what `mlops status` shows as the run's cause)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROOT, service_target, wait_until
from tests.unit.local.model_fixtures import ROLE, SKLEARN_IMAGE

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    state = tmp_path_factory.mktemp("e2e-job-timeouts") / "state"
    monkeypatch.setenv("MLOPS_LOCAL_STATE", str(state))
    monkeypatch.chdir(ROOT)
    target, _ = service_target(state)
    yield target
    from sfn_mlops_local.local import client

    client.stop(state)


def _processing_job(target: Any, name: str, script: bytes, instance_type: str, max_runtime: int) -> dict[str, Any]:
    target.s3.put_object(Bucket=target.bucket, Key=f"tests/{name}/job.py", Body=script)
    return {
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
                    "S3Uri": f"s3://{target.bucket}/tests/{name}/",
                    "LocalPath": "/opt/ml/processing/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 1}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def test_the_local_service_refuses_and_stops_jobs_as_sagemaker_does(service: Any) -> None:
    sagemaker = service.sagemaker
    # When a processing job asks for a training-only instance type, Then CreateProcessingJob refuses it in AWS's words
    with pytest.raises(ClientError) as refused:
        sagemaker.create_processing_job(
            **_processing_job(service, "p4d-job", b"print('never')\n", "ml.p4d.24xlarge", 60)
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["Error"]["Message"].startswith(
        "1 validation error detected: Value 'ml.p4d.24xlarge' at 'processingResources.clusterConfig.instanceType' "
        "failed to satisfy constraint: Member must satisfy enum value set: ["
    )
    # When a job runs past its MaxRuntimeInSeconds of 1, Then it ends Stopped (no FailureReason: it did not fail)
    sleepy = b"import time\nprint('working', flush=True)\ntime.sleep(60)\n"
    sagemaker.create_processing_job(**_processing_job(service, "sleepy-job", sleepy, "ml.m5.large", 1))
    described = wait_until(
        lambda: (
            (d := sagemaker.describe_processing_job(ProcessingJobName="sleepy-job"))["ProcessingJobStatus"]
            not in ("InProgress", "Stopping")
            and d
        ),
        timeout=60,
    )
    assert described["ProcessingJobStatus"] == "Stopped" and "FailureReason" not in described
    assert (described["ProcessingEndTime"] - described["ProcessingStartTime"]).total_seconds() >= 1


RUN_ID = "abalone-20260101t000000-0000abcd"


def _planned_train_config(runtime: Any) -> dict[str, Any]:
    """The train unit's planned config of an abalone run, as the executor hands it to the worker."""
    from sfn_mlops_local.operations import publish_pipeline

    publish_pipeline(runtime.target(), ROOT / "models" / "abalone")
    runtime.client("s3").put_object(  # outside data/: no flow of its own starts
        Bucket=runtime.bucket, Key="staging/abalone.csv", Body=(ROOT / "models/abalone/data/abalone.csv").read_bytes()
    )
    plan, error = runtime.lambdas.invoke(
        runtime.physical("PlanRunFunction"),
        {"pipeline": "abalone", "run_id": RUN_ID, "dataset": {"bucket": runtime.bucket, "key": "staging/abalone.csv"}},
    )
    assert error is None, plan
    config: dict[str, Any] = plan["units"]["train"]
    return config


def test_a_training_job_stopped_by_its_max_runtime_is_explained_by_the_worker(runtime: Any) -> None:
    from sfn_mlops_local.local.sagemaker_jobs import JobFailed

    # Given a planned abalone run whose training job SageMaker stops at its maximum runtime (the runner's own
    # timeout path, reached at once instead of after the config's minimum of 60 seconds)
    config = _planned_train_config(runtime)

    def stopped_at_max_runtime(name: str, job: dict[str, Any]) -> str | None:
        raise JobFailed("MaxRuntimeExceeded", status="Stopped", secondary_status="MaxRuntimeExceeded")

    runtime.jobs.fault = stopped_at_max_runtime
    # When the train worker runs it
    sfn = runtime.client("stepfunctions")
    data = {"train_uri": f"s3://{runtime.bucket}/x/train/", "validation_uri": f"s3://{runtime.bucket}/x/validation/"}
    arn = sfn.start_execution(
        stateMachineArn=runtime.state_machine_arn("TrainWorker"),
        name=str(uuid.uuid4()),
        input=json.dumps(
            {
                "run_id": RUN_ID,
                "pipeline": "abalone",
                "unit": "train",
                "attempt": 1,
                "inputs": {"config": config, "data": data},
            }
        ),
    )["executionArn"]
    result = wait_until(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=120
    )
    # Then it fails as TrainingJobStopped, saying the job hit its maximum runtime and which setting raises it
    assert result["status"] == "FAILED" and result["error"] == "TrainingJobStopped"
    described = runtime.client("sagemaker").describe_training_job(TrainingJobName=f"{RUN_ID}-train-a1")
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    limit = config["compute"]["max_runtime_s"]
    assert result["cause"] == (
        f"Training job {RUN_ID}-train-a1 stopped: it ran longer than its maximum runtime of {limit} seconds "
        "(StoppingCondition.MaxRuntimeInSeconds); raise train.compute.max_runtime_s or make the job faster"
    )
