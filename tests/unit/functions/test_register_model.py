"""The register worker (and the gate's reject function): inference-pipeline packages, once per artifacts, pending
a person's approval unless the stack auto-approves, and a rerun never changes a decision. moto, network blocked."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, ROOT, TABLE
from tests.unit.functions.test_handlers import RUN_ID, handler_module, meter, sample_event

INFERENCE = ROOT / "models/abalone/scripts/inference.py"
COLUMNS = [
    "sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight", "rings",
]  # fmt: skip
FEATURES = [*COLUMNS[1:-1], "sex_M", "sex_F", "sex_I"]
# What preprocess writes to its schema output for the abalone data
SCHEMA = {
    "label": "rings",
    "features": FEATURES,
    "rows": {"train": 2923, "validation": 626, "test": 628},
    "columns": COLUMNS,
    "categorical": {"sex": ["M", "F", "I"]},
}
SKLEARN_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def stamped(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the digest the planner would put on it (after a test changed it on purpose)."""
    from sfn_mlops.fingerprint import config_digest

    config["config_sha256"] = config_digest(config)
    return config


def staged_event(schema: dict[str, Any] | None = None, schema_dir: str = "preprocess/a1/schema/") -> dict[str, Any]:
    """The sample event, with what it points at in S3: preprocess's schema output and the pinned inference script."""
    s3 = boto3.client("s3")
    event = sample_event("RegisterModelFunction")
    config = event["inputs"]["config"]
    script = INFERENCE.read_bytes()
    s3.put_object(Bucket=BUCKET, Key=split(config["script"]["uri"])[1], Body=script)
    config["script"]["sha256"] = hashlib.sha256(script).hexdigest()
    stamped(config)
    schema_uri = config["runs_root"] + schema_dir
    event["inputs"]["data"]["schema_uri"] = schema_uri
    s3.put_object(Bucket=BUCKET, Key=split(schema_uri)[1] + "schema.json", Body=json.dumps(schema or SCHEMA).encode())
    return event


def metadata() -> Any:
    from sfn_mlops.metadata import MetadataTable

    return MetadataTable(boto3.client("dynamodb"), TABLE)


def archive(uri: str) -> dict[str, bytes]:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=split(uri)[1])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}  # type: ignore[union-attr]


