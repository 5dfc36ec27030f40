"""Fuzz every event model the handlers parse with: arbitrary JSON-ish values and mutations of each handler's
sample event. Nothing but the named error may come out (pydantic's ValidationError included: it is converted).

Deterministic (derandomize) and fast: no AWS call is made, only the parsing each handler starts with."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.functions.test_handlers import sample_event

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)


def parsers() -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """Per handler: its sample event and the parsing it starts with (as the handler calls it)."""
    from sfn_mlops import events
    from sfn_mlops.batch import PlanBatchEvent, parse_check_event, parse_transform_event
    from sfn_mlops.datasets import parse_validate_event
    from sfn_mlops.deployment import PlanDeploymentEvent
    from sfn_mlops.drift import parse_write_baseline_event
    from sfn_mlops.jobs import parse_job_event
    from sfn_mlops.registry import parse_register_event

    def model(m: type, what: str) -> Callable[[Any], Any]:
        return lambda event: events.parse_event(m, event, what)

    def smoke(event: Any) -> Any:
        return events.smoke_test_config(events.parse_event(events.WorkerEvent, event, "smoke-test input"))

    return {
        "check_input": ("CheckInputFunction", parse_check_event),
        "prepare_transform": ("PrepareTransformFunction", parse_transform_event),
        "write_baseline": ("WriteBaselineFunction", parse_write_baseline_event),
        "prepare_job": ("PrepareJobFunction", parse_job_event),
        "register_model": ("RegisterModelFunction", parse_register_event),
        "validate_dataset": ("ValidateDatasetFunction", parse_validate_event),
        "lookup_cache": ("LookupCacheFunction", model(events.CacheLookupEvent, "cache lookup")),
        "release_lock": ("ReleaseLockFunction", model(events.ReleaseLockEvent, "lock release")),
        "read_metrics": ("ReadMetricsFunction", model(events.ReadMetricsEvent, "read-metrics input")),
        "reject_model": ("RejectModelFunction", model(events.RejectEvent, "reject input")),
        "plan_run": ("PlanRunFunction", model(events.PlanRunEvent, "training flow input")),
        "plan_batch": ("PlanBatchFunction", model(PlanBatchEvent, "batch flow input")),
        "plan_deployment": ("PlanDeploymentFunction", model(PlanDeploymentEvent, "deployment flow input")),
        "record_batch": ("RecordBatchFunction", model(events.BatchRecordEvent, "batch outcome")),
        "record_deployment": ("RecordDeploymentFunction", model(events.DeploymentRecordEvent, "deployment outcome")),
        "smoke_test": ("SmokeTestFunction", smoke),
    }


def parses_or_names_the_problem(parse: Callable[[Any], Any], event: Any) -> None:
    from sfn_mlops.errors import FingerprintMismatch, InvalidEvent

    try:
        parse(event)
    except (InvalidEvent, FingerprintMismatch) as exc:  # a mutated config no longer hashes to its digest
        assert "\n" not in str(exc) and len(str(exc)) < 1000


def mutate(event: dict[str, Any], path: list[str], value: Any, drop: bool) -> dict[str, Any]:
    """The event with the field at (a prefix of) ``path`` replaced by ``value``, or removed."""
    mutated = copy.deepcopy(event)
    node: Any = mutated
    for step in path[:-1]:
        if not isinstance(node, dict) or step not in node or not isinstance(node[step], dict):
            break
        node = node[step]
    key = path[-1] if isinstance(node, dict) and path[-1] in node else next(iter(node), None)
    if key is not None:
        if drop:
            del node[key]
        else:
            node[key] = value
    return mutated


def field_paths(event: Any, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    if not isinstance(event, dict):
        return [list(prefix)] if prefix else []
    paths = [list(prefix)] if prefix else []
    for key, value in event.items():
        paths += field_paths(value, (*prefix, key))
    return paths


@pytest.mark.parametrize("handler", sorted(parsers()))
def test_arbitrary_json_never_escapes_as_anything_but_invalid_event(handler: str) -> None:
    parse = parsers()[handler][1]

    @FUZZ
    @given(json_values)
    def check(event: Any) -> None:
        parses_or_names_the_problem(parse, event)

    check()


@pytest.mark.parametrize("handler", sorted(parsers()))
def test_mutations_of_a_valid_event_never_escape_as_anything_but_invalid_event(handler: str) -> None:
    logical_id, parse = parsers()[handler]
    valid = sample_event(logical_id)
    parse(valid)  # the sample itself is valid
    paths = field_paths(valid)

    @FUZZ
    @given(st.sampled_from(paths), json_values, st.booleans())
    def check(path: list[str], value: Any, drop: bool) -> None:
        parses_or_names_the_problem(parse, mutate(valid, path, value, drop))

    check()


def test_the_trigger_turns_any_event_into_a_decision_or_invalid_event() -> None:
    from sfn_mlops.errors import InvalidEvent
    from sfn_mlops.trigger import key_problem, parse_trigger_event

    upload = sample_event("TriggerFunction")
    paths = field_paths(upload)

    @settings(FUZZ, max_examples=150)
    @given(st.sampled_from(paths), json_values, st.booleans(), st.text(max_size=600))
    def check(path: list[str], value: Any, drop: bool, key: str) -> None:
        for event in (mutate(upload, path, value, drop), value):
            try:
                parse_trigger_event(event)
            except InvalidEvent as exc:
                assert "\n" not in str(exc)
        problem = key_problem(key)
        assert problem is None or "\n" not in problem

    check()
