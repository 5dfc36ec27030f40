"""Local SageMaker Batch Transform: a registered inference pipeline scores S3 objects as Batch Transform does.

The model is built the way the training flow registers one: the project's real ``inference.py`` in the
scikit-learn container (raw CSV rows in, encoded rows out), then a small XGBoost 1.7 booster in the built-in
XGBoost container. Jobs are driven through boto3 in-process (the runner's botocore hooks), as the interpreter's
``sagemaker:createTransformJob.sync`` tasks reach them inside the local service; containers run in their own
processes.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROOT, wait_until
from tests.unit.local.model_fixtures import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE, tar_gz

pytestmark = pytest.mark.container  # runs a job container's script or a model server: not in the fast tier

BUCKET = "transform-tests"
CATEGORIES = ["M", "F", "I"]
PREPROCESSING = {
    "columns": ["sex", "length", "diameter", "rings"],
    "label": "rings",
    "categorical": {"sex": CATEGORIES},
    "features": ["length", "diameter", "sex_M", "sex_F", "sex_I"],
}


def raw_rows(count: int, seed: int = 3) -> list[str]:
    """Rows of the training columns without the label (sex, length, diameter)."""
    rng = np.random.default_rng(seed)
    return [f"{CATEGORIES[i % 3]},{rng.uniform(0.2, 0.8):.3f},{rng.uniform(0.15, 0.6):.3f}" for i in range(count)]


def encode(rows: list[str]) -> np.ndarray:
    """As inference.py encodes them: numeric columns in file order, then sex one-hot."""
    encoded = []
    for row in rows:
        sex, length, diameter = row.split(",")
        encoded.append([float(length), float(diameter)] + [1.0 if sex == c else 0.0 for c in CATEGORIES])
    return np.array(encoded)


@dataclass
class Lab:
    sm: Any
    s3: Any
    runner: Any
    service: Any

    def put(self, key: str, body: bytes | str) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
        return f"s3://{BUCKET}/{key}"

    def read(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    def describe(self, name: str) -> dict[str, Any]:
        described: dict[str, Any] = self.sm.describe_transform_job(TransformJobName=name)
        return described

    def wait(self, name: str, timeout: float = 60) -> dict[str, Any]:
        ended = ("Completed", "Failed", "Stopped")
        return wait_until(lambda: (d := self.describe(name))["TransformJobStatus"] in ended and d, timeout=timeout)

    def transform(self, name: str, source: str, **overrides: Any) -> dict[str, Any]:
        """CreateTransformJob as the batch flow's worker calls it, with ``overrides`` merged in."""
        request: dict[str, Any] = {
            "TransformJobName": name,
            "ModelName": "abalone-batch",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/out/{name}", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(request.get(key), dict):
                request[key] = {**request[key], **value}
            else:
                request[key] = value
        return dict(self.sm.create_transform_job(**request))


@pytest.fixture
def lab(aws: None, tmp_path: Path) -> Iterator[Lab]:
    """The job runner and the endpoint service (which keeps models) on moto, hooked into boto3's default session
    as the local runtime hooks them."""
    from sfn_mlops_local.local import moto_adaptations
    from sfn_mlops_local.local.endpoints import EndpointService
    from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner

    boto3.setup_default_session(region_name="us-east-1")
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]
        return clients[service]

    service = EndpointService(client, tmp_path / "state", tmp_path / "logs")
    (tmp_path / "work").mkdir()
    runner = LocalJobRunner(lambda: client("s3"), tmp_path / "work", tmp_path / "logs")
    runner.models = service.models.get
    runner.on_job_end = moto_adaptations.notify_work_ended
    events: Any = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-call.sagemaker", runner.on_call)
    events.register("before-call.sagemaker", service.on_call)
    client("s3").create_bucket(Bucket=BUCKET)
    lab = Lab(client("sagemaker"), client("s3"), runner, service)
    try:
        yield lab
    finally:
        for name, job in list(runner.jobs.items()):
            if job["status"] == "InProgress":
                runner.transforms.stop(name)
        runner.wait_idle(30)
        runner.terminate_all()
        service.stop()
        boto3.DEFAULT_SESSION = None  # later tests get a session without these hooks


