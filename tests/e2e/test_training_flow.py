"""The whole training flow on the embedded local runtime, driven through the CLI as a user would."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, service_target

pytestmark = pytest.mark.e2e


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    from sfn_mlops_local.cli import main

    code = main(list(argv))
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    return code, json.loads(last_line)


@pytest.fixture(scope="module")
def shared_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local service for the tests that need a state of their own but no run before them."""
    state = tmp_path_factory.mktemp("e2e-bad") / "state"
    yield state
    from sfn_mlops_local.local import client

    client.stop(state)


@pytest.fixture
def state(shared_state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_LOCAL_STATE", str(shared_state))
    monkeypatch.chdir(ROOT)
    return shared_state


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One successful abalone run shared by the assertions below (a full run takes ~15 s)."""
    import os

    from sfn_mlops_local.cli import main

    state = tmp_path_factory.mktemp("e2e") / "state"
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    try:
        buffer = io.StringIO()
        from contextlib import redirect_stdout

        with redirect_stdout(buffer):
            code = main(["run", "abalone", "--json"])
        summary = json.loads(buffer.getvalue().strip().splitlines()[-1])
    finally:
        del os.environ["MLOPS_LOCAL_STATE"]
    yield {"code": code, "summary": summary, "state": state}
    from sfn_mlops_local.local import client

    client.stop(state)


def test_run_abalone_succeeds_with_all_units_and_a_model_package(first_run: dict[str, Any]) -> None:
    # Given a fresh local runtime, When `mlops run abalone --json` runs
    summary = first_run["summary"]
    # Then the run and its four units succeed, in flow order, with the real test RMSE and a package
    assert first_run["code"] == 0
    assert summary["status"] == "SUCCEEDED"
    assert [u["name"] for u in summary["units"]] == ["preprocess", "train", "evaluate", "register"]
    assert all(u["status"] == "SUCCEEDED" and u["attempt"] == 1 for u in summary["units"])
    assert all(u["duration_s"] > 0 for u in summary["units"])
    assert 1.0 < summary["metrics"]["rmse"] < 3.1
    # in the stack's group for the pipeline (<resource prefix>-abalone)
    assert summary["model_package_arn"].startswith("arn:aws:sagemaker:us-east-1:123456789012:model-package/")
    assert summary["model_package_arn"].rsplit("/", 2)[-2].endswith("-abalone")
    assert summary["error"] is None


def test_model_artifact_loads_with_container_xgboost_and_reproduces_rmse(
    first_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xgboost
    from sfn_mlops.s3uri import split_s3_uri

    monkeypatch.chdir(ROOT)
    target, _ = service_target(first_run["state"])
    s3 = target.s3
    run = target.table.get_run(first_run["summary"]["run_id"])
    assert run is not None
    model_data = run["units"]["train"]["outputs"]["model_data"]
    test_prefix = run["units"]["preprocess"]["outputs"]["test_uri"]
    package = target.sagemaker.describe_model_package(ModelPackageName=run["model_package_arn"])
    bucket, key = split_s3_uri(model_data)
    archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    bucket, prefix = split_s3_uri(test_prefix)
    test_key = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"][0]["Key"]
    test_rows = s3.get_object(Bucket=bucket, Key=test_key)["Body"].read()
    # Then the artifact is a real model.tar.gz with the container's XGBoost version (1.7.x) ...
    assert xgboost.__version__.startswith("1.7.")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extract("xgboost-model", tmp_path, filter="data")
    booster = xgboost.Booster()
    booster.load_model(str(tmp_path / "xgboost-model"))
    data = np.loadtxt(io.BytesIO(test_rows), delimiter=",")
    predictions = booster.predict(xgboost.DMatrix(data[:, 1:]))
    rmse = float(np.sqrt(np.mean((predictions - data[:, 0]) ** 2)))
    # ... which reproduces the recorded RMSE, and the package carries the run and dataset identity
    assert rmse == pytest.approx(first_run["summary"]["metrics"]["rmse"], rel=1e-6)
    preprocessing, model = package["InferenceSpecification"]["Containers"]
    assert model["ModelDataUrl"] == model_data and model["Image"].endswith("sagemaker-xgboost:1.7-1")
    assert preprocessing["Image"].endswith("sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert preprocessing["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }
    # ... and the package is an inference pipeline: its preprocessing container turns the raw test rows into
    # exactly the rows the model was evaluated on, so the two containers predict what the evaluation measured
    bucket, key = split_s3_uri(preprocessing["ModelDataUrl"])
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        tar.extractall(tmp_path / "preprocessing", filter="data")
    inference = _module(tmp_path / "preprocessing" / "code" / "inference.py")
    transform = inference.model_fn(str(tmp_path / "preprocessing"))
    header, *raw = (ROOT / "models/abalone/data/abalone.csv").read_text().splitlines()
    document = json.loads((tmp_path / "preprocessing" / "preprocessing.json").read_text())
    order = np.random.RandomState(42).permutation(len(raw))  # preprocess's seeded split (pipeline.json seed)
    test_raw = [raw[i] for i in order[len(raw) - data.shape[0] :]]
    label = header.split(",").index("rings")
    body = "".join(",".join(c for j, c in enumerate(row.split(",")) if j != label) + "\n" for row in test_raw)
    encoded, mimetype = inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), transform), "")
    assert mimetype == "text/csv" and document["input_columns"] == [c for c in header.split(",") if c != "rings"]
    from_raw = booster.predict(xgboost.DMatrix(np.loadtxt(io.StringIO(encoded), delimiter=",", ndmin=2)))
    assert np.allclose(from_raw, predictions, rtol=0, atol=1e-6)
    metadata = package["CustomerMetadataProperties"]
    assert metadata["sfn-mlops:run-id"] == first_run["summary"]["run_id"]
    assert metadata["sfn-mlops:dataset-version"] == first_run["summary"]["dataset"]["version_id"]


def _module(path: Path) -> Any:
    """A package's inference script, imported as its container imports SAGEMAKER_PROGRAM."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("package_inference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reexecuting_the_flow_with_the_same_run_id_runs_no_sagemaker_job(first_run: dict[str, Any]) -> None:
    from tests.conftest import wait_until

    summary = first_run["summary"]
    target, info = service_target(first_run["state"])
    sfn = target.sfn
    workers = [arn for logical, arn in info.resources.items() if logical.endswith("Worker")]

    def worker_executions() -> int:
        return sum(len(sfn.list_executions(stateMachineArn=arn)["executions"]) for arn in workers)

    before = worker_executions()
    # When the job flow is started again with the same input (a new execution name)
    run_input = {
        "pipeline": "abalone",
        "run_id": summary["run_id"],
        "dataset": {k: summary["dataset"][k] for k in ("bucket", "key", "version_id")},
    }
    arn = sfn.start_execution(
        stateMachineArn=target.training_flow_arn, name=f"{summary['run_id']}-again", input=json.dumps(run_input)
    )["executionArn"]
    described = wait_until(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    # Then it succeeds, every unit returns its recorded outputs, and no worker (so no SageMaker job) started
    assert described["status"] == "SUCCEEDED", described
    assert worker_executions() == before
    skipped = [
        json.loads(e["taskSucceededEventDetails"]["output"])["Output"]["status"]
        for e in history
        if e["type"] == "TaskSucceeded" and e["taskSucceededEventDetails"]["resource"] == "startExecution.sync:2"
    ]
    assert skipped == ["SKIPPED"] * 4
    assert json.loads(described["output"])["model_package_arn"] == summary["model_package_arn"]


def test_status_shows_the_recorded_run(
    first_run: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_LOCAL_STATE", str(first_run["state"]))
    code, status = run_cli(capsys, "status", first_run["summary"]["run_id"], "--json")
    assert code == 0
    assert status["status"] == "SUCCEEDED"
    assert status["model_package_arn"] == first_run["summary"]["model_package_arn"]
    # SKIPPED when the re-execution above ran last: status shows what the latest execution did with each unit
    assert all(u["status"] in ("SUCCEEDED", "SKIPPED") and u["attempt"] == 1 for u in status["units"])


# Bad datasets (empty, not CSV, no label, non-numeric...) are cases of the bad-input suite:
# tests/e2e/test_bad_inputs_datasets.py.


def test_upload_under_an_unknown_pipeline_starts_no_run(runtime: Any) -> None:
    from tests.conftest import wait_until

    # When a dataset lands under a prefix that names no published pipeline
    runtime.client("s3").put_object(Bucket=runtime.bucket, Key="data/nosuchpipeline/x.csv", Body=b"a,b\n1,2\n")
    runtime.events.wait_idle()
    # Then the trigger rejects it, and no execution of the flow starts
    delivery = wait_until(lambda: runtime.events.deliveries)[0]
    assert delivery["result"]["started"] is False
    assert "unknown pipeline 'nosuchpipeline'" in delivery["result"]["reason"]
    flow = runtime.state_machine_arn("TrainingFlow")
    assert runtime.client("stepfunctions").list_executions(stateMachineArn=flow)["executions"] == []


def test_upload_outside_the_data_prefix_is_not_delivered(runtime: Any) -> None:
    runtime.client("s3").put_object(Bucket=runtime.bucket, Key="runs/abalone/x.csv", Body=b"a,b\n1,2\n")
    runtime.events.wait_idle()
    assert not runtime.events.deliveries
