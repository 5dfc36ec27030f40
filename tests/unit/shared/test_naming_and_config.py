"""Names SageMaker accepts for every pipeline and attempt, and pipeline configs that fail readably."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sfn_mlops.errors import InvalidPipelineConfig
from sfn_mlops.naming import JOB_NAME, is_run_id, job_name, make_run_id
from sfn_mlops.pipeline import parse_pipeline_config

from tests.conftest import ROOT

STARTED = datetime(2026, 11, 26, 4, 15, 0, tzinfo=UTC)


def test_the_longest_pipeline_name_gives_valid_job_names_up_to_attempt_999() -> None:
    # Given the longest pipeline name the config allows (24 characters)
    run_id = make_run_id("p" * 24, STARTED, "bucket/data/p/x.csv#v1#seq")
    assert is_run_id(run_id)
    # Then every unit's job name at any attempt up to 999 is a valid SageMaker job name (<= 63)
    for unit in ("preprocess", "train", "evaluate", "register"):
        for attempt in (1, 99, 999):
            name = job_name(run_id, unit, attempt)
            assert len(name) <= 63 and JOB_NAME.match(name), name


def test_job_names_differ_per_run_unit_and_attempt() -> None:
    runs = [make_run_id("abalone", STARTED, identity) for identity in ("a#1", "a#2")]
    names = {job_name(r, u, a) for r in runs for u in ("preprocess", "train", "evaluate") for a in (1, 2)}
    assert len(names) == 2 * 3 * 2
    # and the same trigger identity gives the same run id (duplicate deliveries dedup on it)
    assert make_run_id("abalone", STARTED, "a#1") == runs[0]


def test_a_job_name_over_63_characters_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="not a valid SageMaker job name"):
        job_name("x" * 60, "train", 1)


def abalone_config() -> dict[str, object]:
    config: dict[str, object] = json.loads((ROOT / "models/abalone/pipeline.json").read_text())
    return config


def test_the_bundled_abalone_config_validates() -> None:
    config = parse_pipeline_config(abalone_config(), source="models/abalone/pipeline.json")
    assert config.name == "abalone" and config.gate.metric == "rmse"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": "Abalone_Model"}, "name: Value error, pipeline names are 1-24 characters"),
        ({"train": {"hyperparameters": {"max_depth": 5}}}, "needs hyperparameter 'num_round'"),
        ({"gate": {"metric": "rmse", "threshold": 3, "direction": "down"}}, "gate.direction"),
        ({"preprocess": {"train_ratio": 0.9, "validation_ratio": 0.2}}, "must leave rows for the test split"),
        ({"preprocess": {"compute": {"instance_type": "m5.xlarge"}}}, "not a SageMaker instance type"),
        ({"surprise": True}, "surprise: Extra inputs are not permitted"),
        ({"evaluate": {"script": "../other/evaluate.py"}}, "a script is a relative path to a .py file"),
        ({"preprocess": {"script": "/abs/preprocess.py"}}, "inside the pipeline folder"),
        # an old config naming its group: groups are bound to the pipeline now
        ({"register": {"model_package_group": "abalone"}}, "model_package_group is no longer configurable"),
        ({"register": {"approval_status": "Approved"}}, "approval is a person's act"),
        ({"register": {"inference_script": "../inference.py"}}, "a script is a relative path to a .py file"),
    ],
)
def test_a_bad_config_names_the_field_and_the_problem(change: dict[str, object], problem: str) -> None:
    config = {**abalone_config(), **change}
    with pytest.raises(InvalidPipelineConfig, match=r"^models/abalone/pipeline\.json is invalid: ") as raised:
        parse_pipeline_config(config, source="models/abalone/pipeline.json")
    assert problem in str(raised.value)


def test_a_config_that_is_not_json_is_named_as_such() -> None:
    with pytest.raises(InvalidPipelineConfig, match=r"s3://b/pipelines/x/pipeline\.json is not valid JSON"):
        parse_pipeline_config(b"{name: abalone", source="s3://b/pipelines/x/pipeline.json")
