"""What the CLI does, against any target (the local runtime or a deployed stack): plain functions on clients."""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfn_mlops.errors import InvalidPipelineConfig, InvalidRerun
from sfn_mlops.metadata import TERMINAL_RUN_STATUSES, MetadataTable

from sfn_mlops_local.cli_errors import BadArgument, NotFound, Refused

if TYPE_CHECKING:
    from sfn_mlops.pipeline import PipelineConfig
    from sfn_mlops.rerun import RerunOptions

# The console's rerun policy (sfn_mlops.rerun.FORCE): kept here so read-only commands need no pydantic.
FORCE = "force"

FLOW_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# Unit statuses that leave outputs to build on (sfn_mlops.rerun.DONE_STATUSES).
DONE_STATUSES = {"SUCCEEDED", "CACHED"}
# A unit the run's latest execution did not run: had an earlier success, now out of date ("STALE"), or never
# succeeded ("NOT_STARTED").
STALE = "STALE"
# The run statuses whose latest execution reached the quality gate (and recorded its verdict).
GATED = {"SUCCEEDED", "REJECTED"}
NOT_STARTED = "NOT_STARTED"


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as text ("NaN", "Infinity", "-Infinity"): an old record may hold one,
    and JSON has no such number (readers print with ``allow_nan=False``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class Target:
    """Where the pipeline runs: clients (created on first use) plus the names of the stack's resources."""

    def __init__(
        self,
        client: Callable[..., Any],
        bucket: str,
        table_name: str,
        training_flow_arn: str,
        description: str,
        deployment_flow_arn: str = "",
        stack_name: str = "sfn-mlops",
        batch_flow_arn: str = "",
        batch_schedule: dict[str, str] | None = None,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.table_name = table_name
        self.training_flow_arn = training_flow_arn
        self.description = description
        self.deployment_flow_arn = deployment_flow_arn
        # Names the stack's SageMaker resources (endpoints, model package groups): the stack's RESOURCE_PREFIX.
        self.stack_name = stack_name
        self.batch_flow_arn = batch_flow_arn
        # What a pipeline's batch schedule invokes and runs as: {"target_arn", "role_arn", "dead_letter_arn"}.
        self.batch_schedule = batch_schedule or {}

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def sfn(self) -> Any:
        return self._client("stepfunctions")

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @cached_property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @cached_property
    def sts(self) -> Any:
        return self._client("sts")

    def client(self, service: str) -> Any:
        return self._client(service)

    @property
    def table(self) -> MetadataTable:
        return MetadataTable(self.dynamodb, self.table_name)

    @classmethod
    def from_clients(
        cls,
        client: Callable[..., Any],
        bucket: str,
        table_name: str,
        training_flow_arn: str,
        description: str,
        deployment_flow_arn: str = "",
        stack_name: str = "sfn-mlops",
        batch_flow_arn: str = "",
        batch_schedule: dict[str, str] | None = None,
    ) -> Target:
        """One client factory (a boto3 session's, the local service's, or the in-process runtime's)."""
        return cls(
            client,
            bucket,
            table_name,
            training_flow_arn,
            description,
            deployment_flow_arn,
            stack_name,
            batch_flow_arn,
            batch_schedule,
        )

    @classmethod
    def for_local_service(cls, info: Any, description: str | None = None) -> Target:
        """A client of the local service ``info`` describes: its endpoint and the template's resource names."""
        from sfn_mlops_local.local import client

        names = info.resources
        stack = names.get("AWS::StackName", "sfn-mlops-local")
        return cls(
            client.client_factory(info),
            names["ArtifactBucket"],
            names["MetadataTable"],
            names["TrainingFlow"],
            description or f"local service {info.endpoint}",
            names.get("DeploymentFlow", ""),
            stack,
            names.get("BatchFlow", ""),
            cls.local_batch_schedule(stack),
        )

    @staticmethod
    def local_batch_schedule(stack: str) -> dict[str, str]:
        """What a local stack's batch schedules invoke and run as: named as the local runtime names resources
        (as CloudFormation would; template.py's physical ids)."""
        from sfn_mlops_local.local.template import ACCOUNT, PARTITION, REGION

        return {
            "target_arn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{stack}-TriggerFunction",
            "role_arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{stack}-BatchScheduleRole",
            "dead_letter_arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{stack}-TriggerDeadLetterQueue",
        }


def pipeline_dir(root: Path, pipeline: str) -> Path:
    folder = root / "models" / pipeline
    if not (folder / "pipeline.json").exists():
        known = sorted(p.parent.name for p in (root / "models").glob("*/pipeline.json"))
        raise NotFound(f"unknown pipeline {pipeline!r}: no models/{pipeline}/pipeline.json (known: {', '.join(known)})")
    return folder


def publish_pipeline(target: Target, folder: Path) -> PipelineConfig:
    """Validate the pipeline folder and upload its config and scripts to pipelines/<name>/."""
    from sfn_mlops.pipeline import parse_pipeline_config

    config = parse_pipeline_config((folder / "pipeline.json").read_bytes(), source=str(folder / "pipeline.json"))
    if config.name != folder.name:
        raise BadArgument(f"{folder}/pipeline.json names pipeline {config.name!r}; the folder is {folder.name!r}")
    scripts = {config.preprocess.script, config.evaluate.script, config.registration.inference_script}
    for script in sorted(scripts):
        path = folder / script
        if not path.is_file():
            raise BadArgument(f"pipeline {config.name}: script {script} does not exist in {folder}")
        target.s3.put_object(Bucket=target.bucket, Key=f"pipelines/{config.name}/{script}", Body=path.read_bytes())
    target.s3.put_object(
        Bucket=target.bucket,
        Key=f"pipelines/{config.name}/pipeline.json",
        Body=config.model_dump_json(indent=2, by_alias=True).encode(),
    )
    if target.batch_schedule:
        from sfn_mlops_local.pipeline_schedules import put_pipeline_schedules

        put_pipeline_schedules(target, config)
    return config


def upload_dataset(target: Target, pipeline: str, data_file: Path) -> tuple[str, str | None]:
    key = f"data/{pipeline}/{data_file.name}"
    with data_file.open("rb") as body:
        # A SHA-256 checksum makes the object's content part of its identity (fingerprints, cache).
        response = target.s3.put_object(Bucket=target.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    return key, response.get("VersionId")


def find_run_for_upload(target: Target, key: str, version_id: str | None, timeout: float = 60) -> tuple[str, str]:
    """The trigger starts the flow asynchronously; its dedup record names the run (one GetItem a poll), whose
    execution is named after it. Without a version id, look for the execution whose input is this object."""
    deadline = time.monotonic() + timeout
    executions = target.training_flow_arn.replace(":stateMachine:", ":execution:", 1)
    delay = 0.02
    while time.monotonic() < deadline:
        if version_id is not None:
            run_id = target.table.trigger_run_id(f"s3://{target.bucket}/{key}#{version_id}")
            if run_id is not None:
                with contextlib.suppress(target.sfn.exceptions.ExecutionDoesNotExist):
                    target.sfn.describe_execution(executionArn=f"{executions}:{run_id}")
                    return run_id, f"{executions}:{run_id}"
        else:
            page = target.sfn.list_executions(stateMachineArn=target.training_flow_arn, maxResults=50)
            for execution in page["executions"]:
                described = target.sfn.describe_execution(executionArn=execution["executionArn"])
                dataset = (json.loads(described.get("input") or "{}")).get("dataset") or {}
                if dataset.get("key") == key:
                    return str(json.loads(described["input"])["run_id"]), execution["executionArn"]
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)  # the trigger is usually there within tens of milliseconds
    raise SystemExit(f"no run started for s3://{target.bucket}/{key} within {timeout:.0f}s: is the trigger wired?")


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(end) - parse(start)).total_seconds(), 3)


