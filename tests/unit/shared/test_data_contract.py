"""A pipeline's data contract: every rule the validate-dataset step enforces, with one readable error each."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from sfn_mlops.contract import DataContract, parse_contract, read_pinned, replace_contract
from sfn_mlops.contract_check import check_csv
from sfn_mlops.errors import DatasetValidationError, InvalidDataContract

from tests.conftest import BUCKET, ROOT

ABALONE = json.loads((ROOT / "models/abalone/pipeline.json").read_text())["data"]["contract"]
HEADER = "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings"
ROWS = [
    "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15",
    "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21,9",
    "I,0.33,0.255,0.08,0.205,0.0895,0.0395,0.055,7",
]


def csv_text(*rows: str, header: str = HEADER, end: str = "\n") -> bytes:
    return end.join([header, *rows]).encode() + end.encode()


def check(data: bytes, contract: dict[str, Any] | None = ABALONE, chunk: int = 7) -> Any:
    """Validate ``data`` fed in small chunks (as a stream would arrive) against ``contract``."""
    parsed = DataContract.model_validate(contract) if contract else None
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return check_csv(
        pieces, parsed, label="rings", categorical={"sex": ["M", "F", "I"]}, uri="s3://b/data/x.csv", pipeline="abalone"
    )


def test_the_real_abalone_data_meets_its_declared_contract() -> None:
    result = check((ROOT / "models/abalone/data/abalone.csv").read_bytes(), chunk=65536)
    assert result.rows == 4177 and not result.inferred


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("extra id column", csv_text(*(f"{r},{i}" for i, r in enumerate(ROWS)), header=HEADER + ",id"),
         "unknown column(s) id (not in the contract"),
        ("missing column", csv_text(*(r.split(",", 1)[1] for r in ROWS), header=HEADER.split(",", 1)[1]),
         "missing column(s) sex"),
        ("missing label", csv_text(*(r.rsplit(",", 1)[0] for r in ROWS), header=HEADER.rsplit(",", 1)[0]),
         "no label column 'rings'; missing column(s) rings"),
        ("not a number", csv_text(ROWS[0], ROWS[1].replace("0.53", "big"), ROWS[2]),
         "non-numeric value 'big' in column 'length' at row 2"),
        ("out of range", csv_text(ROWS[0], ROWS[1], ROWS[2].replace("0.33", "-0.33")),
         "out-of-range value '-0.33' in column 'length' at row 3 (allowed: [0, 2])"),
        ("outside the domain", csv_text(ROWS[0], "X" + ROWS[1][1:], "Y" + ROWS[2][1:]),
         "unknown category 'X' in column 'sex' at row 2 and 1 more row(s) (expected one of M, F, I)"),
        ("missing value", csv_text(ROWS[0], ROWS[1].replace("0.53", ""), ROWS[2]),
         "missing value '' in column 'length' at row 2 (the column is not nullable)"),
        ("NaN", csv_text(ROWS[0].replace("0.455", "NaN"), *ROWS[1:]),
         "missing value 'NaN' in column 'length' at row 1"),
        ("infinity", csv_text(ROWS[0].replace("0.455", "inf"), *ROWS[1:]),
         "non-finite value 'inf' in column 'length' at row 1"),
        ("negative label", csv_text(ROWS[0], ROWS[1].replace(",9", ",-9"), ROWS[2]),
         "out-of-range value '-9' in column 'rings' at row 2 (allowed: [1, 100])"),
        ("fractional label", csv_text(ROWS[0], ROWS[1].replace(",9", ",9.5"), ROWS[2]),
         "non-integer value '9.5' in column 'rings' at row 2"),
        ("constant label", csv_text(*(r.rsplit(",", 1)[0] + ",10" for r in ROWS)),
         "the label 'rings' is constant ('10.0' in every row)"),
        ("ragged row", csv_text(ROWS[0], ROWS[1] + ",1", ROWS[2]),
         "wrong field count '10' in column '<any>' at row 2 (the header has 9 columns)"),
        ("header only", csv_text(), "has a header but no data rows"),
        ("empty", b"", "is empty"),
        ("binary", b"PAR1\x00\x01\x02", "not a CSV text file (it contains binary data)"),
        ("not UTF-8", csv_text(ROWS[0]).replace(b"M,", b"\xff,"), "not a UTF-8 CSV text file"),
        ("duplicate column", csv_text(*ROWS, header=HEADER.replace("height", "length")),
         "column(s) named more than once: length"),
        ("one column", b"rings\n1\n2\n", "not a CSV file with a header row (found 1 column(s))"),
        ("lone CR in a field", csv_text(ROWS[0], "M,0.5\r0.4," + ROWS[1][2:]), "could not be parsed as CSV"),
    ],
)  # fmt: skip
def test_a_dataset_that_breaks_the_contract_fails_naming_the_problem(name: str, data: bytes, problem: str) -> None:
    # Given a dataset with one kind of problem, When it is checked, Then one error names it
    with pytest.raises(DatasetValidationError) as raised:
        check(data)
    assert problem in str(raised.value), f"{name}: {raised.value}"
    assert "\n" not in str(raised.value)


def test_bad_rows_are_counted_and_only_the_first_few_reported() -> None:
    # Given 5000 rows, every other one with a negative length (more than one validation chunk)
    rows = [ROWS[i % 3].replace("0.", "-0.", 1) if i % 2 else ROWS[i % 3] for i in range(5000)]
    with pytest.raises(DatasetValidationError) as raised:
        check(csv_text(*rows), chunk=65536)
    # Then the count covers every bad row and the message stays one short line
    assert "in 2500 of 5000 rows" in str(raised.value) and "at row 2 and 2499 more row(s) (allowed: [0, 2])" in str(
        raised.value
    )
    assert len(str(raised.value)) < 600


@pytest.mark.parametrize(
    ("variant", "data"),
    [
        ("BOM", b"\xef\xbb\xbf" + csv_text(*ROWS)),
        ("CRLF", csv_text(*ROWS, end="\r\n")),
        ("BOM and CRLF", b"\xef\xbb\xbf" + csv_text(*ROWS, end="\r\n")),
        ("no final newline", csv_text(*ROWS)[:-1]),
        ("blank lines and spaces", csv_text(ROWS[0], "", " " + ROWS[1].replace(",", " , "), ROWS[2]) + b"\n\n"),
        ("columns in another order", csv_text(*(",".join(r.split(",")[::-1]) for r in ROWS),
                                              header=",".join(HEADER.split(",")[::-1]))),
    ],
)  # fmt: skip
def test_a_file_with_a_bom_crlf_or_another_column_order_is_read_correctly(variant: str, data: bytes) -> None:
    result = check(data, chunk=5)
    assert result.rows == 3 and "sex" in result.columns and "\ufeffsex" not in result.columns, variant


def test_a_nullable_column_accepts_missing_values() -> None:
    contract = json.loads(json.dumps(ABALONE))
    contract["features"][1]["nullable"] = True
    assert check(csv_text(ROWS[0].replace("0.455", "NA"), *ROWS[1:]), contract).rows == 3


def test_without_a_contract_one_is_inferred_from_the_data() -> None:
    result = check(csv_text(*(f"{r},a{i % 2}" for i, r in enumerate(ROWS)), header=HEADER + ",batch"), None)
    contract = result.contract
    assert result.inferred and contract.label.name == "rings" and contract.label.integer
    assert contract.categorical == {"sex": ["M", "F", "I"], "batch": ["a0", "a1"]}
    assert {f.name: f.min for f in contract.features if f.type == "numeric"}["length"] == 0


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (csv_text(*(r.rsplit(",", 1)[0] + ",3" for r in ROWS)), "the label 'rings' is constant"),
        (csv_text(ROWS[0], "Q" + ROWS[1][1:], ROWS[2]), "column 'sex' has 1 value(s) outside its categories"),
        (csv_text(*(r.replace(",15", ",x") for r in ROWS)), "the label 'rings' is not numeric (row 1: 'x')"),
        (csv_text(*(f"{r},id-{i}" for i, r in enumerate(ROWS * 30)), header=HEADER + ",name"),
         "column 'name' is neither numeric"),
        (csv_text(*ROWS, header=HEADER.replace("rings", "age")), "has no label column 'rings'"),
    ],
)  # fmt: skip
def test_data_no_contract_can_be_inferred_from_fails(data: bytes, problem: str) -> None:
    with pytest.raises(DatasetValidationError, match=None) as raised:
        check(data, None)
    assert problem in str(raised.value), str(raised.value)


@pytest.mark.parametrize(
    ("contract", "problem"),
    [
        ({"features": [{"name": "a", "type": "categorical"}], "label": {"name": "y"}}, "needs a domain"),
        ({"features": [{"name": "a", "min": 2, "max": 1}], "label": {"name": "y"}}, "min 2.0 is above max 1.0"),
        ({"features": [{"name": "y"}], "label": {"name": "y"}}, "is not also a feature"),
        ({"features": [{"name": "a"}, {"name": "a"}], "label": {"name": "y"}}, "more than once: a"),
        ({"features": [{"name": "a", "max": float("inf")}], "label": {"name": "y"}}, "finite number"),
        ({"features": [], "label": {"name": "y"}}, "features"),
        ({"features": [{"name": "a", "domain": ["x"]}], "label": {"name": "y"}}, "takes no domain"),
    ],
)
def test_a_malformed_contract_is_refused_naming_the_problem(contract: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidDataContract, match=r"contract\.json is not a valid data contract") as raised:
        parse_contract(contract, source="contract.json")
    assert problem in str(raised.value), str(raised.value)


def test_contract_json_with_nan_is_refused() -> None:
    with pytest.raises(InvalidDataContract, match="NaN is not a number JSON allows"):
        parse_contract('{"features": [{"name": "a", "max": NaN}], "label": {"name": "y"}}', source="c.json")


RUN_A = "abalone-20261123t101500-1a2b3c4d"
RUN_B = "abalone-20261123t101600-1a2b3c4e"


def _event(key: str, run: str = RUN_A, **config: Any) -> dict[str, Any]:
    """The preprocess worker's event for a dataset in the test bucket, as the planner makes it (digest stamped)."""
    from sfn_mlops.fingerprint import config_digest

    from tests.unit.functions.test_handlers import sample_event

    version = boto3.client("s3").head_object(Bucket=BUCKET, Key=key).get("VersionId")
    event = sample_event("ValidateDatasetFunction")
    event["run_id"] = run
    event["inputs"]["config"].update(runs_root=f"s3://{BUCKET}/runs/abalone/{run}/", **config)
    event["inputs"]["config"]["config_sha256"] = config_digest(event["inputs"]["config"])
    event["inputs"]["dataset"] = {"bucket": BUCKET, "key": key, "version_id": version}
    return event


