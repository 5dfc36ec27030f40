"""Gathering the report's data: usage from execution histories (GetExecutionHistory's shape), the timeline, the
gate, lineage and drift sections, from records shaped as the operations layer returns them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sfn_mlops_local.report import data

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
ARN = "arn:aws:states:us-east-1:123456789012"
FLOW = f"{ARN}:stateMachine:stack-TrainingFlow"
RUN = "abalone-20261130t120000-0000000a"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/stack-abalone/3"


class History:
    """Events of one execution in GetExecutionHistory's shape, ids and previousEventId chained."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = T0

    def add(self, kind: str, after_s: float = 0.0, previous: int | None = None, **details: Any) -> int:
        self.clock += timedelta(seconds=after_s)
        event_id = len(self.events) + 1
        event: dict[str, Any] = {
            "id": event_id,
            "previousEventId": previous if previous is not None else event_id - 1,
            "timestamp": self.clock,
            "type": kind,
        }
        event.update(details)
        self.events.append(event)
        return event_id

    def state(self, name: str, kind: str = "Task", after_s: float = 0.0) -> None:
        self.add(f"{kind}StateEntered", after_s, stateEnteredEventDetails={"name": name})

    def exit(self, name: str, kind: str = "Task", after_s: float = 0.0) -> None:
        self.add(f"{kind}StateExited", after_s, stateExitedEventDetails={"name": name})

    def task(self, resource_type: str, resource: str, parameters: dict[str, Any], took_s: float, **end: Any) -> None:
        scheduled = self.add(
            "TaskScheduled",
            taskScheduledEventDetails={
                "resourceType": resource_type,
                "resource": resource,
                "parameters": json.dumps(parameters),
            },
        )
        started = self.add("TaskStarted", previous=scheduled, taskStartedEventDetails={"resourceType": resource_type})
        if end.get("child"):
            self.add(
                "TaskSubmitted",
                taskSubmittedEventDetails={
                    "resourceType": resource_type,
                    "resource": resource,
                    "output": json.dumps({"ExecutionArn": end["child"]}),
                },
            )
        self.add(
            end.get("outcome", "TaskSucceeded"),
            took_s,
            previous=started if not end.get("child") else None,
            taskSucceededEventDetails={"resourceType": resource_type, "resource": resource},
        )


class RecordedReader(data.Reader):
    """The reader over recorded AWS answers (histories, function configurations, Describe*Job)."""

    def __init__(self, histories: dict[str, list[dict[str, Any]]], executions: list[dict[str, Any]]) -> None:
        super().__init__(target=None)  # type: ignore[arg-type]
        self.recorded = histories
        self.executions = executions
        self.described: list[str] = []

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        if execution_arn not in self.recorded:
            self.missing.add(execution_arn)
            return []
        return self.recorded[execution_arn]

    def function(self, function_name: str) -> dict[str, Any]:
        return {"memory_mb": 512 if function_name.endswith("PlanRun") else 256, "architecture": "x86_64"}

    def flow_executions(self, state_machine_arn: str) -> list[dict[str, Any]]:
        return self.executions

    def describe_job(self, kind: str, name: str) -> dict[str, Any] | None:
        self.described.append(name)
        start = T0 + timedelta(seconds=1)
        if kind == "training":
            return {
                "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
                "TrainingStartTime": start,
                "TrainingEndTime": start + timedelta(seconds=100),
                "BillableTimeInSeconds": 95,
            }
        return {
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2}},
            "ProcessingStartTime": start,
            "ProcessingEndTime": start + timedelta(seconds=30.5),
        }


