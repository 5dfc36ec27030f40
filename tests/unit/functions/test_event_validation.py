"""Every Lambda handler validates its event: garbage is a named error in one line, before any side effect;
the trigger's policy refuses what it must not start; keys stay within DynamoDB's limits; no NaN is stored."""

from __future__ import annotations

import json
import math
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET
from tests.unit.functions.test_handlers import handler_module, sample_event

# Every handler but validate_dataset (its own helper's) and trigger (which refuses without raising).
VALIDATING_HANDLERS = [
    "check_input",
    "lookup_cache",
    "plan_batch",
    "plan_deployment",
    "plan_run",
    "prepare_job",
    "prepare_transform",
    "read_metrics",
    "record_batch",
    "record_deployment",
    "register_model",
    "reject_model",
    "release_lock",
    "smoke_test",
    "write_baseline",
]
GARBAGE: list[Any] = [{}, {"run_id": 3}, {"run": "x"}, {"plan": {}}, {"inputs": None, "attempt": "one"}]


@pytest.mark.parametrize("name", VALIDATING_HANDLERS)
@pytest.mark.parametrize("garbage", GARBAGE, ids=lambda g: json.dumps(g))
def test_a_handler_given_garbage_raises_invalid_event_in_one_line_naming_a_field(
    aws: None, lambda_context: Any, name: str, garbage: Any
) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given an event that is not the handler's model, When the handler is invoked
    with pytest.raises(InvalidEvent, match="is malformed: ") as raised:
        handler_module(name).lambda_handler(garbage, lambda_context)
    # Then the error is one line that names what is wrong
    message = str(raised.value)
    assert "\n" not in message and ": " in message.split("is malformed: ", 1)[1]


