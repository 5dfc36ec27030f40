"""The report as one self-contained HTML page: tables in the DOM (numbers in data attributes, full precision), plots
drawn by Plotly with plotly.js inlined once, no request leaves the file (decision record 0015)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

STATUS_COLOURS = {
    "SUCCEEDED": "#2e7d32",
    "FAILED": "#c62828",
    "REJECTED": "#ef6c00",
    "PARTIAL": "#f9a825",
    "RUNNING": "#0277bd",
    "SKIPPED": "#9e9e9e",
    "CACHED": "#1565c0",
    "NOT_STARTED": "#e0e0e0",
}
KIND_COLUMNS = {"dataset": 0, "run": 1, "package": 2, "endpoint": 3, "batch_run": 3, "batch_output": 4}
KIND_COLOURS = {
    "dataset": "#6a1b9a",
    "run": "#0277bd",
    "batch_run": "#00838f",
    "package": "#2e7d32",
    "endpoint": "#ef6c00",
    "batch_output": "#5d4037",
}
# Nothing may be fetched and no string is evaluated as code: the page is a file, opened offline (a plot type that
# needed more would show as a console error in the browser test).
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #212121; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.meta { color: #616161; font-size: 13px; } .note { color: #616161; font-size: 12px; max-width: 1100px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #fafafa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 600; } .mono { font-family: ui-monospace, Menlo, monospace; font-size: 11px; }
.empty { color: #757575; font-style: italic; } .metric, td.mono, td.jobs { white-space: nowrap; }
"""