def _console_input(executor_input: Any) -> dict[str, Any] | None:
    """The recorded executor input, forced, and no longer tied to the job flow execution that started it."""
    if not isinstance(executor_input, dict):
        return None
    given = {k: v for k, v in executor_input.items() if k != "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"}
    return {**given, "policy": FORCE}


def _unit_image(name: str, record: dict[str, Any]) -> str | None:
    """The container image a job unit's SageMaker job ran (the ImageUri its request named, from the unit's planned
    config); None for the units that run no job of their own (register, a batch's check, a Lambda's)."""
    from sfn_mlops.naming import JOB_UNITS

    if name not in JOB_UNITS:
        return None
    config = (record.get("inputs") or {}).get("config")
    image = config.get("image_uri") if isinstance(config, dict) else None
    return image if isinstance(image, str) else None


def _unit_view(
    name: str, record: dict[str, Any] | None, result: dict[str, Any] | None, not_run: bool = False
) -> dict[str, Any]:
    """One unit as scripts see it. ``result`` is what the run's latest flow execution did with the unit
    (SKIPPED, CACHED, SUCCEEDED...), which the unit's own record cannot say for a skipped unit. ``not_run``: that
    execution ended without running the unit (it failed or stopped before it), so the record is an earlier
    execution's: STALE if that one succeeded, else NOT_STARTED (``recorded_status`` keeps the record's word)."""
    if record is None:
        return {"name": name, "status": NOT_STARTED, "attempt": 0, "duration_s": None, "image": None}
    executor_input = record.get("executor_input")
    status: str | None
    if not_run:
        status = STALE if record.get("status") in DONE_STATUSES else NOT_STARTED
    else:
        status = (result or {}).get("status") or record.get("status")
    earlier = status in (STALE, NOT_STARTED)
    view = {
        "name": name,
        "status": status,
        "recorded_status": record.get("status"),  # the unit's own record; ``status`` is what the last flow did
        "attempt": record.get("attempt", 0),
        "duration_s": None
        if status == "SKIPPED" or earlier
        else _seconds_between(record.get("started_at"), record.get("finished_at")),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "fingerprint": record.get("fingerprint"),
        "cached_from": record.get("cached_from") if status == "CACHED" else None,
        "executor_execution_arn": record.get("executor_execution_arn"),
        "worker_execution_arn": record.get("worker_execution_arn"),
        "job_name": (record.get("outputs") or {}).get("job_name"),
        "image": _unit_image(name, record),
        "outputs": record.get("outputs"),
        # (an earlier execution's error is not this one's)
        "error": {"error": record["error"], "cause": record.get("cause")}
        if record.get("error") and not earlier
        else None,
        # What the executor was started with; started again with "policy": "force" it reruns this unit
        # (Step Functions console: executor > New execution > paste console_rerun_input).
        "executor_input": executor_input,
        "console_rerun_input": _console_input(executor_input),
    }
    return view


