"""``mlops`` serving commands: approve, reject, deploy, promote, rollback, deployments, endpoints, predict."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfn_mlops_local.cli_errors import BadArgument, pipeline_name, positive_int

if TYPE_CHECKING:
    from rich.console import Console


def _cli() -> Any:
    from sfn_mlops_local import cli  # the shared target and follow helpers (cli imports this module)

    return cli


def render_deployment(summary: dict[str, Any]) -> Any:
    from rich.tree import Tree

    cli = _cli()
    tree = Tree(
        f"[bold]deployment {summary['deployment_id']}[/] ({summary.get('pipeline')} {summary.get('stage')}, "
        f"{summary.get('action')}) {cli._styled(summary['status'])}"
    )
    tree.add(f"endpoint {summary.get('endpoint_name')} ({summary.get('strategy')})")
    tree.add(f"model package {summary.get('model_package_arn')}")
    if summary.get("previous_model_package_arn"):
        tree.add(f"[dim]previously[/] {summary['previous_model_package_arn']}")
    for unit in summary.get("units", []):
        took = f" {unit['duration_s']:.1f}s" if unit.get("duration_s") is not None else ""
        tree.add(f"{unit['name']:<16} {cli._styled(unit['status'])}{took}")
    steps = summary.get("traffic_steps") or []
    if steps:
        shown = " -> ".join(
            f"{s.get('status')}{'' if s.get('new_fleet_weight') is None else ' ' + str(s['new_fleet_weight'])}"
            for s in steps
        )
        tree.add(f"traffic: {shown}")
    if summary.get("error"):
        err = summary["error"]
        tree.add(f"[red]{err.get('unit')}: {err.get('error')}[/]: {err.get('cause')}")
    return tree


def _follow_deployment(args: argparse.Namespace, target: Any, console: Console, deployment_id: str, arn: str) -> int:
    return finish_deployment(args, target, console, deployment_id, arn, time.monotonic())


def finish_deployment(
    args: argparse.Namespace,
    target: Any,
    console: Console,
    deployment_id: str,
    arn: str,
    started: float,
    before: dict[str, Any] | None = None,
) -> int:
    """Follow a deployment's units live, then print it and (with --json) its summary; 0 if it succeeded."""
    from sfn_mlops_local import deployments

    followed = _cli()._follow(args, target, console, deployment_id, arn, started, before, show_tree=False)
    if target.table.get_run(deployment_id) is None:  # refused before it was planned: only the flow knows why
        error = followed.get("error") or {}
        summary: dict[str, Any] = {"deployment_id": deployment_id, "status": "FAILED", "units": [], "error": error}
        console.print(f"[red]deployment {deployment_id} refused[/]: {error.get('cause')}", soft_wrap=True)
    else:
        summary = deployments.deployment_summary(target, deployment_id)
        console.print(render_deployment(summary))
    if args.json:
        print(json.dumps(summary, default=str))
    if summary["status"] == "SUCCEEDED":
        return 0
    from sfn_mlops_local.cli_failures import report_failed

    return report_failed(args, {**followed, **summary, "run_id": deployment_id}, "deployment")


