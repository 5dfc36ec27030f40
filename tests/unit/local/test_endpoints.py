"""Local SageMaker real-time endpoints: models from the registry, blue/green updates, alarms, InvokeEndpoint.

The endpoint service is driven through boto3 in-process (its botocore hooks), as the interpreter's
``aws-sdk:sagemaker:*`` tasks and the Lambda handlers reach it inside the local service; containers run in
their own processes. Waits are real seconds, kept to one or two.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.conftest import wait_until
from tests.unit.local.model_fixtures import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE, tar_gz

pytestmark = pytest.mark.container  # runs a job container's script or a model server: not in the fast tier

BUCKET = "endpoint-tests"
RAW_ROWS = ["M,0.455,0.365", "F,0.53,0.42", "I,0.33,0.255", "M,0.7,0.555"]
CATEGORIES = ["F", "I", "M"]
MEAN, STD = [0.5, 0.4], [0.1, 0.08]

# The inference pipeline's first container: raw rows in, the encoded rows the model was trained on out.
INFERENCE_PY = """
import json
import re
import os

import numpy as np


def model_fn(model_dir):
    with open(os.path.join(model_dir, "preprocessing.json")) as handle:
        return json.load(handle)


def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"expected text/csv, got {content_type}")
    return [line.split(",") for line in body.strip().splitlines()]


def predict_fn(rows, spec):
    encoded = []
    for row in rows:
        onehot = [1.0 if row[0] == c else 0.0 for c in spec["categories"]]
        numbers = [(float(v) - m) / s for v, m, s in zip(row[1:], spec["mean"], spec["std"])]
        encoded.append(onehot + numbers)
    return np.array(encoded)


def output_fn(prediction, accept):
    return "\\n".join(",".join(repr(float(v)) for v in row) for row in prediction), "text/csv"
"""


def encode(rows: list[str]) -> np.ndarray:
    encoded = []
    for row in rows:
        fields = row.split(",")
        onehot = [1.0 if fields[0] == c else 0.0 for c in CATEGORIES]
        encoded.append(onehot + [(float(v) - m) / s for v, m, s in zip(fields[1:], MEAN, STD, strict=True)])
    return np.array(encoded)


def train(scale: float, tmp: Path) -> tuple[Any, bytes]:
    """A tiny xgboost 1.7 model on encoded rows, and its model.tar.gz as the training container writes it."""
    import xgboost as xgb

    rng = np.random.default_rng(7)
    raw = [f"{CATEGORIES[i % 3]},{rng.uniform(0.2, 0.8):.3f},{rng.uniform(0.15, 0.6):.3f}" for i in range(60)]
    features = encode(raw)
    labels = scale * (features[:, 3] * 3 + features[:, 4] + features[:, 2])
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3}, xgb.DMatrix(features, labels), 8)
    path = tmp / f"model-{scale}"
    booster.save_model(str(path))  # no extension: the binary format the 1.7-1 container writes
    return booster, tar_gz({"xgboost-model": path.read_bytes()})


@dataclass
class Lab:
    service: Any
    sm: Any
    runtime: Any
    s3: Any
    cloudwatch: Any
    tmp: Path

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return f"s3://{BUCKET}/{key}"

    def describe(self, name: str) -> dict[str, Any]:
        described: dict[str, Any] = self.sm.describe_endpoint(EndpointName=name)
        return described

    def status(self, name: str) -> str:
        return str(self.describe(name)["EndpointStatus"])

    def wait_for(self, name: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: (d := self.describe(name))["EndpointStatus"] in statuses and d, timeout=timeout)

    def invoke(self, name: str, rows: list[str], **kwargs: Any) -> tuple[list[float], dict[str, Any]]:
        answer = self.runtime.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Accept="text/csv", Body="\n".join(rows), **kwargs
        )
        body = answer["Body"].read().decode()
        return [float(v) for v in body.replace(",", " ").split()], answer

    def xgboost_model(self, name: str, model_data: str) -> None:
        self.sm.create_model(
            ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": model_data}
        )

    def config(self, name: str, model: str, variant: str = "AllTraffic", count: int = 1) -> None:
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": count,
                }
            ],
        )


@pytest.fixture
def lab(aws: None, tmp_path: Path) -> Iterator[Lab]:
    """The endpoint service on moto, hooked into boto3's default session as the local runtime hooks it."""
    from sfn_mlops_local.local.endpoints import EndpointService

    boto3.setup_default_session(region_name="us-east-1")
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]
        return clients[service]

    service = EndpointService(client, tmp_path / "state", tmp_path / "logs")
    events: Any = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-call.sagemaker", service.on_call)
    events.register("before-call.sagemaker-runtime.InvokeEndpoint", service.on_invoke)
    client("s3").create_bucket(Bucket=BUCKET)
    lab = Lab(service, client("sagemaker"), client("sagemaker-runtime"), client("s3"), client("cloudwatch"), tmp_path)
    try:
        yield lab
    finally:
        lab.service.stop()  # the one in use (a test may have restarted it)
        boto3.DEFAULT_SESSION = None  # later tests get a session without these hooks


