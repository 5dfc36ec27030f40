"""Serving on the local service, driven through the CLI as a user would: approval deploys, predictions match the
package applied by hand, a canary update, rollbacks (smoke test, alarm), promote, rollback, and refusals."""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, service_target, wait_until

pytestmark = pytest.mark.e2e

FAST_TRAFFIC = {"type": "CANARY", "canary_percent": 10, "wait_s": 3, "termination_wait_s": 2}


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
    """A local service with one successful abalone run, deployed with short canary waits."""
    state = tmp_path_factory.mktemp("serving") / "state"
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    try:
        code, first = mlops("run", "abalone")
        assert code == 0, first
        target, info = service_target(state)
        publish_with(target, traffic=FAST_TRAFFIC)
        yield {"state": state, "target": target, "info": info, "first": first}
    finally:
        del os.environ["MLOPS_LOCAL_STATE"]
        from sfn_mlops_local.local import client

        client.stop(state)


def publish_with(target: Any, **deploy: Any) -> None:
    """Re-publish abalone's config with a changed deploy section (the deployment pins what is published)."""
    key = "pipelines/abalone/pipeline.json"
    config = json.loads(target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read())
    config["deploy"] = {**config["deploy"], **deploy}
    target.s3.put_object(Bucket=target.bucket, Key=key, Body=json.dumps(config).encode())


def endpoint(stage: str = "staging") -> dict[str, Any]:
    code, listed = mlops("endpoints")
    assert code == 0, listed
    return next((e for e in listed["endpoints"] if e["stage"] == stage), {})


def raw_rows(count: int) -> tuple[str, list[list[str]]]:
    """The first rows of abalone's data without the label, as CSV text, and as cells."""
    with (ROOT / "models/abalone/data/abalone.csv").open() as source:
        reader = csv.reader(source)
        header = next(reader)
        label = header.index("rings")
        rows = [
            [cell for i, cell in enumerate(row) if i != label] for _, row in zip(range(count), reader, strict=False)
        ]
    columns = [c for i, c in enumerate(header) if i != label]
    text = "\n".join(",".join(row) for row in [columns, *rows]) + "\n"
    return text, rows


def predict_by_hand(target: Any, package_arn: str, rows: list[list[str]], tmp: Path) -> list[float]:
    """The package applied without the endpoint: its fitted preprocessing, then its model.tar.gz (xgboost 1.7)."""
    import importlib.util

    import xgboost

    package = target.sagemaker.describe_model_package(ModelPackageName=package_arn)
    preprocessing, model = package["InferenceSpecification"]["Containers"]
    folders = []
    for name, container in (("pre", preprocessing), ("model", model)):
        bucket, key = container["ModelDataUrl"][5:].split("/", 1)
        folder = tmp / name
        folder.mkdir()
        with tarfile.open(fileobj=io.BytesIO(target.s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
            tar.extractall(folder, filter="data")
        folders.append(folder)
    spec = importlib.util.spec_from_file_location("inference_by_hand", folders[0] / "code" / "inference.py")
    assert spec and spec.loader
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    fitted = inference.model_fn(str(folders[0]))
    body = "\n".join(",".join(row) for row in rows)
    encoded = inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), fitted), "text/csv")
    encoded_text = encoded if isinstance(encoded, str) else encoded[0] if isinstance(encoded, tuple) else encoded
    if isinstance(encoded_text, bytes):
        encoded_text = encoded_text.decode()
    features = np.loadtxt(io.StringIO(str(encoded_text)), delimiter=",", ndmin=2)
    booster = xgboost.Booster()
    booster.load_model(str(folders[1] / "xgboost-model"))
    return [float(v) for v in booster.predict(xgboost.DMatrix(features))]


def approve(package_arn: str) -> dict[str, Any]:
    code, decided = mlops("approve", package_arn, "--reason", "good enough for staging")
    assert code == 0, decided
    return decided


