"""Split a tabular CSV into train/validation/test CSVs for SageMaker's built-in XGBoost.

Runs as a SageMaker Processing job in the sagemaker-scikit-learn 1.2-1 container, so it
stays compatible with that container's older Python and libraries: only the standard
library and numpy are used, and newer syntax appears in annotations only.

Input: one headered CSV in --input-dir. Output under --output-dir: train/train.csv,
validation/validation.csv and test/test.csv (label first, no header, no index, all numeric,
which is what the built-in algorithm's text/csv channels expect) and schema/schema.json (the raw
columns, label, categories and encoded feature order: what inference.py needs to encode raw rows),
smoke/raw.csv: the first test rows as they came in, without the label and without a header
(what a deployment's smoke test sends to the endpoint; row i is row i of test/test.csv), and
baseline/train.csv: the training split as it came in, with its header (what the data baseline that batch
input is checked against is made of).

Exit codes: 0 success; 1 bad input or arguments (reason in --message-file, which SageMaker
reports as the job's FailureReason); 2 unexpected error.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

DEFAULT_INPUT_DIR = "/opt/ml/processing/input/data"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/output"
DEFAULT_MESSAGE_FILE = "/opt/ml/output/message"
DEFAULT_CATEGORICAL = "sex=M,F,I"
SPLITS = ("train", "validation", "test")
SMOKE_ROWS = 100
# Cells spelled like this are treated as missing rather than as bad numbers.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
MAX_MESSAGE_BYTES = 1000
PARQUET_MAGIC = b"PAR1"


class InputError(Exception):
    """A problem with the job's input or arguments that the user can fix."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2 with usage only; route it through the message file instead.
        raise InputError(f"invalid arguments: {message}")


@dataclass
class Table:
    """A parsed CSV: stripped header names and string cells, plus source line numbers."""

    name: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def where(self, index: int) -> str:
        return f"data row {index + 1} (line {self.lines[index]})"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path(DEFAULT_INPUT_DIR))
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--message-file", type=Path, default=Path(DEFAULT_MESSAGE_FILE))
    parser.add_argument("--label", default="rings")
    parser.add_argument(
        "--categorical",
        action="append",
        metavar="COLUMN=CAT1,CAT2,...",
        help=f"one-hot encode COLUMN into COLUMN_CAT1, ... (repeatable; default {DEFAULT_CATEGORICAL}; "
        "giving it replaces the default, an empty value means no categorical columns)",
    )
    parser.add_argument(
        "--features",
        action="append",
        metavar="COL1,COL2,...",
        help="the data contract's feature columns (repeatable: the lists are joined, since one container argument "
        "holds at most 256 characters), in order: the file must have exactly these and the label "
        "(default: every column but the label, numeric ones in file order)",
    )
    parser.add_argument("--train-ratio", type=float, default=0.7)
    parser.add_argument("--validation-ratio", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # action="append" would add to a list default instead of replacing it.
    if args.categorical is None:
        args.categorical = [DEFAULT_CATEGORICAL]
    return args


def parse_categorical(specs: Sequence[str]) -> dict[str, list[str]]:
    categorical: dict[str, list[str]] = {}
    for spec in specs:
        if not spec.strip():
            continue
        column, sep, values = spec.partition("=")
        column = column.strip()
        categories = [value.strip() for value in values.split(",")]
        if not sep or not column or not all(categories):
            raise InputError(f"--categorical {spec!r}: expected COLUMN=CAT1,CAT2,...")
        if column in categorical:
            raise InputError(f"--categorical: column {column!r} is given more than once")
        if len(set(categories)) != len(categories):
            raise InputError(f"--categorical {spec!r}: categories must be distinct")
        categorical[column] = categories
    return categorical


def check_ratios(train_ratio: float, validation_ratio: float) -> None:
    test_ratio = 1.0 - train_ratio - validation_ratio
    # "not (a < x)" also rejects NaN, which argparse's float() accepts.
    if not (0.0 < train_ratio < 1.0 and 0.0 < validation_ratio < 1.0 and test_ratio > 1e-9):
        raise InputError(
            f"--train-ratio {train_ratio} and --validation-ratio {validation_ratio} must each be "
            "between 0 and 1 and leave a share for the test split (sum below 1)"
        )


def find_input_file(input_dir: Path) -> Path:
    if not input_dir.is_dir():
        raise InputError(f"input directory {input_dir} does not exist")
    entries = sorted(input_dir.iterdir())
    csv_files = [path for path in entries if path.is_file() and path.suffix.lower() == ".csv"]
    if not csv_files:
        found = ", ".join(path.name for path in entries) or "nothing"
        raise InputError(f"no *.csv file in {input_dir} (found: {found})")
    if len(csv_files) > 1:
        names = ", ".join(path.name for path in csv_files)
        raise InputError(f"expected exactly one *.csv file in {input_dir}, found {len(csv_files)}: {names}")
    return csv_files[0]


def decode_text(path: Path) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path.name} is empty")
    if raw.startswith(PARQUET_MAGIC):
        raise InputError(f"{path.name} is a Parquet file, not CSV")
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet exports often add.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path.name} is not a UTF-8 text CSV file (undecodable byte at offset {exc.start}); "
            "binary, compressed and Parquet files are not supported"
        ) from None
    if "\x00" in text:
        raise InputError(f"{path.name} contains NUL bytes; it looks like a binary file, not CSV")
    if text.lstrip()[:1] in ("{", "["):
        raise InputError(f"{path.name} looks like JSON, not CSV")
    return text


