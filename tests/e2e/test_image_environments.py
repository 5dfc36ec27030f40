"""A pipeline's script runs in its image's environment: on the scikit-learn image, importing XGBoost fails the run
with the error AWS would give, and the job's log starts with how the local environment differs from the image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, service_target, wait_until

pytestmark = pytest.mark.e2e

# What the abalone preprocess would look like if it used XGBoost, which its image (scikit-learn 1.2-1) lacks.
XGBOOST_IMPORTING_SCRIPT = b"""import numpy
import xgboost
print("never reached")
"""


@pytest.fixture
def state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("e2e-image-env") / "state"
    monkeypatch.setenv("MLOPS_LOCAL_STATE", str(state))
    monkeypatch.chdir(ROOT)
    yield state
    from sfn_mlops_local.local import client

    client.stop(state)


def test_a_preprocess_importing_what_the_sklearn_image_lacks_fails_the_run_naming_the_package(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfn_mlops_local import operations
    from sfn_mlops_local.cli import main

    # Given the abalone pipeline published, then its preprocess script replaced by one that imports xgboost
    assert main(["publish", "abalone"]) == 0
    target, _ = service_target(state)
    target.s3.put_object(
        Bucket=target.bucket, Key="pipelines/abalone/scripts/preprocess.py", Body=XGBOOST_IMPORTING_SCRIPT
    )
    # When a dataset lands and its run ends
    data = tmp_path / "abalone-image-env.csv"
    data.write_bytes((ROOT / "models/abalone/data/abalone.csv").read_bytes())
    key, version = operations.upload_dataset(target, "abalone", data)
    run_id, _ = operations.find_run_for_upload(target, key, version)
    wait_until(
        lambda: (
            target.table.get_run(run_id) is not None
            and operations.run_summary(target, run_id)["status"] not in ("RUNNING", "PENDING")
        ),
        timeout=300,
    )
    capsys.readouterr()
    main(["status", run_id, "--json"])
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Then the run failed in preprocess with the error the job would meet on AWS
    assert status["status"] == "FAILED" and status["error"]["unit"] == "preprocess"
    cause = status["error"]["cause"]
    assert "ModuleNotFoundError: No module named 'xgboost'" in cause
    # And the job's log opens with the environment it ran in and how that differs from the image
    log_lines = Path(cause.rsplit("; log file: ", 1)[1]).read_text().splitlines()
    header = next(line for line in log_lines if not line.startswith("building "))
    assert header.startswith("local image environment sagemaker-scikit-learn:1.2-1: Python 3.11 (image: 3.9); ")
    assert "pandas 1.5.0 (image: 1.1.3)" in header
