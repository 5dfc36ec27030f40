"""Register a trained model in the SageMaker Model Registry as an inference pipeline that takes raw rows.

A package has two containers: the scikit-learn image running the pipeline's inference script on the
fitted preprocessing (``preprocessing.json``, from what the preprocess unit fitted), then the model's
XGBoost image. Metrics and lineage are attached. The package is registered pending a person's approval,
unless the stack is deployed with auto-approval on; a rerun never changes an existing package's approval.

Register runs only when the quality gate accepted the model: a run that gets here succeeds, so it is here that a
contract inferred from the run's data is pinned as the pipeline's (when none was declared or pinned before).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import tarfile
from typing import Any

from sfn_mlops.contract import DataContract, pin_contract, read_validated
from sfn_mlops.errors import (
    InvalidDataContract,
    InvalidPipelineConfig,
    InvalidUnitInput,
    NonFiniteNumber,
    RegistrationError,
)
from sfn_mlops.events import RegisterEvent, RejectEvent, parse_event
from sfn_mlops.metadata import MetadataTable, artifact_pk, dataset_pk, model_dataset_sk, now_iso, serialize
from sfn_mlops.s3uri import s3_uri, split_s3_uri
from sfn_mlops.settings import Settings

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
# The preprocessing model.tar.gz: SageMaker extracts it to /opt/ml/model; the scikit-learn container runs
# SAGEMAKER_PROGRAM from SAGEMAKER_SUBMIT_DIRECTORY, whose model_fn reads the preprocessing file.
PREPROCESSING_FILE = "preprocessing.json"
INFERENCE_PROGRAM = "inference.py"
CODE_DIR = "code"
PREPROCESSING_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
    "SAGEMAKER_SUBMIT_DIRECTORY": f"/opt/ml/model/{CODE_DIR}",
}
SCHEMA_FILE = "schema.json"
# SageMaker's ModelPackageGroupName pattern.
GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_APPROVAL_DESCRIPTION = 1000


def model_package_group(resource_prefix: str, pipeline: str) -> str:
    """A pipeline's packages go to the stack's own group for it: bound to the pipeline, not configurable."""
    name = f"{resource_prefix}-{pipeline}"
    if not GROUP_NAME.match(name):
        raise InvalidPipelineConfig(
            f"model package group {name!r} (resource prefix {resource_prefix!r} + pipeline) is not a valid "
            "SageMaker name: up to 63 letters, digits and '-'"
        )
    return name


def approval_description(reason: str, identity: str) -> str:
    """``REASON (by IDENTITY)`` within SageMaker's 1000 characters: a long reason is cut, the identity kept."""
    suffix = f" (by {identity})"
    room = MAX_APPROVAL_DESCRIPTION - len(suffix)
    text = reason if len(reason) <= room else reason[: max(room - 3, 0)] + "..."
    return (text + suffix)[:MAX_APPROVAL_DESCRIPTION]


def ensure_group(sm: Any, group: str, pipeline: str) -> None:
    """Pipelines are folders: the first registration of a pipeline creates its group."""
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except sm.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
            raise
        sm.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"Models trained by the sfn-mlops pipeline '{pipeline}'",
            Tags=[{"Key": "sfn-mlops:pipeline", "Value": pipeline}],
        )