def read_table(path: Path) -> Table:
    text = decode_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            # Blank lines (often a trailing one) carry no data; skip rather than fail.
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            cells = [cell.strip() for cell in record]
            if header is None:
                header = cells
                continue
            if len(cells) != len(header):
                raise InputError(
                    f"{path.name}: data row {len(rows) + 1} (line {reader.line_num}) has "
                    f"{len(cells)} fields but the header has {len(header)}"
                )
            rows.append(cells)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(f"{path.name} could not be parsed as CSV: {exc}") from None
    if header is None:
        raise InputError(f"{path.name} is empty")
    if len(header) < 2:
        raise InputError(
            f"{path.name}: header {_show(','.join(header))} does not parse into more than one column; "
            "expected a comma-separated CSV file with a header row"
        )
    if not all(header):
        raise InputError(f"{path.name}: the header has an empty column name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{path.name}: duplicate column names in header: {', '.join(duplicates)}")
    if not rows:
        raise InputError(f"{path.name} has a header but no data rows")
    return Table(path.name, header, rows, lines)


def parse_features(specs: list[str] | None, label: str) -> list[str] | None:
    if specs is None:
        return None
    spec = ",".join(specs)
    features = [name.strip() for name in spec.split(",")]
    if not all(features) or len(set(features)) != len(features) or label in features:
        raise InputError(f"--features {spec!r}: expected distinct column names, without the label {label!r}")
    return features


def check_contract_columns(table: Table, label: str, features: list[str] | None) -> None:
    """With the contract's features, the file has exactly those columns and the label: an extra column (an id,
    say) never becomes a feature."""
    if features is None:
        return
    expected = [*features, label]
    extra = [name for name in table.header if name not in expected]
    missing = [name for name in expected if name not in table.header]
    problems = []
    if extra:
        problems.append(f"unknown column(s) {', '.join(extra)} (not in the data contract)")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        raise InputError(f"{table.name}: {'; '.join(problems)}")


def check_label_varies(table: Table, label: str, values: list[float]) -> None:
    if min(values) == max(values):
        raise InputError(
            f"label column {label!r} is constant ({format_number(values[0])} in every row of {table.name})"
        )


