"""A job request is checked against SageMaker's own limits (botocore's service model) before it is sent, and a
breach is reported in AWS's ValidationException words; jobs.py refuses such a request with InvalidJobRequest."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sfn_mlops import api_limits
from sfn_mlops.errors import InvalidJobRequest, InvalidUnitInput
from sfn_mlops.jobs import check_job_request

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


def processing(**resources: Any) -> dict[str, Any]:
    return {
        "ProcessingJobName": "run-preprocess-a1",
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"],
            "ContainerArguments": ["--label", "rings"],
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30, **resources}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": {"MLOPS_UNIT": "preprocess"},
    }


def training(**resources: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": "run-train-a1",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "x/sagemaker-xgboost:1.7-1", "TrainingInputMode": "File"},
        "HyperParameters": {"num_round": "10"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/runs/"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30, **resources},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def transform(instance_type: str) -> dict[str, Any]:
    return {
        "TransformJobName": "batch-a1",
        "ModelName": "model",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}},
        "TransformOutput": {"S3OutputPath": "s3://b/out/"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
    }


def changed(request: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``request`` with the member at dotted ``path`` set to ``value`` (None removes it)."""
    copied = copy.deepcopy(request)
    *parents, last = path.split(".")
    node = copied
    for part in parents:
        node = node[part]
    if value is None:
        node.pop(last)
    else:
        node[last] = value
    return copied


def test_requests_within_the_limits_pass() -> None:
    assert api_limits.problems("CreateProcessingJob", processing()) == []
    assert api_limits.problems("CreateTrainingJob", training()) == []
    assert api_limits.problems("CreateTransformJob", transform("ml.m5.large")) == []


@pytest.mark.parametrize(
    ("operation", "request_", "path", "constraint"),
    [
        # instance types per job kind: a training-only type on a processing job, and on a transform job
        (
            "CreateProcessingJob",
            processing(InstanceType="ml.p4d.24xlarge"),
            "processingResources.clusterConfig.instanceType",
            "Member must satisfy enum value set: [ml.t3.medium, ",
        ),
        (
            "CreateTransformJob",
            transform("ml.c5n.xlarge"),
            "transformResources.instanceType",
            "Member must satisfy enum value set: [",
        ),
        (
            "CreateTrainingJob",
            training(InstanceType="ml.z9.huge"),
            "resourceConfig.instanceType",
            "Member must satisfy enum value set: [",
        ),
        # argument lengths and counts
        (
            "CreateProcessingJob",
            changed(processing(), "AppSpecification.ContainerArguments", ["--features", "f" * 257]),
            "appSpecification.containerArguments.2.member",
            "Member must have length less than or equal to 256",
        ),
        (
            "CreateProcessingJob",
            changed(processing(), "AppSpecification.ContainerArguments", ["-x"] * 101),
            "appSpecification.containerArguments",
            "Member must have length less than or equal to 100",
        ),
        (
            "CreateProcessingJob",
            changed(processing(), "AppSpecification.ContainerArguments", []),
            "appSpecification.containerArguments",
            "Member must have length greater than or equal to 1",
        ),
        # volume, count and runtime bounds
        (
            "CreateProcessingJob",
            processing(VolumeSizeInGB=20000),
            "processingResources.clusterConfig.volumeSizeInGB",
            "Member must have value less than or equal to 16384",
        ),
        (
            "CreateProcessingJob",
            processing(InstanceCount=0),
            "processingResources.clusterConfig.instanceCount",
            "Member must have value greater than or equal to 1",
        ),
        (
            "CreateProcessingJob",
            changed(processing(), "StoppingCondition.MaxRuntimeInSeconds", 777601),
            "stoppingCondition.maxRuntimeInSeconds",
            "Member must have value less than or equal to 777600",
        ),
        (
            "CreateTrainingJob",
            changed(training(), "HyperParameters", {"num_round": "9" * 2501}),
            "hyperParameters",
            "Map value must satisfy constraint: [Member must have length less than or equal to 2500]",
        ),
        # names and patterns
        (
            "CreateProcessingJob",
            changed(processing(), "ProcessingJobName", "run_with_underscores"),
            "processingJobName",
            "Member must satisfy regular expression pattern: ",
        ),
        (
            "CreateProcessingJob",
            changed(processing(), "Environment", {"1BAD": "x"}),
            "environment",
            "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: ",
        ),
    ],
)
def test_a_request_beyond_a_limit_is_refused_in_aws_words(
    operation: str, request_: dict[str, Any], path: str, constraint: str
) -> None:
    # When the request is checked
    message = api_limits.refusal(operation, request_)
    # Then the message is AWS's: one error, at the camelCased path, naming the constraint
    assert message is not None
    assert message.startswith("1 validation error detected: Value ")
    assert f" at '{path}' failed to satisfy constraint: {constraint}" in message


def test_the_brief_example_reads_exactly_as_aws_answers_it() -> None:
    message = api_limits.refusal("CreateProcessingJob", processing(InstanceType="ml.p4d.24xlarge"))
    allowed = ", ".join(api_limits.enum_values("ProcessingInstanceType"))
    assert message == (
        "1 validation error detected: Value 'ml.p4d.24xlarge' at 'processingResources.clusterConfig.instanceType' "
        f"failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]"
    )


def test_every_breach_is_counted_and_a_missing_member_is_null() -> None:
    request = changed(processing(InstanceType="ml.p4d.24xlarge"), "AppSpecification", None)
    message = api_limits.refusal("CreateProcessingJob", request)
    assert message is not None and message.startswith("2 validation errors detected: ")
    assert "Value null at 'appSpecification' failed to satisfy constraint: Member must not be null" in message


def test_a_member_the_state_machine_adds_is_not_reported_missing() -> None:
    request = changed(processing(), "RoleArn", None)
    assert api_limits.problems("CreateProcessingJob", request) != []
    assert api_limits.problems("CreateProcessingJob", request, supplied_later=("RoleArn",)) == []


def test_jobs_refuse_a_request_sagemaker_would_refuse_before_it_is_sent() -> None:
    # Given a preprocess request whose --features argument lists more column names than 256 characters hold
    request = changed(processing(), "RoleArn", None)
    request["AppSpecification"]["ContainerArguments"] = ["--features", ",".join(f"column_{i}" for i in range(40))]
    # When jobs.py checks it, Then it is refused naming the limit, as a kind of InvalidUnitInput
    with pytest.raises(InvalidJobRequest, match=r"appSpecification\.containerArguments\.2\.member") as caught:
        check_job_request("preprocess", request)
    assert isinstance(caught.value, InvalidUnitInput)
    assert "SageMaker would refuse its CreateProcessingJob request: 1 validation error detected" in str(caught.value)
    # while the same request within the limits (its role added by the state machine) passes
    check_job_request("preprocess", changed(processing(), "RoleArn", None))
