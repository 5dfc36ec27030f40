"""Score a SageMaker built-in XGBoost binary classifier on the test split and write evaluation.json.

Runs as a SageMaker Processing job in the SageMaker XGBoost 1.7-1 container (Python 3, numpy, xgboost 1.7);
only the standard library, numpy and xgboost are used, and newer syntax appears in annotations only.

Arguments are those of the abalone pipeline's evaluate.py, so the same job request serves both. Input:
--model-dir/model.tar.gz (the training job's artifact, holding ``xgboost-model``) and one headerless CSV in
--test-dir (the label first, 0/1). Optional: the training split in --train-dir (for the naive baseline: the
majority class of the training labels, predicted for every row), and the model serving the pipeline today in
--champion-dir/model.tar.gz (scored on the same test rows), --threshold (default 0.5).

Output: --output-dir/evaluation.json with the SageMaker model-quality layout for binary classification
(``binary_classification_metrics``: confusion matrix, accuracy, precision, recall, f1, auc), a flat "metrics" map
(auc, accuracy, precision, recall, f1 and the threshold) for the quality gate, the confusion matrix, and
"baseline" and "champion" metrics when given; and --output-dir/predictions.csv: one model output per test row, in
order, exactly as the endpoint returns it (the probability of the positive class for binary:logistic): what the
deployment's smoke test compares an endpoint with.

A row is predicted positive when its probability is above the threshold (as the SageMaker churn example rounds
its predictions, and xgboost's own classifier predicts). AUC is the probability that a random positive row scores
above a random negative one, ties counting half (the Mann-Whitney statistic): it does not depend on the threshold.

Exit codes: 0 success; 1 bad input or arguments (reason in --message-file, which SageMaker reports as the job's
FailureReason); 2 unexpected error.
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
DEFAULT_THRESHOLD = 0.5
MODEL_ARCHIVE = "model.tar.gz"
MODEL_FILE = "xgboost-model"
MAX_MESSAGE_BYTES = 1000
METRICS = ("auc", "accuracy", "precision", "recall", "f1")


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
    parser.add_argument("--train-dir", type=Path, help="training split: scores a naive baseline (majority class)")
    parser.add_argument("--champion-dir", type=Path, help="model.tar.gz of the model serving today")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="a probability above it is the positive class"
    )
    args = parser.parse_args(argv)
    if not 0.0 < args.threshold < 1.0:  # also refuses NaN
        raise InputError(f"--threshold {args.threshold}: expected a probability strictly between 0 and 1")
    return args


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


def find_csv(directory: Path, what: str) -> Path:
    if not directory.is_dir():
        raise InputError(f"{what} directory {directory} does not exist")
    files = sorted(path for path in directory.iterdir() if path.is_file() and path.suffix.lower() == ".csv")
    if len(files) != 1:
        raise InputError(f"expected exactly one *.csv file in {directory} (found: {_listing(directory)})")
    return files[0]


def read_split(path: Path, what: str = "test set") -> tuple[np.ndarray, np.ndarray]:
    """Return (labels, features) from a headerless, all-numeric CSV with a 0/1 label first."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{what} {path.name} is not a UTF-8 text CSV file") from None
    rows: list[list[float]] = []
    try:
        for record in csv.reader(io.StringIO(text, newline="")):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            rows.append(_numeric_row(what, path.name, len(rows) + 1, record))
            if len(rows[-1]) != len(rows[0]):
                raise InputError(
                    f"{what} {path.name}: row {len(rows)} has {len(rows[-1])} fields, row 1 has {len(rows[0])}"
                )
    except csv.Error as exc:
        raise InputError(f"{what} {path.name} could not be parsed as CSV: {exc}") from None
    if not rows:
        raise InputError(f"{what} {path.name} is empty (no rows)")
    if len(rows[0]) < 2:
        raise InputError(f"{what} {path.name} needs a label column and at least one feature column")
    data = np.asarray(rows, dtype=np.float64)
    labels = data[:, 0]
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise InputError(
            f"{what} {path.name}: label {labels[bad[0]]:g} in row {bad[0] + 1} is not 0 or 1 "
            "(a binary classification's preprocess encodes the label 0/1)"
        )
    return labels, data[:, 1:]


def _numeric_row(what: str, name: str, row_number: int, record: list[str]) -> list[float]:
    values = []
    for column, cell in enumerate(record):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(
                f"{what} {name}: non-numeric value {cell[:40]!r} in row {row_number}, column {column + 1} "
                "(expected a headerless all-numeric CSV with the label first)"
            )
        values.append(value)
    return values