def _unit_executions(unit: str, job: tuple[str, str, str] | None, execution: str) -> dict[str, list[dict[str, Any]]]:
    """An executor execution (a DynamoDB read, a Lambda look-up, the worker) and its worker (a Lambda, a job)."""
    executor = f"{ARN}:execution:stack-Executor:{execution}-{unit}"
    worker = f"{ARN}:execution:stack-Worker:{execution}-{unit}-a1"
    ex = History()
    ex.add("ExecutionStarted")
    ex.state("Get unit record")
    ex.task("dynamodb", "getItem", {"TableName": "t"}, 0.01)
    ex.state("Look up cached success")
    ex.task("lambda", "invoke", {"FunctionName": f"{ARN}:function:stack-LookupCache"}, 0.0204)
    ex.state("Run worker")
    ex.task("states", "startExecution.sync:2", {"Name": "w"}, 2.0, child=worker)
    ex.add("ExecutionSucceeded")
    wk = History()
    wk.add("ExecutionStarted")
    wk.state("Build job request")
    wk.task("lambda", "invoke", {"FunctionName": f"{ARN}:function:stack-PrepareJob"}, 0.1)
    if job:
        wk.state("Run job")
        api, name_key, name = job
        wk.task("sagemaker", f"{api}.sync", {name_key: name}, 1.5)
    wk.add("ExecutionSucceeded")
    return {executor: ex.events, worker: wk.events, "executor": [{"arn": executor}]}


def recorded_run() -> tuple[RecordedReader, dict[str, Any]]:
    """A run's flow (plan, then preprocess and train) and an unrelated run's execution beside it."""
    flow_arn = f"{ARN}:execution:stack-TrainingFlow:{RUN}"
    histories: dict[str, list[dict[str, Any]]] = {}
    flow = History()
    flow.add("ExecutionStarted")
    flow.state("Plan run")
    flow.task("lambda", "invoke", {"FunctionName": f"{ARN}:function:stack-PlanRun"}, 0.2)
    flow.exit("Plan run")
    for unit, job in (
        ("preprocess", ("createProcessingJob", "ProcessingJobName", f"{RUN}-prep-a1")),
        ("train", ("createTrainingJob", "TrainingJobName", f"{RUN}-train-a1")),
    ):
        units = _unit_executions(unit, job, RUN)
        executor = units.pop("executor")[0]["arn"]
        histories.update(units)
        flow.state(f"Run {unit}", after_s=0.5)
        flow.task("states", "startExecution.sync:2", {"Name": unit}, 3.0, child=executor)
        flow.exit(f"Run {unit}")
        flow.state(f"Is {unit} the last unit to run?", kind="Choice")
    flow.add("ExecutionSucceeded")
    histories[flow_arn] = flow.events
    executions = [
        {"name": RUN, "executionArn": flow_arn},
        {"name": "abalone-20261130t110000-0000000b", "executionArn": f"{ARN}:execution:stack-TrainingFlow:other"},
    ]
    summary = {
        "run_id": RUN,
        "kind": "training",
        "status": "SUCCEEDED",
        "started_at": T0.isoformat(),
        "finished_at": (T0 + timedelta(seconds=9)).isoformat(),
        "flow_execution_arn": flow_arn,
        "dataset": {"uri": "s3://b/data/abalone/abalone.csv", "version": "v1"},
        "metrics": {"rmse": 2.1},
        "gate": {"metric": "rmse", "threshold": 3.1, "direction": "minimize"},
        "gate_verdict": {
            "passed": True,
            "metric": "rmse",
            "value": 2.1,
            "reasons": ["rmse 2.1 beats the threshold 3.1"],
        },
        "model_package_arn": PACKAGE,
        "units": [
            {"name": "preprocess", "status": "SKIPPED", "attempt": 1, "started_at": "2026-01-01T00:00:00Z"},
            {"name": "train", "status": "SUCCEEDED", "attempt": 1, "job_name": f"{RUN}-train-a1"},
            {
                "name": "evaluate",
                "status": "NOT_STARTED",
                "attempt": 0,
                "outputs": {"gate": {"value": 2.1, "champion_value": 2.3, "baseline_value": 2.9}},
            },
        ],
    }
    return RecordedReader(histories, executions), summary


