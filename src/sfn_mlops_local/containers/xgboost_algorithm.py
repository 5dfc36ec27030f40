"""Local emulation of the SageMaker built-in XGBoost algorithm container (1.7-1), training mode.

Run as ``python -m sfn_mlops_local.containers.xgboost_algorithm`` with the training container
contract under ``$MLOPS_OPT_ML`` (default ``/opt/ml``):

- ``input/config/hyperparameters.json``: string values, as SageMaker passes them;
- ``input/config/inputdataconfig.json``: channel configs; ``train`` required, ``validation``
  optional (evaluated every round, and used for early stopping);
- ``input/data/<channel>/``: headerless CSV files, label first;
- ``model/xgboost-model``: the trained model, Booster.save_model's binary format as 1.7-1 writes it;
- ``output/failure``: the reason, on failure (SageMaker shows it as the job's FailureReason).

Only the text/csv, single-instance, File-mode path is emulated.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xgboost

CONTAINER_XGBOOST_VERSION = "1.7"
CSV_CONTENT_TYPES = frozenset({"text/csv", "csv", "text/csv;label_size=1"})
CHANNELS = ("train", "validation")
# XGBoost 1.7 parameters the built-in algorithm accepts and this emulation passes through unchanged.
# fmt: off
HYPERPARAMETERS = frozenset({
    "num_round", "eta", "max_depth", "min_child_weight", "gamma", "subsample", "colsample_bytree",
    "colsample_bylevel", "colsample_bynode", "lambda", "alpha", "objective", "eval_metric", "num_class",
    "scale_pos_weight", "max_delta_step", "tree_method", "seed", "verbosity", "early_stopping_rounds",
    "base_score", "max_bin", "grow_policy", "max_leaves", "sampling_method", "booster", "num_parallel_tree",
    "nthread", "monotone_constraints", "interaction_constraints", "tweedie_variance_power",
    "max_cat_to_onehot",
})
# fmt: on
# Accepted by the real container but with behaviour this emulation does not reproduce.
NOT_EMULATED = frozenset(
    {"csv_weights", "_kfold", "_num_cv_round", "_tuning_objective_metric", "save_model_on_termination"}
)
MAX_FAILURE_BYTES = 1000

Params = dict[str, Any]


class AlgorithmError(Exception):
    """A problem with the job's configuration or data that the user can fix."""


