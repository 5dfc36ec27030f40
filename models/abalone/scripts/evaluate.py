"""Score a SageMaker built-in XGBoost model on the test split and write evaluation.json.

Runs as a SageMaker Processing job in the SageMaker XGBoost 1.7-1 container. Input:
--model-dir/model.tar.gz (the training job's artifact, holding `xgboost-model` saved with
Booster.save_model) and one headerless CSV in --test-dir (label first). Optional: the training
split in --train-dir (for a naive baseline: the mean of the training labels), and the model
serving the pipeline today in --champion-dir/model.tar.gz (scored on the same test rows).
Output: --output-dir/evaluation.json in the SageMaker model-quality layout, plus a flat
"metrics" map for easy lookup from Step Functions, "baseline" and "champion" metrics when
given, and --output-dir/predictions.csv (one prediction per test row, in order: what the
deployment's smoke test compares an endpoint with).

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
import tarfile
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

import numpy as np

DEFAULT_MODEL_DIR = "/opt/ml/processing/model"
DEFAULT_TEST_DIR = "/opt/ml/processing/test"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/evaluation"
DEFAULT_MESSAGE_FILE = "/opt/ml/output/message"
MODEL_ARCHIVE = "model.tar.gz"
MODEL_FILE = "xgboost-model"
MAX_MESSAGE_BYTES = 1000


class InputError(Exception):
    """A problem with the job's input or arguments that the user can fix."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2 with usage only; route it through the message file instead.
        raise InputError(f"invalid arguments: {message}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path(DEFAULT_MODEL_DIR))
    parser.add_argument("--test-dir", type=Path, default=Path(DEFAULT_TEST_DIR))
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--message-file", type=Path, default=Path(DEFAULT_MESSAGE_FILE))
    parser.add_argument("--train-dir", type=Path, help="training split: scores a naive baseline (label mean)")
    parser.add_argument("--champion-dir", type=Path, help="model.tar.gz of the model serving today")
    return parser.parse_args(argv)


def _listing(directory: Path) -> str:
    names = sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []
    return ", ".join(names) or "nothing"


def find_model_archive(model_dir: Path) -> Path:
    archive = model_dir / MODEL_ARCHIVE
    if not archive.is_file():
        raise InputError(f"no {MODEL_ARCHIVE} in {model_dir} (found: {_listing(model_dir)})")
    return archive


def check_member(member: tarfile.TarInfo) -> None:
    parts = PurePosixPath(member.name).parts
    if member.name.startswith(("/", "\\")) or ".." in parts:
        raise InputError(f"{MODEL_ARCHIVE} has an unsafe member {member.name!r} (absolute path or '..')")
    # A link could point outside the extraction directory; the algorithm never writes one.
    if not (member.isfile() or member.isdir()):
        raise InputError(f"{MODEL_ARCHIVE} member {member.name!r} is not a regular file or directory")


def extract_model(archive: Path, destination: Path) -> Path:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            # The "data" filter (newer Pythons) repeats these checks; older ones get ours only.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, members=members, filter="data")
            else:
                tar.extractall(destination, members=members)
            names = [member.name for member in members]
    except (tarfile.TarError, EOFError) as exc:
        raise InputError(f"{MODEL_ARCHIVE} is not a readable tar archive: {exc}") from None
    model = destination / MODEL_FILE
    if not model.is_file():
        found = ", ".join(names) or "nothing"
        raise InputError(f"{MODEL_ARCHIVE} has no top-level {MODEL_FILE} file (members: {found})")
    return model


def find_test_file(test_dir: Path) -> Path:
    if not test_dir.is_dir():
        raise InputError(f"test directory {test_dir} does not exist")
    files = sorted(path for path in test_dir.iterdir() if path.is_file() and path.suffix.lower() == ".csv")
    if len(files) != 1:
        raise InputError(f"expected exactly one *.csv file in {test_dir} (found: {_listing(test_dir)})")
    return files[0]


def read_test_set(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels, features) from a headerless, all-numeric CSV with the label first."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"test set {path.name} is not a UTF-8 text CSV file") from None
    rows: list[list[float]] = []
    try:
        for record in csv.reader(io.StringIO(text, newline="")):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            rows.append(_numeric_row(path.name, len(rows) + 1, record))
            if len(rows[-1]) != len(rows[0]):
                raise InputError(
                    f"test set {path.name}: row {len(rows)} has {len(rows[-1])} fields, row 1 has {len(rows[0])}"
                )
    except csv.Error as exc:
        raise InputError(f"test set {path.name} could not be parsed as CSV: {exc}") from None
    if not rows:
        raise InputError(f"test set {path.name} is empty (no rows)")
    if len(rows[0]) < 2:
        raise InputError(f"test set {path.name} needs a label column and at least one feature column")
    data = np.asarray(rows, dtype=np.float64)
    return data[:, 0], data[:, 1:]


def _numeric_row(name: str, row_number: int, record: list[str]) -> list[float]:
    values = []
    for column, cell in enumerate(record):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(
                f"test set {name}: non-numeric value {cell[:40]!r} in row {row_number}, column {column + 1} "
                "(expected a headerless all-numeric CSV with the label first)"
            )
        values.append(value)
    return values


def score(model_path: Path, features: np.ndarray) -> tuple[np.ndarray, str]:
    """Load the model and predict; return (predictions, xgboost version)."""
    # Imported late: xgboost pulls in scikit-learn (seconds), not needed to reject bad inputs.
    import xgboost

    booster = xgboost.Booster()
    try:
        booster.load_model(str(model_path))
    except xgboost.core.XGBoostError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise InputError(f"could not load {MODEL_FILE} with xgboost {xgboost.__version__}: {reason}") from None
    expected = booster.num_features()
    if features.shape[1] != expected:
        raise InputError(
            f"test set has {features.shape[1]} feature columns (after the label) but the model expects {expected}"
        )
    # After early stopping the saved model still holds the rounds past the best one; the
    # SageMaker XGBoost endpoint predicts with the best iteration only, so score that too.
    best = booster.attr("best_iteration")
    iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
    predictions = booster.predict(xgboost.DMatrix(features), iteration_range=iteration_range)
    return predictions, xgboost.__version__


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    errors = predictions - labels
    total = float(np.sum((labels - labels.mean()) ** 2))
    residual = float(np.sum(errors**2))
    # Constant labels make R2 undefined; follow scikit-learn (1.0 if perfect, else 0.0).
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": float(r2),
        "error_std": float(np.std(errors)),
    }


