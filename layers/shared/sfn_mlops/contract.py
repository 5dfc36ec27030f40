"""A pipeline's data contract: the feature columns (in encoding order), their types, categorical domains, allowed
ranges and nullability, and the label's name, type and range.

``pipeline.json`` may declare it (``data.contract``); otherwise the first successful *run* pins the contract
inferred from its dataset at ``pipelines/<pipeline>/contract.json`` (written once: S3's conditional write), and the
user replaces it with ``mlops contract update``. Every later run reads the one that applies. Validation only records
the contract a preprocess attempt's data met, under that attempt's own prefix: a run that then fails, or whose
model the gate rejects, pins nothing (its extra id column does not become the pipeline's contract).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from sfn_mlops.errors import InvalidDataContract, validation_problems
from sfn_mlops.s3uri import s3_uri

CONTRACT_FILE = "contract.json"
# Beside a preprocess attempt's outputs (``<runs_root>preprocess/a<n>/``): the contract its data met.
VALIDATED_FILE = "contract.json"
# Cells spelled like this are missing values (the preprocess script reads them the same way).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FeatureSpec(_Strict):
    name: str = Field(min_length=1, max_length=128)
    type: Literal["numeric", "categorical"] = "numeric"
    # categorical: the values a cell may take (one-hot encoded in this order)
    domain: list[str] | None = None
    # numeric: inclusive bounds (None: unbounded), and whether only whole numbers are allowed
    min: float | None = None
    max: float | None = None
    integer: bool = False
    nullable: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.type == "categorical":
            domain = self.domain or []
            if not domain or len(set(domain)) != len(domain) or not all(v.strip() == v and v for v in domain):
                raise ValueError(f"categorical column {self.name!r} needs a domain of distinct, non-empty values")
            if self.min is not None or self.max is not None or self.integer:
                raise ValueError(f"categorical column {self.name!r} takes no min, max or integer")
        elif self.domain is not None:
            raise ValueError(f"numeric column {self.name!r} takes no domain (make it categorical)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is above max {self.max}")
        return self


class LabelSpec(_Strict):
    name: str = Field(min_length=1, max_length=128)
    # numeric: a regression target, or a binary label that is 0/1 already (min 0, max 1, integer). categorical: a
    # binary label of two values, ``positive`` the one preprocess encodes as 1 (the built-in algorithm trains on
    # numbers); a regression pipeline refuses it.
    type: Literal["numeric", "categorical"] = "numeric"
    min: float | None = None
    max: float | None = None
    integer: bool = False
    domain: list[str] | None = None
    positive: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> LabelSpec:
        if self.type == "categorical":
            domain = self.domain or []
            if len(domain) != 2 or len(set(domain)) != 2 or not all(v.strip() == v and v for v in domain):
                raise ValueError(
                    f"categorical label {self.name!r} needs a domain of two distinct, non-empty values "
                    "(a binary label; other labels are numeric)"
                )
            if self.positive not in domain:
                raise ValueError(f"categorical label {self.name!r} needs its positive class, one of {domain}")
            if self.min is not None or self.max is not None or self.integer:
                raise ValueError(f"categorical label {self.name!r} takes no min, max or integer")
        elif self.domain is not None or self.positive is not None:
            raise ValueError(f"numeric label {self.name!r} takes no domain or positive (make it categorical)")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"label {self.name!r}: min {self.min} must be below max {self.max}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A numeric label dumps as it did before categorical labels existed: stored contracts and the fingerprints
        # of units whose config holds one stay the same.
        data: dict[str, Any] = handler(self)
        if self.type == "numeric":
            data.pop("domain", None)
            data.pop("positive", None)
        return data

    @property
    def negative(self) -> str | None:
        """A categorical label's other class (encoded 0)."""
        return next((v for v in self.domain or [] if v != self.positive), None)


class DataContract(_Strict):
    features: list[FeatureSpec] = Field(min_length=1, max_length=1000)
    label: LabelSpec

    @model_validator(mode="after")
    def _distinct(self) -> DataContract:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"columns named more than once: {', '.join(duplicates)}")
        if self.label.name in names:
            raise ValueError(f"the label {self.label.name!r} is not also a feature")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """Every column a dataset has: the features in contract order, then the label."""
        return [*self.feature_names, self.label.name]

    @property
    def categorical(self) -> dict[str, list[str]]:
        return {f.name: list(f.domain or []) for f in self.features if f.type == "categorical"}