def test_usage_counts_every_state_entered_across_the_three_tiers() -> None:
    # Given a run whose flow started two executors, each of which started a worker
    reader, summary = recorded_run()
    # When its usage is read from the histories
    usage = data.run_usage(reader, summary)
    # Then the flow, both executors and both workers count: 5 executions
    assert usage["executions"] == 5
    # flow: Plan run + 2 x (Run unit, Is unit last?) = 5; each executor 3; each worker 2
    assert usage["transitions"] == 5 + 2 * 3 + 2 * 2
    assert usage["missing_executions"] == []


def test_lambda_tasks_carry_their_duration_and_the_functions_configured_memory() -> None:
    reader, summary = recorded_run()
    usage = data.run_usage(reader, summary)
    calls = sorted(
        (c["function"].rsplit("-", 1)[-1], round(c["duration_ms"]), c["memory_mb"]) for c in usage["lambda_invocations"]
    )
    # plan (200 ms at 512 MB), a cache look-up and a job request per unit (256 MB)
    assert calls == [
        ("LookupCache", 20, 256),
        ("LookupCache", 20, 256),
        ("PlanRun", 200, 512),
        ("PrepareJob", 100, 256),
        ("PrepareJob", 100, 256),
    ]


def test_sagemaker_jobs_come_from_their_describe_calls_once_each() -> None:
    reader, summary = recorded_run()
    usage = data.run_usage(reader, summary)
    jobs = {j["name"]: j for j in usage["jobs"]}
    # the training job's billable time is SageMaker's own; the processing job's is its start to end
    assert jobs[f"{RUN}-train-a1"]["seconds"] == 95
    assert jobs[f"{RUN}-prep-a1"] == {
        "kind": "processing",
        "name": f"{RUN}-prep-a1",
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "seconds": 30.5,
    }
    assert sorted(reader.described) == sorted(jobs)


def test_a_rerun_execution_of_the_run_counts_and_another_runs_does_not() -> None:
    # Given the run's first execution, a rerun named <run_id>-r2-..., and another run's execution
    reader, summary = recorded_run()
    rerun_arn = f"{ARN}:execution:stack-TrainingFlow:{RUN}-r2-abcd1234"
    rerun = History()
    rerun.add("ExecutionStarted")
    rerun.state("Plan run")
    rerun.add("ExecutionSucceeded")
    reader.recorded[rerun_arn] = rerun.events
    reader.executions.append({"name": f"{RUN}-r2-abcd1234", "executionArn": rerun_arn})
    # When the run's executions are listed
    found = data.run_executions(reader, {**summary, "flow_execution_arn": rerun_arn})
    # Then both of its own are, and only those
    assert found == [summary["flow_execution_arn"], rerun_arn]
    assert data.run_usage(reader, {**summary, "flow_execution_arn": rerun_arn})["executions"] == 6


def test_an_execution_whose_history_is_gone_is_reported_not_guessed() -> None:
    reader, summary = recorded_run()
    reader.recorded.pop(summary["flow_execution_arn"])
    usage = data.run_usage(reader, summary)
    estimate = data.cost.run_cost(usage)
    assert usage["missing_executions"] == [summary["flow_execution_arn"]]
    assert estimate["partial"] is True and estimate["missing_executions"] == 1


def test_the_timeline_shows_a_skipped_unit_as_its_short_look_up_and_an_unreached_one_without_a_span() -> None:
    reader, summary = recorded_run()
    timeline = data.timeline(reader, summary)
    units = {u["name"]: u for u in timeline["units"]}
    # the Run preprocess state's own span, not the unit record's old times
    assert units["preprocess"]["status"] == "SKIPPED"
    assert units["preprocess"]["start_s"] == 0.7 and units["preprocess"]["end_s"] == 3.7
    assert units["preprocess"]["label"] == "skipped: attempt 1's outputs reused"
    assert units["train"]["start_s"] == 4.2 and units["train"]["end_s"] == 7.2
    assert units["evaluate"]["start_s"] is None and units["evaluate"]["label"] == "not started"