def test_a_worker_config_changed_after_planning_is_a_fingerprint_mismatch(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import FingerprintMismatch
    from sfn_mlops.fingerprint import config_digest

    # Given a train unit's config stamped with its digest by the planner
    event = sample_event("PrepareJobFunction")
    config = event["inputs"]["config"]
    config["config_sha256"] = config_digest(config)
    assert handler_module("prepare_job").lambda_handler(event, lambda_context)["job_name"].endswith("-train-a1")
    # When the config is changed afterwards (a bigger instance), Then the worker refuses it, naming why
    config["compute"]["instance_type"] = "ml.m5.4xlarge"
    with pytest.raises(FingerprintMismatch, match="does not match the fingerprint its plan recorded"):
        handler_module("prepare_job").lambda_handler(event, lambda_context)


def test_a_worker_revalidates_its_config_instead_of_trusting_it(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given a train config whose instance count is beyond what pipeline.json allows, and one of another run
    event = sample_event("PrepareJobFunction")
    event["inputs"]["config"]["compute"]["instance_count"] = 500
    with pytest.raises(InvalidEvent, match=r"train input config is malformed: compute\.instance_count"):
        handler_module("prepare_job").lambda_handler(event, lambda_context)
    event = sample_event("PrepareJobFunction")
    event["inputs"]["config"]["runs_root"] = f"s3://{BUCKET}/runs/abalone/abalone-20200101t000000-00000000/"
    with pytest.raises(InvalidEvent, match="is not run abalone-20261123t101500-1a2b3c4d's prefix"):
        handler_module("prepare_job").lambda_handler(event, lambda_context)


def test_the_planner_stamps_each_units_config_without_changing_its_fingerprint() -> None:
    from sfn_mlops.fingerprint import config_digest, stamp_config_digests, static_fingerprints

    units = {"train": {"compute": {"instance_count": 1}, "hyperparameters": {"num_round": "5"}, "runs_root": "s3://b/"}}
    before = static_fingerprints(units, {"content": "x"})
    stamp_config_digests(units)
    assert units["train"]["config_sha256"] == config_digest(units["train"])
    assert static_fingerprints(units, {"content": "x"}) == before
    # A whole float that came back as an int (JSON through Step Functions) hashes alike
    assert config_digest({"ratio": 1.0}) == config_digest({"ratio": 1})


# ------------------------------------------------------------------------------------------------ trigger policy
def upload_event(key: str, bucket: str = BUCKET, source: str = "aws.s3") -> dict[str, Any]:
    event = sample_event("TriggerFunction")
    event["source"] = source
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (upload_event("data/abalone/a.csv", source="aws.events"), "not aws.s3"),
        (upload_event("data/abalone/a.csv", source="custom.attacker"), "not aws.s3"),
        (upload_event("data/abalone/a.csv", bucket="someone-elses-bucket"), "is not in the artifact bucket"),
        (upload_event("data/abalone/../abalone/a.csv"), "'..' segment"),
        (upload_event("data/abalone/./a.csv"), "'.' or '..' segment"),
        (upload_event("data/abalone/a#1.csv"), "has a '#'"),
        (upload_event("data/abalone/" + "a" * 1000 + ".csv"), "bytes long (at most 512)"),
        (upload_event("data/abalone/a\x00.csv"), "control character"),
        (upload_event("data/abalone/a\n.csv"), "control character"),
        (upload_event("data/abalone/a\u202e.csv"), "outside the accepted set"),
        (upload_event("data/abalone/a;b.csv"), "outside the accepted set"),
        (upload_event("data/abalone//a.csv"), "empty segment"),
        (upload_event("elsewhere/abalone/a.csv"), "is not under data/<pipeline>/"),
        ({**upload_event("data/abalone/a.csv"), "detail": {"bucket": {}}}, "S3 Object Created event is malformed"),
        ({"detail-type": "Object Created", "source": "aws.s3", "detail": "x"}, "is malformed: detail"),
        ({"trigger": "schedule", "pipeline": ["abalone"]}, "scheduled event is malformed: pipeline"),
        ({"hello": "world"}, "unrecognised trigger event"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_the_trigger_refuses_what_its_policy_does_not_accept_without_raising(
    published: str, table: str, lambda_context: Any, event: dict[str, Any], reason: str
) -> None:
    # Given an event the policy refuses, When the trigger handles it
    result = handler_module("trigger").lambda_handler(event, lambda_context)
    # Then it is a rejection with the reason (logged and counted), not an error EventBridge would retry
    assert result["started"] is False and not result["duplicate"]
    assert reason in result["reason"] and "\n" not in result["reason"]


def test_the_key_policy_accepts_ordinary_keys() -> None:
    from sfn_mlops.trigger import key_problem

    for key in ("data/abalone/abalone.csv", "data/abalone/2026-11-30 day (1).csv", "batch/abalone/incoming/x_1.csv"):
        assert key_problem(key) is None, key
    assert key_problem("data/abalone/" + "a" * 495 + ".csv") is None  # 512 bytes: still accepted


# ------------------------------------------------------------------------------------------------ key limits
def test_a_long_part_of_a_key_is_bounded_with_a_readable_prefix_and_a_digest() -> None:
    from sfn_mlops.metadata import MAX_PK_BYTES, MAX_SK_BYTES, dataset_pk, dataset_version_sk, model_dataset_sk

    uri = f"s3://{BUCKET}/data/abalone/" + "é" * 600 + ".csv"  # 1,200+ bytes of key
    assert len(model_dataset_sk(uri, "v" * 900).encode()) <= MAX_SK_BYTES
    assert len(dataset_version_sk("v" * 2000, "MODEL", "arn" * 500).encode()) <= MAX_SK_BYTES
    assert len(dataset_pk(uri * 3).encode()) <= MAX_PK_BYTES
    assert model_dataset_sk(uri, "1").startswith(f"DATASET#s3://{BUCKET}/data/abalone/éé")  # readable
    assert model_dataset_sk(uri, "1") == model_dataset_sk(uri, "1")  # stable: readers find it again
    assert model_dataset_sk(uri, "1") != model_dataset_sk(uri + "x", "1")  # distinct
    short = f"s3://{BUCKET}/data/abalone/abalone.csv"
    assert dataset_pk(short) == f"DATASET#{short}"  # keys of ordinary URIs do not change


def test_a_long_dataset_key_is_recorded_within_the_limits(table: str) -> None:
    from sfn_mlops.metadata import MetadataTable

    # Given a dataset whose URI alone is longer than a sort key may be
    uri = f"s3://{BUCKET}/data/abalone/" + "d" * 1010
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sfn-mlops-abalone/1"
    metadata = MetadataTable(boto3.client("dynamodb"), table)
    # When the model's lineage is recorded, Then DynamoDB accepts every item (moto enforces key sizes)
    metadata.record_model_package(
        "s3://b/model.tar.gz", arn, "abalone-20261123t101500-1a2b3c4d", {"uri": uri, "version": "v1"}, {"rmse": 2.0}
    )
    assert metadata.find_package_for_artifact("s3://b/model.tar.gz")["model_package_arn"] == arn


# ------------------------------------------------------------------------------------------------ finite numbers
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_serialize_refuses_a_non_finite_number_naming_the_attribute(value: float) -> None:
    from sfn_mlops.errors import NonFiniteNumber
    from sfn_mlops.metadata import serialize

    with pytest.raises(NonFiniteNumber, match=r"overrides\.train\.eta is (nan|inf|-inf): only finite numbers"):
        serialize({"PK": "RUN#x", "overrides": {"train": {"eta": value}}})
    assert serialize({"PK": "RUN#x", "n": 1.5})["n"] == {"N": "1.5"}


@pytest.mark.parametrize("report", [{"rmse": "NaN"}, {"rmse": 2.0, "mae": "Infinity"}, {"rmse": "-Infinity"}])
def test_a_non_finite_metric_fails_read_metrics_readably(
    bucket: str, lambda_context: Any, report: dict[str, Any]
) -> None:
    from sfn_mlops.errors import MetricsNotFound

    # Given an evaluation report with a NaN or infinite metric (json writes them as bare NaN/Infinity)
    event = sample_event("ReadMetricsFunction")
    key = event["evaluation_uri"].split(f"s3://{BUCKET}/", 1)[1]
    body = '{"metrics": {' + ", ".join(f'"{k}": {v}' for k, v in report.items()) + "}}"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    # When the metrics are read, Then the run fails with a named error naming the metric (the gate never passes)
    with pytest.raises(MetricsNotFound, match=r"has non-finite metrics \((mae|rmse)="):
        handler_module("read_metrics").lambda_handler(event, lambda_context)


def test_register_refuses_non_finite_metrics_before_creating_a_package() -> None:
    from sfn_mlops.errors import NonFiniteNumber
    from sfn_mlops.registry import check_recordable

    with pytest.raises(NonFiniteNumber, match="metrics rmse are not finite: nothing registered"):
        check_recordable("s3://b/m.tar.gz", {"uri": "s3://b/k", "version": "1"}, {"rmse": math.nan})
    check_recordable("s3://b/m.tar.gz", {"uri": "s3://b/" + "k" * 1100, "version": "1"}, {"rmse": 1.0})