def run_summary(target: Target, run_id: str) -> dict[str, Any]:
    """The JSON object scripts read: run_id, pipeline, status, units (in flow order), metrics, package, error."""
    run = target.table.get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r} in {target.table_name}")
    finished = run.get("status") in TERMINAL_RUN_STATUSES
    recorded_results = run.get("unit_results") if finished else None
    results = recorded_results if isinstance(recorded_results, dict) else {}
    training = (run.get("kind") or "training") == "training"
    # A finished training run's results name every unit its latest execution ran (SKIPPED and CACHED included):
    # any other unit's record is an earlier execution's, out of date with the run (records without results
    # are older than them: their units' own records are all there is).
    # (the unit it failed in ran too: a failure leaves no result)
    judged = training and isinstance(recorded_results, dict)
    error = run.get("error") if run.get("status") == "FAILED" else None
    failed_in = (error or {}).get("unit") if isinstance(error, dict) else None
    units = [
        _unit_view(name, run["units"].get(name), results.get(name), not_run=judged and name not in results)
        if name != failed_in
        else _unit_view(name, run["units"].get(name), None)
        for name in run.get("unit_order") or sorted(run["units"])
    ]
    metrics, package = _outcome(run)
    batch = (
        {"drift": run.get("drift"), "output_uri": run.get("output_uri"), "rows_scored": run.get("rows_scored")}
        if run.get("kind") == "batch"
        else {}
    )
    summary = {
        **batch,
        "run_id": run_id,
        "kind": run.get("kind") or "training",
        "pipeline": run.get("pipeline"),
        "status": run.get("status"),
        "run_attempt": run.get("run_attempt"),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "duration_s": _seconds_between(run.get("started_at"), run.get("finished_at")),
        "dataset": run.get("dataset"),
        "overrides": run.get("overrides") or {},
        "scope": run.get("scope") or {},
        "flow_execution_arn": run.get("flow_execution_arn"),
        "units": units,
        "metrics": metrics,
        "gate": run.get("gate"),
        # The gate's verdict when the latest execution reached it (SUCCEEDED, REJECTED), not an earlier one's
        "gate_verdict": run.get("gate_verdict") if not training or run.get("status") in GATED else None,
        "model_package_arn": package,
        "error": error,
    }
    return dict(json_safe(summary))


