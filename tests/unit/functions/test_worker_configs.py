"""Workers re-validate their config (digest required, no unknown field, the run's own prefixes), the batch workers
included; the cache lookup checks a fingerprint it can recompute; a run id is a run of exactly its pipeline; the
flows' plan and record steps parse their whole event into typed models."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from tests.unit.functions.test_handlers import handler_module, sample_event


def restamped(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with its config's digest made again: a change the planner itself could have made."""
    from sfn_mlops.fingerprint import config_digest

    config = event["inputs"]["config"]
    config["config_sha256"] = config_digest(config)
    return event


# ------------------------------------------------------------------------------------------------ run ids
@pytest.mark.parametrize(
    ("run_id", "pipeline", "batch", "expected"),
    [
        ("abalone-20261123t101500-1a2b3c4d", "abalone", False, True),
        ("a-b-20261123t101500-1a2b3c4d", "a-b", False, True),
        ("a-b-20261123t101500-1a2b3c4d", "a", False, False),  # a run of pipeline a-b is no run of a
        ("batch-a-b-20261123t101500-1a2b3c4d", "a", True, False),
        ("batch-a-b-20261123t101500-1a2b3c4d", "a-b", True, True),
        ("batch-a-b-20261123t101500-1a2b3c4d", "a-b", False, False),
        ("abalone-20261123t101500-1a2b3c4d-x", "abalone", False, False),
    ],
)
def test_a_run_id_is_a_run_of_exactly_its_pipeline(run_id: str, pipeline: str, batch: bool, expected: bool) -> None:
    from sfn_mlops.events import is_run_of

    assert is_run_of(run_id, pipeline, batch=batch) is expected


def test_a_worker_event_for_a_run_of_a_longer_pipeline_name_is_refused(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given a train unit's event of pipeline "abalone" with a run id of pipeline "abalone-x"
    event = sample_event("PrepareJobFunction")
    event["run_id"] = "abalone-x-20261123t101500-1a2b3c4d"
    # When the worker parses it, Then it is refused naming the run and the pipeline
    with pytest.raises(InvalidEvent, match="is not a run of pipeline 'abalone'"):
        handler_module("prepare_job").lambda_handler(event, lambda_context)


def test_the_planners_refuse_a_run_id_of_a_longer_pipeline_name() -> None:
    from sfn_mlops.batch import BatchRefused, build_batch_plan
    from sfn_mlops.deployment import DeploymentRefused, build_deployment_plan
    from sfn_mlops.errors import InvalidUnitInput
    from sfn_mlops.planner import build_plan

    # Given run ids of pipeline "a-b" given as runs of pipeline "a": each planner refuses before reading anything
    dataset = {"bucket": "b", "key": "data/a/x.csv"}
    with pytest.raises(InvalidUnitInput, match="is not a run id of pipeline 'a'"):
        build_plan(None, None, {"pipeline": "a", "run_id": "a-b-20261123t101500-1a2b3c4d", "dataset": dataset})  # type: ignore[arg-type]
    batch = {"pipeline": "a", "run_id": "batch-a-b-20261123t101500-1a2b3c4d", "input": {"bucket": "bbb", "key": "k"}}
    with pytest.raises(BatchRefused, match="is not a batch id of pipeline 'a'"):
        build_batch_plan(None, None, None, None, batch)  # type: ignore[arg-type]
    deployment = {"pipeline": "a", "run_id": "a-b-20261123t101500-1a2b3c4d"}
    with pytest.raises(DeploymentRefused, match="is not a deployment id of pipeline 'a'"):
        build_deployment_plan(None, None, None, None, deployment)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ training configs
def test_a_worker_config_without_its_digest_is_refused_naming_it(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given a train unit's config whose config_sha256 was removed (which used to skip the digest check)
    event = sample_event("PrepareJobFunction")
    del event["inputs"]["config"]["config_sha256"]
    # When the worker validates it, Then it is refused naming the missing digest
    with pytest.raises(InvalidEvent, match=r"train input config is malformed: config_sha256: Field required"):
        handler_module("prepare_job").lambda_handler(event, lambda_context)


def test_a_worker_config_with_a_field_the_planner_does_not_write_is_refused(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given a train config with a field of its own, digest and all (it used to be dropped silently)
    event = sample_event("PrepareJobFunction")
    event["inputs"]["config"]["role_arn"] = "arn:aws:iam::123456789012:role/admin"
    restamped(event)
    # When the worker validates it, Then the field is named
    with pytest.raises(
        InvalidEvent, match=r"train input config is malformed: role_arn: Extra inputs are not permitted"
    ):
        handler_module("prepare_job").lambda_handler(event, lambda_context)


# ------------------------------------------------------------------------------------------------ batch workers
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c.pop("baseline"), r"check input config is malformed: baseline: Field required"),
        (lambda c: c["baseline"].update(statistics=7), r"check input config is malformed: baseline\.statistics"),
        (lambda c: c.update(id_columns="row_id"), r"check input config is malformed: id_columns"),
        (lambda c: c["drift"].update(psi_threshold=-1), r"check input config is malformed: drift\.psi_threshold"),
        (lambda c: c["input"].pop("uri"), r"check input config is malformed: input\.uri: Field required"),
        (
            lambda c: c.update(
                output_prefix="s3://bucket-x/batch/abalone/batch-abalone-20200101t000000-00000000/check/"
            ),
            r"output_prefix .* is not run batch-abalone-20261130t120000-9a8b7c6d's prefix",
        ),
    ],
    ids=["no baseline", "statistics not a uri", "id columns not a list", "negative psi", "no input uri", "other run"],
)
def test_the_check_worker_revalidates_its_config_before_reading_anything(
    aws: None, lambda_context: Any, change: Any, problem: str
) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given the check unit's config changed in a way the planner never writes (digest made again)
    event = sample_event("CheckInputFunction")
    change(event["inputs"]["config"])
    restamped(event)
    # When the check worker starts, Then it is refused in one line naming the field (no KeyError, no TypeError)
    with pytest.raises(InvalidEvent, match=problem) as refused:
        handler_module("check_input").lambda_handler(event, lambda_context)
    assert "\n" not in str(refused.value)


