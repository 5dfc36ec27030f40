"""`mlops report` on a local service with real runs, opened from its file in headless Chromium: the page loads
nothing, logs no error, and the numbers a person reads there are the CLI's own."""

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

from tests.conftest import ROOT, service_target, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
# The network is closed: Chromium must not try to reach anything of its own either.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set to a path (e.g. docs/report.png) to keep a screenshot of the page the test opened: `make report-screenshot`.
SCREENSHOT_ENV = "MLOPS_REPORT_SCREENSHOT"


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
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local service with a run whose package is approved and serving, two batches it scored (abalone's rows,
    then the same rows with every length x1.5), and a second run scored against it (the champion), rerun with a
    changed hyperparameter (its preprocess skipped)."""
    folder = tmp_path_factory.mktemp("report")
    state = folder / "state"
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    try:
        code, first = mlops("run", "abalone")
        assert code == 0, first
        target, _ = service_target(state)
        code, decided = mlops("approve", first["model_package_arn"], "--reason", "the report's champion")
        assert code == 0, decided

        def serving() -> bool:
            _code, listed = mlops("endpoints")
            return any(e["status"] == "InService" for e in listed.get("endpoints", []))

        wait_until(serving, timeout=120, interval=0.5)
        clean, shifted = batch_inputs(folder)
        code, batch_ok = mlops("batch", "abalone", "--data", str(clean))
        assert code == 0 and batch_ok["drift"]["status"] == "OK", batch_ok
        code, batch_drift = mlops("batch", "abalone", "--data", str(shifted))  # drift.action warn: scored
        assert code == 0 and batch_drift["drift"]["status"] == "DRIFT", batch_drift
        code, second = mlops("run", "abalone")
        assert code == 0, second
        code, rerun = mlops("rerun", second["run_id"], "--set", "train.hyperparameters.max_depth=2")
        assert code == 0, rerun
        batches = [batch_drift, batch_ok]  # newest first
        yield {"state": state, "target": target, "first": first, "second": rerun, "batches": batches}
    finally:
        del os.environ["MLOPS_LOCAL_STATE"]
        from sfn_mlops_local.local import client

        client.stop(state)


def batch_inputs(folder: Path) -> tuple[Path, Path]:
    """abalone's rows without the label, and the same rows with every length x1.5."""
    rows = list(csv.reader((ROOT / "models/abalone/data/abalone.csv").open()))
    label = rows[0].index("rings")
    rows = [[c for i, c in enumerate(row) if i != label] for row in rows]
    length = rows[0].index("length")
    shifted = [rows[0], *([*r[:length], repr(float(r[length]) * 1.5), *r[length + 1 :]] for r in rows[1:])]
    paths = folder / "clean.csv", folder / "shifted.csv"
    for path, content in zip(paths, (rows, shifted), strict=True):
        path.write_text("\n".join(",".join(r) for r in content) + "\n")
    return paths


class Browser:
    """Headless Chromium (Debian's) driven by Playwright: a page opened from a file, its console and requests."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package (as root)")
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def open(self, path: Path) -> tuple[Any, list[str], list[str]]:
        """The page, what it logged as errors, and every URL it requested."""
        page = self._browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
        return page, errors, requests

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    opened = Browser()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def report(history: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("page") / "abalone.html"
    code, answer = mlops("report", "abalone", "--out", str(out))
    assert code == 0, answer
    return {**answer, "path": out}


@pytest.fixture(scope="module")
def opened(report: dict[str, Any], browser: Browser) -> dict[str, Any]:
    page, errors, requests = browser.open(report["path"])
    wanted = os.environ.get(SCREENSHOT_ENV)
    if wanted:
        page.screenshot(path=str(ROOT / wanted), full_page=True)
    return {"page": page, "errors": errors, "requests": requests}


def cells(page: Any, selector: str, *attributes: str) -> list[dict[str, str]]:
    """The data-* attributes of each element the selector finds, as the browser's DOM has them."""
    return list(
        page.eval_on_selector_all(
            selector,
            "(els, names) => els.map(e => Object.fromEntries(names.map(n => [n, e.getAttribute(n)])))",
            list(attributes),
        )
    )


