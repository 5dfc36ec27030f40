"""models/abalone/scripts/evaluate.py, run as the Processing job runs it: in the XGBoost image's environment."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.unit.scripts.image_job import XGBOOST_IMAGE, run_in_image

pytestmark = pytest.mark.container  # runs a job container's script or a model server: not in the fast tier

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "models" / "abalone" / "scripts"
DATA = REPO / "models" / "abalone" / "data" / "abalone.csv"
HYPERPARAMETERS = {
    "num_round": "50", "max_depth": "5", "eta": "0.2", "objective": "reg:squarederror", "subsample": "0.8",
    "min_child_weight": "6", "gamma": "4", "verbosity": "0",
}  # fmt: skip


@dataclass
class Pipeline:
    """Outputs of preprocess and the algorithm on the real data, shared by the tests."""

    splits: Path
    model_file: Path


@dataclass
class Result:
    returncode: int
    log: str  # the job's log: stdout and stderr as one stream
    output_dir: Path
    message_file: Path


def run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    # preprocess -> built-in algorithm emulation, as the training pipeline chains them.
    root = tmp_path_factory.mktemp("pipeline")
    (root / "input").mkdir()
    shutil.copy(DATA, root / "input" / "abalone.csv")
    splits = root / "splits"
    preprocess = run(
        [
            sys.executable, str(SCRIPTS / "preprocess.py"), "--input-dir", str(root / "input"),
            "--output-dir", str(splits), "--message-file", str(root / "preprocess-message"),
        ]
    )  # fmt: skip
    assert preprocess.returncode == 0, preprocess.stderr
    opt_ml = root / "opt-ml"
    (opt_ml / "input" / "config").mkdir(parents=True)
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    channels = {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}}
    (opt_ml / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))
    for channel in channels:
        shutil.copytree(splits / channel, opt_ml / "input" / "data" / channel)
    env = {**os.environ, "MLOPS_OPT_ML": str(opt_ml), "PYTHONPATH": str(REPO / "src")}
    training = run([sys.executable, "-m", "sfn_mlops_local.containers.xgboost_algorithm"], env=env)
    assert training.returncode == 0, training.stderr
    return Pipeline(splits=splits, model_file=opt_ml / "model" / "xgboost-model")


def make_model_dir(path: Path, members: dict[str, bytes]) -> Path:
    """A model dir holding model.tar.gz with the given members, as SageMaker packs model artifacts."""
    path.mkdir(parents=True)
    with tarfile.open(path / "model.tar.gz", "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def make_test_dir(path: Path, content: str) -> Path:
    path.mkdir(parents=True)
    (path / "test.csv").write_text(content)
    return path


def run_evaluate(tmp_path: Path, model_dir: Path, test_dir: Path) -> Result:
    output_dir = tmp_path / "evaluation"
    message_file = tmp_path / "opt-ml-output" / "message"
    # The model is extracted under TMPDIR; keeping it in tmp_path lets tests see escapes.
    (tmp_path / "tmp").mkdir()
    done = run_in_image(
        XGBOOST_IMAGE,
        [
            str(SCRIPTS / "evaluate.py"), "--model-dir", str(model_dir),
            "--test-dir", str(test_dir), "--output-dir", str(output_dir), "--message-file", str(message_file),
        ],
        tmp_path / "job",
        {"TMPDIR": str(tmp_path / "tmp")},
    )  # fmt: skip
    return Result(done.returncode, done.log, output_dir, message_file)


def test_end_to_end_metrics_match_an_independent_recomputation(tmp_path: Path, pipeline: Pipeline) -> None:
    # Given the algorithm's model packed as model.tar.gz and the preprocess test split
    model_dir = make_model_dir(tmp_path / "model", {"xgboost-model": pipeline.model_file.read_bytes()})
    test_dir = pipeline.splits / "test"

    # When evaluate runs
    result = run_evaluate(tmp_path, model_dir, test_dir)

    # Then it writes evaluation.json in the model-quality layout
    assert result.returncode == 0, result.log
    report = json.loads((result.output_dir / "evaluation.json").read_text())
    assert set(report) == {"regression_metrics", "metrics", "test_rows", "xgboost_version"}
    assert report["test_rows"] == 628
    assert report["xgboost_version"] == "1.7.4"  # the XGBoost 1.7-1 image's (its environment's) xgboost
    # And its metrics equal a recomputation from the model and the test split
    import xgboost

    data = np.loadtxt(test_dir / "test.csv", delimiter=",", ndmin=2)
    booster = xgboost.Booster()
    booster.load_model(str(pipeline.model_file))
    errors = booster.predict(xgboost.DMatrix(data[:, 1:])) - data[:, 0]
    rmse = float(np.sqrt(np.mean(errors**2)))
    mae = float(np.mean(np.abs(errors)))
    r2 = 1 - float(np.sum(errors**2)) / float(np.sum((data[:, 0] - data[:, 0].mean()) ** 2))
    regression = report["regression_metrics"]
    assert regression["rmse"]["value"] == pytest.approx(rmse, rel=1e-9)
    assert regression["rmse"]["standard_deviation"] == pytest.approx(float(np.std(errors)), rel=1e-9)
    assert regression["mae"]["value"] == pytest.approx(mae, rel=1e-9)
    assert regression["r2"]["value"] == pytest.approx(r2, rel=1e-9)
    assert report["metrics"] == {name: regression[name]["value"] for name in ("rmse", "mae", "r2")}
    assert rmse < 3.0
    assert "628 test rows" in result.log


def test_a_test_set_with_another_feature_count_is_rejected(tmp_path: Path, pipeline: Pipeline) -> None:
    # Given a test split with one extra feature column
    model_dir = make_model_dir(tmp_path / "model", {"xgboost-model": pipeline.model_file.read_bytes()})
    lines = (pipeline.splits / "test" / "test.csv").read_text().splitlines()
    test_dir = make_test_dir(tmp_path / "test", "".join(f"{line},0\n" for line in lines))

    # When evaluate runs
    result = run_evaluate(tmp_path, model_dir, test_dir)

    # Then it fails saying how many features the model expects
    assert result.returncode == 1, result.log
    message = result.message_file.read_text()
    assert message == "test set has 11 feature columns (after the label) but the model expects 10"
    assert not (result.output_dir / "evaluation.json").exists()


GOOD_TEST_SET = "10,0.5,0.4\n7,0.3,0.2\n"

BAD_INPUTS = {
    "no model.tar.gz": (None, GOOD_TEST_SET, ["no model.tar.gz in", "found: nothing"]),
    "no xgboost-model inside": (
        {"model.bin": b"x"},
        GOOD_TEST_SET,
        ["no top-level xgboost-model", "model.bin"],
    ),
    "parent path member": ({"../escape": b"x"}, GOOD_TEST_SET, ["unsafe member '../escape'"]),
    "absolute path member": ({"/tmp/escape": b"x"}, GOOD_TEST_SET, ["unsafe member '/tmp/escape'"]),
    "empty test set": ({"xgboost-model": b"x"}, "", ["test set test.csv is empty"]),
    "test set with a header": (
        {"xgboost-model": b"x"},
        "rings,length\n10,0.5\n",
        ["non-numeric value 'rings' in row 1, column 1", "headerless"],
    ),
}


@pytest.mark.parametrize(("members", "test_csv", "expected"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_fails_with_a_one_line_reason(
    tmp_path: Path, members: dict[str, bytes] | None, test_csv: str, expected: list[str]
) -> None:
    # Given a bad model archive or test set (checked before the model is loaded)
    model_dir = tmp_path / "model"
    if members is None:
        model_dir.mkdir()
    else:
        make_model_dir(model_dir, members)
    test_dir = make_test_dir(tmp_path / "test", test_csv)

    # When evaluate runs
    result = run_evaluate(tmp_path, model_dir, test_dir)

    # Then it exits 1 without a traceback, the message file names the problem, nothing escapes
    assert result.returncode == 1, result.log
    assert "Traceback" not in result.log
    message = result.message_file.read_text()
    for fragment in expected:
        assert fragment in message
    assert "\n" not in message
    assert not (tmp_path / "tmp" / "escape").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (result.output_dir / "evaluation.json").exists()
