"""models/churn/scripts/preprocess.py (PySpark), run as the preprocess job runs it: a subprocess, here on PySpark in
local mode. Skipped, saying why, without a Python that has PySpark (see churn_spark.spark_python)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.unit.scripts.churn_spark import (
    DATA,
    SCRIPT,
    SKIP_REASON,
    contract_arguments,
    main_in_one_process,
    spark_python,
)

pytestmark = [pytest.mark.spark, pytest.mark.skipif(spark_python() is None, reason=SKIP_REASON)]

SPLIT_FILES = {"train/train.csv", "validation/validation.csv", "test/test.csv"}
OUTPUT_FILES = SPLIT_FILES | {"schema/schema.json", "smoke/raw.csv", "baseline/train.csv"}
ENCODED_WIDTH = 1 + 15 + 51 + 3 + 2 + 2  # label, numeric columns, one-hot state, area code and the two plans


@dataclass
class Runs:
    first: Path
    again: Path  # the same seed
    other_seed: Path


@dataclass
class Batch:
    """Every run, in one Spark process (the JVM's start is most of a small run's time): seed 42, seed 42 again in a
    new Spark session, another seed, then the bad inputs."""

    root: Path
    codes: list[int]
    stderr: str


def _argv(input_dir: Path, output_dir: Path, message: Path, *extra: str) -> list[str]:
    return ["--input-dir", str(input_dir), "--output-dir", str(output_dir), "--message-file", str(message), *extra]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    root = tmp_path_factory.mktemp("churn-preprocess")
    (root / "input").mkdir()
    (root / "input" / "churn.csv").write_bytes(DATA.read_bytes())
    plan = [
        _argv(root / "input", root / name, root / f"{name}.message", *contract_arguments(), "--seed", seed)
        for name, seed in (("first", "42"), ("again", "42"), ("other_seed", "7"))
    ]
    for i, (content, extra, _) in enumerate(_cases().values()):
        (root / f"in{i}").mkdir()
        (root / f"in{i}" / "data.csv").write_text(content)
        plan.append(_argv(root / f"in{i}", root / f"out{i}", root / f"message{i}", *extra))
    codes, stderr = main_in_one_process(plan)
    return Batch(root, codes, stderr)


@pytest.fixture(scope="module")
def runs(batch: Batch) -> Runs:
    assert batch.codes[:3] == [0, 0, 0], batch.stderr[-3000:]
    return Runs(batch.root / "first", batch.root / "again", batch.root / "other_seed")


def raw_rows() -> tuple[list[str], list[list[str]]]:
    with DATA.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def split(output: Path, name: str) -> np.ndarray:
    return np.loadtxt(output / name / f"{name}.csv", delimiter=",", ndmin=2)


def test_the_splits_are_70_15_15_and_every_split_has_the_data_churn_rate(runs: Runs) -> None:
    # Given the 5000 churn rows (707 churners), When preprocess splits them 70/15/15
    _, rows = raw_rows()
    overall = sum(row[-1] == "yes" for row in rows) / len(rows)
    sizes = {name: len(split(runs.first, name)) for name in ("train", "validation", "test")}
    # Then the split sizes are abalone's (the same rounding), and each split's churn rate is the data's within 1 pp
    assert sizes == {"train": 3500, "validation": 750, "test": 750}
    for name in sizes:
        rate = float(split(runs.first, name)[:, 0].mean())
        assert abs(rate - overall) < 0.01, (name, rate, overall)


def test_the_label_is_first_as_0_or_1_and_every_value_is_numeric(runs: Runs) -> None:
    for name in ("train", "validation", "test"):
        data = split(runs.first, name)
        assert data.shape[1] == ENCODED_WIDTH
        assert set(np.unique(data[:, 0])) == {0.0, 1.0}
        assert np.isfinite(data).all()
        # each categorical column is one-hot: exactly one 1 per block
        one_hot = data[:, 16:]
        blocks = [(0, 51), (51, 54), (54, 56), (56, 58)]
        for start, end in blocks:
            np.testing.assert_array_equal(one_hot[:, start:end].sum(axis=1), 1)


def test_the_outputs_are_one_plain_file_each_without_hidden_or_marker_files(runs: Runs) -> None:
    # The built-in algorithm refuses hidden files in a channel; Spark's .crc and _SUCCESS files must not be there
    found = {str(path.relative_to(runs.first)) for path in runs.first.rglob("*") if path.is_file()}
    assert found == OUTPUT_FILES
    assert not [path for path in runs.first.rglob("*") if path.name.startswith((".", "_"))]


def test_the_schema_says_what_was_fitted_and_registration_accepts_it(runs: Runs) -> None:
    from sfn_mlops.registry import preprocessing_document

    header, _ = raw_rows()
    schema = json.loads((runs.first / "schema" / "schema.json").read_text())
    contract = json.loads((SCRIPT.parents[1] / "pipeline.json").read_text())["data"]["contract"]
    categorical = {f["name"]: f["domain"] for f in contract["features"] if f["type"] == "categorical"}
    numeric = [name for name in header if name != "churn" and name not in categorical]
    one_hot = [f"{column}_{value}" for column, values in categorical.items() for value in values]
    assert schema["label"] == "churn" and schema["columns"] == header
    assert schema["categorical"] == categorical
    assert schema["features"] == numeric + one_hot
    assert schema["rows"] == {"train": 3500, "validation": 750, "test": 750}
    assert schema["classes"] == ["no", "yes"] and schema["positive"] == "yes"
    document = preprocessing_document(schema, "schema.json")
    assert document["input_columns"] == header[:-1]


def test_the_baseline_is_the_raw_training_split_and_the_smoke_rows_the_first_raw_test_rows(runs: Runs) -> None:
    header, rows = raw_rows()
    with (runs.first / "baseline" / "train.csv").open(newline="") as f:
        baseline_header, *baseline = list(csv.reader(f))
    # The baseline holds the training rows as they came in, in train.csv's order (their labels agree)
    assert baseline_header == header and len(baseline) == 3500
    train_labels = split(runs.first, "train")[:, 0]
    assert [1.0 if row[-1] == "yes" else 0.0 for row in baseline] == list(train_labels)
    assert all(row in rows for row in baseline[:50])
    # The smoke rows are the first 100 test rows without the label, no header
    smoke = list(csv.reader(io.StringIO((runs.first / "smoke" / "raw.csv").read_text())))
    assert len(smoke) == 100 and all(len(row) == len(header) - 1 for row in smoke)
    test = split(runs.first, "test")
    for row, encoded in zip(smoke[:20], test[:20], strict=False):
        assert float(row[1]) == encoded[1]  # account_length, the first numeric column
        assert encoded[16 + sorted(set(r[0] for r in rows)).index(row[0])] == 1  # its state's one-hot flag


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_splits(runs: Runs) -> None:
    for name in OUTPUT_FILES:
        assert (runs.first / name).read_bytes() == (runs.again / name).read_bytes(), name
    assert (runs.first / "train" / "train.csv").read_bytes() != (runs.other_seed / "train" / "train.csv").read_bytes()
    # Still stratified and the same sizes under the other seed
    assert len(split(runs.other_seed, "test")) == 750


def _csv(rows: list[list[str]], header: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue()


def _cases() -> dict[str, tuple[str, list[str], str]]:
    """name -> (file content, extra arguments, expected message fragment)."""
    header, rows = raw_rows()
    rows = [list(row) for row in rows[:300]]

    def changed(index: int, column: str, value: str) -> list[list[str]]:
        copy = [list(row) for row in rows]
        copy[index][header.index(column)] = value
        return copy

    base = contract_arguments()
    ragged = _csv(rows[:3], header) + ",".join(rows[3]) + ",extra\n" + _csv(rows[4:], header).split("\n", 1)[1]
    few_churners = [[*row[:-1], "no"] for row in rows]
    few_churners[0][-1] = few_churners[1][-1] = "yes"
    return {
        "column not in the contract": (
            _csv([[*row, str(i)] for i, row in enumerate(rows)], [*header, "customer_id"]), base,
            "unknown column(s) customer_id (not in the data contract)",
        ),
        "unknown category": (_csv(changed(2, "state", "ZZ"), header), base,
                             "column 'state': unknown category 'ZZ' in data row 3; expected one of AK, AL"),
        "missing label": (_csv(changed(4, "churn", ""), header), base,
                          "column 'churn': missing value '' in data row 5"),
        "non-numeric cell": (_csv(changed(1, "total_day_minutes", "lots"), header), base,
                             "column 'total_day_minutes': non-numeric value 'lots' in data row 2"),
        "ragged row": (ragged, base, "data row 4 has another field count than the header's 20"),
        "a third label value": (_csv(changed(7, "churn", "maybe"), header), base, "has more than two values"),
        "positive class not in the data": (_csv(rows, header), [*base[:2], "--positive-label", "True.", *base[4:]],
                                           "--positive-label 'True.' is not a value of label column 'churn'"),
        "constant label": (_csv([[*row[:-1], "no"] for row in rows], header), base, "is constant ('no'"),
        "too few churners to stratify": (_csv(few_churners, header), base, "too few rows of label class 1 to stratify"),
    }  # fmt: skip


def test_bad_input_fails_with_exit_1_and_a_one_line_reason(batch: Batch) -> None:
    # Given one bad file per case, each run by the script's main in one Spark-enabled process (one JVM for all)
    codes = batch.codes[3:]
    # Then each exits 1, its message file names the problem on one line, and no split was written
    for i, (name, (_, _, expected)) in enumerate(_cases().items()):
        message = (batch.root / f"message{i}").read_text()
        assert codes[i] == 1, (name, message)
        assert expected in message and "\n" not in message, (name, message)
        assert not (batch.root / f"out{i}" / "train" / "train.csv").exists(), name
    assert "Traceback" not in batch.stderr


def test_the_smoke_rows_encode_in_the_package_exactly_as_preprocess_encoded_the_test_rows(
    runs: Runs, tmp_path: Path
) -> None:
    # Given churn preprocessed by its PySpark script, and the package's preprocessing built from its schema.json
    from tests.unit.scripts.test_churn_inference import container_module, encode, package_model

    schema = json.loads((runs.first / "schema" / "schema.json").read_text())
    model_dir = package_model(schema, tmp_path)
    module = container_module(model_dir)
    model = module.model_fn(str(model_dir))
    # When the smoke rows (the first raw test rows) are encoded by the endpoint's first container
    encoded = encode(module, model, (runs.first / "smoke" / "raw.csv").read_text())
    # Then they are, value for value and in order, the features preprocess wrote for those test rows
    test_rows = (runs.first / "test" / "test.csv").read_text().splitlines()[:100]
    assert encoded.splitlines() == [line.split(",", 1)[1] for line in test_rows]