def _recorded(run: str, attempt: int = 1) -> dict[str, Any] | None:
    from sfn_mlops.contract import read_validated

    return read_validated(boto3.client("s3"), BUCKET, f"runs/abalone/{run}/preprocess/a{attempt}/")


def test_a_validation_records_the_inferred_contract_under_its_attempt_and_pins_nothing(bucket: str) -> None:
    from sfn_mlops.datasets import validate_and_snapshot

    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="data/abalone/a.csv", Body=csv_text(*ROWS))
    s3.put_object(
        Bucket=bucket, Key="data/abalone/b.csv", Body=csv_text(*(f"{r},7" for r in ROWS), header=HEADER + ",id")
    )
    # Given no declared and no pinned contract, When a dataset validates
    result = validate_and_snapshot(s3, _event("data/abalone/a.csv"))
    # Then the contract inferred from it is recorded beside the attempt's outputs, and not pinned: the run may
    # still fail or be rejected by its gate
    recorded = _recorded(RUN_A)
    assert result["contract_inferred"] and recorded is not None and recorded["source"] == "inferred"
    assert recorded["contract"].model_dump(mode="json") == result["contract"]
    assert result["contract_uri"] == f"s3://{bucket}/runs/abalone/{RUN_A}/preprocess/a1/contract.json"
    assert read_pinned(s3, bucket, "abalone") is None
    # And a first run with an extra numeric id column (that never succeeds) does not make it the pipeline's
    other = validate_and_snapshot(s3, _event("data/abalone/b.csv", run=RUN_B))
    assert "id" in other["contract"]["features"][-1]["name"] and read_pinned(s3, bucket, "abalone") is None


