"""Lineage answers from the metadata table, each with single Query calls (never a Scan)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.conftest import TABLE

DATASET = {
    "uri": "s3://bucket/data/abalone/abalone.csv",
    "bucket": "bucket",
    "key": "data/abalone/abalone.csv",
    "version_id": "v1",
    "etag": "e1",
    "version": "v1",
}
RUN_A = "abalone-20260101t000000-0000000a"
RUN_B = "abalone-20260102t000000-0000000b"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/abalone/1"


class NoScan:
    """The DynamoDB client, refusing Scan: lineage must come from key lookups."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def scan(self, **_: Any) -> None:
        raise AssertionError("lineage must not Scan the table")

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._client, name)


@pytest.fixture
def lineage_table(table: str) -> Any:
    from sfn_mlops.lineage import record_dataset_use
    from sfn_mlops.metadata import MetadataTable

    client = NoScan(boto3.client("dynamodb"))
    metadata = MetadataTable(client, TABLE)
    # Given two runs over two versions of one dataset, the first registered a model package
    record_dataset_use(metadata, RUN_A, "abalone", DATASET)
    record_dataset_use(metadata, RUN_B, "abalone", {**DATASET, "version_id": "v2", "version": "v2"})
    metadata.record_model_package("s3://bucket/runs/a/model.tar.gz", PACKAGE, RUN_A, DATASET, {"rmse": 2.1})
    metadata.start_run({"run_id": RUN_A, "pipeline": "abalone", "dataset": DATASET, "order": [], "gate": {}}, "arn")
    client._client.put_item(
        TableName=TABLE,
        Item={
            "PK": {"S": f"RUN#{RUN_A}"},
            "SK": {"S": "UNIT#preprocess"},
            "status": {"S": "SUCCEEDED"},
            "outputs": {"S": '{"train_uri": "s3://bucket/runs/a/train/", "columns": ["rings"], "rows": 3}'},
        },
    )
    client.calls.clear()
    return metadata


def test_model_lineage_names_the_run_and_the_dataset_version(lineage_table: Any) -> None:
    from sfn_mlops.lineage import model_lineage

    answer = model_lineage(lineage_table, PACKAGE)
    assert answer["run_id"] == RUN_A and answer["metrics"] == {"rmse": 2.1}
    assert [(d["uri"], d["version"]) for d in answer["datasets"]] == [(DATASET["uri"], "v1")]
    assert answer["model_data"] == "s3://bucket/runs/a/model.tar.gz"
    assert answer["reused"] == []
    assert lineage_table.client.calls == ["query"]  # the package's partition holds its units' snapshot too


def test_dataset_lineage_lists_runs_and_packages_of_every_version_or_one(lineage_table: Any) -> None:
    from sfn_mlops.lineage import dataset_lineage

    every = dataset_lineage(lineage_table, DATASET["uri"])
    assert sorted(r["run_id"] for r in every["runs"]) == [RUN_A, RUN_B]
    assert every["model_packages"] == [{"model_package_arn": PACKAGE, "run_id": RUN_A, "version": "v1"}]
    assert every["versions"] == ["v1", "v2"]
    only_v2 = dataset_lineage(lineage_table, DATASET["uri"], version="v2")
    assert [r["run_id"] for r in only_v2["runs"]] == [RUN_B] and only_v2["model_packages"] == []
    assert lineage_table.client.calls == ["query", "query"]


def test_impact_includes_derived_datasets_and_packages(lineage_table: Any) -> None:
    from sfn_mlops.lineage import impact

    answer = impact(lineage_table, DATASET["uri"], version="v1")
    assert [r["run_id"] for r in answer["runs"]] == [RUN_A] and answer["runs"][0]["status"] == "RUNNING"
    assert answer["derived_datasets"] == [{"uri": "s3://bucket/runs/a/train/", "run_id": RUN_A, "version": "v1"}]
    assert [p["model_package_arn"] for p in answer["model_packages"]] == [PACKAGE]
    assert set(lineage_table.client.calls) == {"query"}  # the dataset's partition, then each run's


def test_unknown_dataset_or_model_is_a_named_error(lineage_table: Any) -> None:
    from sfn_mlops.errors import LineageNotFound
    from sfn_mlops.lineage import dataset_lineage, model_lineage

    with pytest.raises(LineageNotFound, match=r"no run has read s3://bucket/other\.csv"):
        dataset_lineage(lineage_table, "s3://bucket/other.csv")
    with pytest.raises(LineageNotFound, match="no lineage recorded for model package"):
        model_lineage(lineage_table, PACKAGE + "9")


def test_dataset_lineage_finds_a_version_too_long_for_a_sort_key_as_written(lineage_table: Any) -> None:
    from sfn_mlops.lineage import dataset_lineage, impact, record_dataset_use

    # Given a run that read a dataset version longer than a sort key can hold (written hashed, within the limit)
    long_version = "v" * 900
    long_read = {**DATASET, "version_id": long_version, "version": long_version}
    record_dataset_use(lineage_table, RUN_B, "abalone", long_read)

    # When the lineage of that version is asked for by the version itself
    answer = dataset_lineage(lineage_table, DATASET["uri"], version=long_version)

    # Then the query finds the run (the query's key prefix is bounded the same way as the written key)
    assert [r["run_id"] for r in answer["runs"]] == [RUN_B]
    assert answer["versions"] == [long_version] and answer["runs"][0]["version"] == long_version
    assert [r["run_id"] for r in impact(lineage_table, DATASET["uri"], version=long_version)["runs"]] == [RUN_B]
