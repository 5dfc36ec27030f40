"""The shape of each state machine: how many states, of which Pass states (and how many only reshape data), lines.

    python bench/asl_shape.py [statemachines/*.asl.json ...]

A Pass state "only reshapes data" when all it does is move, build or rename JSON (Parameters, Result,
InputPath/ResultPath/OutputPath, Output, Assign): it does no work and makes no decision. States inside
Map and Parallel branches count too.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESHAPING_FIELDS = {"Parameters", "Result", "InputPath", "ResultPath", "OutputPath", "Output", "Assign"}


@dataclass(frozen=True)
class Shape:
    name: str
    query_language: str
    states: int
    by_type: Mapping[str, int]
    passes: int
    reshape_only: int
    lines: int


def all_states(states: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in [*state.get("Branches", []), state.get("ItemProcessor") or state.get("Iterator") or {}]:
            yield from all_states(branch.get("States", {}))


def reshapes_only(state: Mapping[str, Any]) -> bool:
    return state["Type"] == "Pass" and bool(RESHAPING_FIELDS & set(state))


def shape(path: Path) -> Shape:
    text = path.read_text()
    definition = json.loads(text)
    states = list(all_states(definition["States"]))
    types = Counter(str(state["Type"]) for _, state in states)
    return Shape(
        name=path.name,
        query_language=str(definition.get("QueryLanguage", "JSONPath")),
        states=len(states),
        by_type=dict(sorted(types.items())),
        passes=types["Pass"],
        reshape_only=sum(reshapes_only(state) for _, state in states),
        lines=len(text.splitlines()),
    )


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "statemachines").glob("*.asl.json"))
    shapes = [shape(p) for p in paths]
    header = f"{'state machine':<24} {'language':<9} {'states':>6} {'Pass':>5} {'reshape-only':>12} {'lines':>6}  types"
    print(header)
    for s in shapes:
        types = ", ".join(f"{t} {n}" for t, n in s.by_type.items())
        print(
            f"{s.name:<24} {s.query_language:<9} {s.states:>6} {s.passes:>5} {s.reshape_only:>12} {s.lines:>6}  {types}"
        )
    total = Shape(
        "total",
        "",
        sum(s.states for s in shapes),
        {},
        sum(s.passes for s in shapes),
        sum(s.reshape_only for s in shapes),
        sum(s.lines for s in shapes),
    )
    print(f"{total.name:<24} {'':<9} {total.states:>6} {total.passes:>5} {total.reshape_only:>12} {total.lines:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
