"""The churn pipeline end to end on the local service, beside abalone, driven through the CLI as a user would: its
PySpark preprocess runs on the Spark processing image (Spark local mode here), its binary classifier is registered
in churn's own group, approved, deployed, asked for probabilities, batch-scored, reported, and its lineage stays
apart from abalone's. One churn run (its Spark preprocess takes about a minute) and one abalone run are shared."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
        reason="churn's Spark preprocess needs Java 17 (apt-get install openjdk-17-jre-headless)",
    ),
]

CHURN_DATA = ROOT / "models/churn/data/churn.csv"
# The test AUC of churn's deterministic split (seed 42) with its pipeline.json hyperparameters: measured 0.9111.
AUC_BAND = (0.90, 0.93)


def mlops(*argv: str) -> tuple[int, dict[str, Any]]:
    """Run one `mlops` command in-process; its exit code and the JSON object of its last line."""
    from sfn_mlops_local.cli import main

    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            code = main([*argv, "--json"])
    except SystemExit as exc:  # one readable line, as a user sees it
        return (exc.code if isinstance(exc.code, int) else 1), {"message": str(exc.code)}
    return code, json.loads(buffer.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local service with one churn run and one abalone run."""
    state = tmp_path_factory.mktemp("churn") / "state"
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    try:
        churn_code, churn = mlops("run", "churn")
        abalone_code, abalone = mlops("run", "abalone")
        yield {"state": state, "churn": churn, "churn_code": churn_code, "abalone": abalone, "code": abalone_code}
    finally:
        del os.environ["MLOPS_LOCAL_STATE"]
        from sfn_mlops_local.local import client

        client.stop(state)


def raw_rows(count: int) -> str:
    """The first rows of churn's data without the label, with the header, as CSV text."""
    with CHURN_DATA.open() as source:
        reader = csv.reader(source)
        header = next(reader)
        label = header.index("churn")
        rows = [[c for i, c in enumerate(row) if i != label] for _, row in zip(range(count), reader, strict=False)]
    columns = [c for i, c in enumerate(header) if i != label]
    return "\n".join(",".join(row) for row in [columns, *rows]) + "\n"


def test_churn_runs_its_pyspark_preprocess_on_the_spark_image_and_registers_in_its_own_group(
    service: dict[str, Any],
) -> None:
    # Given a fresh local runtime, When `mlops run churn --json` runs
    summary = service["churn"]
    assert service["churn_code"] == 0, summary.get("error")
    # Then the run and its units succeed, the preprocess on the Spark processing image, training on XGBoost's
    assert summary["status"] == "SUCCEEDED"
    units = {u["name"]: u for u in summary["units"]}
    assert all(u["status"] == "SUCCEEDED" for u in units.values())
    assert "/sagemaker-spark-processing:3.5-cpu-py312-v1" in units["preprocess"]["image"]
    assert "/sagemaker-xgboost:1.7-1" in units["train"]["image"]
    assert units["register"]["image"] is None  # no job of its own
    # And the binary classifier's test AUC is the measured one of this split
    low, high = AUC_BAND
    assert low < summary["metrics"]["auc"] < high
    # And its package is in churn's own group, not abalone's
    package = summary["model_package_arn"]
    assert package.split("/")[-2].endswith("-churn")
    assert service["abalone"]["model_package_arn"].split("/")[-2].endswith("-abalone")


def test_status_names_the_image_each_unit_ran(service: dict[str, Any]) -> None:
    code, status = mlops("status", service["churn"]["run_id"])
    assert code == 0, status
    assert [u["image"] is not None for u in status["units"]] == [True, True, True, False]
    assert status["units"][0]["image"] == service["churn"]["units"][0]["image"]


def test_an_approved_churn_package_deploys_and_answers_probabilities_then_scores_a_batch(
    service: dict[str, Any], tmp_path: Path
) -> None:
    package = service["churn"]["model_package_arn"]
    # Given churn's package, When a person approves it
    code, decided = mlops("approve", package, "--reason", "churn model for staging")
    assert code == 0, decided

    # Then it deploys to churn's staging endpoint
    def deployed() -> dict[str, Any] | None:
        _code, listed = mlops("endpoints")
        serving = [e for e in listed.get("endpoints", []) if e.get("model_package_arn") == package]
        return serving[0] if serving and serving[0].get("status") == "InService" else None

    assert wait_until(deployed, timeout=180)
    # And raw rows (no label) come back as probabilities of churning
    data = tmp_path / "rows.csv"
    data.write_text(raw_rows(6))
    code, answer = mlops("predict", "churn", "--data", str(data))
    assert code == 0, answer
    assert answer["model_package_arn"] == package
    assert len(answer["predictions"]) == 6
    assert all(0.0 <= p <= 1.0 for p in answer["predictions"])
    # And a batch of the same rows scores with the approved package
    code, batch = mlops("batch", "churn", "--data", str(data))
    assert code == 0, batch
    assert batch["status"] == "SUCCEEDED"
    assert batch["model_package_arn"] == package


def test_each_pipelines_report_shows_its_own_runs(service: dict[str, Any], tmp_path: Path) -> None:
    for pipeline in ("churn", "abalone"):
        code, report = mlops("report", pipeline, "--out", str(tmp_path / f"{pipeline}.html"))
        assert code == 0, report
        assert report["pipeline"] == pipeline
        assert service[pipeline]["run_id"] in {r["run_id"] for r in report["runs"]}
        # (a batch or a deployment of the pipeline is a run of it too; no run of the other pipeline is listed)
        other = "abalone" if pipeline == "churn" else "churn"
        assert not any(r["run_id"].startswith(f"{other}-") for r in report["runs"])


def test_lineage_and_impact_keep_the_two_pipelines_apart(service: dict[str, Any]) -> None:
    churn, abalone = service["churn"], service["abalone"]
    # When the impact of churn's dataset is asked for
    code, impact = mlops("impact", churn["dataset"]["uri"])
    assert code == 0, impact
    # Then it names churn's package and none of abalone's
    text = json.dumps(impact)
    assert churn["model_package_arn"] in text
    assert abalone["model_package_arn"] not in text and abalone["run_id"] not in text
    # And the lineage of churn's package names churn's dataset, not abalone's
    code, lineage = mlops("lineage", "model", churn["model_package_arn"])
    assert code == 0, lineage
    text = json.dumps(lineage)
    assert churn["dataset"]["uri"] in text and abalone["dataset"]["uri"] not in text