@pytest.fixture
def booster(lab: Lab, tmp_path: Path) -> Any:
    """A registered abalone-like package (real inference.py, then XGBoost) and a model made from it."""
    import xgboost as xgb

    rows = raw_rows(90, seed=11)
    features = encode(rows)
    labels = 4 + 10 * features[:, 0] + 5 * features[:, 1] + features[:, 2]
    trained = xgb.train({"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3}, xgb.DMatrix(features, labels), 8)
    trained.save_model(str(tmp_path / "xgboost-model"))
    model_data = lab.put(
        "models/xgb/model.tar.gz", tar_gz({"xgboost-model": (tmp_path / "xgboost-model").read_bytes()})
    )
    inference = (ROOT / "models/abalone/scripts/inference.py").read_bytes()
    preprocessing = lab.put(
        "models/pre/model.tar.gz",
        tar_gz({"preprocessing.json": json.dumps(PREPROCESSING).encode(), "code/inference.py": inference}),
    )
    lab.sm.create_model_package_group(ModelPackageGroupName="abalone")
    package = lab.sm.create_model_package(
        ModelPackageGroupName="abalone",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": SKLEARN_IMAGE,
                    "ModelDataUrl": preprocessing,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                },
                {"Image": XGBOOST_IMAGE, "ModelDataUrl": model_data},
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
    )["ModelPackageArn"]
    lab.sm.create_model(ModelName="abalone-batch", ExecutionRoleArn=ROLE, Containers=[{"ModelPackageName": package}])
    return trained


def predicted(booster: Any, rows: list[str]) -> np.ndarray:
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(encode(rows))), dtype=np.float64)


