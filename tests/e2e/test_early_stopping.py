"""Early stopping as the XGBoost 1.7-1 container does it, through `mlops rerun --set` on a real run.

The container stops early only when ``eval_metric`` is set (and a validation channel exists), and then saves
the best iteration's model, truncated; without ``eval_metric``, ``early_stopping_rounds`` does nothing.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, service_target

pytestmark = pytest.mark.e2e


def cli(*argv: str) -> tuple[int, dict[str, Any]]:
    from sfn_mlops_local.cli import main

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(list(argv))
    return code, json.loads(buffer.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from sfn_mlops_local.local import client

    folder = tmp_path_factory.mktemp("early-stopping") / "state"
    previous = os.environ.get("MLOPS_LOCAL_STATE")
    os.environ["MLOPS_LOCAL_STATE"] = str(folder)
    try:
        yield folder
    finally:
        client.stop(folder)
        if previous is None:
            os.environ.pop("MLOPS_LOCAL_STATE", None)
        else:
            os.environ["MLOPS_LOCAL_STATE"] = previous


@pytest.fixture(scope="module")
def first_run(state: Path) -> dict[str, Any]:
    """A successful abalone run, whose training the tests rerun with other hyperparameters (overrides stay on a run:
    each test leaves none that would change the other's outcome)."""
    previous = os.getcwd()
    os.chdir(ROOT)
    try:
        code, first = cli("run", "abalone", "--json")
    finally:
        os.chdir(previous)
    assert code == 0 and first["status"] == "SUCCEEDED", first
    return first


def trained_booster(state: Path, run_id: str, tmp_path: Path) -> Any:
    """The booster the run's latest train attempt saved (the model.tar.gz SageMaker would hold)."""
    import xgboost
    from sfn_mlops.s3uri import split_s3_uri

    target, _ = service_target(state)
    run = target.table.get_run(run_id)
    assert run is not None
    bucket, key = split_s3_uri(run["units"]["train"]["outputs"]["model_data"])
    archive = target.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    folder = tmp_path / key.replace("/", "_")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extract("xgboost-model", folder, filter="data")
    booster = xgboost.Booster()
    booster.load_model(str(folder / "xgboost-model"))
    return booster


def test_early_stopping_rounds_stop_training_only_with_an_eval_metric(
    state: Path, first_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    # Given a successful abalone run
    run_id = first_run["run_id"]

    # When its training is rerun with 300 rounds and early_stopping_rounds=5 but no eval_metric
    code, rerun = cli(
        "rerun",
        run_id,
        "--only",
        "train",
        "--set",
        "train.hyperparameters.num_round=300",
        "--set",
        "train.hyperparameters.early_stopping_rounds=5",
        "--json",
    )
    # Then, as on SageMaker, all 300 rounds are trained (the container ignores early stopping without a metric)
    assert code == 0 and rerun["status"] in ("SUCCEEDED", "PARTIAL"), rerun
    assert trained_booster(state, run_id, tmp_path).num_boosted_rounds() == 300

    # When it is rerun again with eval_metric=rmse as well
    code, rerun = cli("rerun", run_id, "--only", "train", "--set", "train.hyperparameters.eval_metric=rmse", "--json")
    assert code == 0 and rerun["status"] in ("SUCCEEDED", "PARTIAL"), rerun
    # Then it stops early on the validation RMSE and the saved model is the best iteration's, truncated
    booster = trained_booster(state, run_id, tmp_path)
    best = int(booster.attr("best_iteration"))
    assert booster.num_boosted_rounds() == best + 1 < 300


def test_a_hyperparameter_the_container_refuses_fails_the_run_naming_the_rule(
    first_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfn_mlops_local.cli import main

    monkeypatch.chdir(ROOT)
    # Given a successful abalone run
    # When its training is rerun with a learning rate the XGBoost 1.7-1 container refuses
    capsys.readouterr()
    code = main(["rerun", first_run["run_id"], "--only", "train", "--set", "train.hyperparameters.eta=2", "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    # Then the run fails in train, and both the one-line error and the recorded cause name the container's rule
    assert code == 1 and summary["status"] == "FAILED" and summary["error"]["unit"] == "train", summary
    assert "Hyperparameter eta: 2.0 is not in" in captured.err, captured.err
    # (the recorded cause is SageMaker's FailureReason read as one line: the rule, or, when its 1,024 characters
    # end inside the traceback, a pointer to the job log, from which the one-line error above quotes the rule)
    from sfn_mlops.job_failures import CUT_SHORT

    cause = summary["error"]["cause"]
    assert "Hyperparameter eta: 2.0 is not in" in cause or CUT_SHORT in cause, summary["error"]
    # And undoing the override trains again (the shared run carries no eta=2 into the other test, in either order)
    code, undone = cli(
        "rerun", first_run["run_id"], "--only", "train", "--unset", "train.hyperparameters.eta", "--json"
    )
    assert code == 0 and undone["status"] in ("SUCCEEDED", "PARTIAL"), undone
