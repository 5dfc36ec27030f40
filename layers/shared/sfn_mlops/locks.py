"""Unit locks: the executor takes a unit by marking it RUNNING; this decides when a held lock is dead.

The happy path never comes here: the executor's native DynamoDB UpdateItem takes a free unit. Only when
that update finds the unit RUNNING does the executor ask whether the holder is gone (its execution
ended without recording an outcome, e.g. it was stopped) or its lease ran out (it outlived the
longest time the unit may take). Either way the lock is marked ABANDONED, conditionally on the same
holder still having it, and the executor tries to take it again.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sfn_mlops.events import ReleaseLockEvent, parse_event
from sfn_mlops.metadata import MetadataTable, deserialize, now_iso, run_pk, serialize, unit_sk

DEFAULT_LEASE_S = 3600


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def holder_status(sfn: Any, execution_arn: str) -> str:
    """The holder execution's status; GONE when Step Functions no longer knows it."""
    try:
        return str(sfn.describe_execution(executionArn=execution_arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return "GONE"


def release_expired_lock(
    table: MetadataTable, sfn: Any, event: dict[str, Any] | ReleaseLockEvent, now: datetime | None = None
) -> dict[str, Any]:
    given = event if isinstance(event, ReleaseLockEvent) else parse_event(ReleaseLockEvent, event, "lock release")
    run_id, unit, me = given.run_id, given.unit, given.execution_arn
    now = now or datetime.now(UTC)
    key = serialize({"PK": run_pk(run_id), "SK": unit_sk(unit)})
    item = table.client.get_item(TableName=table.table_name, Key=key, ConsistentRead=True).get("Item")
    record = deserialize(item) if item else {}
    if record.get("status") != "RUNNING":
        return {"released": True, "reason": "the unit is no longer running"}
    holder = str(record.get("executor_execution_arn", ""))
    if holder == me:
        return {"released": True, "reason": "this execution holds the lock"}
    lease_s = int(record.get("lease_s") or DEFAULT_LEASE_S)
    expires = _parse(str(record.get("started_at") or now_iso())) + timedelta(seconds=lease_s)
    status = holder_status(sfn, holder) if holder else "GONE"
    if now < expires and status == "RUNNING":
        return {
            "released": False,
            "holder": holder,
            "lease_expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": (
                f"unit {unit} of run {run_id} is already running in {holder} (attempt {record.get('attempt')}, "
                f"lease until {expires:%Y-%m-%dT%H:%M:%SZ}); wait for it or stop it first"
            ),
        }
    why = f"its holder {holder} is {status}" if status != "RUNNING" else f"its lease of {lease_s}s expired"
    # If someone else changed the unit meanwhile, taking the lock again decides who has it.
    with contextlib.suppress(table.client.exceptions.ConditionalCheckFailedException):
        table.client.update_item(
            TableName=table.table_name,
            Key=key,
            UpdateExpression="SET #status = :abandoned, #error = :error, cause = :cause, finished_at = :now",
            ConditionExpression="#status = :running AND executor_execution_arn = :holder",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues=serialize(
                {
                    ":abandoned": "ABANDONED",
                    ":running": "RUNNING",
                    ":holder": holder,
                    ":error": "LockExpired",
                    ":cause": f"attempt {record.get('attempt')} was abandoned: {why}",
                    ":now": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
            ),
        )
    stopped = stop_abandoned_worker(sfn, record, why)
    return {"released": True, "previous_holder": holder, "reason": why, "stopped_worker": stopped}


def stop_abandoned_worker(sfn: Any, record: dict[str, Any], why: str) -> str | None:
    """Stop the abandoned attempt's worker (its SageMaker job stops with it), so nothing is left running."""
    given = record.get("executor_input")
    if isinstance(given, str):
        given = json.loads(given)
    worker_arn = (given or {}).get("worker_arn")
    if not worker_arn or not record.get("attempt"):
        return None
    name = f"{record['run_id']}-{record['SK'].removeprefix('UNIT#')}-a{record['attempt']}"
    execution_arn = f"{worker_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
    try:
        if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
            return None
        sfn.stop_execution(executionArn=execution_arn, error="LockExpired", cause=f"attempt abandoned: {why}")
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
    return execution_arn
