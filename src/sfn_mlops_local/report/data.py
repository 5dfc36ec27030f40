"""What the report shows, gathered through the operations layer as plain dicts (the same code against the local
service and a deployed stack): runs, the gate metric's trend, a run's timeline, lineage, drift and cost."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sfn_mlops_local import operations
from sfn_mlops_local.operations import Target
from sfn_mlops_local.report import cost

# SageMaker .sync job tasks: the Describe call that says what the job used, and the name parameter.
JOB_TASKS = {
    "createProcessingJob": ("processing", "ProcessingJobName"),
    "createTrainingJob": ("training", "TrainingJobName"),
    "createTransformJob": ("transform", "TransformJobName"),
}
TASK_END = ("TaskSucceeded", "TaskFailed", "TaskTimedOut")


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class Reader:
    """Reads executions, jobs and functions once each (a report touches the same ones from several sections)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._histories: dict[str, list[dict[str, Any]]] = {}
        self._functions: dict[str, dict[str, Any]] = {}
        self._flow_executions: dict[str, list[dict[str, Any]]] = {}
        self._packages: dict[str, dict[str, Any] | None] = {}
        self._lambda: Any = None
        # Executions whose history is gone (Step Functions keeps a closed execution's for 90 days)
        self.missing: set[str] = set()

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        if execution_arn not in self._histories:
            events: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            while True:
                try:
                    page = self.target.sfn.get_execution_history(**kwargs)
                except self.target.sfn.exceptions.ExecutionDoesNotExist:
                    self.missing.add(execution_arn)
                    break
                events.extend(page["events"])
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
            self._histories[execution_arn] = events
        return self._histories[execution_arn]

    def function(self, function_name: str) -> dict[str, Any]:
        """The function's configured memory and architecture (what Lambda bills by)."""
        if function_name not in self._functions:
            if self._lambda is None:
                self._lambda = self.target.client("lambda")
            config = self._lambda.get_function_configuration(FunctionName=function_name)
            self._functions[function_name] = {
                "memory_mb": int(config.get("MemorySize") or 128),
                "architecture": (config.get("Architectures") or ["x86_64"])[0],
            }
        return self._functions[function_name]

    def flow_executions(self, state_machine_arn: str) -> list[dict[str, Any]]:
        """Every execution of a job flow (one listing per flow, shared by all the runs of the report)."""
        if state_machine_arn not in self._flow_executions:
            found: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
            while True:
                page = self.target.sfn.list_executions(**kwargs)
                found.extend(page["executions"])
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
            self._flow_executions[state_machine_arn] = found
        return self._flow_executions[state_machine_arn]

    def package(self, model_package_arn: str) -> dict[str, Any] | None:
        if model_package_arn not in self._packages:
            sagemaker = self.target.sagemaker
            try:
                self._packages[model_package_arn] = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
            except sagemaker.exceptions.ClientError:
                self._packages[model_package_arn] = None
        return self._packages[model_package_arn]

    def describe_job(self, kind: str, name: str) -> dict[str, Any] | None:
        """The job as SageMaker describes it; None if there is no such job (its create call was refused, so
        nothing ran). Any other refusal (e.g. access denied) is raised: the estimate would be silently short."""
        sagemaker = self.target.sagemaker
        try:
            if kind == "processing":
                return dict(sagemaker.describe_processing_job(ProcessingJobName=name))
            if kind == "training":
                return dict(sagemaker.describe_training_job(TrainingJobName=name))
            return dict(sagemaker.describe_transform_job(TransformJobName=name))
        except sagemaker.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
                return None
            raise


# ---------------------------------------------------------------------------------------------------- usage
def execution_usage(reader: Reader, execution_arn: str) -> dict[str, Any]:
    """States entered, Lambda tasks (function, duration) and SageMaker job tasks of an execution and of every
    execution it started (the executor and worker tiers), from their histories."""
    usage: dict[str, Any] = {"executions": 0, "transitions": 0, "lambda_tasks": [], "job_tasks": [], "missing": []}
    _walk(reader, execution_arn, usage)
    return usage