def test_a_contract_in_the_unit_config_is_the_one_checked_and_a_user_update_applies_to_the_next_plan(
    bucket: str,
) -> None:
    from sfn_mlops.contract import contract_for_plan
    from sfn_mlops.datasets import validate_and_snapshot

    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="data/abalone/a.csv", Body=csv_text(*ROWS))
    # Given the planner passed the declared contract, Then it is recorded as the plan's, and nothing is pinned
    result = validate_and_snapshot(s3, _event("data/abalone/a.csv", contract=ABALONE))
    recorded = _recorded(RUN_A)
    assert not result["contract_inferred"] and recorded is not None and recorded["source"] == "plan"
    assert read_pinned(s3, bucket, "abalone") is None
    # Given a person replaces the pinned contract with one that forbids the 'I' sex
    strict = json.loads(json.dumps(ABALONE))
    strict["features"][0]["domain"] = ["M", "F"]
    replace_contract(s3, bucket, "abalone", DataContract.model_validate(strict), source="user")
    # Then the next plan (no declared contract) carries it, and the row with 'I' fails against it
    planned = contract_for_plan(s3, bucket, "abalone", None)
    with pytest.raises(DatasetValidationError, match="expected one of M, F"):
        validate_and_snapshot(s3, _event("data/abalone/a.csv", run=RUN_B, contract=planned))
    # And nothing was snapshot for the failed run
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/abalone/{RUN_B}/")
    assert listed.get("KeyCount", 0) == 0


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    node = event
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return event


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda e: _without(e, "inputs", "dataset", "bucket"), "input dataset is malformed: bucket: Field required"),
        (lambda e: e["inputs"]["dataset"].update(size="big") or e, "size: Input should be a valid integer"),
        (lambda e: e["inputs"]["dataset"].update(key="data/abalone/") or e, "key: String should match pattern"),
        (lambda e: _without(e, "inputs", "dataset"), "dataset is malformed: the event is a NoneType"),
        (lambda e: e.update(pipeline="churn") or e, "is not a run of pipeline 'churn'"),
        (lambda e: e.update(pipeline="../x") or e, "pipeline: String should match pattern"),
        (lambda e: e.update(unit="train") or e, "unit: Input should be 'preprocess'"),
        (lambda e: _without(e, "inputs", "config", "label"), "preprocess input config is malformed: label"),
        (lambda e: e["inputs"]["config"].update(seed=7) or e, "does not match the fingerprint its plan recorded"),
    ],
)
def test_a_malformed_validate_event_is_one_named_error_before_anything_is_read_or_written(
    bucket: str, mutate: Any, problem: str
) -> None:
    from sfn_mlops.datasets import validate_and_snapshot
    from sfn_mlops.errors import InvalidUnitInput

    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="data/abalone/a.csv", Body=csv_text(*ROWS))
    # Given the worker's event with one field wrong, When the step runs
    with pytest.raises(InvalidUnitInput) as raised:  # InvalidEvent or FingerprintMismatch, both caught by name
        validate_and_snapshot(s3, mutate(_event("data/abalone/a.csv")))
    # Then one line names the problem, and nothing was written under runs/
    assert problem in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="runs/").get("KeyCount", 0) == 0


def test_a_dataset_version_that_does_not_exist_is_a_dataset_error(bucket: str) -> None:
    from sfn_mlops.datasets import validate_and_snapshot

    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="data/abalone/a.csv", Body=csv_text(*ROWS))
    event = _event("data/abalone/a.csv")
    s3.delete_object(Bucket=bucket, Key="data/abalone/a.csv", VersionId=event["inputs"]["dataset"]["version_id"])
    # Given the version the plan pinned is gone, When the step runs, Then a dataset error names it
    missing = r"dataset s3://.*/data/abalone/a\.csv \(version .*\) does not exist"
    with pytest.raises(DatasetValidationError, match=missing):
        validate_and_snapshot(s3, event)
