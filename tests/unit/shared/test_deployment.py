"""Deployments: what the approval trigger starts, what a deployment is planned to do, and what it records."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, TABLE

PREFIX = "sfn-mlops-dev"
GROUP = f"{PREFIX}-abalone"
TRAINING_RUN = "abalone-20261123t101500-1a2b3c4d"
XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def stack(published: str, table: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A deployment flow the trigger can start, the stack's settings, and a training run with its outputs."""
    from sfn_mlops.metadata import MetadataTable
    from sfn_mlops.settings import get_settings

    from sfn_mlops_local.local import moto_adaptations

    moto_adaptations.apply()  # UpdateModelPackage keeps what it is not given, as on AWS (adaptation 18)
    flow = boto3.client("stepfunctions").create_state_machine(
        name="test-deployment-flow",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOYMENT_FLOW_ARN", flow)
    monkeypatch.setenv("RESOURCE_PREFIX", PREFIX)
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/sagemaker")
    get_settings.cache_clear()
    metadata = MetadataTable(boto3.client("dynamodb"), TABLE)
    dataset = {"uri": f"s3://{BUCKET}/data/abalone/abalone.csv", "version": "v1"}
    metadata.start_run(
        {"run_id": TRAINING_RUN, "pipeline": "abalone", "dataset": dataset, "order": [], "gate": {}}, "arn"
    )
    root = f"s3://{BUCKET}/runs/abalone/{TRAINING_RUN}"
    for unit, outputs in (
        (
            "preprocess",
            {"test_uri": f"{root}/preprocess/a1/test/", "raw_test_uri": f"{root}/preprocess/a1/smoke/raw.csv"},
        ),
        ("evaluate", {"predictions_uri": f"{root}/evaluate/a1/evaluation/predictions.csv"}),
    ):
        boto3.client("dynamodb").put_item(
            TableName=TABLE,
            Item={
                "PK": {"S": f"RUN#{TRAINING_RUN}"},
                "SK": {"S": f"UNIT#{unit}"},
                "status": {"S": "SUCCEEDED"},
                "outputs": {"S": json.dumps(outputs)},
            },
        )
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    return {"flow": flow, "table": metadata, "settings": get_settings()}


def package(status: str = "Approved", group: str = GROUP, model: str = "model.tar.gz") -> str:
    sagemaker = boto3.client("sagemaker")
    with_group = {"ModelPackageGroupName": group}
    if group != GROUP:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arn: str = sagemaker.create_model_package(
        **with_group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": XGBOOST, "ModelDataUrl": f"s3://{BUCKET}/runs/abalone/x/{model}"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"sfn-mlops:run-id": TRAINING_RUN},
    )["ModelPackageArn"]
    if status != "PendingManualApproval":
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return arn


def approval_event(arn: str, event_id: str = "e-1", group: str = GROUP, status: str = "Approved") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "time": "2026-11-30T12:00:00Z",
        "detail": {"ModelPackageGroupName": group, "ModelPackageArn": arn, "ModelApprovalStatus": status},
    }


def plan(stack: dict[str, Any], **request: Any) -> dict[str, Any]:
    from sfn_mlops.deployment import plan_deployment

    deployment_id = request.pop("run_id", "abalone-20261130t120000-0000000a")
    event = {"deployment": {"pipeline": "abalone", "run_id": deployment_id, **request}, "execution_arn": "x"}
    return plan_deployment(boto3.client("s3"), boto3.client("sagemaker"), stack["table"], stack["settings"], event)


def test_an_approval_starts_one_deployment_of_the_package_to_the_first_stage(stack: dict[str, Any]) -> None:
    from sfn_mlops.trigger import handle_trigger

    sfn, s3 = boto3.client("stepfunctions"), boto3.client("s3")
    arn = package()
    # When EventBridge delivers the approval twice (at least once), Then one deployment starts
    first = handle_trigger(sfn, s3, stack["table"], stack["settings"], approval_event(arn))
    again = handle_trigger(sfn, s3, stack["table"], stack["settings"], approval_event(arn))
    assert first.started and not again.started and again.duplicate and again.run_id == first.run_id
    executions = sfn.list_executions(stateMachineArn=stack["flow"])["executions"]
    assert [e["name"] for e in executions] == [first.run_id]
    started = json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])
    assert started == {
        "pipeline": "abalone",
        "action": "deploy",
        "model_package_arn": arn,
        "trigger": "approval",
        "run_id": first.run_id,
    }
    # And a package of another stack's group, or one that is not Approved, deploys nothing
    other = handle_trigger(sfn, s3, stack["table"], stack["settings"], approval_event(arn, "e-2", group="x-abalone"))
    rejected = handle_trigger(sfn, s3, stack["table"], stack["settings"], approval_event(arn, "e-3", status="Rejected"))
    assert not other.started and "not a pipeline of this stack" in other.reason
    assert not rejected.started and "not Approved" in rejected.reason


