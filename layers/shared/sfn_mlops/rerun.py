"""What a rerun asks for (--from, --only, --set) and what each unit's executor is told to do."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfn_mlops.errors import InvalidPipelineConfig, InvalidRerun
from sfn_mlops.pipeline import PipelineConfig, parse_pipeline_config

# Executor policies: reuse a recorded success only with the same inputs fingerprint ("resume"), always
# ("reuse": --only takes its inputs from the recorded upstream outputs), or never ("force": --from).
RESUME, REUSE, FORCE = "resume", "reuse", "force"
DONE_STATUSES = {"SUCCEEDED", "CACHED"}
_APPROVAL = (
    "approval is a person's act (mlops approve PACKAGE_ARN --reason TEXT), or the stack's when it is deployed "
    "with auto-approval on: no run config or override can approve a package"
)
# Keys (and everything under them) no --set may change, and why.
LOCKED_KEYS = {
    "name": "the pipeline's name cannot be overridden",
    # replacing the whole section could set any of the keys below (its other keys can be set one by one)
    "register": f"the register section cannot be replaced as a whole ({_APPROVAL})",
    "register.approval_status": _APPROVAL,
    "register.model_package_group": (
        "a pipeline's packages are registered in the stack's model package group for the pipeline "
        "(<resource prefix>-<pipeline>): the group cannot be overridden"
    ),
}


class RerunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    from_unit: str | None = Field(default=None, alias="from")
    only: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


def parse_rerun(raw: Any) -> RerunOptions:
    try:
        options = RerunOptions.model_validate(raw or {})
    except ValidationError as exc:
        raise InvalidRerun(f"invalid rerun options: {exc.errors()[0]['msg']} ({raw!r})") from exc
    if options.from_unit and options.only:
        raise InvalidRerun("use either --from or --only, not both")
    for key in sorted(options.overrides):
        refuse_locked_key(key)
    return options


_SECTIONS_SET_KEY_BY_KEY = {"register"}


def refuse_locked_key(key: str) -> None:
    """A --set of a key no override may change (the pipeline's name, its approval, its model package group)."""
    parts = key.strip().split(".")
    for depth in range(1, len(parts) + 1):
        locked = ".".join(parts[:depth])
        reason = LOCKED_KEYS.get(locked)
        if reason is not None and (depth == len(parts) or locked not in _SECTIONS_SET_KEY_BY_KEY):
            raise InvalidRerun(f"--set {key}: {reason}")


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; the value is JSON where it parses (numbers, booleans), else text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InvalidRerun(f"--set takes KEY=VALUE (e.g. train.hyperparameters.max_depth=4), not {text!r}")
    refuse_locked_key(key)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def apply_overrides(config: PipelineConfig, overrides: dict[str, Any], source: str) -> PipelineConfig:
    """Set dotted keys of the config (its JSON names) and validate the result like a published config."""
    if not overrides:
        return config
    data: dict[str, Any] = config.model_dump(by_alias=True)
    for key, value in sorted(overrides.items()):
        refuse_locked_key(key)
        path = key.split(".")
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise InvalidRerun(f"--set {key}: the pipeline config has no {'.'.join(path[: i + 1])!r}")
            node = node[part]
        if not isinstance(node, dict):
            raise InvalidRerun(f"--set {key}: {'.'.join(path[:-1])!r} is not a section of the pipeline config")
        node[path[-1]] = value
    try:
        return parse_pipeline_config(data, source=f"{source} with --set {', '.join(sorted(overrides))}")
    except InvalidPipelineConfig as exc:
        raise InvalidRerun(str(exc)) from exc


def unit_policies(order: list[str], options: RerunOptions, recorded: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each unit's executor policy for this run attempt; units after --only are left out (not run)."""
    for name in (options.from_unit, options.only):
        if name is not None and name not in order:
            raise InvalidRerun(f"unknown unit {name!r}: the units are {', '.join(order)}")
    if options.only:
        _refuse_overrides_of_reused_units(order, options)
    policies: dict[str, str] = {}
    for index, unit in enumerate(order):
        if options.only:
            target = order.index(options.only)
            if index < target:
                status = (recorded.get(unit) or {}).get("status")
                if status not in DONE_STATUSES:
                    raise InvalidRerun(
                        f"--only {options.only} takes its inputs from {unit}'s recorded outputs, but {unit} is "
                        f"{status or 'not run'} in this run: rerun without --only first"
                    )
                policies[unit] = REUSE
            elif index == target:
                policies[unit] = FORCE
        elif options.from_unit and index >= order.index(options.from_unit):
            policies[unit] = FORCE
        else:
            policies[unit] = RESUME
    return policies


# Config sections that belong to a unit without bearing its name.
_SECTION_UNITS = {"data": "preprocess"}


def _refuse_overrides_of_reused_units(order: list[str], options: RerunOptions) -> None:
    """--only reuses the units before it as recorded: a --set that would change one of them cannot apply."""
    assert options.only is not None
    before = order[: order.index(options.only)]
    for key in sorted(options.overrides):
        section = key.split(".", 1)[0]
        unit = _SECTION_UNITS.get(section, section)
        if unit in before:
            raise InvalidRerun(
                f"--set {key} changes {unit}, which --only {options.only} reuses as recorded: "
                f"use --from {unit} instead (or a plain rerun)"
            )
