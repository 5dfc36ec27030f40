"""Every Lambda handler, called as Lambda would with its sample event, against moto (network blocked)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, ROOT, TABLE

RUN_ID = "abalone-20261123t101500-1a2b3c4d"


def handler_module(name: str) -> ModuleType:
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"test_fn_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_event(logical_id: str) -> dict[str, Any]:
    """The events/ sample, pointed at the test bucket (the samples name an example deployed bucket); a worker's
    config stamped with its digest for that bucket, as the planner stamps it."""
    from sfn_mlops.fingerprint import config_digest

    text = (ROOT / "events" / f"{logical_id}.json").read_text()
    event = json.loads(text.replace("sfn-mlops-dev-artifactbucket-example", BUCKET))
    config = (event.get("inputs") or {}).get("config") if isinstance(event.get("inputs"), dict) else None
    if isinstance(config, dict):
        config["config_sha256"] = config_digest(config)
    return event


def meter(app: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the metrics the handler module adds, in order."""
    metered: list[str] = []
    original = app.metrics.add_metric
    monkeypatch.setattr(app.metrics, "add_metric", lambda **kw: metered.append(kw["name"]) or original(**kw))
    return metered


@pytest.fixture
def dataset(published: str) -> dict[str, Any]:
    response = boto3.client("s3").put_object(
        Bucket=BUCKET,
        Key="data/abalone/abalone.csv",
        Body=(ROOT / "models/abalone/data/abalone.csv").read_bytes(),
        ChecksumAlgorithm="SHA256",
    )
    return {"bucket": BUCKET, "key": "data/abalone/abalone.csv", "version_id": response["VersionId"]}


@pytest.fixture
def flow(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A training flow the trigger can start (a single Pass state), named in the functions' settings."""
    from sfn_mlops.settings import get_settings

    arn: str = boto3.client("stepfunctions").create_state_machine(
        name="test-flow",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    monkeypatch.setenv("TRAINING_FLOW_ARN", arn)
    get_settings.cache_clear()
    return arn


def test_trigger_starts_the_training_flow_once_per_object_version(
    dataset: dict[str, Any], table: str, flow: str, lambda_context: Any
) -> None:
    sfn = boto3.client("stepfunctions")
    event = sample_event("TriggerFunction")
    event["detail"]["object"]["version-id"] = dataset["version_id"]
    app = handler_module("trigger")
    first = app.lambda_handler(event, lambda_context)
    second = app.lambda_handler(event, lambda_context)  # EventBridge delivers at least once
    assert first["started"] is True and first["run_id"].startswith("abalone-20261123t101500-")
    assert second["run_id"] == first["run_id"] and second["duplicate"] is True and second["started"] is False
    assert "duplicate delivery of s3://" in second["reason"]
    executions = sfn.list_executions(stateMachineArn=flow)["executions"]
    assert [e["name"] for e in executions] == [first["run_id"]]
    started = json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])
    assert started["dataset"] == dataset