def test_register_makes_an_inference_pipeline_package_once_per_artifacts(
    bucket: str, table: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a trained model and what preprocess fitted
    event = staged_event()
    app = handler_module("register_model")
    metered = meter(app, monkeypatch)
    # When register runs, and runs again (a retried unit, a rerun)
    first = app.lambda_handler(event, lambda_context)
    again = app.lambda_handler(event, lambda_context)
    # Then one package in the pipeline's group of this stack, pending a person's approval, reused by the rerun
    assert metered == ["ModelPackagesRegistered", "ModelPackagesReused"]
    assert first["model_package_group"] == "sfn-mlops-abalone" and first["model_package_version"] == 1
    assert first["approval_status"] == "PendingManualApproval" and first["reused"] is False
    assert again == {**first, "reused": True}
    sm = boto3.client("sagemaker")
    assert len(sm.list_model_packages(ModelPackageGroupName="sfn-mlops-abalone")["ModelPackageSummaryList"]) == 1
    # And the package is an inference pipeline: the fitted preprocessing in scikit-learn, then the XGBoost model
    package = sm.describe_model_package(ModelPackageName=first["model_package_arn"])
    preprocessing, model = package["InferenceSpecification"]["Containers"]
    assert preprocessing["Image"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert preprocessing["ModelDataUrl"] == first["preprocessing_data"]
    assert preprocessing["Environment"] == SKLEARN_ENV
    assert model == {
        "Image": event["inputs"]["config"]["image_uri"],
        "ModelDataUrl": event["inputs"]["model"]["model_data"],
    }
    # built under the run's prefix: preprocessing.json from the schema, and the pinned inference script
    assert first["preprocessing_data"].startswith(event["inputs"]["config"]["runs_root"] + "register/preprocessing/")
    files = archive(first["preprocessing_data"])
    assert sorted(files) == ["code", "code/inference.py", "preprocessing.json"]
    assert files["code/inference.py"] == INFERENCE.read_bytes()
    assert json.loads(files["preprocessing.json"]) == {
        "columns": COLUMNS,
        "input_columns": COLUMNS[:-1],
        "label": "rings",
        "categorical": {"sex": ["M", "F", "I"]},
        "features": FEATURES,
    }
    # once: the rerun reused the archive instead of writing it again
    key = split(first["preprocessing_data"])[1]
    assert len(boto3.client("s3").list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]) == 1
    # And run, dataset and metrics are on the package and in lineage, both ways
    assert package["CustomerMetadataProperties"]["sfn-mlops:run-id"] == RUN_ID
    assert package["CustomerMetadataProperties"]["metric:rmse"] == "2.04"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("evaluation.json")
    # And the data baseline preprocess wrote is the package's drift check baseline (Model Monitor's files)
    baseline = event["inputs"]["data"]["baseline"]
    assert package["DriftCheckBaselines"] == {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": baseline["statistics"]},
            "Constraints": {"ContentType": "application/json", "S3Uri": baseline["constraints"]},
        }
    }
    from sfn_mlops.lineage import dataset_lineage, model_lineage

    dataset = event["inputs"]["dataset"]
    by_model = model_lineage(metadata(), first["model_package_arn"])
    assert by_model["run_id"] == RUN_ID and by_model["metrics"]["rmse"] == 2.04
    assert by_model["model_package_group"] == "sfn-mlops-abalone"
    assert by_model["preprocessing_data"] == first["preprocessing_data"]
    assert [(d["uri"], d["version"]) for d in by_model["datasets"]] == [(dataset["uri"], dataset["version"])]
    assert by_model["approvals"] == []  # nobody has decided yet
    by_dataset = dataset_lineage(metadata(), dataset["uri"], version=dataset["version"])
    assert by_dataset["model_packages"] == [
        {"model_package_arn": first["model_package_arn"], "run_id": RUN_ID, "version": dataset["version"]}
    ]


def test_the_same_model_behind_other_preprocessing_is_another_package(
    bucket: str, table: str, lambda_context: Any
) -> None:
    app = handler_module("register_model")
    first = app.lambda_handler(staged_event(), lambda_context)
    # Given the same model artifact, but preprocessing fitted with other categories (another preprocess attempt)
    other = {**SCHEMA, "categorical": {"sex": ["I", "F", "M"]}, "features": [*COLUMNS[1:-1], "sex_I", "sex_F", "sex_M"]}
    second = app.lambda_handler(staged_event(other, schema_dir="preprocess/a2/schema/"), lambda_context)
    # Then it is registered as a package of its own (the artifacts are the model and the preprocessing)
    assert second["reused"] is False and second["model_package_version"] == 2
    assert second["preprocessing_data"] != first["preprocessing_data"]
    # While the same fitted preprocessing written by another attempt is the same artifact: reused
    third = app.lambda_handler(staged_event(schema_dir="preprocess/a3/schema/"), lambda_context)
    assert third["model_package_arn"] == first["model_package_arn"] and third["reused"] is True


