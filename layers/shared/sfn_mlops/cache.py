"""The cache across runs: an earlier success of the same unit with the same inputs fingerprint.

The executor indexes every success in GSI1 under ``FP#<pipeline>#<unit>#<fingerprint>`` (sort key: when
it finished), so a lookup is one Query, newest first, bounded by the unit's cache expiry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sfn_mlops.events import CacheLookupEvent, parse_event
from sfn_mlops.metadata import MetadataTable, deserialize


def fingerprint_key(pipeline: str, unit: str, fingerprint: str) -> str:
    return f"FP#{pipeline}#{unit}#{fingerprint}"


def lookup_cached_success(
    table: MetadataTable, event: dict[str, Any] | CacheLookupEvent, now: datetime | None = None
) -> dict[str, Any]:
    given = event if isinstance(event, CacheLookupEvent) else parse_event(CacheLookupEvent, event, "cache lookup")
    pipeline, unit, run_id = given.pipeline, given.unit, given.run_id
    fingerprint, max_age_s = given.fingerprint, given.max_age_s
    now = now or datetime.now(UTC)
    oldest = (now - timedelta(seconds=max_age_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    page = table.client.query(
        TableName=table.table_name,
        IndexName="GSI1",
        KeyConditionExpression="GSI1PK = :fp AND GSI1SK >= :oldest",
        ExpressionAttributeValues={
            ":fp": {"S": fingerprint_key(pipeline, unit, fingerprint)},
            ":oldest": {"S": oldest},
        },
        ScanIndexForward=False,
        Limit=5,
    )
    for item in (deserialize(i) for i in page.get("Items", [])):
        # An entry indexed under this fingerprint but recorded with another one (a record written by hand, or
        # a half-applied update) is not reused: its outputs were computed from other inputs.
        if item.get("fingerprint") not in (None, fingerprint):
            continue
        if item.get("status") == "SUCCEEDED" and item.get("run_id") != run_id and item.get("outputs"):
            source = {"run_id": item["run_id"], "attempt": item.get("attempt"), "finished_at": item.get("GSI1SK")}
            return {"hit": True, "source": source, "outputs": json.loads(item["outputs"])}
    return {"hit": False}