def opt_ml_root() -> Path:
    return Path(os.environ.get("MLOPS_OPT_ML", "/opt/ml"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlgorithmError(f"missing {path}") from None
    except json.JSONDecodeError as exc:
        raise AlgorithmError(f"{path} is not valid JSON: {exc}") from None


def _convert(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise AlgorithmError(f"Hyperparameter {name} must be a positive integer, got {value!r}")
    return number


def parse_hyperparameters(raw: Any) -> tuple[int, int | None, Params]:
    """Return (num_round, early_stopping_rounds, params for xgboost.train)."""
    if not isinstance(raw, dict):
        raise AlgorithmError("hyperparameters.json must hold a JSON object")
    # SageMaker always passes strings; str() also accepts numbers from hand-written configs.
    values = {str(name): str(value) for name, value in raw.items()}
    not_emulated = sorted(set(values) & NOT_EMULATED)
    if not_emulated:
        raise AlgorithmError(f"Hyperparameters not supported by the local emulation: {', '.join(not_emulated)}")
    unknown = sorted(set(values) - HYPERPARAMETERS)
    if unknown:
        raise AlgorithmError(f"Unknown hyperparameter(s): {', '.join(unknown)}")
    if "num_round" not in values:
        raise AlgorithmError("Missing required hyperparameter: num_round")
    num_round = _positive_int("num_round", values.pop("num_round"))
    early_stopping = values.pop("early_stopping_rounds", None)
    early_stopping_rounds = None if early_stopping is None else _positive_int("early_stopping_rounds", early_stopping)
    params: Params = {name: _convert(value) for name, value in values.items()}
    if "eval_metric" in values:
        # SageMaker accepts a comma-separated list; xgboost wants a Python list.
        params["eval_metric"] = [metric.strip() for metric in values["eval_metric"].split(",")]
    return num_round, early_stopping_rounds, params


def validate_channels(config: Any) -> list[str]:
    """Check inputdataconfig.json and return the channel names to load, train first."""
    if not isinstance(config, dict):
        raise AlgorithmError("inputdataconfig.json must hold a JSON object")
    unknown = sorted(set(config) - set(CHANNELS))
    if unknown:
        raise AlgorithmError(f"Unsupported channel(s): {', '.join(unknown)}; expected train and optional validation")
    if "train" not in config:
        raise AlgorithmError("Missing required channel: train")
    for name in config:
        content_type = str((config[name] or {}).get("ContentType", ""))
        if content_type.lower().replace(" ", "") not in CSV_CONTENT_TYPES:
            # The real container defaults to libsvm when ContentType is unset.
            shown = content_type or "unset (libsvm on SageMaker)"
            raise AlgorithmError(f"Channel {name}: ContentType {shown} is not supported here; use text/csv")
    return [name for name in CHANNELS if name in config]


def load_channel(name: str, channel_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read every non-hidden file of a channel as headerless CSV; return (labels, features)."""
    # Imported here, like xgboost below, so configuration errors are reported without the wait.
    import pandas as pd

    # Like the container, read every file whatever its extension (e.g. Spark's part-00000).
    files = sorted(path for path in channel_dir.rglob("*") if path.is_file() and not path.name.startswith("."))
    parts = []
    for path in files:
        if path.stat().st_size == 0:
            continue
        try:
            frame = pd.read_csv(path, header=None, dtype=np.float64)
        except ValueError as exc:  # includes pandas' parser and decode errors
            reason = str(exc).strip().splitlines()[0]
            raise AlgorithmError(
                f"Channel {name}: {path.name} is not a headerless numeric CSV (label first): {reason}"
            ) from None
        parts.append(frame.to_numpy())
    if not parts or sum(len(part) for part in parts) == 0:
        raise AlgorithmError(f"No data in {name} channel path {channel_dir}")
    widths = sorted({part.shape[1] for part in parts})
    if len(widths) > 1:
        raise AlgorithmError(f"Channel {name}: files have different column counts: {widths}")
    if widths[0] < 2:
        raise AlgorithmError(f"Channel {name}: need a label column and at least one feature column")
    data = np.vstack(parts)
    missing = np.flatnonzero(np.isnan(data[:, 0]))
    if missing.size:
        raise AlgorithmError(f"Channel {name}: missing label in row {missing[0] + 1}")
    return data[:, 0], data[:, 1:]


def import_xgboost() -> ModuleType:
    # Imported late so config and data errors surface before the slow import (it loads scikit-learn).
    import xgboost

    check_xgboost_version(xgboost.__version__)
    return xgboost


def check_xgboost_version(version: str) -> None:
    if version.split(".")[:2] != CONTAINER_XGBOOST_VERSION.split("."):
        raise AlgorithmError(
            f"The local XGBoost 1.7-1 emulation needs xgboost {CONTAINER_XGBOOST_VERSION}.x, the version in "
            f"the SageMaker container; found {version}. Install xgboost==1.7.6."
        )


def train(
    xgb: ModuleType,
    params: Params,
    num_round: int,
    early_stopping_rounds: int | None,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
) -> xgboost.Booster:
    """Train on data["train"], evaluating every round on each channel (validation last)."""
    matrices = {name: xgb.DMatrix(features, label=labels) for name, (labels, features) in data.items()}
    train_matrix = matrices["train"]
    if "validation" in matrices and matrices["validation"].num_col() != train_matrix.num_col():
        raise AlgorithmError(
            f"validation has {matrices['validation'].num_col()} features, train has {train_matrix.num_col()}"
        )
    print(f"Train matrix has {train_matrix.num_row()} rows and {train_matrix.num_col()} features", flush=True)
    # xgboost prints "[i]\ttrain-rmse:...\tvalidation-rmse:..." to stdout, as the container does;
    # early stopping watches the last eval set, i.e. validation when given.
    return xgb.train(
        params,
        train_matrix,
        num_boost_round=num_round,
        evals=[(matrix, name) for name, matrix in matrices.items()],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=True,
    )


def run(root: Path) -> Path:
    config_dir = root / "input" / "config"
    num_round, early_stopping_rounds, params = parse_hyperparameters(read_json(config_dir / "hyperparameters.json"))
    channels = validate_channels(read_json(config_dir / "inputdataconfig.json"))
    data = {name: load_channel(name, root / "input" / "data" / name) for name in channels}
    xgb = import_xgboost()
    try:
        booster = train(xgb, params, num_round, early_stopping_rounds, data)
    except xgb.core.XGBoostError as exc:
        # Bad parameter values (e.g. an unknown objective) surface here.
        raise AlgorithmError(f"XGBoost training failed: {str(exc).strip().splitlines()[0]}") from None
    model_path = root / "model" / "xgboost-model"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    # No file extension: xgboost 1.7 then writes its binary format, like the 1.7-1 container.
    booster.save_model(str(model_path))
    return model_path


def write_failure(root: Path, reason: str) -> None:
    reason = reason.encode("utf-8")[:MAX_FAILURE_BYTES].decode("utf-8", errors="ignore")
    print(reason, file=sys.stderr)
    try:
        path = root / "output" / "failure"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason, encoding="utf-8")
    except OSError as exc:
        print(f"could not write the failure file: {exc}", file=sys.stderr)


def main() -> int:
    root = opt_ml_root()
    try:
        model_path = run(root)
    except AlgorithmError as exc:
        write_failure(root, str(exc))
        return 1
    except Exception as exc:
        traceback.print_exc()
        write_failure(root, f"{type(exc).__name__}: {exc}")
        return 2
    print(f"Stored trained model at {model_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
