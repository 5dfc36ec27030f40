"""A SageMaker request checked against the API's own limits, as SageMaker checks it before it accepts a job.

The limits are the service model botocore ships (the same one AWS publishes): for every member of the operation's
input, its enum (instance types per job kind...), length and value bounds, list and map sizes, required members
and, where Python's ``re`` can read it, its pattern. botocore's client checks only types, required members and
minimums before sending; the rest is checked by the service, which answers ``ValidationException`` with
``N validation error(s) detected: Value '...' at 'camelCased.path' failed to satisfy constraint: ...``. This
module produces that message, so a job request is refused before it is sent (``jobs.py``) and the local service
refuses what AWS would refuse, in AWS's words (docs/decisions/0024-job-api-as-aws.md).

Paths follow AWS's: members camelCased, list elements ``name.<1-based index>.member``. The model is loaded on the
first check (about 90 ms), never on import, and kept.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# A value quoted in a message is cut here (AWS quotes it whole; a 100-argument list would fill a screen).
_QUOTED_CHARS = 200


@cache
def _service_model() -> Any:
    import botocore.loaders
    import botocore.model

    data = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")
    return botocore.model.ServiceModel(data, service_name="sagemaker")


@cache
def _pattern(text: str) -> re.Pattern[str] | None:
    """The member's pattern, matched whole as AWS (Java) matches it; None when it uses syntax ``re`` lacks
    (``\\p{L}`` classes): that check is then left to the service."""
    try:
        return re.compile(text)
    except re.error:
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _quoted(value: Any) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, list):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    if len(text) > _QUOTED_CHARS:
        text = text[: _QUOTED_CHARS - 3] + "..."
    return f"'{text}'"


def _failed(value: Any, path: str, constraint: str) -> str:
    return f"Value {_quoted(value)} at '{path}' failed to satisfy constraint: {constraint}"


def _bounds(shape: Any, size: int, what: str) -> list[str]:
    """Constraint texts for ``size`` (a length or a value) outside the shape's min/max."""
    found = []
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if high is not None and size > high:
        found.append(f"Member must have {what} less than or equal to {high:g}")
    if low is not None and size < low:
        found.append(f"Member must have {what} greater than or equal to {low:g}")
    return found


def _scalar(shape: Any, value: Any) -> list[str]:
    """Constraint texts a string or number breaks (its type is botocore's client's to check)."""
    if shape.type_name == "string" and isinstance(value, str):
        found = _bounds(shape, len(value), "length")
        enum = shape.enum
        if enum and value not in enum:
            found.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        compiled = _pattern(pattern) if pattern else None
        if compiled is not None and not enum and compiled.fullmatch(value) is None:
            found.append(f"Member must satisfy regular expression pattern: {pattern}")
        return found
    if shape.type_name in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if isinstance(value, bool):
            return []
        return _bounds(shape, value, "value")  # type: ignore[arg-type]
    return []


def _walk(shape: Any, value: Any, path: str, out: list[str], skip: frozenset[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return
        for name in shape.required_members:
            if name not in skip and value.get(name) is None:
                out.append(f"Value null at '{_join(path, name)}' failed to satisfy constraint: Member must not be null")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _walk(member, value[name], _join(path, name), out, frozenset())
        return
    if kind == "list":
        if not isinstance(value, list):
            return
        out.extend(_failed(value, path, c) for c in _bounds(shape, len(value), "length"))
        for index, item in enumerate(value, start=1):
            if item is not None:
                _walk(shape.member, item, f"{path}.{index}.member", out, frozenset())
        return
    if kind == "map":
        if not isinstance(value, dict):
            return
        out.extend(_failed(value, path, c) for c in _bounds(shape, len(value), "length"))
        keys = sorted({c for k in value for c in _scalar(shape.key, k)})
        if keys:
            out.append(_failed(value, path, f"Map keys must satisfy constraint: [{', '.join(keys)}]"))
        values = sorted({c for v in value.values() if v is not None for c in _scalar(shape.value, v)})
        if values:
            out.append(_failed(value, path, f"Map value must satisfy constraint: [{', '.join(values)}]"))
        return
    out.extend(_failed(value, path, c) for c in _scalar(shape, value))


def _join(path: str, member: str) -> str:
    return f"{path}.{_camel(member)}" if path else _camel(member)


def problems(operation: str, request: dict[str, Any], supplied_later: tuple[str, ...] = ()) -> list[str]:
    """Every limit ``request`` breaks for SageMaker ``operation`` (``CreateProcessingJob``...), in AWS's words,
    in the input's member order. ``supplied_later``: top-level required members another party adds (the state
    machine injects ``RoleArn``), not reported missing."""
    shape = _service_model().operation_model(operation).input_shape
    found: list[str] = []
    _walk(shape, request, "", found, frozenset(supplied_later))
    return found


def validation_message(found: list[str]) -> str:
    """``N validation error(s) detected: <problem>; <problem>`` (AWS's ValidationException message)."""
    count = len(found)
    return f"{count} validation error{'s' if count != 1 else ''} detected: " + "; ".join(found)


def refusal(operation: str, request: dict[str, Any], supplied_later: tuple[str, ...] = ()) -> str | None:
    """The ValidationException message SageMaker would answer ``request`` with, or None if it is within limits."""
    found = problems(operation, request, supplied_later)
    return validation_message(found) if found else None


def enum_values(shape_name: str) -> tuple[str, ...]:
    """A named enum shape's values (``ProcessingInstanceType``...), from the same model."""
    return tuple(_service_model().shape_for(shape_name).enum)