def _outcome(run: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A run's metrics and model package as its latest execution left them. A training run has a package only
    when that execution's gate accepted one (it ended SUCCEEDED: registered, or its registration reused as
    recorded), and metrics only when that execution's gate judged them (SUCCEEDED, or REJECTED: the flow records
    the rejected model's metrics). A FAILED or PARTIAL rerun, or one still running, keeps an earlier execution's
    in its record, which the current config did not produce. A batch or deployment names the package it used."""
    if (run.get("kind") or "training") != "training":
        return run.get("metrics") or {}, run.get("model_package_arn")
    status = run.get("status")
    metrics = (run.get("metrics") or {}) if status in GATED else None
    return metrics, run.get("model_package_arn") if status == "SUCCEEDED" else None


def list_runs(target: Target, pipeline: str, limit: int = 20) -> list[dict[str, Any]]:
    """A pipeline's runs, newest first, from one Query of the pipeline index: what to pass to ``rerun``."""
    runs = []
    for run in target.table.list_runs(pipeline, limit=limit):
        dataset = run.get("dataset") or {}
        metrics, package = _outcome(run)
        runs.append(
            {
                "run_id": run["PK"].split("#", 1)[1],
                "kind": run.get("kind") or "training",
                "status": run.get("status"),
                "run_attempt": run.get("run_attempt"),
                "started_at": run.get("started_at"),
                "finished_at": run.get("finished_at"),
                "dataset": {"uri": dataset.get("uri"), "version": dataset.get("version")},
                "metrics": metrics,
                "gate": run.get("gate"),
                "model_package_arn": package,
                "overrides": run.get("overrides") or {},
            }
        )
    return list(json_safe(runs))


def start_rerun(target: Target, run_id: str, options: RerunOptions, unset: tuple[str, ...] = ()) -> str:
    """Start the job flow again for a recorded run; the flow skips, forces or reuses units as asked.

    ``unset``: overrides the run carries from an earlier --set to drop (the run's record loses them before the
    flow starts). Everything is checked first, the config with its overrides included, so a bad --set never
    reaches the run's record."""
    from sfn_mlops.rerun import apply_overrides, refuse_set_and_unset, unit_policies, without_unset

    run = target.table.get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r} in {target.table_name}: see 'mlops status' for runs")
    if run.get("kind") in ("deployment", "batch") and (options.overrides or unset):
        flag = "--set" if options.overrides else "--unset"
        how = (
            "a deployment reruns as it was planned; change the pipeline's deploy section and deploy again"
            if run.get("kind") == "deployment"
            else "a batch reruns as it was planned; start a new batch"
        )
        raise BadArgument(f"cannot rerun {run_id} with {flag}: {how}")
    if run.get("kind") == "deployment":
        from sfn_mlops_local.deployments import start_deployment_rerun

        return start_deployment_rerun(target, run, options.model_dump(by_alias=True, exclude_defaults=True))
    if run.get("kind") == "batch":
        from sfn_mlops_local.batch_operations import start_batch_rerun

        return start_batch_rerun(target, run, options.model_dump(by_alias=True, exclude_defaults=True))
    # No check that the run is idle: as on AWS, the executor's unit lock decides. A rerun beside a running
    # execution of the same run fails fast with UnitAlreadyRunning at the first unit the other one holds.
    # A run that failed before it was planned has only the input its flow was started with.
    started_with = json.loads(run["flow_input"]) if isinstance(run.get("flow_input"), str) else {}
    pipeline = run.get("pipeline") or started_with.get("pipeline")
    if not pipeline:
        raise SystemExit(f"run {run_id} has no recorded pipeline or input to rerun: start a new run")
    recorded = dict(run.get("overrides") or {})
    try:  # fail here, before starting anything, with the same checks the planner makes
        if not run.get("unit_order") and (options.from_unit or options.only):
            raise InvalidRerun(
                "it failed before it was planned, so it has no units yet: rerun it without --from/--only"
            )
        unit_policies(run.get("unit_order") or [], options, run["units"])
        refuse_set_and_unset(options.overrides, unset)
        kept = without_unset(recorded, unset, run_id)
        merged = {**kept, **options.overrides}
        config = _rerun_config(target, pipeline, run_id) if merged else None
        if config is not None:
            earlier = [key for key in kept if key not in options.overrides]
            apply_overrides(config, merged, source=pipeline, earlier=earlier, run_id=run_id)
    except InvalidRerun as exc:
        raise BadArgument(f"cannot rerun {run_id}: {exc}") from exc
    if unset and not target.table.replace_overrides(run_id, kept, expected=recorded):
        raise Refused(
            f"cannot rerun {run_id}: it is running, or its overrides changed meanwhile (see mlops status {run_id})"
        )
    dataset = run.get("dataset") or started_with.get("dataset") or {}
    flow_input: dict[str, Any] = {
        "pipeline": pipeline,
        "run_id": run_id,
        "dataset": {
            "bucket": dataset.get("bucket"),
            "key": dataset.get("key"),
            "version_id": dataset.get("version_id"),
        },
    }
    rerun = options.model_dump(by_alias=True, exclude_defaults=True)
    if rerun:
        flow_input["rerun"] = rerun
    # Unique per start: two reruns started at once are two executions (not one idempotent start).
    name = f"{run_id}-r{int(run.get('run_attempt') or 0) + 1}-{uuid.uuid4().hex[:8]}"
    response = target.sfn.start_execution(
        stateMachineArn=target.training_flow_arn, name=name, input=json.dumps(flow_input)
    )
    return str(response["executionArn"])