def test_ids_kept_out_of_the_model_come_back_joined_with_each_prediction(lab: Lab, booster: Any) -> None:
    # Given input rows with an id column first, which the model must not see
    rows = raw_rows(250)
    ids = [f"id-{i:04d}" for i in range(len(rows))]
    source = lab.put("batch/in/day-1.csv", "".join(f"{i},{r}\n" for i, r in zip(ids, rows, strict=True)))
    # When they are transformed without the id, joined back to their input, and filtered to id and prediction
    lab.transform(
        "ids-first",
        source,
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    described = lab.wait("ids-first")
    # Then the job completed and its output has one "id,prediction" line per input row, in input order
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    lines = lab.read("out/ids-first/day-1.csv.out").splitlines()
    assert [line.split(",")[0] for line in lines] == ids
    assert all(len(line.split(",")) == 2 for line in lines)
    values = np.array([float(line.split(",")[1]) for line in lines])
    assert np.allclose(values, predicted(booster, rows), atol=1e-6, rtol=0)
    # And DescribeTransformJob answers in SageMaker's shape
    assert described["TransformJobArn"] == "arn:aws:sagemaker:us-east-1:123456789012:transform-job/ids-first"
    assert described["ModelName"] == "abalone-batch" and "FailureReason" not in described
    assert described["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    assert (
        described["TransformInput"]["SplitType"] == "Line" and described["TransformInput"]["CompressionType"] == "None"
    )
    assert described["MaxPayloadInMB"] == 6 and described["BatchStrategy"] == "MultiRecord"
    assert described["CreationTime"] <= described["TransformStartTime"] <= described["TransformEndTime"]
    # And the job's log says what ran (there are no CloudWatch logs locally)
    assert "250 record(s) in 1 request(s)" in (lab.runner._log_dir / "ids-first.log").read_text()


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_single_record_and_multi_record_batches_give_the_same_predictions(
    lab: Lab, booster: Any, strategy: str
) -> None:
    rows = raw_rows(40, seed=5)
    source = lab.put("batch/strategy/rows.csv", "\n".join(rows) + "\n")
    lab.transform(f"strategy-{strategy.lower()}", source, BatchStrategy=strategy, MaxConcurrentTransforms=2)
    described = lab.wait(f"strategy-{strategy.lower()}")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    values = np.array([float(v) for v in lab.read(f"out/strategy-{strategy.lower()}/rows.csv.out").splitlines()])
    assert np.allclose(values, predicted(booster, rows), atol=1e-6, rtol=0)


def test_several_instances_run_as_one_host_with_the_same_outputs_and_the_log_says_so_once(
    lab: Lab, booster: Any
) -> None:
    # Given two objects to transform
    rows = {"a.csv": raw_rows(6, seed=3), "b.csv": raw_rows(4, seed=4)}
    for key, lines in rows.items():
        lab.put(f"batch/fleet/{key}", "\n".join(lines) + "\n")
    # When one job asks for three instances and another for one
    for name, count in (("fleet-of-3", 3), ("fleet-of-1", 1)):
        lab.transform(name, f"s3://{BUCKET}/batch/fleet/", TransformResources={"InstanceCount": count})
        assert lab.wait(name)["TransformJobStatus"] == "Completed"
    # Then both write the same outputs, and DescribeTransformJob keeps the count asked for
    for key, lines in rows.items():
        assert lab.read(f"out/fleet-of-3/{key}.out") == lab.read(f"out/fleet-of-1/{key}.out")
        values = [float(v) for v in lab.read(f"out/fleet-of-3/{key}.out").splitlines()]
        assert np.allclose(values, predicted(booster, lines), atol=1e-6)
    assert lab.describe("fleet-of-3")["TransformResources"]["InstanceCount"] == 3
    # And only the three-instance job's log says, once, that it ran as one host
    note = "the local runtime runs InstanceCount 3 as one host"
    assert (lab.runner._log_dir / "fleet-of-3.log").read_text().count(note) == 1
    assert "as one host" not in (lab.runner._log_dir / "fleet-of-1.log").read_text()


def test_every_input_object_gets_its_out_object_named_as_batch_transform_names_it(lab: Lab, booster: Any) -> None:
    # Given objects under a prefix, one in a sub-folder and one gzip-compressed elsewhere
    first, second = raw_rows(5, seed=1), raw_rows(7, seed=2)
    lab.put("batch/many/a.csv", "\n".join(first) + "\n")
    lab.put("batch/many/sub/b.csv", "\n".join(second))  # no final newline: still 7 records
    # When the prefix is transformed
    lab.transform("prefix", f"s3://{BUCKET}/batch/many/")
    assert lab.wait("prefix")["TransformJobStatus"] == "Completed"
    # Then each object's output is <S3OutputPath>/<key relative to the prefix>.out, with its own predictions
    assert lab.keys("out/prefix/") == ["out/prefix/a.csv.out", "out/prefix/sub/b.csv.out"]
    b_values = [float(v) for v in lab.read("out/prefix/sub/b.csv.out").splitlines()]
    assert np.allclose(b_values, predicted(booster, second), atol=1e-6)
    # And a single object's URI names its output after the object; gzip input is read decompressed
    lab.put("batch/gz/c.csv.gz", gzip.compress(("\n".join(first) + "\n").encode()))
    lab.transform("single", f"s3://{BUCKET}/batch/gz/c.csv.gz", TransformInput={"CompressionType": "Gzip"})
    assert lab.wait("single")["TransformJobStatus"] == "Completed"
    assert lab.keys("out/single/") == ["out/single/c.csv.gz.out"]
    # And a manifest's keys are named relative to its prefix
    manifest = lab.put("batch/manifest.json", json.dumps([{"prefix": f"s3://{BUCKET}/batch/many/"}, "sub/b.csv"]))
    lab.transform(
        "manifest",
        manifest,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest}}},
    )
    assert lab.wait("manifest")["TransformJobStatus"] == "Completed"
    assert lab.keys("out/manifest/") == ["out/manifest/sub/b.csv.out"]


