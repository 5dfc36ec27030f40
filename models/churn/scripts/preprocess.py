"""Split a tabular CSV into stratified train/validation/test CSVs for SageMaker's built-in XGBoost, with PySpark.

A binary classification's preprocess. It runs as a SageMaker Processing job on the sagemaker-spark-processing 3.5
image (spark-submit starts it; the image's Python is 3.12 (tag py312); the syntax stays 3.9-compatible), and locally
as ``python preprocess.py ...`` with PySpark installed, which starts Spark in local mode. Besides PySpark it uses
only the standard library.

Arguments and outputs are those of the abalone pipeline's preprocess.py, so the same job request serves both:
one headered CSV in --input-dir; under --output-dir train/train.csv, validation/validation.csv and test/test.csv
(label first as 0/1, no header, all numeric: what the built-in algorithm's text/csv channels expect),
schema/schema.json (the raw columns, label, categories, encoded feature order and the label's classes: what
inference.py encodes raw rows with), smoke/raw.csv (the first test rows as they came in, without the label or a
header; row i is row i of test/test.csv) and baseline/train.csv (the training split as it came in, with its
header). Features are encoded as inference.py encodes them: the numeric columns in file order, then each
categorical column one-hot in its --categorical order.

The label is 0/1 already, or two values of text: --positive-label names the one encoded 1 (the data contract's
``label.positive``); without it the value spelled like "yes"/"true"/"1" is, else the rarer one (the rule
sfn_mlops.contract_check infers a contract's positive class with). The splits are stratified: each class is cut
70/15/15 (the given ratios) on its own, on a per-row key hashed from the seed and the row's position in the file,
so a seed gives the same splits wherever Spark runs and however it partitions the file.

Spark writes part files with hidden .crc siblings and a _SUCCESS marker, which the built-in algorithm refuses in a
channel, and on a cluster an executor writes to its own disk. So Spark reads, checks, encodes and splits, and the
driver streams each split in order (toLocalIterator: one partition in memory at a time) into one plain file.

Exit codes: 0 success; 1 bad input or arguments (reason in --message-file, which SageMaker reports as the job's
FailureReason); 2 unexpected error.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_INPUT_DIR = "/opt/ml/processing/input/data"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/output"
DEFAULT_MESSAGE_FILE = "/opt/ml/output/message"
DEFAULT_LABEL = "churn"
DEFAULT_CATEGORICAL = [
    "state=AK,AL,AR,AZ,CA,CO,CT,DC,DE,FL,GA,HI,IA,ID,IL,IN,KS,KY,LA,MA,MD,ME,MI,MN,MO,MS,MT,NC,ND,NE,NH,NJ,NM,NV,"
    "NY,OH,OK,OR,PA,RI,SC,SD,TN,TX,UT,VA,VT,WA,WI,WV,WY",
    "area_code=area_code_408,area_code_415,area_code_510",
    "international_plan=no,yes",
    "voice_mail_plan=no,yes",
]
SPLITS = ("train", "validation", "test")
SMOKE_ROWS = 100
# Cells spelled like this are missing values (as abalone's preprocess.py and the data contract read them).
MISSING_TOKENS = ("", "na", "n/a", "nan", "null", "none", "?")
# A label value spelled like one of these (case and a trailing "." aside) is the positive class.
POSITIVE_TOKENS = frozenset({"1", "true", "t", "yes", "y", "positive", "pos"})
MAX_MESSAGE_BYTES = 1000
PARQUET_MAGIC = b"PAR1"
CHECK_CHUNK = 1 << 20
# Internal column names; a data column with one of these names is refused.
IDX, KEY, CLASS, RANK, SPLIT, CORRUPT = "_row", "_key", "_class", "_rank", "_split", "_corrupt_record"


class InputError(Exception):
    """A problem with the job's input or arguments that the user can fix."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2 with usage only; route it through the message file instead.
        raise InputError(f"invalid arguments: {message}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path(DEFAULT_INPUT_DIR))
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--message-file", type=Path, default=Path(DEFAULT_MESSAGE_FILE))
    parser.add_argument("--label", default=DEFAULT_LABEL)
    parser.add_argument(
        "--positive-label",
        metavar="VALUE",
        help="the label value encoded 1 when the label is text (the data contract's label.positive)",
    )
    parser.add_argument(
        "--categorical",
        action="append",
        metavar="COLUMN=CAT1,CAT2,...",
        help="one-hot encode COLUMN into COLUMN_CAT1, ... (repeatable; default: churn's four categorical columns; "
        "giving it replaces the default, an empty value means no categorical columns)",
    )
    parser.add_argument(
        "--features",
        action="append",
        metavar="COL1,COL2,...",
        help="the data contract's feature columns (repeatable: the lists are joined, since one container argument "
        "holds at most 256 characters): the file must have exactly these and the label "
        "(default: every column but the label)",
    )
    parser.add_argument("--train-ratio", type=float, default=0.7)
    parser.add_argument("--validation-ratio", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # action="append" would add to a list default instead of replacing it.
    if args.categorical is None:
        args.categorical = list(DEFAULT_CATEGORICAL)
    return args


# --- arguments and the file, checked on the driver before Spark starts ---


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


def parse_features(specs: list[str] | None, label: str) -> list[str] | None:
    if specs is None:
        return None
    spec = ",".join(specs)
    features = [name.strip() for name in spec.split(",")]
    if not all(features) or len(set(features)) != len(features) or label in features:
        raise InputError(f"--features {spec!r}: expected distinct column names, without the label {label!r}")
    return features


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


def check_text(path: Path) -> None:
    """The file is UTF-8 CSV text, read in chunks (Spark would read bad bytes as U+FFFD without a word)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    start = b""
    with path.open("rb") as f:
        while True:
            chunk = f.read(CHECK_CHUNK)
            if not chunk:
                break
            if offset == 0:
                start = chunk.lstrip()
                if chunk.startswith(PARQUET_MAGIC):
                    raise InputError(f"{path.name} is a Parquet file, not CSV")
            if b"\x00" in chunk:
                raise InputError(f"{path.name} contains NUL bytes; it looks like a binary file, not CSV")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path.name} is not a UTF-8 text CSV file (undecodable byte at offset {offset + exc.start}); "
                    "binary, compressed and Parquet files are not supported"
                ) from None
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not a UTF-8 text CSV file (it ends mid-character)") from None
    if not start.strip(b"\xef\xbb\xbf \t\r\n"):
        raise InputError(f"{path.name} is empty")
    if start.lstrip(b"\xef\xbb\xbf")[:1] in (b"{", b"["):
        raise InputError(f"{path.name} looks like JSON, not CSV")


def read_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        try:
            for record in csv.reader(f):
                if record and not (len(record) == 1 and not record[0].strip()):
                    header = [cell.strip() for cell in record]
                    break
            else:
                raise InputError(f"{path.name} is empty")
        except csv.Error as exc:
            raise InputError(f"{path.name}: the header could not be parsed as CSV: {exc}") from None
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
    reserved = [name for name in header if name in (IDX, KEY, CLASS, RANK, SPLIT, CORRUPT)]
    if reserved:
        raise InputError(f"{path.name}: column name(s) {', '.join(reserved)} are reserved by preprocess")
    return header


def check_columns(
    name: str, header: list[str], label: str, categorical: dict[str, list[str]], features: list[str] | None
) -> None:
    """The label and every --categorical column are in the file; with the contract's features, the file has exactly
    those and the label: an extra column (an id, say) never becomes a feature."""
    if features is not None:
        expected = [*features, label]
        extra = [column for column in header if column not in expected]
        missing = [column for column in expected if column not in header]
        problems = []
        if extra:
            problems.append(f"unknown column(s) {', '.join(extra)} (not in the data contract)")
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if problems:
            raise InputError(f"{name}: {'; '.join(problems)}")
    found = ", ".join(header)
    if label not in header:
        raise InputError(
            f"label column {label!r} not found in {name}; columns found: {found} (the first row must be a header)"
        )
    if label in categorical:
        raise InputError(f"label column {label!r} cannot also be --categorical")
    for column in categorical:
        if column not in header:
            raise InputError(f"--categorical column {column!r} not found in {name}; columns found: {found}")


def positive_class(counts: dict[str, int]) -> str:
    """The positive class of a two-valued label: the one spelled like "yes", else the rarer (ties: the later)."""
    named = [value for value in counts if value.lower().rstrip(".") in POSITIVE_TOKENS]
    if len(named) == 1:
        return named[0]
    return min(sorted(counts, reverse=True), key=lambda value: counts[value])


def split_sizes(rows: int, train_ratio: float, validation_ratio: float) -> dict[str, int]:
    # The epsilon absorbs float error such as 0.29 * 100 == 28.999999999999996.
    train = int(rows * train_ratio + 1e-9)
    validation = int(rows * validation_ratio + 1e-9)
    sizes = {"train": train, "validation": validation, "test": rows - train - validation}
    if min(sizes.values()) < 1:
        counts = ", ".join(f"{split}={n}" for split, n in sizes.items())
        raise InputError(f"too few rows to split: {rows} data rows give {counts}; each split needs at least one row")
    return sizes


def class_quotas(
    counts: dict[int, int], sizes: dict[str, int], train_ratio: float, validation_ratio: float
) -> dict[int, dict[str, int]]:
    """Each class's rows per split: the split totals are abalone's, shared among the classes in proportion to their
    sizes (largest remainder), so every split has the data's class balance to within a row."""
    quotas: dict[int, dict[str, int]] = {c: {} for c in counts}
    for split, ratio in (("train", train_ratio), ("validation", validation_ratio)):
        shares = {c: n * ratio for c, n in counts.items()}
        for c, share in shares.items():
            quotas[c][split] = int(share + 1e-9)
        left = sizes[split] - sum(quotas[c][split] for c in counts)
        for c in sorted(counts, key=lambda c: (-(shares[c] - int(shares[c] + 1e-9)), c))[: max(left, 0)]:
            quotas[c][split] += 1
    for c, n in counts.items():
        quotas[c]["test"] = n - quotas[c]["train"] - quotas[c]["validation"]
        short = [split for split in SPLITS if quotas[c][split] < 1]
        if short:
            raise InputError(
                f"too few rows of label class {c} to stratify: its {n} rows leave none for {', '.join(short)}; "
                "each split needs rows of both classes"
            )
    return quotas


def format_number(value: float) -> str:
    # Integers without ".0" keep labels and one-hot flags compact; repr round-trips exactly.
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


# --- Spark: read, check, encode, split ---


def spark_session() -> Any:
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName("mlops-preprocess")
        # Casts that fail give null (checked below), not an exception, whatever the image's default.
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def read_rows(spark: Any, path: Path, header: list[str]) -> Any:
    """Every data row as strings (stripped; an empty cell is null), with ``_row`` increasing in file order."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(name, StringType()) for name in [*header, CORRUPT]])
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("ignoreLeadingWhiteSpace", True)
        .option("ignoreTrailingWhiteSpace", True)
        .option("escape", '"')
        .option("encoding", "UTF-8")
        .schema(schema)
        .csv(path.resolve().as_uri())
    )
    # Increasing in file order but not consecutive (it depends on the partitioning): it orders rows for error
    # messages only, never the splits.
    rows = raw.withColumn(IDX, F.monotonically_increasing_id())
    # A line of spaces is blank, as abalone's reader skips it: one empty field, flagged as a short record.
    blank = F.col(CORRUPT).isNotNull() & (F.trim(F.col(CORRUPT)) == "")
    return rows.where(~blank)


def column_ref(name: str) -> Any:
    """A data column by its name, quoted: a dot in a CSV header is part of the name, not a struct field."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _missing(column: Any) -> Any:
    from pyspark.sql import functions as F

    return column.isNull() | F.lower(column).isin(*MISSING_TOKENS)


def _as_number(column: Any) -> Any:
    """The cell as a finite double, else null."""
    from pyspark.sql import functions as F

    number = column.cast("double")
    finite = ~F.isnan(number) & (F.abs(number) != float("inf"))
    return F.when(finite, number)


def check_rows(rows: Any, header: list[str], label: str, categorical: dict[str, list[str]], name: str) -> None:
    """One aggregation over every cell; the first problem in file order is reported, with how many rows share it."""
    from pyspark.sql import functions as F

    rules: list[tuple[str, str, str, Any]] = [("<any>", "wrong field count", "", F.col(CORRUPT).isNotNull())]
    for column in header:
        cell = column_ref(column)
        rules.append((column, "missing value", "", _missing(cell)))
        if column == label:
            continue
        if column in categorical:
            expected = f"; expected one of {', '.join(categorical[column])}"
            rules.append((column, "unknown category", expected, ~_missing(cell) & ~cell.isin(*categorical[column])))
        else:
            hint = " (make the column categorical, or fix the cell)"
            rules.append((column, "non-numeric value", hint, ~_missing(cell) & _as_number(cell).isNull()))
    aggregates = []
    for i, (_, _, _, bad) in enumerate(rules):
        aggregates += [F.sum(bad.cast("long")).alias(f"n{i}"), F.min(F.when(bad, F.col(IDX))).alias(f"first{i}")]
    totals = rows.agg(F.count(F.lit(1)).alias("rows"), *aggregates).collect()[0]
    if not totals["rows"]:
        raise InputError(f"{name} has a header but no data rows")
    found = [(totals[f"first{i}"], i) for i in range(len(rules)) if totals[f"n{i}"]]
    if not found:
        return
    first, i = min(found)
    column, what, hint, _ = rules[i]
    more = totals[f"n{i}"] - 1
    others = f" and {more} more row(s)" if more else ""
    culprit = rows.where(F.col(IDX) == first).collect()[0]
    number = rows.where(F.col(IDX) < first).count() + 1
    if column == "<any>":
        line = culprit[CORRUPT] or ""
        raise InputError(
            f"{name}: data row {number}{others} has another field count than the header's {len(header)} "
            f"(row {_show(line)})"
        )
    value = culprit[column] if culprit[column] is not None else ""
    raise InputError(f"column {column!r}: {what} {_show(value)} in data row {number}{others}{hint}")


def label_encoding(
    counts: dict[str, int], label: str, positive: str | None, name: str
) -> tuple[list[str], dict[int, int], Any]:
    """From the label values' counts: the classes (encoded 0, 1), the rows per class and the 0/1 column. A numeric
    label must be 0/1 already; a text label has two values, ``positive`` (or positive_class's pick) encoded 1."""
    from pyspark.sql import functions as F

    cell = column_ref(label)
    if len(counts) < 2:
        value = next(iter(counts), "")
        raise InputError(f"label column {label!r} is constant ({_show(value)} in every row of {name})")
    numbers: dict[str, float] = {}
    for value in counts:
        try:
            numbers[value] = float(value)
        except ValueError:
            break
    if positive is None and len(numbers) == len(counts):
        if len(counts) > 2 or not set(numbers.values()) <= {0.0, 1.0}:
            shown = ", ".join(sorted(counts)[:5])
            raise InputError(f"label column {label!r} is numeric but not 0/1 (values include {shown}): not binary")
        per_class = {int(numbers[value]): n for value, n in counts.items()}
        if len(per_class) < 2:
            raise InputError(f"label column {label!r} is constant ({_show(next(iter(counts)))} in every row of {name})")
        return ["0", "1"], per_class, _as_number(cell)
    if len(counts) > 2:
        shown = ", ".join(_show(v) for v in sorted(counts)[:5])
        raise InputError(f"label column {label!r} has more than two values ({shown}, ...): not a binary label")
    if positive is None:
        positive = positive_class(counts)
    elif positive not in counts:
        shown = ", ".join(_show(v) for v in sorted(counts))
        raise InputError(f"--positive-label {positive!r} is not a value of label column {label!r} (it has {shown})")
    negative = next(value for value in counts if value != positive)
    per_class = {0: counts[negative], 1: counts[positive]}
    return [negative, positive], per_class, F.when(cell == positive, F.lit(1.0)).otherwise(F.lit(0.0))


def assign_splits(
    rows: Any, header: list[str], target: Any, quotas: dict[int, dict[str, int]], seed: int
) -> tuple[Any, list[Any]]:
    """``_split`` per row: within each class, rows in the order of a key hashed from the seed and the row's cells,
    the first ``train`` of them to train, the next ``validation`` to validation, the rest to test. Returns the frame
    and the order to write rows in (identical rows tie, and are interchangeable: the files are the same bytes)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # A row's key depends on its content only: not on the partitioning, which differs between machines.
    key = F.xxhash64(F.lit(seed), *map(column_ref, header))
    keyed = rows.withColumn(CLASS, target.cast("int")).withColumn(KEY, key)
    order = [F.col(KEY), *map(column_ref, header)]
    # Two window partitions (one per class): fine for what one training instance reads as CSV.
    ranked = keyed.withColumn(RANK, F.row_number().over(Window.partitionBy(CLASS).orderBy(*order)))
    train_end = F.lit(0)
    validation_end = F.lit(0)
    for c, quota in quotas.items():
        train_end = F.when(F.col(CLASS) == c, F.lit(quota["train"])).otherwise(train_end)
        validation_end = F.when(F.col(CLASS) == c, F.lit(quota["train"] + quota["validation"])).otherwise(
            validation_end
        )
    # 0, 1, 2: the splits in SPLITS order, so one sort orders every split's rows.
    split = F.when(F.col(RANK) <= train_end, 0).when(F.col(RANK) <= validation_end, 1).otherwise(2)
    return ranked.withColumn(SPLIT, split), order


def encoded_columns(header: list[str], label: str, categorical: dict[str, list[str]]) -> tuple[list[str], list[Any]]:
    """Output names and Spark expressions after the label: numeric columns in file order, then one-hot blocks."""
    from pyspark.sql import functions as F

    names: list[str] = []
    expressions: list[Any] = []
    for column in header:
        if column != label and column not in categorical:
            names.append(column)
            expressions.append(_as_number(column_ref(column)))
    for column, categories in categorical.items():
        for category in categories:
            names.append(f"{column}_{category}")
            expressions.append(F.when(column_ref(column) == category, F.lit(1.0)).otherwise(F.lit(0.0)))
    duplicates = sorted({n for n in [label, *names] if [label, *names].count(n) > 1})
    if duplicates:
        raise InputError(f"one-hot columns clash with existing columns: {', '.join(duplicates)}")
    return names, expressions


# --- the driver writes the outputs ---


def _open(path: Path, newline: str) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8", newline=newline)


def write_outputs(
    frame: Any, order: list[Any], output_dir: Path, header: list[str], label: str, encoded: list[Any]
) -> dict[str, int]:
    """One sorted pass over every row (split, then key order): each split's encoded CSV, the training split's raw
    rows (baseline/train.csv, with the header) and the test split's first raw rows without the label
    (smoke/raw.csv). Returns the rows written per split."""
    from pyspark.sql import functions as F

    keep = [i for i, name in enumerate(header) if name != label]
    width = len(header)
    files = {split: _open(output_dir / split / f"{split}.csv", "\n") for split in SPLITS}
    baseline = _open(output_dir / "baseline" / "train.csv", "")
    smoke = _open(output_dir / "smoke" / "raw.csv", "")
    written = dict.fromkeys(SPLITS, 0)
    try:
        baseline_writer = csv.writer(baseline, lineterminator="\n")
        baseline_writer.writerow(header)
        smoke_writer = csv.writer(smoke, lineterminator="\n")
        ordered = frame.orderBy(F.col(SPLIT), *order).select(F.col(SPLIT), *map(column_ref, header), *encoded)
        for row in ordered.toLocalIterator():
            split = SPLITS[row[0]]
            raw = [str(v) for v in row[1 : width + 1]]
            files[split].write(",".join(format_number(float(v)) for v in row[width + 1 :]) + "\n")
            if split == "train":
                baseline_writer.writerow(raw)
            elif split == "test" and written["test"] < SMOKE_ROWS:
                smoke_writer.writerow([raw[i] for i in keep])
            written[split] += 1
    finally:
        for f in [*files.values(), baseline, smoke]:
            f.close()
    return written


def write_schema(
    output_dir: Path,
    header: list[str],
    label: str,
    categorical: dict[str, list[str]],
    features: list[str],
    sizes: dict[str, int],
    classes: list[str],
) -> None:
    """What the encoding was fitted on (abalone's schema.json) plus the label's classes: ``classes[i]`` is encoded
    i, ``positive`` is ``classes[1]``. Registration turns it into the preprocessing container's preprocessing.json."""
    schema = {
        "label": label,
        "features": features,
        "rows": sizes,
        "columns": header,
        "categorical": categorical,
        "classes": classes,
        "positive": classes[1],
    }
    path = output_dir / "schema" / "schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> str:
    categorical = parse_categorical(args.categorical)
    features = parse_features(args.features, args.label)
    check_ratios(args.train_ratio, args.validation_ratio)
    positive = args.positive_label
    if positive is not None and (not positive.strip() or positive.strip() != positive):
        raise InputError(f"--positive-label {positive!r}: expected a label value without surrounding spaces")
    path = find_input_file(args.input_dir)
    check_text(path)
    header = read_header(path)
    check_columns(path.name, header, args.label, categorical, features)
    spark = spark_session()
    try:
        rows = read_rows(spark, path, header).cache()
        check_rows(rows, header, args.label, categorical, path.name)
        # At most three values are needed to tell a binary label from another.
        values = {str(r[0]): int(r[1]) for r in rows.groupBy(column_ref(args.label)).count().limit(3).collect()}
        classes, counts, target = label_encoding(values, args.label, positive, path.name)
        total = sum(counts.values())
        sizes = split_sizes(total, args.train_ratio, args.validation_ratio)
        quotas = class_quotas(counts, sizes, args.train_ratio, args.validation_ratio)
        names, expressions = encoded_columns(header, args.label, categorical)
        frame, order = assign_splits(rows, header, target, quotas, args.seed)
        written = write_outputs(frame, order, args.output_dir, header, args.label, [target, *expressions])
    finally:
        spark.stop()
    if written != sizes:  # the split assignment and the quotas are one computation: a mismatch is a bug
        raise RuntimeError(f"wrote {written} rows per split, expected {sizes}")
    write_schema(args.output_dir, header, args.label, categorical, names, sizes, classes)
    shares = " ".join(f"{split}={sizes[split]} ({quotas[1][split] / sizes[split]:.1%} positive)" for split in SPLITS)
    return (
        f"preprocess: {total} rows from {path.name} -> {shares}; label {args.label!r} first "
        f"({classes[1]!r}=1, {classes[0]!r}=0), {len(names)} features"
    )


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
        # A Spark error's text is a Java stack trace: its first line says what failed.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return fail(message_file, f"{type(exc).__name__}: {first}", 2)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
