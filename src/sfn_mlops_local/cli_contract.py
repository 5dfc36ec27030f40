"""``mlops contract``: show a pipeline's data contract, or replace the pinned one (from a file or a run's data)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from sfn_mlops.contract import DataContract
    from sfn_mlops.contract_check import ProblemType


def _cli() -> Any:
    from sfn_mlops_local import cli  # the shared target helpers (cli imports this module)

    return cli


def _declared(target: Any, pipeline: str) -> tuple[DataContract | None, dict[str, list[str]], str, ProblemType]:
    """The published config's declared contract (or None), its categorical columns, its label and its problem
    type."""
    from sfn_mlops.pipeline import parse_pipeline_config

    from sfn_mlops_local.cli_errors import NotFound

    key = f"pipelines/{pipeline}/pipeline.json"
    try:
        body = target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    except target.s3.exceptions.NoSuchKey:
        raise NotFound(f"pipeline {pipeline!r} is not published: 'mlops publish {pipeline}' first") from None
    config = parse_pipeline_config(body, source=f"s3://{target.bucket}/{key}")
    return config.data.contract, dict(config.data.categorical), config.data.label, config.problem_type


def contract_view(target: Any, pipeline: str) -> dict[str, Any]:
    """``{"pipeline", "source", "contract", ...}``: the contract a new run of the pipeline validates against."""
    from sfn_mlops.contract import contract_key, read_pinned

    declared, _categorical, _label, _problem_type = _declared(target, pipeline)
    if declared is not None:
        return {
            "pipeline": pipeline,
            "source": "declared",
            "where": f"s3://{target.bucket}/pipelines/{pipeline}/pipeline.json (data.contract)",
            "contract": declared.model_dump(mode="json"),
        }
    pinned = read_pinned(target.s3, target.bucket, pipeline)
    where = f"s3://{target.bucket}/{contract_key(pipeline)}"
    if pinned is None:
        return {"pipeline": pipeline, "source": None, "where": where, "contract": None}
    return {"pipeline": pipeline, "where": where, **pinned}


def render(view: dict[str, Any]) -> Any:
    from rich.table import Table
    from sfn_mlops.contract import describe_range

    contract = view["contract"]
    source = {
        "declared": "declared in pipeline.json",
        "inferred": f"pinned from run {view.get('run_id')}'s data ({view.get('updated_at')})",
    }.get(view["source"] or "", f"set by {view.get('source')} ({view.get('updated_at')})")
    table = Table(
        title=f"data contract of {view['pipeline']}: {source}\n{view['where']}",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    for column in ("column", "role", "type", "allowed", "nullable"):
        table.add_column(column, no_wrap=column != "allowed")
    for feature in contract["features"]:
        if feature["type"] == "categorical":
            allowed = ", ".join(feature["domain"])
        else:
            allowed = describe_range(feature["min"], feature["max"]) + (" whole" if feature["integer"] else "")
        table.add_row(feature["name"], "feature", feature["type"], allowed, "yes" if feature["nullable"] else "no")
    label = contract["label"]
    if label["type"] == "categorical":  # a binary label of two values: which one is the positive class
        allowed = f"{', '.join(label['domain'])} (positive: {label['positive']})"
    else:
        allowed = describe_range(label["min"], label["max"]) + (" whole" if label["integer"] else "")
    table.add_row(label["name"], "label", label["type"], allowed, "no")
    return table


def cmd_contract_show(args: argparse.Namespace, console: Console) -> int:
    with _cli().target_for(args) as (target, _runtime):
        view = contract_view(target, args.pipeline)
    if view["contract"] is None:
        console.print(
            f"pipeline {args.pipeline} has no data contract yet: its first successful run pins the one it infers "
            f"({view['where']}); or declare one in pipeline.json (data.contract)",
            soft_wrap=True,
        )
    else:
        console.print(render(view))
    if args.json:
        print(json.dumps(view))
    return 0


def _from_run(
    target: Any, pipeline: str, run_id: str, categorical: dict[str, list[str]], label: str, problem_type: ProblemType
) -> Any:
    """The contract inferred from the dataset a run validated (its snapshot under runs/<pipeline>/<run>/input/), its
    label as the pipeline's problem type reads it (a binary classification's text label is categorical)."""
    from sfn_mlops.contract_check import check_csv
    from sfn_mlops.errors import DatasetValidationError

    from sfn_mlops_local.cli_errors import BadArgument, NotFound

    prefix = f"runs/{pipeline}/{run_id}/input/"
    listed = target.s3.list_objects_v2(Bucket=target.bucket, Prefix=prefix).get("Contents") or []
    if not listed:
        raise NotFound(f"run {run_id} of {pipeline} has no validated dataset (nothing under {prefix})")
    key = listed[0]["Key"]
    body = target.s3.get_object(Bucket=target.bucket, Key=key)["Body"]
    try:
        checked = check_csv(
            body.iter_chunks(1 << 20),
            None,
            label=label,
            categorical=categorical,
            uri=f"s3://{target.bucket}/{key}",
            pipeline=pipeline,
            problem_type=problem_type,
        )
    except DatasetValidationError as exc:
        raise BadArgument(f"no contract can be inferred from run {run_id}'s data: {exc}") from None
    return checked.contract


def cmd_contract_update(args: argparse.Namespace, console: Console) -> int:
    from sfn_mlops.contract import parse_contract, replace_contract
    from sfn_mlops.errors import InvalidDataContract

    from sfn_mlops_local.cli_errors import BadArgument, NotFound, Refused

    with _cli().target_for(args) as (target, _runtime):
        declared, categorical, label, problem_type = _declared(target, args.pipeline)
        if declared is not None:
            raise Refused(
                f"pipeline {args.pipeline}'s contract is declared in its pipeline.json (data.contract): "
                f"edit it there and 'mlops publish {args.pipeline}'"
            )
        if args.file:
            path = Path(args.file)
            if not path.is_file():
                raise NotFound(f"no such contract file: {path}")
            try:
                contract = parse_contract(path.read_bytes(), source=str(path))
            except InvalidDataContract as exc:
                raise BadArgument(str(exc)) from None
            if contract.label.name != label:
                raise BadArgument(
                    f"{path}: the contract's label {contract.label.name!r} is not the pipeline's {label!r}"
                )
            source, run_id = "user", ""
        else:
            contract = _from_run(target, args.pipeline, args.from_run, categorical, label, problem_type)
            source, run_id = "user (from a run's data)", args.from_run
        uri = replace_contract(target.s3, target.bucket, args.pipeline, contract, source=source, run_id=run_id)
        view = contract_view(target, args.pipeline)
    console.print(f"data contract of {args.pipeline} updated: {uri} (new runs validate against it)", soft_wrap=True)
    console.print(render(view))
    if args.json:
        print(json.dumps(view))
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    from sfn_mlops_local.cli_errors import pipeline_name

    contract = sub.add_parser(
        "contract", help="a pipeline's data contract: the columns, types and ranges data must have"
    )
    contract_sub = contract.add_subparsers(dest="contract_command", required=True)
    show = contract_sub.add_parser("show", parents=[common], help="show the contract new runs validate against")
    show.add_argument("pipeline", type=pipeline_name)
    show.set_defaults(handler=cmd_contract_show)
    update = contract_sub.add_parser(
        "update", parents=[common], help="replace the pinned contract (not one declared in pipeline.json)"
    )
    update.add_argument("pipeline", type=pipeline_name)
    given = update.add_mutually_exclusive_group(required=True)
    given.add_argument("--file", help="a contract JSON file (the output of 'contract show --json' works)")
    given.add_argument("--from-run", metavar="RUN_ID", help="infer it from the dataset this run validated")
    update.set_defaults(handler=cmd_contract_update)