def test_a_rerun_of_register_never_changes_a_decision_and_a_run_cannot_approve(
    bucket: str, table: str, lambda_context: Any
) -> None:
    from sfn_mlops.approvals import approve, reject

    sm = boto3.client("sagemaker")
    app = handler_module("register_model")
    from sfn_mlops.errors import InvalidEvent, RegistrationError

    # Given an executor input that asks for an approval (a hand-edited console rerun), Then it is refused
    event = staged_event()
    event["inputs"]["config"]["approval_status"] = "Approved"
    with pytest.raises(InvalidEvent, match="approval_status: Extra inputs are not permitted"):
        app.lambda_handler(event, lambda_context)
    # When register runs as planned, Then the package is pending: only a person (or the stack) approves
    event = staged_event()
    first = app.lambda_handler(event, lambda_context)
    arn = first["model_package_arn"]
    assert first["approval_status"] == "PendingManualApproval"
    # When a person approves it and register reruns, Then the approval stands, with who and why
    approve(sm, metadata(), arn, "good on holdout", "arn:aws:iam::123456789012:user/ana", datetime.now(UTC))
    assert app.lambda_handler(event, lambda_context)["approval_status"] == "Approved"
    # When a person rejects it and register reruns, Then the rejection stands
    reject(sm, metadata(), arn, "drift on new data", "arn:aws:iam::123456789012:user/bo", datetime.now(UTC))
    rerun = app.lambda_handler(event, lambda_context)
    assert (rerun["model_package_arn"], rerun["approval_status"], rerun["reused"]) == (arn, "Rejected", True)
    package = sm.describe_model_package(ModelPackageName=arn)
    assert package["CustomerMetadataProperties"]["sfn-mlops:run-id"] == RUN_ID  # lineage kept on the package
    # And a group outside this stack's is refused before anything is registered (even with the digest forged)
    event["inputs"]["config"] = stamped({**event["inputs"]["config"], "model_package_group": "someone-elses"})
    with pytest.raises(RegistrationError, match="'someone-elses' is not one of this stack's"):
        app.lambda_handler(event, lambda_context)


def test_a_stack_with_auto_approval_approves_what_passed_its_gate(
    bucket: str, table: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops.lineage import model_lineage
    from sfn_mlops.settings import get_settings

    # Given a stack deployed with auto-approval on
    monkeypatch.setenv("AUTO_APPROVE", "true")
    get_settings.cache_clear()
    app = handler_module("register_model")
    metered = meter(app, monkeypatch)
    # When register runs after the gate passed
    registered = app.lambda_handler(staged_event(), lambda_context)
    # Then the package is Approved, saying the stack approved it after its gate passed
    assert registered["approval_status"] == "Approved"
    assert metered == ["ModelPackagesRegistered", "ModelPackagesAutoApproved"]
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=registered["model_package_arn"])
    description = package["ApprovalDescription"]
    assert "auto-approved" in description and f"run {RUN_ID} passed its quality gate (rmse 2.04)" in description
    assert description.endswith("(by stack sfn-mlops (auto-approval))")
    assert package["CustomerMetadataProperties"]["sfn-mlops:run-id"] == RUN_ID
    assert "ModelDataQuality" in package["DriftCheckBaselines"]  # the approval keeps the data baseline
    # And the approval history (lineage) records it
    [approval] = model_lineage(metadata(), registered["model_package_arn"])["approvals"]
    assert approval["status"] == "Approved" and approval["previous_status"] == "PendingManualApproval"
    assert approval["by"] == "stack sfn-mlops (auto-approval)"
    # And with auto-approval off again, a rerun leaves the decision as it is
    monkeypatch.setenv("AUTO_APPROVE", "false")
    get_settings.cache_clear()
    assert app.lambda_handler(staged_event(), lambda_context)["approval_status"] == "Approved"


def test_register_finds_the_preprocess_outputs_the_run_recorded(bucket: str, table: str, lambda_context: Any) -> None:
    from sfn_mlops.metadata import serialize

    # Given an input without the preprocess outputs (the job flow passes train's and evaluate's only)
    event = staged_event()
    outputs = event["inputs"].pop("data")
    # When the run has none recorded, Then it is a named error
    from sfn_mlops.errors import InvalidUnitInput

    app = handler_module("register_model")
    with pytest.raises(InvalidUnitInput, match="register needs the preprocess unit's outputs"):
        app.lambda_handler(event, lambda_context)
    # When the run recorded its preprocess unit's outputs, Then register uses them
    client = boto3.client("dynamodb")
    client.put_item(TableName=TABLE, Item=serialize({"PK": f"RUN#{RUN_ID}", "SK": "RUN", "status": "RUNNING"}))
    unit = {"PK": f"RUN#{RUN_ID}", "SK": "UNIT#preprocess", "status": "SUCCEEDED", "outputs": json.dumps(outputs)}
    client.put_item(TableName=TABLE, Item=serialize(unit))
    registered = app.lambda_handler(event, lambda_context)
    assert json.loads(archive(registered["preprocessing_data"])["preprocessing.json"])["features"] == FEATURES
    # And the data baseline it recorded is on the package and in the model's lineage
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=registered["model_package_arn"])
    statistics = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    assert statistics == outputs["baseline"]["statistics"]
    from sfn_mlops.lineage import model_lineage

    lineage = model_lineage(metadata(), registered["model_package_arn"])
    assert lineage["units"]["preprocess"]["baseline"] == outputs["baseline"]