def check_columns(table: Table, label: str, categorical: dict[str, list[str]]) -> None:
    found = ", ".join(table.header)
    if label not in table.header:
        raise InputError(
            f"label column {label!r} not found in {table.name}; columns found: {found} (the first row must be a header)"
        )
    if label in categorical:
        raise InputError(f"label column {label!r} cannot also be --categorical")
    for column in categorical:
        if column not in table.header:
            raise InputError(f"--categorical column {column!r} not found in {table.name}; columns found: {found}")


def column_cells(table: Table, column: str) -> list[str]:
    index = table.header.index(column)
    cells = [row[index] for row in table.rows]
    for i, cell in enumerate(cells):
        if cell.lower() in MISSING_TOKENS:
            raise InputError(f"column {column!r}: missing value {_show(cell)} in {table.where(i)}")
    return cells


def numeric_column(table: Table, column: str) -> list[float]:
    values = []
    for i, cell in enumerate(column_cells(table, column)):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        # inf parses as a float but no model can use it, so it counts as non-numeric.
        if not math.isfinite(value):
            raise InputError(f"column {column!r}: non-numeric value {_show(cell)} in {table.where(i)}")
        values.append(value)
    return values


def one_hot_columns(table: Table, column: str, categories: list[str]) -> list[list[float]]:
    position = {category: k for k, category in enumerate(categories)}
    columns = [[0.0] * len(table.rows) for _ in categories]
    for i, cell in enumerate(column_cells(table, column)):
        k = position.get(cell)
        if k is None:
            raise InputError(
                f"column {column!r}: unknown category {_show(cell)} in {table.where(i)}; "
                f"expected one of {', '.join(categories)}"
            )
        columns[k][i] = 1.0
    return columns


def encode(
    table: Table, label: str, categorical: dict[str, list[str]], features: list[str] | None = None
) -> tuple[list[str], list[list[float]]]:
    """Return output column names (label first) and the column-major numeric values."""
    # Validate in file order so the user hears about the first problem in the file.
    encoded: dict[str, tuple[list[str], list[list[float]]]] = {}
    for column in table.header:
        if column in categorical:
            categories = categorical[column]
            names = [f"{column}_{category}" for category in categories]
            encoded[column] = (names, one_hot_columns(table, column, categories))
        else:
            encoded[column] = ([column], [numeric_column(table, column)])
    check_label_varies(table, label, encoded[label][1][0])
    # Label first, numeric features in contract (else file) order, then one-hot blocks in --categorical order.
    order = [label]
    order += [column for column in features or table.header if column != label and column not in categorical]
    order += list(categorical)
    out_names: list[str] = []
    out_columns: list[list[float]] = []
    for column in order:
        out_names += encoded[column][0]
        out_columns += encoded[column][1]
    duplicates = sorted({name for name in out_names if out_names.count(name) > 1})
    if duplicates:
        raise InputError(f"one-hot columns clash with existing columns: {', '.join(duplicates)}")
    return out_names, out_columns


def split_sizes(rows: int, train_ratio: float, validation_ratio: float) -> dict[str, int]:
    # The epsilon absorbs float error such as 0.29 * 100 == 28.999999999999996.
    train = int(rows * train_ratio + 1e-9)
    validation = int(rows * validation_ratio + 1e-9)
    sizes = {"train": train, "validation": validation, "test": rows - train - validation}
    if min(sizes.values()) < 1:
        counts = ", ".join(f"{split}={n}" for split, n in sizes.items())
        raise InputError(f"too few rows to split: {rows} data rows give {counts}; each split needs at least one row")
    return sizes


def format_number(value: float) -> str:
    # Integers without ".0" keep labels and one-hot flags compact; repr round-trips exactly.
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def write_splits(
    output_dir: Path, columns: list[list[float]], sizes: dict[str, int], seed: int
) -> dict[str, list[int]]:
    """Write the splits; returns each split's row indices, in the order its CSV has them."""
    rows = len(columns[0])
    # RandomState's stream is stable across numpy versions, so a seed gives the same split
    # locally and in the container.
    order = np.random.RandomState(seed).permutation(rows)
    start = 0
    written: dict[str, list[int]] = {}
    for split in SPLITS:
        indices = order[start : start + sizes[split]]
        start += sizes[split]
        path = output_dir / split / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n") as out:
            for i in indices:
                out.write(",".join(format_number(column[i]) for column in columns) + "\n")
        written[split] = [int(i) for i in indices]
    return written


