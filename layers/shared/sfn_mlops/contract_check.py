"""Check a whole CSV dataset against a data contract in one streaming pass, or infer a contract from it.

Rows are validated by pydantic (a tuple type built from the contract: ``Literal`` domains, ``ge``/``le`` bounds,
``allow_inf_nan=False``), a chunk of rows at a time; bad rows are counted per column and rule and the first one
of each is reported, in one error. The text is decoded incrementally (a UTF-8 byte-order mark is dropped, CRLF
line ends are read as line ends), so a large file is never held in memory.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from sfn_mlops.contract import MISSING_TOKENS, DataContract, FeatureSpec, LabelSpec, describe_range
from sfn_mlops.errors import DatasetValidationError, validation_problems

CHUNK_ROWS = 2000
MAX_LINE_CHARS = 1 << 20
MAX_DOMAIN = 64  # an inferred categorical column has at most this many distinct values (US states and DC: 51)
MAX_PROBLEMS = 5  # reported in the error; the rest are counted
# An inferred binary label's positive class: the value spelled like one of these (case and a trailing "." aside:
# churn.txt's "True."), else the rarer value (the event a classifier is for: churn, fraud, default). The churn
# preprocess script applies the same rule when no contract names the positive class.
POSITIVE_TOKENS = frozenset({"1", "true", "t", "yes", "y", "positive", "pos"})
ProblemType = Literal["regression", "binary_classification"]


@dataclass
class CheckResult:
    contract: DataContract
    columns: list[str]  # the header, in file order
    rows: int
    inferred: bool  # True: no contract applied, this one was inferred from the data


def text_lines(chunks: Iterable[bytes], uri: str) -> Iterator[str]:
    """Lines (with their line ends) of UTF-8 text arriving in byte chunks; a leading BOM is dropped."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending, offset = "", 0
    for chunk in chunks:
        if b"\x00" in chunk:
            raise DatasetValidationError(f"dataset {uri} is not a CSV text file (it contains binary data)")
        try:
            pending += decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise DatasetValidationError(
                f"dataset {uri} is not a UTF-8 CSV text file (undecodable byte near offset {offset + exc.start})"
            ) from None
        offset += len(chunk)
        *complete, pending = pending.split("\n")
        yield from (line + "\n" for line in complete)
        if len(pending) > MAX_LINE_CHARS:
            raise DatasetValidationError(f"dataset {uri} has a line longer than {MAX_LINE_CHARS} characters")
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DatasetValidationError(f"dataset {uri} is not a UTF-8 CSV text file (it ends mid-character)") from None
    if pending:
        yield pending


def records(lines: Iterable[str], uri: str) -> Iterator[list[str]]:
    """CSV records with stripped cells, blank lines skipped; a parse error is one named error."""
    reader = csv.reader(lines)
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            yield [cell.strip() for cell in record]
    except csv.Error as exc:
        raise DatasetValidationError(
            f"dataset {uri} could not be parsed as CSV at line {reader.line_num}: {exc}"
        ) from None