def _rerun_config(target: Target, pipeline: str, run_id: str) -> PipelineConfig | None:
    """The config a rerun starts from: the run's pinned copy, else (planning never pinned it) the published one
    the planner would pin; None if neither is there (the planner then fails the run readably)."""
    from sfn_mlops.pipeline import parse_pipeline_config

    for key in (f"runs/{pipeline}/{run_id}/code/pipeline.json", f"pipelines/{pipeline}/pipeline.json"):
        with contextlib.suppress(target.s3.exceptions.NoSuchKey):
            body = target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
            try:
                return parse_pipeline_config(body, source=f"s3://{target.bucket}/{key}")
            except InvalidPipelineConfig as exc:
                raise SystemExit(f"cannot rerun {run_id}: {exc}") from exc
    return None


# Following a run, its records are read at least this often while nothing moves (its end is seen at once).
PROGRESS_POLL_MAX_S = 0.4


def follow_run(
    target: Target,
    run_id: str,
    execution_arn: str,
    on_change: Callable[[dict[str, Any]], None],
    timeout: float = 3600,
    poll_s: float = 0.1,
) -> dict[str, Any]:
    """Poll until the flow execution ends, reporting each change of the run's units.

    The execution's status is read every ``poll_s`` (its end is noticed at once). The run's records are read
    through a projected Query that says whether anything moved, every ``poll_s`` after a change and less often
    (up to ``PROGRESS_POLL_MAX_S``) while nothing does; the whole run only when something moved or at the end.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    progress: Any = None
    summary: dict[str, Any] | None = None
    progress_every = poll_s
    next_progress = 0.0
    while True:
        described = target.sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        ended = status in FLOW_TERMINAL
        if ended or time.monotonic() >= next_progress:
            moved = None if ended else target.table.run_progress(run_id)
            progress_every = poll_s if moved != progress else min(PROGRESS_POLL_MAX_S, progress_every * 2)
            next_progress = time.monotonic() + progress_every
            if ended or moved != progress:
                progress = moved
                try:
                    summary = run_summary(target, run_id)
                except SystemExit:
                    summary = None
        if summary is not None:
            fingerprint = [(u["name"], u["status"], u["attempt"]) for u in summary["units"]] + [summary["status"]]
            if fingerprint != last:
                last = fingerprint
                on_change(summary)
        # The run's outcome is this execution's when it recorded it (it stamps the run with its ARN).
        ours = summary is not None and summary.get("flow_execution_arn") == execution_arn
        if status in FLOW_TERMINAL and summary is not None and ours and summary["status"] in TERMINAL_RUN_STATUSES:
            return summary
        if status in FLOW_TERMINAL:
            # This execution ended without recording the run's outcome: it lost a unit to another execution
            # of the run (UnitAlreadyRunning; that one records the outcome), or it was stopped or broke.
            final = summary or {"run_id": run_id, "units": [], "metrics": {}, "model_package_arn": None}
            held = next((u["name"] for u in final.get("units", []) if u.get("recorded_status") == "RUNNING"), None)
            error = {
                "unit": held,
                "error": described.get("error") or f"States.{status}",
                "cause": described.get("cause") or f"the flow execution {execution_arn} ended {status}",
            }
            return {**final, "status": "FAILED" if status != "SUCCEEDED" else final["status"], "error": error}
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not finish within {timeout:.0f}s")
        time.sleep(poll_s)
