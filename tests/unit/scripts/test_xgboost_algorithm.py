"""sfn_mlops_local.containers.xgboost_algorithm, run as the local job runner runs it: a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
PREPROCESS = REPO / "models" / "abalone" / "scripts" / "preprocess.py"
DATA = REPO / "models" / "abalone" / "data" / "abalone.csv"
MODULE = "sfn_mlops_local.containers.xgboost_algorithm"
HYPERPARAMETERS = {
    "num_round": "50", "max_depth": "5", "eta": "0.2", "objective": "reg:squarederror", "subsample": "0.8",
    "min_child_weight": "6", "gamma": "4", "verbosity": "0",
}  # fmt: skip
CSV_CHANNELS = {
    "train": {
        "ContentType": "text/csv",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
    },
    "validation": {
        "ContentType": "text/csv",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
    },
}


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The preprocess output for the real data set (shared: it does not change between tests)."""
    root = tmp_path_factory.mktemp("preprocess")
    (root / "input").mkdir()
    shutil.copy(DATA, root / "input" / "abalone.csv")
    command = [
        sys.executable, str(PREPROCESS), "--input-dir", str(root / "input"),
        "--output-dir", str(root / "out"), "--message-file", str(root / "message"),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return root / "out"


def opt_ml(
    root: Path,
    splits: Path,
    hyperparameters: dict[str, Any] | None = None,
    channels: dict[str, Any] | None = None,
) -> Path:
    """Lay out a training container's /opt/ml under root, channel data from the preprocess splits."""
    channels = CSV_CHANNELS if channels is None else channels
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps(HYPERPARAMETERS if hyperparameters is None else hyperparameters)
    )
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    for channel in channels:
        if (splits / channel).is_dir():
            shutil.copytree(splits / channel, root / "input" / "data" / channel)
    return root


def run_algorithm(root: Path, extra_pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    paths = [str(REPO / "src")] if extra_pythonpath is None else [str(extra_pythonpath), str(REPO / "src")]
    env = {**os.environ, "MLOPS_OPT_ML": str(root), "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", MODULE]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    return data[:, 0], data[:, 1:]


def test_trains_a_model_that_xgboost_1_7_loads_and_that_predicts_rings(tmp_path: Path, splits: Path) -> None:
    # Given /opt/ml with the example hyperparameters and the train and validation splits
    root = opt_ml(tmp_path, splits)

    # When the algorithm runs
    proc = run_algorithm(root)

    # Then it succeeds, logging every round's train and validation metric like the container
    assert proc.returncode == 0, proc.stderr
    assert "[0]\ttrain-rmse:" in proc.stdout
    assert "[49]\ttrain-rmse:" in proc.stdout and "\tvalidation-rmse:" in proc.stdout
    assert not (root / "output" / "failure").exists()
    # And the model is in xgboost's binary format, loadable by xgboost 1.7.6
    import xgboost

    model_file = root / "model" / "xgboost-model"
    assert model_file.read_bytes()[:4] == b"binf"
    booster = xgboost.Booster()
    booster.load_model(str(model_file))
    assert xgboost.__version__ == "1.7.6"
    assert booster.num_boosted_rounds() == 50
    assert booster.num_features() == 10
    # And its predictions on the unseen test split are sensible for rings (std ~3.2)
    labels, features = read_split(splits / "test" / "test.csv")
    predictions = booster.predict(xgboost.DMatrix(features))
    rmse = float(np.sqrt(np.mean((predictions - labels) ** 2)))
    assert rmse < 3.0


def test_early_stopping_rounds_stops_on_the_validation_metric(tmp_path: Path, splits: Path) -> None:
    # Given a large learning rate that overfits quickly, and early stopping after 2 rounds
    hyperparameters = {
        **HYPERPARAMETERS,
        "eta": "1",
        "max_depth": "8",
        "gamma": "0",
        "early_stopping_rounds": "2",
    }
    root = opt_ml(tmp_path, splits, hyperparameters)

    # When the algorithm runs
    proc = run_algorithm(root)

    # Then it stops well before num_round, as xgboost reports
    assert proc.returncode == 0, proc.stderr
    assert "[49]" not in proc.stdout
    assert "Stored trained model at" in proc.stdout


@pytest.mark.parametrize(
    ("hyperparameters", "channels", "reason"),
    [
        pytest.param(
            {k: v for k, v in HYPERPARAMETERS.items() if k != "num_round"},
            CSV_CHANNELS,
            "Missing required hyperparameter: num_round",
            id="missing num_round",
        ),
        pytest.param(
            {**HYPERPARAMETERS, "max_dept": "5", "learning_rate": "0.1"},
            CSV_CHANNELS,
            "Unknown hyperparameter(s): learning_rate, max_dept",
            id="unknown hyperparameters",
        ),
        pytest.param(
            {**HYPERPARAMETERS, "num_round": "ten"},
            CSV_CHANNELS,
            "Hyperparameter num_round must be a positive integer, got 'ten'",
            id="non-integer num_round",
        ),
        pytest.param(
            HYPERPARAMETERS,
            {"train": {"ContentType": "application/x-parquet"}},
            "Channel train: ContentType application/x-parquet is not supported here; use text/csv",
            id="parquet content type",
        ),
        pytest.param(
            HYPERPARAMETERS,
            {"validation": CSV_CHANNELS["validation"]},
            "Missing required channel: train",
            id="no train channel",
        ),
        pytest.param(
            HYPERPARAMETERS,
            {**CSV_CHANNELS, "test": {"ContentType": "text/csv"}},
            "Unsupported channel(s): test",
            id="unknown channel",
        ),
    ],
)
def test_bad_configuration_fails_with_the_reason_in_the_failure_file(
    tmp_path: Path, splits: Path, hyperparameters: dict[str, str], channels: dict[str, Any], reason: str
) -> None:
    # Given /opt/ml with a configuration the real algorithm would reject
    root = opt_ml(tmp_path, splits, hyperparameters, channels)

    # When the algorithm runs
    proc = run_algorithm(root)

    # Then it exits 1, writing the reason to output/failure and stderr, and no model
    assert proc.returncode == 1
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith(reason)
    assert reason in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "model" / "xgboost-model").exists()


def test_a_csv_with_a_header_is_rejected_naming_the_file(tmp_path: Path, splits: Path) -> None:
    # Given a train channel holding the raw, headered data set
    root = opt_ml(tmp_path, splits, channels={"train": CSV_CHANNELS["train"]})
    shutil.copy(DATA, root / "input" / "data" / "train" / "raw.csv")

    # When the algorithm runs
    proc = run_algorithm(root)

    # Then it fails naming the file and the expected format
    assert proc.returncode == 1
    failure = (root / "output" / "failure").read_text()
    assert "Channel train: raw.csv is not a headerless numeric CSV (label first)" in failure


def test_an_xgboost_other_than_1_7_is_refused(tmp_path: Path, splits: Path) -> None:
    # Given an environment whose xgboost is 2.0.3 (a stub package first on the path)
    stub = tmp_path / "stub"
    (stub / "xgboost").mkdir(parents=True)
    (stub / "xgboost" / "__init__.py").write_text('__version__ = "2.0.3"\n')
    root = opt_ml(tmp_path / "opt-ml", splits)

    # When the algorithm runs
    proc = run_algorithm(root, extra_pythonpath=stub)

    # Then it refuses, saying which version it needs and which it found
    assert proc.returncode == 1
    failure = (root / "output" / "failure").read_text()
    assert "needs xgboost 1.7.x" in failure and "found 2.0.3" in failure