def test_a_row_the_model_refuses_fails_the_job_with_the_models_own_message(lab: Lab, booster: Any) -> None:
    # Given a batch whose third row has a sex the model never saw
    rows = raw_rows(4)
    rows[2] = "X,0.5,0.4"
    source = lab.put("batch/bad/rows.csv", "\n".join(rows) + "\n")
    # When it is transformed
    lab.transform("bad-row", source)
    described = lab.wait("bad-row")
    # Then the job failed, and FailureReason carries SageMaker's words, the model's message and where the row is
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith("ClientError: See job logs for more details.")
    assert "row 3, column 'sex': unknown category 'X'" in reason
    assert f"lines 1-4 of s3://{BUCKET}/batch/bad/rows.csv" in reason
    # And nothing was written for the object that failed
    assert lab.keys("out/bad-row/") == []
    assert "unknown category 'X'" in (lab.runner._log_dir / "bad-row.log").read_text()


def test_an_unknown_model_is_refused_as_sagemaker_refuses_it(lab: Lab) -> None:
    with pytest.raises(ClientError) as refused:
        lab.transform("nobody", f"s3://{BUCKET}/batch/in/", ModelName="no-such-model")
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == 'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model".'


def _request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": "checked",
        "ModelName": "abalone-batch",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/out/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    request.update(overrides)
    return request


@pytest.mark.parametrize(
    ("request_overrides", "expected"),
    [
        ({"TransformJobName": "bad_name"}, "at 'transformJobName' failed to satisfy constraint"),
        ({"TransformJobName": "x" * 64}, "Member must have length less than or equal to 63"),
        ({"ModelName": None}, "Value null at 'modelName' failed to satisfy constraint: Member must not be null"),
        ({"TransformOutput": None}, "Value null at 'transformOutput'"),
        ({"MaxPayloadInMB": 101}, "at 'maxPayloadInMB' failed to satisfy constraint: Member must have value less"),
        ({"MaxConcurrentTransforms": 20, "MaxPayloadInMB": 6}, "must not exceed 100 MB"),
        ({"BatchStrategy": "Everything"}, "Member must satisfy enum value set: [MultiRecord, SingleRecord]"),
        (
            {"TransformResources": {"InstanceType": "ml.t2.medium", "InstanceCount": 1}},
            "at 'transformResources.instanceType' failed to satisfy constraint: Member must satisfy enum value set",
        ),
        (
            {"TransformOutput": {"S3OutputPath": "ftp://bucket/out"}},
            "at 'transformOutput.s3OutputPath' failed to satisfy constraint",
        ),
        (
            {
                "TransformInput": {
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/"}},
                    "SplitType": "RecordIO",
                }
            },
            "SplitType RecordIO is not supported by the local runtime",
        ),
        ({"DataProcessing": {"InputFilter": "$[1:"}}, "InputFilter '$[1:' is not a valid JSONPath expression"),
        ({"DataProcessing": {"InputFilter": "$[a]"}}, "InputFilter '$[a]' is not a valid JSONPath expression"),
        ({"DataProcessing": {"OutputFilter": "$.SageMakerOutput"}}, "the local runtime applies filters to CSV"),
        ({"DataProcessing": {"JoinSource": "Output"}}, "Member must satisfy enum value set: [Input, None]"),
    ],
)
def test_requests_sagemaker_refuses_are_refused_with_a_readable_validation_error(
    lab: Lab, request_overrides: dict[str, Any], expected: str
) -> None:
    # Through the handler every HTTP client of the local service reaches (botocore's own checks do not run there)
    status, answer = lab.runner.handle("CreateTransformJob", _request(**request_overrides))
    assert status == 400
    assert answer["Error"]["Code"] == "ValidationException"
    assert expected in answer["Error"]["Message"]
    assert "\n" not in answer["Error"]["Message"]
    assert "checked" not in lab.runner.jobs


def test_a_second_job_with_a_used_name_is_refused(lab: Lab, booster: Any) -> None:
    source = lab.put("batch/dup/rows.csv", "\n".join(raw_rows(3)) + "\n")
    lab.transform("twice", source)
    with pytest.raises(ClientError) as refused:
        lab.transform("twice", source)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "must be unique within an AWS account and region" in refused.value.response["Error"]["Message"]
    assert lab.wait("twice")["TransformJobStatus"] == "Completed"