def read_header(rows: Iterator[list[str]], uri: str) -> list[str]:
    header = next(rows, None)
    if header is None:
        raise DatasetValidationError(f"dataset {uri} is empty")
    if len(header) < 2:
        raise DatasetValidationError(
            f"dataset {uri} is not a CSV file with a header row (found {len(header)} column(s))"
        )
    if not all(header):
        raise DatasetValidationError(f"dataset {uri}: the header has an empty column name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetValidationError(f"dataset {uri}: column(s) named more than once: {_names(duplicates)}")
    return header


# --- with a contract ---


def _cell(nullable: bool) -> BeforeValidator:
    def missing(value: object) -> object:
        if isinstance(value, str) and value.lower() in MISSING_TOKENS:
            if nullable:
                return None
            raise PydanticCustomError("missing_value", "missing value")
        return value

    return BeforeValidator(missing)


def _whole(value: float) -> float:
    if not value.is_integer():
        raise PydanticCustomError("not_integer", "not a whole number")
    return value


def _column_type(spec: FeatureSpec | LabelSpec) -> Any:
    nullable = isinstance(spec, FeatureSpec) and spec.nullable
    if spec.type == "categorical":
        base: Any = Literal[tuple(spec.domain or [])]
    else:
        checks: list[Any] = [Field(ge=spec.min, le=spec.max, allow_inf_nan=False)]
        if spec.integer:
            checks.append(AfterValidator(_whole))
        base = Annotated.__class_getitem__((float, *checks))  # type: ignore[attr-defined]
    return Annotated[base | None if nullable else base, _cell(nullable)]


def rows_adapter(contract: DataContract) -> TypeAdapter[Any]:
    """A chunk of rows, each a tuple of cells in contract column order (features, then the label)."""
    return _rows_adapter(contract.model_dump_json())


@lru_cache(maxsize=8)
def _rows_adapter(contract_json: str) -> TypeAdapter[Any]:
    # Built once per contract: a warm Lambda (and a test run) reuses the compiled validator.
    contract = DataContract.model_validate_json(contract_json)
    types = [_column_type(f) for f in contract.features] + [_column_type(contract.label)]
    row: Any = tuple.__class_getitem__(tuple(types))
    return TypeAdapter(list.__class_getitem__(row))


def _rule(error: Any, spec: FeatureSpec | LabelSpec) -> tuple[str, str]:
    """What a bad cell is, and what was allowed: ``("non-numeric value", "")``."""
    kind = error["type"]
    if kind == "missing_value":
        return "missing value", " (the column is not nullable)"
    if kind in {"float_parsing", "float_type"}:
        return "non-numeric value", ""
    if kind == "finite_number":
        return "non-finite value", ""
    if kind in {"greater_than_equal", "less_than_equal"}:
        return "out-of-range value", f" (allowed: {describe_range(spec.min, spec.max)})"
    if kind == "literal_error":
        return "unknown category", f" (expected one of {', '.join(getattr(spec, 'domain', None) or [])})"
    if kind == "not_integer":
        return "non-integer value", ""
    return "bad value", f" ({error['msg']})"


@dataclass
class _Problems:
    """Bad cells counted per (column, rule), with the first row and value of each."""

    uri: str
    found: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    bad_rows: set[int] = field(default_factory=set)

    def add(self, column: str, rule: tuple[str, str], row: int, value: object) -> None:
        self.bad_rows.add(row)
        entry = self.found.setdefault((column, *rule), [0, row, value])
        entry[0] += 1

    def raise_if_any(self, rows: int) -> None:
        if not self.found:
            return
        items = sorted(self.found.items(), key=lambda item: item[1][1])
        shown = [
            f"{what} {_show(value)} in column {column!r} at row {row}"
            + (f" and {count - 1} more row(s)" if count > 1 else "")
            + allowed
            for (column, what, allowed), (count, row, value) in items[:MAX_PROBLEMS]
        ]
        more = f"; and {len(items) - MAX_PROBLEMS} more problem(s)" if len(items) > MAX_PROBLEMS else ""
        raise DatasetValidationError(
            f"dataset {self.uri} breaks the pipeline's data contract in {len(self.bad_rows)} of {rows} rows: "
            + "; ".join(shown)
            + more
        )


def _show(value: object, limit: int = 40) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _names(names: list[str], limit: int = 10) -> str:
    """Column names as a user can read them in one line: plain when they are plain, quoted and cut otherwise."""
    shown = [name if name.isprintable() and len(name) <= 40 and "," not in name else _show(name) for name in names]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown[:limit]) + more


def check_header(header: list[str], contract: DataContract, uri: str, pipeline: str) -> list[int]:
    """The header has exactly the contract's columns; returns their positions in contract column order."""
    extra = [name for name in header if name not in contract.columns]
    missing = [name for name in contract.columns if name not in header]
    if extra or missing:
        parts = []
        if contract.label.name not in header:
            parts.append(f"no label column {contract.label.name!r}")
        if extra:
            parts.append(f"unknown column(s) {_names(extra)} (not in the contract: remove them from the data)")
        if missing:
            parts.append(f"missing column(s) {_names(missing)}")
        raise DatasetValidationError(
            f"dataset {uri} does not match the data contract of pipeline {pipeline}: {'; '.join(parts)} "
            f"(see 'mlops contract show {pipeline}')"
        )
    return [header.index(name) for name in contract.columns]