@pytest.fixture
def model_a(lab: Lab) -> tuple[Any, str]:
    booster, archive = train(1.0, lab.tmp)
    return booster, lab.put("models/a/model.tar.gz", archive)


@pytest.fixture
def model_b(lab: Lab) -> tuple[Any, str]:
    booster, archive = train(3.0, lab.tmp)
    return booster, lab.put("models/b/model.tar.gz", archive)


def predicted(booster: Any, rows: list[str]) -> list[float]:
    import xgboost as xgb

    return [float(v) for v in booster.predict(xgb.DMatrix(encode(rows)))]


def register_pipeline_package(lab: Lab, model_data: str) -> str:
    """An inference pipeline package as the training flow registers it: preprocessing, then the model."""
    preprocessing = json.dumps({"categories": CATEGORIES, "mean": MEAN, "std": STD}).encode()
    code = lab.put(
        "models/pre/model.tar.gz",
        tar_gz({"preprocessing.json": preprocessing, "code/inference.py": INFERENCE_PY.encode()}),
    )
    lab.sm.create_model_package_group(ModelPackageGroupName="abalone")
    package = lab.sm.create_model_package(
        ModelPackageGroupName="abalone",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": SKLEARN_IMAGE,
                    "ModelDataUrl": code,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                },
                {"Image": XGBOOST_IMAGE, "ModelDataUrl": model_data},
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
    )
    return str(package["ModelPackageArn"])


