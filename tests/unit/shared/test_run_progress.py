"""Following a run polls a projected read that changes exactly when what a follower shows changes."""

from __future__ import annotations

from typing import Any

import boto3

from tests.conftest import TABLE
from tests.unit.shared.test_lineage import DATASET


def _put_unit(client: Any, run_id: str, name: str, **fields: str) -> None:
    item = {"PK": {"S": f"RUN#{run_id}"}, "SK": {"S": f"UNIT#{name}"}}
    client.put_item(TableName=TABLE, Item={**item, **{k: {"S": v} for k, v in fields.items()}})


def test_run_progress_moves_with_statuses_and_the_plan_not_with_outputs(table: str) -> None:
    from sfn_mlops.metadata import MetadataTable

    client = boto3.client("dynamodb")
    metadata = MetadataTable(client, TABLE)
    # Given a planned run whose first unit is running
    plan = {"run_id": "r1", "pipeline": "abalone", "dataset": DATASET, "order": ["preprocess", "train"], "gate": {}}
    metadata.start_run(plan, "arn:flow:1")
    _put_unit(client, "r1", "preprocess", status="RUNNING", outputs="{}")
    before = metadata.run_progress("r1")
    assert {item["SK"] for item in before} == {"RUN", "UNIT#preprocess"}
    assert "outputs" not in before[1] and before[0]["unit_order"] == ["preprocess", "train"]
    # When only a unit's outputs are rewritten, Then nothing a follower shows moved
    _put_unit(client, "r1", "preprocess", status="RUNNING", outputs='{"rows": 3}')
    assert metadata.run_progress("r1") == before
    # When the unit succeeds and the next starts, Then progress moved
    _put_unit(client, "r1", "preprocess", status="SUCCEEDED", finished_at="2026-11-30T00:00:01Z")
    moved = metadata.run_progress("r1")
    assert moved != before
    _put_unit(client, "r1", "train", status="RUNNING")
    assert len(metadata.run_progress("r1")) == 3
    # And another run's records are not part of it
    metadata.start_run({**plan, "run_id": "r2"}, "arn:flow:2")
    assert len(metadata.run_progress("r1")) == 3 and metadata.run_progress("missing") == []
