"""Approving and rejecting model packages: a person's act, recorded on the package and in the metadata table.

Runs register packages ``PendingManualApproval`` (or ``Approved`` by the stack itself when it is deployed with
auto-approval on); no run config or override can approve one. A person approves or rejects a package of this
stack with a reason: SageMaker keeps ``REASON (by IDENTITY)`` as the package's approval description (its
"SageMaker Model Package State Change" event starts the deployment flow), and the metadata table keeps who,
when, why and the status before and after in the package's approval history, which ``model_lineage`` shows.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sfn_mlops.errors import ApprovalRefused, ModelPackageNotFound
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.registry import APPROVED, REJECTED, approval_description
from sfn_mlops.settings import Settings

MAX_REASON = 1000
DEFAULT_RESOURCE_PREFIX: str = Settings.model_fields["resource_prefix"].default
RUN_ID_PROPERTY = "sfn-mlops:run-id"


def approve(
    sagemaker: Any,
    table: MetadataTable,
    package_arn: str,
    reason: str,
    identity: str,
    now: datetime,
    resource_prefix: str = DEFAULT_RESOURCE_PREFIX,
) -> dict[str, Any]:
    """Approve a package of this stack (pending, or approved already: then nothing changes, and it says so).

    Refused (``ApprovalRefused``) for a package that is rejected, or whose run's quality gate rejected it; a
    package that does not exist or is not in one of this stack's groups is ``ModelPackageNotFound``."""
    return _decide(sagemaker, table, package_arn, APPROVED, reason, identity, now, resource_prefix)


def reject(
    sagemaker: Any,
    table: MetadataTable,
    package_arn: str,
    reason: str,
    identity: str,
    now: datetime,
    resource_prefix: str = DEFAULT_RESOURCE_PREFIX,
) -> dict[str, Any]:
    """Reject a package of this stack, pending or approved (an approval can be withdrawn); rejecting a rejected
    package changes nothing, and says so."""
    return _decide(sagemaker, table, package_arn, REJECTED, reason, identity, now, resource_prefix)


def _decide(
    sm: Any,
    table: MetadataTable,
    package_arn: str,
    status: str,
    reason: str,
    identity: str,
    now: datetime,
    resource_prefix: str,
) -> dict[str, Any]:
    verb = "approve" if status == APPROVED else "reject"
    reason = " ".join(str(reason or "").split())  # one line, as the package and the history show it
    if not reason:
        raise ApprovalRefused(
            f"cannot {verb} {package_arn}: give a reason (--reason TEXT): it is kept with the decision"
        )
    if len(reason) > MAX_REASON:
        raise ApprovalRefused(
            f"cannot {verb} {package_arn}: the reason has {len(reason)} characters, {MAX_REASON} at most"
        )
    if not str(identity or "").strip():
        raise ApprovalRefused(f"cannot {verb} {package_arn}: who decides is unknown (no caller identity)")
    described = _package_of_this_stack(sm, package_arn, resource_prefix)
    current = described.get("ModelApprovalStatus")
    group = described.get("ModelPackageGroupName")
    if current == status:
        return _unchanged(table, described, status)
    if status == APPROVED:
        _refuse_rejected(table, described, package_arn)
    at = _iso(now)
    sm.update_model_package(
        ModelPackageArn=package_arn,
        ModelApprovalStatus=status,
        ApprovalDescription=approval_description(reason, identity),
        # passed again: the run and dataset identity must stay on the package
        CustomerMetadataProperties=described.get("CustomerMetadataProperties") or {},
    )
    decision = {"status": status, "previous_status": current, "reason": reason, "identity": identity, "at": at}
    try:
        table.record_approval(package_arn, decision, group)
    except ClientError as exc:
        raise ApprovalRefused(
            f"{package_arn} is {status} on SageMaker, but its approval history could not be recorded: {exc}"
        ) from exc
    return {
        "model_package_arn": package_arn,
        "model_package_group": group,
        "approval_status": status,
        "previous_status": current,
        "reason": reason,
        "approved_by": identity,
        "at": at,
        "changed": True,
        "message": f"{package_arn} {status} by {identity} (was {current}): {reason}",
    }