def canary(wait: int, alarms: list[str] | None = None, percent: int = 20) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": percent},
                "WaitIntervalInSeconds": wait,
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 600,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def test_a_pipeline_model_from_a_package_goes_in_service_and_predicts_what_xgboost_predicts(
    lab: Lab, model_a: tuple[Any, str]
) -> None:
    booster, model_data = model_a
    package = register_pipeline_package(lab, model_data)
    # Given a model made from the registered package (as the deploy worker makes it), and a config
    lab.sm.create_model(ModelName="abalone-1", ExecutionRoleArn=ROLE, Containers=[{"ModelPackageName": package}])
    described = lab.sm.describe_model(ModelName="abalone-1")
    assert described["Containers"] == [{"ModelPackageName": package}]
    lab.config("abalone-1", "abalone-1")
    # When the endpoint is created
    lab.sm.create_endpoint(EndpointName="abalone-prod", EndpointConfigName="abalone-1")
    creating = lab.describe("abalone-prod")
    # Then it is Creating (its new instances shown pending), then InService once both containers loaded
    assert creating["EndpointStatus"] == "Creating"
    assert creating["PendingDeploymentSummary"]["EndpointConfigName"] == "abalone-1"
    started = time.monotonic()
    in_service = lab.wait_for("abalone-prod", "InService", "Failed")
    print(f"endpoint InService after {time.monotonic() - started:.2f}s")
    assert in_service["EndpointStatus"] == "InService", in_service.get("FailureReason")
    assert "PendingDeploymentSummary" not in in_service
    (variant,) = in_service["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and variant["CurrentWeight"] == 1.0
    assert [i["SpecifiedImage"] for i in variant["DeployedImages"]] == [SKLEARN_IMAGE, XGBOOST_IMAGE]
    assert variant["CurrentInstanceCount"] == 1 and variant["DesiredInstanceCount"] == 1
    # When raw CSV rows are sent, Then the pipeline answers xgboost's own predictions on the encoded rows
    predictions, answer = lab.invoke("abalone-prod", RAW_ROWS)
    assert np.allclose(predictions, predicted(booster, RAW_ROWS), atol=1e-6, rtol=0)
    assert answer["ContentType"] == "text/csv; charset=utf-8" and answer["InvokedProductionVariant"] == "AllTraffic"
    # And a request each container refuses is a ModelError naming it, with its status and message
    with pytest.raises(ClientError) as refused:
        lab.runtime.invoke_endpoint(EndpointName="abalone-prod", ContentType="application/json", Body=b"[1]")
    error = refused.value.response
    assert error["Error"]["Code"] == "ModelError" and error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500 and "expected text/csv" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received server error (500) from container-1 with message")
    assert "/aws/sagemaker/Endpoints/abalone-prod in account 123456789012" in error["Error"]["Message"]
    # And the invocations are in CloudWatch as SageMaker publishes them
    lab.service._metrics.flush()
    metrics = lab.cloudwatch.list_metrics(Namespace="AWS/SageMaker")["Metrics"]
    names = {m["MetricName"] for m in metrics}
    assert {"Invocations", "Invocation5XXErrors", "ModelLatency"} <= names
    dimensions = next(m["Dimensions"] for m in metrics if m["MetricName"] == "Invocations")
    assert sorted((d["Name"], d["Value"]) for d in dimensions) == [
        ("EndpointName", "abalone-prod"),
        ("VariantName", "AllTraffic"),
    ]


def test_a_canary_update_shows_its_traffic_step_then_ends_on_the_new_config(
    lab: Lab, model_a: tuple[Any, str], model_b: tuple[Any, str]
) -> None:
    (blue_booster, blue_data), (green_booster, green_data) = model_a, model_b
    lab.xgboost_model("blue", blue_data)
    lab.xgboost_model("green", green_data)
    lab.config("blue", "blue")
    lab.config("green", "green")
    lab.sm.create_endpoint(EndpointName="ep", EndpointConfigName="blue")
    lab.wait_for("ep", "InService")
    rows = encoded_rows(RAW_ROWS[:1])
    blue, green = predicted(blue_booster, RAW_ROWS[:1]), predicted(green_booster, RAW_ROWS[:1])
    # When it is updated with a 20% canary baked for 2 s
    deployment = canary(wait=2)
    lab.sm.update_endpoint(EndpointName="ep", EndpointConfigName="green", DeploymentConfig=deployment)
    # Then DescribeEndpoint shows the step while it bakes: 20% on the new fleet, 80% on the old one
    baking = wait_until(
        lambda: (d := lab.describe("ep")).get("PendingDeploymentSummary") and _phase(d) == "Baking" and d
    )
    assert baking["EndpointStatus"] == "Updating" and baking["EndpointConfigName"] == "blue"
    pending = baking["PendingDeploymentSummary"]
    assert pending["EndpointConfigName"] == "green"
    (new_variant,) = pending["ProductionVariants"]
    assert new_variant["CurrentWeight"] == pytest.approx(0.2) and new_variant["DesiredWeight"] == 1.0
    assert baking["ProductionVariants"][0]["CurrentWeight"] == pytest.approx(0.8)
    assert baking["LastDeploymentConfig"] == deployment
    # And requests meanwhile are answered by both fleets, by those weights
    answers = [lab.invoke("ep", rows)[0] for _ in range(60)]
    assert any(np.allclose(a, green, atol=1e-6) for a in answers)
    assert any(np.allclose(a, blue, atol=1e-6) for a in answers)
    # And it ends InService on the new config, whose model alone answers
    done = lab.wait_for("ep", "InService")
    assert done["EndpointConfigName"] == "green" and "PendingDeploymentSummary" not in done
    assert "FailureReason" not in done and done["ProductionVariants"][0]["CurrentWeight"] == 1.0
    assert all(np.allclose(lab.invoke("ep", rows)[0], green, atol=1e-6) for _ in range(10))


def test_an_alarm_in_alarm_while_baking_rolls_the_update_back_to_the_old_config(
    lab: Lab, model_a: tuple[Any, str], model_b: tuple[Any, str]
) -> None:
    (blue_booster, blue_data), (_, green_data) = model_a, model_b
    lab.xgboost_model("blue", blue_data)
    lab.xgboost_model("green", green_data)
    lab.config("blue", "blue")
    lab.config("green", "green")
    lab.sm.create_endpoint(EndpointName="ep", EndpointConfigName="blue")
    lab.wait_for("ep", "InService")
    lab.cloudwatch.put_metric_alarm(
        AlarmName="ep-5xx",
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    # Given an update baking its canary with the alarm watched
    lab.sm.update_endpoint(EndpointName="ep", EndpointConfigName="green", DeploymentConfig=canary(2, ["ep-5xx"]))
    wait_until(lambda: _phase(lab.describe("ep")) == "Baking")
    # When the alarm goes to ALARM (locally, alarms are set by hand: set-alarm-state)
    lab.cloudwatch.set_alarm_state(AlarmName="ep-5xx", StateValue="ALARM", StateReason="errors on the canary")
    # Then the update rolls back: RollingBack, then InService on the old config with a readable reason
    rolling = lab.wait_for("ep", "RollingBack", "InService", timeout=5)
    assert rolling["EndpointStatus"] == "RollingBack"
    assert rolling["ProductionVariants"][0]["CurrentWeight"] == 1.0
    done = lab.wait_for("ep", "InService")
    assert done["EndpointConfigName"] == "blue" and "PendingDeploymentSummary" not in done
    assert "ep-5xx" in done["FailureReason"] and "rolled back" in done["FailureReason"]
    # And the old model answers every request
    rows = encoded_rows(RAW_ROWS[:2])
    blue = predicted(blue_booster, RAW_ROWS[:2])
    assert all(np.allclose(lab.invoke("ep", rows)[0], blue, atol=1e-6) for _ in range(10))


def test_a_model_that_cannot_load_fails_a_new_endpoint_and_rolls_an_update_back(
    lab: Lab, model_a: tuple[Any, str]
) -> None:
    _, good = model_a
    broken = lab.put("models/broken/model.tar.gz", tar_gz({"xgboost-model": b"not a booster"}))
    lab.xgboost_model("good", good)
    lab.xgboost_model("broken", broken)
    lab.xgboost_model("missing", f"s3://{BUCKET}/models/none/model.tar.gz")
    lab.config("good", "good")
    lab.config("broken", "broken")
    lab.config("missing", "missing")
    # When an endpoint is created on a model that cannot load, Then it is Failed with the reason
    lab.sm.create_endpoint(EndpointName="bad", EndpointConfigName="broken")
    failed = lab.wait_for("bad", "Failed", "InService")
    assert failed["EndpointStatus"] == "Failed"
    assert failed["FailureReason"].startswith(
        "The primary container for production variant AllTraffic did not pass the ping health check"
    )
    assert "cannot be loaded" in failed["FailureReason"]
    # And it answers no request, cannot be updated, and can be deleted
    with pytest.raises(ClientError, match="Endpoint bad of account 123456789012 not found"):
        lab.invoke("bad", ["1,2,3,4,5"])
    with pytest.raises(ClientError, match="DeleteEndpoint is the only operation"):
        lab.sm.update_endpoint(EndpointName="bad", EndpointConfigName="good")
    lab.sm.delete_endpoint(EndpointName="bad")
    wait_until(lambda: "bad" not in {e["EndpointName"] for e in lab.sm.list_endpoints()["Endpoints"]})
    # And a model whose data is missing fails with SageMaker's download message
    lab.sm.create_endpoint(EndpointName="nodata", EndpointConfigName="missing")
    assert lab.wait_for("nodata", "Failed", "InService")["FailureReason"].startswith(
        f'Failed to download model data(bucket: "{BUCKET}", key: "models/none/model.tar.gz")'
    )
    # When a serving endpoint is updated to the broken model, Then it rolls back: no half-made update
    lab.sm.create_endpoint(EndpointName="ep", EndpointConfigName="good")
    lab.wait_for("ep", "InService")
    lab.sm.update_endpoint(EndpointName="ep", EndpointConfigName="broken")
    done = wait_until(
        lambda: (d := lab.describe("ep"))["EndpointStatus"] == "InService" and d.get("FailureReason") and d
    )
    assert done["EndpointConfigName"] == "good" and "did not pass the ping health check" in done["FailureReason"]
    assert lab.invoke("ep", encoded_rows(RAW_ROWS[:1]))[1]["InvokedProductionVariant"] == "AllTraffic"


def test_requests_aws_refuses_are_refused_with_its_codes_and_words(lab: Lab, model_a: tuple[Any, str]) -> None:
    _, model_data = model_a
    arn = "arn:aws:sagemaker:us-east-1:123456789012"

    def refused(call: Any, **kwargs: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            call(**kwargs)
        error = caught.value.response["Error"]
        return error["Code"], error["Message"]

    assert refused(lab.sm.describe_endpoint, EndpointName="nope") == (
        "ValidationException",
        f'Could not find endpoint "{arn}:endpoint/nope".',
    )
    assert refused(lab.sm.describe_model, ModelName="Nope") == (
        "ValidationException",
        f'Could not find model "{arn}:model/nope".',
    )
    assert refused(lab.sm.create_endpoint, EndpointName="ep", EndpointConfigName="nope") == (
        "ValidationException",
        f'Could not find endpoint configuration "{arn}:endpoint-config/nope".',
    )
    code, message = refused(lab.sm.create_endpoint, EndpointName="bad_name", EndpointConfigName="x" * 64)
    assert code == "ValidationException" and message.startswith("2 validation errors detected: ")
    assert "Value 'bad_name' at 'endpointName' failed to satisfy constraint: Member must satisfy regular " in message
    assert "at 'endpointConfigName' failed to satisfy constraint: Member must have length less than or equal to 63" in (
        message
    )
    lab.xgboost_model("m", model_data)
    assert refused(lab.sm.create_model, ModelName="m", PrimaryContainer={"Image": XGBOOST_IMAGE}) == (
        "ValidationException",
        f'Cannot create already existing model "{arn}:model/m".',
    )
    code, message = refused(
        lab.sm.create_endpoint_config,
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "other", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    assert message == f'Could not find model "{arn}:model/other".'
    lab.config("c", "m")
    lab.sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")
    # An endpoint being created or updated cannot be updated or deleted
    expected = ("ValidationException", f'Cannot update in-progress endpoint "{arn}:endpoint/ep".')
    assert refused(lab.sm.update_endpoint, EndpointName="ep", EndpointConfigName="c") == expected
    assert refused(lab.sm.delete_endpoint, EndpointName="ep") == expected
    lab.wait_for("ep", "InService")
    code, message = refused(
        lab.sm.update_endpoint,
        EndpointName="ep",
        EndpointConfigName="c",
        DeploymentConfig=canary(wait=1, percent=80),
    )
    assert "CanarySize must be between 0% and 50%" in message
    lab.sm.update_endpoint(EndpointName="ep", EndpointConfigName="c", DeploymentConfig=canary(wait=1))
    assert refused(lab.sm.update_endpoint, EndpointName="ep", EndpointConfigName="c") == expected
    # InvokeEndpoint: an unknown endpoint, and a request the model refuses
    assert refused(lab.runtime.invoke_endpoint, EndpointName="nope", Body=b"1") == (
        "ValidationError",
        "Endpoint nope of account 123456789012 not found.",
    )
    code, message = refused(lab.runtime.invoke_endpoint, EndpointName="ep", ContentType="text/csv", Body=b"a,b")
    assert code == "ModelError"
    assert message.startswith('Received client error (415) from primary with message "Loading csv data failed')
    assert [e["EndpointName"] for e in lab.sm.list_endpoints(StatusEquals="Updating")["Endpoints"]] == ["ep"]
    lab.wait_for("ep", "InService")


def test_after_a_restart_endpoints_serve_again_and_an_update_in_flight_comes_back_rolled_back(
    lab: Lab, model_a: tuple[Any, str], model_b: tuple[Any, str]
) -> None:
    from sfn_mlops_local.local.endpoints import EndpointService

    (blue_booster, blue_data), (_, green_data) = model_a, model_b
    lab.xgboost_model("blue", blue_data)
    lab.xgboost_model("green", green_data)
    lab.config("blue", "blue")
    lab.config("green", "green")
    for name in ("steady", "moving"):
        lab.sm.create_endpoint(EndpointName=name, EndpointConfigName="blue")
        lab.wait_for(name, "InService")
    lab.sm.update_endpoint(EndpointName="moving", EndpointConfigName="green", DeploymentConfig=canary(wait=60))
    wait_until(lambda: _phase(lab.describe("moving")) == "Baking")
    # Given the state saved while an update bakes, When the service is killed and starts again from it
    saved = lab.service.snapshot()
    lab.service.stop()
    restarted = EndpointService(lab.service._client, lab.tmp / "state", lab.tmp / "logs")
    events: Any = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.unregister("before-call.sagemaker", lab.service.on_call)
    events.unregister("before-call.sagemaker-runtime.InvokeEndpoint", lab.service.on_invoke)
    events.register("before-call.sagemaker", restarted.on_call)
    events.register("before-call.sagemaker-runtime.InvokeEndpoint", restarted.on_invoke)
    lab.service = restarted
    lab.sm, lab.runtime = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")  # clients copy the hooks
    assert restarted.restore(saved, stopped_cleanly=False) == ["moving"]
    # Then the update comes back rolled back to the config it served, saying why
    moving = lab.describe("moving")
    assert moving["EndpointStatus"] == "InService" and moving["EndpointConfigName"] == "blue"
    assert "local service was killed while it was in progress" in moving["FailureReason"]
    # And both endpoints serve the old model again
    rows = encoded_rows(RAW_ROWS)
    for name in ("steady", "moving"):
        assert np.allclose(lab.invoke(name, rows)[0], predicted(blue_booster, RAW_ROWS), atol=1e-6)
    assert lab.service.status() == {"steady": "InService", "moving": "InService"}


def test_the_interpreter_deploys_a_registered_package_through_aws_sdk_tasks(
    lab: Lab, model_a: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.config import default_user_config

    from sfn_mlops_local.local import moto_adaptations

    booster, model_data = model_a
    package = register_pipeline_package(lab, model_data)
    moto_adaptations.apply()
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    sdk = "arn:aws:states:::aws-sdk:sagemaker"
    definition = {
        "StartAt": "Model",
        "States": {
            "Model": {
                "Type": "Task",
                "Resource": f"{sdk}:createModel",
                "Parameters": {
                    "ModelName": "flow-1",
                    "ExecutionRoleArn": ROLE,
                    "Containers": [{"ModelPackageName": package}],
                },
                "ResultPath": None,
                "Next": "Config",
            },
            "Config": {
                "Type": "Task",
                "Resource": f"{sdk}:createEndpointConfig",
                "Parameters": {
                    "EndpointConfigName": "flow-1",
                    "ProductionVariants": [
                        {
                            "VariantName": "AllTraffic",
                            "ModelName": "flow-1",
                            "InstanceType": "ml.m5.large",
                            "InitialInstanceCount": 1,
                        }
                    ],
                },
                "ResultPath": None,
                "Next": "Endpoint",
            },
            "Endpoint": {
                "Type": "Task",
                "Resource": f"{sdk}:createEndpoint",
                "Parameters": {"EndpointName": "flow", "EndpointConfigName": "flow-1"},
                "ResultPath": None,
                "Next": "Describe",
            },
            "Describe": {
                "Type": "Task",
                "Resource": f"{sdk}:describeEndpoint",
                "Parameters": {"EndpointName": "flow"},
                "ResultSelector": {"status.$": "$.EndpointStatus"},
                "Next": "Ready?",
            },
            "Ready?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.status", "StringEquals": "Creating", "Next": "Wait"}],
                "Default": "Done",
            },
            "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Describe"},
            "Done": {"Type": "Succeed"},
        },
    }
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="deploy", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    described = wait_until(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d, timeout=60
    )
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"status": "InService"}
    predictions, _ = lab.invoke("flow", RAW_ROWS)
    assert np.allclose(predictions, predicted(booster, RAW_ROWS), atol=1e-6)