def test_a_run_whose_preprocess_wrote_no_baseline_registers_without_one(
    bucket: str, table: str, lambda_context: Any
) -> None:
    # Given preprocess outputs recorded before data baselines existed
    event = staged_event()
    del event["inputs"]["data"]["baseline"]
    # When register runs, Then the package has no drift check baseline, and is registered all the same
    registered = handler_module("register_model").lambda_handler(event, lambda_context)
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=registered["model_package_arn"])
    assert "DriftCheckBaselines" not in package
    # And a baseline without its constraints is a named error, with nothing registered
    from sfn_mlops.errors import InvalidUnitInput

    other = staged_event(schema_dir="preprocess/a2/schema/")
    other["inputs"]["model"]["model_data"] = other["inputs"]["model"]["model_data"].replace("a1", "a2")
    other["inputs"]["data"]["baseline"] = {"statistics": "s3://bucket/statistics.json"}
    with pytest.raises(InvalidUnitInput, match="the preprocess unit's baseline lacks 'constraints'"):
        handler_module("register_model").lambda_handler(other, lambda_context)
    assert (
        len(
            boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="sfn-mlops-abalone")[
                "ModelPackageSummaryList"
            ]
        )
        == 1
    )


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ("no schema", "RegistrationError", "cannot read the preprocess unit's schema"),
        ("old schema", "RegistrationError", "does not say what it fitted (missing or malformed 'columns')"),
        ("inconsistent schema", "RegistrationError", "is inconsistent: rings not among its columns"),
        ("changed script", "RegistrationError", "changed since the run pinned it"),
        ("bad prefix", "InvalidEvent", "register input config is malformed: runs_root"),
    ],
)
def test_register_refuses_preprocessing_it_cannot_build(
    bucket: str, table: str, lambda_context: Any, change: str, error: str, message: str
) -> None:
    event = staged_event()
    config = event["inputs"]["config"]
    s3 = boto3.client("s3")
    schema_key = split(event["inputs"]["data"]["schema_uri"])[1] + "schema.json"
    if change == "no schema":
        s3.delete_object(Bucket=BUCKET, Key=schema_key)
    elif change == "old schema":  # written by a preprocess script from before schemas said what they fitted
        s3.put_object(Bucket=BUCKET, Key=schema_key, Body=json.dumps({"label": "rings", "features": FEATURES}).encode())
    elif change == "inconsistent schema":
        s3.put_object(Bucket=BUCKET, Key=schema_key, Body=json.dumps({**SCHEMA, "columns": COLUMNS[:-1]}).encode())
    elif change == "changed script":
        s3.put_object(Bucket=BUCKET, Key=split(config["script"]["uri"])[1], Body=b"print('other')\n")
    else:
        config["runs_root"] = "runs/abalone/"
    stamped(config)
    # When register runs, Then it fails with a named error, and nothing is registered
    with pytest.raises(Exception, match=re.escape(message)) as raised:
        handler_module("register_model").lambda_handler(event, lambda_context)
    assert type(raised.value).__name__ == error
    assert boto3.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_reject_model_rejects_an_undecided_package_and_keeps_a_decision(
    bucket: str, table: str, lambda_context: Any
) -> None:
    from sfn_mlops.approvals import approve

    # Given two packages of earlier executions: one nobody decided on, one a person approved
    register = handler_module("register_model")
    pending = register.lambda_handler(staged_event(), lambda_context)["model_package_arn"]
    decided_event = staged_event()
    decided_event["inputs"]["model"]["model_data"] = decided_event["inputs"]["model"]["model_data"] + ".other"
    decided = register.lambda_handler(decided_event, lambda_context)["model_package_arn"]
    sm = boto3.client("sagemaker")
    approve(sm, metadata(), decided, "shadow test passed", "arn:aws:iam::123456789012:user/ana", datetime.now(UTC))
    reject = handler_module("reject_model")
    event = sample_event("RejectModelFunction")
    # When a rerun's gate rejects, Then the undecided package is rejected, with the reason on it
    result = reject.lambda_handler(event | {"model_package_arn": pending}, lambda_context)
    assert result == {"model_package_arn": pending, "approval_status": "Rejected", "changed": True}
    package = sm.describe_model_package(ModelPackageName=pending)
    assert "rmse 2.04 is not < 1.5" in package["ApprovalDescription"]
    assert package["CustomerMetadataProperties"]["sfn-mlops:run-id"] == RUN_ID  # lineage kept on the package
    # And the approved one keeps the decision somebody made
    kept = reject.lambda_handler(event | {"model_package_arn": decided}, lambda_context)
    assert (kept["approval_status"], kept["changed"]) == ("Approved", False)
    # And malformed input is a named error
    from sfn_mlops.errors import InvalidUnitInput

    with pytest.raises(InvalidUnitInput, match=r"reject input is malformed: (gate|model_package_arn)"):
        reject.lambda_handler({"run_id": RUN_ID}, lambda_context)


