"""``mlops report``: one self-contained HTML page of a pipeline's runs, against the local service or a stack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfn_mlops_local.cli_errors import BadArgument, Refused, pipeline_name, positive_int

if TYPE_CHECKING:
    from rich.console import Console


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local import cli
    from sfn_mlops_local.report import data, render

    out = Path(args.out or f"{args.pipeline}-report.html")
    if not out.parent.is_dir():  # before reading anything: the page could not be written
        raise BadArgument(f"mlops report: cannot write {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise BadArgument(f"mlops report: cannot write {out}: it is a folder")
    from botocore.exceptions import ClientError

    with cli.target_for(args) as (target, _runtime):
        try:
            report = data.gather(target, args.pipeline, run_id=args.run, limit=args.limit)
        except ClientError as exc:  # e.g. credentials without states:GetExecutionHistory on a stack
            error = exc.response.get("Error", {})
            operation = getattr(exc, "operation_name", "a call")
            raise Refused(
                f"mlops report: {operation} was refused: {error.get('Code')}: {error.get('Message')}"
            ) from exc
    page = render.render(report)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise BadArgument(f"mlops report: cannot write {out}: {exc.strerror or exc}") from exc
    console.print(
        f"report of {args.pipeline} ({len(report['runs'])} runs, {len(page) / 1e6:.1f} MB) written to {out}",
        soft_wrap=True,
    )
    if args.json:
        print(json.dumps({**report, "out": str(out.resolve()), "bytes": len(page.encode())}, default=str))
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser(
        "report",
        parents=[common],
        help="write one self-contained HTML page: runs, trend, timeline, lineage, drift, cost",
    )
    report.add_argument("pipeline", type=pipeline_name)
    report.add_argument("--out", metavar="FILE", help="where to write the page (default: PIPELINE-report.html)")
    report.add_argument("--run", metavar="RUN_ID", help="the run whose units the timeline shows (default: the latest)")
    report.add_argument("--limit", type=positive_int, default=20, help="how many runs, newest first (default 20)")
    report.set_defaults(handler=cmd_report)
