"""``mlops``: run pipelines and inspect runs, on the embedded local runtime (default) or a deployed stack."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

# botocore and s3transfer import two optional accelerators when they are installed (awscrt, ~80 ms, for
# SigV4a and CRT transfers; pyOpenSSL through urllib3.contrib, ~100 ms). `mlops` uses neither: TLS goes
# through the ssl module, as in AWS Lambda's Python runtime, which ships neither. Skipping them makes every
# command start ~0.17 s sooner (bench/orchestration_overhead.py measures read-only commands).
for _optional in ("awscrt", "OpenSSL"):
    sys.modules.setdefault(_optional, None)  # type: ignore[arg-type]  # None: "not installed", per importlib

from rich.console import Console  # noqa: E402

from sfn_mlops_local import operations  # noqa: E402
from sfn_mlops_local.cli_errors import (  # noqa: E402
    BadArgument,
    Interrupted,
    NotFound,
    OneLineParser,
    pipeline_name,
    port_number,
    positive_int,
)
from sfn_mlops_local.cli_output import make_console, say_on_stderr  # noqa: E402
from sfn_mlops_local.local.client import project_root  # noqa: E402
from sfn_mlops_local.operations import Target  # noqa: E402

if TYPE_CHECKING:
    from rich.tree import Tree

STATUS_STYLE = {
    "SUCCEEDED": "green",
    "PARTIAL": "yellow",
    "FAILED": "red",
    "REJECTED": "yellow",
    "RUNNING": "cyan",
    "SKIPPED": "dim",
    "CACHED": "blue",
    "NOT_STARTED": "dim",
    "STALE": "magenta",
}


class LocalHandle:
    """What only the local service can do for a command: inject a fault (``--fail-at``)."""

    def __init__(self, info: Any) -> None:
        self.info = info

    def fail_unit(self, unit: str) -> None:
        from sfn_mlops_local.local import client

        client.request(self.info, "POST", "faults", {"unit": unit})


@contextmanager
def local_target(args: argparse.Namespace) -> Iterator[tuple[Target, Any]]:
    from sfn_mlops_local.local import client

    info = client.ensure(client.default_state_dir(), say_on_stderr)
    target = Target.for_local_service(info)
    yield target, LocalHandle(info)


@contextmanager
def aws_target(args: argparse.Namespace) -> Iterator[tuple[Target, Any]]:
    from sfn_mlops_local.model_cache import session as cached_session

    session = cached_session(profile_name=args.profile, region_name=args.region)
    stacks = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    target = Target.from_clients(
        session.client,
        bucket=outputs["ArtifactBucketName"],
        table_name=outputs["MetadataTableName"],
        training_flow_arn=outputs["TrainingFlowArn"],
        description=f"stack {args.stack}",
        deployment_flow_arn=outputs.get("DeploymentFlowArn", ""),
        stack_name=args.stack,
        batch_flow_arn=outputs.get("BatchFlowArn", ""),
        batch_schedule={
            "target_arn": outputs.get("TriggerFunctionArn", ""),
            "role_arn": outputs.get("BatchScheduleRoleArn", ""),
            "dead_letter_arn": outputs.get("TriggerDeadLetterQueueArn", ""),
        }
        if outputs.get("BatchScheduleRoleArn")
        else None,
    )
    yield target, None


def target_for(args: argparse.Namespace) -> Any:
    return aws_target(args) if args.stack else local_target(args)


def _styled(status: str | None) -> str:
    status = status or "?"
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def render_tree(summary: dict[str, Any]) -> Tree:
    from rich.tree import Tree

    tree = Tree(
        f"[bold]run {summary['run_id']}[/] ({summary.get('pipeline')}) {_styled(summary['status'])}"
        f"  [dim]job flow {summary.get('flow_execution_arn') or ''}[/]"
    )
    for unit in summary.get("units", []):
        duration = f" {unit['duration_s']:.1f}s" if unit.get("duration_s") is not None else ""
        # A cache hit is no attempt of this run: the line below it names the run whose outputs it reused.
        attempt = "" if not unit.get("attempt") else f" attempt {unit['attempt']}{duration}"
        node = tree.add(f"{unit['name']:<10} {_styled(unit['status'])}{attempt}")
        if unit.get("executor_execution_arn"):
            executor = node.add(f"[dim]executor[/] {unit['executor_execution_arn'].rsplit(':', 1)[-1]}")
            if unit.get("worker_execution_arn"):
                worker = executor.add(f"[dim]worker[/] {unit['worker_execution_arn'].rsplit(':', 1)[-1]}")
                if unit.get("job_name"):
                    worker.add(f"[dim]SageMaker job[/] {unit['job_name']}")
        if unit.get("cached_from"):
            source = unit["cached_from"]
            node.add(f"[blue]outputs reused from run {source.get('run_id')} (attempt {source.get('attempt')})[/]")
        if unit["status"] == "STALE":
            node.add("[magenta]out of date: an earlier execution's outputs; the latest did not run it[/]")
        if unit.get("error") and unit["status"] not in ("SUCCEEDED", "SKIPPED", "CACHED"):
            node.add(f"[red]{unit['error']['error']}[/]: {unit['error']['cause']}")
    if summary.get("overrides"):
        sets = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(summary["overrides"].items()))
        tree.add(f"overrides (from --set; drop one with --unset KEY) {sets}")
    if summary.get("metrics"):
        tree.add("metrics " + ", ".join(f"{k}={_number(v, '.4f')}" for k, v in summary["metrics"].items()))
    verdict = summary.get("gate_verdict") or {}
    if verdict.get("reasons"):
        gate = tree.add(f"quality gate {'[green]passed[/]' if verdict.get('passed') else '[yellow]rejected[/]'}")
        for reason in verdict["reasons"]:
            gate.add(reason)
    if summary.get("model_package_arn"):
        tree.add(f"model package {summary['model_package_arn']}")
    if summary.get("kind") == "batch":
        from sfn_mlops_local.cli_batch import add_batch_lines

        add_batch_lines(tree, summary)
    if summary.get("error"):
        err = summary["error"]
        tree.add(f"[red]error in {err.get('unit')}: {err.get('error')}[/]: {err.get('cause')}")
    return tree


def _number(value: Any, spec: str) -> str:
    """A number as ``spec`` formats it; anything else (e.g. "NaN" from an old record) as it is."""
    return format(value, spec) if isinstance(value, int | float) else str(value)


def _json_line(value: Any) -> str:
    """One JSON object for scripts: valid JSON always (non-finite numbers read as text, see operations.json_safe)."""
    return json.dumps(operations.json_safe(value), default=str, allow_nan=False)


def _public(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        **summary,
        "units": [{k: v for k, v in u.items() if k != "outputs"} for u in summary.get("units", [])],
    }


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    with target_for(args) as (target, runtime):
        folder = operations.pipeline_dir(project_root(), args.pipeline)
        config = operations.publish_pipeline(target, folder)
        data_file = Path(args.data) if args.data else folder / config.data.sample_file
        if not data_file.is_file():
            raise NotFound(f"dataset {data_file} does not exist")
        if args.fail_at:
            if runtime is None:
                raise BadArgument("--fail-at injects a fault into the embedded local runtime; it cannot target a stack")
            runtime.fail_unit(args.fail_at)
        started = time.monotonic()
        key, version = operations.upload_dataset(target, args.pipeline, data_file)
        console.print(
            f"[bold]{args.pipeline}[/]: uploaded {data_file.name} to s3://{target.bucket}/{key} ({target.description})",
            soft_wrap=True,
        )
        run_id, execution_arn = operations.find_run_for_upload(target, key, version)
        console.print(f"run {run_id} started by the upload trigger")
        summary = _follow(args, target, console, run_id, execution_arn, started)
    return _finish(args, summary)


def _progress_line(unit: dict[str, Any]) -> str:
    status = unit["status"]
    if status == "SKIPPED":
        # attempt 0: the unit's recorded success is itself a cache hit from another run
        reused = f"attempt {unit['attempt']}'s" if unit["attempt"] else "its cached"
        return f"{_styled(status)} ({reused} outputs reused)"
    if status == "CACHED":
        source = unit.get("cached_from") or {}
        return f"{_styled(status)} (outputs of run {source.get('run_id')} attempt {source.get('attempt')})"
    took = f" in {unit['duration_s']:.1f}s" if unit.get("duration_s") is not None else ""
    job = f" job {unit['job_name']}" if unit.get("job_name") else ""
    return f"{_styled(status)} (attempt {unit['attempt']}){took}{job}"


def _follow(
    args: argparse.Namespace,
    target: Target,
    console: Console,
    run_id: str,
    execution_arn: str,
    started: float,
    before: dict[str, Any] | None = None,
    show_tree: bool = True,
) -> dict[str, Any]:
    """Print each unit's progress through the three tiers as it changes, then the run as a tree.

    ``before`` is the run as recorded before a rerun started: its units' old records are not news.
    A skipped unit writes nothing (one read is all it costs), so it is reported as skipped once a unit
    after it moves, and confirmed by the flow's own result at the end."""

    def recorded(unit: dict[str, Any]) -> tuple[str, int]:
        return unit.get("recorded_status") or unit["status"], unit["attempt"]

    baseline = {u["name"]: recorded(u) for u in (before or {}).get("units", [])}
    reported: dict[str, tuple[str, int]] = {}

    def report(unit: dict[str, Any]) -> None:
        reported[unit["name"]] = (unit["status"], unit["attempt"])
        console.print(
            f"  [dim]{time.monotonic() - started:6.1f}s[/] job flow > executor > worker  "
            f"{unit['name']:<10} {_progress_line(unit)}",
            soft_wrap=True,  # one line per event: the terminal wraps it, rich does not break it at 80 columns
        )

    def moved(unit: dict[str, Any]) -> bool:
        return unit["status"] != "NOT_STARTED" and recorded(unit) != baseline.get(unit["name"])

    def on_change(summary: dict[str, Any]) -> None:
        units = summary["units"]
        first_moved = next((i for i, u in enumerate(units) if moved(u)), None)
        for i, unit in enumerate(units):
            if reported.get(unit["name"]) in ((unit["status"], unit["attempt"]), ("SKIPPED", unit["attempt"])):
                continue
            if moved(unit):
                report(unit)
            elif first_moved is not None and i < first_moved and unit["status"] in ("SUCCEEDED", "CACHED"):
                report({**unit, "status": "SKIPPED"})  # a later unit moved: this one was not redone

    try:
        summary = operations.follow_run(target, run_id, execution_arn, on_change)
    except KeyboardInterrupt:  # Ctrl-C stops following, not the run (it goes on in the service or on AWS)
        where = f" --stack {args.stack}" if args.stack else ""
        raise Interrupted(
            f"stopped following run {run_id}; it goes on ({target.description}). "
            f"Follow it again: mlops status {run_id}{where}"
        ) from None
    for unit in summary.get("units", []):  # the flow's own word on what it skipped, cached or failed
        final = (unit["status"], unit["attempt"])
        if reported.get(unit["name"]) != final and (unit["status"] in ("SKIPPED", "CACHED", "FAILED") or moved(unit)):
            report(unit)
    if show_tree:
        console.print(render_tree(summary))
    return summary


