"""The batch flow's functions, from their sample events: what each returns and records, and one-line refusals."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, TABLE
from tests.unit.functions.test_handlers import handler_module, meter, sample_event


def test_record_batch_counts_one_prediction_per_row_and_links_the_output_from_its_sample_event(
    table: str, bucket: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops.metadata import MetadataTable

    event = sample_event("RecordBatchFunction")
    plan = event["plan"]
    metadata = MetadataTable(boto3.client("dynamodb"), TABLE)
    metadata.start_batch(plan, "arn:flow")
    output = event["results"]["transform"]["outputs"]["output_uri"]
    rows = event["results"]["check"]["outputs"]["row_count"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=output.split("/", 3)[3], Body="10.5\n" * rows)
    app = handler_module("record_batch")
    metered = meter(app, monkeypatch)
    summary = app.lambda_handler(event, lambda_context)
    assert summary["status"] == "SUCCEEDED" and summary["rows_scored"] == rows and summary["output_uri"] == output
    assert metered == ["BatchesSucceeded", "RowsScored"]
    outputs = metadata.query_all(
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"MODEL#{plan['model_package_arn']}"}},
    )
    assert [(o["SK"], o["output_uri"]) for o in outputs] == [(f"BATCH#{plan['run_id']}", output)]


def test_record_batch_fails_a_batch_whose_output_misses_rows(table: str, bucket: str, lambda_context: Any) -> None:
    from sfn_mlops.batch import TransformOutputMismatch
    from sfn_mlops.metadata import MetadataTable

    event = sample_event("RecordBatchFunction")
    metadata = MetadataTable(boto3.client("dynamodb"), TABLE)
    metadata.start_batch(event["plan"], "arn:flow")
    output = event["results"]["transform"]["outputs"]["output_uri"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=output.split("/", 3)[3], Body="10.5\n" * 3)
    with pytest.raises(TransformOutputMismatch, match="holds 3 predictions for 4177 input rows"):
        handler_module("record_batch").lambda_handler(event, lambda_context)
    assert metadata.get_run(event["plan"]["run_id"])["status"] == "FAILED"


def test_prepare_transform_builds_the_attempts_job_request_from_its_sample_event(
    aws: None, lambda_context: Any
) -> None:
    event = sample_event("PrepareTransformFunction")
    prepared = handler_module("prepare_transform").lambda_handler(event, lambda_context)
    assert prepared["adopted"] is None
    assert prepared["request"]["TransformJobName"] == f"{event['run_id']}-tf-a1"
    assert prepared["request"]["ModelName"] == event["inputs"]["model"]["model_name"]
    assert prepared["output_uri"].endswith("/output/a1/rows.csv.out")


@pytest.mark.parametrize("name", ["check_input", "prepare_transform"])
def test_batch_workers_refuse_malformed_input_in_one_line(aws: None, lambda_context: Any, name: str) -> None:
    from sfn_mlops.errors import InvalidEvent

    with pytest.raises(InvalidEvent, match="batch unit input is malformed: run_id") as refused:
        handler_module(name).lambda_handler(
            {"run_id": "x", "pipeline": "abalone", "unit": "u", "attempt": 1, "inputs": {}}, lambda_context
        )
    assert "\n" not in str(refused.value)


def test_plan_batch_refuses_a_pipeline_without_an_approved_package(
    published: str, table: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops.batch import BatchRefused
    from sfn_mlops.settings import get_settings

    monkeypatch.setenv("RESOURCE_PREFIX", "sfn-mlops-dev")
    get_settings.cache_clear()
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="sfn-mlops-dev-abalone")
    boto3.client("s3").put_object(Bucket=BUCKET, Key="batch/abalone/incoming/2026-11-30.csv", Body=b"sex\nM\n")
    with pytest.raises(BatchRefused, match="sfn-mlops-dev-abalone has no approved package: approve one first"):
        handler_module("plan_batch").lambda_handler(sample_event("PlanBatchFunction"), lambda_context)
