"""Dataset identity (S3 URI + version id/ETag) and the check of a dataset against its pipeline's data contract
before any job runs (every row, streamed: see ``contract_check``), before paying for a processing job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sfn_mlops.contract import DataContract, parse_contract, pin_contract, read_pinned
from sfn_mlops.contract_check import check_csv
from sfn_mlops.errors import DatasetValidationError, InvalidDataContract, InvalidUnitInput
from sfn_mlops.s3uri import s3_uri, split_s3_uri

CHUNK_BYTES = 1 << 20


class DatasetRef(BaseModel):
    """Which object version a run read. The same ref always means the same bytes."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    etag: str = ""
    size: int = 0
    # S3's SHA-256 checksum (base64) where the uploader asked for one (the CLI does): a content hash.
    sha256: str | None = None

    @property
    def uri(self) -> str:
        return s3_uri(self.bucket, self.key)

    @property
    def version(self) -> str:
        """Version id where the bucket is versioned, else the ETag."""
        return self.version_id or self.etag

    @property
    def content_identity(self) -> str:
        """What the bytes are, whatever the key or version: a byte-identical re-upload has the same one."""
        return f"sha256:{self.sha256}" if self.sha256 else f"etag:{self.etag}:{self.size}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag,
            "size": self.size,
            "version": self.version,
            "sha256": self.sha256,
            "content": self.content_identity,
        }


def resolve_dataset(s3: Any, bucket: str, key: str, version_id: str | None = None) -> DatasetRef:
    """Pin a dataset to the exact object version (HEAD), so later reads see the same bytes."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        head = s3.head_object(**kwargs)
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}:
            raise DatasetValidationError(f"dataset {s3_uri(bucket, key)} does not exist") from exc
        raise
    return DatasetRef(
        bucket=bucket,
        key=key,
        version_id=head.get("VersionId") or version_id,
        etag=str(head.get("ETag", "")).strip('"'),
        size=int(head.get("ContentLength", 0)),
        sha256=head.get("ChecksumSHA256"),
    )


def read_chunks(s3: Any, dataset: DatasetRef) -> Iterator[bytes]:
    """The pinned object version's bytes, streamed: a large dataset is never held whole in memory."""
    kwargs: dict[str, Any] = {"Bucket": dataset.bucket, "Key": dataset.key}
    if dataset.version_id:
        kwargs["VersionId"] = dataset.version_id
    yield from s3.get_object(**kwargs)["Body"].iter_chunks(CHUNK_BYTES)


def categorical_specs(specs: list[str]) -> dict[str, list[str]]:
    """The planner's ``COLUMN=CAT1,CAT2`` specs (the preprocess script's arguments) as a mapping."""
    columns: dict[str, list[str]] = {}
    for spec in specs:
        column, _, values = spec.partition("=")
        if column.strip():
            columns[column.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return columns


def snapshot_dataset(s3: Any, dataset: DatasetRef, target_bucket: str, target_key: str) -> str:
    """Copy the pinned object version into the run, so every unit and rerun reads the same bytes."""
    source: dict[str, str] = {"Bucket": dataset.bucket, "Key": dataset.key}
    if dataset.version_id:
        source["VersionId"] = dataset.version_id
    s3.copy(source, target_bucket, target_key)
    return s3_uri(target_bucket, target_key)


def contract_for(s3: Any, config: dict[str, Any], pipeline: str, runs_root: str) -> DataContract | None:
    """The contract this run's data must meet: the one in the unit's config (the planner resolved it), else the
    one the run's pinned pipeline.json declares, else the pipeline's pinned one; None: infer and pin one."""
    if "contract" in config:
        if config["contract"] is None:
            return None
        try:
            return DataContract.model_validate(config["contract"])
        except ValidationError as exc:
            raise InvalidUnitInput(f"preprocess input has a malformed data contract: {exc}") from None
    bucket, root_key = split_s3_uri(runs_root)
    try:
        try:
            body = s3.get_object(Bucket=bucket, Key=f"{root_key}code/pipeline.json")["Body"].read()
            declared = (json.loads(body).get("data") or {}).get("contract")
        except s3.exceptions.NoSuchKey:
            declared = None
        if declared:
            return parse_contract(declared, source=s3_uri(bucket, f"{root_key}code/pipeline.json"))
        pinned = read_pinned(s3, bucket, pipeline)
    except InvalidDataContract as exc:  # the worker's flow catches dataset errors by name
        raise DatasetValidationError(str(exc)) from None
    return DataContract.model_validate(pinned["contract"]) if pinned else None


def validate_and_snapshot(s3: Any, event: dict[str, Any]) -> dict[str, Any]:
    """Preprocess worker's first step: check every row against the pipeline's data contract (or infer one and pin
    it), then snapshot the dataset into the run."""
    inputs = event.get("inputs") or {}
    config, raw = inputs.get("config"), inputs.get("dataset")
    if not isinstance(config, dict) or not isinstance(raw, dict):
        raise DatasetValidationError("preprocess input needs 'config' and 'dataset'")
    dataset = DatasetRef(
        bucket=raw["bucket"],
        key=raw["key"],
        version_id=raw.get("version_id"),
        etag=raw.get("etag", ""),
        size=int(raw.get("size", 0)),
        sha256=raw.get("sha256"),
    )
    pipeline = str(event.get("pipeline") or "")
    target_bucket, root_key = split_s3_uri(config["runs_root"])
    contract = contract_for(s3, config, pipeline, config["runs_root"])
    result = check_csv(
        read_chunks(s3, dataset),
        contract,
        label=config["label"],
        categorical=categorical_specs(config.get("categorical") or []),
        uri=dataset.uri,
        pipeline=pipeline,
    )
    if result.inferred:
        pin_contract(s3, target_bucket, pipeline, result.contract, str(event.get("run_id") or ""))
    file_name = dataset.key.rsplit("/", 1)[-1]
    # A server-side copy: the bytes were read once, by the check.
    snapshot = snapshot_dataset(s3, dataset, target_bucket, f"{root_key}input/{file_name}")
    return {
        "dataset_snapshot": snapshot,
        "columns": result.columns,
        "rows": result.rows,
        "contract": result.contract.model_dump(mode="json"),
        "contract_inferred": result.inferred,
        "dataset": dataset.to_dict(),
    }
