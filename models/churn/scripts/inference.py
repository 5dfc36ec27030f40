"""The preprocessing container of the churn inference pipeline: raw CSV rows in, encoded rows out.

A registered model package is an inference pipeline: this script runs first, in the
sagemaker-scikit-learn 1.2-1 container (SAGEMAKER_PROGRAM=inference.py,
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code), and the built-in XGBoost container second, on the
text/csv rows output_fn returns. The model was trained with binary:logistic, so the package answers each
raw row with the probability of the positive class (churn "yes"): one number per row, in request order.
The script stays compatible with the scikit-learn container's Python 3.9: only the standard library and
numpy are used, and newer syntax appears in annotations only.

The container calls model_fn once, then input_fn -> predict_fn -> output_fn for each request.
model_fn reads preprocessing.json, which registration wrote from what the preprocess unit fitted:
the raw columns in file order, the label, each categorical column's categories and the encoded
feature order. Rows are encoded exactly as preprocess.py (PySpark) encodes training rows: the numeric
columns in file order (label left out), then each categorical column one-hot in its category order.

A request is text/csv rows of the training columns without the label, with or without a header row
of those column names. A wrong column count, an unknown category, a missing or a non-numeric cell
raises ValueError naming the row and the column (the container answers it as a ModelError whose
message names the bad cell).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import numpy as np

PREPROCESSING_FILE = "preprocessing.json"
DEFAULT_MODEL_DIR = "/opt/ml/model"
CSV_CONTENT_TYPE = "text/csv"
# Cells spelled like this are missing values, as preprocess.py treats them.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


class Preprocessing:
    """The fitted encoding: which raw columns a request has and how each becomes the model's features."""

    def __init__(self, document: dict[str, Any]) -> None:
        try:
            self.columns = [str(c) for c in document["columns"]]
            self.label = str(document["label"])
            self.categorical = {str(k): [str(v) for v in values] for k, values in document["categorical"].items()}
            self.features = [str(f) for f in document["features"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{PREPROCESSING_FILE} is malformed: missing or invalid {exc}") from None
        self.input_columns = [c for c in self.columns if c != self.label]
        unknown = [c for c in self.categorical if c not in self.input_columns]
        if self.label not in self.columns or unknown:
            raise ValueError(
                f"{PREPROCESSING_FILE} does not fit its columns {self.columns}: "
                f"label {self.label!r}, categorical {sorted(self.categorical)}"
            )
        # Numeric features in the order training encoded them (the data contract's order, else the file's),
        # which need not be the order of the columns a request sends.
        numeric = [f for f in self.features if f in self.input_columns and f not in self.categorical]
        missing = [c for c in self.input_columns if c not in self.categorical and c not in numeric]
        if missing:
            raise ValueError(f"{PREPROCESSING_FILE}: column(s) {missing} are neither features nor categorical")
        encoded = list(numeric)
        for column, categories in self.categorical.items():
            encoded += [f"{column}_{category}" for category in categories]
        if encoded != self.features:
            raise ValueError(
                f"{PREPROCESSING_FILE}: the encoding of its columns gives features {encoded}, "
                f"not the {self.features} the model was trained on"
            )
        # Where each raw column's value goes: numeric columns to one feature, categorical to a block.
        self._numeric = [(self.input_columns.index(c), i) for i, c in enumerate(numeric)]
        self._one_hot = []
        offset = len(numeric)
        for column, categories in self.categorical.items():
            position = {category: offset + k for k, category in enumerate(categories)}
            self._one_hot.append((self.input_columns.index(column), position))
            offset += len(categories)

    def parse(self, text: str) -> list[list[str]]:
        """The request's data rows, each checked cell by cell (raises ValueError naming row and column)."""
        reader = csv.reader(io.StringIO(text, newline=""))
        rows: list[list[str]] = []
        first = True
        try:
            for record in reader:
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue
                cells = [cell.strip() for cell in record]
                if first:
                    first = False
                    if cells == self.input_columns:
                        continue
                    if cells == self.columns:
                        raise ValueError(
                            f"row 1 is a header with the label column {self.label!r}: send the columns "
                            f"{', '.join(self.input_columns)} without it"
                        )
                rows.append(self._check(cells, len(rows) + 1, reader.line_num))
        except csv.Error as exc:
            raise ValueError(f"the request could not be parsed as CSV: {exc}") from None
        if not rows:
            raise ValueError(f"the request has no rows: send text/csv rows of {', '.join(self.input_columns)}")
        return rows

    def _check(self, cells: list[str], row: int, line: int) -> list[str]:
        where = f"row {row}" if row == line else f"row {row} (line {line})"
        if len(cells) != len(self.input_columns):
            raise ValueError(
                f"{where} has {len(cells)} columns, expected {len(self.input_columns)}: "
                f"{', '.join(self.input_columns)} (the training columns without the label {self.label!r})"
            )
        for index, column in enumerate(self.input_columns):  # not zip(strict=): that is Python 3.10
            cell = cells[index]
            if cell.lower() in MISSING_TOKENS:
                raise ValueError(f"{where}, column {column!r}: missing value {_show(cell)}")
            categories = self.categorical.get(column)
            if categories is not None:
                if cell not in categories:
                    raise ValueError(
                        f"{where}, column {column!r}: unknown category {_show(cell)}; "
                        f"expected one of {', '.join(categories)}"
                    )
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f"{where}, column {column!r}: non-numeric value {_show(cell)}")
        return cells

    def encode(self, rows: list[list[str]]) -> np.ndarray:
        """Checked rows -> the model's features (one row each), as preprocess.py encodes training rows."""
        encoded = np.zeros((len(rows), len(self.features)), dtype=np.float64)
        for i, cells in enumerate(rows):
            for source, target in self._numeric:
                encoded[i, target] = float(cells[source])
            for source, position in self._one_hot:
                encoded[i, position[cells[source]]] = 1.0
        return encoded


# The container calls model_fn before any request and passes its result to predict_fn only: input_fn, which
# checks the rows against the columns, finds the loaded preprocessing here.
_loaded: Preprocessing | None = None


def model_fn(model_dir: str) -> Preprocessing:
    global _loaded
    path = os.path.join(model_dir, PREPROCESSING_FILE)
    with open(path, encoding="utf-8") as f:
        _loaded = Preprocessing(json.load(f))
    return _loaded


def _preprocessing() -> Preprocessing:
    return _loaded if _loaded is not None else model_fn(os.environ.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR))