def check_against(rows: Iterator[list[str]], header: list[str], contract: DataContract, uri: str, pipeline: str) -> int:
    order = check_header(header, contract, uri, pipeline)
    specs: list[FeatureSpec | LabelSpec] = [*contract.features, contract.label]
    adapter = rows_adapter(contract)
    problems = _Problems(uri)
    labels: set[float] = set()
    count = 0

    def validate(chunk: list[tuple[str, ...]], first_row: int) -> None:
        try:
            valid = adapter.validate_python(chunk)
        except ValidationError as exc:
            bad = set()
            for error in exc.errors():
                index, column = error["loc"][0], error["loc"][1]
                assert isinstance(index, int) and isinstance(column, int)
                bad.add(index)
                problems.add(specs[column].name, _rule(error, specs[column]), first_row + index, error["input"])
            valid = [adapter.validate_python([row])[0] for i, row in enumerate(chunk) if i not in bad]
        for row in valid:
            if len(labels) >= 2:
                break
            labels.add(row[-1])

    chunk: list[tuple[str, ...]] = []
    for count, cells in enumerate(rows, start=1):
        if len(cells) != len(header):
            rule = ("wrong field count", f" (the header has {len(header)} columns)")
            problems.add("<any>", rule, count, len(cells))
            continue
        chunk.append(tuple(cells[i] for i in order))
        if len(chunk) == CHUNK_ROWS:
            validate(chunk, count - len(chunk) + 1)
            chunk = []
    if chunk:
        validate(chunk, count - len(chunk) + 1)
    if count == 0:
        raise DatasetValidationError(f"dataset {uri} has a header but no data rows")
    problems.raise_if_any(count)
    if len(labels) < 2:
        raise DatasetValidationError(
            f"dataset {uri}: the label {contract.label.name!r} is constant ({_show(next(iter(labels), ''))} in "
            f"every row): a model cannot learn from it"
        )
    return count


# --- without a contract: infer one ---


@dataclass
class _ColumnStats:
    missing: int = 0
    numeric: bool = True
    first_text: tuple[int, str] | None = None  # the first cell that is not a finite number
    low: float = math.inf
    high: float = -math.inf
    whole: bool = True
    values: dict[str, int] = field(default_factory=dict)  # distinct values (up to MAX_DOMAIN + 1) -> first row
    counts: dict[str, int] = field(default_factory=dict)  # how often each of those values occurs

    def add(self, value: str, row: int) -> None:
        if value.lower() in MISSING_TOKENS:
            self.missing += 1
            return
        if len(self.values) <= MAX_DOMAIN or value in self.values:
            self.values.setdefault(value, row)
            self.counts[value] = self.counts.get(value, 0) + 1
        if not self.numeric:
            return
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.numeric, self.first_text = False, (row, value)
            return
        self.low, self.high = min(self.low, number), max(self.high, number)
        self.whole = self.whole and number.is_integer()


def infer(
    rows: Iterator[list[str]],
    header: list[str],
    label: str,
    categorical: dict[str, list[str]],
    uri: str,
    problem_type: ProblemType | None = None,
) -> tuple[DataContract, int]:
    if label not in header:
        raise DatasetValidationError(f"dataset {uri} has no label column {label!r}; columns found: {_names(header)}")
    stats = {name: _ColumnStats() for name in header}
    count = 0
    for count, cells in enumerate(rows, start=1):
        if len(cells) != len(header):
            raise DatasetValidationError(
                f"dataset {uri} row {count} has {len(cells)} fields, the header has {len(header)}"
            )
        for name, value in zip(header, cells, strict=True):
            stats[name].add(value, count)
    if count == 0:
        raise DatasetValidationError(f"dataset {uri} has a header but no data rows")
    try:
        label_spec = _infer_label(label, stats[label], uri, problem_type)
        features = [_infer_feature(name, stats[name], categorical.get(name), uri) for name in header if name != label]
        return DataContract(features=features, label=label_spec), count
    except ValidationError as exc:
        raise DatasetValidationError(
            f"dataset {uri}: no data contract can be inferred from it: {validation_problems(exc, limit=3)}"
        ) from None