# ------------------------------------------------------------------------------ the contract a successful run pins
def contract_of(columns: list[str]) -> Any:
    from sfn_mlops.contract import DataContract

    return DataContract.model_validate({"features": [{"name": c} for c in columns], "label": {"name": "rings"}})


def record_attempt_contract(schema_uri: str, contract: Any, inferred: bool, run_id: str = RUN_ID) -> None:
    """What the validate step leaves beside a preprocess attempt's outputs."""
    from sfn_mlops.contract import record_validated

    attempt_prefix = split(schema_uri)[1].removesuffix("schema/")
    record_validated(boto3.client("s3"), BUCKET, attempt_prefix, contract, inferred, run_id)


def pinned() -> dict[str, Any] | None:
    from sfn_mlops.contract import read_pinned

    return read_pinned(boto3.client("s3"), BUCKET, "abalone")


def test_register_pins_the_contract_inferred_from_the_runs_data_once(
    bucket: str, table: str, lambda_context: Any
) -> None:
    # Given a run whose preprocess attempt validated its data against a contract inferred from it
    event = staged_event()
    inferred = contract_of(["length", "diameter"])
    record_attempt_contract(event["inputs"]["data"]["schema_uri"], inferred, inferred=True)
    assert pinned() is None  # validation pinned nothing
    app = handler_module("register_model")
    # When register runs (the gate accepted the model: the run succeeds), and runs again
    app.lambda_handler(event, lambda_context)
    app.lambda_handler(event, lambda_context)
    # Then that contract is the pipeline's, pinned by this run, written once
    document = pinned()
    assert document is not None and document["source"] == "inferred" and document["run_id"] == RUN_ID
    assert document["contract"] == inferred.model_dump(mode="json")
    versions = boto3.client("s3").list_object_versions(Bucket=BUCKET, Prefix="pipelines/abalone/contract.json")
    assert len(versions["Versions"]) == 1


def test_register_keeps_a_pinned_contract_and_pins_nothing_the_plan_gave(
    bucket: str, table: str, lambda_context: Any
) -> None:
    from sfn_mlops.contract import replace_contract

    app = handler_module("register_model")
    # Given the plan gave the contract (declared or pinned): nothing is pinned by the run
    given = staged_event()
    record_attempt_contract(given["inputs"]["data"]["schema_uri"], contract_of(["length"]), inferred=False)
    app.lambda_handler(given, lambda_context)
    assert pinned() is None
    # Given a person's contract pinned while another run, inferring its own, was under way
    mine = contract_of(["length", "height"])
    replace_contract(boto3.client("s3"), BUCKET, "abalone", mine, source="user")
    racing = staged_event(schema_dir="preprocess/a2/schema/")
    record_attempt_contract(racing["inputs"]["data"]["schema_uri"], contract_of(["length", "id"]), inferred=True)
    # When that run registers, Then the person's contract stays
    app.lambda_handler(racing, lambda_context)
    document = pinned()
    assert (
        document is not None and document["source"] == "user" and document["contract"] == mine.model_dump(mode="json")
    )