def _finish(args: argparse.Namespace, summary: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(_public(summary), default=str))
    if summary["status"] in ("SUCCEEDED", "REJECTED", "PARTIAL"):
        return 0
    from sfn_mlops_local import cli_failures

    return cli_failures.report_failed_run(args, summary)


def cmd_rerun(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import parse_override, parse_rerun, parse_unset, refuse_set_and_unset

    try:
        overrides = dict(parse_override(item) for item in args.set or [])
        unset = tuple(dict.fromkeys(parse_unset(key) for key in args.unset or []))
        refuse_set_and_unset(overrides, unset)
        options = parse_rerun({"from": args.from_unit, "only": args.only, "overrides": overrides})
    except InvalidRerun as exc:
        raise BadArgument(str(exc)) from exc
    with target_for(args) as (target, _runtime):
        started = time.monotonic()
        before = operations.run_summary(target, args.run_id)
        execution_arn = operations.start_rerun(target, args.run_id, options, unset)
        scope = (
            f" --from {options.from_unit}" if options.from_unit else f" --only {options.only}" if options.only else ""
        )
        sets = "".join(f" --set {k}={json.dumps(v)}" for k, v in overrides.items())
        sets += "".join(f" --unset {key}" for key in unset)
        console.print(f"rerun of {args.run_id}{scope}{sets} started ({target.description})", soft_wrap=True)
        if (before.get("kind") or "") == "deployment":
            from sfn_mlops_local import cli_serving

            return cli_serving.finish_deployment(args, target, console, args.run_id, execution_arn, started, before)
        summary = _follow(args, target, console, args.run_id, execution_arn, started, before)
    return _finish(args, summary)


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    with target_for(args) as (target, _runtime):
        if args.run_id:
            summary = operations.run_summary(target, args.run_id)
        else:
            runs = target.table.list_runs(args.pipeline, limit=1)
            if not runs:
                raise SystemExit(f"no runs of pipeline {args.pipeline!r} yet")
            summary = operations.run_summary(target, runs[0]["PK"].split("#", 1)[1])
    console.print(render_tree(summary))
    if args.json:
        print(_json_line(summary if args.full else _public(summary)))
    return 0


def cmd_runs(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    with target_for(args) as (target, _runtime):
        runs = operations.list_runs(target, args.pipeline, limit=args.limit)
    table = Table(
        title=f"runs of {args.pipeline}, newest first (times UTC)", title_justify="left", box=None, pad_edge=False
    )
    for column in ("run id", "kind", "status", "started", "tries", "metric", "package"):
        table.add_column(column, no_wrap=column in ("run id", "status", "started"))
    for run in runs:
        gate = run.get("gate") or {}
        # (no metrics: the latest execution's gate accepted no package)
        value = (run["metrics"] or {}).get(gate.get("metric"))
        table.add_row(
            run["run_id"],
            run["kind"],
            _styled(run["status"]),
            (run["started_at"] or "")[5:16].replace("T", " "),
            str(run["run_attempt"] or ""),
            f"{gate['metric']} {_number(value, '.4g')}" if value is not None else "",
            "v" + run["model_package_arn"].rsplit("/", 1)[-1] if run["model_package_arn"] else "",
        )
    if runs:
        console.print(table)
    else:
        console.print(f"no runs of pipeline {args.pipeline!r} yet")
    if args.json:
        print(_json_line({"pipeline": args.pipeline, "runs": runs}))
    return 0


def _lineage_tree(answer: dict[str, Any], title: str) -> Tree:
    from rich.tree import Tree

    tree = Tree(f"[bold]{title}[/]")
    for run in answer.get("runs", []):
        status = f" {_styled(run['status'])}" if run.get("status") else ""
        cached = " [blue](preprocess cached)[/]" if run.get("cached_from") else ""
        tree.add(f"run {run['run_id']} on version {run['version']}{status}{cached}")
    for derived in answer.get("derived_datasets", []):
        tree.add(f"[dim]derived[/] {derived['uri']} (run {derived['run_id']})")
    for package in answer.get("model_packages", []):
        tree.add(
            f"model package {package['model_package_arn']} (run {package['run_id']}, version {package['version']})"
        )
    for dataset in answer.get("datasets", []):
        tree.add(f"dataset {dataset['uri']} version {dataset['version']}")
    for reuse in answer.get("reused", []):
        tree.add(f"[blue]{reuse['unit']} reused from run {reuse['run_id']} (attempt {reuse.get('attempt')})[/]")
    if answer.get("metrics"):
        tree.add("metrics " + ", ".join(f"{k}={v:.4f}" for k, v in answer["metrics"].items()))
    for approval in answer.get("approvals", []):
        tree.add(f"{approval.get('status')} by {approval.get('by')} at {approval.get('at')}: {approval.get('reason')}")
    for output in answer.get("batch_outputs", []):
        tree.add(f"batch {output['run_id']}: {output.get('rows_scored')} rows scored to {output.get('output_uri')}")
    for span in [*answer.get("served_by", []), *answer.get("endpoints", [])]:
        until = f"until {span['to']}" if span.get("to") else "[green]serving now[/]"
        tree.add(f"endpoint {span['endpoint_name']} ({span.get('stage')}) from {span.get('from')} {until}")
    return tree


def cmd_lineage(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops.errors import LineageNotFound
    from sfn_mlops.lineage import dataset_lineage, model_lineage

    with target_for(args) as (target, _runtime):
        try:
            if args.kind == "model":
                answer = model_lineage(target.table, args.ref)
                title = f"model package {args.ref}: run {answer['run_id']}"
            else:
                answer = dataset_lineage(target.table, args.ref, args.version)
                title = f"dataset {args.ref}"
        except LineageNotFound as exc:
            raise NotFound(str(exc)) from exc
    console.print(_lineage_tree(answer, title))
    if args.json:
        print(_json_line(answer))
    return 0


def cmd_impact(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops.errors import LineageNotFound
    from sfn_mlops.lineage import impact

    with target_for(args) as (target, _runtime):
        try:
            answer = impact(target.table, args.uri, args.version)
        except LineageNotFound as exc:
            raise NotFound(str(exc)) from exc
    console.print(_lineage_tree(answer, f"affected if {args.uri} is bad"))
    if args.json:
        print(_json_line(answer))
    return 0


def cmd_publish(args: argparse.Namespace, console: Console) -> int:
    with target_for(args) as (target, _runtime):
        config = operations.publish_pipeline(target, operations.pipeline_dir(project_root(), args.pipeline))
    uri = f"s3://{target.bucket}/pipelines/{config.name}/"
    console.print(f"published pipeline {config.name} to {uri}")
    if args.json:
        print(json.dumps({"pipeline": config.name, "uri": uri}))
    return 0


def _local_status(state_dir: Path) -> dict[str, Any]:
    from sfn_mlops_local.local import client

    info = client.running(state_dir)
    if info is None:
        return {"running": False, "endpoint": None, "pid": None, "state_dir": str(state_dir)}
    return {"running": True, "endpoint": info.endpoint, "pid": info.pid, "state_dir": info.state_dir}


def cmd_local_start(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client

    state_dir = client.default_state_dir()
    info = client.running(state_dir)
    if info is not None:
        console.print(f"the local service is already running at {info.endpoint} (pid {info.pid})")
    else:
        info = client.start(state_dir)
        console.print(f"started the local service at {info.endpoint} (pid {info.pid}, state in {info.state_dir})")
    print(info.endpoint) if not args.json else print(json.dumps(_local_status(state_dir)))
    return 0


def cmd_local_serve(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client
    from sfn_mlops_local.local.service import serve

    state_dir = Path(args.state_dir).resolve() if args.state_dir else client.default_state_dir()

    def ready(endpoint: str) -> None:
        console.print(f"local service listening on {endpoint} (state in {state_dir}); Ctrl-C stops it")
        sys.stdout.flush()

    from sfn_mlops_local.local.service import ServiceCannotStart

    try:
        serve(None, state_dir, args.port, ready)
    except ServiceCannotStart as exc:
        raise SystemExit(f"mlops local serve: {exc}") from exc
    return 0


def cmd_local_stop(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client

    state_dir = client.default_state_dir()
    info = client.stop(state_dir)
    console.print(f"stopped the local service (pid {info.pid})" if info else "the local service is not running")
    if args.json:
        print(json.dumps({"stopped": info is not None, "pid": info.pid if info else None}))
    return 0


def cmd_local_status(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client

    status = _local_status(client.default_state_dir())
    if args.json:
        print(json.dumps(status))
    elif status["running"]:
        console.print(f"running at {status['endpoint']} (pid {status['pid']}, state in {status['state_dir']})")
    else:
        console.print(f"not running (state in {status['state_dir']}); any command starts it, or `mlops local start`")
    return 0


def cmd_local_endpoint(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client

    info = client.ensure(client.default_state_dir(), say_on_stderr)
    print(json.dumps({"endpoint": info.endpoint}) if args.json else info.endpoint)
    return 0


def cmd_local_fire(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client

    info = client.ensure(client.default_state_dir(), say_on_stderr)
    known = sorted(s["name"] for s in client.request(info, "GET", "schedules")["schedules"])
    if args.name not in known:
        raise NotFound(f"no schedule {args.name!r} (the schedules: {', '.join(known) or 'none'})")
    fired = client.request(info, "POST", f"schedules/{args.name}/fire", {"group": args.group}, timeout=300)
    outcome = "delivered" if fired.get("Ok") else f"failed: {fired.get('Error')}"
    console.print(f"schedule {args.name} fired for {fired.get('ScheduledTime')}: {outcome}", soft_wrap=True)
    if args.json:
        print(json.dumps(fired, default=str))
    return 0 if fired.get("Ok") else 1


def cmd_local_schedules(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.local import client

    info = client.ensure(client.default_state_dir(), say_on_stderr)
    schedules = client.request(info, "GET", "schedules")["schedules"]
    for schedule in schedules:
        console.print(f"{schedule['name']:<28} {schedule['state']:<9} {schedule['expression']}", soft_wrap=True)
    if args.json:
        print(json.dumps({"schedules": schedules}, default=str))
    return 0


def cmd_local_reset(args: argparse.Namespace, console: Console) -> int:
    import shutil

    from sfn_mlops_local.local import client
    from sfn_mlops_local.local.state import StateFormatError, is_state_folder

    state_dir = client.default_state_dir()
    own = (client.project_root() / ".mlops-local").resolve()  # the project's own folder (an older version's too)
    if state_dir != own and not is_state_folder(state_dir):  # MLOPS_LOCAL_STATE at some other folder: keep it
        raise StateFormatError(f"{state_dir} is not a local state folder made by sfn-mlops: not removed")
    if client.stop(state_dir):
        console.print("stopped the local service")
    shutil.rmtree(state_dir, ignore_errors=True)
    console.print(f"local state removed ({state_dir})")
    if args.json:
        print(json.dumps({"removed": str(state_dir)}))
    return 0


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="mlops", description=__doc__, epilog="Exit codes and the error format: docs/cli.md.")
    top.add_argument("--debug", action="store_true", help="on a failure, show the Python traceback too")
    common = OneLineParser(add_help=False)
    common.add_argument("--stack", help="deployed stack name (default: the embedded local runtime)")
    common.add_argument("--region", help="AWS region of the stack")
    common.add_argument("--profile", help="AWS profile")
    common.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="upload a dataset and follow the run it starts")
    run.add_argument("pipeline", type=pipeline_name)
    run.add_argument("--data", help="dataset file (default: the pipeline's bundled data)")
    run.add_argument(
        "--fail-at", metavar="UNIT", help="local runtime only: make this unit's work fail once (to try reruns)"
    )
    run.set_defaults(handler=cmd_run)
    rerun = sub.add_parser(
        "rerun", parents=[common], help="rerun a run: skip what succeeded, or --from/--only a unit, with --set"
    )
    rerun.add_argument("run_id")
    scope = rerun.add_mutually_exclusive_group()
    scope.add_argument("--from", dest="from_unit", metavar="UNIT", help="rerun this unit and everything after it")
    scope.add_argument("--only", metavar="UNIT", help="rerun just this unit, on its upstream's recorded outputs")
    rerun.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value for this run, e.g. train.hyperparameters.max_depth=4 or gate.threshold=2.5",
    )
    rerun.add_argument(
        "--unset",
        action="append",
        metavar="KEY",
        help="drop an override the run carries from an earlier --set (see mlops status RUN_ID), e.g. gate.threshold",
    )
    rerun.set_defaults(handler=cmd_rerun)
    status = sub.add_parser("status", parents=[common], help="show a run as a tree (default: the latest)")
    status.add_argument("run_id", nargs="?")
    status.add_argument("--pipeline", default="abalone", help="pipeline whose latest run to show")
    status.add_argument("--full", action="store_true", help="include each unit's outputs in --json")
    status.set_defaults(handler=cmd_status)
    runs = sub.add_parser("runs", parents=[common], help="a pipeline's runs, newest first")
    runs.add_argument("pipeline", nargs="?", default="abalone", type=pipeline_name)
    runs.add_argument("--limit", type=positive_int, default=20, help="how many runs (default 20)")
    runs.set_defaults(handler=cmd_runs)
    lineage = sub.add_parser("lineage", parents=[common], help="which data made a model, which models came from data")
    lineage.add_argument("kind", choices=["dataset", "model"])
    lineage.add_argument("ref", help="dataset S3 URI (s3://bucket/key) or model package ARN")
    lineage.add_argument("--version", help="one dataset version (S3 version id or ETag)")
    lineage.set_defaults(handler=cmd_lineage)
    impact = sub.add_parser("impact", parents=[common], help="everything downstream of a dataset")
    impact.add_argument("uri", help="dataset S3 URI (s3://bucket/key)")
    impact.add_argument("--version", help="one dataset version (S3 version id or ETag)")
    impact.set_defaults(handler=cmd_impact)
    publish = sub.add_parser("publish", parents=[common], help="upload a pipeline's config and scripts")
    publish.add_argument("pipeline", type=pipeline_name)
    publish.set_defaults(handler=cmd_publish)
    from sfn_mlops_local import cli_serving

    cli_serving.add_commands(sub, common)
    from sfn_mlops_local import cli_batch

    cli_batch.add_commands(sub, common)
    from sfn_mlops_local import cli_contract  # mlops contract show/update

    cli_contract.add_commands(sub, common)
    from sfn_mlops_local import cli_report

    cli_report.add_commands(sub, common)
    from sfn_mlops_local import cli_changed  # mlops changed

    cli_changed.add_commands(sub, common)
    local = sub.add_parser("local", help="manage the local service (the embedded runtime on 127.0.0.1)")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    json_flag = OneLineParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    start = local_sub.add_parser("start", parents=[json_flag], help="start the service in the background")
    start.set_defaults(handler=cmd_local_start)
    serve = local_sub.add_parser("serve", help="run the service in the foreground (Ctrl-C stops it)")
    serve.add_argument("--port", type=port_number, default=0, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--state-dir", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_local_serve)
    stop = local_sub.add_parser(
        "stop", parents=[json_flag], help="stop the service (in-flight work gets a moment to finish)"
    )
    stop.set_defaults(handler=cmd_local_stop)
    status = local_sub.add_parser("status", parents=[json_flag], help="is it running, where, with which state")
    status.set_defaults(handler=cmd_local_status)
    endpoint = local_sub.add_parser(
        "endpoint", parents=[json_flag], help="print the endpoint URL (starts the service if needed)"
    )
    endpoint.set_defaults(handler=cmd_local_endpoint)
    schedules = local_sub.add_parser("schedules", parents=[json_flag], help="the EventBridge Scheduler schedules")
    schedules.set_defaults(handler=cmd_local_schedules)
    fire = local_sub.add_parser("fire", parents=[json_flag], help="fire a schedule now, whatever its state")
    fire.add_argument("name", help="schedule name (see `mlops local schedules`)")
    fire.add_argument("--group", default="default", help="schedule group (default: default)")
    fire.set_defaults(handler=cmd_local_fire)
    reset = local_sub.add_parser("reset", parents=[json_flag], help="stop the service and forget all local state")
    reset.set_defaults(handler=cmd_local_reset)
    _accept_debug_everywhere(top)
    return top


def _accept_debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--debug`` before or after the subcommand. SUPPRESS: a subcommand that was not given it must not reset
    what the top level parsed (argparse copies a subparser's defaults over the top level's values)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                if "--debug" not in sub._option_string_actions:
                    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _accept_debug_everywhere(sub)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. A failure is one line on stderr and a SystemExit with a documented code
    (docs/cli.md), whatever raised it: no traceback unless --debug."""
    from sfn_mlops_local import cli_errors

    argv = sys.argv[1:] if argv is None else list(argv)
    args: argparse.Namespace | None = None
    try:
        args = parser().parse_args(argv)
        # With --json, human output goes to stderr so the last stdout line is the JSON object.
        console = make_console(stderr=bool(getattr(args, "json", False)))
        code: int = args.handler(args, console)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            raise  # argparse's --help or usage error (its line is printed), or an exit code chosen on purpose
        raise SystemExit(cli_errors.report(exc, args, argv, _debug(args, argv))) from None
    except BrokenPipeError:  # the reader of a pipe stopped reading (`mlops runs | head -1`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit, when Python flushes stdout
        raise SystemExit(cli_errors.EXIT_BROKEN_PIPE) from None
    except BaseException as exc:  # the last resort (KeyboardInterrupt too): one line, never a traceback
        raise SystemExit(cli_errors.report(exc, args, argv, _debug(args, argv))) from None
    return code


def _debug(args: argparse.Namespace | None, argv: list[str]) -> bool:
    return bool(getattr(args, "debug", False)) if args is not None else "--debug" in argv


if __name__ == "__main__":
    sys.exit(main())
