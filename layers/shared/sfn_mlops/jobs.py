"""SageMaker job requests for each unit kind, from the unit's planned config and upstream outputs.

The worker state machines pass these fields to ``sagemaker:create*Job.sync``; the execution role is
injected by the state machine itself so the template shows which role every job uses.
"""

from __future__ import annotations

import shlex
from typing import Any

from sfn_mlops.adoption import completed_job
from sfn_mlops.api_limits import refusal
from sfn_mlops.errors import InvalidJobRequest, InvalidUnitInput
from sfn_mlops.events import JobEvent, parse_event
from sfn_mlops.naming import job_name
from sfn_mlops.unit_configs import validated_config

PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"


def _require(inputs: dict[str, Any], *path: str) -> Any:
    value: Any = inputs
    for part in path:
        if not isinstance(value, dict) or part not in value:
            raise InvalidUnitInput(f"unit input is missing {'.'.join(path)}")
        value = value[part]
    return value


def _unit_prefix(config: dict[str, Any], unit: str, attempt: int) -> str:
    return f"{config['runs_root']}{unit}/a{attempt}/"


def _tags(run_id: str, pipeline: str, unit: str) -> list[dict[str, str]]:
    return [
        {"Key": "sfn-mlops:pipeline", "Value": pipeline},
        {"Key": "sfn-mlops:run-id", "Value": run_id},
        {"Key": "sfn-mlops:unit", "Value": unit},
    ]


def _processing_resources(compute: dict[str, Any]) -> dict[str, Any]:
    return {
        "ClusterConfig": {
            "InstanceCount": compute["instance_count"],
            "InstanceType": compute["instance_type"],
            "VolumeSizeInGB": compute["volume_size_gb"],
        }
    }


