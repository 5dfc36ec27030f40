"""Approving and rejecting model packages: a person's act, with who, when and why kept on the package and in the
approval history that lineage shows. moto, tables from template.yaml, network blocked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, TABLE
from tests.unit.functions.test_handlers import RUN_ID, handler_module
from tests.unit.functions.test_register_model import staged_event

ANA = "arn:aws:iam::123456789012:user/ana"
BO = "arn:aws:iam::123456789012:user/bo"
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def metadata() -> Any:
    from sfn_mlops.metadata import MetadataTable

    return MetadataTable(boto3.client("dynamodb"), TABLE)


@pytest.fixture
def package(bucket: str, table: str, lambda_context: Any) -> str:
    """A package a run registered, pending approval."""
    registered = handler_module("register_model").lambda_handler(staged_event(), lambda_context)
    assert registered["approval_status"] == "PendingManualApproval"
    arn: str = registered["model_package_arn"]
    return arn


def described(arn: str) -> dict[str, Any]:
    result: dict[str, Any] = boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)
    return result


def test_a_person_approves_a_pending_package_with_a_reason(package: str) -> None:
    from sfn_mlops.approvals import approve
    from sfn_mlops.lineage import model_lineage

    sm = boto3.client("sagemaker")
    # When a person approves it with a reason
    result = approve(sm, metadata(), package, "  beats the champion\non holdout ", ANA, NOON)
    # Then the package is Approved, the reason and who on it, and lineage shows who, when and why
    assert result == {
        "model_package_arn": package,
        "model_package_group": "sfn-mlops-abalone",
        "approval_status": "Approved",
        "previous_status": "PendingManualApproval",
        "reason": "beats the champion on holdout",
        "approved_by": ANA,
        "at": "2026-11-24T12:00:00.000000Z",
        "changed": True,
        "message": f"{package} Approved by {ANA} (was PendingManualApproval): beats the champion on holdout",
    }
    package_now = described(package)
    assert package_now["ModelApprovalStatus"] == "Approved"
    assert package_now["ApprovalDescription"] == f"beats the champion on holdout (by {ANA})"
    assert package_now["CustomerMetadataProperties"]["sfn-mlops:run-id"] == RUN_ID  # lineage kept on the package
    lineage = model_lineage(metadata(), package)
    assert lineage["approvals"] == [
        {
            "status": "Approved",
            "previous_status": "PendingManualApproval",
            "reason": "beats the champion on holdout",
            "by": ANA,
            "at": "2026-11-24T12:00:00.000000Z",
        }
    ]
    assert lineage["run_id"] == RUN_ID and len(lineage["datasets"]) == 1  # the lineage itself is unchanged
    # When somebody approves it again, Then nothing changes, and the answer says so and names the decision
    again = approve(sm, metadata(), package, "me too", BO, datetime(2026, 11, 25, tzinfo=UTC))
    assert again["changed"] is False and again["approval_status"] == "Approved"
    assert again["message"] == f"{package} is already Approved by {ANA} at 2026-11-24T12:00:00.000000Z: nothing changed"
    assert (again["approved_by"], again["reason"]) == (ANA, "beats the champion on holdout")
    assert len(model_lineage(metadata(), package)["approvals"]) == 1
    assert described(package)["ApprovalDescription"] == f"beats the champion on holdout (by {ANA})"


def test_an_approval_can_be_withdrawn_but_a_rejected_package_stays_rejected(package: str) -> None:
    from sfn_mlops.approvals import approve, reject
    from sfn_mlops.errors import ApprovalRefused
    from sfn_mlops.lineage import model_lineage

    sm = boto3.client("sagemaker")
    approve(sm, metadata(), package, "looks good", ANA, NOON)
    # When a person rejects the approved package, Then it is Rejected, and the history has both decisions
    rejected = reject(sm, metadata(), package, "bias found in audit", BO, datetime(2026, 11, 24, 13, tzinfo=UTC))
    assert (rejected["approval_status"], rejected["previous_status"], rejected["changed"]) == (
        "Rejected",
        "Approved",
        True,
    )
    assert described(package)["ApprovalDescription"] == f"bias found in audit (by {BO})"
    history = model_lineage(metadata(), package)["approvals"]
    assert [(a["status"], a["by"]) for a in history] == [("Approved", ANA), ("Rejected", BO)]
    # When somebody rejects it again, Then nothing changes, and it says so
    assert reject(sm, metadata(), package, "indeed", ANA, NOON)["message"].endswith(
        "is already Rejected by " + BO + " at 2026-11-24T13:00:00.000000Z: nothing changed"
    )
    # When somebody tries to approve it, Then it is refused with one readable line, and nothing changes
    with pytest.raises(ApprovalRefused, match="it is Rejected: bias found in audit") as refused:
        approve(sm, metadata(), package, "please", ANA, NOON)
    assert "\n" not in str(refused.value)
    assert described(package)["ModelApprovalStatus"] == "Rejected"
    assert len(model_lineage(metadata(), package)["approvals"]) == 2


def test_a_package_the_quality_gate_rejected_cannot_be_approved(package: str, lambda_context: Any) -> None:
    from sfn_mlops.approvals import approve
    from sfn_mlops.errors import ApprovalRefused
    from sfn_mlops.metadata import serialize

    sm = boto3.client("sagemaker")
    # Given the package's run, rerun with a stricter gate, rejected by it (whether or not the gate's reject of
    # the package got through: here it did not, the package is still pending)
    run = {
        "PK": f"RUN#{RUN_ID}",
        "SK": "RUN",
        "run_id": RUN_ID,
        "status": "REJECTED",
        "gate": {"metric": "rmse", "threshold": 1.5, "direction": "minimize"},
        "metrics": json.dumps({"rmse": 2.04}),
    }
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=serialize(run))
    # When a person approves it, Then it is refused, naming the gate's verdict
    with pytest.raises(
        ApprovalRefused, match=rf"quality gate of its run {RUN_ID} rejected the model \(rmse 2.04 is not < 1.5\)"
    ):
        approve(sm, metadata(), package, "ship it", ANA, NOON)
    assert described(package)["ModelApprovalStatus"] == "PendingManualApproval"
    # And with the flow's recorded verdict (the champion beat it), the refusal gives the verdict's reasons
    verdict = {
        "passed": False,
        "metric": "rmse",
        "value": 2.04,
        "reasons": [
            "rmse 2.04 beats the threshold 3.1 (minimize)",
            "rmse 2.04 does not beat the champion's 1.9 by the margin 0.0",
        ],
    }
    run |= {"gate_verdict": json.dumps(verdict)}
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=serialize(run))
    with pytest.raises(ApprovalRefused, match=r"rejected the model \(rmse 2\.04 does not beat the champion's 1\.9"):
        approve(sm, metadata(), package, "ship it", ANA, NOON)
    # And when the gate's reject function rejected it, approving is refused too
    handler_module("reject_model").lambda_handler(
        {"run_id": RUN_ID, "model_package_arn": package, "gate": run["gate"], "value": 2.04}, lambda_context
    )
    with pytest.raises(ApprovalRefused, match="it is Rejected: rejected by the quality gate of run"):
        approve(sm, metadata(), package, "ship it", ANA, NOON)


@pytest.mark.parametrize(
    ("reason", "identity", "problem"),
    [
        ("", ANA, "give a reason (--reason TEXT)"),
        ("   \n ", ANA, "give a reason (--reason TEXT)"),
        ("x" * 1001, ANA, "the reason has 1001 characters, 1000 at most"),
        ("fine", "", "who decides is unknown"),
    ],
)
def test_a_decision_needs_a_reason_and_a_person(package: str, reason: str, identity: str, problem: str) -> None:
    from sfn_mlops.approvals import approve, reject
    from sfn_mlops.errors import ApprovalRefused

    sm = boto3.client("sagemaker")
    for decide in (approve, reject):
        with pytest.raises(ApprovalRefused, match=problem.replace("(", r"\(").replace(")", r"\)")):
            decide(sm, metadata(), package, reason, identity, NOON)
    assert described(package)["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_long_reason_fits_the_package_and_is_kept_whole_in_the_history(package: str) -> None:
    from sfn_mlops.approvals import approve
    from sfn_mlops.lineage import model_lineage

    reason = "y" * 1000
    approve(boto3.client("sagemaker"), metadata(), package, reason, ANA, NOON)
    description = described(package)["ApprovalDescription"]
    assert len(description) == 1000 and description.endswith(f"... (by {ANA})")
    assert model_lineage(metadata(), package)["approvals"][0]["reason"] == reason


def test_only_existing_packages_of_this_stack_can_be_decided_on(bucket: str, table: str) -> None:
    from sfn_mlops.approvals import approve, reject
    from sfn_mlops.errors import ModelPackageNotFound

    sm = boto3.client("sagemaker")
    # Given a package in a group that is not this stack's
    sm.create_model_package_group(ModelPackageGroupName="other-team-abalone")
    foreign = sm.create_model_package(
        ModelPackageGroupName="other-team-abalone",
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="PendingManualApproval",
    )["ModelPackageArn"]
    # Then neither it nor a package that does not exist can be approved or rejected here
    with pytest.raises(ModelPackageNotFound, match="not in one of this stack's model package groups"):
        approve(sm, metadata(), foreign, "ok", ANA, NOON)
    with pytest.raises(ModelPackageNotFound, match="not in one of this stack's model package groups"):
        reject(sm, metadata(), foreign, "no", ANA, NOON)
    missing = foreign.replace("other-team-abalone/1", "sfn-mlops-abalone/9")
    with pytest.raises(ModelPackageNotFound, match=f"no model package {missing}"):
        approve(sm, metadata(), missing, "ok", ANA, NOON)
    assert described(foreign)["ModelApprovalStatus"] == "PendingManualApproval"
    # And a stack with another resource prefix does not own this stack's packages either
    with pytest.raises(ModelPackageNotFound, match=r"\(prod-mlops-<pipeline>\)"):
        approve(sm, metadata(), foreign, "ok", ANA, NOON, resource_prefix="prod-mlops")


def test_approve_and_reject_package_decide_as_the_caller(package: str) -> None:
    from sfn_mlops_local.approval_operations import approve_package, reject_package
    from sfn_mlops_local.operations import Target

    # Given the CLI's target (here: moto's clients), whose credentials are a user's
    target = Target.from_clients(boto3.client, BUCKET, TABLE, "", "test")
    caller = boto3.client("sts").get_caller_identity()["Arn"]
    # When that user approves, Then the decision is theirs, as a plain dict for --json
    approved = approve_package(target, package, "validated offline")
    assert set(approved) == {
        "model_package_arn",
        "approval_status",
        "reason",
        "approved_by",
        "at",
        "changed",
        "message",
    }
    assert (approved["model_package_arn"], approved["approval_status"]) == (package, "Approved")
    assert (approved["approved_by"], approved["reason"], approved["changed"]) == (caller, "validated offline", True)
    assert approved["at"].endswith("Z")
    assert described(package)["ApprovalDescription"] == f"validated offline (by {caller})"
    # When they reject it, Then it is Rejected by them
    rejected = reject_package(target, package, "rolled back")
    assert (rejected["approval_status"], rejected["approved_by"]) == ("Rejected", caller)