def test_the_gate_carries_the_decision_and_the_champions_score_on_the_same_rows() -> None:
    _, summary = recorded_run()
    gate = data.gate_of(summary)
    assert gate == {
        "metric": "rmse",
        "threshold": 3.1,
        "direction": "minimize",
        "value": 2.1,
        "decision": "passed",
        "reasons": ["rmse 2.1 beats the threshold 3.1"],
        "champion_value": 2.3,
        "baseline_value": 2.9,
    }
    assert data.gate_of({**summary, "gate_verdict": None})["decision"] is None  # the run never reached the gate
    assert data.gate_of({**summary, "gate": None}) is None  # a batch run has no gate


BATCH = {
    "run_id": "abalone-batch-20261130t130000-0000000c",
    "pipeline": "abalone",
    "kind": "batch",
    "status": "SUCCEEDED",
    "started_at": "2026-11-30T13:00:00Z",
    "model_package_arn": PACKAGE,
    "output_uri": "s3://b/batch/abalone/abalone-batch-20261130t130000-0000000c/",
    "rows_scored": 4177,
    "drift": {
        "status": "DRIFT",
        "violations": [
            {
                "feature_name": "length",
                "constraint_check_type": "distribution_distance_check",
                "description": "psi 0.8",
            },
            {"feature_name": "sex", "constraint_check_type": "categorical_values_check", "description": "unknown 'X'"},
        ],
        "features": {
            "length": {"inferred_type": "Fractional", "completeness": 1.0, "psi": 0.8, "ks": 0.4, "drifted": True},
            "sex": {"inferred_type": "String", "completeness": 1.0, "linf": 0.05, "drifted": True},
            "height": {"inferred_type": "Fractional", "completeness": 1.0, "psi": 0.01, "ks": 0.02, "drifted": False},
        },
    },
    "units": [],
    "error": None,
}


def test_drift_lists_recent_batch_runs_with_their_per_feature_distances() -> None:
    _, training = recorded_run()
    section = data.drift_section([BATCH, training])
    assert [b["run_id"] for b in section["batches"]] == [BATCH["run_id"]]
    batch = section["batches"][0]
    assert batch["status"] == "DRIFT" and batch["features"]["length"]["psi"] == 0.8
    assert [v["feature_name"] for v in batch["violations"]] == ["length", "sex"]
    assert data.drift_section([training]) == {"batches": []}


def test_lineage_links_dataset_run_package_endpoint_and_a_batch_output() -> None:
    rows = [
        {
            "run_id": BATCH["run_id"],
            "kind": "batch",
            "status": "SUCCEEDED",
            "dataset": {"uri": None, "version": None},
            "model_package_arn": PACKAGE,
            "batch": {"output_uri": BATCH["output_uri"]},
        },
        {
            "run_id": RUN,
            "kind": "training",
            "status": "SUCCEEDED",
            "dataset": {"uri": "s3://b/data/abalone/abalone.csv", "version": "v1"},
            "model_package_arn": PACKAGE,
        },
    ]
    older = "s3://b/batch/abalone/batch-abalone-20261101t000000-0000000d/output/a1/rows.csv.out"
    packages = {
        PACKAGE: {
            "endpoints": [{"endpoint_name": "stack-abalone-staging", "stage": "staging", "serving": True}],
            # the package's lineage names both outputs: the report's batch run's, and an older batch's
            "batch_outputs": [{"output_uri": BATCH["output_uri"]}, {"output_uri": older}],
        }
    }
    graph = data.lineage_graph(rows, packages)
    edges = [(e["from"].split(":", 1)[0], e["to"].split(":", 1)[0], e["label"]) for e in graph["edges"]]
    assert sorted(edges) == [
        ("dataset", "run", "read by"),
        ("package", "endpoint", "serving now"),
        ("package", "output", "scored"),  # the older batch's output, straight from the package
        ("package", "run", "scored by"),
        ("run", "output", "wrote"),  # the report's batch run's output, through the run only
        ("run", "package", "registered"),
    ]
    kinds = sorted(n["kind"] for n in graph["nodes"])
    assert kinds == ["batch_output", "batch_output", "batch_run", "dataset", "endpoint", "package", "run"]
    labels = {n["label"] for n in graph["nodes"] if n["kind"] == "batch_output"}
    assert labels == {"output a1/rows.csv.out", "output abalone/abalone-batch-20261130t130000-0000000c"}