def _walk(reader: Reader, execution_arn: str, usage: dict[str, Any]) -> None:
    events = reader.history(execution_arn)
    if execution_arn in reader.missing:
        usage["missing"].append(execution_arn)
        return
    usage["executions"] += 1
    scheduled: dict[int, dict[str, Any]] = {}
    started: dict[int, dict[str, Any]] = {}
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            usage["transitions"] += 1
        elif kind == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            scheduled[event["id"]] = {
                "resource_type": details.get("resourceType"),
                "resource": details.get("resource") or "",
                "parameters": json.loads(details.get("parameters") or "{}"),
            }
        elif kind == "TaskStarted":
            task = scheduled.get(event.get("previousEventId", -1))
            if task is not None:
                started[event["id"]] = {**task, "started": _time(event["timestamp"])}
                if task["resource_type"] == "sagemaker":
                    api = task["resource"].split(".", 1)[0]
                    if api in JOB_TASKS:
                        job_kind, name_key = JOB_TASKS[api]
                        usage["job_tasks"].append({"kind": job_kind, "name": task["parameters"].get(name_key)})
        elif kind == "TaskSubmitted":
            details = event["taskSubmittedEventDetails"]
            if details.get("resourceType") == "states":
                output = json.loads(details.get("output") or "{}")
                child = output.get("ExecutionArn") or output.get("executionArn")
                if child:
                    _walk(reader, child, usage)
        elif kind in TASK_END:
            task = started.get(event.get("previousEventId", -1))
            if task is not None and task["resource_type"] == "lambda":
                began, ended = task["started"], _time(event["timestamp"])
                usage["lambda_tasks"].append(
                    {
                        "function": task["parameters"].get("FunctionName"),
                        "duration_ms": (ended - began).total_seconds() * 1000 if began and ended else 0.0,
                    }
                )


def _job_usage(reader: Reader, kind: str, name: str) -> dict[str, Any] | None:
    """A job's instance type, count and billable seconds, from its Describe*Job."""
    described = reader.describe_job(kind, name)
    if described is None:
        return None
    if kind == "processing":
        cluster = described["ProcessingResources"]["ClusterConfig"]
        instance_type, count = cluster["InstanceType"], cluster["InstanceCount"]
        start, end = described.get("ProcessingStartTime"), described.get("ProcessingEndTime")
    elif kind == "training":
        resources = described["ResourceConfig"]
        instance_type, count = resources["InstanceType"], resources["InstanceCount"]
        start, end = described.get("TrainingStartTime"), described.get("TrainingEndTime")
    else:
        resources = described["TransformResources"]
        instance_type, count = resources["InstanceType"], resources["InstanceCount"]
        start, end = described.get("TransformStartTime"), described.get("TransformEndTime")
    began, ended = _time(start), _time(end or described.get("LastModifiedTime"))
    seconds = (ended - began).total_seconds() if began and ended else 0.0
    if kind == "training" and described.get("BillableTimeInSeconds") is not None:
        seconds = float(described["BillableTimeInSeconds"])  # per instance, as SageMaker bills it
    return {
        "kind": kind,
        "name": name,
        "instance_type": instance_type,
        "instance_count": int(count),
        "seconds": seconds,
    }


def run_executions(reader: Reader, summary: dict[str, Any]) -> list[str]:
    """The flow executions of a run: its first (named after the run) and its reruns (``<run_id>-r<n>-...``),
    and always the one that last recorded it."""
    latest = summary.get("flow_execution_arn") or ""
    if ":execution:" not in latest:
        return []
    flow_arn = latest.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:", 1)
    run_id = summary["run_id"]
    arns = [
        e["executionArn"]
        for e in reader.flow_executions(flow_arn)
        if e["name"] == run_id or e["name"].startswith(f"{run_id}-r")
    ]
    return arns if latest in arns else [*arns, latest]


