"""Training as the 1.7-1 container trains: one host, File mode, its callbacks and its error mapping.

Rule sources (restated): aws/sagemaker-xgboost-container, src/sagemaker_xgboost_container/algorithm_mode/
train.py (order of checks, "No data in ... channel path", early stopping only with a validation channel
and an eval_metric or tuning metric, watching the last one, best model saved; errors mapped to UserError
when xgboost's message is a known customer error, else "XGB train call failed with exception"),
constants/xgb_constants.py (those customer errors).

Contract: $MLOPS_OPT_ML (default /opt/ml) holds input/config/hyperparameters.json and inputdataconfig.json
and input/data/<channel>/; the model goes to model/xgboost-model (xgboost's binary format, no extension)
and on failure the reason to output/failure, with a non-zero exit code. Metrics print as xgboost's
EvaluationMonitor prints them ("[3]\\ttrain-rmse:...\\tvalidation-rmse:..."), which CloudWatch shows as #011.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from . import data, hyperparameters, metrics
from .errors import AlgorithmError, NotEmulated, ToolkitError, UserError

CONTAINER_XGBOOST_VERSION = "1.7"
MODEL_NAME = "xgboost-model"
MAX_FAILURE_BYTES = 64 * 1024  # the whole story; SageMaker keeps the first 1,024 characters as FailureReason
# Substrings of xgboost/scikit-learn errors the container reports as the user's (xgb_constants.CUSTOMER_ERRORS).
CUSTOMER_ERRORS = (
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) for logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
)

log = logging.getLogger("sagemaker_xgboost_container")


def opt_ml_root() -> Path:
    return Path(os.environ.get("MLOPS_OPT_ML", "/opt/ml"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"missing {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


def import_xgboost() -> Any:
    # Imported late so configuration errors surface before the slow import.
    import xgboost

    check_xgboost_version(xgboost.__version__)
    return xgboost


def check_xgboost_version(version: str) -> None:
    if version.split(".")[:2] != CONTAINER_XGBOOST_VERSION.split("."):
        raise AlgorithmError(
            f"The local XGBoost 1.7-1 emulation needs xgboost {CONTAINER_XGBOOST_VERSION}.x, the version in "
            f"the SageMaker container; found {version}. Install xgboost==1.7.6."
        )


def load_data(
    xgb: Any, channels: dict[str, dict[str, Any]], config: dict[str, Any], data_root: Path
) -> tuple[Any, Any]:
    """(train, validation or None) DMatrices, checked in the container's order."""
    kind = data.file_type(channels["train"]["ContentType"])
    if channels["train"]["TrainingInputMode"] == data.PIPE:
        raise NotEmulated("TrainingInputMode Pipe")
    paths = {name: data_root / name for name in ("train", "validation") if name in channels}
    sizes = {name: data.data_size(path) for name, path in paths.items()}
    for name, path in paths.items():
        if sizes[name] > 0:
            data.check_first_lines(path, kind)
    weights = int(config.get("csv_weights", 0))
    matrices = {
        name: data.load_matrix(xgb, path, kind, weights) if sizes[name] > 0 else None for name, path in paths.items()
    }
    if "validation" in paths:
        data.warn_on_shared_files(paths["train"], paths["validation"])
    if matrices["train"] is None:
        raise UserError(f"No data in training channel path {paths['train']}")
    if "validation" in paths and matrices["validation"] is None:
        raise UserError(f"No data in validation channel path {paths['validation']}")
    return matrices["train"], matrices.get("validation")


def train_job(xgb: Any, config: dict[str, Any], train: Any, validation: Any) -> Any:
    params = dict(config)
    num_round = params.pop("num_round")
    params.pop("save_model_on_termination", None)  # only changes what a SIGTERM leaves: not emulated
    tuning_param = params.pop("_tuning_objective_metric", None)
    eval_metric = params.get("eval_metric")
    native, custom, tuning = metrics.split_metrics(tuning_param, eval_metric)
    if native:
        params["eval_metric"] = native
    else:
        params.pop("eval_metric", None)
    early_stopping_rounds = params.pop("early_stopping_rounds", None)
    stop_metric = None
    if early_stopping_rounds:
        stop_metric = (tuning or eval_metric or [None])[-1]

    log.info("Train matrix has %s rows and %s columns", train.num_row(), train.num_col())
    if validation is not None:
        log.info("Validation matrix has %s rows", validation.num_row())
    callbacks = [xgb.callback.EvaluationMonitor()]
    # The container stops early only when there is a validation channel AND a metric was named.
    if validation is not None and stop_metric and early_stopping_rounds:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=early_stopping_rounds,
                data_name="validation",
                metric_name=stop_metric,
                maximize=stop_metric in metrics.MAXIMIZE_METRICS,
                save_best=True,
            )
        )
    evals = [(train, "train")] + ([(validation, "validation")] if validation is not None else [])
    try:
        # feval, as the container passes it (xgboost 1.7 gives it raw margins, which the container's metrics score;
        # custom_metric would get probabilities): its deprecation warning is in the container's log too.
        return xgb.train(
            params,
            train,
            num_boost_round=num_round,
            evals=evals,
            feval=metrics.custom_evaluation(custom) if custom else None,
            callbacks=callbacks,
            verbose_eval=False,
        )
    except Exception as exc:
        if any(message in str(exc) for message in CUSTOMER_ERRORS):
            raise UserError(str(exc)) from None
        raise AlgorithmError(f"XGB train call failed with exception:\n {exc}") from None


def run(root: Path) -> Path:
    config_dir = root / "input" / "config"
    config = hyperparameters.validate(read_json(config_dir / "hyperparameters.json"))
    if config.get("updater"):
        config["updater"] = ",".join(config["updater"])
    channels = data.validate_channels(read_json(config_dir / "inputdataconfig.json"))
    if config.pop("use_dask_gpu_training", "false") == "true":
        raise NotEmulated("Distributed GPU training with Dask (hyperparameter use_dask_gpu_training=true)")
    if "_kfold" in config:
        raise NotEmulated("Cross-validation (hyperparameter _kfold)")
    xgb = import_xgboost()
    train, validation = load_data(xgb, channels, config, root / "input" / "data")
    config.pop("_kfold", None)
    booster = train_job(xgb, config, train, validation)
    model_path = root / "model" / MODEL_NAME
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
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="[%(asctime)s:%(levelname)s:%(name)s] %(message)s", force=True
    )
    root = opt_ml_root()
    try:
        model_path = run(root)
    except Exception as exc:
        # The container's trainer (sagemaker_containers) writes every failure, a UserError included, as
        # "framework error: \n<traceback>\n<message>"; SageMaker shows it after "AlgorithmError: ".
        log.error("%s: %s", type(exc).__name__, exc)
        # The image's Python (3.8) prints no position markers (^^^) under a frame's line: nor does the emulation.
        trace = "".join(line for line in traceback.format_exc().splitlines(keepends=True) if line.strip(" ^~\n"))
        print(trace, file=sys.stderr, end="")
        write_failure(root, f"framework error: \n{trace}\n{exc}")
        return 1 if isinstance(exc, ToolkitError) else 2
    log.info("Stored trained model at %s", model_path)
    return 0
