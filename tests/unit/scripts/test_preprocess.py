"""models/abalone/scripts/preprocess.py, run as the Processing job runs it: a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.container  # runs a job container's script or a model server: not in the fast tier

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "models" / "abalone" / "scripts" / "preprocess.py"
DATA = REPO / "models" / "abalone" / "data" / "abalone.csv"
DATA_ROWS = 4177
FEATURES = [
    "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight",
    "sex_M", "sex_F", "sex_I",
]  # fmt: skip


# The abalone data contract's features, in contract order (models/abalone/pipeline.json).
CONTRACT_FEATURES = [
    "sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight",
]  # fmt: skip


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    output_dir: Path
    message_file: Path

    @property
    def message(self) -> str:
        return self.message_file.read_text(encoding="utf-8")


def run_preprocess(tmp_path: Path, files: dict[str, bytes], *args: str) -> Result:
    input_dir = tmp_path / "input"
    input_dir.mkdir(parents=True)
    for name, content in files.items():
        (input_dir / name).write_bytes(content)
    output_dir = tmp_path / "output"
    message_file = tmp_path / "opt-ml-output" / "message"
    command = [
        sys.executable, str(SCRIPT),
        "--input-dir", str(input_dir), "--output-dir", str(output_dir), "--message-file", str(message_file),
        *args,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr, output_dir, message_file)


def sample(rows: int = 20) -> str:
    """The header and the first `rows` data rows of the real data set."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[: rows + 1]) + "\n"