def test_the_page_opens_offline_with_no_errors_and_no_requests(report: dict[str, Any], opened: dict[str, Any]) -> None:
    # Given the report written to a file, When Chromium opens it from the file
    # Then nothing but the file itself is requested, and the console has no error or warning
    assert opened["requests"] == [report["path"].resolve().as_uri()]
    assert opened["errors"] == []
    # And it is one self-contained file: plotly.js is inside it
    assert report["bytes"] == report["path"].stat().st_size and report["bytes"] > 3_000_000
    assert opened["page"].evaluate("() => typeof Plotly === 'object' && Plotly.version.length > 0")


def test_the_runs_table_shows_what_mlops_runs_and_status_say(history: dict[str, Any], opened: dict[str, Any]) -> None:
    page = opened["page"]
    code, listed = mlops("runs", "abalone")
    assert code == 0
    # Given the CLI's runs, When the page's runs table is read back
    rows = {r["data-run-id"]: r for r in cells(page, "#runs tr.run", "data-run-id", "data-status", "data-kind")}
    # Then it has the same runs, newest first, with the same statuses
    assert list(rows) == [run["run_id"] for run in listed["runs"]]
    for run in listed["runs"]:
        assert rows[run["run_id"]]["data-status"] == run["status"]
        assert rows[run["run_id"]]["data-kind"] == run["kind"]
        shown = cells(page, f'#runs tr.run[data-run-id="{run["run_id"]}"] .metric', "data-metric", "data-value")
        # each metric exactly as recorded (the attribute is the float's shortest round-trip form)
        assert {m["data-metric"]: float(m["data-value"]) for m in shown} == run["metrics"]
        code, status = mlops("status", run["run_id"])
        (gate,) = cells(page, f'#runs tr.run[data-run-id="{run["run_id"]}"] td.gate', "data-decision", "data-value")
        verdict = status["gate_verdict"]  # none for a batch run: it has no gate
        assert gate["data-decision"] == ("" if not verdict else "passed" if verdict["passed"] else "rejected")
        assert gate["data-value"] == ("" if not verdict else repr(verdict["value"]))
        (package,) = cells(page, f'#runs tr.run[data-run-id="{run["run_id"]}"] td[data-package]', "data-package")
        assert (package["data-package"] or None) == status["model_package_arn"]
    # the first run's package is approved and serving staging; the rerun changed the second run's metric
    first, second = history["first"], history["second"]
    approval = cells(page, f'#runs tr.run[data-run-id="{first["run_id"]}"] td[data-approval]', "data-approval")
    assert approval == [{"data-approval": "Approved"}]
    endpoints = page.inner_text(f'#runs tr.run[data-run-id="{first["run_id"]}"]')
    assert "staging (serving)" in endpoints
    assert rows[second["run_id"]] and second["metrics"]["rmse"] != first["metrics"]["rmse"]
    assert sorted(r for r, row in rows.items() if row["data-kind"] == "batch") == sorted(
        b["run_id"] for b in history["batches"]
    )


def test_the_trend_plots_each_runs_gate_metric_against_the_threshold_and_the_champion(
    history: dict[str, Any], report: dict[str, Any], opened: dict[str, Any]
) -> None:
    traces = opened["page"].evaluate(
        "() => document.getElementById('trend').data.map(t => ({name: t.name, y: Array.from(t.y)}))"
    )
    by_name = {t["name"]: t["y"] for t in traces}
    first, second = history["first"], history["second"]
    # oldest first: the first run's rmse, then the rerun second run's
    assert by_name["rmse of the run"] == [first["metrics"]["rmse"], second["metrics"]["rmse"]]
    assert by_name["threshold"] == [3.1, 3.1]
    # the champion (the first run's package, serving staging) scored on the second run's test rows
    code, status = mlops("status", second["run_id"], "--full")
    assert code == 0, status
    evaluate = next(u for u in status["units"] if u["name"] == "evaluate")
    assert by_name["champion on the same test rows"] == [None, evaluate["outputs"]["gate"]["champion_value"]]