def run_usage(reader: Reader, summary: dict[str, Any]) -> dict[str, Any]:
    """Everything a run's executions used, priced by ``cost.run_cost``."""
    total: dict[str, Any] = {"executions": 0, "transitions": 0, "lambda_tasks": [], "job_tasks": [], "missing": []}
    for arn in run_executions(reader, summary):
        used = execution_usage(reader, arn)
        for key in ("executions", "transitions"):
            total[key] += used[key]
        total["lambda_tasks"] += used["lambda_tasks"]
        total["job_tasks"] += used["job_tasks"]
        total["missing"] += used["missing"]
    invocations = [
        {**task, **reader.function(task["function"])} for task in total["lambda_tasks"] if task.get("function")
    ]
    jobs, seen = [], set()
    for task in total["job_tasks"]:
        if not task["name"] or task["name"] in seen:
            continue
        seen.add(task["name"])
        job = _job_usage(reader, task["kind"], task["name"])
        if job is not None:
            jobs.append(job)
    return {
        "executions": total["executions"],
        "transitions": total["transitions"],
        "lambda_invocations": invocations,
        "jobs": jobs,
        "missing_executions": total["missing"],
    }


# ------------------------------------------------------------------------------------------------ sections
def gate_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The run's quality gate: its config, the value, the decision, the champion's and baseline's scores."""
    gate = summary.get("gate") or {}
    if not gate.get("metric"):
        return None
    verdict = summary.get("gate_verdict") or {}
    evaluate = next((u for u in summary.get("units", []) if u["name"] == "evaluate"), None)
    scored = ((evaluate or {}).get("outputs") or {}).get("gate") or {}
    value = verdict.get("value", (summary.get("metrics") or {}).get(gate["metric"]))
    decision = None if not verdict else ("passed" if verdict.get("passed") else "rejected")
    return {
        "metric": gate["metric"],
        "threshold": gate.get("threshold"),
        "direction": gate.get("direction"),
        "value": value,
        "decision": decision,
        "reasons": verdict.get("reasons") or [],
        "champion_value": scored.get("champion_value"),
        "baseline_value": scored.get("baseline_value"),
    }


def _serving(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"endpoint_name": s.get("endpoint_name"), "stage": s.get("stage"), "serving": s.get("to") is None}
        for s in spans
    ]


def package_facts(reader: Reader, model_package_arn: str) -> dict[str, Any]:
    """A package's approval status (SageMaker's word), the endpoints that served it, and its batch outputs."""
    from sfn_mlops.errors import LineageNotFound
    from sfn_mlops.lineage import model_lineage

    described = reader.package(model_package_arn) or {}
    try:
        lineage = model_lineage(reader.target.table, model_package_arn)
    except LineageNotFound:
        lineage = {}
    return {
        "approval": described.get("ModelApprovalStatus"),
        "endpoints": _serving(lineage.get("served_by") or []),
        "batch_outputs": list(lineage.get("batch_outputs") or []),
    }


