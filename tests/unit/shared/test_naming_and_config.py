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


def _with(path: str, value: object) -> dict[str, object]:
    """The abalone config with one dotted key set (its JSON names)."""
    config = json.loads(json.dumps(abalone_config()))
    node = config
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("train.compute.instance_type", "ml.m5.xlrge", "'ml.m5.xlrge' is not a SageMaker training job instance type"),
        ("preprocess.compute.instance_type", "ml.m9.xlarge", "is not a SageMaker processing job instance type"),
        ("evaluate.compute.instance_type", "ml.m5.huge", "is not a SageMaker processing job instance type"),
        # a real type of another kind of job: t2 serves endpoints, it does not run processing jobs
        ("preprocess.compute.instance_type", "ml.t2.medium", "is not a SageMaker processing job instance type"),
        ("batch.instance_type", "ml.t3.medium", "is not a SageMaker transform job instance type"),
        ("deploy.instance_type", "ml.m5.larg", "is not a SageMaker endpoint instance type"),
        ("register.inference_instance_types", ["ml.m5.large", "ml.x1.large"], "endpoint instance type"),
        ("register.transform_instance_types", ["ml.c5.xlarge", "ml.zz.large"], "transform job instance type"),
    ],
)
def test_an_instance_type_is_checked_against_the_sagemaker_api_for_its_kind_of_job(
    path: str, value: object, problem: str
) -> None:
    # Given an instance type SageMaker's own enumeration for that job kind does not have
    # When the config is validated, Then the error names the field and the bad value
    with pytest.raises(InvalidPipelineConfig) as raised:
        parse_pipeline_config(_with(path, value), source="pipeline.json")
    assert path in str(raised.value) and problem in str(raised.value), str(raised.value)


def test_a_mistyped_instance_type_is_answered_with_close_valid_ones() -> None:
    with pytest.raises(InvalidPipelineConfig, match=r"did you mean ml\.m5\.xlarge") as raised:
        parse_pipeline_config(_with("train.compute.instance_type", "ml.m5.xlrge"), source="pipeline.json")
    assert "\n" not in str(raised.value)


