"""The container's metrics: which names it knows, which it computes itself, and which way is better.

Rule sources (restated): aws/sagemaker-xgboost-container, src/sagemaker_xgboost_container/
constants/xgb_constants.py (the metric lists), algorithm_mode/metrics.py (tuning metric names
"validation:<metric>"), metrics/custom_metrics.py (metrics the container computes itself, on raw margins:
class labels are argmax of a row or margin > 0) and algorithm_mode/train_utils.py (which metrics go to
xgboost and which to the custom evaluation function).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg", "precision",
    "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
)  # fmt: skip
MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik", "interval-regression-accuracy",
    "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle",
    "tweedie-nloglik",
)  # fmt: skip
TUNING_METRIC_NAMES = tuple(f"validation:{name}" for name in MAXIMIZE_METRICS + MINIMIZE_METRICS)

Score = Callable[[np.ndarray, np.ndarray], float]


def _class_labels(margins: np.ndarray) -> np.ndarray:
    # Multi-class margins come one row per instance: the class is the largest; binary: log-odds > 0.
    if margins.ndim > 1:
        return np.argmax(margins, axis=-1)
    return (margins > 0.0).astype(int)


def _classification(score: Callable[..., float], **options: Any) -> Score:
    def compute(labels: np.ndarray, margins: np.ndarray) -> float:
        if margins.size == 0:
            return 0.0
        return float(score(labels, _class_labels(margins), **options))

    return compute


def _custom_metrics() -> dict[str, Score]:
    # scikit-learn is imported on first use only: configuration errors are reported without the wait.
    from sklearn import metrics as sk

    def rmse(labels: np.ndarray, predictions: np.ndarray) -> float:
        return float(np.sqrt(sk.mean_squared_error(labels, predictions)))

    return {
        "accuracy": _classification(sk.accuracy_score),
        "balanced_accuracy": _classification(sk.balanced_accuracy_score),
        "f1": _classification(sk.f1_score, average="macro"),
        "f1_binary": _classification(sk.f1_score, average="binary"),
        "f1_macro": _classification(sk.f1_score, average="macro"),
        "mse": lambda labels, predictions: float(sk.mean_squared_error(labels, predictions)),
        "rmse": rmse,
        "mae": lambda labels, predictions: float(sk.mean_absolute_error(labels, predictions)),
        "precision": _classification(sk.precision_score),
        "precision_macro": _classification(sk.precision_score, average="macro"),
        "precision_micro": _classification(sk.precision_score, average="micro"),
        "r2": lambda labels, predictions: float(sk.r2_score(labels, predictions)),
        "recall": _classification(sk.recall_score),
        "recall_macro": _classification(sk.recall_score, average="macro"),
        "recall_micro": _classification(sk.recall_score, average="micro"),
    }


CUSTOM_METRIC_NAMES = frozenset(
    {"accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "rmse", "mae", "precision",
     "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro"}
)  # fmt: skip


def custom_evaluation(names: list[str]) -> Callable[[np.ndarray, Any], list[tuple[str, float]]]:
    """xgboost's feval: the named container metrics, each on the raw margins xgboost passes."""
    scores = _custom_metrics()

    def evaluate(margins: np.ndarray, matrix: Any) -> list[tuple[str, float]]:
        labels = matrix.get_label()
        return [(name, scores[name](labels, margins)) for name in names]

    return evaluate


def split_metrics(
    tuning_objective_metric: str | None, eval_metric: list[str] | None
) -> tuple[list[str] | None, list[str], list[str] | None]:
    """Return (metrics for xgboost's eval_metric, container metrics for feval, tuning metric names).

    As the container does: the tuning metric ("validation:rmse") joins eval_metric (sorted union); names the
    container computes itself go to feval and out of eval_metric. When none is left for xgboost, eval_metric
    is dropped, so xgboost also reports its objective's default metric.
    """
    tuning = None
    if tuning_objective_metric is not None:
        tuning = tuning_objective_metric.split(":")[1].split(",")
    if tuning is None and eval_metric is None:
        return None, [], None
    if tuning is None or eval_metric is None:
        union = list(tuning or eval_metric or [])
    else:
        union = sorted(set(tuning) | set(eval_metric))
    custom = [name for name in union if name in CUSTOM_METRIC_NAMES]
    # The container keeps a set difference here (any order); the given order keeps logs reproducible.
    native = [name for name in union if name not in custom]
    return native or None, custom, tuning