def _package_of_this_stack(sm: Any, package_arn: str, resource_prefix: str) -> dict[str, Any]:
    try:
        described: dict[str, Any] = sm.describe_model_package(ModelPackageName=package_arn)
    except sm.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
            raise
        raise ModelPackageNotFound(f"no model package {package_arn}: see 'mlops lineage' or the run's status") from exc
    group = str(described.get("ModelPackageGroupName") or "")
    if not group.startswith(f"{resource_prefix}-"):
        raise ModelPackageNotFound(
            f"model package {package_arn} is not in one of this stack's model package groups "
            f"({resource_prefix}-<pipeline>){f', but in {group}' if group else ''}: it cannot be decided on here"
        )
    return described


def _refuse_rejected(table: MetadataTable, described: dict[str, Any], package_arn: str) -> None:
    """A rejected package stays rejected; so does one whose run's quality gate rejected the model."""
    if described.get("ModelApprovalStatus") == REJECTED:
        why = f": {described['ApprovalDescription']}" if described.get("ApprovalDescription") else ""
        raise ApprovalRefused(
            f"cannot approve {package_arn}: it is Rejected{why}. A rejected package stays rejected: "
            "register a new one (rerun the run)"
        )
    run_id = (described.get("CustomerMetadataProperties") or {}).get(RUN_ID_PROPERTY)
    run = table.get_run(str(run_id)) if run_id else None
    if run is not None and run.get("status") == "REJECTED":
        raise ApprovalRefused(f"cannot approve {package_arn}: {_gate_verdict(run)}")


def _gate_verdict(run: dict[str, Any]) -> str:
    """Why the run's quality gate rejected its model: the flow's recorded verdict, else the threshold."""
    verdict = run.get("gate_verdict")
    if isinstance(verdict, str):
        with contextlib.suppress(json.JSONDecodeError):
            verdict = json.loads(verdict)
    reasons = [str(r) for r in (verdict or {}).get("reasons") or []] if isinstance(verdict, dict) else []
    failed = [r for r in reasons if "does not beat" in r] or reasons
    detail = f" ({'; '.join(failed)})" if failed else ""
    gate, metrics = run.get("gate") or {}, run.get("metrics") or {}
    metric = gate.get("metric")
    value = metrics.get(metric) if isinstance(metrics, dict) and metric else None
    if not detail and isinstance(value, int | float) and "threshold" in gate:
        comparison = "<" if gate.get("direction") == "minimize" else ">"
        detail = f" ({metric} {value:.6g} is not {comparison} {gate['threshold']})"
    return f"the quality gate of its run {run.get('run_id')} rejected the model{detail}"


def _unchanged(table: MetadataTable, described: dict[str, Any], status: str) -> dict[str, Any]:
    """Deciding what is already decided: nothing changes; the answer names the decision that stands."""
    arn = described["ModelPackageArn"]
    last = next((d for d in reversed(table.approval_history(arn)) if d.get("status") == status), None)
    if last is not None:
        reason, by, at = last.get("reason"), last.get("identity"), last.get("at")
    else:  # decided outside this tool (the console, another stack's role): what SageMaker says
        modified = described.get("LastModifiedTime")
        reason = described.get("ApprovalDescription")
        by = (described.get("LastModifiedBy") or {}).get("UserProfileName")
        at = _iso(modified) if isinstance(modified, datetime) else modified
    who = f" by {by}" if by else ""
    when = f" at {at}" if at else ""
    return {
        "model_package_arn": arn,
        "model_package_group": described.get("ModelPackageGroupName"),
        "approval_status": status,
        "previous_status": status,
        "reason": reason,
        "approved_by": by,
        "at": at,
        "changed": False,
        "message": f"{arn} is already {status}{who}{when}: nothing changed",
    }


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