def test_an_approval_deploys_the_package_and_the_endpoint_answers_raw_rows(
    service: dict[str, Any], tmp_path: Path
) -> None:
    package_arn = service["first"]["model_package_arn"]
    # Given a registered package, When a person approves it (and nothing else)
    assert approve(package_arn)["approval_status"] == "Approved"
    # Then the approval event deploys it to staging on its own
    serving = wait_until(lambda: endpoint() if endpoint().get("status") == "InService" else None, timeout=120)
    assert serving["model_package_arn"] == package_arn and serving["previous_model_package_arn"] is None
    code, deployments = mlops("deployments", "abalone")
    assert deployments["deployments"][0]["status"] == "SUCCEEDED"
    assert deployments["deployments"][0]["strategy"] == "CREATE"
    # And raw rows (no label, with a header) score as the package's own preprocessing and model do by hand
    text, rows = raw_rows(8)
    data = tmp_path / "rows.csv"
    data.write_text(text)
    code, answer = mlops("predict", "abalone", "--data", str(data))
    assert code == 0, answer
    assert answer["model_package_arn"] == package_arn
    expected = predict_by_hand(service["target"], package_arn, rows, tmp_path)
    assert np.allclose(answer["predictions"], expected, atol=1e-6, rtol=0)


def test_a_second_approved_package_is_a_canary_update_and_a_failed_smoke_test_rolls_back(
    service: dict[str, Any], tmp_path: Path
) -> None:
    first = service["first"]["model_package_arn"]
    wait_until(lambda: endpoint().get("model_package_arn") == first, timeout=120)
    # Given a second model, registered and approved
    code, second_run = mlops(
        "rerun", service["first"]["run_id"], "--from", "train", "--set", "train.hyperparameters.num_round=40"
    )
    assert code == 0, second_run
    second = second_run["model_package_arn"]
    assert second != first
    approve(second)
    # Then a blue/green canary update moves staging to it, recorded with its traffic steps
    wait_until(lambda: endpoint().get("model_package_arn") == second, timeout=180)
    code, listed = mlops("deployments", "abalone")
    update = listed["deployments"][0]
    assert update["status"] == "SUCCEEDED" and update["strategy"] == "CANARY"
    code, detail = mlops("status", update["deployment_id"])  # a deployment is a run: status shows its units
    assert code == 0 and [u["name"] for u in detail["units"]] == ["model", "endpoint_config", "deploy", "smoke_test"]
    # (the deployment's own summary has the traffic steps the deploy worker saw)
    target = service["target"]
    from sfn_mlops_local.deployments import deployment_summary

    steps = deployment_summary(target, update["deployment_id"])["traffic_steps"]
    assert any(s.get("new_fleet_weight") not in (None, 0) for s in steps), steps
    # When the first package is deployed again and its smoke test fails
    code, failed = mlops("deploy", "abalone", "--package", first, "--fail-at", "smoke_test")
    # Then the deployment is ROLLED_BACK with a readable cause, and staging still serves the second package
    assert code == 1 and failed["status"] == "ROLLED_BACK", failed
    assert failed["error"]["unit"] == "smoke_test" and failed["error"]["cause"]
    assert endpoint()["model_package_arn"] == second
    # And once the fault is gone, a rerun of that deployment completes
    code, again = mlops("rerun", failed["deployment_id"])
    assert code == 0 and again["status"] == "SUCCEEDED", again["error"]
    assert endpoint()["model_package_arn"] == first


def test_an_alarm_during_baking_rolls_the_update_back(service: dict[str, Any]) -> None:
    target = service["target"]
    current = endpoint()["model_package_arn"]
    other = next(
        p["ModelPackageArn"]
        for p in target.sagemaker.list_model_packages(
            ModelPackageGroupName=current.split("/")[-2], ModelApprovalStatus="Approved"
        )["ModelPackageSummaryList"]
        if p["ModelPackageArn"] != current
    )
    publish_with(target, traffic={**FAST_TRAFFIC, "wait_s": 8})
    name = endpoint()["name"]
    alarm = f"{name}-invocation-5xx"
    cloudwatch = target.client("cloudwatch")
    try:

        def fire_when_canary_bakes() -> None:
            # While the canary bakes, an invocation error alarm fires (set by hand: see decision 0012)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                described = target.sagemaker.describe_endpoint(EndpointName=name)
                if described.get("PendingDeploymentSummary"):
                    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test: 5XX errors")
                    return
                time.sleep(0.2)

        import threading

        firing = threading.Thread(target=fire_when_canary_bakes)
        firing.start()
        code, rolled = mlops("deploy", "abalone", "--package", other)
        firing.join()
        # Then SageMaker's guardrails roll back: ROLLED_BACK with the reason, the endpoint on the old package
        assert code == 1 and rolled["status"] == "ROLLED_BACK", rolled
        assert rolled["error"]["error"] == "DeploymentRolledBack" and rolled["error"]["cause"]
        assert endpoint()["model_package_arn"] == current
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test over")
        publish_with(target, traffic=FAST_TRAFFIC)