def test_valid_instance_types_of_each_kind_are_accepted() -> None:
    config = _with("train.compute.instance_type", "ml.p3.2xlarge")  # a training-only GPU type
    config = {**config, "deploy": {**config["deploy"], "instance_type": "ml.t2.medium"}}  # type: ignore[dict-item]
    parsed = parse_pipeline_config(config, source="pipeline.json")
    assert parsed.train.compute.instance_type == "ml.p3.2xlarge" and parsed.deploy.instance_type == "ml.t2.medium"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("gate.threshold", float("nan")),
        ("preprocess.train_ratio", float("nan")),
        ("preprocess.cache.max_age_hours", float("inf")),
        ("train.hyperparameters.eta", float("nan")),
        ("train.hyperparameters.eta", float("-inf")),
        ("train.hyperparameters.gamma", "Infinity"),
        ("train.hyperparameters.gamma", "nan"),
        ("drift.psi_threshold", float("inf")),
        ("deploy.smoke_test.tolerance", float("nan")),
    ],
)
def test_no_non_finite_number_is_accepted_anywhere_in_a_config(path: str, value: object) -> None:
    # Given a NaN or infinity (as a number, or as a hyperparameter's text)
    # When the config is validated, Then it is refused, naming the field
    with pytest.raises(InvalidPipelineConfig) as raised:
        parse_pipeline_config(_with(path, value), source="pipeline.json")
    assert path.rsplit(".", 1)[0] in str(raised.value), str(raised.value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_text_with_nan_or_infinity_is_not_valid_json(constant: str) -> None:
    # Given pipeline.json text using a constant Python's json reads but JSON does not have
    text = json.dumps(abalone_config()).replace('"threshold": 3.1', f'"threshold": {constant}')
    assert constant in text
    # Then it is refused as JSON, naming the constant
    with pytest.raises(InvalidPipelineConfig, match=rf"not valid JSON: {constant} is not a number JSON allows"):
        parse_pipeline_config(text, source="pipeline.json")


def test_an_override_with_a_non_finite_number_is_refused_by_the_same_models() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import apply_overrides

    # Given a valid config, When an override sets a hyperparameter to NaN
    config = parse_pipeline_config(abalone_config(), source="pipeline.json")
    for value in (float("nan"), "inf"):
        with pytest.raises(InvalidRerun, match=r"train\.hyperparameters.*finite number"):
            apply_overrides(config, {"train.hyperparameters.eta": value}, source="abalone")


def test_the_instance_type_enumerations_are_loaded_once_and_not_on_import() -> None:
    import subprocess
    import sys

    # Given a fresh interpreter, When the config module is imported (the CLI's read-only commands do no more)
    probe = (
        "import sfn_mlops.pipeline as p; before = p.sagemaker_instance_types.cache_info().currsize; "
        "p.parse_pipeline_config(open('models/abalone/pipeline.json').read(), 'x'); "
        "p.parse_pipeline_config(open('models/abalone/pipeline.json').read(), 'x'); "
        "info = p.sagemaker_instance_types.cache_info(); print(before, info.misses, info.currsize)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    # Then nothing was loaded on import, and two validations loaded the service model once
    assert out.stdout.split() == ["0", "1", "1"], out.stdout + out.stderr


def test_a_declared_contract_supplies_the_categorical_columns() -> None:
    config = parse_pipeline_config(abalone_config(), source="pipeline.json")
    assert config.data.contract is not None
    assert config.data.categorical == {"sex": ["M", "F", "I"]}
    assert config.data.contract.feature_names[0] == "sex" and config.data.contract.label.name == "rings"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"label": "age"}, "the contract's label 'rings' is not the label 'age'"),
        ({"categorical": {"sex": ["M", "F"]}}, "categorical must match the contract"),
    ],
)
def test_a_contract_that_disagrees_with_the_data_section_is_refused(data: dict[str, object], problem: str) -> None:
    config = abalone_config()
    config["data"] = {**config["data"], **data}  # type: ignore[dict-item]
    with pytest.raises(InvalidPipelineConfig, match=problem):
        parse_pipeline_config(config, source="pipeline.json")


@pytest.mark.parametrize(
    ("given", "sent"),
    [(True, "true"), (False, "false"), ("true", "true"), (1, 1), (0.5, 0.5)],
    ids=["json true", "json false", "text true", "int 1 stays a number", "float"],
)
def test_a_boolean_hyperparameter_becomes_sagemakers_true_or_false_text_not_1(given: object, sent: object) -> None:
    from sfn_mlops.planner import _hyperparameters

    # Given pipeline.json with a JSON boolean (or another value) as a hyperparameter
    config = parse_pipeline_config(_with("train.hyperparameters.save_model_on_termination", given), source="p.json")
    # When it is validated, Then a boolean is SageMaker's text form, which the container's true/false rules take
    assert config.train.hyperparameters["save_model_on_termination"] == sent
    # And the training job is sent that text
    assert _hyperparameters(config)["save_model_on_termination"] == str(sent)


@pytest.mark.parametrize("text", ["true", "false"])
def test_a_set_override_with_a_json_boolean_hyperparameter_is_sent_as_true_or_false(text: str) -> None:
    from sfn_mlops.rerun import apply_overrides, parse_override

    # Given --set train.hyperparameters.save_model_on_termination=true (the value parses as JSON: a boolean)
    key, value = parse_override(f"train.hyperparameters.save_model_on_termination={text}")
    assert value is (text == "true")
    # When it is applied to a valid config
    config = apply_overrides(
        parse_pipeline_config(abalone_config(), source="pipeline.json"), {key: value}, source="abalone"
    )
    # Then the hyperparameter is the text "true"/"false", not 1/0
    assert config.train.hyperparameters["save_model_on_termination"] == text