def _infer_label(label: str, target: _ColumnStats, uri: str, problem_type: ProblemType | None) -> LabelSpec:
    """Numeric (0/1 for a binary classification), or, unless the pipeline is a regression, two values of text: a
    categorical binary label whose positive class ``positive_class`` picks."""
    if target.missing:
        raise DatasetValidationError(f"dataset {uri}: the label {label!r} is missing in {target.missing} row(s)")
    if (target.numeric and target.low == target.high) or len(target.values) == 1:
        shown = f"{target.low:g}" if target.numeric else _show(next(iter(target.values)))
        raise DatasetValidationError(
            f"dataset {uri}: the label {label!r} is constant ({shown} in every row): a model cannot learn from it"
        )
    if target.numeric:
        if problem_type != "binary_classification":
            return LabelSpec(name=label, min=0 if target.low >= 0 else None, integer=target.whole)
        if target.low < 0 or target.high > 1 or not target.whole:
            raise DatasetValidationError(
                f"dataset {uri}: the label {label!r} of a binary classification is 0/1 or two categories, not "
                f"numbers from {target.low:g} to {target.high:g}"
            )
        return LabelSpec(name=label, min=0, max=1, integer=True)
    row, value = target.first_text or (0, "")
    if problem_type == "regression":
        raise DatasetValidationError(
            f"dataset {uri}: the label {label!r} is not numeric (row {row}: {_show(value)}): a regression needs a "
            "numeric label"
        )
    if len(target.values) > 2:
        raise DatasetValidationError(
            f"dataset {uri}: the label {label!r} is not numeric (row {row}: {_show(value)}) and has more than two "
            "values: only a binary classification's label may be text, with two values"
        )
    domain = sorted(target.values)
    return LabelSpec(name=label, type="categorical", domain=domain, positive=positive_class(target.counts))


def positive_class(counts: dict[str, int]) -> str:
    """The positive class of a binary label from its two values' counts (see POSITIVE_TOKENS)."""
    named = [v for v in counts if v.lower().rstrip(".") in POSITIVE_TOKENS]
    if len(named) == 1:
        return named[0]
    # The rarer value; on a tie the later one in sorted order, so the choice never depends on row order.
    return min(sorted(counts, reverse=True), key=lambda v: counts[v])


def _infer_feature(name: str, stats: _ColumnStats, declared: list[str] | None, uri: str) -> FeatureSpec:
    nullable = stats.missing > 0
    if declared is not None:
        outside = {value: row for value, row in stats.values.items() if value not in declared}
        if outside:
            value, row = min(outside.items(), key=lambda item: item[1])
            raise DatasetValidationError(
                f"dataset {uri}: column {_show(name)} has {len(outside)} value(s) outside its categories "
                f"{', '.join(declared)} (first: row {row}, value {_show(value)})"
            )
        return FeatureSpec(name=name, type="categorical", domain=declared, nullable=nullable)
    if stats.numeric and stats.low <= stats.high:
        return FeatureSpec(name=name, min=0 if stats.low >= 0 else None, nullable=nullable)
    if stats.values and len(stats.values) <= MAX_DOMAIN:
        return FeatureSpec(name=name, type="categorical", domain=sorted(stats.values), nullable=nullable)
    row, value = stats.first_text or (0, "")
    raise DatasetValidationError(
        f"dataset {uri}: column {_show(name)} is neither numeric (row {row}: {_show(value)}) "
        f"nor categorical (more than {MAX_DOMAIN} distinct values): drop it, or declare the pipeline's data contract"
    )


def check_csv(
    chunks: Iterable[bytes],
    contract: DataContract | None,
    *,
    label: str,
    categorical: dict[str, list[str]],
    uri: str,
    pipeline: str,
    problem_type: ProblemType | None = None,
) -> CheckResult:
    """Check a CSV against ``contract``, or infer one from it (``contract`` None). Raises DatasetValidationError.

    ``problem_type`` (when known) refuses a label that does not fit the pipeline: text in a regression's, other
    numbers than 0/1 in an inferred binary classification's."""
    if contract is not None and contract.label.type == "categorical" and problem_type == "regression":
        raise DatasetValidationError(
            f"the data contract of pipeline {pipeline} has a categorical label {contract.label.name!r}: "
            "a regression needs a numeric label"
        )
    rows = records(text_lines(chunks, uri), uri)
    header = read_header(rows, uri)
    if contract is None:
        inferred, count = infer(rows, header, label, categorical, uri, problem_type)
        return CheckResult(inferred, header, count, inferred=True)
    if contract.label.name != label:
        raise DatasetValidationError(
            f"the data contract of pipeline {pipeline} names label {contract.label.name!r}, its config {label!r}"
        )
    count = check_against(rows, header, contract, uri, pipeline)
    return CheckResult(contract, header, count, inferred=False)