def replace_cell(text: str, data_row: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[data_row].split(",")
    cells[header.index(column)] = value
    lines[data_row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def read_rows(path: Path) -> list[list[float]]:
    with path.open(newline="") as f:
        return [[float(cell) for cell in row] for row in csv.reader(f)]


def test_splits_the_real_data_into_numeric_headerless_csvs_with_the_label_first(tmp_path: Path) -> None:
    # Given the abalone data set
    # When preprocess runs with its defaults
    result = run_preprocess(tmp_path, {"abalone.csv": DATA.read_bytes()})

    # Then it succeeds and the three splits hold every row exactly once
    assert result.returncode == 0, result.stderr
    assert not result.message_file.exists()
    splits = {s: read_rows(result.output_dir / s / f"{s}.csv") for s in ("train", "validation", "test")}
    assert {s: len(rows) for s, rows in splits.items()} == {"train": 2923, "validation": 626, "test": 628}
    rows = [row for split in splits.values() for row in split]
    assert len(rows) == DATA_ROWS
    # And every row is the label then 10 features: 7 numeric + 3 one-hot (float() above proves no header)
    assert {len(row) for row in rows} == {1 + len(FEATURES)}
    with DATA.open(newline="") as f:
        source = list(csv.DictReader(f))
    assert sorted(row[0] for row in rows) == sorted(float(r["rings"]) for r in source)
    assert sorted(row[1] for row in rows) == sorted(float(r["length"]) for r in source)
    assert all(sum(row[8:]) == 1 and set(row[8:]) <= {0, 1} for row in rows)
    assert sum(row[8] for row in rows) == sum(r["sex"] == "M" for r in source)
    # And the schema records label, feature order, row counts and what the encoding was fitted on
    schema = json.loads((result.output_dir / "schema" / "schema.json").read_text())
    assert schema == {
        "label": "rings",
        "features": FEATURES,
        "rows": {"train": 2923, "validation": 626, "test": 628},
        "columns": list(source[0]),
        "categorical": {"sex": ["M", "F", "I"]},
    }
    assert "train=2923 validation=626 test=628" in result.stdout


def test_writes_the_raw_training_split_for_the_data_baseline(tmp_path: Path) -> None:
    # Given the abalone data set
    # When preprocess runs
    result = run_preprocess(tmp_path, {"abalone.csv": DATA.read_bytes()})
    assert result.returncode == 0, result.stderr

    # Then baseline/train.csv holds the training split as it came in: the header, then the raw rows of
    # train.csv in the same order (label included, sex still a letter)
    with (result.output_dir / "baseline" / "train.csv").open(newline="") as f:
        header, *raw = list(csv.reader(f))
    with DATA.open(newline="") as f:
        source_header, *source = list(csv.reader(f))
    assert header == source_header
    assert len(raw) == 2923
    encoded = read_rows(result.output_dir / "train" / "train.csv")
    assert [float(row[header.index("rings")]) for row in raw] == [row[0] for row in encoded]
    assert [float(row[header.index("length")]) for row in raw] == [row[1] for row in encoded]
    assert [row[header.index("sex")] for row in raw] == [("M", "F", "I")[row[8:].index(1)] for row in encoded]
    # each raw row is a source row, cell for cell
    assert all(row in source for row in raw[:50])


def test_the_split_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    # Given the same data processed twice with seed 7 and once with seed 8
    files = {"abalone.csv": sample(200).encode()}
    first = run_preprocess(tmp_path / "a", files, "--seed", "7")
    second = run_preprocess(tmp_path / "b", files, "--seed", "7")
    other = run_preprocess(tmp_path / "c", files, "--seed", "8")

    # Then equal seeds give byte-identical outputs and another seed a different split
    outputs = (
        "train/train.csv",
        "validation/validation.csv",
        "test/test.csv",
        "schema/schema.json",
        "baseline/train.csv",
    )
    for split in outputs:
        assert (first.output_dir / split).read_bytes() == (second.output_dir / split).read_bytes()
    assert (first.output_dir / "train/train.csv").read_bytes() != (other.output_dir / "train/train.csv").read_bytes()


def test_categorical_order_and_split_ratios_follow_the_arguments(tmp_path: Path) -> None:
    # Given categories listed in another order and a 50/25/25 split
    # When preprocess runs on 100 rows
    result = run_preprocess(
        tmp_path,
        {"data.csv": sample(100).encode()},
        "--categorical", "sex=I,F,M", "--train-ratio", "0.5", "--validation-ratio", "0.25",
    )  # fmt: skip

    # Then the one-hot columns follow that order and the split sizes the ratios
    assert result.returncode == 0, result.stderr
    schema = json.loads((result.output_dir / "schema" / "schema.json").read_text())
    assert schema["features"][-3:] == ["sex_I", "sex_F", "sex_M"]
    assert schema["categorical"] == {"sex": ["I", "F", "M"]}
    assert schema["rows"] == {"train": 50, "validation": 25, "test": 25}


BAD_INPUTS = {
    "empty file": ({"data.csv": b""}, (), ["data.csv is empty"]),
    "header only": ({"data.csv": sample(0).encode()}, (), ["no data rows"]),
    "binary garbage": ({"data.csv": bytes(range(256)) * 8}, (), ["not a UTF-8 text CSV"]),
    "parquet file": ({"data.csv": b"PAR1\x15\x04\x15\x80\x01" + bytes(200) + b"PAR1"}, (), ["Parquet"]),
    "json file": ({"data.csv": b'[{"sex": "M", "rings": 15}]'}, (), ["looks like JSON"]),
    "one column": ({"data.csv": b"hello\nworld\n"}, (), ["'hello'", "more than one column"]),
    "missing label": (
        {"data.csv": sample(5).replace("rings", "age").encode()},
        (),
        ["label column 'rings' not found", "columns found: sex, length", "age"],
    ),
    "non-numeric feature": (
        {"data.csv": replace_cell(sample(), 3, "length", "abc").encode()},
        (),
        ["column 'length'", "non-numeric value 'abc'", "data row 3"],
    ),
    "non-numeric label": (
        {"data.csv": replace_cell(sample(), 7, "rings", "old").encode()},
        (),
        ["column 'rings'", "'old'", "data row 7"],
    ),
    "missing value": (
        {"data.csv": replace_cell(sample(), 2, "diameter", "").encode()},
        (),
        ["column 'diameter'", "missing value", "data row 2"],
    ),
    "unknown category": (
        {"data.csv": replace_cell(sample(), 4, "sex", "X").encode()},
        (),
        ["column 'sex'", "unknown category 'X'", "data row 4", "M, F, I"],
    ),
    "ragged row": (
        {"data.csv": replace_cell(sample(), 3, "rings", "10,1").encode()},
        (),
        ["data row 3 (line 4)", "10 fields but the header has 9"],
    ),
    "too few rows": ({"data.csv": sample(3).encode()}, (), ["too few rows to split", "3 data rows"]),
    "two csv files": (
        {"a.csv": sample().encode(), "b.csv": sample().encode()},
        (),
        ["exactly one", "a.csv, b.csv"],
    ),
    "no csv file": ({"data.parquet": b"PAR1"}, (), ["no *.csv file", "data.parquet"]),
    "bad ratios": (
        {"data.csv": sample().encode()},
        ("--train-ratio", "0.9", "--validation-ratio", "0.2"),
        ["sum"],
    ),
    "unknown argument": ({"data.csv": sample().encode()}, ("--bogus",), ["unrecognized arguments: --bogus"]),
    "constant label": (
        {
            "data.csv": "\n".join(
                line.rsplit(",", 1)[0] + ",8" if i else line for i, line in enumerate(sample().splitlines())
            ).encode()
        },
        (),
        ["label column 'rings' is constant (8 in every row"],
    ),
    "extra column under a contract": (
        {
            "data.csv": "\n".join(
                f"{line},{'id' if i == 0 else i}" for i, line in enumerate(sample().splitlines())
            ).encode()
        },
        ("--features", ",".join(CONTRACT_FEATURES)),
        ["unknown column(s) id (not in the data contract)"],
    ),
    "missing column under a contract": (
        {"data.csv": sample().encode()},
        ("--features", ",".join([*CONTRACT_FEATURES, "age"])),
        ["missing column(s) age"],
    ),
    "label among the features": (
        {"data.csv": sample().encode()},
        ("--features", "sex,rings"),
        ["--features 'sex,rings'", "without the label 'rings'"],
    ),
}


@pytest.mark.parametrize(("files", "args", "expected"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_fails_with_a_one_line_reason(
    tmp_path: Path, files: dict[str, bytes], args: tuple[str, ...], expected: list[str]
) -> None:
    # Given a bad input file or argument
    # When preprocess runs
    result = run_preprocess(tmp_path, files, *args)

    # Then it exits 1 without a traceback and the message file says what is wrong
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    message = result.message
    for fragment in expected:
        assert fragment in message
    assert "\n" not in message
    assert message in result.stderr
    assert not (result.output_dir / "train").exists()


def test_a_long_reason_is_cut_to_1000_bytes(tmp_path: Path) -> None:
    # Given a file without the label among 400 non-ASCII column names
    header = ",".join(f"größe_{i}" for i in range(400))
    files = {"data.csv": f"{header}\n{','.join('1' * 400)}\n".encode()}

    # When preprocess runs
    result = run_preprocess(tmp_path, files)

    # Then the message is cut to 1000 bytes of valid UTF-8
    assert result.returncode == 1
    raw = result.message_file.read_bytes()
    assert 900 < len(raw) <= 1000
    assert raw.decode("utf-8").startswith("label column 'rings' not found")


def test_an_unexpected_error_exits_2_with_its_type_in_the_message(tmp_path: Path) -> None:
    # Given an output "directory" that is a regular file, so writing the splits fails
    (tmp_path / "output").write_text("not a directory")

    # When preprocess runs on good data
    result = run_preprocess(tmp_path, {"data.csv": sample().encode()})

    # Then it exits 2, keeping the traceback on stderr and the error type in the message file
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.message.startswith(("FileExistsError: ", "NotADirectoryError: "))


@pytest.mark.parametrize(
    ("variant", "transform"),
    [
        ("BOM", lambda text: b"\xef\xbb\xbf" + text.encode()),
        ("CRLF", lambda text: text.replace("\n", "\r\n").encode()),
        ("BOM and CRLF", lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()),
    ],
)
def test_a_bom_or_crlf_file_gives_the_same_splits_as_the_plain_one(
    tmp_path: Path, variant: str, transform: Any
) -> None:
    # Given the same rows as a plain file and as a BOM/CRLF file
    plain = run_preprocess(tmp_path / "plain", {"data.csv": sample(40).encode()})
    other = run_preprocess(tmp_path / "other", {"data.csv": transform(sample(40))})
    # Then both succeed with byte-identical splits and the first column is still named 'sex'
    assert plain.returncode == 0 and other.returncode == 0, other.stderr
    for split in ("train", "validation", "test"):
        path = Path(split) / f"{split}.csv"
        assert (other.output_dir / path).read_bytes() == (plain.output_dir / path).read_bytes(), variant
    schema = json.loads((other.output_dir / "schema" / "schema.json").read_text())
    assert schema["columns"][0] == "sex"


def test_the_contract_features_are_exactly_the_encoded_features_in_contract_order(tmp_path: Path) -> None:
    # Given the contract's features in an order other than the file's
    features = [
        "sex",
        "shell_weight",
        "length",
        "diameter",
        "height",
        "whole_weight",
        "shucked_weight",
        "viscera_weight",
    ]
    result = run_preprocess(tmp_path, {"data.csv": sample(40).encode()}, "--features", ",".join(features))
    # Then numeric features follow the contract's order, then the one-hot block
    assert result.returncode == 0, result.stderr
    schema = json.loads((result.output_dir / "schema" / "schema.json").read_text())
    assert schema["features"] == [*features[1:], "sex_M", "sex_F", "sex_I"]
