"""Fuzzing the CSV validation: whatever the bytes, it accepts them or raises DatasetValidationError, nothing else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sfn_mlops.contract import DataContract
from sfn_mlops.contract_check import check_csv
from sfn_mlops.errors import DatasetValidationError

from tests.conftest import ROOT

CONTRACT = DataContract.model_validate(
    json.loads((ROOT / "models/abalone/pipeline.json").read_text())["data"]["contract"]
)
VALID = (ROOT / "models/abalone/data/abalone.csv").read_bytes()[:1500]
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
# Each example is a few milliseconds: 3 x 200 examples stay well under 15 s.
TOKENS = [b",", b"\n", b"\r\n", b"\r", b'"', b"\xef\xbb\xbf", b"\x00", b"\xff", b"nan", b"-inf", b"1e400", b"", b" "]


def run(data: bytes, chunk: int, contract: DataContract | None) -> None:
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    try:
        check_csv(pieces, contract, label="rings", categorical={"sex": ["M", "F", "I"]}, uri="s3://b/k", pipeline="p")
    except DatasetValidationError as exc:
        assert str(exc) and "\n" not in str(exc)


@seed(10)
@FUZZ
@given(data=st.binary(max_size=600), chunk=st.integers(1, 64), declared=st.booleans())
def test_arbitrary_bytes_give_only_the_named_error(data: bytes, chunk: int, declared: bool) -> None:
    run(data, chunk, CONTRACT if declared else None)


@seed(11)
@FUZZ
@given(text=st.text(max_size=400), declared=st.booleans())
def test_arbitrary_text_gives_only_the_named_error(text: str, declared: bool) -> None:
    run(text.encode("utf-8", "surrogatepass"), 16, CONTRACT if declared else None)


@seed(12)
@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 8), st.sampled_from(TOKENS)), max_size=6),
    chunk=st.integers(1, 512),
    declared=st.booleans(),
)
def test_a_mutated_valid_csv_gives_only_the_named_error(
    edits: list[tuple[int, int, bytes]], chunk: int, declared: bool
) -> None:
    # Given the real data with a few spans replaced by CSV-significant tokens
    data = VALID
    for at, cut, token in edits:
        data = data[:at] + token + data[at + cut :]
    run(data, chunk, CONTRACT if declared else None)
