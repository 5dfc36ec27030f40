"""Batch inference: which uploads start a batch, what a batch is planned to do, what its check unit does with the
rows and with drift, and how its transform job is asked for."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, ROOT, TABLE

PREFIX = "sfn-mlops-dev"
GROUP = f"{PREFIX}-abalone"
XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BASELINE = f"s3://{BUCKET}/runs/abalone/abalone-20261123t101500-1a2b3c4d/preprocess/a1/baseline/"


def abalone(limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    """abalone's rows; ``limit`` of them spread over the file (its first rows are not a fair sample)."""
    with (ROOT / "models/abalone/data/abalone.csv").open() as source:
        rows = list(csv.reader(source))
    body = rows[1:]
    return rows[0], body if limit is None else body[:: len(body) // limit][:limit]


def without_label(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    keep = [i for i, name in enumerate(header) if name != "rings"]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def as_csv(header: list[str], rows: list[list[str]]) -> bytes:
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode()


@pytest.fixture
def stack(published: str, table: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The stack's settings, a batch flow and a training flow the functions can start, a drift baseline of
    abalone's data, and the pipeline's model package group."""
    from sfn_mlops import drift
    from sfn_mlops.metadata import MetadataTable
    from sfn_mlops.settings import get_settings

    sfn = boto3.client("stepfunctions")
    noop = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    flows = {
        name: sfn.create_state_machine(name=name, definition=noop, roleArn="arn:aws:iam::123456789012:role/x")[
            "stateMachineArn"
        ]
        for name in ("test-batch-flow", "test-training-flow")
    }
    monkeypatch.setenv("BATCH_FLOW_ARN", flows["test-batch-flow"])
    monkeypatch.setenv("TRAINING_FLOW_ARN", flows["test-training-flow"])
    monkeypatch.setenv("RESOURCE_PREFIX", PREFIX)
    get_settings.cache_clear()
    header, rows = abalone()
    statistics, constraints = drift.build_baseline(header, rows, "rings", {"sex": ["M", "F", "I"]})
    s3 = boto3.client("s3")
    for name, document in (("statistics", statistics), ("constraints", constraints)):
        s3.put_object(Bucket=BUCKET, Key=f"{BASELINE[len(f's3://{BUCKET}/') :]}{name}.json", Body=json.dumps(document))
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    return {"flows": flows, "table": MetadataTable(boto3.client("dynamodb"), TABLE), "settings": get_settings()}


def package(status: str = "Approved", baseline: bool = True) -> str:
    sagemaker = boto3.client("sagemaker")
    extra: dict[str, Any] = {}
    if baseline:
        extra["DriftCheckBaselines"] = {
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"{BASELINE}statistics.json"},
                "Constraints": {"ContentType": "application/json", "S3Uri": f"{BASELINE}constraints.json"},
            }
        }
    arn: str = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": XGBOOST, "ModelDataUrl": f"s3://{BUCKET}/runs/abalone/x/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        **extra,
    )["ModelPackageArn"]
    if status != "PendingManualApproval":
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return arn


def upload(key: str, body: bytes) -> dict[str, Any]:
    response = boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return {"bucket": BUCKET, "key": key, "version_id": response.get("VersionId")}


def batch_request(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    from sfn_mlops.batch import new_batch_id

    run_id = new_batch_id("abalone", datetime(2026, 11, 30, 12, tzinfo=UTC), source["key"])
    return {"pipeline": "abalone", "run_id": run_id, "input": source, **extra}


def plan(stack: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    from sfn_mlops.batch import plan_batch

    event = {"batch": request, "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:f:x"}
    return plan_batch(boto3.client("s3"), boto3.client("sagemaker"), stack["table"], stack["settings"], event)


def check(stack: dict[str, Any], planned: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
    from sfn_mlops.batch import check_input

    return check_input(
        boto3.client("s3"),
        boto3.client("cloudwatch"),
        boto3.client("stepfunctions"),
        stack["table"],
        stack["settings"],
        planned["run_id"],
        "abalone",
        attempt,
        planned["units"]["check"],
    )


def read(uri: str) -> str:
    bucket, key = uri[5:].split("/", 1)
    return str(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


# ------------------------------------------------------------------------------------------ keys and names
@pytest.mark.parametrize(
    ("key", "pipeline"),
    [
        ("batch/abalone/incoming/day.csv", "abalone"),
        ("batch/abalone/incoming/2026/11/day.csv", "abalone"),
        ("batch/abalone/batch-abalone-20261130t120000-9a8b7c6d/check/a1/input/rows.csv", None),
        ("batch/abalone/incoming/", None),
        ("batch/Abalone/incoming/day.csv", None),
        ("data/abalone/incoming/day.csv", None),
    ],
)
def test_only_objects_under_a_pipelines_incoming_folder_are_batch_input(key: str, pipeline: str | None) -> None:
    from sfn_mlops.batch import pipeline_for_batch_key

    assert pipeline_for_batch_key(key) == pipeline


def test_transform_job_names_are_unique_per_attempt_and_valid_for_the_longest_pipeline_name() -> None:
    from sfn_mlops.batch import new_batch_id, transform_job_name
    from sfn_mlops.naming import JOB_NAME

    started = datetime(2026, 11, 30, 12, tzinfo=UTC)
    for pipeline in ("abalone", "a" * 24):
        run_id = new_batch_id(pipeline, started, "x")
        names = {transform_job_name(run_id, attempt) for attempt in (1, 2, 10)}
        assert len(names) == 3
        assert all(len(name) <= 63 and JOB_NAME.match(name) for name in names)


def test_id_columns_skip_the_model_and_are_joined_back_before_the_prediction() -> None:
    from sfn_mlops.batch import transform_request

    config = {
        "id_columns": 2,
        "output_prefix": "s3://b/batch/abalone/r/output/",
        "instance_type": "ml.m5.large",
        "instance_count": 1,
        "max_payload_mb": 6,
        "max_concurrent_transforms": 1,
    }
    check_out = {"transform_input": "s3://b/batch/abalone/r/check/a1/input/", "input_file": "rows.csv"}
    prepared = transform_request("batch-abalone-20261130t120000-9a8b7c6d", "abalone", 3, config, "m", check_out)
    request = prepared["request"]
    assert request["DataProcessing"] == {"InputFilter": "$[2:]", "JoinSource": "Input", "OutputFilter": "$[0,1,-1]"}
    assert request["TransformInput"]["SplitType"] == "Line" and request["BatchStrategy"] == "MultiRecord"
    assert prepared["output_uri"] == "s3://b/batch/abalone/r/output/a3/rows.csv.out"
    without = transform_request(
        "batch-abalone-20261130t120000-9a8b7c6d", "abalone", 1, {**config, "id_columns": 0}, "m", check_out
    )
    assert "DataProcessing" not in without["request"]


# ------------------------------------------------------------------------------------------ planning
def test_a_batch_scores_with_the_latest_approved_package_and_reads_its_drift_baseline(stack: dict[str, Any]) -> None:
    package("Approved")
    latest = package("Approved")
    package("PendingManualApproval")
    header, rows = without_label(*abalone(20))
    planned = plan(stack, batch_request(upload("batch/abalone/incoming/day.csv", as_csv(header, rows))))
    assert planned["model_package_arn"] == latest
    assert planned["units"]["check"]["baseline"] == {
        "statistics": f"{BASELINE}statistics.json",
        "constraints": f"{BASELINE}constraints.json",
    }
    run = stack["table"].get_run(planned["run_id"])
    assert run["kind"] == "batch" and run["status"] == "RUNNING"
    assert [r["PK"] for r in stack["table"].list_runs("abalone")] == [f"RUN#{planned['run_id']}"]


@pytest.mark.parametrize(
    ("status", "baseline", "message"),
    [
        ("PendingManualApproval", True, "not Approved"),
        ("Rejected", True, "not Approved"),
        ("Approved", False, "no drift baseline"),
    ],
)
def test_a_package_that_is_not_approved_or_has_no_baseline_is_refused_in_one_line(
    stack: dict[str, Any], status: str, baseline: bool, message: str
) -> None:
    from sfn_mlops.batch import BatchRefused

    arn = package(status, baseline=baseline)
    source = upload("batch/abalone/incoming/day.csv", as_csv(*without_label(*abalone(5))))
    with pytest.raises(BatchRefused, match=message) as refused:
        plan(stack, batch_request(source, model_package_arn=arn))
    assert "\n" not in str(refused.value)


def test_the_check_and_transform_configs_are_stamped_and_pass_their_workers_validation(stack: dict[str, Any]) -> None:
    from sfn_mlops.batch import UnitEvent
    from sfn_mlops.fingerprint import canonical_hash, config_digest
    from sfn_mlops.unit_configs import validated_config

    # Given a planned batch
    package("Approved")
    header, rows = without_label(*abalone(20))
    planned = plan(stack, batch_request(upload("batch/abalone/incoming/day.csv", as_csv(header, rows))))
    for unit in ("check", "transform"):
        config = planned["units"][unit]
        # Then each worker config carries its digest, and the executor's fingerprint is what it was without it
        assert config["config_sha256"] == config_digest(config)
        unstamped = {k: v for k, v in config.items() if k != "config_sha256"}
        assert planned["control"][unit]["fingerprint"] == canonical_hash({"unit": unit, **unstamped})
        # And the worker takes it as planned
        event = UnitEvent(run_id=planned["run_id"], pipeline="abalone", unit=unit, attempt=1, inputs={"config": config})
        assert validated_config(event)["config_sha256"] == config["config_sha256"]


def test_without_an_approved_package_the_batch_is_refused_naming_what_to_do(stack: dict[str, Any]) -> None:
    from sfn_mlops.batch import BatchRefused

    source = upload("batch/abalone/incoming/day.csv", as_csv(*without_label(*abalone(5))))
    with pytest.raises(BatchRefused, match="no approved package: approve one first"):
        plan(stack, batch_request(source))


# ------------------------------------------------------------------------------------------ check
def test_clean_rows_are_ok_and_rewritten_for_the_transform_with_id_columns_first(stack: dict[str, Any]) -> None:
    package()
    header, rows = without_label(*abalone(200))
    # columns in another order, and an id column the config names
    shuffled = ["row_id", *reversed(header)]
    body = [[f"r{i}", *reversed(row)] for i, row in enumerate(rows)]
    source = upload("batch/abalone/incoming/day.csv", as_csv(shuffled, body))
    config = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key="pipelines/abalone/pipeline.json")["Body"].read()
    )
    config["batch"]["id_columns"] = ["row_id"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key="pipelines/abalone/pipeline.json", Body=json.dumps(config))
    planned = plan(stack, batch_request(source))
    result = check(stack, planned)
    assert result["drift_status"] == "OK" and result["row_count"] == 200
    lines = read(f"{result['transform_input']}{result['input_file']}").splitlines()
    assert lines[0].split(",") == ["r0", *rows[0]]  # id first, then the training order
    assert len(lines) == 200
    assert json.loads(read(result["violations_uri"])) == {"violations": []}
    assert stack["table"].get_run(planned["run_id"])["drift"]["status"] == "OK"


def drifted(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Every length x1.5, an unknown sex in every tenth row, and no shell_weight column."""
    length, sex, shell = header.index("length"), header.index("sex"), header.index("shell_weight")
    out = []
    for i, row in enumerate(rows):
        row = list(row)
        row[length] = repr(float(row[length]) * 1.5)
        if i % 10 == 0:
            row[sex] = "X"
        out.append([cell for j, cell in enumerate(row) if j != shell])
    return [c for j, c in enumerate(header) if j != shell], out


def set_drift_action(action: str) -> None:
    s3 = boto3.client("s3")
    config = json.loads(s3.get_object(Bucket=BUCKET, Key="pipelines/abalone/pipeline.json")["Body"].read())
    config["drift"] = {**config.get("drift", {}), "action": action}
    s3.put_object(Bucket=BUCKET, Key="pipelines/abalone/pipeline.json", Body=json.dumps(config))


def test_drift_with_action_block_fails_the_check_with_the_violations_and_writes_no_transform_input(
    stack: dict[str, Any],
) -> None:
    from sfn_mlops.batch import DriftDetected

    package()
    set_drift_action("block")
    header, rows = drifted(*without_label(*abalone(300)))
    planned = plan(stack, batch_request(upload("batch/abalone/incoming/day.csv", as_csv(header, rows))))
    with pytest.raises(DriftDetected) as blocked:
        check(stack, planned)
    for feature in ("length", "sex", "shell_weight"):
        assert feature in str(blocked.value)
    recorded = stack["table"].get_run(planned["run_id"])["drift"]
    assert recorded["status"] == "DRIFT"
    assert {v["feature_name"] for v in recorded["violations"]} == {"length", "sex", "shell_weight"}
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"batch/abalone/{planned['run_id']}/check/")
    assert [o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"]] == ["constraint_violations.json"]
    metrics = boto3.client("cloudwatch").list_metrics(Namespace="sfn-mlops/Drift")["Metrics"]
    assert any(m["MetricName"] == "Violations" for m in metrics)


def test_rows_the_model_cannot_score_fail_the_check_naming_them_when_the_action_is_warn(stack: dict[str, Any]) -> None:
    from sfn_mlops.batch import UnscorableInput

    package()
    header, rows = drifted(*without_label(*abalone(50)))
    planned = plan(stack, batch_request(upload("batch/abalone/incoming/day.csv", as_csv(header, rows))))
    with pytest.raises(UnscorableInput, match="column 'shell_weight' is missing"):
        check(stack, planned)
    assert stack["table"].get_run(planned["run_id"])["drift"]["status"] == "DRIFT"


def test_drift_with_action_retrain_starts_one_training_run_however_many_batches_drift(stack: dict[str, Any]) -> None:
    package()
    set_drift_action("retrain")
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=BUCKET, Key="data/abalone/abalone.csv", Body=(ROOT / "models/abalone/data/abalone.csv").read_bytes()
    )
    header, rows = without_label(*abalone(300))
    length = header.index("length")
    shifted = [[repr(float(c) * 1.5) if j == length else c for j, c in enumerate(r)] for r in rows]
    results = []
    for day in ("one", "two"):
        planned = plan(stack, batch_request(upload(f"batch/abalone/incoming/{day}.csv", as_csv(header, shifted))))
        results.append(check(stack, planned))
    assert [r["drift_status"] for r in results] == ["DRIFT", "DRIFT"]
    assert results[0]["retrain"]["started"] is True and results[1]["retrain"]["started"] is False
    assert results[0]["retrain"]["run_id"] == results[1]["retrain"]["run_id"]
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=stack["flows"]["test-training-flow"])
    assert len(executions["executions"]) == 1
    given = json.loads(
        boto3.client("stepfunctions").describe_execution(executionArn=executions["executions"][0]["executionArn"])[
            "input"
        ]
    )
    assert given["dataset"]["key"] == "data/abalone/abalone.csv"


# ------------------------------------------------------------------------------------------ trigger
def s3_event(key: str, version: str | None, etag: str = "e1") -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "etag": etag, "sequencer": "0A1"}
    if version:
        obj["version-id"] = version
    return {
        "id": "e",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2026-11-30T12:00:00Z",
        "detail": {"bucket": {"name": BUCKET}, "object": obj},
    }


