"""Dataset identity (S3 URI + version id/ETag) and a fast check of a dataset before any job runs.

The check reads only the head of the object: it catches the common mistakes (empty file, not CSV,
missing label, non-numeric values) in a second, before paying for a processing job. The preprocess
job still checks every row.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import BaseModel, ConfigDict

from sfn_mlops.errors import DatasetValidationError
from sfn_mlops.s3uri import s3_uri, split_s3_uri

HEAD_BYTES = 256 * 1024


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


def read_head(s3: Any, dataset: DatasetRef) -> bytes:
    if dataset.size == 0:
        return b""  # a range read of an empty object is "not satisfiable"
    kwargs: dict[str, Any] = {
        "Bucket": dataset.bucket,
        "Key": dataset.key,
        "Range": f"bytes=0-{HEAD_BYTES - 1}",
    }
    if dataset.version_id:
        kwargs["VersionId"] = dataset.version_id
    body: bytes = s3.get_object(**kwargs)["Body"].read()
    return body


def check_dataset_head(head: bytes, complete: bool, label: str, categorical: set[str], uri: str) -> list[str]:
    """Validate the first bytes of a CSV dataset; returns its columns. Raises DatasetValidationError."""
    if not head.strip():
        raise DatasetValidationError(f"dataset {uri} is empty")
    if b"\x00" in head:
        raise DatasetValidationError(f"dataset {uri} is not a CSV text file (it contains binary data)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character may be cut at the end of the range: only fail on earlier bytes.
        if complete or exc.start < len(head) - 4:
            raise DatasetValidationError(f"dataset {uri} is not a UTF-8 CSV text file") from exc
        text = head[: exc.start].decode("utf-8")
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the range read
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = [c.strip() for c in rows[0]] if rows else []
    if len(header) < 2:
        raise DatasetValidationError(
            f"dataset {uri} is not a CSV file with a header row (found {len(header)} column(s))"
        )
    if label not in header:
        raise DatasetValidationError(f"dataset {uri} has no label column {label!r}; columns found: {', '.join(header)}")
    data_rows = [r for r in rows[1:] if r]
    if not data_rows:
        raise DatasetValidationError(f"dataset {uri} has a header but no data rows")
    numeric = [i for i, name in enumerate(header) if name not in categorical]
    for row_number, row in enumerate(data_rows, start=1):
        if len(row) != len(header):
            raise DatasetValidationError(
                f"dataset {uri} row {row_number} has {len(row)} fields, the header has {len(header)}"
            )
        for i in numeric:
            value = row[i].strip()
            try:
                float(value)
            except ValueError:
                raise DatasetValidationError(
                    f"dataset {uri} has a non-numeric value {value!r} in column {header[i]!r} at row {row_number}"
                ) from None
    return header


def snapshot_dataset(s3: Any, dataset: DatasetRef, target_bucket: str, target_key: str) -> str:
    """Copy the pinned object version into the run, so every unit and rerun reads the same bytes."""
    source: dict[str, str] = {"Bucket": dataset.bucket, "Key": dataset.key}
    if dataset.version_id:
        source["VersionId"] = dataset.version_id
    s3.copy(source, target_bucket, target_key)
    return s3_uri(target_bucket, target_key)


def validate_and_snapshot(s3: Any, event: dict[str, Any]) -> dict[str, Any]:
    """Preprocess worker's first step: check the dataset head, then snapshot it into the run."""
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
    head = read_head(s3, dataset)
    categorical = {spec.split("=", 1)[0] for spec in config.get("categorical", [])}
    columns = check_dataset_head(
        head,
        complete=len(head) >= dataset.size,
        label=config["label"],
        categorical=categorical,
        uri=dataset.uri,
    )
    target_bucket, root_key = split_s3_uri(config["runs_root"])
    file_name = dataset.key.rsplit("/", 1)[-1]
    snapshot = snapshot_dataset(s3, dataset, target_bucket, f"{root_key}input/{file_name}")
    return {"dataset_snapshot": snapshot, "columns": columns, "dataset": dataset.to_dict()}
