"""The cache across runs: an earlier success of the same unit with the same inputs fingerprint.

The executor indexes every success in GSI1 under ``FP#<pipeline>#<unit>#<fingerprint>`` (sort key: when
it finished), so a lookup is one Query, newest first, bounded by the unit's cache expiry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sfn_mlops.errors import FingerprintMismatch
from sfn_mlops.events import CacheLookupEvent, parse_event
from sfn_mlops.fingerprint import static_fingerprints
from sfn_mlops.metadata import MetadataTable, deserialize
from sfn_mlops.unit_configs import PreprocessConfig


class DatasetContent(BaseModel):
    """What a fingerprint takes of the dataset: its content identity."""

    model_config = ConfigDict(extra="allow", frozen=True)

    content: str = Field(min_length=1, max_length=1024)


# Units whose executor fingerprint is their static fingerprint (no upstream outputs hashed in by the flow).
SELF_CONTAINED_UNITS = frozenset({"preprocess"})


def fingerprint_key(pipeline: str, unit: str, fingerprint: str) -> str:
    return f"FP#{pipeline}#{unit}#{fingerprint}"


def check_fingerprint(given: CacheLookupEvent) -> None:
    """A fingerprint that can be recomputed from the executor's inputs (the preprocess unit's config and dataset)
    must be theirs: a cache hit under a fingerprint its inputs do not have would reuse outputs of other inputs.
    Raises ``InvalidEvent`` for inputs that are not the unit's, ``FingerprintMismatch`` for a fingerprint that
    is not theirs."""
    if given.unit not in SELF_CONTAINED_UNITS or given.inputs is None:
        return
    config = parse_event(PreprocessConfig, given.inputs.get("config"), "cache lookup inputs.config")
    dataset = parse_event(DatasetContent, given.inputs.get("dataset"), "cache lookup inputs.dataset")
    # The config as given, not as validated: the planner hashed what it wrote, None fields included.
    expected = static_fingerprints({given.unit: given.inputs["config"]}, {"content": dataset.content})[given.unit]
    if expected != given.fingerprint:
        raise FingerprintMismatch(
            f"{given.unit} of run {given.run_id}: the executor was given fingerprint {given.fingerprint[:12]}..., "
            f"its config and dataset hash to {expected[:12]}... (config_sha256 {config.config_sha256[:12]}...): "
            "the input was changed after planning; rerun the run to plan it again"
        )


def lookup_cached_success(
    table: MetadataTable, event: dict[str, Any] | CacheLookupEvent, now: datetime | None = None
) -> dict[str, Any]:
    given = event if isinstance(event, CacheLookupEvent) else parse_event(CacheLookupEvent, event, "cache lookup")
    pipeline, unit, run_id = given.pipeline, given.unit, given.run_id
    fingerprint, max_age_s = given.fingerprint, given.max_age_s
    check_fingerprint(given)
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
