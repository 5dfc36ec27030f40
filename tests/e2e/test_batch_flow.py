"""Batch inference on the local service, driven through the CLI as a user would: an approved model scores every row
as the model itself does; drifted input is named, blocked, or retrains once; the batch schedule scores the newest
input; runs, status, lineage and impact show batches."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, service_target, wait_until
from tests.e2e.test_deployment_flow import mlops, predict_by_hand

pytestmark = pytest.mark.e2e

DATA = ROOT / "models/abalone/data/abalone.csv"


def unlabelled(limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    """abalone's rows without the label (``limit`` of them spread over the file)."""
    with DATA.open() as source:
        rows = list(csv.reader(source))
    label = rows[0].index("rings")
    body = [[c for i, c in enumerate(row) if i != label] for row in rows[1:]]
    if limit is not None:
        body = body[:: len(body) // limit][:limit]
    return [c for i, c in enumerate(rows[0]) if i != label], body


def drifted(header: list[str], rows: list[list[str]], *, sex: bool = True, drop: str | None = "diameter") -> Any:
    """Every length x1.5; an unknown sex in every 50th row; one column dropped."""
    length = header.index("length")
    out = []
    for i, row in enumerate(rows):
        cells = [*row]
        cells[length] = repr(float(cells[length]) * 1.5)
        if sex and i % 50 == 0:
            cells[0] = "X"
        out.append(cells)
    if drop:
        index = header.index(drop)
        return header[:index] + header[index + 1 :], [r[:index] + r[index + 1 :] for r in out]
    return header, out


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local service with one successful abalone run whose package a person approved."""
    state = tmp_path_factory.mktemp("batch") / "state"
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    try:
        code, first = mlops("run", "abalone")
        assert code == 0, first
        code, approved = mlops("approve", first["model_package_arn"], "--reason", "good enough to score with")
        assert code == 0, approved
        target, info = service_target(state)
        yield {"state": state, "target": target, "info": info, "first": first}
    finally:
        del os.environ["MLOPS_LOCAL_STATE"]
        from sfn_mlops_local.local import client

        client.stop(state)


def publish_with(target: Any, tmp: Path, **sections: dict[str, Any]) -> None:
    """Publish abalone with changed sections (the batch section's schedule is applied by publishing)."""
    from sfn_mlops_local.operations import publish_pipeline

    folder = tmp / "abalone"
    shutil.copytree(ROOT / "models/abalone", folder, ignore=shutil.ignore_patterns("__pycache__", "data"))
    config = json.loads((folder / "pipeline.json").read_text())
    for name, changes in sections.items():
        config[name] = {**config.get(name, {}), **changes}
    (folder / "pipeline.json").write_text(json.dumps(config))
    publish_pipeline(target, folder)


def training_runs(target: Any) -> set[str]:
    return {r["PK"].split("#", 1)[1] for r in target.table.list_runs("abalone", 50) if r.get("kind") != "batch"}


def test_an_approved_model_scores_every_row_as_the_model_itself_does(service: dict[str, Any], tmp_path: Path) -> None:
    target = service["target"]
    package = service["first"]["model_package_arn"]
    publish_with(target, tmp_path, drift={"action": "warn"})
    header, rows = unlabelled()
    # Given the training data without its label, When it is scored as a batch
    code, batch = mlops("batch", "abalone", "--data", str(write_csv(tmp_path / "abalone.csv", header, rows)))
    # Then the batch succeeds with no drift, and one prediction per row
    assert code == 0, batch
    assert batch["status"] == "SUCCEEDED" and batch["drift"] == {"status": "OK", "violations": []}
    assert batch["model_package_arn"] == package and batch["error"] is None
    assert batch["rows_scored"] == len(rows)
    assert [u["name"] for u in batch["units"]] == ["model", "check", "transform"]
    from sfn_mlops_local.batch_operations import read_predictions

    predictions = [float(line) for line in read_predictions(target, batch["output_uri"])]
    assert len(predictions) == len(rows)
    # each equal to the package's own preprocessing and model applied by hand
    expected = predict_by_hand(target, package, rows, tmp_path)
    worst = max(abs(a - b) for a, b in zip(predictions, expected, strict=True))
    assert worst <= 1e-6, worst
    # And status, runs, lineage and impact show the batch
    code, status = mlops("status", batch["run_id"])
    assert status["kind"] == "batch" and status["drift"]["status"] == "OK"
    assert set(status["drift"]["features"]) == set(header)
    assert all(not f["drifted"] for f in status["drift"]["features"].values())
    code, runs = mlops("runs", "abalone")
    assert {r["run_id"]: r["kind"] for r in runs["runs"]}[batch["run_id"]] == "batch"
    code, lineage = mlops("lineage", "model", package)
    assert [o["output_uri"] for o in lineage["batch_outputs"]] == [batch["output_uri"]]
    dataset = service["first"]["dataset"]
    code, affected = mlops("impact", dataset["uri"])
    assert batch["output_uri"] in [o["output_uri"] for o in affected["batch_outputs"]]


def test_id_columns_come_back_joined_to_each_prediction_whatever_the_column_order(
    service: dict[str, Any], tmp_path: Path
) -> None:
    target = service["target"]
    package = service["first"]["model_package_arn"]
    publish_with(target, tmp_path, drift={"action": "warn"}, batch={"id_columns": ["row_id"]})
    header, rows = unlabelled(50)
    # Given rows with an id column, in another column order than training's
    shuffled = [*reversed(header), "row_id"]
    body = [[*reversed(row), f"id-{i}"] for i, row in enumerate(rows)]
    code, batch = mlops("batch", "abalone", "--data", str(write_csv(tmp_path / "ids.csv", shuffled, body)))
    publish_with(target, tmp_path / "reset", batch={"id_columns": []})
    # Then each output line is the row's id, then its prediction, as the model predicts the row
    assert code == 0 and batch["rows_scored"] == len(rows), batch
    from sfn_mlops_local.batch_operations import read_predictions

    lines = [line.split(",") for line in read_predictions(target, batch["output_uri"])]
    assert [line[0] for line in lines] == [f"id-{i}" for i in range(len(rows))]
    expected = predict_by_hand(target, package, rows, tmp_path)
    assert max(abs(float(line[1]) - e) for line, e in zip(lines, expected, strict=True)) <= 1e-6


def test_drifted_input_is_named_and_with_action_block_nothing_is_scored(
    service: dict[str, Any], tmp_path: Path
) -> None:
    target = service["target"]
    publish_with(target, tmp_path, drift={"action": "block"})
    header, rows = drifted(*unlabelled(600))
    # Given every length x1.5, an unknown sex and a missing column, When it is scored with drift.action block
    code, batch = mlops("batch", "abalone", "--data", str(write_csv(tmp_path / "drifted.csv", header, rows)))
    # Then the batch fails with DriftDetected, naming exactly those features and check types
    assert code == 1 and batch["status"] == "FAILED", batch
    assert batch["error"]["error"] == "DriftDetected" and batch["error"]["unit"] == "check"
    assert batch["drift"]["status"] == "DRIFT"
    assert {(v["feature_name"], v["constraint_check_type"]) for v in batch["drift"]["violations"]} == {
        ("length", "baseline_drift_check"),
        ("sex", "categorical_values_check"),
        ("diameter", "missing_column_check"),
    }
    for feature in ("length", "sex", "diameter"):
        assert feature in batch["error"]["cause"]
    # And nothing was scored: no transform job, no output
    assert batch["rows_scored"] == 0 and batch["output_uri"] is None
    jobs = target.sagemaker.list_transform_jobs(NameContains=batch["run_id"])["TransformJobSummaries"]
    assert jobs == []
    listed = target.s3.list_objects_v2(Bucket=target.bucket, Prefix=f"batch/abalone/{batch['run_id']}/output/")
    assert listed.get("KeyCount", 0) == 0
    violations = target.s3.list_objects_v2(Bucket=target.bucket, Prefix=f"batch/abalone/{batch['run_id']}/check/")
    assert [o["Key"].rsplit("/", 1)[-1] for o in violations["Contents"]] == ["constraint_violations.json"]


def test_drift_with_action_retrain_starts_one_training_run_when_the_batch_arrives_twice(
    service: dict[str, Any], tmp_path: Path
) -> None:
    target = service["target"]
    publish_with(target, tmp_path, drift={"action": "retrain"})
    before = training_runs(target)
    header, rows = drifted(*unlabelled(300), sex=False, drop=None)
    body = write_csv(tmp_path / "shifted.csv", header, rows).read_bytes()
    # Given a drifted batch delivered twice (the same file uploaded twice under incoming/)
    batches = []
    for _ in range(2):
        version = target.s3.put_object(Bucket=target.bucket, Key="batch/abalone/incoming/day.csv", Body=body)
        key = f"batch#s3://{target.bucket}/batch/abalone/incoming/day.csv#{version['VersionId']}"
        batches.append(wait_until(lambda key=key: target.table.trigger_run_id(key), timeout=60))
    # Then both are scored (retrain scores too) and flag the drift
    done = [
        wait_until(lambda b=b: (r := target.table.get_run(b)) and r["status"] in ("SUCCEEDED", "FAILED") and r, 300)
        for b in batches
    ]
    assert [r["status"] for r in done] == ["SUCCEEDED", "SUCCEEDED"], [r.get("error") for r in done]
    assert [r["drift"]["status"] for r in done] == ["DRIFT", "DRIFT"]
    assert all(r["rows_scored"] == len(rows) for r in done)
    # And exactly one training run started, on the newest training data
    started = training_runs(target) - before
    assert len(started) == 1, started
    retrains = {r["retrain"]["run_id"] for r in done}
    assert retrains == started


def test_the_batch_schedule_fires_on_the_local_service_and_scores_the_newest_input(
    service: dict[str, Any], tmp_path: Path
) -> None:
    target = service["target"]
    publish_with(target, tmp_path / "warn", drift={"action": "warn"})
    header, rows = unlabelled(120)
    target.s3.put_object(Bucket=target.bucket, Key="batch/abalone/incoming/old.csv", Body=b"not,even,csv\n")
    newest = write_csv(tmp_path / "new.csv", header, rows).read_bytes()
    time.sleep(1.1)  # S3 modification times have one-second resolution: "newest" must be unambiguous
    target.s3.put_object(Bucket=target.bucket, Key="batch/abalone/incoming/newest.csv", Body=newest)
    known = {r["PK"] for r in target.table.list_runs("abalone", 50)}

    def scheduled() -> dict[str, Any] | None:
        for run in target.table.list_runs("abalone", 50):
            if run["PK"] not in known and run.get("batch_trigger") == "schedule":
                return run if run.get("status") in ("SUCCEEDED", "FAILED") else None
        return None

    # Given the pipeline's batch schedule, enabled by publishing (a new rate schedule fires at once)
    publish_with(target, tmp_path, batch={"schedule": {"expression": "rate(1 hour)", "enabled": True}})
    # Then the local service fires it, and it scores the newest object under incoming/
    run = wait_until(scheduled, timeout=300, interval=0.5)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["input"]["key"] == "batch/abalone/incoming/newest.csv" and run["rows_scored"] == len(rows)
    # When it is turned off again and fired by hand (the fire-now path)
    publish_with(target, tmp_path / "off", batch={"schedule": {"expression": "rate(1 hour)", "enabled": False}})
    known.add(run["PK"])
    code, fired = mlops("local", "fire", "sfn-mlops-local-abalone-batch")
    assert code == 0 and fired["Ok"], fired
    again = wait_until(scheduled, timeout=300, interval=0.5)
    assert again["status"] == "SUCCEEDED" and again["input"]["key"] == "batch/abalone/incoming/newest.csv"


def test_a_batch_that_cannot_start_is_one_line_and_leaves_nothing_behind(
    service: dict[str, Any], tmp_path: Path
) -> None:
    target = service["target"]

    def uploaded() -> set[str]:
        listed = target.s3.list_objects_v2(Bucket=target.bucket, Prefix="batch/")
        return {o["Key"] for o in listed.get("Contents", [])}

    before = uploaded()
    header, rows = unlabelled(5)
    data = write_csv(tmp_path / "rows.csv", header, rows)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    cases = {
        # an unpublished pipeline, a name that is not one, a file that is not there, an empty file
        ("batch", "churnx", "--data", str(data)): "is not published",
        ("batch", "Aba/lone", "--data", str(data)): "is not a pipeline name",
        ("batch", "abalone", "--data", str(tmp_path / "missing.csv")): "does not exist",
        ("batch", "abalone", "--data", str(empty)): "is empty",
    }
    for argv, expected in cases.items():
        # When the batch is asked for, Then it fails with one line naming the problem
        code, answer = mlops(*argv)
        assert code != 0 and expected in answer["message"], (argv, answer)
        assert "\n" not in answer["message"] and "Traceback" not in answer["message"]
    # And nothing was uploaded, and the next batch works
    assert uploaded() == before
    code, batch = mlops("batch", "abalone", "--data", str(data))
    assert code == 0 and batch["rows_scored"] == len(rows), batch
