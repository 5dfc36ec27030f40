"""The preprocess job request of each engine: pandas runs its script with the image's python3, spark with the Spark
processing image's smspark-submit (which hands the script's arguments on through a shell line); a categorical label
names its positive class to the script; the engine is part of the unit's fingerprint."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

SPARK_IMAGE = "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
RUNS_ROOT = "s3://artifacts/runs/churn/churn-20250101-000000-abcd/"
CHURN_CONTRACT = {
    "features": [
        {"name": "state", "type": "categorical", "domain": ["AK", "AL"], "nullable": False},
        {"name": "day_minutes", "type": "numeric", "min": 0, "max": 2000, "integer": False, "nullable": False},
    ],
    "label": {"name": "churn", "type": "categorical", "domain": ["no", "yes"], "positive": "yes"},
}
NUMERIC_CONTRACT = {
    "features": [{"name": "length", "type": "numeric", "min": 0, "max": 1, "integer": False, "nullable": False}],
    "label": {"name": "rings", "type": "numeric", "min": 1, "max": 29, "integer": True},
}


def preprocess_config(engine: str, image: str, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "image_uri": image,
        "engine": engine,
        "script": {"uri": "s3://artifacts/pipelines/churn/scripts/preprocess.py", "sha256": "0" * 64},
        "compute": {"instance_type": "ml.m5.xlarge", "instance_count": 1, "volume_size_gb": 30, "max_runtime_s": 3600},
        "label": "churn",
        "categorical": ["state=AK,AL"],
        "train_ratio": 0.7,
        "validation_ratio": 0.15,
        "seed": 42,
        "contract": CHURN_CONTRACT,
        "runs_root": RUNS_ROOT,
    }
    config.update(changes)
    return config


def request_for(config: dict[str, Any]) -> dict[str, Any]:
    from sfn_mlops.jobs import check_job_request, preprocess_request

    inputs = {"config": config, "dataset_snapshot": f"{RUNS_ROOT}input/churn.csv"}
    prepared = preprocess_request("churn-20250101-000000-abcd", "churn", 1, inputs)
    check_job_request("preprocess", prepared["request"])  # SageMaker's own limits accept it
    return dict(prepared["request"])


def test_a_spark_preprocess_runs_its_script_with_smspark_submit_on_the_spark_image() -> None:
    # Given churn's preprocess on the spark engine
    request = request_for(preprocess_config("spark", SPARK_IMAGE))

    # Then the Spark image's own entrypoint starts the script where its code input lands
    app = request["AppSpecification"]
    assert app["ImageUri"] == SPARK_IMAGE
    assert app["ContainerEntrypoint"] == ["smspark-submit", "/opt/ml/processing/input/code/preprocess.py"]
    assert {"InputName": "code", "LocalPath": "/opt/ml/processing/input/code"}.items() <= {
        "InputName": request["ProcessingInputs"][1]["InputName"],
        "LocalPath": request["ProcessingInputs"][1]["S3Input"]["LocalPath"],
    }.items()


def test_a_pandas_preprocess_keeps_the_image_python3() -> None:
    request = request_for(preprocess_config("pandas", SKLEARN_IMAGE))

    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/preprocess.py",
    ]


@pytest.mark.parametrize(("engine", "image"), [("pandas", SKLEARN_IMAGE), ("spark", SPARK_IMAGE)])
def test_a_categorical_label_names_its_positive_class_to_the_script(engine: str, image: str) -> None:
    # Given a contract whose label is text with "yes" as its positive class
    request = request_for(preprocess_config(engine, image))

    # Then the script is told which value to encode 1, after the contract's features
    arguments = shlex.split(" ".join(request["AppSpecification"]["ContainerArguments"]))
    assert arguments[arguments.index("--positive-label") + 1] == "yes"
    assert arguments[arguments.index("--features") + 1] == "state,day_minutes"


def test_a_numeric_label_gets_no_positive_class() -> None:
    config = preprocess_config("pandas", SKLEARN_IMAGE, contract=NUMERIC_CONTRACT, label="rings", categorical=[])

    arguments = request_for(config)["AppSpecification"]["ContainerArguments"]

    assert "--positive-label" not in arguments
    assert arguments[arguments.index("--features") + 1] == "length"


@pytest.mark.parametrize(
    ("categorical", "expected"),
    [
        pytest.param([], [""], id="no categorical columns: an empty value"),
        pytest.param(["plan=basic plus,pro"], ["plan=basic plus,pro"], id="a category with a space"),
        pytest.param(["code=$HOME;x"], ["code=$HOME;x"], id="shell characters"),
    ],
)
def test_spark_arguments_reach_the_script_as_given_through_smspark_submits_shell_line(
    categorical: list[str], expected: list[str]
) -> None:
    # Given arguments a shell would drop or split (smspark-submit joins them with spaces and runs the line)
    request = request_for(preprocess_config("spark", SPARK_IMAGE, categorical=categorical))

    # When the line is split as a shell splits it
    app = request["AppSpecification"]
    line = " ".join([*app["ContainerEntrypoint"][1:], *app["ContainerArguments"]])
    words = shlex.split(line)

    # Then the script gets each argument unchanged
    given = [words[i + 1] for i, word in enumerate(words) if word == "--categorical"]
    assert given == expected
    assert words[0] == "/opt/ml/processing/input/code/preprocess.py"


def test_pandas_arguments_are_passed_unquoted() -> None:
    config = preprocess_config("pandas", SKLEARN_IMAGE, categorical=["plan=basic plus,pro"])

    arguments = request_for(config)["AppSpecification"]["ContainerArguments"]

    assert "plan=basic plus,pro" in arguments


def test_the_engine_is_part_of_the_preprocess_units_fingerprint() -> None:
    from sfn_mlops.fingerprint import static_fingerprints

    # Given the same script, data and image, started by another engine
    dataset = {"content": "sha256:" + "1" * 64}
    pandas = static_fingerprints({"preprocess": preprocess_config("pandas", SPARK_IMAGE)}, dataset)
    spark = static_fingerprints({"preprocess": preprocess_config("spark", SPARK_IMAGE)}, dataset)

    # Then it is another job: a cached result of the other engine is not reused
    assert pandas["preprocess"] != spark["preprocess"]


def test_the_preprocess_unit_config_takes_the_engine_and_the_problem_type() -> None:
    from pydantic import ValidationError
    from sfn_mlops.unit_configs import PreprocessConfig

    config = preprocess_config("spark", SPARK_IMAGE, problem_type="binary_classification", config_sha256="a" * 64)
    parsed = PreprocessConfig.model_validate(config)
    assert (parsed.engine, parsed.problem_type) == ("spark", "binary_classification")
    with pytest.raises(ValidationError, match="engine"):
        PreprocessConfig.model_validate({**config, "engine": "dask"})


@pytest.mark.parametrize(
    ("image", "refused"),
    [
        pytest.param(SPARK_IMAGE, False, id="spark: Spark spreads over them"),
        pytest.param(SKLEARN_IMAGE, True, id="sklearn"),
    ],
)
def test_two_instances_are_accepted_locally_for_the_spark_image_only(image: str, refused: bool) -> None:
    from sfn_mlops_local.local.sagemaker_jobs import instance_count_refusal

    # Given a processing job asking for two instances (which SageMaker's limits allow)
    config = preprocess_config("spark", image)
    config["compute"] = {**config["compute"], "instance_count": 2}
    request = request_for(config)
    count = request["ProcessingResources"]["ClusterConfig"]["InstanceCount"]

    # Then the local runtime refuses it for an image it runs on one host, and runs it for Spark's
    refusal = instance_count_refusal(image, count)
    assert (refusal is not None) is refused
    if refused:
        assert refusal is not None and "InstanceCount 2" in refusal


@pytest.mark.parametrize(("engine", "image"), [("spark", SPARK_IMAGE), ("pandas", SKLEARN_IMAGE)])
def test_a_feature_list_longer_than_one_container_argument_goes_in_several(engine: str, image: str) -> None:
    # Given a contract whose feature names joined exceed SageMaker's 256 characters per container argument
    many = [
        {"name": f"a_rather_long_feature_name_{i}", "type": "numeric", "min": 0, "max": 1, "integer": False,
         "nullable": False}
        for i in range(30)
    ]  # fmt: skip
    config = preprocess_config(engine, image, contract={**CHURN_CONTRACT, "features": many})

    # When the request is built (request_for checks it against SageMaker's limits)
    arguments = request_for(config)["AppSpecification"]["ContainerArguments"]
    chunks = [arguments[i + 1] for i, arg in enumerate(arguments) if arg == "--features"]

    # Then every feature is named, in the contract's order, over several --features each within the limit
    assert len(chunks) > 1 and all(len(chunk) <= 256 for chunk in chunks)
    assert ",".join(chunks).split(",") == [f["name"] for f in many]
    assert "--positive-label" in arguments


def test_the_job_units_a_read_only_command_knows_are_the_units_with_request_builders() -> None:
    # `mlops status` tells job units by naming.JOB_UNITS, without importing the builders: one list, two places
    from sfn_mlops.jobs import BUILDERS
    from sfn_mlops.naming import JOB_UNITS

    assert set(BUILDERS) == JOB_UNITS