def trigger(stack: dict[str, Any], event: dict[str, Any]) -> Any:
    from sfn_mlops.trigger import handle_trigger

    return handle_trigger(boto3.client("stepfunctions"), boto3.client("s3"), stack["table"], stack["settings"], event)


def test_an_upload_under_incoming_starts_one_batch_even_when_delivered_twice(stack: dict[str, Any]) -> None:
    source = upload("batch/abalone/incoming/day.csv", b"sex,length\nM,0.4\n")
    first = trigger(stack, s3_event(source["key"], source["version_id"]))
    again = trigger(stack, s3_event(source["key"], source["version_id"]))
    assert first.started and first.run_id.startswith("batch-abalone-")
    assert not again.started and again.duplicate and again.run_id == first.run_id
    sfn = boto3.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=stack["flows"]["test-batch-flow"])["executions"]
    assert len(executions) == 1
    given = json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])
    assert given["input"] == source and given["run_id"] == first.run_id


def test_what_a_batch_writes_under_its_own_folder_starts_nothing(stack: dict[str, Any]) -> None:
    decision = trigger(stack, s3_event("batch/abalone/batch-abalone-20261130t120000-9a8b7c6d/output/a1/x.out", "v"))
    assert not decision.started and "incoming" in decision.reason


def test_the_batch_schedule_scores_the_newest_incoming_object(stack: dict[str, Any]) -> None:
    import time

    upload("batch/abalone/incoming/old.csv", b"sex,length\nM,0.4\n")
    time.sleep(1.1)  # S3 LastModified has second resolution
    newest = upload("batch/abalone/incoming/new.csv", b"sex,length\nF,0.5\n")
    decision = trigger(stack, {"trigger": "batch-schedule", "pipeline": "abalone", "time": "2026-11-30T12:00:00Z"})
    assert decision.started
    sfn = boto3.client("stepfunctions")
    execution = sfn.list_executions(stateMachineArn=stack["flows"]["test-batch-flow"])["executions"][0]
    assert (
        json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["input"]["key"]
        == newest["key"]
    )
    # the same scheduled time delivered again (Scheduler's retry) is the same batch
    again = trigger(stack, {"trigger": "batch-schedule", "pipeline": "abalone", "time": "2026-11-30T12:00:00Z"})
    assert again.duplicate and again.run_id == decision.run_id


def test_a_batch_upload_claimed_but_never_planned_is_delivered_again_after_a_restart(stack: dict[str, Any]) -> None:
    from sfn_mlops_local.local.recovery import unplanned_uploads
    from sfn_mlops_local.operations import Target

    source = upload("batch/abalone/incoming/day.csv", b"sex,length\nM,0.4\n")
    decision = trigger(stack, s3_event(source["key"], source["version_id"]))
    assert decision.started and stack["table"].get_run(decision.run_id) is None  # the service stopped here
    target = Target.from_clients(boto3.client, BUCKET, TABLE, "", "test")
    assert unplanned_uploads(target) == [(BUCKET, source["key"], source["version_id"])]