def score(model_path: Path, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Load the model and predict: (outputs as the endpoint returns them, probabilities, objective, version)."""
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
    objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
    # After early stopping the saved model still holds the rounds past the best one; the
    # SageMaker XGBoost endpoint predicts with the best iteration only, so score that too.
    best = booster.attr("best_iteration")
    iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
    outputs = booster.predict(xgboost.DMatrix(features), iteration_range=iteration_range).astype(np.float64)
    # binary:logitraw outputs the margin; the probability is its logistic.
    probabilities = 1.0 / (1.0 + np.exp(-outputs)) if objective == "binary:logitraw" else outputs
    if outputs.ndim != 1 or not np.all((probabilities >= 0) & (probabilities <= 1)):
        raise InputError(
            f"the model's predictions are not probabilities of one class (objective {objective}): "
            "train it with binary:logistic"
        )
    return outputs, probabilities, objective, xgboost.__version__


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney statistic over average ranks (ties share their ranks)."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Runs of equal scores get the mean of the 1-based ranks they span.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for k in range(len(starts)):  # not zip(strict=): the container's Python may predate 3.10
        start, end = int(starts[k]), int(ends[k])
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = float(ranks[labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def confusion(labels: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    positive, negative = labels == 1, labels == 0
    return {
        "true_negative": int(np.sum(negative & ~predicted)),
        "false_positive": int(np.sum(negative & predicted)),
        "false_negative": int(np.sum(positive & ~predicted)),
        "true_positive": int(np.sum(positive & predicted)),
    }


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """The gate's metrics and the confusion matrix at ``threshold``; an undefined precision (nothing predicted
    positive) is 0, as scikit-learn's zero_division=0 makes it."""
    counts = confusion(labels, probabilities > threshold)
    tp, fp, fn = counts["true_positive"], counts["false_positive"], counts["false_negative"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {
        "auc": auc(labels, probabilities),
        "accuracy": (tp + counts["true_negative"]) / len(labels),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": threshold,
    }
    return {"metrics": metrics, "confusion_matrix": counts}


def model_quality(scored: dict[str, Any]) -> dict[str, Any]:
    """SageMaker Model Monitor's model-quality statistics layout: the confusion matrix by actual, then predicted
    class, and each metric as {"value": ...}."""
    counts = scored["confusion_matrix"]
    return {
        "confusion_matrix": {
            "0": {"0": counts["true_negative"], "1": counts["false_positive"]},
            "1": {"0": counts["false_negative"], "1": counts["true_positive"]},
        },
        **{name: {"value": scored["metrics"][name]} for name in METRICS},
    }


def score_archive(archive: Path, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        return score(extract_model(archive, Path(tmp)), features)


def run(args: argparse.Namespace) -> str:
    archive = find_model_archive(args.model_dir)
    labels, features = read_split(find_csv(args.test_dir, "test"))
    if labels.min() == labels.max():
        raise InputError(
            f"the test split has only label {labels[0]:g} rows: AUC needs both classes (stratify the splits)"
        )
    outputs, probabilities, objective, version = score_archive(archive, features)
    scored = classification_metrics(labels, probabilities, args.threshold)
    report: dict[str, Any] = {
        "binary_classification_metrics": model_quality(scored),
        "metrics": scored["metrics"],
        "confusion_matrix": scored["confusion_matrix"],
        "threshold": args.threshold,
        "test_rows": len(labels),
        "positive_rate": float(labels.mean()),
        "objective": objective,
        "xgboost_version": version,
    }
    notes = []
    if args.train_dir is not None:
        # The naive baseline predicts the training labels' majority class for every row: a model must beat it.
        train_labels, _ = read_split(find_csv(args.train_dir, "train"), "training split")
        majority = 1 if train_labels.mean() > 0.5 else 0
        baseline = classification_metrics(labels, np.full(len(labels), float(majority)), args.threshold)
        report["baseline"] = {"kind": "majority class of the training labels", "value": majority, **baseline}
        notes.append(f"baseline accuracy={baseline['metrics']['accuracy']:.4f}")
    if args.champion_dir is not None:
        _, champion_probabilities, _, _ = score_archive(find_model_archive(args.champion_dir), features)
        champion = classification_metrics(labels, champion_probabilities, args.threshold)
        report["champion"] = champion
        notes.append(f"champion auc={champion['metrics']['auc']:.4f}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    # repr: the shortest text that reads back as the same float
    lines = "".join(f"{float(value)!r}\n" for value in outputs)
    (args.output_dir / "predictions.csv").write_text(lines, encoding="utf-8")
    metrics = scored["metrics"]
    extra = f"; {', '.join(notes)}" if notes else ""
    return (
        f"evaluate: {len(labels)} test rows, auc={metrics['auc']:.4f} accuracy={metrics['accuracy']:.4f} "
        f"precision={metrics['precision']:.4f} recall={metrics['recall']:.4f} f1={metrics['f1']:.4f} "
        f"at threshold {args.threshold:g} (xgboost {version}, {objective}){extra}"
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