def write_baseline_rows(output_dir: Path, table: Table, train_indices: list[int]) -> None:
    """The training split as it came in (header, raw columns, label included): what the data baseline is made of,
    since batch input arrives raw, not encoded."""
    path = output_dir / "baseline" / "train.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.header)
        writer.writerows(table.rows[i] for i in train_indices)


def write_smoke_rows(output_dir: Path, table: Table, label: str, test_indices: list[int]) -> None:
    """The first test rows as raw input (no label, no header), for the deployment's smoke test."""
    keep = [i for i, name in enumerate(table.header) if name != label]
    path = output_dir / "smoke" / "raw.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for index in test_indices[:SMOKE_ROWS]:
            writer.writerow([table.rows[index][i] for i in keep])


def write_schema(
    output_dir: Path, table: Table, categorical: dict[str, list[str]], names: list[str], sizes: dict[str, int]
) -> None:
    """What the encoding was fitted on: the raw columns in file order, the label, the categories of each
    categorical column, and the encoded feature order. Registration turns it into the preprocessing
    container's preprocessing.json, so an endpoint encodes raw rows exactly as the training rows were."""
    schema = {
        "label": names[0],
        "features": names[1:],
        "rows": sizes,
        "columns": table.header,
        "categorical": {column: categorical[column] for column in categorical},
    }
    path = output_dir / "schema" / "schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> str:
    categorical = parse_categorical(args.categorical)
    features = parse_features(args.features, args.label)
    check_ratios(args.train_ratio, args.validation_ratio)
    table = read_table(find_input_file(args.input_dir))
    check_contract_columns(table, args.label, features)
    check_columns(table, args.label, categorical)
    names, columns = encode(table, args.label, categorical, features)
    sizes = split_sizes(len(table.rows), args.train_ratio, args.validation_ratio)
    indices = write_splits(args.output_dir, columns, sizes, args.seed)
    write_schema(args.output_dir, table, categorical, names, sizes)
    write_smoke_rows(args.output_dir, table, args.label, indices["test"])
    write_baseline_rows(args.output_dir, table, indices["train"])
    counts = " ".join(f"{split}={n}" for split, n in sizes.items())
    return (
        f"preprocess: {len(table.rows)} rows from {table.name} -> {counts}; "
        f"label {names[0]!r} first, {len(names) - 1} features: {', '.join(names[1:])}"
    )


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


# The failure reporting below is repeated in each job script on purpose: a job ships and fingerprints
# its one script, so a helper module shared by scripts would change jobs without changing their hash.
def message_file_from(argv: Sequence[str]) -> Path:
    """Find --message-file without argparse, so even argument errors can be reported there."""
    for i, arg in enumerate(argv):
        if arg.startswith("--message-file="):
            return Path(arg.partition("=")[2])
        if arg == "--message-file" and i + 1 < len(argv):
            return Path(argv[i + 1])
    return Path(DEFAULT_MESSAGE_FILE)


def fail(message_file: Path, message: str, exit_code: int) -> int:
    line = message.replace("\r", " ").replace("\n", " ").strip()
    # Cut on a byte budget without splitting a UTF-8 sequence.
    line = line.encode("utf-8")[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore")
    print(line, file=sys.stderr)
    try:
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_text(line, encoding="utf-8")
    except OSError as exc:
        print(f"could not write message file {message_file}: {exc}", file=sys.stderr)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    message_file = message_file_from(argv)
    try:
        summary = run(parse_args(argv))
    except InputError as exc:
        return fail(message_file, str(exc), 1)
    except Exception as exc:
        traceback.print_exc()
        return fail(message_file, f"{type(exc).__name__}: {exc}", 2)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