def _plan(max_payload_mb: int, strategy: str = "MultiRecord") -> Any:
    from sfn_mlops_local.local.transform_jobs import validate

    request = _request(MaxPayloadInMB=max_payload_mb, BatchStrategy=strategy)
    return validate(request, ["ml.m5.large"])


@pytest.mark.parametrize(
    ("record_bytes", "count", "strategy", "expected_batches"),
    [
        (99, 30_000, "MultiRecord", 3),  # 100 bytes a record with its newline: 10,485 fit in 1 MB
        (99, 10_485, "MultiRecord", 1),
        (99, 10_486, "MultiRecord", 2),
        (99, 5, "SingleRecord", 5),
    ],
)
def test_mini_batches_hold_whole_records_up_to_max_payload(
    record_bytes: int, count: int, strategy: str, expected_batches: int
) -> None:
    from sfn_mlops_local.local.transform_jobs import MB, TransformJobs

    records = [str(i % 10).encode() * record_bytes for i in range(count)]
    batches = list(TransformJobs._batches(_plan(1, strategy), records, "s3://b/k"))
    assert len(batches) == expected_batches
    assert [r for batch in batches for r in batch] == records
    assert all(sum(len(r) + 1 for r in batch) <= MB for batch in batches)


def test_a_record_larger_than_max_payload_fails_with_sagemakers_reason() -> None:
    from sfn_mlops_local.local.sagemaker_jobs import JobFailed
    from sfn_mlops_local.local.transform_jobs import MB, TransformJobs

    with pytest.raises(JobFailed) as failed:
        list(TransformJobs._batches(_plan(1), [b"1,2", b"x" * MB], "s3://b/k"))
    assert failed.value.reason.startswith("ClientError: Too much data for max payload size")


@pytest.mark.parametrize(
    ("expression", "record", "expected"),
    [
        ("$", "a,b,c,d", "a,b,c,d"),
        ("$[1:]", "a,b,c,d", "b,c,d"),
        ("$[0,-1]", "a,b,c,d", "a,d"),
        ("$[-1]", "a,b,c,d", "d"),
        ("$[1:3]", "a,b,c,d", "b,c"),
        ("$[0, 2:]", "a,b,c,d", "a,c,d"),
        ("$[:2]", "a,b,c,d", "a,b"),
        ("$[1:]", 'x,"Smith, J",3', '"Smith, J",3'),
    ],
)
def test_csv_filters_select_fields_as_sagemakers_jsonpath_subset(expression: str, record: str, expected: str) -> None:
    from sfn_mlops_local.local.transform_jobs import ColumnFilter, join_fields, split_fields

    chosen = ColumnFilter.parse(expression, "InputFilter").apply(split_fields(record.encode()))
    assert join_fields(chosen).decode() == expected


def test_a_filter_reaching_past_the_record_fails_the_job_naming_it(lab: Lab, booster: Any) -> None:
    source = lab.put("batch/narrow/rows.csv", "\n".join(raw_rows(3)) + "\n")
    lab.transform("narrow", source, DataProcessing={"InputFilter": "$[0,1,2,7]"})
    described = lab.wait("narrow")
    assert described["TransformJobStatus"] == "Failed"
    assert "InputFilter: $[0,1,2,7] selects field 7 of a record with 3 fields" in described["FailureReason"]


def test_a_stopped_job_goes_through_stopping_to_stopped_and_writes_nothing(lab: Lab, booster: Any) -> None:
    # Given a job that sends its rows one by one (slow enough to be stopped while it runs)
    source = lab.put("batch/long/rows.csv", "\n".join(raw_rows(20_000)) + "\n")
    lab.transform("long", source, BatchStrategy="SingleRecord")
    # When it is stopped
    lab.sm.stop_transform_job(TransformJobName="long")
    # Then it is Stopping at once, then Stopped without a FailureReason or an output
    assert lab.describe("long")["TransformJobStatus"] in ("Stopping", "Stopped")
    started = time.monotonic()
    described = lab.wait("long", timeout=30)
    assert described["TransformJobStatus"] == "Stopped" and "FailureReason" not in described
    assert time.monotonic() - started < 15
    assert lab.keys("out/long/") == []
    # And a job that is not running cannot be stopped
    with pytest.raises(ClientError) as refused:
        lab.sm.stop_transform_job(TransformJobName="long")
    assert "is not in progress (status: Stopped)" in refused.value.response["Error"]["Message"]