def cmd_deploy(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local import deployments

    with _cli().target_for(args) as (target, runtime):
        if args.fail_at:
            if runtime is None:
                raise BadArgument("--fail-at injects a fault into the embedded local runtime; it cannot target a stack")
            runtime.fail_unit(args.fail_at)
        action = args.command
        deployment_id, arn = deployments.start_deployment(
            target, args.pipeline, action, getattr(args, "stage", None), getattr(args, "package", None)
        )
        console.print(f"{action} of {args.pipeline} started: deployment {deployment_id} ({target.description})")
        return _follow_deployment(args, target, console, deployment_id, arn)


def cmd_promote(args: argparse.Namespace, console: Console) -> int:
    args.stage = args.to
    return cmd_deploy(args, console)


def cmd_deployments(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from sfn_mlops_local import deployments

    with _cli().target_for(args) as (target, _runtime):
        found = deployments.list_deployments(target, args.pipeline, args.limit)
    table = Table(title=f"deployments of {args.pipeline}, newest first", title_justify="left", box=None)
    for column in ("deployment id", "stage", "action", "status", "package", "strategy", "started"):
        table.add_column(column, no_wrap=True)
    for d in found:
        table.add_row(
            d["deployment_id"],
            d["stage"] or "",
            d["action"] or "",
            _cli()._styled(d["status"]),
            "v" + d["model_package_arn"].rsplit("/", 1)[-1] if d["model_package_arn"] else "",
            d["strategy"] or "",
            (d["started_at"] or "")[5:16].replace("T", " "),
        )
    console.print(table if found else f"no deployments of {args.pipeline} yet")
    if args.json:
        print(json.dumps({"pipeline": args.pipeline, "deployments": found}, default=str))
    return 0


def cmd_endpoints(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from sfn_mlops_local import deployments

    with _cli().target_for(args) as (target, _runtime):
        found = deployments.list_endpoints(target)
    table = Table(title="endpoints", title_justify="left", box=None)
    for column in ("name", "pipeline", "stage", "status", "package", "previous", "updated"):
        table.add_column(column, no_wrap=True)
    for e in found:
        table.add_row(
            e["name"],
            e["pipeline"] or "",
            e["stage"] or "",
            e["status"],
            "v" + e["model_package_arn"].rsplit("/", 1)[-1] if e["model_package_arn"] else "",
            "v" + e["previous_model_package_arn"].rsplit("/", 1)[-1] if e["previous_model_package_arn"] else "",
            (e["updated_at"] or "")[5:16].replace("T", " "),
        )
    console.print(table if found else "no endpoints yet: approve a model package, or mlops deploy PIPELINE")
    if args.json:
        print(json.dumps({"endpoints": found}, default=str))
    return 0


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local import deployments

    with _cli().target_for(args) as (target, _runtime):
        answer = deployments.predict(target, args.pipeline, args.stage, Path(args.data))
    if args.json:
        print(json.dumps(answer))
    else:
        console.print(f"{answer['endpoint']} ({answer['model_package_arn']}):")
        for value in answer["predictions"]:
            print(value)
    return 0


def _decide(args: argparse.Namespace, console: Console, approve: bool) -> int:
    from sfn_mlops_local import approval_operations

    with _cli().target_for(args) as (target, _runtime):
        decide = approval_operations.approve_package if approve else approval_operations.reject_package
        decision = decide(target, args.package_arn, args.reason)
    console.print(
        f"{decision['model_package_arn']} is {decision['approval_status']} "
        f"(by {decision.get('approved_by') or decision.get('decided_by')}: {decision['reason']})",
        soft_wrap=True,
    )
    if args.json:
        print(json.dumps(decision, default=str))
    return 0


def cmd_approve(args: argparse.Namespace, console: Console) -> int:
    return _decide(args, console, approve=True)


def cmd_reject(args: argparse.Namespace, console: Console) -> int:
    return _decide(args, console, approve=False)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, handler, text in (
        ("approve", cmd_approve, "approve a model package (a person's decision: recorded with who and why)"),
        ("reject", cmd_reject, "reject a model package (recorded with who and why)"),
    ):
        decide = sub.add_parser(name, parents=[common], help=text)
        decide.add_argument("package_arn", help="model package ARN (see mlops runs / mlops status)")
        decide.add_argument("--reason", required=True, help="why (kept on the package and in lineage)")
        decide.set_defaults(handler=handler)
    fail_at = {"metavar": "UNIT", "help": "local runtime only: make this unit of the deployment fail once"}
    deploy = sub.add_parser("deploy", parents=[common], help="deploy a package to a stage and follow it")
    deploy.add_argument("pipeline", type=pipeline_name)
    deploy.add_argument("--package", help="model package ARN (default: the latest approved)")
    deploy.add_argument("--stage", help="stage (default: the pipeline's first)")
    deploy.add_argument("--fail-at", **fail_at)
    deploy.set_defaults(handler=cmd_deploy)
    promote = sub.add_parser("promote", parents=[common], help="deploy what serves the previous stage to the next")
    promote.add_argument("pipeline", type=pipeline_name)
    promote.add_argument("--to", required=True, metavar="STAGE", help="the stage to promote to, e.g. prod")
    promote.add_argument("--fail-at", **fail_at)
    promote.set_defaults(handler=cmd_promote)
    rollback = sub.add_parser("rollback", parents=[common], help="put a stage's previous package back")
    rollback.add_argument("pipeline", type=pipeline_name)
    rollback.add_argument("--stage", help="stage (default: the pipeline's first)")
    rollback.add_argument("--fail-at", **fail_at)
    rollback.set_defaults(handler=cmd_deploy)
    listing = sub.add_parser("deployments", parents=[common], help="a pipeline's deployments, newest first")
    listing.add_argument("pipeline", nargs="?", default="abalone", type=pipeline_name)
    listing.add_argument("--limit", type=positive_int, default=20, help="how many deployments (default 20)")
    listing.set_defaults(handler=cmd_deployments)
    endpoints = sub.add_parser("endpoints", parents=[common], help="the stack's endpoints and what serves them")
    endpoints.set_defaults(handler=cmd_endpoints)
    predict = sub.add_parser("predict", parents=[common], help="score raw rows with a pipeline's endpoint")
    predict.add_argument("pipeline", type=pipeline_name)
    predict.add_argument("--stage", help="stage (default: the pipeline's first)")
    predict.add_argument("--data", required=True, help="CSV of raw rows: the training columns without the label")
    predict.set_defaults(handler=cmd_predict)