def input_fn(input_data: bytes | str, content_type: str) -> list[list[str]]:
    """text/csv raw rows (the training columns without the label, an optional header row) -> checked rows."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    preprocessing = _preprocessing()
    if media_type != CSV_CONTENT_TYPE:
        raise ValueError(
            f"unsupported content type {content_type!r}: send text/csv rows of {', '.join(preprocessing.input_columns)}"
        )
    if isinstance(input_data, (bytes, bytearray)):  # a tuple: the container runs Python 3.9
        try:
            text = bytes(input_data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the request is not UTF-8 text (undecodable byte at offset {exc.start})") from None
    else:
        text = input_data
    return preprocessing.parse(text)


def predict_fn(input_data: list[list[str]], model: Preprocessing) -> np.ndarray:
    return model.encode(input_data)


def output_fn(prediction: np.ndarray, accept: str) -> tuple[str, str]:
    """The encoded rows (no label, no header) as text/csv for the XGBoost container, whatever ``accept`` asks:
    the next container reads text/csv. Returned as (body, content type), which the container serves as is."""
    lines = [",".join(format_number(float(value)) for value in row) for row in np.atleast_2d(prediction)]
    return "\n".join(lines) + "\n", CSV_CONTENT_TYPE


def format_number(value: float) -> str:
    """As preprocess.py writes training rows: integers without ".0", others as repr (exact round trip)."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