def test_a_batch_config_changed_after_planning_is_a_fingerprint_mismatch(aws: None, lambda_context: Any) -> None:
    from sfn_mlops.errors import FingerprintMismatch

    for name, function, change in (
        ("CheckInputFunction", "check_input", ("label", "sex")),
        ("PrepareTransformFunction", "prepare_transform", ("instance_count", 10)),
    ):
        # Given a batch worker's config changed after it was stamped
        event = sample_event(name)
        event["inputs"]["config"][change[0]] = change[1]
        # When the worker starts, Then it refuses it naming why
        with pytest.raises(FingerprintMismatch, match="does not match the fingerprint its plan recorded"):
            handler_module(function).lambda_handler(event, lambda_context)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e["inputs"]["config"].update(id_columns="two"), r"transform input config is malformed: id_columns"),
        (
            lambda e: e["inputs"]["config"].update(instance_type="ml.nope.large"),
            r"transform input config is malformed: instance_type: Value error, 'ml.nope.large' is not a SageMaker",
        ),
        (lambda e: e["inputs"]["config"].pop("max_payload_mb"), r"config is malformed: max_payload_mb: Field required"),
        (lambda e: e["inputs"].pop("model"), r"transform input model \(the model unit's outputs\) is malformed"),
        (lambda e: e["inputs"]["check"].pop("input_file"), r"is malformed: input_file: Field required"),
        (lambda e: e.update(unit="check"), r"batch unit input is malformed: unit: the transform worker was started"),
    ],
    ids=["id columns not a number", "unknown instance type", "no payload size", "no model", "no input file", "unit"],
)
def test_the_transform_worker_revalidates_its_config_and_upstream_outputs(
    aws: None, lambda_context: Any, change: Any, problem: str
) -> None:
    from sfn_mlops.errors import InvalidEvent

    event = sample_event("PrepareTransformFunction")
    change(event)
    restamped(event)
    with pytest.raises(InvalidEvent, match=problem):
        handler_module("prepare_transform").lambda_handler(event, lambda_context)


# ------------------------------------------------------------------------------------------------ cache lookup
def preprocess_lookup(fingerprint: str | None = None) -> dict[str, Any]:
    """A cache lookup for the preprocess unit, with the inputs the executor was given and their fingerprint."""
    from sfn_mlops.fingerprint import static_fingerprints

    inputs = copy.deepcopy(restamped(sample_event("ValidateDatasetFunction"))["inputs"])
    inputs["dataset"]["content"] = "sha256:abc"
    planned = {k: v for k, v in inputs["config"].items() if k != "config_sha256"}
    fingerprint = fingerprint or static_fingerprints({"preprocess": planned}, inputs["dataset"])["preprocess"]
    lookup = sample_event("LookupCacheFunction")
    return {**lookup, "unit": "preprocess", "fingerprint": fingerprint, "inputs": inputs}


def test_a_cache_lookup_whose_fingerprint_is_its_inputs_looks_the_cache_up(table: str, lambda_context: Any) -> None:
    # Given the preprocess unit's inputs and the fingerprint the planner made of them
    event = preprocess_lookup()
    # When the executor looks the cache up, Then it is a lookup (a miss: nothing ran yet)
    assert handler_module("lookup_cache").lambda_handler(event, lambda_context) == {"hit": False}