def test_trigger_rejects_an_unknown_pipeline_with_a_log_and_a_metric(
    published: str, table: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # A service name of its own: Powertools loggers of one service share a handler bound to the first stdout.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "trigger-rejection-test")
    event = sample_event("TriggerFunction")
    event["detail"]["object"]["key"] = "data/ghost/file.csv"
    app = handler_module("trigger")
    metered = meter(app, monkeypatch)
    result = app.lambda_handler(event, lambda_context)
    assert result["started"] is False
    assert "unknown pipeline 'ghost'" in result["reason"]
    assert '"trigger rejected"' in capsys.readouterr().out
    assert metered == ["RejectedTriggers"]


def test_plan_run_pins_dataset_and_code_and_records_the_run(
    dataset: dict[str, Any], table: str, lambda_context: Any
) -> None:
    event = sample_event("PlanRunFunction")
    event["run"]["dataset"] = dataset
    plan = handler_module("plan_run").lambda_handler(event, lambda_context)
    assert plan["dataset"]["version_id"] == dataset["version_id"] and plan["dataset"]["size"] == 191962
    assert plan["order"] == ["preprocess", "train", "evaluate", "register"]
    assert plan["units"]["train"]["hyperparameters"]["num_round"] == "50"
    assert plan["units"]["train"]["image_uri"].endswith("/sagemaker-xgboost:1.7-1")
    assert (
        plan["units"]["preprocess"]["script"]["uri"]
        == f"s3://{BUCKET}/runs/abalone/{RUN_ID}/code/scripts/preprocess.py"
    )
    assert plan["run_attempt"] == 1
    # register: an inference pipeline in the pipeline's own group of this stack, its inference script pinned
    register = plan["units"]["register"]
    assert register["model_package_group"] == "sfn-mlops-abalone"
    assert register["script"]["uri"] == f"s3://{BUCKET}/runs/abalone/{RUN_ID}/code/scripts/inference.py"
    assert register["preprocessing_image_uri"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert register["image_uri"].endswith("/sagemaker-xgboost:1.7-1")
    assert "approval_status" not in register  # the worker's stack decides, never the run
    # The sample event is a rerun --from evaluate with the gate threshold overridden
    assert {u: c["policy"] for u, c in plan["control"].items()} == {
        "preprocess": "resume",
        "train": "resume",
        "evaluate": "force",
        "register": "force",
    }
    assert plan["gate"]["threshold"] == 2.5 and plan["overrides"] == {"gate.threshold": 2.5}
    assert plan["control"]["preprocess"]["cache"] == {"enabled": True, "max_age_s": 720 * 3600}
    assert plan["control"]["train"]["lease_s"] == 3600 + 900
    # The dataset's content (its SHA-256 checksum from the upload) is part of its identity
    assert plan["dataset"]["content"].startswith("sha256:")
    from sfn_mlops.metadata import MetadataTable

    run = MetadataTable(boto3.client("dynamodb"), TABLE).get_run(RUN_ID)
    assert run is not None and run["status"] == "RUNNING" and run["pipeline"] == "abalone"
    # Planning the same run again (a rerun) keeps the run and counts the attempt
    assert handler_module("plan_run").lambda_handler(event, lambda_context)["run_attempt"] == 2


def test_an_override_keeps_its_type_across_reruns(dataset: dict[str, Any], table: str, lambda_context: Any) -> None:
    # Given a rerun that set a float hyperparameter whose value is a whole number
    event = sample_event("PlanRunFunction")
    event["run"]["dataset"] = dataset
    event["run"]["rerun"] = {"overrides": {"train.hyperparameters.subsample": 1.0}}
    app = handler_module("plan_run")
    first = app.lambda_handler(event, lambda_context)
    # When the run is resumed plainly (the override comes back from the table)
    event["run"]["rerun"] = {}
    again = app.lambda_handler(event, lambda_context)
    # Then the hyperparameter is still "1.0" and train's fingerprint did not change: nothing reruns for it
    assert again["overrides"] == {"train.hyperparameters.subsample": 1.0}
    assert again["units"]["train"]["hyperparameters"]["subsample"] == "1.0"
    assert again["control"]["train"]["fingerprint"] == first["control"]["train"]["fingerprint"]


def test_scripts_with_one_file_name_in_two_folders_stay_two_scripts(
    dataset: dict[str, Any], table: str, lambda_context: Any
) -> None:
    # Given a pipeline whose preprocess and evaluate scripts are both called main.py
    s3 = boto3.client("s3")
    config = json.loads((ROOT / "models/abalone/pipeline.json").read_text())
    config["preprocess"]["script"], config["evaluate"]["script"] = "prep/main.py", "eval/main.py"
    s3.put_object(Bucket=BUCKET, Key="pipelines/abalone/pipeline.json", Body=json.dumps(config).encode())
    s3.put_object(Bucket=BUCKET, Key="pipelines/abalone/prep/main.py", Body=b"print('preprocess')\n")
    s3.put_object(Bucket=BUCKET, Key="pipelines/abalone/eval/main.py", Body=b"print('evaluate')\n")
    event = sample_event("PlanRunFunction")
    event["run"]["dataset"] = dataset
    # When the run is planned
    plan = handler_module("plan_run").lambda_handler(event, lambda_context)
    # Then each unit runs its own script, pinned under its own path
    pre, ev = plan["units"]["preprocess"]["script"], plan["units"]["evaluate"]["script"]
    assert pre["uri"].endswith("/code/prep/main.py") and ev["uri"].endswith("/code/eval/main.py")
    assert pre["sha256"] != ev["sha256"]


def test_plan_run_fails_readably_for_an_unpublished_pipeline(bucket: str, table: str, lambda_context: Any) -> None:
    from sfn_mlops.errors import PipelineNotFound

    event = sample_event("PlanRunFunction")
    event["run"] |= {"pipeline": "churn", "run_id": "churn-20261123t101500-1a2b3c4d"}
    with pytest.raises(PipelineNotFound, match="pipeline 'churn' is not published"):
        handler_module("plan_run").lambda_handler(event, lambda_context)


def test_validate_dataset_snapshots_the_pinned_version(dataset: dict[str, Any], lambda_context: Any) -> None:
    event = sample_event("ValidateDatasetFunction")
    event["inputs"]["dataset"].update(dataset)
    # The data changes after the run was planned: the run still reads the version it pinned
    boto3.client("s3").put_object(Bucket=BUCKET, Key=dataset["key"], Body=b"sex,rings\nM,1\n")
    result = handler_module("validate_dataset").lambda_handler(event, lambda_context)
    snapshot_key = result["dataset_snapshot"].split(f"s3://{BUCKET}/", 1)[1]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=snapshot_key)["Body"].read()
    assert body == (ROOT / "models/abalone/data/abalone.csv").read_bytes()
    assert "rings" in result["columns"]


def test_prepare_job_builds_a_unique_training_job_request(aws: None, lambda_context: Any) -> None:
    result = handler_module("prepare_job").lambda_handler(sample_event("PrepareJobFunction"), lambda_context)
    assert result["adopted"] is None  # no job exists under the name yet
    request = result["request"]
    assert result["job_name"] == f"{RUN_ID}-train-a1" and len(result["job_name"]) <= 63
    assert request["TrainingJobName"] == result["job_name"]
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("sagemaker-xgboost:1.7-1")
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    assert result["outputs"]["model_data"].endswith(f"{RUN_ID}-train-a1/output/model.tar.gz")
    event = sample_event("PrepareJobFunction") | {"attempt": 2}
    assert handler_module("prepare_job").lambda_handler(event, lambda_context)["job_name"].endswith("-a2")


def test_read_metrics_returns_the_gate_value(bucket: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    event = sample_event("ReadMetricsFunction")
    key = event["evaluation_uri"].split(f"s3://{BUCKET}/", 1)[1]
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=json.dumps({"metrics": {"rmse": 2.5, "mae": 1.5}}).encode()
    )
    app = handler_module("read_metrics")
    metered = meter(app, monkeypatch)
    result = app.lambda_handler(event, lambda_context)
    assert result["gate"] == {"metric": "rmse", "threshold": 3.1, "direction": "minimize", "value": 2.5}
    assert result["metrics"] == {"rmse": 2.5, "mae": 1.5}
    assert metered == ["QualityGateValue"]  # model quality over time, by gate metric


def test_register_model_rejects_malformed_input(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import InvalidUnitInput

    with pytest.raises(InvalidUnitInput, match="register input is malformed: attempt: Field required"):
        handler_module("register_model").lambda_handler(
            {"run_id": RUN_ID, "pipeline": "abalone", "inputs": {}}, lambda_context
        )


def test_handlers_create_no_client_at_import() -> None:
    from sfn_mlops import aws

    aws.reset_clients()
    for name in ("trigger", "plan_run", "validate_dataset", "prepare_job", "read_metrics", "register_model"):
        handler_module(name)
    assert aws.client.cache_info().currsize == 0


def test_every_function_folder_has_a_handler() -> None:
    assert sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")) == sorted(
        [
            "trigger",
            "plan_run",
            "validate_dataset",
            "prepare_job",
            "read_metrics",
            "register_model",
            "reject_model",
            "lookup_cache",
            "release_lock",
            "plan_deployment",
            "smoke_test",
            "record_deployment",
            "write_baseline",
            "plan_batch",
            "check_input",
            "prepare_transform",
            "record_batch",
        ]
    )
    assert all((p.parent / "__init__.py").exists() for p in Path(ROOT / "functions").glob("*/app.py"))


def test_lookup_cache_finds_a_fresh_success_of_another_run_only(table: str, lambda_context: Any) -> None:
    # Given a success of preprocess in another run, indexed by its fingerprint
    event = sample_event("LookupCacheFunction")
    fingerprint_key = f"FP#{event['pipeline']}#{event['unit']}#{event['fingerprint']}"
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "PK": {"S": "RUN#abalone-20251231t000000-00000000"},
            "SK": {"S": "UNIT#preprocess"},
            "run_id": {"S": "abalone-20251231t000000-00000000"},
            "status": {"S": "SUCCEEDED"},
            "attempt": {"N": "2"},
            "outputs": {"S": '{"train": "s3://b/train/"}'},
            "GSI1PK": {"S": fingerprint_key},
            "GSI1SK": {"S": "2099-01-01T00:00:00.000000Z"},
        },
    )
    # When the cache is looked up, Then it is a hit naming where the outputs came from
    hit = handler_module("lookup_cache").lambda_handler(event, lambda_context)
    assert hit["hit"] and hit["outputs"] == {"train": "s3://b/train/"}
    assert hit["source"]["run_id"] == "abalone-20251231t000000-00000000" and hit["source"]["attempt"] == 2
    # And another fingerprint is a miss
    miss = handler_module("lookup_cache").lambda_handler(event | {"fingerprint": "0" * 64}, lambda_context)
    assert miss == {"hit": False}