def customer_metadata(run_id: str, pipeline: str, dataset: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    """Run and dataset identity on the package itself, so the link shows in SageMaker Studio too."""
    properties = {
        "sfn-mlops:run-id": run_id,
        "sfn-mlops:pipeline": pipeline,
        "sfn-mlops:dataset-uri": dataset["uri"],
        "sfn-mlops:dataset-version": str(dataset.get("version") or ""),
        "sfn-mlops:dataset-etag": str(dataset.get("etag") or ""),
    }
    properties.update({f"metric:{name}": f"{value:.6g}" for name, value in metrics.items()})
    return {k: v[:256] for k, v in properties.items()}


# ------------------------------------------------------------------------------------ the preprocessing model
def preprocessing_document(schema: dict[str, Any], source: str) -> dict[str, Any]:
    """``preprocessing.json``: what the preprocess unit fitted, from its schema output.

    The raw columns in file order (``columns``; ``input_columns`` without the label: what an endpoint takes),
    the label, each categorical column's categories in one-hot order, and the encoded feature order."""
    try:
        columns = [str(c) for c in schema["columns"]]
        label = str(schema["label"])
        categorical = {str(k): [str(v) for v in values] for k, values in schema["categorical"].items()}
        features = [str(f) for f in schema["features"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise RegistrationError(
            f"the preprocess unit's schema {source} does not say what it fitted (missing or malformed {exc}): "
            "rerun from preprocess with a preprocess script that records columns, label, categorical and features"
        ) from exc
    missing = [c for c in [label, *categorical] if c not in columns]
    if missing or not features:
        raise RegistrationError(
            f"the preprocess unit's schema {source} is inconsistent: {', '.join(missing) or 'no features'} "
            f"not among its columns {columns}"
        )
    return {
        "columns": columns,
        "input_columns": [c for c in columns if c != label],
        "label": label,
        "categorical": categorical,
        "features": features,
    }


def preprocessing_digest(document: dict[str, Any], script_sha256: str) -> str:
    """What the preprocessing model is (its document and script), whatever the bytes of its archive."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{canonical}|{script_sha256}".encode()).hexdigest()


def preprocessing_archive(document: dict[str, Any], script: bytes) -> bytes:
    """``model.tar.gz`` with ``preprocessing.json`` and ``code/inference.py``; the same content gives the same
    bytes (fixed times, owners and modes)."""

    def add(tar: tarfile.TarFile, name: str, body: bytes | None) -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        if body is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        else:
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))

    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        add(tar, PREPROCESSING_FILE, (json.dumps(document, indent=2) + "\n").encode())
        add(tar, CODE_DIR, None)
        add(tar, f"{CODE_DIR}/{INFERENCE_PROGRAM}", script)
    return buffer.getvalue()


def _split(uri: str, what: str) -> tuple[str, str]:
    try:
        return split_s3_uri(uri)
    except ValueError as exc:
        raise InvalidUnitInput(f"register input: {what} is not an S3 URI: {uri!r}") from exc


def _read(s3: Any, uri: str, what: str) -> bytes:
    bucket, key = _split(uri, what)
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as exc:
        raise RegistrationError(f"cannot read {what} {uri}: {exc}") from exc
    return body


def _preprocess_outputs(table: MetadataTable, run_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The preprocess unit's outputs: given with the unit's input, else as the run recorded them."""
    data = inputs.get("data")
    if isinstance(data, dict) and data.get("schema_uri"):
        return data
    run = table.get_run(run_id) or {"units": {}}
    recorded = (run["units"].get("preprocess") or {}).get("outputs")
    if isinstance(recorded, dict) and recorded.get("schema_uri"):
        return recorded
    raise InvalidUnitInput(
        f"register needs the preprocess unit's outputs (schema_uri): none given and run {run_id} has none recorded"
    )


def stage_preprocessing(s3: Any, schema_prefix: str, script: dict[str, str], runs_root: str) -> dict[str, str]:
    """The preprocessing model.tar.gz under the run's prefix (``runs_root``), from the preprocess unit's schema
    output and the pinned inference script: built once per content, so a rerun reuses it."""
    schema_uri = schema_prefix if schema_prefix.endswith(".json") else schema_prefix.rstrip("/") + f"/{SCHEMA_FILE}"
    try:
        schema = json.loads(_read(s3, schema_uri, "the preprocess unit's schema"))
    except json.JSONDecodeError as exc:
        raise RegistrationError(f"the preprocess unit's schema {schema_uri} is not JSON: {exc}") from exc
    document = preprocessing_document(schema if isinstance(schema, dict) else {}, schema_uri)
    code = _read(s3, script["uri"], "the inference script")
    if hashlib.sha256(code).hexdigest() != script["sha256"]:
        raise RegistrationError(f"the inference script {script['uri']} changed since the run pinned it")
    digest = preprocessing_digest(document, script["sha256"])
    bucket, root = _split(runs_root, "the run's prefix (runs_root)")
    key = f"{root}register/preprocessing/{digest[:16]}/model.tar.gz"
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey", "NotFound"}:
            raise
        s3.put_object(Bucket=bucket, Key=key, Body=preprocessing_archive(document, code))
    return {"uri": s3_uri(bucket, key), "digest": digest}


def drift_check_baselines(baseline: Any) -> dict[str, Any]:
    """``DriftCheckBaselines`` for CreateModelPackage from the preprocess unit's data baseline (Model Monitor's
    statistics.json and constraints.json), or nothing for a run whose preprocess unit wrote none (recorded before
    baselines existed)."""
    if baseline is None:
        return {}
    try:
        statistics, constraints = str(baseline["statistics"]), str(baseline["constraints"])
    except (KeyError, TypeError) as exc:
        raise InvalidUnitInput(f"register input: the preprocess unit's baseline lacks {exc}: {baseline!r}") from exc
    for uri in (statistics, constraints):
        _split(uri, "the data baseline")
    quality = {
        "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
        "Constraints": {"ContentType": "application/json", "S3Uri": constraints},
    }
    return {"DriftCheckBaselines": {"ModelDataQuality": quality}}


# ------------------------------------------------------------------------------------------ the data contract
def inferred_contract(s3: Any, runs_root: str, run_id: str, preprocess: dict[str, Any]) -> DataContract | None:
    """The contract inferred from the data of the preprocess attempt whose outputs the model was trained on (this
    run's, or a run's of the same pipeline whose outputs were reused from the cache), or None: the plan gave one
    (declared or pinned), or the attempt predates recording it. Read before any package is created."""
    schema_uri = str(preprocess.get("schema_uri") or "")
    if not schema_uri.endswith("/schema/"):
        return None
    bucket, attempt_prefix = _split(schema_uri.removesuffix("schema/"), "the preprocess unit's schema")
    runs_bucket, root_key = _split(runs_root, "the run's prefix (runs_root)")
    pipeline_runs = root_key.removesuffix(f"{run_id}/")
    # Only a run of this pipeline's data may become its contract.
    if bucket != runs_bucket or not attempt_prefix.startswith(pipeline_runs) or ".." in attempt_prefix:
        return None
    try:
        recorded = read_validated(s3, bucket, attempt_prefix)
    except InvalidDataContract as exc:
        raise RegistrationError(
            f"{exc}: nothing registered; rerun from preprocess to validate the data again"
        ) from None
    if recorded is None or recorded.get("source") != "inferred":
        return None
    contract: DataContract = recorded["contract"]
    return contract


def pin_inferred(s3: Any, bucket: str, pipeline: str, run_id: str, contract: DataContract | None) -> None:
    """The run succeeded: its inferred contract becomes the pipeline's, unless one is pinned already (it stays)."""
    if contract is not None:
        pin_contract(s3, bucket, pipeline, contract, run_id)


# ---------------------------------------------------------------------------------------------- registration
def parse_register_event(event: object) -> RegisterEvent:
    """The register worker's event, its config validated again (``InvalidEvent``, ``FingerprintMismatch``)."""
    from sfn_mlops.unit_configs import validated_config

    given = parse_event(RegisterEvent, event, "register input")
    return given.model_copy(update={"inputs": {**given.inputs, "config": validated_config(given)}})


def check_recordable(model_data: str, dataset: dict[str, Any], metrics: Any) -> None:
    """Everything the lineage records will hold, checked BEFORE a package is created: a failure after it would
    leave an orphan package on every rerun. Keys are bounded (metadata's key helpers); numbers must be finite."""
    try:
        uri, version = str(dataset["uri"]), str(dataset["version"])
    except (KeyError, TypeError) as exc:
        raise InvalidUnitInput(f"register input: the dataset lacks {exc}") from exc
    if not isinstance(metrics, dict) or not metrics:
        raise InvalidUnitInput("register input: evaluation.metrics is not a non-empty object")
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise NonFiniteNumber(f"register input: metrics {', '.join(sorted(bad))} are not finite: nothing registered")
    # The keys as they will be written (bounded below DynamoDB's limits), and the item's numbers and types.
    serialize({"PK": dataset_pk(uri), "SK": model_dataset_sk(uri, version), "dataset": dataset, "metrics": metrics})
    serialize({"PK": artifact_pk(model_data), "SK": "MODEL"})


def register_model(
    sm: Any, s3: Any, table: MetadataTable, settings: Settings, event: dict[str, Any] | RegisterEvent
) -> dict[str, Any]:
    given = event if isinstance(event, RegisterEvent) else parse_register_event(event)
    try:
        run_id, pipeline = given.run_id, given.pipeline
        inputs = given.inputs
        config, dataset = inputs["config"], inputs["dataset"]
        model_data = inputs["model"]["model_data"]
        evaluation = inputs["evaluation"]
        metrics = evaluation["metrics"]
        group = str(config["model_package_group"])
        images = (str(config["preprocessing_image_uri"]), str(config["image_uri"]))
        script = {"uri": str(config["script"]["uri"]), "sha256": str(config["script"]["sha256"])}
        runs_root = str(config["runs_root"])
    except (KeyError, TypeError) as exc:
        raise InvalidUnitInput(f"register input is missing {exc}") from exc
    check_recordable(str(model_data), dataset, metrics)
    if not group.startswith(f"{settings.resource_prefix}-"):
        raise RegistrationError(
            f"model package group {group!r} is not one of this stack's (prefix {settings.resource_prefix}-): "
            "a run registers in its pipeline's group only"
        )
    preprocess = _preprocess_outputs(table, run_id, inputs)
    schema_uri = str(preprocess["schema_uri"])
    preprocessing = stage_preprocessing(s3, schema_uri, script, runs_root)
    drift_baselines = drift_check_baselines(preprocess.get("baseline"))
    contract = inferred_contract(s3, runs_root, run_id, preprocess)

    # The same artifacts (model and preprocessing) are registered once: a rerun returns the package they made,
    # as it stands (a rerun never changes a package's approval).
    existing = table.find_package_for_artifact(model_data, preprocessing["digest"])
    if existing is not None:
        described = _describe(sm, existing["model_package_arn"])
        if described is not None and described.get("ModelPackageGroupName") == group:
            pin_inferred(s3, settings.artifact_bucket, pipeline, run_id, contract)
            return _result(described, preprocessing, reused=True)

    ensure_group(sm, group, pipeline)
    properties = customer_metadata(run_id, pipeline, dataset, metrics)
    try:
        response = sm.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"{pipeline} run {run_id} on {dataset['uri']}"[:1024],
            ClientToken=hashlib.sha256(f"{run_id}|{model_data}|{preprocessing['digest']}".encode()).hexdigest()[:36],
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": images[0],
                        "ModelDataUrl": preprocessing["uri"],
                        "Environment": dict(PREPROCESSING_ENVIRONMENT),
                    },
                    {"Image": images[1], "ModelDataUrl": model_data},
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
                "SupportedRealtimeInferenceInstanceTypes": config["inference_instance_types"],
                "SupportedTransformInstanceTypes": config["transform_instance_types"],
            },
            ModelApprovalStatus=PENDING,
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": evaluation["evaluation_uri"]}
                }
            },
            CustomerMetadataProperties=properties,
            **drift_baselines,
            Tags=[
                {"Key": "sfn-mlops:run-id", "Value": run_id},
                {"Key": "sfn-mlops:pipeline", "Value": pipeline},
            ],
        )
        arn = response["ModelPackageArn"]
        approval = _auto_approve(sm, arn, settings, run_id, evaluation, properties) if settings.auto_approve else None
    except sm.exceptions.ClientError as exc:
        raise RegistrationError(f"could not register {model_data} in group {group}: {exc}") from exc
    upstream = {unit: state for unit, state in table.unit_snapshot(run_id).items() if unit != "register"}
    table.record_model_package(
        model_data,
        arn,
        run_id,
        dataset,
        metrics,
        units=upstream,
        preprocessing=preprocessing,
        group=group,
        approval=approval,
    )
    described = _describe(sm, arn)
    if described is None:
        raise RegistrationError(f"model package {arn} vanished right after it was registered")
    # After the package is recorded: a failure here leaves no orphan (a rerun reuses the package, then pins).
    pin_inferred(s3, settings.artifact_bucket, pipeline, run_id, contract)
    return _result(described, preprocessing, reused=False)