def test_register_pins_what_a_cached_preprocess_attempt_of_the_pipeline_inferred_and_nothing_from_elsewhere(
    bucket: str, table: str, lambda_context: Any
) -> None:
    app = handler_module("register_model")
    inferred = contract_of(["length", "diameter"])
    # Given preprocess outputs reused from another pipeline's run (hand-edited input): nothing is pinned
    foreign = staged_event()
    schema_uri = foreign["inputs"]["data"]["schema_uri"].replace("/runs/abalone/", "/runs/churn/")
    foreign["inputs"]["data"]["schema_uri"] = schema_uri
    boto3.client("s3").put_object(Bucket=BUCKET, Key=split(schema_uri)[1] + "schema.json", Body=json.dumps(SCHEMA))
    record_attempt_contract(schema_uri, inferred, inferred=True)
    app.lambda_handler(foreign, lambda_context)
    assert pinned() is None
    # Given preprocess outputs reused from the cache of an earlier run of the same pipeline, which inferred it
    earlier = "abalone-20261122t090000-0badcafe"
    cached = staged_event(schema_dir="preprocess/a2/schema/")
    schema_uri = cached["inputs"]["data"]["schema_uri"].replace(RUN_ID, earlier)
    cached["inputs"]["data"]["schema_uri"] = schema_uri
    boto3.client("s3").put_object(Bucket=BUCKET, Key=split(schema_uri)[1] + "schema.json", Body=json.dumps(SCHEMA))
    record_attempt_contract(schema_uri, inferred, inferred=True, run_id=earlier)
    # When this run registers, Then it pins what that attempt inferred
    app.lambda_handler(cached, lambda_context)
    document = pinned()
    assert document is not None and document["run_id"] == RUN_ID
    assert document["contract"] == inferred.model_dump(mode="json")


def test_a_corrupt_recorded_contract_fails_register_before_any_package(
    bucket: str, table: str, lambda_context: Any
) -> None:
    from sfn_mlops.errors import RegistrationError

    # Given the attempt's recorded contract is not a contract
    event = staged_event()
    key = split(event["inputs"]["data"]["schema_uri"])[1].removesuffix("schema/") + "contract.json"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b'{"contract": {"features": []}}')
    # When register runs, Then one named error, nothing registered and nothing pinned
    with pytest.raises(RegistrationError, match=r"contract\.json is not a valid data contract.*nothing registered"):
        handler_module("register_model").lambda_handler(event, lambda_context)
    assert boto3.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert pinned() is None


def test_the_contract_the_validate_step_inferred_is_the_one_register_pins(
    bucket: str, table: str, lambda_context: Any
) -> None:
    from sfn_mlops.datasets import validate_and_snapshot

    from tests.unit.functions.test_handlers import sample_event

    # Given the run's dataset validated with no contract planned (inferred from it, recorded, not pinned)
    s3 = boto3.client("s3")
    rows = (ROOT / "models/abalone/data/abalone.csv").read_text().splitlines()[:40]
    version = s3.put_object(Bucket=BUCKET, Key="data/abalone/new.csv", Body="\n".join(rows).encode())["VersionId"]
    check = sample_event("ValidateDatasetFunction")
    check["inputs"]["dataset"] = {"bucket": BUCKET, "key": "data/abalone/new.csv", "version_id": version}
    stamped(check["inputs"]["config"])
    validated = validate_and_snapshot(s3, check)
    assert validated["contract_inferred"] and pinned() is None
    # When the same attempt's model registers (the gate accepted it)
    handler_module("register_model").lambda_handler(staged_event(schema_dir="preprocess/a1/schema/"), lambda_context)
    # Then the pipeline's contract is the one its data was checked against
    document = pinned()
    assert document is not None and document["contract"] == validated["contract"]
