"""``mlops batch``: score a CSV of raw rows with a pipeline's approved model, checking it for drift first."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfn_mlops_local.cli_errors import pipeline_name

if TYPE_CHECKING:
    from rich.console import Console


def _cli() -> Any:
    from sfn_mlops_local import cli  # the shared target and follow helpers (cli imports this module)

    return cli


def render_batch(summary: dict[str, Any]) -> Any:
    from rich.tree import Tree

    cli = _cli()
    tree = Tree(f"[bold]batch {summary['run_id']}[/] ({summary.get('pipeline')}) {cli._styled(summary['status'])}")
    if summary.get("model_package_arn"):
        tree.add(f"model package {summary['model_package_arn']}")
    for unit in summary.get("units", []):
        took = f" {unit['duration_s']:.1f}s" if unit.get("duration_s") is not None else ""
        tree.add(f"{unit['name']:<10} {cli._styled(unit['status'])}{took}")
    add_batch_lines(tree, summary)
    if summary.get("error"):
        err = summary["error"]
        tree.add(f"[red]{err.get('unit')}: {err.get('error')}[/]: {err.get('cause')}")
    return tree


def add_batch_lines(tree: Any, summary: dict[str, Any]) -> None:
    """A batch's drift (its input against the package's baseline) and what it scored, under its tree."""
    drift = summary.get("drift") or {}
    if drift.get("status"):
        node = tree.add(f"drift {'[green]OK[/]' if drift['status'] == 'OK' else '[yellow]DRIFT[/]'}")
        for violation in drift.get("violations") or []:
            node.add(f"{violation['description']} ({violation['constraint_check_type']})")  # names the feature
    if summary.get("output_uri"):
        tree.add(f"{summary.get('rows_scored')} rows scored: {summary['output_uri']}")


def cmd_batch(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local import batch_operations

    with _cli().target_for(args) as (target, _runtime):
        started = time.monotonic()
        batch_id, arn = batch_operations.start_batch(target, args.pipeline, Path(args.data), args.package)
        console.print(f"batch of {args.pipeline} started: {batch_id} ({target.description})", soft_wrap=True)
        followed = _cli()._follow(args, target, console, batch_id, arn, started, None, show_tree=False)
        summary = batch_operations.batch_summary(target, batch_id, followed)
    if summary["pipeline"] is None:
        console.print(f"[red]batch {batch_id} refused[/]: {(summary['error'] or {}).get('cause')}", soft_wrap=True)
    else:
        console.print(render_batch(summary))
    if args.json:
        print(json.dumps(summary, default=str))
    if summary["status"] == "SUCCEEDED":
        return 0
    from sfn_mlops_local.cli_failures import report_failed

    return report_failed(args, {**followed, **summary}, "batch")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    batch = sub.add_parser(
        "batch", parents=[common], help="score a CSV with the pipeline's approved model (drift-checked) and follow it"
    )
    batch.add_argument("pipeline", type=pipeline_name)
    batch.add_argument("--data", required=True, help="CSV with a header row: the training columns without the label")
    batch.add_argument("--package", help="model package ARN (default: batch.package_arn, else the latest approved)")
    batch.set_defaults(handler=cmd_batch)