def test_a_first_deployment_creates_the_endpoint_and_records_what_serves_it(stack: dict[str, Any]) -> None:
    from sfn_mlops.deployment import record_outcome

    arn = package()
    planned = plan(stack, model_package_arn=arn)
    assert planned["stage"] == "staging" and planned["endpoint_name"] == f"{PREFIX}-abalone-staging"
    assert planned["strategy"] == "CREATE" and planned["previous_model_package_arn"] == ""
    assert planned["units"]["model"]["model_package_arn"] == arn
    variant = planned["units"]["endpoint_config"]["variant"]
    assert variant == {
        "VariantName": "AllTraffic",
        "ModelName": planned["units"]["model"]["model_name"],
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    assert planned["units"]["smoke_test"]["raw_test_uri"].endswith("/smoke/raw.csv")
    names = [a["AlarmName"] for a in planned["units"]["deploy"]["alarms"]]
    assert names == [f"{PREFIX}-abalone-staging-invocation-5xx", f"{PREFIX}-abalone-staging-model-latency"]
    # When it succeeds, Then the endpoint record names the package, and the package's lineage the endpoint
    summary = record_outcome(stack["table"], {"plan": planned, "results": {}, "execution_arn": "x"})
    assert summary["status"] == "SUCCEEDED"
    endpoint = stack["table"].get_endpoint(planned["endpoint_name"])
    assert endpoint["model_package_arn"] == arn and endpoint["stage"] == "staging"
    assert endpoint["model_data"].endswith("/model.tar.gz")
    assert [e["endpoint_name"] for e in stack["table"].list_endpoints()] == [planned["endpoint_name"]]


def test_a_second_deployment_is_a_canary_update_from_the_serving_package(stack: dict[str, Any]) -> None:
    from sfn_mlops.deployment import record_outcome

    first, second = package(model="a.tar.gz"), package(model="b.tar.gz")
    planned = plan(stack, model_package_arn=first)
    record_outcome(stack["table"], {"plan": planned, "results": {}, "execution_arn": "x"})
    update = plan(stack, run_id="abalone-20261130t120100-0000000b", model_package_arn=second)
    assert update["strategy"] == "CANARY" and update["previous_model_package_arn"] == first
    policy = update["units"]["deploy"]["deployment_config"]
    assert policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 30,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    assert [a["AlarmName"] for a in policy["AutoRollbackConfiguration"]["Alarms"]] == [
        a["AlarmName"] for a in update["units"]["deploy"]["alarms"]
    ]
    # When the update is rolled back, Then the endpoint still records the first package
    error = {"unit": "deploy", "error": "DeploymentRolledBack", "cause": "alarm fired"}
    summary = record_outcome(stack["table"], {"plan": update, "results": {}, "error": error, "execution_arn": "y"})
    assert summary["status"] == "ROLLED_BACK" and summary["error"]["cause"] == "alarm fired"
    assert stack["table"].get_endpoint(update["endpoint_name"])["model_package_arn"] == first
    # And after a successful update, rollback plans the first package again, promote the staging one to prod
    record_outcome(stack["table"], {"plan": update, "results": {}, "execution_arn": "z"})
    back = plan(stack, run_id="abalone-20261130t120200-0000000c", action="rollback")
    assert back["model_package_arn"] == first and back["previous_model_package_arn"] == second
    promoted = plan(stack, run_id="abalone-20261130t120300-0000000d", action="promote", stage="prod")
    assert promoted["model_package_arn"] == second and promoted["endpoint_name"] == f"{PREFIX}-abalone-prod"


@pytest.mark.parametrize(
    ("request_fields", "status", "message"),
    [
        ({}, "PendingManualApproval", "is PendingManualApproval, not Approved"),
        ({}, "Rejected", "is Rejected, not Approved"),
        ({"stage": "qa"}, "Approved", "has no stage 'qa'"),
        ({"action": "promote", "stage": "staging"}, "Approved", "is the first stage"),
        ({"action": "rollback"}, "Approved", "no previous package to roll back to"),
        ({"action": "promote", "stage": "prod"}, "Approved", "nothing serves stage staging"),
    ],
)
def test_a_deployment_that_cannot_happen_is_refused_in_one_readable_line(
    stack: dict[str, Any], request_fields: dict[str, Any], status: str, message: str
) -> None:
    from sfn_mlops.deployment import DeploymentRefused

    arn = package(status=status)
    given = {"model_package_arn": arn} if request_fields.get("action") in (None, "deploy") else {}
    with pytest.raises(DeploymentRefused, match=message):
        plan(stack, **given, **request_fields)


def test_a_package_of_another_pipelines_group_is_refused(stack: dict[str, Any]) -> None:
    from sfn_mlops.deployment import DeploymentRefused

    foreign = package(group=f"{PREFIX}-churn")
    with pytest.raises(DeploymentRefused, match="not this pipeline's"):
        plan(stack, model_package_arn=foreign)


def test_a_package_whose_run_the_gate_rejected_is_refused_with_the_gates_reasons(stack: dict[str, Any]) -> None:
    from sfn_mlops.deployment import DeploymentRefused

    arn = package()
    verdict = '{"passed": false, "reasons": ["rmse 3.3 does not beat the threshold 3.1 (minimize)"]}'
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"PK": {"S": f"RUN#{TRAINING_RUN}"}, "SK": {"S": "RUN"}},
        UpdateExpression="SET #s = :rejected, gate_verdict = :verdict",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":rejected": {"S": "REJECTED"}, ":verdict": {"S": verdict}},
    )
    with pytest.raises(DeploymentRefused, match=r"quality gate of run .* rejected it \(rmse 3\.3 does not beat"):
        plan(stack, model_package_arn=arn)
