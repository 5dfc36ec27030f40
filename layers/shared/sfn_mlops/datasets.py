"""Dataset identity (S3 URI + version id/ETag) and the check of a dataset against its pipeline's data contract
before any job runs (every row, streamed: see ``contract_check``), before paying for a processing job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfn_mlops.contract import DataContract, record_validated
from sfn_mlops.contract_check import check_csv
from sfn_mlops.errors import DatasetValidationError
from sfn_mlops.events import WorkerEvent, parse_event
from sfn_mlops.s3uri import s3_uri, split_s3_uri
from sfn_mlops.unit_configs import validated_config

CHUNK_BYTES = 1 << 20
# S3's bucket naming rules (lower case, digits, '.', '-'; 3 to 63 characters).
BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


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


class DatasetInput(DatasetRef):
    """A dataset ref as an event gives it (the planner's ``DatasetRef.to_dict()``): bounded, its derived fields
    (``uri``, ``version``, ``content``) ignored and computed again."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    bucket: str = Field(pattern=BUCKET_NAME)
    # An object, not a folder (its file name is the snapshot's), without control characters.
    key: str = Field(pattern=r"^[^\x00-\x1f\x7f]*[^/\x00-\x1f\x7f]$", max_length=1024)
    version_id: str | None = Field(default=None, min_length=1, max_length=1024)
    etag: str = Field(default="", max_length=1024)
    size: int = Field(default=0, ge=0)
    sha256: str | None = Field(default=None, max_length=128)


class ValidateDatasetEvent(WorkerEvent):
    """What the preprocess worker's first step is given: the unit's event (``inputs.config``, ``inputs.dataset``)."""

    unit: Literal["preprocess"]


def parse_validate_event(event: object) -> tuple[ValidateDatasetEvent, dict[str, Any], DatasetRef]:
    """The event, its config validated again against the plan's digest, and the dataset it names.

    Raises ``InvalidEvent`` naming the bad field, or ``FingerprintMismatch``."""
    given = parse_event(ValidateDatasetEvent, event, "preprocess input")
    config = validated_config(given)
    dataset = parse_event(DatasetInput, given.inputs.get("dataset"), "preprocess input dataset")
    return given, config, dataset


def resolve_dataset(s3: Any, bucket: str, key: str, version_id: str | None = None) -> DatasetRef:
    """Pin a dataset to the exact object version (HEAD), so later reads see the same bytes."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        head = s3.head_object(**kwargs)
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in MISSING_OBJECT_CODES:
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


def planned_contract(config: dict[str, Any]) -> DataContract | None:
    """The contract the plan put in the unit's config (declared, else pinned when the run was planned; the config
    digest proves it is the planner's); None: infer one from the data. Nothing else is read: this function may
    read only the dataset, and a contract pinned since planning applies from the next run on."""
    contract = config.get("contract")  # validated_config drops a None contract
    return DataContract.model_validate(contract) if contract else None


def validate_and_snapshot(s3: Any, event: object) -> dict[str, Any]:
    """Preprocess worker's first step: check every row against the planned data contract (or infer one), record the
    contract the data met under this attempt's prefix (the register worker pins an inferred one when the run
    succeeds), then snapshot the dataset into the run."""
    given, config, dataset = parse_validate_event(event)
    target_bucket, root_key = split_s3_uri(config["runs_root"])
    try:
        result = check_csv(
            read_chunks(s3, dataset),
            planned_contract(config),
            label=config["label"],
            categorical=categorical_specs(config.get("categorical") or []),
            uri=dataset.uri,
            pipeline=given.pipeline,
            problem_type=config.get("problem_type"),  # planned with the run (None in a plan made before it was)
        )
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in MISSING_OBJECT_CODES:
            raise
        missing = f"dataset {dataset.uri} (version {dataset.version or 'latest'}) does not exist"
        raise DatasetValidationError(missing) from None
    # Beside this attempt's job outputs (jobs.preprocess_request): a cached reuse of them finds it there too.
    recorded = record_validated(
        s3,
        target_bucket,
        f"{root_key}preprocess/a{given.attempt}/",
        result.contract,
        result.inferred,
        given.run_id,
    )
    file_name = dataset.key.rsplit("/", 1)[-1]
    # A server-side copy: the bytes were read once, by the check.
    snapshot = snapshot_dataset(s3, dataset, target_bucket, f"{root_key}input/{file_name}")
    return {
        "dataset_snapshot": snapshot,
        "columns": result.columns,
        "rows": result.rows,
        "contract": result.contract.model_dump(mode="json"),
        "contract_inferred": result.inferred,
        "contract_uri": recorded,
        "dataset": dataset.to_dict(),
    }