def test_the_timeline_shows_the_latest_runs_units_with_the_skipped_one_labelled(
    history: dict[str, Any], opened: dict[str, Any]
) -> None:
    page = opened["page"]
    code, status = mlops("status", history["second"]["run_id"])
    assert code == 0, status
    units = cells(page, "#timeline-units tr[data-unit]", "data-unit", "data-status", "data-start-s", "data-end-s")
    assert [(u["data-unit"], u["data-status"]) for u in units] == [(u["name"], u["status"]) for u in status["units"]]
    # the rerun with a new train.hyperparameter reused preprocess: it is there, short, and says so
    preprocess = next(u for u in units if u["data-unit"] == "preprocess")
    assert preprocess["data-status"] in ("SKIPPED", "CACHED")
    assert float(preprocess["data-end-s"]) - float(preprocess["data-start-s"]) < 2.0
    assert "outputs reused" in page.inner_text('#timeline-units tr[data-unit="preprocess"]')
    # the gate rejected the rerun (it does not beat the champion): register did not run in it, and says so
    assert status["status"] == "REJECTED"
    assert "not run by this execution" in page.inner_text('#timeline-units tr[data-unit="register"]')
    # and each unit the rerun ran is a bar of the Gantt chart
    bars = page.evaluate("() => document.getElementById('timeline').data.flatMap(t => Array.from(t.y))")
    assert sorted(bars) == ["evaluate", "preprocess", "train"]


def test_lineage_links_the_dataset_versions_runs_packages_and_the_endpoint(
    history: dict[str, Any], opened: dict[str, Any]
) -> None:
    edges = {
        (e["data-from"], e["data-to"])
        for e in cells(opened["page"], "#lineage-edges tr[data-from]", "data-from", "data-to")
    }
    first = history["first"]
    code, lineage = mlops("lineage", "model", first["model_package_arn"])
    assert code == 0, lineage
    dataset = lineage["datasets"][0]
    run, package = f"run:{first['run_id']}", f"package:{first['model_package_arn']}"
    assert (f"dataset:{dataset['uri']}#{dataset['version']}", run) in edges
    assert (run, package) in edges
    endpoint = next(s["endpoint_name"] for s in lineage["served_by"])
    assert (package, f"endpoint:{endpoint}") in edges
    # each batch run scored with the first package, and wrote the output lineage names for it
    assert sorted(o["output_uri"] for o in lineage["batch_outputs"]) == sorted(
        b["output_uri"] for b in history["batches"]
    )
    for batch in history["batches"]:
        assert (package, f"run:{batch['run_id']}") in edges
        assert (f"run:{batch['run_id']}", f"output:{batch['output_uri']}") in edges


def test_drift_shows_each_batch_runs_features_as_mlops_status_has_them(
    history: dict[str, Any], opened: dict[str, Any]
) -> None:
    page = opened["page"]
    # Given a clean batch and one with every length x1.5, When the drift section is read back
    shown = {
        b["data-run-id"]: b["data-drift-status"]
        for b in cells(page, "#drift-status li", "data-run-id", "data-drift-status")
    }
    assert shown == {b["run_id"]: b["drift"]["status"] for b in history["batches"]}
    assert set(shown.values()) == {"OK", "DRIFT"}
    for batch in history["batches"]:
        code, status = mlops("status", batch["run_id"])
        assert code == 0, status
        rows = cells(
            page, f'#drift-features tr[data-run-id="{batch["run_id"]}"]', "data-feature", "data-drifted", "data-score"
        )
        # Then every feature is there with the distance the batch recorded (PSI for numbers, L-infinity for sex)
        features = status["drift"]["features"]
        assert {r["data-feature"] for r in rows} == set(features)
        for row in rows:
            recorded = features[row["data-feature"]]
            expected = recorded["psi"] if recorded.get("psi") is not None else recorded["linf"]
            assert float(row["data-score"]) == expected
            assert row["data-drifted"] == str(recorded["drifted"])
    # And the shifted batch's violation names length, as its summary does
    violations = cells(page, "#drift-violations tr[data-feature]", "data-run-id", "data-feature", "data-check")
    assert [(v["data-run-id"], v["data-feature"], v["data-check"]) for v in violations] == [
        (history["batches"][0]["run_id"], v["feature_name"], v["constraint_check_type"])
        for v in history["batches"][0]["drift"]["violations"]
    ]
    assert {v["data-feature"] for v in violations} == {"length"}
    # and the heat map has a column per batch, oldest first
    columns = page.evaluate("() => Array.from(document.getElementById('drift').data[0].x)")
    assert columns == [b["run_id"] for b in reversed(history["batches"])]