def run_row(reader: Reader, summary: dict[str, Any], packages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    arn = summary.get("model_package_arn")
    if arn and arn not in packages:
        packages[arn] = package_facts(reader, arn)
    facts = packages.get(arn or "", {})
    dataset = summary.get("dataset") or {}
    row: dict[str, Any] = {
        "run_id": summary["run_id"],
        "kind": summary.get("kind") or "training",
        "status": summary.get("status"),
        "run_attempt": summary.get("run_attempt"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "duration_s": summary.get("duration_s"),
        "dataset": {"uri": dataset.get("uri"), "version": dataset.get("version")},
        # None in the summary (the latest execution's gate accepted no package): none shown
        "metrics": summary.get("metrics") or {},
        "gate": gate_of(summary),
        "model_package_arn": arn,
        "approval": facts.get("approval"),
        "endpoints": facts.get("endpoints", []),
        "cost": cost.run_cost(run_usage(reader, summary)),
    }
    if row["kind"] == "batch":
        drift = summary.get("drift") or {}
        row["batch"] = {
            "output_uri": summary.get("output_uri"),
            "rows_scored": summary.get("rows_scored"),
            "drift_status": drift.get("status"),
        }
    return row


def timeline(reader: Reader, summary: dict[str, Any]) -> dict[str, Any]:
    """The units of the run's latest flow execution on one clock (seconds from its start): each unit's span is
    its ``Run <unit>`` state, so a skipped or cached unit shows as the short look-up it was. A unit that execution
    did not run (the gate stopped it, or it failed earlier) has no span and says so; without any such state
    (another flow's naming, or a history that is gone), the unit records' own times."""
    arn = summary.get("flow_execution_arn") or ""
    events = reader.history(arn) if ":execution:" in arn else []
    origin = _time(events[0]["timestamp"]) if events else _time(summary.get("started_at"))
    entered: dict[str, datetime] = {}
    spans: dict[str, tuple[datetime, datetime]] = {}
    for event in events:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}
        name = str(details.get("name") or "")
        if not name.startswith("Run "):
            continue
        when = _time(event["timestamp"])
        assert when is not None
        if event["type"].endswith("StateEntered"):
            entered[name[4:]] = when
        elif name[4:] in entered:
            spans[name[4:]] = (entered[name[4:]], when)
    units = []
    for unit in summary.get("units", []):
        span = spans.get(unit["name"])
        if span is None and unit["name"] in entered:  # still running, or the flow failed inside it
            span = (entered[unit["name"]], _time(summary.get("finished_at")) or entered[unit["name"]])
        by_records = not entered
        # (a STALE unit's record is an earlier execution's: no span on this one's clock)
        ran = unit["status"] not in ("SKIPPED", "CACHED", "NOT_STARTED", "STALE")
        if by_records and unit.get("started_at") and ran:
            start, end = _time(unit["started_at"]), _time(unit.get("finished_at") or unit["started_at"])
            span = (start, end) if start and end else None
        start_s = end_s = None
        if span is not None and origin is not None:
            start_s = round((span[0] - origin).total_seconds(), 3)
            end_s = round((span[1] - origin).total_seconds(), 3)
        source = unit.get("cached_from") or {}
        units.append(
            {
                "name": unit["name"],
                "status": unit["status"],
                "attempt": unit.get("attempt"),
                "start_s": start_s,
                "end_s": end_s,
                "job_name": unit.get("job_name"),
                "label": _unit_label(unit, source)
                if span is not None or by_records or unit["status"] in ("NOT_STARTED", "STALE")
                else f"not run by this execution (recorded: {_unit_label(unit, source)})",
            }
        )
    return {
        "run_id": summary["run_id"],
        "execution_arn": arn or None,
        "started_at": summary.get("started_at"),
        "units": units,
    }


def _unit_label(unit: dict[str, Any], source: dict[str, Any]) -> str:
    status = unit["status"]
    if status == "SKIPPED":
        # attempt 0: the unit's recorded success is itself a cache hit from another run
        reused = f"attempt {unit.get('attempt')}'s" if unit.get("attempt") else "its cached"
        return f"skipped: {reused} outputs reused"
    if status == "CACHED":
        return f"cached: outputs of run {source.get('run_id')} attempt {source.get('attempt')}"
    if status == "NOT_STARTED":
        return "not started"
    if status == "STALE":
        return f"not run by this execution: out of date (attempt {unit.get('attempt')}'s outputs are an earlier one's)"
    return f"{status.lower()} (attempt {unit.get('attempt')})"


def lineage_graph(rows: list[dict[str, Any]], packages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """dataset version → run → model package → endpoints and batch outputs, for the runs in the report."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []

    def node(node_id: str, kind: str, label: str, detail: str) -> str:
        nodes.setdefault(node_id, {"id": node_id, "kind": kind, "label": label, "detail": detail})
        return node_id

    def edge(source: str, target: str, label: str = "") -> None:
        if not any(e["from"] == source and e["to"] == target for e in edges):
            edges.append({"from": source, "to": target, "label": label})

    for row in reversed(rows):  # oldest first: the graph reads left to right, top to bottom in time
        kind = "batch_run" if row["kind"] == "batch" else "run"
        run = node(f"run:{row['run_id']}", kind, row["run_id"], f"{row['kind']} run, {row['status']}")
        dataset = row["dataset"]
        if row["kind"] != "batch" and dataset.get("uri"):
            version = str(dataset.get("version") or "")
            name = str(dataset["uri"]).rsplit("/", 1)[-1]
            data = node(
                f"dataset:{dataset['uri']}#{version}", "dataset", f"{name} {version[:8]}", f"{dataset['uri']} {version}"
            )
            edge(data, run, "read by")
        arn = row.get("model_package_arn")
        if not arn:
            continue
        package = node(f"package:{arn}", "package", "package v" + arn.rsplit("/", 1)[-1], arn)
        if row["kind"] == "batch":
            edge(package, run, "scored by")
            output = (row.get("batch") or {}).get("output_uri")
            if output:
                edge(run, node(f"output:{output}", "batch_output", _output_label(output), str(output)), "wrote")
            continue
        edge(run, package, "registered")
        facts = packages.get(arn, {})
        for span in facts.get("endpoints", []):
            label = f"{span['endpoint_name']} ({span.get('stage')})"
            endpoint = node(f"endpoint:{span['endpoint_name']}", "endpoint", label, str(span["endpoint_name"]))
            edge(package, endpoint, "serving now" if span.get("serving") else "served")
    # Batch outputs the packages' lineage names whose batch runs are older than the report's runs
    for arn, facts in packages.items():
        for output in facts.get("batch_outputs", []):
            uri = output.get("output_uri") or output.get("uri") if isinstance(output, dict) else output
            if uri and f"output:{uri}" not in nodes:
                edge(f"package:{arn}", node(f"output:{uri}", "batch_output", _output_label(uri), str(uri)), "scored")
    return {"nodes": list(nodes.values()), "edges": edges}


def _output_label(uri: str) -> str:
    """batch/<pipeline>/<run_id>/output/a1/rows.csv.out → "a1/rows.csv.out" (the run is the node before it)."""
    return "output " + "/".join(str(uri).rstrip("/").split("/")[-2:])


def drift_section(summaries: list[dict[str, Any]], limit: int = 10) -> dict[str, Any]:
    """Per-feature drift of the most recent batch runs (newest first), as each batch run recorded it."""
    batches = []
    for summary in summaries:
        if (summary.get("kind") or "training") != "batch" or not summary.get("drift"):
            continue
        drift = summary["drift"]
        batches.append(
            {
                "run_id": summary["run_id"],
                "started_at": summary.get("started_at"),
                "status": drift.get("status"),
                "features": drift.get("features") or {},
                "violations": drift.get("violations") or [],
            }
        )
    return {"batches": batches[:limit]}


def gather(target: Target, pipeline: str, run_id: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The whole report as plain data (what ``mlops report --json`` prints and the page renders)."""
    listed = operations.list_runs(target, pipeline, limit=limit)
    published = _published_gate(target, pipeline)
    if not listed and published is None:
        raise SystemExit(f"unknown pipeline {pipeline!r}: not published in {target.description} and no runs")
    reader = Reader(target)
    summaries = [operations.run_summary(target, run["run_id"]) for run in listed]
    if run_id is not None and run_id not in {s["run_id"] for s in summaries}:
        summary = operations.run_summary(target, run_id)  # an older run, outside the listing
        if summary.get("pipeline") != pipeline:
            raise SystemExit(f"run {run_id} is a run of {summary.get('pipeline')!r}, not of {pipeline!r}")
        summaries.append(summary)
    packages: dict[str, dict[str, Any]] = {}
    rows = [run_row(reader, summary, packages) for summary in summaries]
    chosen = next((s for s in summaries if s["run_id"] == run_id), summaries[0] if summaries else None)
    return {
        "pipeline": pipeline,
        "source": target.description,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "gate": published or next((r["gate"] for r in rows if r["gate"]), None),
        "runs": rows,
        "timeline": timeline(reader, chosen) if chosen else None,
        "lineage": lineage_graph(rows, packages),
        "drift": drift_section(summaries),
        "prices": cost.PRICES,
        "totals": {
            "runs": len(rows),
            "usd": sum(r["cost"]["total_usd"] for r in rows),
        },
    }


def _published_gate(target: Target, pipeline: str) -> dict[str, Any] | None:
    """The gate of the pipeline as published (None: not published), read without validating the whole config."""
    try:
        body = target.s3.get_object(Bucket=target.bucket, Key=f"pipelines/{pipeline}/pipeline.json")["Body"].read()
    except target.s3.exceptions.NoSuchKey:
        return None
    gate = json.loads(body).get("gate") or {}
    return {"metric": gate.get("metric"), "threshold": gate.get("threshold"), "direction": gate.get("direction")}