def test_a_unit_the_latest_execution_did_not_run_has_no_span_and_says_what_its_record_holds() -> None:
    # Given a rerun the gate stopped before register, whose record is from the run's first execution
    reader, summary = recorded_run()
    register = {
        "name": "register",
        "status": "SUCCEEDED",
        "attempt": 1,
        "started_at": "2026-11-30T11:59:00Z",
        "finished_at": "2026-11-30T11:59:01Z",
    }
    # When the timeline of the latest execution is drawn
    units = {u["name"]: u for u in data.timeline(reader, {**summary, "units": [*summary["units"], register]})["units"]}
    # Then register is not placed on this execution's clock, and says why
    assert units["register"]["start_s"] is None
    assert units["register"]["label"] == "not run by this execution (recorded: succeeded (attempt 1))"


def test_without_the_flows_history_the_units_own_records_place_them() -> None:
    reader, summary = recorded_run()
    reader.recorded.pop(summary["flow_execution_arn"])
    train = {
        "name": "train",
        "status": "SUCCEEDED",
        "attempt": 1,
        "started_at": "2026-11-30T12:00:04Z",
        "finished_at": "2026-11-30T12:00:06.5Z",
    }
    (unit,) = data.timeline(reader, {**summary, "units": [train]})["units"]
    assert (unit["start_s"], unit["end_s"]) == (4.0, 6.5)


def test_the_reader_on_aws_apis_a_job_that_never_existed_and_a_history_that_is_gone(aws: None) -> None:
    import boto3

    from sfn_mlops_local.operations import Target

    # Given AWS APIs (moto) with no such job and no such execution
    target = Target.from_clients(boto3.client, "bucket", "table", FLOW, "moto")
    reader = data.Reader(target)
    # Then a job whose create call was refused costs nothing, and a lost history is recorded as missing
    assert reader.describe_job("processing", "never-created") is None
    assert reader.describe_job("training", "never-created") is None
    gone = f"{ARN}:execution:stack-TrainingFlow:gone"
    assert reader.history(gone) == [] and reader.missing == {gone}


def test_a_stale_unit_is_placed_on_no_clock_and_a_run_without_metrics_still_has_its_gate() -> None:
    # Given a run whose latest execution failed before register, whose record is an earlier execution's
    reader, summary = recorded_run()
    register = {
        "name": "register",
        "status": "STALE",
        "attempt": 1,
        "started_at": "2026-11-30T11:59:00Z",
        "finished_at": "2026-11-30T11:59:01Z",
    }
    failed = {**summary, "units": [*summary["units"], register], "metrics": None, "model_package_arn": None}
    # When its timeline is drawn, with the flow's history and from the records alone
    for with_history in (True, False):
        if not with_history:
            reader.recorded.pop(summary["flow_execution_arn"])
            reader._histories.clear()
        units = {u["name"]: u for u in data.timeline(reader, failed)["units"]}
        # Then register has no span and says it is out of date
        assert units["register"]["start_s"] is None
        assert units["register"]["label"] == (
            "not run by this execution: out of date (attempt 1's outputs are an earlier one's)"
        )
    # And the gate section reads the verdict without metrics
    assert data.gate_of(failed)["value"] == summary["gate_verdict"]["value"]
    assert data.gate_of({**failed, "gate_verdict": None})["value"] is None
