"""The page: one self-contained HTML file whose tables carry the report's numbers at full precision."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from sfn_mlops_local.report import cost, data, render
from tests.unit.report.test_data import BATCH, PACKAGE, RUN


class Page(HTMLParser):
    """Every element's tag and attributes, the scripts' sources, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, text: str) -> None:
        self.text.append(text)

    def find(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in wanted.items())]


def usage(transitions: int) -> dict[str, Any]:
    return {
        "executions": 9,
        "transitions": transitions,
        "lambda_invocations": [{"function": "f", "duration_ms": 120.5, "memory_mb": 512}],
        "jobs": [
            {"kind": "training", "name": "j", "instance_type": "ml.m5.xlarge", "instance_count": 1, "seconds": 61}
        ],
    }


def report(runs: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pipeline": "abalone",
        "source": "local service",
        "generated_at": "2026-11-30T14:00:00Z",
        "gate": {"metric": "rmse", "threshold": 3.1, "direction": "minimize"},
        "runs": runs,
        "timeline": {
            "run_id": RUN,
            "units": [
                {
                    "name": "preprocess",
                    "status": "CACHED",
                    "attempt": 0,
                    "start_s": 0.2,
                    "end_s": 0.3,
                    "label": "cached",
                },
                {"name": "train", "status": "SUCCEEDED", "attempt": 1, "start_s": 0.3, "end_s": 4.0, "label": "ok"},
            ],
        },
        "lineage": data.lineage_graph(runs, {}),
        "drift": data.drift_section(summaries),
        "prices": cost.PRICES,
        "totals": {"runs": len(runs), "usd": sum(r["cost"]["total_usd"] for r in runs)},
    }


def training_row(run_id: str = RUN, rmse: float = 2.0426904192818163) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "kind": "training",
        "status": "SUCCEEDED",
        "started_at": "2026-11-30T12:00:00Z",
        "dataset": {"uri": "s3://b/data/abalone/abalone.csv", "version": "v1"},
        "metrics": {"rmse": rmse, "r2": 0.5113734431923196},
        "gate": {"metric": "rmse", "threshold": 3.1, "value": rmse, "decision": "passed", "champion_value": 2.2},
        "model_package_arn": PACKAGE,
        "approval": "Approved",
        "endpoints": [{"endpoint_name": "stack-abalone-staging", "stage": "staging", "serving": True}],
        "cost": cost.run_cost(usage(37)),
    }


def test_the_runs_table_carries_each_runs_numbers_at_full_precision() -> None:
    # Given a report with one training run
    row = training_row()
    # When it is rendered
    page = Page(render.render(report([row], [])))
    # Then its row, metrics, gate, package, approval and cost are in the DOM, each number exactly as recorded
    (tr,) = page.find("tr", **{"class": "run", "data-run-id": RUN})
    assert tr["data-status"] == "SUCCEEDED" and tr["data-kind"] == "training"
    metrics = {a["data-metric"]: float(a["data-value"]) for a in page.find("div", **{"class": "metric"})}
    assert metrics == row["metrics"]
    (gate,) = page.find("td", **{"class": "gate"})
    assert gate["data-decision"] == "passed" and float(gate["data-value"]) == row["metrics"]["rmse"]
    assert page.find("td", **{"data-package": PACKAGE}) and page.find("td", **{"data-approval": "Approved"})
    totals = [float(a["data-value"]) for a in page.find("td", **{"data-field": "total_usd"})]
    assert totals == [row["cost"]["total_usd"]]
    transitions = [int(a["data-value"]) for a in page.find("td", **{"data-field": "transitions"})]
    assert transitions == [37]


def test_the_page_loads_nothing_from_outside_the_file() -> None:
    html = render.render(report([training_row()], []))
    page = Page(html)
    # every script is inline, there is no stylesheet link, image or frame to fetch
    assert all("src" not in attrs for tag, attrs in page.elements if tag in ("script", "img", "iframe"))
    assert not page.find("link")
    (policy,) = page.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert "default-src 'none'" in policy["content"]
    # plotly.js is inlined once, not one copy per figure
    assert html.count("Plotly v") <= 2 and len(html) > 3_000_000


def test_prices_and_the_date_they_were_taken_are_in_the_page() -> None:
    page = Page(render.render(report([training_row()], [])))
    text = "".join(page.text)
    assert cost.PRICES["recorded_on"] in text and "aws.amazon.com/sagemaker/pricing" in text
    (m5,) = page.find("td", **{"data-kind": "training", "data-instance": "ml.m5.xlarge"})
    assert float(m5["data-price"]) == 0.23


def test_no_batch_runs_yet_is_said_plainly() -> None:
    page = Page(render.render(report([training_row()], [])))
    assert page.find("p", id="drift-empty")
    assert "no batch runs yet" in "".join(page.text)


def test_a_batch_runs_drift_is_shown_per_feature_with_its_violations() -> None:
    batch_row = {
        "run_id": BATCH["run_id"],
        "kind": "batch",
        "status": "SUCCEEDED",
        "started_at": BATCH["started_at"],
        "dataset": {"uri": None, "version": None},
        "metrics": {},
        "gate": None,
        "model_package_arn": PACKAGE,
        "approval": "Approved",
        "endpoints": [],
        "batch": {"output_uri": BATCH["output_uri"], "rows_scored": 4177, "drift_status": "DRIFT"},
        "cost": cost.run_cost(usage(20)),
    }
    page = Page(render.render(report([batch_row, training_row()], [BATCH])))
    assert not page.find("p", id="drift-empty")
    assert page.find("li", **{"data-run-id": BATCH["run_id"], "data-drift-status": "DRIFT"})
    drifted = {
        a["data-feature"]: (a["data-drifted"], float(a["data-score"]))
        for a in page.find("tr")
        if "data-feature" in a and "data-score" in a
    }
    assert drifted == {"length": ("True", 0.8), "sex": ("True", 0.05), "height": ("False", 0.01)}
    checks = {(a["data-feature"], a["data-check"]) for a in page.find("tr") if "data-check" in a}
    assert checks == {("length", "distribution_distance_check"), ("sex", "categorical_values_check")}


def test_text_from_records_is_escaped_not_executed() -> None:
    hostile = training_row(run_id='abalone-<script>alert("x")</script>')
    html = render.render(report([hostile], []))
    assert '<script>alert("x")</script>' not in html
    assert Page(html).find("tr", **{"class": "run", "data-run-id": hostile["run_id"]})