def test_a_cache_lookup_with_a_fingerprint_its_inputs_do_not_have_is_refused(table: str, lambda_context: Any) -> None:
    from sfn_mlops.errors import FingerprintMismatch

    # Given a preprocess lookup whose config was changed after planning (a different seed, digest made again)
    event = preprocess_lookup()
    event["inputs"]["config"]["seed"] = 7
    restamped(event)
    # When the executor looks the cache up, Then the fingerprint is refused: no earlier output is reused
    with pytest.raises(FingerprintMismatch, match=r"preprocess of run .*: the executor was given fingerprint"):
        handler_module("lookup_cache").lambda_handler(event, lambda_context)
    # And a dataset of other content under the same fingerprint is refused too
    event = preprocess_lookup()
    event["inputs"]["dataset"]["content"] = "sha256:other"
    with pytest.raises(FingerprintMismatch):
        handler_module("lookup_cache").lambda_handler(event, lambda_context)


def test_a_whole_float_that_came_back_as_an_int_keeps_its_fingerprint() -> None:
    from sfn_mlops.fingerprint import static_fingerprints

    # Step Functions may give 1.0 back as 1: the executor's recomputation must agree with the planner's
    units = {"preprocess": {"train_ratio": 0.5, "seed": 1.0, "runs_root": "s3://b/"}}
    after = {"preprocess": {"train_ratio": 0.5, "seed": 1, "runs_root": "s3://b/"}}
    assert static_fingerprints(units, {"content": "x"}) == static_fingerprints(after, {"content": "x"})


# ------------------------------------------------------------------------------------------------ plans and records
@pytest.mark.parametrize(
    ("name", "event", "problem"),
    [
        ("plan_batch", {"batch": {"pipeline": "abalone"}}, r"batch flow input is malformed: batch\.run_id"),
        ("plan_batch", {"batch": {**sample_event("PlanBatchFunction")["batch"], "x": 1}}, r"batch\.x: Extra inputs"),
        ("plan_deployment", {"deployment": {"pipeline": "abalone", "action": "drop"}}, r"deployment\.run_id"),
    ],
    ids=["batch without run id", "batch with an unknown field", "deployment without run id"],
)
def test_the_plan_steps_parse_the_flows_input_as_its_request_model(
    aws: None, lambda_context: Any, name: str, event: dict[str, Any], problem: str
) -> None:
    from sfn_mlops.errors import InvalidEvent

    with pytest.raises(InvalidEvent, match=problem):
        handler_module(name).lambda_handler(event, lambda_context)


@pytest.mark.parametrize("name", ["record_batch", "record_deployment"])
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e.update(results={"transform": "done"}), r"results\.transform"),
        (lambda e: e.update(error={"unit": "check", "cause": "x"}), r"error\.error: Field required"),
        (lambda e: e["plan"].pop("model_package_arn"), r"plan\.model_package_arn: Field required"),
        (lambda e: e["plan"].update(order="model"), r"plan\.order"),
    ],
    ids=["a result not an object", "an error without its name", "a plan without its package", "order not a list"],
)
def test_the_record_steps_refuse_a_malformed_outcome_before_recording_anything(
    table: str, lambda_context: Any, name: str, change: Any, problem: str
) -> None:
    from sfn_mlops.errors import InvalidEvent

    # Given a flow's outcome with one part malformed
    event = sample_event("RecordBatchFunction" if name == "record_batch" else "RecordDeploymentFunction")
    change(event)
    # When it is recorded, Then it is one named error (no KeyError, no AttributeError)
    with pytest.raises(InvalidEvent, match=problem):
        handler_module(name).lambda_handler(event, lambda_context)


# ------------------------------------------------------------------------------------------------ one line
class _Many(BaseModel):
    a: int
    b: int
    c: int
    d: int
    e: str = Field(max_length=1)


class _Closed(BaseModel, extra="forbid"):
    a: int


def test_a_validation_error_is_one_line_with_control_characters_escaped_and_the_rest_counted() -> None:
    from sfn_mlops.errors import validation_problems

    with pytest.raises(ValidationError) as raised:
        _Many.model_validate({"e": "x\ny"})
    line = validation_problems(raised.value, limit=3)
    assert line == "a: Field required; b: Field required; c: Field required (and 2 more)"
    everything = validation_problems(raised.value)
    assert "(and" not in everything and "e: String should have at most 1 character" in everything
    with pytest.raises(ValidationError) as raised:
        _Closed.model_validate({"a": 1, "a\nb\x00": 1})
    assert validation_problems(raised.value) == "a\\nb\\x00: Extra inputs are not permitted"