def test_lookup_cache_ignores_successes_older_than_the_expiry(table: str, lambda_context: Any) -> None:
    event = sample_event("LookupCacheFunction")
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "PK": {"S": "RUN#abalone-20000101t000000-00000000"},
            "SK": {"S": "UNIT#preprocess"},
            "run_id": {"S": "abalone-20000101t000000-00000000"},
            "status": {"S": "SUCCEEDED"},
            "outputs": {"S": "{}"},
            "GSI1PK": {"S": f"FP#{event['pipeline']}#{event['unit']}#{event['fingerprint']}"},
            "GSI1SK": {"S": "2000-01-01T00:00:00.000000Z"},
        },
    )
    assert handler_module("lookup_cache").lambda_handler(event, lambda_context) == {"hit": False}


def test_release_lock_keeps_a_live_holders_lock_and_frees_a_dead_one(table: str, lambda_context: Any) -> None:
    from datetime import UTC, datetime

    event = sample_event("ReleaseLockFunction")
    key = {"PK": {"S": f"RUN#{event['run_id']}"}, "SK": {"S": f"UNIT#{event['unit']}"}}
    ddb = boto3.client("dynamodb")
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="holder",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    holder = sfn.start_execution(stateMachineArn=machine, name="holder-1")["executionArn"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item = {**key, "status": {"S": "RUNNING"}, "attempt": {"N": "1"}, "executor_execution_arn": {"S": holder}}
    # Given a live holder within its lease, Then the lock stays and the reason names the holder
    ddb.put_item(TableName=TABLE, Item=item | {"started_at": {"S": now}, "lease_s": {"N": "3600"}})
    kept = handler_module("release_lock").lambda_handler(event, lambda_context)
    assert kept["released"] is False and holder in kept["reason"]
    # Given the same holder past its lease, Then the lock is released and the attempt marked ABANDONED
    ddb.put_item(TableName=TABLE, Item=item | {"started_at": {"S": "2020-01-01T00:00:00Z"}, "lease_s": {"N": "60"}})
    released = handler_module("release_lock").lambda_handler(event, lambda_context)
    assert released["released"] is True and "lease" in released["reason"]
    record = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    assert record["status"]["S"] == "ABANDONED" and record["error"]["S"] == "LockExpired"
    # Given a holder Step Functions no longer knows, Then the lock is released at once
    gone = "arn:aws:states:us-east-1:123456789012:execution:holder:gone"
    ddb.put_item(TableName=TABLE, Item=item | {"executor_execution_arn": {"S": gone}, "started_at": {"S": now}})
    assert handler_module("release_lock").lambda_handler(event, lambda_context)["released"] is True


def test_trigger_releases_its_dedup_record_when_the_flow_cannot_start(
    dataset: dict[str, Any], table: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the training flow does not exist (StartExecution fails)
    monkeypatch.setenv("TRAINING_FLOW_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:missing")
    from sfn_mlops.settings import get_settings

    get_settings.cache_clear()
    event = sample_event("TriggerFunction")
    event["detail"]["object"]["version-id"] = dataset["version_id"]
    # When the trigger handles the upload, Then it fails (so EventBridge retries) and keeps no dedup record
    with pytest.raises(Exception, match=r"StateMachineDoesNotExist|does not exist"):
        handler_module("trigger").lambda_handler(event, lambda_context)
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert not [i for i in items if i["PK"]["S"].startswith("TRIGGER#")]


def test_a_delivery_takes_over_a_claim_whose_run_never_started(
    dataset: dict[str, Any], table: str, flow: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops.aws import client

    # Given a delivery that claimed the upload and then died before starting its run (a Lambda timeout:
    # not an exception the code sees, so nothing releases the claim)
    event = sample_event("TriggerFunction")
    event["detail"]["object"]["version-id"] = dataset["version_id"]
    app = handler_module("trigger")
    with monkeypatch.context() as patched:
        patched.setattr(client("stepfunctions"), "start_execution", lambda **_: sys.exit("Task timed out"))
        with pytest.raises(SystemExit):
            app.lambda_handler(event, lambda_context)
    # When the upload is delivered again (Lambda's retry), Then the run starts, once
    retried = app.lambda_handler(event, lambda_context)
    assert retried["started"] is True and "did not start it" in retried["reason"]
    again = app.lambda_handler(event, lambda_context)
    assert again["duplicate"] is True and again["run_id"] == retried["run_id"]
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=flow)["executions"]
    assert [e["name"] for e in executions] == [retried["run_id"]]


def test_scheduled_retrain_dedups_on_the_scheduled_time(
    dataset: dict[str, Any], table: str, flow: str, lambda_context: Any
) -> None:
    app = handler_module("trigger")
    # When the scheduler delivers one scheduled invocation twice, Then one run starts
    first = app.lambda_handler(sample_event("TriggerFunctionSchedule"), lambda_context)
    again = app.lambda_handler(sample_event("TriggerFunctionSchedule"), lambda_context)
    assert first["started"] and again["duplicate"] and again["run_id"] == first["run_id"]
    # And the next scheduled time is a new run
    later = app.lambda_handler(
        sample_event("TriggerFunctionSchedule") | {"time": "2026-11-30T10:15:00Z"}, lambda_context
    )
    assert later["started"] and later["run_id"] != first["run_id"]
    assert len(boto3.client("stepfunctions").list_executions(stateMachineArn=flow)["executions"]) == 2


def test_record_deployment_records_what_serves_the_endpoint_from_its_sample_event(
    table: str, lambda_context: Any
) -> None:
    from sfn_mlops.metadata import MetadataTable

    # Given the deployment flow's last step's input (a successful canary update)
    event = sample_event("RecordDeploymentFunction")
    app = handler_module("record_deployment")
    # When the function records it
    summary = app.lambda_handler(event, lambda_context)
    # Then the deployment reads SUCCEEDED with its traffic steps, and the endpoint names the new package
    assert summary["status"] == "SUCCEEDED" and summary["strategy"] == "CANARY"
    assert summary["traffic_steps"][0]["new_fleet_weight"] == 0.1
    endpoint = MetadataTable(boto3.client("dynamodb"), TABLE).get_endpoint(event["plan"]["endpoint_name"])
    assert endpoint["model_package_arn"] == event["plan"]["model_package_arn"]
    assert endpoint["stage"] == "staging"


def test_the_trigger_deploys_an_approved_package_from_its_sample_event(
    published: str, table: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops.settings import get_settings

    flow = boto3.client("stepfunctions").create_state_machine(
        name="test-deployment-flow",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOYMENT_FLOW_ARN", flow)
    monkeypatch.setenv("RESOURCE_PREFIX", "sfn-mlops-dev")
    get_settings.cache_clear()
    decision = handler_module("trigger").lambda_handler(sample_event("TriggerFunctionApproval"), lambda_context)
    assert decision["started"] is True and decision["pipeline"] == "abalone"
    started = boto3.client("stepfunctions").list_executions(stateMachineArn=flow)["executions"]
    assert [e["name"] for e in started] == [decision["run_id"]]