def evaluation_report(metrics: dict[str, float], rows: int, xgboost_version: str) -> dict[str, Any]:
    return {
        "regression_metrics": {
            "rmse": {"value": metrics["rmse"], "standard_deviation": metrics["error_std"]},
            "mae": {"value": metrics["mae"]},
            "r2": {"value": metrics["r2"]},
        },
        "metrics": {"rmse": metrics["rmse"], "mae": metrics["mae"], "r2": metrics["r2"]},
        "test_rows": rows,
        "xgboost_version": xgboost_version,
    }


def _flat(metrics: dict[str, float]) -> dict[str, float]:
    return {"rmse": metrics["rmse"], "mae": metrics["mae"], "r2": metrics["r2"]}


def score_archive(archive: Path, features: np.ndarray) -> tuple[np.ndarray, str]:
    with tempfile.TemporaryDirectory() as tmp:
        return score(extract_model(archive, Path(tmp)), features)


def run(args: argparse.Namespace) -> str:
    archive = find_model_archive(args.model_dir)
    test_file = find_test_file(args.test_dir)
    labels, features = read_test_set(test_file)
    predictions, xgboost_version = score_archive(archive, features)
    metrics = regression_metrics(labels, predictions)
    report = evaluation_report(metrics, len(labels), xgboost_version)
    notes = []
    if args.train_dir is not None:
        # The naive baseline predicts the training labels' mean for every row: a model must beat it.
        train_labels, _ = read_test_set(find_test_file(args.train_dir))
        mean = float(np.mean(train_labels))
        baseline = regression_metrics(labels, np.full(len(labels), mean))
        report["baseline"] = {"kind": "mean of the training labels", "value": mean, "metrics": _flat(baseline)}
        notes.append(f"baseline rmse={baseline['rmse']:.4f}")
    if args.champion_dir is not None:
        champion_predictions, _ = score_archive(find_model_archive(args.champion_dir), features)
        champion = regression_metrics(labels, champion_predictions)
        report["champion"] = {"metrics": _flat(champion)}
        notes.append(f"champion rmse={champion['rmse']:.4f}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    # repr: the shortest text that reads back as the same float
    lines = "".join(f"{float(value)!r}\n" for value in predictions)
    (args.output_dir / "predictions.csv").write_text(lines, encoding="utf-8")
    extra = f"; {', '.join(notes)}" if notes else ""
    return (
        f"evaluate: {len(labels)} test rows, rmse={metrics['rmse']:.4f} mae={metrics['mae']:.4f} "
        f"r2={metrics['r2']:.4f} (xgboost {xgboost_version}){extra}"
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
        return fail(message_file, f"{type(exc).__name__}: {exc}", 2)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