def encoded_rows(rows: list[str]) -> list[str]:
    return [",".join(repr(float(v)) for v in row) for row in encode(rows)]


def _phase(described: dict[str, Any]) -> str | None:
    pending = described.get("PendingDeploymentSummary")
    if not pending:
        return None
    return str(pending["ProductionVariants"][0]["VariantStatus"][0]["Status"])


@pytest.mark.parametrize(
    ("routing", "instances", "steps"),
    [
        ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 5}, 1, [(1.0, 5.0)]),
        (
            {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 3},
            4,
            [(0.25, 3.0), (1.0, 0.0)],
        ),
        (
            {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}, "WaitIntervalInSeconds": 2},
            2,
            [(0.25, 2.0), (0.5, 2.0), (0.75, 2.0), (1.0, 0.0)],
        ),
        (
            {"Type": "LINEAR", "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 2}, "WaitIntervalInSeconds": 1},
            5,
            [(0.4, 1.0), (0.8, 1.0), (1.0, 0.0)],
        ),
    ],
)
def test_traffic_moves_in_the_steps_of_the_policy_each_baked_but_the_last(
    routing: dict[str, Any], instances: int, steps: list[tuple[float, float]]
) -> None:
    from sfn_mlops_local.local.endpoints import _plan

    deployment = {"variants": [{"InitialInstanceCount": instances}]}
    config = {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 7},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]},
    }
    plan = _plan(config, deployment)
    assert plan["steps"] == steps and plan["termination"] == 7.0 and plan["alarms"] == ["a"]


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}}, "between 10% and 50%"),
        ({"Type": "CANARY"}, "needs a CanarySize"),
        ({"Type": "SLOW"}, "Member must satisfy enum value set: [ALL_AT_ONCE, CANARY, LINEAR]"),
    ],
)
def test_a_policy_aws_refuses_is_refused(routing: dict[str, Any], expected: str) -> None:
    from sfn_mlops_local.local.endpoints import ApiError, _plan

    config = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {**routing, "WaitIntervalInSeconds": 1}}}
    with pytest.raises(ApiError, match=re.escape(expected)):
        _plan(config, {"variants": [{"InitialInstanceCount": 1}]})