def test_promote_then_rollback(service: dict[str, Any]) -> None:
    staging = endpoint()
    # When staging's package is promoted to prod
    code, promoted = mlops("promote", "abalone", "--to", "prod")
    assert code == 0 and promoted["status"] == "SUCCEEDED", promoted["error"]
    assert endpoint("prod")["model_package_arn"] == staging["model_package_arn"]
    # And staging is rolled back
    code, back = mlops("rollback", "abalone")
    assert code == 0 and back["status"] == "SUCCEEDED", back
    assert endpoint()["model_package_arn"] == staging["previous_model_package_arn"]


def test_runs_cannot_approve_and_unapproved_packages_cannot_deploy(service: dict[str, Any]) -> None:
    run_id = service["first"]["run_id"]
    # --set cannot approve what a run registers
    code, refused = mlops("rerun", run_id, "--only", "register", "--set", "register.approval_status=Approved")
    assert code != 0 and "approval" in refused["message"]
    # and a package nobody approved does not deploy
    group = service["first"]["model_package_arn"].split("/")[-2]
    target = service["target"]
    arn = target.sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=target.sagemaker.describe_model_package(
            ModelPackageName=service["first"]["model_package_arn"]
        )["InferenceSpecification"],
    )["ModelPackageArn"]
    code, failed = mlops("deploy", "abalone", "--package", arn)
    assert code == 1 and "not Approved" in json.dumps(failed)


def test_lineage_names_the_endpoints_that_served_a_package_and_impact_those_serving_a_dataset(
    service: dict[str, Any],
) -> None:
    first = service["first"]
    # When the lineage of the first package is asked for
    code, lineage = mlops("lineage", "model", first["model_package_arn"])
    assert code == 0, lineage
    # Then it names its approval and every endpoint that served it, with stage and time range
    assert [a["status"] for a in lineage["approvals"]][:1] == ["Approved"]
    spans = lineage["served_by"]
    assert {s["stage"] for s in spans} >= {"staging"}
    assert all(s["from"] and (s["to"] is None or s["to"] >= s["from"]) for s in spans)
    assert any(s["to"] is not None for s in spans), "staging moved to the second package and back: a closed span"
    # And the dataset's impact lists the endpoints that served a model trained on it
    code, impact = mlops("impact", first["dataset"]["uri"])
    assert code == 0, impact
    assert {e["endpoint_name"] for e in impact["endpoints"]} >= {s["endpoint_name"] for s in spans}


def test_a_rejected_package_cannot_be_approved_and_the_refusal_is_one_line(service: dict[str, Any]) -> None:
    target = service["target"]
    group = service["first"]["model_package_arn"].split("/")[-2]
    arn = target.sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=target.sagemaker.describe_model_package(
            ModelPackageName=service["first"]["model_package_arn"]
        )["InferenceSpecification"],
    )["ModelPackageArn"]
    code, rejected = mlops("reject", arn, "--reason", "worse than the champion on recent data")
    assert code == 0 and rejected["approval_status"] == "Rejected", rejected
    code, refused = mlops("approve", arn, "--reason", "changed my mind")
    assert code != 0 and refused["message"].startswith("mlops approve: ") and "\n" not in refused["message"]


def test_a_challenger_that_does_not_beat_the_champion_by_the_margin_is_rejected_with_the_gates_reasons(
    service: dict[str, Any],
) -> None:
    assert endpoint().get("model_package_arn"), "a champion serves staging"
    # When the first run is evaluated again, asked to beat the serving model by 5 rmse (no model can)
    code, rerun = mlops("rerun", service["first"]["run_id"], "--from", "evaluate", "--set", "gate.champion_margin=5")
    # Then the gate rejects it, and says why: the threshold and baseline passed, the champion did not
    assert code == 0 and rerun["status"] == "REJECTED", rerun.get("error")
    verdict = rerun["gate_verdict"]
    assert verdict["passed"] is False
    assert any("does not beat the champion" in reason for reason in verdict["reasons"]), verdict
    assert any("beats the naive baseline" in reason for reason in verdict["reasons"]), verdict