def parse_contract(raw: bytes | str | dict[str, Any], source: str) -> DataContract:
    """A contract from JSON: bare, or wrapped as ``contract.json`` stores it (``{"contract": {...}, ...}``)."""
    try:
        data = json.loads(raw, parse_constant=_no_constant) if isinstance(raw, bytes | str) else raw
        if isinstance(data, dict) and isinstance(data.get("contract"), dict):
            data = data["contract"]
        return DataContract.model_validate(data)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise InvalidDataContract(f"{source} is not a valid data contract: {validation_problems(exc)}") from None
        raise InvalidDataContract(f"{source} is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def describe_range(low: float | None, high: float | None) -> str:
    def show(value: float) -> str:
        return str(int(value)) if value.is_integer() and math.isfinite(value) else repr(value)

    return f"[{show(low) if low is not None else '-inf'}, {show(high) if high is not None else 'inf'}]"


# --- the pinned contract, in S3 next to the published pipeline.json ---


def contract_key(pipeline: str, pipelines_prefix: str = "pipelines/") -> str:
    return f"{pipelines_prefix}{pipeline}/{CONTRACT_FILE}"


def read_pinned(s3: Any, bucket: str, pipeline: str) -> dict[str, Any] | None:
    """The stored document ``{"contract", "source", "run_id", "updated_at"}``, or None when none is pinned."""
    key = contract_key(pipeline)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    contract = parse_contract(body, source=s3_uri(bucket, key))
    document: dict[str, Any] = json.loads(body)
    return {**document, "contract": contract.model_dump(mode="json")}


def _document(contract: DataContract, source: str, run_id: str) -> bytes:
    document = {
        "contract": contract.model_dump(mode="json"),
        "source": source,
        "run_id": run_id,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def pin_contract(s3: Any, bucket: str, pipeline: str, contract: DataContract, run_id: str) -> bool:
    """Pin an inferred contract once (a conditional write): True when this call pinned it, False when a contract was
    pinned already (by an earlier successful run or a person): that one stays, later runs are checked against it."""
    key = contract_key(pipeline)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=_document(contract, "inferred", run_id), IfNoneMatch="*")
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"PreconditionFailed", "ConditionalRequestConflict"}:
            raise
        return False
    return True


# --- the contract one preprocess attempt's data met, under the attempt's own prefix ---


def validated_contract_key(attempt_prefix: str) -> str:
    """``attempt_prefix``: the attempt's key prefix (``runs/<pipeline>/<run>/preprocess/a<n>/``)."""
    return f"{attempt_prefix}{VALIDATED_FILE}"


def record_validated(
    s3: Any, bucket: str, attempt_prefix: str, contract: DataContract, inferred: bool, run_id: str
) -> str:
    """Write the contract the attempt's data met (``source``: inferred from it, or given by the plan). Returns its
    URI. The register worker pins an inferred one when the run succeeds."""
    key = validated_contract_key(attempt_prefix)
    s3.put_object(Bucket=bucket, Key=key, Body=_document(contract, "inferred" if inferred else "plan", run_id))
    return s3_uri(bucket, key)


def read_validated(s3: Any, bucket: str, attempt_prefix: str) -> dict[str, Any] | None:
    """The document ``record_validated`` wrote (its contract validated again), or None when the attempt wrote none
    (it ran before attempts recorded their contract)."""
    key = validated_contract_key(attempt_prefix)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as exc:
        # Without s3:ListBucket a missing object reads as AccessDenied: the reader may read every object under runs/.
        if exc.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}:
            raise
        return None
    contract = parse_contract(body, source=s3_uri(bucket, key))
    document: dict[str, Any] = json.loads(body)
    return {**document, "contract": contract}


def replace_contract(s3: Any, bucket: str, pipeline: str, contract: DataContract, source: str, run_id: str = "") -> str:
    """A person's update: overwrite the pinned contract (later runs read it). Returns its URI."""
    key = contract_key(pipeline)
    s3.put_object(Bucket=bucket, Key=key, Body=_document(contract, source, run_id))
    return s3_uri(bucket, key)


def contract_for_plan(s3: Any, bucket: str, pipeline: str, declared: DataContract | None) -> dict[str, Any] | None:
    """What a run validates against, for the planner to put in the preprocess unit's config (so the contract is
    part of the unit's fingerprint): the one pipeline.json declares, else the pinned one, else None (infer and
    pin)."""
    if declared is not None:
        return declared.model_dump(mode="json")
    pinned = read_pinned(s3, bucket, pipeline)
    return pinned["contract"] if pinned else None