def _auto_approve(
    sm: Any, arn: str, settings: Settings, run_id: str, evaluation: dict[str, Any], properties: dict[str, str]
) -> dict[str, Any]:
    """The stack deployed with auto-approval on approves what passed its gate: Pending -> Approved, as a person's
    approval would (one approval event), with who and why on the package and in the approval history."""
    gate = evaluation.get("gate") or {}
    passed = f" ({gate['metric']} {float(gate['value']):.6g})" if "metric" in gate and "value" in gate else ""
    reason = (
        f"auto-approved: the stack is deployed with auto-approval on and run {run_id} passed its quality gate{passed}"
    )
    identity = f"stack {settings.resource_prefix} (auto-approval)"
    sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=APPROVED,
        ApprovalDescription=approval_description(reason, identity),
        CustomerMetadataProperties=properties,  # passed again: the run and dataset identity stay on the package
    )
    return {"status": APPROVED, "previous_status": PENDING, "reason": reason, "identity": identity, "at": now_iso()}


def _describe(sm: Any, arn: str) -> dict[str, Any] | None:
    try:
        described: dict[str, Any] = sm.describe_model_package(ModelPackageName=arn)
    except sm.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
            raise
        return None
    return described


def reject_superseded_package(sm: Any, event: dict[str, Any] | RejectEvent) -> dict[str, Any]:
    """A rerun the quality gate rejects also rejects the package an earlier execution of the run registered,
    unless somebody has already approved or rejected it."""
    given = event if isinstance(event, RejectEvent) else parse_event(RejectEvent, event, "reject input")
    arn, run_id, gate = given.model_package_arn, given.run_id, given.gate
    comparison = "<" if gate.direction == "minimize" else ">"
    reason = f"rejected by the quality gate of run {run_id}: {gate.metric} {given.value:.6g} is not {comparison} "
    reason += f"{gate.threshold}"
    described = sm.describe_model_package(ModelPackageName=arn)
    before = described.get("ModelApprovalStatus")
    if before == PENDING:
        sm.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=REJECTED,
            ApprovalDescription=reason[:MAX_APPROVAL_DESCRIPTION],
            # passed again: the run and dataset identity must stay on the package
            CustomerMetadataProperties=described.get("CustomerMetadataProperties") or {},
        )
        described = sm.describe_model_package(ModelPackageName=arn)
    after = described.get("ModelApprovalStatus")
    return {"model_package_arn": arn, "approval_status": after, "changed": after != before}


def _result(described: dict[str, Any], preprocessing: dict[str, str], reused: bool) -> dict[str, Any]:
    return {
        "model_package_arn": described["ModelPackageArn"],
        "model_package_group": described.get("ModelPackageGroupName"),
        "model_package_version": described.get("ModelPackageVersion"),
        "approval_status": described.get("ModelApprovalStatus"),
        "preprocessing_data": preprocessing["uri"],
        "reused": reused,
    }