def _s3_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _s3_output(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


# Jobs run user-published scripts: no network access from the container (SageMaker itself stages the
# S3 inputs and outputs), and encrypted traffic between instances of a distributed job.
ISOLATED_PROCESSING = {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}


# How each preprocess engine's script is started in its image. pandas: the image's python3. spark: the Spark
# processing image's own entrypoint, smspark-submit, which runs spark-submit (YARN, client mode) with the script
# and hands everything after the script on to it (aws/sagemaker-spark-container, src/smspark/cli.py: click's
# allow_interspersed_args=False, app_arguments UNPROCESSED), through a shell (below); the arguments are the pandas
# script's.
MAX_ARGUMENT_LENGTH = 256  # AppSpecification.ContainerArguments members (SageMaker's API model)
ENGINE_LAUNCHERS: dict[str, tuple[str, ...]] = {"pandas": ("python3",), "spark": ("smspark-submit",)}


def feature_chunks(names: list[str], limit: int = MAX_ARGUMENT_LENGTH) -> list[str]:
    """Comma-joined runs of ``names``, each within ``limit`` characters once quoted for a shell (the Spark image's
    smspark-submit runs its arguments through one). A single name over the limit is left to the API check."""
    chunks: list[str] = []
    for name in names:
        joined = f"{chunks[-1]},{name}" if chunks else name
        if chunks and len(shlex.quote(joined)) <= limit:
            chunks[-1] = joined
        else:
            chunks.append(name)
    return chunks


def preprocess_request(run_id: str, pipeline: str, attempt: int, inputs: dict[str, Any]) -> dict[str, Any]:
    config = _require(inputs, "config")
    snapshot = _require(inputs, "dataset_snapshot")
    prefix = _unit_prefix(config, "preprocess", attempt)
    script_name = config["script"]["uri"].rsplit("/", 1)[-1]
    out = f"{PROCESSING_ROOT}/output"
    arguments = [
        "--input-dir",
        f"{PROCESSING_ROOT}/input/data",
        "--output-dir",
        out,
        "--label",
        config["label"],
    ]
    # An explicit empty spec tells the script there are no categorical columns (its default is abalone's).
    for spec in config["categorical"] or [""]:
        arguments += ["--categorical", spec]
    contract = config.get("contract")
    # The script then refuses any column the contract does not name, on its own too. One container argument holds
    # at most 256 characters (churn's 19 columns need more): the list goes in as many --features as it takes.
    for chunk in feature_chunks([f["name"] for f in contract["features"]] if contract else []):
        arguments += ["--features", chunk]
    if contract and contract["label"].get("type") == "categorical":  # the class encoded 1: the contract's
        arguments += ["--positive-label", contract["label"]["positive"]]
    arguments += [
        "--train-ratio",
        str(config["train_ratio"]),
        "--validation-ratio",
        str(config["validation_ratio"]),
        "--seed",
        str(config["seed"]),
    ]
    engine = config.get("engine", "pandas")
    if engine == "spark":
        # smspark-submit joins the script and its arguments with spaces and runs the line with a shell
        # (src/smspark/cli.py, src/smspark/job.py: subprocess.run(cmd, shell=True)): quoted, each argument reaches
        # the script as it is here (an empty --categorical, a category with a space or a '$' in it).
        arguments = [shlex.quote(argument) for argument in arguments]
    # baseline/: the raw training split, which the worker's next step turns into the data baseline.
    splits = ["train", "validation", "test", "schema", "smoke", "baseline"]
    name = job_name(run_id, "preprocess", attempt)
    return {
        "job_name": name,
        "request": {
            "ProcessingJobName": name,
            "AppSpecification": {
                "ImageUri": config["image_uri"],
                "ContainerEntrypoint": [*ENGINE_LAUNCHERS[engine], f"{CODE_DIR}/{script_name}"],
                "ContainerArguments": arguments,
            },
            "ProcessingInputs": [
                _s3_input("data", snapshot, f"{PROCESSING_ROOT}/input/data"),
                _s3_input("code", config["script"]["uri"], CODE_DIR),
            ],
            "ProcessingOutputConfig": {"Outputs": [_s3_output(s, f"{prefix}{s}/", f"{out}/{s}") for s in splits]},
            "ProcessingResources": _processing_resources(config["compute"]),
            "StoppingCondition": {"MaxRuntimeInSeconds": config["compute"]["max_runtime_s"]},
            "Environment": {"MLOPS_RUN_ID": run_id, "MLOPS_UNIT": "preprocess"},
            "NetworkConfig": ISOLATED_PROCESSING,
            "Tags": _tags(run_id, pipeline, "preprocess"),
        },
        "outputs": {
            **{f"{s}_uri": f"{prefix}{s}/" for s in splits},
            "raw_test_uri": f"{prefix}smoke/raw.csv",
            "dataset_snapshot": snapshot,
        },
    }


def train_request(run_id: str, pipeline: str, attempt: int, inputs: dict[str, Any]) -> dict[str, Any]:
    config = _require(inputs, "config")
    data = _require(inputs, "data")
    prefix = _unit_prefix(config, "train", attempt)
    compute = config["compute"]

    def channel(name: str, uri: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "ContentType": "text/csv",
            "InputMode": "File",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }

    name = job_name(run_id, "train", attempt)
    return {
        "job_name": name,
        "request": {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": config["image_uri"], "TrainingInputMode": "File"},
            "HyperParameters": {k: str(v) for k, v in config["hyperparameters"].items()},
            "InputDataConfig": [
                channel("train", _require(data, "train_uri")),
                channel("validation", _require(data, "validation_uri")),
            ],
            "OutputDataConfig": {"S3OutputPath": prefix},
            "ResourceConfig": {
                "InstanceCount": compute["instance_count"],
                "InstanceType": compute["instance_type"],
                "VolumeSizeInGB": compute["volume_size_gb"],
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": compute["max_runtime_s"]},
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
            "Tags": _tags(run_id, pipeline, "train"),
        },
        "outputs": {"model_data": f"{prefix}{name}/output/model.tar.gz"},
    }


def evaluate_request(run_id: str, pipeline: str, attempt: int, inputs: dict[str, Any]) -> dict[str, Any]:
    config = _require(inputs, "config")
    model_data = _require(inputs, "model", "model_data")
    test_uri = _require(inputs, "data", "test_uri")
    prefix = _unit_prefix(config, "evaluate", attempt)
    train_uri = _require(inputs, "data", "train_uri")
    # The model serving the pipeline's first stage, scored on the same rows (champion/challenger gate).
    champion = (config.get("champion") or {}).get("model_data")
    script_name = config["script"]["uri"].rsplit("/", 1)[-1]
    name = job_name(run_id, "evaluate", attempt)
    arguments = [
        "--model-dir",
        f"{PROCESSING_ROOT}/model",
        "--test-dir",
        f"{PROCESSING_ROOT}/test",
        "--train-dir",
        f"{PROCESSING_ROOT}/train",
        "--output-dir",
        f"{PROCESSING_ROOT}/evaluation",
    ]
    channels = [
        _s3_input("model", model_data, f"{PROCESSING_ROOT}/model"),
        _s3_input("test", test_uri, f"{PROCESSING_ROOT}/test"),
        _s3_input("train", train_uri, f"{PROCESSING_ROOT}/train"),
        _s3_input("code", config["script"]["uri"], CODE_DIR),
    ]
    if champion:
        arguments += ["--champion-dir", f"{PROCESSING_ROOT}/champion"]
        channels.append(_s3_input("champion", champion, f"{PROCESSING_ROOT}/champion"))
    return {
        "job_name": name,
        "request": {
            "ProcessingJobName": name,
            "AppSpecification": {
                "ImageUri": config["image_uri"],
                "ContainerEntrypoint": ["python3", f"{CODE_DIR}/{script_name}"],
                "ContainerArguments": arguments,
            },
            "ProcessingInputs": channels,
            "ProcessingOutputConfig": {
                "Outputs": [_s3_output("evaluation", f"{prefix}evaluation/", f"{PROCESSING_ROOT}/evaluation")]
            },
            "ProcessingResources": _processing_resources(config["compute"]),
            "StoppingCondition": {"MaxRuntimeInSeconds": config["compute"]["max_runtime_s"]},
            "Environment": {"MLOPS_RUN_ID": run_id, "MLOPS_UNIT": "evaluate"},
            "NetworkConfig": ISOLATED_PROCESSING,
            "Tags": _tags(run_id, pipeline, "evaluate"),
        },
        "outputs": {
            "evaluation_uri": f"{prefix}evaluation/evaluation.json",
            "predictions_uri": f"{prefix}evaluation/predictions.csv",
        },
    }


BUILDERS = {"preprocess": preprocess_request, "train": train_request, "evaluate": evaluate_request}


JOB_KINDS = {"preprocess": "processing", "train": "training", "evaluate": "processing"}

# The SageMaker operation each unit's request is for, and what the state machine adds to it (its role).
OPERATIONS = {"preprocess": "CreateProcessingJob", "train": "CreateTrainingJob", "evaluate": "CreateProcessingJob"}
SUPPLIED_BY_STATE_MACHINE = ("RoleArn",)


def prepare_job(sm: Any, event: dict[str, Any] | JobEvent) -> dict[str, Any]:
    """The job request, plus ``adopted``: the result of a job that already completed under its name (or null)."""
    job = event if isinstance(event, JobEvent) else parse_job_event(event)
    prepared = build_job_request(job)
    prepared["adopted"] = completed_job(sm, JOB_KINDS[job.unit], prepared["job_name"])
    return prepared


def parse_job_event(event: object) -> JobEvent:
    """The worker's event, its unit's config validated again (``InvalidEvent``, ``FingerprintMismatch``)."""
    job = parse_event(JobEvent, event, "job unit input")
    config = validated_config(job)
    return job.model_copy(update={"inputs": {**job.inputs, "config": config}})


def build_job_request(event: dict[str, Any] | JobEvent) -> dict[str, Any]:
    job = event if isinstance(event, JobEvent) else parse_job_event(event)
    builder = BUILDERS[job.unit]
    try:
        prepared = builder(job.run_id, job.pipeline, job.attempt, dict(job.inputs))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidUnitInput(f"unit {job.unit} input is malformed: {exc}") from exc
    check_job_request(job.unit, prepared["request"])
    return prepared


def check_job_request(unit: str, request: dict[str, Any]) -> None:
    """Refuse a request SageMaker would refuse (``InvalidJobRequest`` with its ValidationException message), so
    the run fails at once naming the limit instead of after the state machine's retries of the call."""
    operation = OPERATIONS[unit]
    message = refusal(operation, request, SUPPLIED_BY_STATE_MACHINE)
    if message is not None:
        raise InvalidJobRequest(f"unit {unit}: SageMaker would refuse its {operation} request: {message}")