def test_list_filters_sorts_and_pages_transform_jobs(lab: Lab, booster: Any) -> None:
    source = lab.put("batch/list/rows.csv", "\n".join(raw_rows(3)) + "\n")
    lab.runner.fault = lambda name, job: "ClientError: injected fault" if name == "nightly-2" else None
    for name in ("nightly-1", "nightly-2", "adhoc-1"):
        lab.transform(name, source)
    for name in ("nightly-1", "nightly-2", "adhoc-1"):
        lab.wait(name)
    # The fault hook fails a transform job as it fails any job
    assert lab.describe("nightly-2")["FailureReason"] == "ClientError: injected fault"
    nightly = lab.sm.list_transform_jobs(NameContains="nightly", SortBy="Name", SortOrder="Ascending")
    assert [s["TransformJobName"] for s in nightly["TransformJobSummaries"]] == ["nightly-1", "nightly-2"]
    failed = lab.sm.list_transform_jobs(StatusEquals="Failed")["TransformJobSummaries"]
    assert [(s["TransformJobName"], s["FailureReason"]) for s in failed] == [
        ("nightly-2", "ClientError: injected fault")
    ]
    first = lab.sm.list_transform_jobs(MaxResults=2, SortBy="Name", SortOrder="Ascending")
    rest = lab.sm.list_transform_jobs(MaxResults=2, SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"])
    names = [s["TransformJobName"] for s in first["TransformJobSummaries"] + rest["TransformJobSummaries"]]
    assert names == ["adhoc-1", "nightly-1", "nightly-2"] and "NextToken" not in rest
    summary = first["TransformJobSummaries"][0]
    assert summary["TransformJobStatus"] == "Completed" and summary["TransformEndTime"] >= summary["CreationTime"]


def test_a_sync_task_waits_for_the_job_and_a_failed_job_fails_the_task_with_its_description(
    lab: Lab, booster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.config import default_user_config

    from sfn_mlops_local.local import moto_adaptations

    moto_adaptations.apply()
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    good = lab.put("batch/sync/good.csv", "\n".join(raw_rows(6)) + "\n")
    bad = lab.put("batch/sync/bad.csv", "F,0.4,0.3\nF,abc,0.3\n")
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Score the batch",
        "States": {
            "Score the batch": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createTransformJob.sync",
                "Arguments": {
                    "TransformJobName": "{% $states.input.name %}",
                    "ModelName": "abalone-batch",
                    "TransformInput": {
                        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "{% $states.input.uri %}"}},
                        "ContentType": "text/csv",
                        "SplitType": "Line",
                    },
                    "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/sync-out", "AssembleWith": "Line"},
                    "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                },
                "Output": {"status": "{% $states.result.TransformJobStatus %}"},
                "End": True,
            }
        },
    }
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="score", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]

    def run(name: str, uri: str) -> dict[str, Any]:
        execution = sfn.start_execution(
            stateMachineArn=machine, name=name, input=json.dumps({"name": name, "uri": uri})
        )
        arn = execution["executionArn"]
        return dict(wait_until(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d))

    succeeded = run("sync-good", good)
    assert succeeded["status"] == "SUCCEEDED", succeeded
    assert json.loads(succeeded["output"]) == {"status": "Completed"}
    assert len(lab.read("sync-out/good.csv.out").splitlines()) == 6
    failed = run("sync-bad", bad)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.TaskFailed"
    cause = json.loads(failed["cause"])
    assert cause["TransformJobStatus"] == "Failed" and cause["TransformJobName"] == "sync-bad"
    assert "row 2, column 'length': non-numeric value 'abc'" in cause["FailureReason"]
