"""Bad datasets (issue #10): each fails its run in preprocess with a message naming the problem, registers
nothing, and leaves every other command working; a BOM file and a CRLF file are read correctly."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.bad_inputs import Suite, module_suite, sample_lines

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    with module_suite(tmp_path_factory, "datasets") as made:
        yield made


def text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def with_cell(column: str, value: str, row: int = 5) -> Callable[[], bytes]:
    """The sample with one cell of ``column`` replaced."""

    def make() -> bytes:
        lines = sample_lines()
        header = lines[0].split(",")
        cells = lines[row].split(",")
        cells[header.index(column)] = value
        lines[row] = ",".join(cells)
        return text(lines)

    return make


def with_column(name: str, value: Callable[[int], str]) -> Callable[[], bytes]:
    """The sample with one more column in front of the others."""
    return lambda: text([f"{name},{line}" if i == 0 else f"{value(i)},{line}" for i, line in enumerate(sample_lines())])


def without_column(name: str) -> Callable[[], bytes]:
    def make() -> bytes:
        lines = [line.split(",") for line in sample_lines()]
        index = lines[0].index(name)
        return text([",".join(cells[:index] + cells[index + 1 :]) for cells in lines])

    return make


def with_labels(label: Callable[[int], str]) -> Callable[[], bytes]:
    def make() -> bytes:
        lines = sample_lines()
        return text([lines[0]] + [line.rsplit(",", 1)[0] + "," + label(i) for i, line in enumerate(lines[1:])])

    return make


def duplicate_header() -> bytes:
    lines = sample_lines()
    return text([lines[0].replace("diameter", "length"), *lines[1:]])


def semicolons() -> bytes:
    return text([line.replace(",", ";") for line in sample_lines()])


BAD_DATASETS = [
    # (case id, the file's bytes, what the error must name)
    pytest.param(lambda: b"", ("empty",), id="empty-file"),
    pytest.param(lambda: text(sample_lines()[:1]), ("no data rows",), id="header-only"),
    pytest.param(without_column("rings"), ("rings",), id="no-label-column"),
    pytest.param(
        with_column("id", str),
        ("id",),
        id="extra-numeric-id-column",
    ),
    pytest.param(
        without_column("shell_weight"),
        ("shell_weight",),
        id="missing-feature-column",
    ),
    pytest.param(with_cell("length", "abc"), ("length", "abc"), id="non-numeric-value"),
    pytest.param(
        with_cell("height", "NaN"),
        ("height",),
        id="nan-cell",
    ),
    pytest.param(
        with_cell("whole_weight", "inf"),
        ("whole_weight",),
        id="inf-cell",
    ),
    pytest.param(with_cell("diameter", ""), ("diameter",), id="empty-cell"),
    pytest.param(with_cell("sex", "X"), ("sex", "X"), id="unknown-category"),
    pytest.param(
        with_labels(lambda i: str(-1 - i % 5)),
        ("rings",),
        id="negative-label",
    ),
    pytest.param(
        with_labels(lambda i: "9"),
        ("rings", "constant"),
        id="constant-label",
    ),
    pytest.param(
        with_cell("length", "1000000"),
        ("length",),
        id="out-of-range-feature",
    ),
    pytest.param(lambda: gzip.compress(text(sample_lines())), ("csv",), id="gzip-named-csv"),
    pytest.param(lambda: bytes(range(256)) * 64, ("csv",), id="binary-named-csv"),
    pytest.param(semicolons, ("header",), id="wrong-delimiter"),
    pytest.param(
        duplicate_header,
        ("length", "duplicate"),
        id="duplicate-header",
    ),
]


@pytest.mark.parametrize(("content", "names"), BAD_DATASETS)
def test_a_bad_dataset_fails_its_run_naming_the_problem_and_registers_nothing(
    suite: Suite,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    content: Callable[[], bytes],
    names: tuple[str, ...],
) -> None:
    suite.count(request, "datasets")
    # Given a dataset with one thing wrong, uploaded under its own name
    data = tmp_path / f"bad-{request.node.callspec.id}.csv"
    data.write_bytes(content())
    before = suite.before()
    # When it is run
    outcome = suite.cli("run", "abalone", "--data", str(data))
    # Then the run fails, its error names the problem, nothing is registered and the other commands still work
    suite.failed_run(outcome, *names)
    suite.nothing_left(before, f"s3://{suite.bucket}/data/abalone/{data.name}")
    suite.others_still_work(rerun=True)


def _bom(lines: list[str]) -> bytes:
    return b"\xef\xbb\xbf" + text(lines)


def _crlf(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(_bom, id="bom"),
        pytest.param(_crlf, id="crlf"),
    ],
)
def test_a_bom_or_crlf_file_is_read_like_the_plain_one(
    suite: Suite, tmp_path: Path, request: pytest.FixtureRequest, encode: Callable[[list[str]], bytes]
) -> None:
    suite.count(request, "datasets")
    # Given the sample written with a byte-order mark or with CRLF line ends (positive controls)
    data = tmp_path / f"ok-{request.node.callspec.id}.csv"
    data.write_bytes(encode(sample_lines(1000)))
    # When it is run, Then it succeeds with the same columns as the plain file
    outcome = suite.cli("run", "abalone", "--data", str(data))
    summary: dict[str, Any] = outcome.answer
    assert outcome.code == 0 and summary["status"] in ("SUCCEEDED", "REJECTED"), (summary.get("error"), outcome.stderr)
    # (the schema preprocess wrote: the raw columns, the first without its byte-order mark)
    status = suite.cli("status", summary["run_id"], "--full")
    [preprocess] = [u for u in status.answer["units"] if u["name"] == "preprocess"]
    bucket, key = preprocess["outputs"]["schema_uri"].removeprefix("s3://").split("/", 1)
    schema = json.loads(suite.client("s3").get_object(Bucket=bucket, Key=f"{key}schema.json")["Body"].read())
    assert schema["columns"] == sample_lines()[0].split(","), schema
    suite.others_still_work(rerun=True)
