"""``mlops changed``: the pipelines that changed since a git ref, one per line (``for p in $(mlops changed)``)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_BASE = "origin/main"


def cmd_changed(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops_local.changed import changed_pipelines
    from sfn_mlops_local.cli_output import say_on_stderr
    from sfn_mlops_local.local.client import project_root

    changes = changed_pipelines(project_root(), args.base, include_uncommitted=args.include_uncommitted)
    # stdout carries only names (or the JSON object): the summary goes to stderr, where $(...) leaves it.
    since = f"{args.base} ({changes.base_commit[:12]})" + (" and the work tree" if args.include_uncommitted else "")
    summary = f"{len(changes.pipelines)} pipeline(s) changed since {since}"
    if changes.shared:
        summary += f"; shared code changed ({', '.join(changes.shared)}): every pipeline counts"
    if changes.removed:
        summary += f"; removed (not run): {', '.join(changes.removed)}"
    say_on_stderr(summary)
    if args.json:
        print(json.dumps(changes.to_json()))
    else:
        for name in changes.names:
            print(name)
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    # Not `common`'s parents: it reads git, not a stack, so --stack/--region/--profile would mean nothing.
    changed = sub.add_parser(
        "changed",
        help="the pipelines changed since a git ref (their folder, or shared code they all run), one per line",
    )
    changed.add_argument(
        "--base",
        default=DEFAULT_BASE,
        metavar="REF",
        help=f"compare HEAD with where it left this ref, as a pull request does (default: {DEFAULT_BASE})",
    )
    changed.add_argument(
        "--include-uncommitted",
        action="store_true",
        help="count staged, unstaged and untracked changes in the work tree too (default: commits only)",
    )
    changed.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    changed.set_defaults(handler=cmd_changed)