def test_each_runs_cost_in_the_page_is_the_reports_own_estimate(
    history: dict[str, Any], report: dict[str, Any], opened: dict[str, Any]
) -> None:
    page = opened["page"]
    estimates = {run["run_id"]: run["cost"] for run in report["runs"]}
    for run_id, estimate in estimates.items():
        shown = {
            c["data-field"]: float(c["data-value"])
            for c in cells(page, f'#costs tr.cost[data-run-id="{run_id}"] td[data-field]', "data-field", "data-value")
        }
        assert shown["total_usd"] == estimate["total_usd"]
        assert shown["transitions"] == estimate["step_functions"]["transitions"]
        assert shown["lambda_invocations"] == estimate["lambda"]["invocations"]
        assert shown["lambda_gb_seconds"] == estimate["lambda"]["gb_seconds"]
        assert shown["instance_seconds"] == estimate["sagemaker"]["instance_seconds"]
        assert estimate["total_usd"] == pytest.approx(
            estimate["step_functions"]["usd"] + estimate["lambda"]["usd"] + estimate["sagemaker"]["usd"]
        )
    # The first run ran each of its three SageMaker jobs once: the estimate prices exactly those
    code, status = mlops("status", history["first"]["run_id"])
    assert code == 0, status
    first = estimates[history["first"]["run_id"]]
    assert sorted(j["name"] for j in first["sagemaker"]["jobs"]) == sorted(
        u["job_name"] for u in status["units"] if u["job_name"]
    )
    assert all(j["instance_type"] == "ml.m5.xlarge" and j["usd"] > 0 for j in first["sagemaker"]["jobs"])
    # its flow, four executors and four workers
    assert first["executions"] == 9 and first["step_functions"]["transitions"] > 9 and first["partial"] is False
    # A batch run's transform job is priced as the batch config's ml.m5.large
    for batch in history["batches"]:
        code, status = mlops("status", batch["run_id"])
        assert code == 0, status
        jobs = estimates[batch["run_id"]]["sagemaker"]["jobs"]
        transform = next(u["job_name"] for u in status["units"] if u["name"] == "transform")
        assert [(j["kind"], j["name"], j["instance_type"]) for j in jobs] == [("transform", transform, "ml.m5.large")]
    # and the prices with the date they were taken are on the page
    assert page.inner_text("#prices-date") == report["prices"]["recorded_on"]


def test_run_chooses_the_timelines_run(history: dict[str, Any], browser: Browser, tmp_path: Path) -> None:
    out = tmp_path / "first.html"
    first = history["first"]["run_id"]
    code, answer = mlops("report", "abalone", "--out", str(out), "--run", first)
    assert code == 0, answer
    assert answer["timeline"]["run_id"] == first
    page, errors, _ = browser.open(out)
    assert errors == []
    statuses = cells(page, "#timeline-units tr[data-unit]", "data-unit", "data-status")
    assert [s["data-status"] for s in statuses] == ["SUCCEEDED"] * 4


def test_an_unknown_pipeline_is_one_line_and_a_failure(history: dict[str, Any], tmp_path: Path) -> None:
    code, answer = mlops("report", "no-such-pipeline", "--out", str(tmp_path / "x.html"))
    assert code != 0
    assert "unknown pipeline 'no-such-pipeline'" in answer["message"] and "\n" not in answer["message"]
    assert not (tmp_path / "x.html").exists()


def test_an_unwritable_out_is_one_line_and_a_failure(history: dict[str, Any], tmp_path: Path) -> None:
    for out in (tmp_path / "missing" / "x.html", tmp_path):
        code, answer = mlops("report", "abalone", "--out", str(out))
        assert code != 0
        assert answer["message"].startswith(f"mlops report: cannot write {out}") and "\n" not in answer["message"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, answer = mlops("report", "abalone", "--out", str(blocker / "x.html"))
    assert code != 0 and "cannot write" in answer["message"]
    shutil.rmtree(tmp_path / "missing", ignore_errors=True)


def test_an_unknown_run_or_a_limit_below_one_is_one_line(history: dict[str, Any], tmp_path: Path) -> None:
    out = str(tmp_path / "x.html")
    code, answer = mlops("report", "abalone", "--out", out, "--run", "abalone-20000101t000000-00000000")
    assert code != 0 and "no run 'abalone-20000101t000000-00000000'" in answer["message"]
    code, answer = mlops("report", "abalone", "--out", out, "--limit", "0")
    assert code == 2 and answer["message"].startswith("mlops report: argument --limit: must be at least 1")
    assert not (tmp_path / "x.html").exists()
