"""What a rerun asks for (--from, --only, --set) and what each unit's executor is told to do."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfn_mlops.errors import InvalidPipelineConfig, InvalidRerun
from sfn_mlops.pipeline import PipelineConfig, is_non_finite_text, parse_pipeline_config

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
    for key, value in sorted(options.overrides.items()):
        refuse_locked_key(key)
        refuse_non_finite(f"--set {key}", value)
    return options


def refuse_non_finite(where: str, value: Any) -> None:
    """NaN and infinities (JSON parsers accept them) are no config value: they break comparisons and JSON."""
    if isinstance(value, dict):
        for item in value.values():
            refuse_non_finite(where, item)
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_non_finite(where, item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidRerun(f"{where}: {json.dumps(value)} is not a finite number")
    elif isinstance(value, str) and is_non_finite_text(value):
        raise InvalidRerun(f"{where}: {value!r} is not a finite number")


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
        value: Any = json.loads(raw, parse_constant=_refuse_constant)
    except _NonFiniteConstant as exc:
        raise InvalidRerun(f"--set {key.strip()}: {exc} is not a finite number") from None
    except json.JSONDecodeError:
        value = raw
    refuse_non_finite(f"--set {key.strip()}", value)
    return key.strip(), value


class _NonFiniteConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFiniteConstant(name)


def parse_unset(key: str) -> str:
    """``KEY`` of ``--unset``: a dotted config key, as --set names it."""
    if not key.strip() or "=" in key:
        raise InvalidRerun(f"--unset takes a KEY the run was given with --set (e.g. gate.threshold), not {key!r}")
    return key.strip()


def refuse_set_and_unset(overrides: dict[str, Any], unset: Collection[str]) -> None:
    both = sorted(set(overrides) & set(unset))
    if both:
        raise InvalidRerun(f"--set and --unset of the same key ({', '.join(both)}): use one or the other")


def without_unset(recorded: dict[str, Any], unset: Collection[str], run_id: str) -> dict[str, Any]:
    """The run's recorded overrides (from earlier --set) without the keys --unset drops; each must be one of them.

    (--unset edits the run's record before the rerun starts; the planner then adds this rerun's --set as usual.)"""
    for key in unset:
        if key not in recorded:
            carried = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(recorded.items())) or "none"
            raise InvalidRerun(f"--unset {key}: run {run_id} carries no such override (its overrides: {carried})")
    return {key: value for key, value in recorded.items() if key not in unset}


def apply_overrides(
    config: PipelineConfig,
    overrides: dict[str, Any],
    source: str,
    *,
    earlier: Collection[str] = (),
    run_id: str = "RUN_ID",
) -> PipelineConfig:
    """Set dotted keys of the config (its JSON names) and validate the result like a published config.

    ``earlier``: the keys the run carries from an earlier --set (not given again now): a problem they cause
    says where it came from and how to drop it (``mlops rerun RUN_ID --unset KEY``)."""
    if not overrides:
        return config
    data: dict[str, Any] = config.model_dump(by_alias=True)
    for key, value in sorted(overrides.items()):
        try:
            _set_key(data, key, value)
        except InvalidRerun as exc:
            raise _attributed(exc, [key], earlier, run_id) from exc
    try:
        return parse_pipeline_config(data, source=f"{source} with --set {', '.join(sorted(overrides))}")
    except InvalidPipelineConfig as exc:
        raise _attributed(InvalidRerun(str(exc)), _keys_behind(exc, overrides), earlier, run_id) from exc


def _set_key(data: dict[str, Any], key: str, value: Any) -> None:
    refuse_locked_key(key)
    refuse_non_finite(f"--set {key}", value)
    path = key.split(".")
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise InvalidRerun(f"--set {key}: the pipeline config has no {'.'.join(path[: i + 1])!r}")
        node = node[part]
    if not isinstance(node, dict):
        raise InvalidRerun(f"--set {key}: {'.'.join(path[:-1])!r} is not a section of the pipeline config")
    node[path[-1]] = value


def _attributed(exc: InvalidRerun, keys: Collection[str], earlier: Collection[str], run_id: str) -> InvalidRerun:
    """The error, saying which of the keys behind it came from an earlier --set on the run and how to drop them."""
    inherited = [key for key in keys if key in earlier]
    if not inherited:
        return exc
    unset = " ".join(f"--unset {key}" for key in inherited)
    return InvalidRerun(
        f"{exc} ({', '.join(inherited)}: from an earlier --set on run {run_id}; "
        f"remove it with: mlops rerun {run_id} {unset})"
    )


def _keys_behind(exc: InvalidPipelineConfig, overrides: dict[str, Any]) -> list[str]:
    """The override keys a config validation error is about: a key at, above or below a failing field."""
    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return []
    failing = [tuple(str(part) for part in error["loc"]) for error in cause.errors()]
    blamed = []
    for key in sorted(overrides):
        path = tuple(key.split("."))
        if any(loc[: len(path)] == path or path[: len(loc)] == loc for loc in failing if loc):
            blamed.append(key)
    return blamed


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
