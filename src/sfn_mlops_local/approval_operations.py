"""`mlops approve` / `mlops reject`: a person's decision on a model package, against any target.

The decision is the caller's: their identity (``sts:GetCallerIdentity``) goes on the package's approval
description and into its approval history with the reason and the time. The typed errors of
``sfn_mlops.approvals`` (``ModelPackageNotFound``, ``ApprovalRefused``, both ``MlopsError``) carry one
readable line for the command to print.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sfn_mlops_local.operations import Target

RESULT_KEYS = ("model_package_arn", "approval_status", "reason", "approved_by", "at", "changed", "message")


def caller_identity(target: Target) -> str:
    """Who is deciding: the ARN of the credentials the command runs with."""
    return str(target.sts.get_caller_identity()["Arn"])


def approve_package(target: Target, package_arn: str, reason: str) -> dict[str, Any]:
    """Approve a package of the target's stack (approving an approved one changes nothing, and says so).

    Returns ``{model_package_arn, approval_status, reason, approved_by, at, changed, message}``."""
    from sfn_mlops.approvals import approve

    identity = caller_identity(target)
    decided = approve(
        target.sagemaker, target.table, package_arn, reason, identity, datetime.now(UTC), target.stack_name
    )
    return {key: decided.get(key) for key in RESULT_KEYS}


def reject_package(target: Target, package_arn: str, reason: str) -> dict[str, Any]:
    """Reject a package of the target's stack, pending or approved (rejecting a rejected one changes nothing).

    Returns ``{model_package_arn, approval_status, reason, approved_by, at, changed, message}``."""
    from sfn_mlops.approvals import reject

    identity = caller_identity(target)
    decided = reject(
        target.sagemaker, target.table, package_arn, reason, identity, datetime.now(UTC), target.stack_name
    )
    return {key: decided.get(key) for key in RESULT_KEYS}