def _attr(value: Any) -> str:
    """A value as a data attribute: floats at full precision (repr), so a reader gets back the same number."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def _usd(value: float | None) -> str:
    return "" if value is None else f"${value:.6f}"


def _status(status: str | None) -> str:
    colour = STATUS_COLOURS.get(status or "", "#424242")
    return f'<span class="status" style="color:{colour}">{escape(status or "?")}</span>'


def el(
    tag: str, content: str = "", cls: str | None = None, title: str | None = None, ident: str | None = None, **data: Any
) -> str:
    """One element; ``content`` is HTML already escaped, ``data`` become data-* attributes (``run_id``: data-run-id)."""
    attrs = f' id="{ident}"' if ident else ""
    attrs += f' class="{cls}"' if cls else ""
    attrs += f' title="{_attr(title)}"' if title else ""
    attrs += "".join(f' data-{key.replace("_", "-")}="{_attr(value)}"' for key, value in data.items())
    return f"<{tag}{attrs}>{content}</{tag}>"


def _figure(fig: Any, div_id: str) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG))


# ------------------------------------------------------------------------------------------------ sections
def runs_table(report: dict[str, Any]) -> str:
    rows = []
    for run in report["runs"]:
        metrics = "".join(
            f'<div class="metric" data-metric="{_attr(k)}" data-value="{_attr(v)}">{escape(k)} {_fmt(v)}</div>'
            for k, v in run["metrics"].items()
        )
        gate = run.get("gate") or {}
        decision = gate.get("decision")
        gate_cell = (
            f'<td class="gate" data-decision="{_attr(decision)}" data-value="{_attr(gate.get("value"))}" '
            f'data-threshold="{_attr(gate.get("threshold"))}" title="{_attr("; ".join(gate.get("reasons") or []))}">'
            f"{escape(decision or '')}"
            + (
                f" ({escape(str(gate['metric']))} {_fmt(gate.get('value'))} vs {_fmt(gate.get('threshold'))})"
                if decision
                else ""
            )
            + "</td>"
        )
        dataset = run["dataset"]
        batch = run.get("batch") or {}
        version = el("span", escape(str(dataset.get("version") or "")[:8]), "mono")
        dataset_cell = (
            f"{escape(str(dataset['uri']).rsplit('/', 1)[-1])} {version}"
            if dataset.get("uri")
            else escape(f"batch output {batch.get('output_uri') or ''}")
            if batch
            else ""
        )
        package = run.get("model_package_arn")
        endpoints = ", ".join(
            f"{escape(str(e['endpoint_name']))}{' (serving)' if e.get('serving') else ''}"
            for e in run.get("endpoints", [])
        )
        cells = [
            el("td", escape(run["run_id"]), "mono"),
            el("td", escape(run["kind"])),
            el("td", _status(run["status"])),
            el("td", escape((run.get("started_at") or "")[:19].replace("T", " "))),
            el("td", dataset_cell, uri=dataset.get("uri"), version=dataset.get("version")),
            el("td", metrics),
            gate_cell,
            el("td", "v" + escape(package.rsplit("/", 1)[-1]) if package else "", title=package, package=package),
            el("td", escape(run.get("approval") or ""), approval=run.get("approval")),
            el("td", endpoints),
            el("td", _usd(run["cost"]["total_usd"]), "num", usd=float(run["cost"]["total_usd"])),
        ]
        rows.append(el("tr", "".join(cells), "run", run_id=run["run_id"], status=run["status"], kind=run["kind"]))
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "run id",
            "kind",
            "status",
            "started (UTC)",
            "dataset",
            "metrics",
            "gate decision",
            "package",
            "approval",
            "endpoint",
            "est. cost",
        )
    )
    if not rows:
        return '<p class="empty" id="runs-empty">no runs yet</p>'
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def trend_figure(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    points = [r for r in reversed(report["runs"]) if r.get("gate") and r["gate"].get("value") is not None]
    if not points:
        return '<p class="empty" id="trend-empty">no run has reached the quality gate yet</p>'
    metric = points[-1]["gate"]["metric"]
    x = [r["started_at"] for r in points]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[r["gate"]["value"] for r in points],
            mode="lines+markers",
            name=f"{metric} of the run",
            text=[f"{r['run_id']}: {r['gate']['decision']}" for r in points],
            marker={"size": 10, "color": [STATUS_COLOURS.get(r["status"], "#424242") for r in points]},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[r["gate"].get("threshold") for r in points],
            mode="lines",
            line={"dash": "dash", "color": "#c62828", "shape": "hv"},
            name="threshold",
        )
    )
    champion = [r["gate"].get("champion_value") for r in points]
    if any(v is not None for v in champion):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=champion,
                mode="markers",
                marker={"symbol": "star", "size": 13, "color": "#ef6c00"},
                name="champion on the same test rows",
            )
        )
    baseline = [r["gate"].get("baseline_value") for r in points]
    if any(v is not None for v in baseline):
        fig.add_trace(
            go.Scatter(
                x=x, y=baseline, mode="markers", marker={"symbol": "x", "color": "#757575"}, name="naive baseline"
            )
        )
    direction = points[-1]["gate"].get("direction") or ""
    fig.update_layout(
        template="plotly_white",
        height=340,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        yaxis_title=f"{metric} ({'lower' if direction == 'minimize' else 'higher'} is better)",
        title={"text": f"{metric} across runs", "font": {"size": 14}},
    )
    return _figure(fig, "trend")


def timeline_section(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    timeline = report.get("timeline")
    if not timeline:
        return '<p class="empty" id="timeline-empty">no runs yet</p>'
    units = timeline["units"]
    rows = "".join(
        f'<tr data-unit="{_attr(u["name"])}" data-status="{_attr(u["status"])}" data-start-s="{_attr(u["start_s"])}" '
        f'data-end-s="{_attr(u["end_s"])}"><td>{escape(u["name"])}</td><td>{_status(u["status"])}</td>'
        f"<td>{escape(u['label'])}</td><td class='num'>{_fmt(u['start_s'])}</td><td class='num'>{_fmt(u['end_s'])}</td>"
        f"<td class='mono'>{escape(u.get('job_name') or '')}</td></tr>"
        for u in units
    )
    table = (
        '<table id="timeline-units"><thead><tr><th>unit</th><th>status</th><th>what happened</th><th>start s</th>'
        f"<th>end s</th><th>SageMaker job</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    shown = [u for u in units if u["start_s"] is not None]
    fig = go.Figure()
    for status in dict.fromkeys(u["status"] for u in shown):
        group = [u for u in shown if u["status"] == status]
        fig.add_trace(
            go.Bar(
                orientation="h",
                y=[u["name"] for u in group],
                base=[u["start_s"] for u in group],
                # a skipped or cached unit is a look-up of a few milliseconds: keep it visible
                x=[max(u["end_s"] - u["start_s"], 0.05) for u in group],
                name=status,
                marker={"color": STATUS_COLOURS.get(status, "#424242")},
                text=[u["label"] for u in group],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{y}: %{text}<br>%{base:.2f}s to %{customdata:.2f}s<extra></extra>",
                customdata=[u["end_s"] for u in group],
            )
        )
    fig.update_layout(
        template="plotly_white",
        barmode="overlay",
        height=110 + 45 * max(len(units), 1),
        margin={"l": 90, "r": 260, "t": 30, "b": 40},
        xaxis_title="seconds from the start of the run's latest execution",
        yaxis={"categoryorder": "array", "categoryarray": [u["name"] for u in reversed(units)]},
        title={"text": f"units of run {timeline['run_id']}", "font": {"size": 14}},
    )
    return _figure(fig, "timeline") + table


def lineage_section(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    graph = report["lineage"]
    if not graph["nodes"]:
        return '<p class="empty" id="lineage-empty">no lineage recorded yet</p>'
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    columns: dict[int, list[dict[str, Any]]] = {}
    for n in graph["nodes"]:
        columns.setdefault(KIND_COLUMNS.get(kinds[n["id"]], 4), []).append(n)
    position: dict[str, tuple[float, float]] = {}
    for column, members in columns.items():
        for i, n in enumerate(members):
            position[n["id"]] = (float(column), -(i - (len(members) - 1) / 2))
    xs: list[float | None] = []
    ys: list[float | None] = []
    for e in graph["edges"]:
        (x0, y0), (x1, y1) = position[e["from"]], position[e["to"]]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    fig = go.Figure(
        go.Scatter(
            x=xs, y=ys, mode="lines", line={"color": "#bdbdbd", "width": 1.5}, hoverinfo="skip", showlegend=False
        )
    )
    for kind in dict.fromkeys(kinds.values()):
        members = [n for n in graph["nodes"] if kinds[n["id"]] == kind]
        fig.add_trace(
            go.Scatter(
                x=[position[n["id"]][0] for n in members],
                y=[position[n["id"]][1] for n in members],
                mode="markers+text",
                marker={"size": 16, "color": KIND_COLOURS.get(kind, "#424242")},
                text=[n["label"] for n in members],
                textposition="bottom center",
                hovertext=[n["detail"] for n in members],
                hoverinfo="text",
                name=kind.replace("_", " "),
            )
        )
    depth = max(len(m) for m in columns.values())
    fig.update_layout(
        template="plotly_white",
        height=160 + 70 * depth,
        margin={"l": 20, "r": 20, "t": 30, "b": 20},
        xaxis={
            "tickvals": [0, 1, 2, 3, 4],
            "ticktext": ["dataset", "runs", "model packages", "endpoints, batch runs", "batch outputs"],
            "range": [-0.6, max(columns) + 0.6],
            "showgrid": False,
        },
        yaxis={"visible": False},
        title={"text": "lineage", "font": {"size": 14}},
    )
    rows = "".join(
        f'<tr data-from="{_attr(e["from"])}" data-to="{_attr(e["to"])}"><td class="mono">{escape(e["from"])}</td>'
        f'<td>{escape(e["label"])}</td><td class="mono">{escape(e["to"])}</td></tr>'
        for e in graph["edges"]
    )
    table = (
        f'<details><summary>{len(graph["edges"])} links</summary><table id="lineage-edges"><thead><tr><th>from</th>'
        f"<th></th><th>to</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )
    return _figure(fig, "lineage") + table


def _drift_score(feature: dict[str, Any]) -> tuple[str, float | None]:
    for name in ("psi", "linf", "ks"):
        if isinstance(feature.get(name), int | float):
            return name, float(feature[name])
    return "", None


def drift_section(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    batches = report["drift"]["batches"]
    if not batches:
        return (
            '<p class="empty" id="drift-empty">no batch runs yet: per-feature drift appears here after '
            "<code>mlops batch</code> or a scheduled batch run</p>"
        )
    features = sorted({name for b in batches for name in b["features"]})
    ordered = list(reversed(batches))  # oldest on the left
    z, text = [], []
    for name in features:
        z_row, text_row = [], []
        for b in ordered:
            feature = b["features"].get(name) or {}
            measure, score = _drift_score(feature)
            z_row.append(score)
            text_row.append(
                f"{measure} {score:.3g}{' DRIFT' if feature.get('drifted') else ''}" if score is not None else ""
            )
        z.append(z_row)
        text.append(text_row)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[b["run_id"] for b in ordered],
            y=features,
            text=text,
            texttemplate="%{text}",
            colorscale="OrRd",
            colorbar={"title": {"text": "distance"}},
            hovertemplate="%{y} in %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        template="plotly_white",
        height=140 + 32 * len(features),
        margin={"l": 120, "r": 20, "t": 30, "b": 60},
        title={
            "text": "per-feature distance from the model's training baseline (PSI, L-infinity or KS)",
            "font": {"size": 14},
        },
    )
    rows = []
    for b in batches:
        for name, feature in sorted(b["features"].items()):
            measure, score = _drift_score(feature)
            cells = [
                el("td", escape(b["run_id"]), "mono"),
                el("td", escape(name)),
                el("td", escape(str(feature.get("inferred_type") or ""))),
                el("td", _fmt(feature.get("completeness")), "num"),
                el("td", escape(measure)),
                el("td", _fmt(score), "num"),
                el("td", "DRIFT" if feature.get("drifted") else ""),
            ]
            drifted = bool(feature.get("drifted"))
            rows.append(el("tr", "".join(cells), run_id=b["run_id"], feature=name, drifted=drifted, score=score))
    violations = "".join(
        el(
            "tr",
            el("td", escape(b["run_id"]), "mono")
            + "".join(
                el("td", escape(str(v.get(k)))) for k in ("feature_name", "constraint_check_type", "description")
            ),
            run_id=b["run_id"],
            feature=v.get("feature_name"),
            check=v.get("constraint_check_type"),
        )
        for b in batches
        for v in b["violations"]
    )
    statuses = "".join(
        f'<li data-run-id="{_attr(b["run_id"])}" data-drift-status="{_attr(b["status"])}"><span class="mono">'
        f"{escape(b['run_id'])}</span>: {_status(b['status'])}</li>"
        for b in batches
    )
    return (
        f"<ul id='drift-status'>{statuses}</ul>"
        + _figure(fig, "drift")
        + '<table id="drift-features"><thead><tr><th>batch run</th><th>feature</th><th>type</th><th>completeness</th>'
        f"<th>measure</th><th>distance</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (
            '<table id="drift-violations"><thead><tr><th>batch run</th><th>feature</th><th>check</th>'
            f"<th>description</th></tr></thead><tbody>{violations}</tbody></table>"
            if violations
            else ""
        )
    )


def cost_section(report: dict[str, Any]) -> str:
    prices = report["prices"]
    rows = []
    for run in report["runs"]:
        c = run["cost"]
        sfn, lam, sm = c["step_functions"], c["lambda"], c["sagemaker"]
        jobs = "<br>".join(
            f"{escape(j['kind'])} {escape(j['instance_type'])} x{j['instance_count']} {j['billed_seconds']}s"
            for j in sm["jobs"]
        )
        note = []
        if sm["unpriced"]:
            note.append("no price for " + ", ".join(sm["unpriced"]))
        if c.get("missing_executions"):
            note.append(f"{c['missing_executions']} execution(s) no longer have a history")
        fields = [
            ("executions", c["executions"], str(c["executions"])),
            ("transitions", sfn["transitions"], str(sfn["transitions"])),
            ("step_functions_usd", float(sfn["usd"]), _usd(sfn["usd"])),
            ("lambda_invocations", lam["invocations"], str(lam["invocations"])),
            ("lambda_gb_seconds", float(lam["gb_seconds"]), f"{lam['gb_seconds']:.3f}"),
            ("lambda_usd", float(lam["usd"]), _usd(lam["usd"])),
            ("instance_seconds", sm["instance_seconds"], str(sm["instance_seconds"])),
            ("sagemaker_jobs", len(sm["jobs"]), jobs),
            ("sagemaker_usd", float(sm["usd"]), _usd(sm["usd"])),
            ("total_usd", float(c["total_usd"]), f"<b>{_usd(c['total_usd'])}</b>{'+' if c['partial'] else ''}"),
        ]
        cells = el("td", escape(run["run_id"]), "mono") + "".join(
            el("td", shown, "jobs" if name == "sagemaker_jobs" else "num", field=name, value=value)
            for name, value, shown in fields
        )
        rows.append(
            el("tr", cells + el("td", escape("; ".join(note))), "cost", run_id=run["run_id"], partial=c["partial"])
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "run id",
            "executions",
            "state transitions",
            "Step Functions",
            "Lambda invocations",
            "Lambda GB-s",
            "Lambda",
            "SageMaker instance-s",
            "SageMaker jobs",
            "SageMaker",
            "total",
            "",
        )
    )
    flat = [
        ("Step Functions Standard", "per 1,000 state transitions", prices["step_functions_per_transition"] * 1000),
        ("Lambda", "per 1M requests", prices["lambda_per_request"] * 1_000_000),
        *(("Lambda", f"per GB-second ({arch})", rate) for arch, rate in prices["lambda_per_gb_second"].items()),
    ]
    price_table = "".join(
        f'<tr data-service="{_attr(s)}" data-unit="{_attr(u)}" data-price="{_attr(float(p))}"><td>{escape(s)}</td>'
        f"<td>{escape(u)}</td><td class='num'>${p:g}</td></tr>"
        for s, u, p in flat
    )
    by_kind = prices["sagemaker_per_instance_hour"]
    instances = sorted({i for table in by_kind.values() for i in table})
    instance_rows = "".join(
        f"<tr><td>{escape(i)}</td>"
        + "".join(
            el(
                "td",
                f"${by_kind[k][i]:g}" if i in by_kind[k] else "",
                "num",
                kind=k,
                instance=i,
                price=by_kind[k].get(i),
            )
            for k in by_kind
        )
        + "</tr>"
        for i in instances
    )
    instance_head = "".join(f"<th>{escape(k)}</th>" for k in by_kind)
    return (
        f'<table id="costs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<p class="note">An estimate at on-demand list prices in {escape(prices["region"])}: state transitions of the '
        "run's job flow executions and every executor and worker execution they started; Lambda requests and "
        "GB-seconds from each Lambda task's duration in those histories and the function's configured memory; "
        "SageMaker instance-seconds of each processing, training and transform job from its Describe*Job, times the "
        f"instance type's hourly price. Not included: {escape(prices['excluded'])}. A + marks a lower bound.</p>"
        f'<h3 style="font-size:14px">Prices used (recorded <span id="prices-date">{escape(prices["recorded_on"])}'
        f'</span>)</h3><p class="note" id="prices-source">Source: {escape(prices["source"])}.</p>'
        '<table id="prices"><thead><tr><th>service</th><th>unit</th><th>USD</th></tr></thead>'
        f"<tbody>{price_table}</tbody></table>"
        f'<table id="instance-prices"><thead><tr><th>SageMaker, USD per instance-hour</th>{instance_head}</tr></thead>'
        f"<tbody>{instance_rows}</tbody></table>"
    )


def render(report: dict[str, Any]) -> str:
    """The page: one HTML document with plotly.js inlined in its head and every figure's data inline."""
    from plotly.offline import get_plotlyjs

    title = f"sfn-mlops report: {report['pipeline']}"
    gate = report.get("gate") or {}
    gate_line = (
        f"quality gate: {escape(str(gate.get('metric')))} {escape(str(gate.get('direction') or ''))}, threshold "
        f"{_fmt(gate.get('threshold'))}"
        if gate.get("metric")
        else ""
    )
    timeline = report.get("timeline") or {}
    sections = [
        ("runs", "Runs (newest first)", runs_table(report)),
        ("trend", "Gate metric across runs, against the threshold and the champion", trend_figure(report)),
        (
            "timeline-section",
            f"Timeline of run {escape(timeline.get('run_id') or '')}: units, with skipped and cached ones",
            timeline_section(report),
        ),
        (
            "lineage-section",
            "Lineage: dataset → runs → model packages → endpoints and batch outputs",
            lineage_section(report),
        ),
        ("drift-section", "Drift of recent batch runs, per feature", drift_section(report)),
        ("cost-section", "Estimated AWS cost per run", cost_section(report)),
    ]
    body = "".join(f'<section id="s-{key}"><h2>{heading}</h2>{content}</section>' for key, heading, content in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{escape(title)}</h1>"
        + el(
            "p",
            f"{report['totals']['runs']} runs from {escape(report['source'])}, generated "
            f"{escape(report['generated_at'])}. {gate_line}",
            "meta",
            ident="meta",
            pipeline=report["pipeline"],
            total_usd=float(report["totals"]["usd"]),
        )
        + body
        + f'<script type="application/json" id="report-data">{_json_for_script(report)}</script>'
        + "</body></html>\n"
    )


def _json_for_script(report: dict[str, Any]) -> str:
    """The report's data inline for scripts that read the page, safe inside a <script> element."""
    return json.dumps(report, default=str).replace("<", "\\u003c")
