"""What the fault matrices share: the coverage check (every Task state of a flow and its workers has a fault case)
and injecting a case's faults into the embedded local runtime."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from tests.conftest import SUMMARY

INJECTED = "InjectedFault"


def assert_every_task_state_covered(
    runtime: Any, machines: Iterable[str], covered: set[tuple[str, str]], request: pytest.FixtureRequest, label: str
) -> None:
    """Adding a Task state to one of ``machines`` without a fault case fails the matrix."""
    machines = tuple(machines)
    task_states = runtime.task_states()
    expected = {(machine, state) for machine in machines for state in task_states[machine]}
    assert covered == expected, f"missing: {sorted(expected - covered)}; unknown: {sorted(covered - expected)}"
    request.config.stash[SUMMARY].append(
        f"{label} fault matrix: {len(covered)} fault points across {len(machines)} state machines"
    )


def inject(runtime: Any, machine: str, state: str, setup: Iterable[tuple[str, str, str]] = ()) -> None:
    """The faults that make a run reach ``state`` (``setup``), then one at ``state``; each fails once."""
    for setup_machine, setup_state, error in setup:
        runtime.fail_task(
            setup_machine, setup_state, error=error, cause=f"setup fault at {setup_machine}/{setup_state}"
        )
    runtime.fail_task(machine, state, error=INJECTED, cause=f"injected at {machine}/{state}")
