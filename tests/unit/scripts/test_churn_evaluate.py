"""models/churn/scripts/evaluate.py, run as the Processing job runs it: in the XGBoost image's environment, on a small
booster trained here on synthetic 0/1 data."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.scripts.image_job import XGBOOST_IMAGE, run_in_image

pytestmark = pytest.mark.container  # runs a job container's script or a model server: not in the fast tier

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "models" / "churn" / "scripts" / "evaluate.py"
PARAMS = {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "verbosity": 0, "seed": 1}


@dataclass
class Fixture:
    model_dir: Path
    test_dir: Path
    train_dir: Path
    model_file: Path
    test: np.ndarray


@dataclass
class Result:
    returncode: int
    log: str  # the job's log: stdout and stderr as one stream
    output_dir: Path
    message: str

    @property
    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.output_dir / "evaluation.json").read_text())
        return report


def write_split(directory: Path, data: np.ndarray, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in data)
    (directory / name).write_text(lines)
    return directory


def pack(directory: Path, model_file: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / "model.tar.gz", "w:gz") as tar:
        tar.add(model_file, arcname="xgboost-model")
    return directory


def synthetic(rows: int, seed: int) -> np.ndarray:
    """Label first (about 20% positive, learnable from the first feature, not perfectly), then 3 features."""
    rng = np.random.RandomState(seed)
    features = rng.normal(size=(rows, 3))
    labels = (features[:, 0] + 0.8 * rng.normal(size=rows) > 1.0).astype(float)
    return np.column_stack([labels, features])


def train(path: Path, train_data: np.ndarray, params: dict[str, Any] = PARAMS, rounds: int = 20) -> Path:
    import xgboost

    booster = xgboost.train(params, xgboost.DMatrix(train_data[:, 1:], label=train_data[:, 0]), rounds)
    booster.save_model(str(path))
    return path


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    root = tmp_path_factory.mktemp("churn-evaluate")
    train_data, test_data = synthetic(600, 1), synthetic(300, 2)
    model_file = train(root / "xgboost-model", train_data)
    return Fixture(
        model_dir=pack(root / "model", model_file),
        test_dir=write_split(root / "test", test_data, "test.csv"),
        train_dir=write_split(root / "train", train_data, "train.csv"),
        model_file=model_file,
        test=test_data,
    )


def run_evaluate(tmp_path: Path, model_dir: Path, test_dir: Path, *extra: str) -> Result:
    output_dir, message_file = tmp_path / "evaluation", tmp_path / "message"
    command = [
        str(SCRIPT), "--model-dir", str(model_dir), "--test-dir", str(test_dir),
        "--output-dir", str(output_dir), "--message-file", str(message_file), *extra,
    ]  # fmt: skip
    done = run_in_image(XGBOOST_IMAGE, command, tmp_path / "job")
    message = message_file.read_text() if message_file.exists() else ""
    return Result(done.returncode, done.log, output_dir, message)


def probabilities(model_file: Path, features: np.ndarray) -> np.ndarray:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(model_file))
    return np.asarray(booster.predict(xgboost.DMatrix(features)), dtype=np.float64)


def test_metrics_confusion_matrix_and_predictions_match_scikit_learn(tmp_path: Path, fixture: Fixture) -> None:
    from sklearn import metrics

    # Given a binary:logistic model and a 0/1 test split, When evaluate runs with the default threshold
    result = run_evaluate(tmp_path, fixture.model_dir, fixture.test_dir)
    assert result.returncode == 0, result.log
    report = result.report
    labels, scores = fixture.test[:, 0], probabilities(fixture.model_file, fixture.test[:, 1:])
    predicted = (scores > 0.5).astype(int)
    # Then every metric equals scikit-learn's on the same probabilities, and the threshold is recorded
    expected = {
        "auc": metrics.roc_auc_score(labels, scores),
        "accuracy": metrics.accuracy_score(labels, predicted),
        "precision": metrics.precision_score(labels, predicted, zero_division=0),
        "recall": metrics.recall_score(labels, predicted),
        "f1": metrics.f1_score(labels, predicted),
        "threshold": 0.5,
    }
    assert report["metrics"] == pytest.approx(expected, abs=1e-12)
    assert 0.7 < report["metrics"]["auc"] < 1.0  # learnable, not perfect: a real classifier was scored
    (tn, fp), (fn, tp) = metrics.confusion_matrix(labels, predicted)
    assert report["confusion_matrix"] == {
        "true_negative": tn, "false_positive": fp, "false_negative": fn, "true_positive": tp,
    }  # fmt: skip
    # And the model-quality layout holds the same numbers, by actual then predicted class
    quality = report["binary_classification_metrics"]
    assert quality["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    assert {name: quality[name]["value"] for name in ("auc", "f1")} == pytest.approx(
        {"auc": expected["auc"], "f1": expected["f1"]}
    )
    # And predictions.csv holds each row's probability, in order, as the endpoint would return it
    written = np.array([float(line) for line in (result.output_dir / "predictions.csv").read_text().splitlines()])
    np.testing.assert_array_equal(written, scores)
    assert report["test_rows"] == 300 and report["objective"] == "binary:logistic"
    assert "auc=" in result.log and "threshold 0.5" in result.log


def test_the_baseline_is_the_majority_class_and_the_champion_is_scored_on_the_same_rows(
    tmp_path: Path, fixture: Fixture
) -> None:
    # Given the training split and a champion (the same model), When evaluate runs with both
    result = run_evaluate(
        tmp_path, fixture.model_dir, fixture.test_dir,
        "--train-dir", str(fixture.train_dir), "--champion-dir", str(fixture.model_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.log
    report = result.report
    # Then the baseline predicts the majority class (0) for every row: AUC 0.5, accuracy the negative share
    baseline = report["baseline"]
    negative_share = float(np.mean(fixture.test[:, 0] == 0))
    assert baseline["value"] == 0 and baseline["kind"] == "majority class of the training labels"
    assert baseline["metrics"]["auc"] == 0.5
    assert baseline["metrics"]["accuracy"] == pytest.approx(negative_share)
    assert baseline["metrics"]["recall"] == 0.0 and baseline["metrics"]["precision"] == 0.0
    assert report["metrics"]["auc"] > baseline["metrics"]["auc"]
    # And the champion, the same model on the same rows, scores exactly what the challenger does
    assert report["champion"]["metrics"] == report["metrics"]
    assert report["champion"]["confusion_matrix"] == report["confusion_matrix"]


def test_the_gate_reads_auc_and_the_champion_and_baseline_values_from_the_report(
    tmp_path: Path, fixture: Fixture
) -> None:
    from sfn_mlops.evaluation import read_metrics

    result = run_evaluate(
        tmp_path, fixture.model_dir, fixture.test_dir,
        "--train-dir", str(fixture.train_dir), "--champion-dir", str(fixture.model_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.log
    body = (result.output_dir / "evaluation.json").read_bytes()

    class S3:
        class exceptions:  # boto3's attribute name
            NoSuchKey = KeyError

        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # boto3's parameter names
            return {"Body": type("Body", (), {"read": lambda _self: body})()}

    event = {
        "evaluation_uri": "s3://artifacts/runs/evaluation.json",
        "gate": {"metric": "auc", "direction": "maximize"},
    }
    # When the evaluate worker's last step reads the report for a gate on AUC
    read = read_metrics(S3(), event)
    # Then the gate gets the model's AUC and the champion's and baseline's, all numbers
    assert read["gate"]["value"] == result.report["metrics"]["auc"]
    assert read["gate"]["champion_value"] == result.report["metrics"]["auc"]
    assert read["gate"]["baseline_value"] == 0.5
    assert set(read["metrics"]) == {"auc", "accuracy", "precision", "recall", "f1", "threshold"}


def test_a_threshold_moves_the_confusion_matrix_not_the_auc(tmp_path: Path, fixture: Fixture) -> None:
    default = run_evaluate(tmp_path / "a", fixture.model_dir, fixture.test_dir)
    low = run_evaluate(tmp_path / "b", fixture.model_dir, fixture.test_dir, "--threshold", "0.2")
    assert default.returncode == 0 and low.returncode == 0, low.log
    # A lower threshold calls more rows positive: recall rises (or stays), AUC is the same
    assert low.report["metrics"]["threshold"] == 0.2 and low.report["threshold"] == 0.2
    assert low.report["metrics"]["auc"] == default.report["metrics"]["auc"]
    assert low.report["metrics"]["recall"] >= default.report["metrics"]["recall"]
    predicted_positive = {
        name: r.report["confusion_matrix"]["true_positive"] + r.report["confusion_matrix"]["false_positive"]
        for name, r in (("default", default), ("low", low))
    }
    assert predicted_positive["low"] > predicted_positive["default"]


def test_a_logitraw_model_is_scored_on_probabilities_and_its_margins_are_the_predictions(
    tmp_path: Path, fixture: Fixture
) -> None:
    train_data = np.loadtxt(fixture.train_dir / "train.csv", delimiter=",")
    model_file = train(tmp_path / "xgboost-model", train_data, {**PARAMS, "objective": "binary:logitraw"})
    model_dir = pack(tmp_path / "model", model_file)
    result = run_evaluate(tmp_path, model_dir, fixture.test_dir)
    assert result.returncode == 0, result.log
    margins = probabilities(model_file, fixture.test[:, 1:])
    assert margins.min() < 0  # margins, not probabilities
    written = np.array([float(line) for line in (result.output_dir / "predictions.csv").read_text().splitlines()])
    np.testing.assert_array_equal(written, margins)
    # The threshold applies to the probability: above 0.5 is a positive margin
    positives = result.report["confusion_matrix"]["true_positive"] + result.report["confusion_matrix"]["false_positive"]
    assert positives == int(np.sum(margins > 0))


@pytest.mark.parametrize(
    ("scores", "labels"),
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]),
        ([0.2, 0.2, 0.7, 0.7, 0.7, 0.1], [0, 1, 1, 0, 1, 0]),
        ([0.9, 0.8, 0.1], [0, 0, 1]),
    ],
)
def test_auc_with_ties_equals_scikit_learn(scores: list[float], labels: list[int]) -> None:
    import importlib.util

    from sklearn.metrics import roc_auc_score

    spec = importlib.util.spec_from_file_location("churn_evaluate", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.auc(np.array(labels, dtype=float), np.array(scores)) == pytest.approx(roc_auc_score(labels, scores))


BAD = {
    "label not 0/1": ("2,0.1,0.2,0.3\n0,0.1,0.2,0.3\n", [], "label 2 in row 1 is not 0 or 1"),
    "one class only": ("0,0.1,0.2,0.3\n0,0.4,0.2,0.3\n", [], "the test split has only label 0 rows"),
    "another feature count": ("0,0.1,0.2\n1,0.1,0.2\n", [], "test set has 2 feature columns"),
    "threshold out of range": ("0,0.1,0.2,0.3\n1,0.1,0.2,0.3\n", ["--threshold", "1.5"], "--threshold 1.5"),
    "threshold NaN": ("0,0.1,0.2,0.3\n1,0.1,0.2,0.3\n", ["--threshold", "nan"], "--threshold nan"),
    "header row": ("churn,a,b,c\n0,0.1,0.2,0.3\n", [], "non-numeric value 'churn' in row 1, column 1"),
}


@pytest.mark.parametrize(("test_csv", "extra", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_input_fails_with_a_one_line_reason(
    tmp_path: Path, fixture: Fixture, test_csv: str, extra: list[str], expected: str
) -> None:
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    (test_dir / "test.csv").write_text(test_csv)
    result = run_evaluate(tmp_path, fixture.model_dir, test_dir, *extra)
    assert result.returncode == 1, result.log
    assert expected in result.message and "\n" not in result.message and "Traceback" not in result.log
    assert not (result.output_dir / "evaluation.json").exists()


def test_a_model_that_does_not_output_probabilities_is_refused(tmp_path: Path, fixture: Fixture) -> None:
    # Given a regression model trained on scaled-up labels (outputs far outside [0, 1])
    train_data = np.loadtxt(fixture.train_dir / "train.csv", delimiter=",")
    train_data[:, 0] *= 10
    model_file = train(tmp_path / "xgboost-model", train_data, {**PARAMS, "objective": "reg:squarederror"})
    result = run_evaluate(tmp_path, pack(tmp_path / "model", model_file), fixture.test_dir)
    assert result.returncode == 1, result.log
    assert "not probabilities of one class (objective reg:squarederror)" in result.message
