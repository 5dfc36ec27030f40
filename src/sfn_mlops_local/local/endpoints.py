"""SageMaker real-time endpoints in the local runtime: models, endpoint configs, endpoints, InvokeEndpoint.

The local service answers these APIs itself (moto keeps models and configs without their checks, resolves no
model package and serves nothing), for in-process callers (the interpreter's ``aws-sdk:sagemaker:*`` tasks and
Lambda handlers, through botocore ``before-call`` hooks) and HTTP clients alike:

- ``CreateModel`` / ``DescribeModel`` / ``DeleteModel`` / ``ListModels``: ``PrimaryContainer`` or ``Containers``
  (an inference pipeline when there are several, ``InferenceExecutionConfig.Mode`` Serial or Direct); a container
  naming a ``ModelPackageName`` gets the package's ``InferenceSpecification.Containers`` (from the registry).
- ``CreateEndpointConfig`` / ``DescribeEndpointConfig`` / ``DeleteEndpointConfig`` / ``ListEndpointConfigs``.
- ``CreateEndpoint`` / ``UpdateEndpoint`` / ``DescribeEndpoint`` / ``DeleteEndpoint`` / ``ListEndpoints``:
  ``Creating`` until every variant's containers have loaded their models (endpoint_hosting.py), then
  ``InService``, or ``Failed`` with the reason. An update is blue/green as on SageMaker: the new (green) fleet
  is loaded beside the old one, traffic moves to it in the steps of ``DeploymentConfig.BlueGreenUpdatePolicy``
  (ALL_AT_ONCE, CANARY, LINEAR) in real seconds, and during every baking period (each wait interval and the
  termination wait) the ``AutoRollbackConfiguration`` alarms are read from CloudWatch: one in ALARM, a green
  fleet that does not load, or ``MaximumExecutionTimeoutInSeconds`` passing rolls the update back (all traffic
  to the old fleet, ``RollingBack``, then ``InService`` on the old config with a ``FailureReason``).
- ``sagemaker-runtime InvokeEndpoint``: routed by the current traffic shares and variant weights, through the
  variant's containers, answered as SageMaker answers (``ModelError`` with the container's status and message).

Invocations publish ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors`` and ``ModelLatency``
(namespace ``AWS/SageMaker``, dimensions ``EndpointName`` and ``VariantName``) to CloudWatch. Alarms are not
evaluated from metrics locally: ``aws cloudwatch set-alarm-state`` (or boto3 ``set_alarm_state``) against the
service is how an alarm fires. See docs/decisions/0012-local-endpoints.md.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.response import StreamingBody

from sfn_mlops_local.local.endpoint_hosting import (
    Answer,
    ContainerStopped,
    Fleet,
    HostingError,
    build_fleet,
    resolved_image,
)
from sfn_mlops_local.local.template import ACCOUNT, PARTITION, REGION

NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
_NAME = re.compile(NAME_PATTERN + "$")
_INVOCATIONS_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
# How often a baking period reads its alarms, and how long a rollback shows RollingBack (seconds).
ALARM_POLL_S = 0.2
ROLLBACK_S = 0.5
METRICS_FLUSH_S = 1.0
IN_PROGRESS = ("Creating", "Updating", "RollingBack", "SystemUpdating", "Deleting")
VARIANT_KEYS = (
    "VariantName",
    "ModelName",
    "InitialInstanceCount",
    "InstanceType",
    "InitialVariantWeight",
    "ServerlessConfig",
    "ContainerStartupHealthCheckTimeoutInSeconds",
)


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}


def _validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def arn(kind: str, name: str) -> str:
    return f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _camel(member: str) -> str:
    return member[:1].lower() + member[1:]


class _Checks:
    """AWS's request validation messages ("1 validation error detected: Value ... at 'x' failed to ...")."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def required(self, value: Any, field_name: str) -> bool:
        if value is None:
            self.errors.append(f"Value null at '{field_name}' failed to satisfy constraint: Member must not be null")
            return False
        return True

    def name(self, value: Any, field_name: str) -> None:
        if not self.required(value, field_name):
            return
        text = str(value)
        if len(text) > 63:
            self.errors.append(
                f"Value '{text}' at '{field_name}' failed to satisfy constraint: "
                "Member must have length less than or equal to 63"
            )
        elif not _NAME.match(text):
            self.errors.append(
                f"Value '{text}' at '{field_name}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
            )

    def between(self, value: Any, low: float, high: float, field_name: str) -> None:
        if value is None:
            return
        if value < low:
            self.errors.append(
                f"Value '{value}' at '{field_name}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {low:g}"
            )
        elif value > high:
            self.errors.append(
                f"Value '{value}' at '{field_name}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {high:g}"
            )

    def one_of(self, value: Any, allowed: Iterable[str], field_name: str) -> None:
        allowed = list(allowed)
        if value is not None and value not in allowed:
            self.errors.append(
                f"Value '{value}' at '{field_name}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(allowed)}]"
            )

    def done(self) -> None:
        if self.errors:
            count = len(self.errors)
            detected = f"{count} validation error{'s' if count > 1 else ''} detected: "
            raise _validation(detected + "; ".join(self.errors))


def _instance_types() -> list[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape: Any = model.shape_for("ProductionVariantInstanceType")
    return list(shape.enum)


@dataclass
class _Hosting:
    """What serves an endpoint now: the blue fleet, and the green one during an update (not persisted)."""

    blue: Fleet | None = None
    green: Fleet | None = None
    threads: list[threading.Thread] = field(default_factory=list)


class _Metrics:
    """Invocation metrics, aggregated per second and per variant, put into CloudWatch off the request path."""

    def __init__(self, cloudwatch: Callable[[], Any]) -> None:
        self._cloudwatch = cloudwatch
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], dict[str, list[float]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, endpoint: str, variant: str, latency_us: float | None, status: int) -> None:
        with self._lock:
            values = self._pending.setdefault((endpoint, variant), {})
            values.setdefault("Invocations", []).append(1.0)
            values.setdefault("Invocation4XXErrors", []).append(1.0 if 400 <= status < 500 else 0.0)
            values.setdefault("Invocation5XXErrors", []).append(1.0 if status >= 500 else 0.0)
            if latency_us is not None:
                values.setdefault("ModelLatency", []).append(latency_us)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="endpoint-metrics", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(METRICS_FLUSH_S):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        data = []
        for (endpoint, variant), metrics in pending.items():
            dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
            for name, values in metrics.items():
                data.append(
                    {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": _now(),
                        "StatisticValues": {
                            "SampleCount": float(len(values)),
                            "Sum": float(sum(values)),
                            "Minimum": float(min(values)),
                            "Maximum": float(max(values)),
                        },
                        "Unit": "Microseconds" if name == "ModelLatency" else "None",
                    }
                )
        for start in range(0, len(data), 500):
            try:
                self._cloudwatch().put_metric_data(Namespace="AWS/SageMaker", MetricData=data[start : start + 500])
            except Exception:  # metrics are best effort, as on AWS; serving never fails on them
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()


class EndpointService:
    """The SageMaker hosting APIs and InvokeEndpoint, with the endpoints' processes and deployments."""

    OPERATIONS = frozenset(
        {
            "CreateModel",
            "DescribeModel",
            "DeleteModel",
            "ListModels",
            "CreateEndpointConfig",
            "DescribeEndpointConfig",
            "DeleteEndpointConfig",
            "ListEndpointConfigs",
            "CreateEndpoint",
            "UpdateEndpoint",
            "DescribeEndpoint",
            "DeleteEndpoint",
            "ListEndpoints",
        }
    )
    WRITES = frozenset(op for op in OPERATIONS if not op.startswith(("Describe", "List")))

    def __init__(self, client: Callable[[str], Any], state_dir: Path, log_dir: Path) -> None:
        self._client = client
        self._root = state_dir / "endpoints"
        self._log_dir = log_dir / "endpoints"
        self.models: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self._hosting: dict[str, _Hosting] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._metrics = _Metrics(lambda: self._client("cloudwatch"))
        # Called after every change clients must not lose (the runtime saves its state).
        self.on_change: Callable[[], None] | None = None
        self._instance_types: list[str] | None = None

    # ================================================================== botocore hooks and HTTP
    def on_call(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """``before-call.sagemaker``: the hosting APIs for in-process clients; None lets others answer."""
        if model.name not in self.OPERATIONS:
            return None
        body = params.get("body") or b"{}"
        answer = self.handle(model.name, json.loads(body.decode() if isinstance(body, bytes) else body))
        if answer is None:
            return None
        status, parsed = answer
        parsed["ResponseMetadata"] = _metadata(status)
        return AWSResponse(params.get("url", ""), status, HTTPHeaders(), None), parsed

    def on_invoke(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """``before-call.sagemaker-runtime.InvokeEndpoint``: the endpoint answers in-process callers."""
        if model.name != "InvokeEndpoint":
            return None
        matched = _INVOCATIONS_PATH.match(params.get("url_path", "").split("?", 1)[0])
        if matched is None:
            return None
        headers = {str(k).lower(): str(v) for k, v in (params.get("headers") or {}).items()}
        body = params.get("body") or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        url = params.get("url", "")
        try:
            answer, variant = self.invoke(
                unquote(matched.group(1)),
                bytes(body),
                headers.get("content-type"),
                headers.get("accept"),
                headers.get("x-amzn-sagemaker-target-variant"),
                headers.get("x-amzn-sagemaker-target-container-hostname"),
            )
        except ApiError as error:
            parsed = {"Error": {"Code": error.code, "Message": error.message}, **error.extra}
            parsed["ResponseMetadata"] = _metadata(error.status)
            return AWSResponse(url, error.status, HTTPHeaders(), None), parsed
        parsed = {
            "Body": StreamingBody(io.BytesIO(answer.body), len(answer.body)),
            "ContentType": answer.content_type,
            "InvokedProductionVariant": variant,
            "ResponseMetadata": _metadata(200),
        }
        return AWSResponse(url, 200, HTTPHeaders(), None), parsed

    def wsgi_invoke(self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]) -> list[bytes]:
        """``POST /endpoints/{name}/invocations`` for HTTP clients (boto3, ``aws sagemaker-runtime``)."""
        matched = _INVOCATIONS_PATH.match(environ.get("PATH_INFO", ""))
        name = unquote(matched.group(1)) if matched else ""
        try:
            answer, variant = self.invoke(
                name,
                body,
                environ.get("CONTENT_TYPE") or None,
                environ.get("HTTP_ACCEPT") or None,
                environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT"),
                environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_CONTAINER_HOSTNAME"),
            )
        except ApiError as error:
            payload = json.dumps({"message": error.message, **error.extra}).encode()
            reasons = {400: "Bad Request", 424: "Failed Dependency", 500: "Internal Server Error"}
            start_response(
                f"{error.status} {reasons.get(error.status, 'Error')}",
                [
                    ("Content-Type", "application/json"),
                    ("x-amzn-ErrorType", error.code),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]
        start_response(
            "200 OK",
            [
                ("Content-Type", answer.content_type or "application/octet-stream"),
                ("x-Amzn-Invoked-Production-Variant", variant),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("Content-Length", str(len(answer.body))),
            ],
        )
        return [answer.body]

    def handle(self, operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The hosting APIs (in-process calls and the service's HTTP endpoint alike); None for other operations."""
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "UpdateEndpoint": self.update_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
        }
        handler = handlers.get(operation)
        if handler is None:
            return None
        try:
            answer = handler(request)
        except ApiError as error:
            return error.status, {"Error": {"Code": error.code, "Message": error.message}}
        if operation in self.WRITES:
            self._changed()
        return 200, answer

    # ================================================================== models
    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        checks = _Checks()
        name = request.get("ModelName")
        checks.name(name, "modelName")
        primary, containers = request.get("PrimaryContainer"), request.get("Containers")
        mode = (request.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
        checks.one_of(mode, ("Serial", "Direct"), "inferenceExecutionConfig.mode")
        checks.done()
        if (primary is None) == (containers is None):
            raise _validation("Either PrimaryContainer or Containers must be specified, and not both.")
        given = [primary] if primary is not None else list(containers or [])
        if not given:
            raise _validation("Containers must hold at least one container definition.")
        resolved: list[dict[str, Any]] = []
        for container in given:
            resolved.extend(self._resolve_container(container))
        if len(resolved) > 15:
            raise _validation(f"An inference pipeline can have at most 15 containers; this model has {len(resolved)}.")
        for index, container in enumerate(resolved, start=1):
            if not container.get("ContainerHostname"):
                container["ContainerHostname"] = "primary" if len(resolved) == 1 else f"container-{index}"
        hostnames = [c["ContainerHostname"] for c in resolved]
        if len(set(hostnames)) != len(hostnames):
            raise _validation(f"ContainerHostname values must be unique within a model: {hostnames}")
        model_arn = arn("model", str(name))
        record = {
            "ModelName": name,
            "ModelArn": model_arn,
            "CreationTime": _now(),
            "request": copy.deepcopy(request),
            "containers": resolved,
            "mode": mode if len(resolved) > 1 else "Serial",
        }
        with self._lock:
            if name in self.models:
                raise _validation(f'Cannot create already existing model "{model_arn}".')
            self.models[str(name)] = record
        return {"ModelArn": model_arn}

    def _resolve_container(self, container: dict[str, Any]) -> list[dict[str, Any]]:
        """A container definition, or the containers of the model package it names (read from the registry)."""
        package = container.get("ModelPackageName")
        if not package:
            if not container.get("Image"):
                raise _validation("A container definition needs an Image or a ModelPackageName.")
            keys = ("ContainerHostname", "Image", "ModelDataUrl", "Environment")
            return [{k: copy.deepcopy(container[k]) for k in keys if k in container}]
        if container.get("Image") or container.get("ModelDataUrl"):
            raise _validation(
                "A container definition with a ModelPackageName cannot also specify Image or ModelDataUrl."
            )
        try:
            described = self._client("sagemaker").describe_model_package(ModelPackageName=package)
        except Exception as exc:
            message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
            raise _validation(f"Could not access model package {package}: {message}") from None
        found = (described.get("InferenceSpecification") or {}).get("Containers") or []
        if not found:
            raise _validation(f"Model package {package} has no InferenceSpecification containers to deploy.")
        overrides = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
        resolved = []
        for item in found:
            entry = {k: copy.deepcopy(item[k]) for k in ("ContainerHostname", "Image", "ModelDataUrl") if k in item}
            entry["Environment"] = {**(item.get("Environment") or {}), **overrides}
            entry["ModelPackageName"] = package
            resolved.append(entry)
        if container.get("ContainerHostname") and len(resolved) == 1:
            resolved[0]["ContainerHostname"] = container["ContainerHostname"]
        return resolved

    def describe_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("ModelName"))
        with self._lock:
            record = self.models.get(name)
            if record is None:
                raise _validation(f'Could not find model "{arn("model", name)}".')
            given = record["request"]
            answer: dict[str, Any] = {
                "ModelName": record["ModelName"],
                "ModelArn": record["ModelArn"],
                "CreationTime": record["CreationTime"],
                "EnableNetworkIsolation": bool(given.get("EnableNetworkIsolation", False)),
            }
            for key in ("PrimaryContainer", "Containers", "InferenceExecutionConfig", "ExecutionRoleArn", "VpcConfig"):
                if key in given:
                    answer[key] = copy.deepcopy(given[key])
            return answer

    def delete_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("ModelName"))
        with self._lock:
            if self.models.pop(name, None) is None:
                raise _validation(f'Could not find model "{arn("model", name)}".')
        return {}

    def list_models(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rows = [
                {"ModelName": r["ModelName"], "ModelArn": r["ModelArn"], "CreationTime": r["CreationTime"]}
                for r in self.models.values()
            ]
        return _page(rows, request, "Models", "ModelName", {"Name": "ModelName", "CreationTime": "CreationTime"})

    # ================================================================== endpoint configs
    def create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        checks = _Checks()
        name = request.get("EndpointConfigName")
        checks.name(name, "endpointConfigName")
        variants: list[dict[str, Any]] = request.get("ProductionVariants") or []
        if checks.required(request.get("ProductionVariants"), "productionVariants") and not 1 <= len(variants) <= 10:
            checks.errors.append(
                f"Value '{variants}' at 'productionVariants' failed to satisfy constraint: "
                "Member must have length between 1 and 10"
            )
        for index, variant in enumerate(variants, start=1):
            where = f"productionVariants.{index}.member"
            checks.name(variant.get("VariantName"), f"{where}.variantName")
            checks.one_of(variant.get("InstanceType"), self._known_instance_types(), f"{where}.instanceType")
            checks.between(variant.get("InitialInstanceCount"), 1, 1e9, f"{where}.initialInstanceCount")
            checks.between(variant.get("InitialVariantWeight"), 0, 1e9, f"{where}.initialVariantWeight")
            serverless = variant.get("ServerlessConfig") or {}
            if serverless:
                checks.between(serverless.get("MemorySizeInMB"), 1024, 6144, f"{where}.serverlessConfig.memorySizeInMB")
                checks.between(serverless.get("MaxConcurrency"), 1, 200, f"{where}.serverlessConfig.maxConcurrency")
        checks.done()
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise _validation(f"Variant names must be unique within an endpoint configuration: {names}")
        config_arn = arn("endpoint-config", str(name))
        with self._lock:
            if name in self.configs:
                raise _validation(f'Cannot create already existing endpoint configuration "{config_arn}".')
            for variant in variants:
                has_instances = variant.get("InstanceType") is not None
                if has_instances == bool(variant.get("ServerlessConfig")):
                    raise _validation(
                        f"Variant {variant['VariantName']}: specify either InstanceType with InitialInstanceCount, "
                        "or ServerlessConfig."
                    )
                if has_instances and variant.get("InitialInstanceCount") is None:
                    raise _validation(
                        f"Variant {variant['VariantName']}: InitialInstanceCount is required with InstanceType."
                    )
                if not variant.get("ModelName"):
                    raise _validation(f"Variant {variant['VariantName']}: ModelName is required.")
                if variant["ModelName"] not in self.models:
                    raise _validation(f'Could not find model "{arn("model", str(variant["ModelName"]))}".')
            self.configs[str(name)] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": config_arn,
                "CreationTime": _now(),
                "request": copy.deepcopy(request),
            }
        return {"EndpointConfigArn": config_arn}

    def _known_instance_types(self) -> list[str]:
        if self._instance_types is None:
            self._instance_types = _instance_types()
        return self._instance_types

    def describe_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("EndpointConfigName"))
        with self._lock:
            record = self.configs.get(name)
            if record is None:
                raise _validation(f'Could not find endpoint configuration "{arn("endpoint-config", name)}".')
            given = record["request"]
            variants = [
                {**copy.deepcopy(v), **({"InitialVariantWeight": 1.0} if "InitialVariantWeight" not in v else {})}
                for v in given["ProductionVariants"]
            ]
            answer = {
                "EndpointConfigName": record["EndpointConfigName"],
                "EndpointConfigArn": record["EndpointConfigArn"],
                "ProductionVariants": variants,
                "CreationTime": record["CreationTime"],
            }
            for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig", "ExecutionRoleArn"):
                if key in given:
                    answer[key] = copy.deepcopy(given[key])
            return answer

    def delete_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("EndpointConfigName"))
        with self._lock:
            if self.configs.pop(name, None) is None:
                raise _validation(f'Could not find endpoint configuration "{arn("endpoint-config", name)}".')
        return {}

    def list_endpoint_configs(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rows = [
                {k: r[k] for k in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
                for r in self.configs.values()
            ]
        return _page(
            rows,
            request,
            "EndpointConfigs",
            "EndpointConfigName",
            {"Name": "EndpointConfigName", "CreationTime": "CreationTime"},
        )

    # ================================================================== endpoints
    def _deployment(self, config_name: str) -> dict[str, Any]:
        """What a fleet of this config runs, snapshotted now (a model deleted later keeps serving, as on AWS)."""
        with self._lock:
            config = self.configs.get(config_name)
            if config is None:
                raise _validation(f'Could not find endpoint configuration "{arn("endpoint-config", config_name)}".')
            variants = []
            for given in config["request"]["ProductionVariants"]:
                model = self.models.get(str(given["ModelName"]))
                if model is None:
                    raise _validation(f'Could not find model "{arn("model", str(given["ModelName"]))}".')
                variant = {k: copy.deepcopy(given[k]) for k in VARIANT_KEYS if k in given}
                variant.setdefault("InitialVariantWeight", 1.0)
                variant["containers"] = copy.deepcopy(model["containers"])
                variant["mode"] = model["mode"]
                variants.append(variant)
            return {"config": config_name, "id": uuid.uuid4().hex[:8], "variants": variants, "created": _now()}

    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        checks = _Checks()
        name = request.get("EndpointName")
        checks.name(name, "endpointName")
        checks.name(request.get("EndpointConfigName"), "endpointConfigName")
        checks.done()
        name = str(name)
        endpoint_arn = arn("endpoint", name)
        deployment = self._deployment(str(request["EndpointConfigName"]))
        with self._lock:
            if name in self.endpoints:
                raise _validation(f'Cannot create already existing endpoint "{endpoint_arn}".')
            now = _now()
            self.endpoints[name] = {
                "EndpointName": name,
                "EndpointArn": endpoint_arn,
                "EndpointConfigName": deployment["config"],
                "EndpointStatus": "Creating",
                "CreationTime": now,
                "LastModifiedTime": now,
                "Tags": copy.deepcopy(request.get("Tags") or []),
                "current": None,
                "pending": self._pending(deployment, "Creating", "Creating the endpoint's instances", creating=True),
                "generation": 1,
            }
            self._hosting[name] = _Hosting()
            self._start_thread(name, self._run_create, 1)
        return {"EndpointArn": endpoint_arn}

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        checks = _Checks()
        checks.name(request.get("EndpointName"), "endpointName")
        checks.name(request.get("EndpointConfigName"), "endpointConfigName")
        checks.done()
        name = str(request["EndpointName"])
        with self._lock:
            record = self.endpoints.get(name)
            if record is None:
                raise _validation(f'Could not find endpoint "{arn("endpoint", name)}".')
            if record["EndpointStatus"] in IN_PROGRESS:
                raise _validation(f'Cannot update in-progress endpoint "{record["EndpointArn"]}".')
            if record["EndpointStatus"] == "Failed":
                raise _validation(
                    f'Cannot update failed endpoint "{record["EndpointArn"]}": DeleteEndpoint is the only operation '
                    "a failed endpoint accepts."
                )
            deployment_config = (
                copy.deepcopy(record.get("LastDeploymentConfig"))
                if request.get("RetainDeploymentConfig")
                else copy.deepcopy(request.get("DeploymentConfig"))
            )
        deployment = self._deployment(str(request["EndpointConfigName"]))
        plan = _plan(deployment_config, deployment)
        with self._lock:
            record = self.endpoints.get(name)
            if record is None:
                raise _validation(f'Could not find endpoint "{arn("endpoint", name)}".')
            if record["EndpointStatus"] != "InService":
                raise _validation(f'Cannot update in-progress endpoint "{record["EndpointArn"]}".')
            generation = int(record["generation"]) + 1
            record.update(
                EndpointStatus="Updating",
                LastModifiedTime=_now(),
                generation=generation,
                pending=self._pending(deployment, "Creating", "Creating the new fleet's instances", plan=plan),
            )
            record.pop("rollback_reason", None)
            if deployment_config:
                record["LastDeploymentConfig"] = deployment_config
            self._start_thread(name, self._run_update, generation)
        return {"EndpointArn": record["EndpointArn"]}

    def describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("EndpointName"))
        with self._lock:
            record = self.endpoints.get(name)
            if record is None:
                raise _validation(f'Could not find endpoint "{arn("endpoint", name)}".')
            return self._described(record)

    def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("EndpointName"))
        with self._lock:
            record = self.endpoints.get(name)
            if record is None:
                raise _validation(f'Could not find endpoint "{arn("endpoint", name)}".')
            if record["EndpointStatus"] in IN_PROGRESS:
                raise _validation(f'Cannot update in-progress endpoint "{record["EndpointArn"]}".')
            generation = int(record["generation"]) + 1
            record.update(EndpointStatus="Deleting", LastModifiedTime=_now(), generation=generation)
            self._start_thread(name, self._run_delete, generation)
        return {}

    def list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rows = [
                {k: r[k] for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}
                for r in self.endpoints.values()
            ]
        status = request.get("StatusEquals")
        rows = [r for r in rows if status is None or r["EndpointStatus"] == status]
        for key, keep in (("CreationTimeBefore", "lt"), ("CreationTimeAfter", "gt")):
            if request.get(key) is not None:
                bound = _timestamp(request[key])
                rows = [r for r in rows if (r["CreationTime"] < bound if keep == "lt" else r["CreationTime"] > bound)]
        return _page(
            rows,
            request,
            "Endpoints",
            "EndpointName",
            {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"},
        )

    # ================================================================== describing
    def _pending(
        self,
        deployment: dict[str, Any],
        phase: str,
        message: str,
        creating: bool = False,
        plan: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = _now()
        return {
            "deployment": deployment,
            "start": now,
            "phase": phase,
            "message": message,
            "phase_start": now,
            "traffic": 0.0,  # the share of requests the new fleet takes
            "target": 1.0,  # the share the deployment moves it to (0 while rolling back)
            "loaded": False,
            "creating": creating,
            "plan": plan or {},
        }

    def _described(self, record: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            k: record[k]
            for k in (
                "EndpointName",
                "EndpointArn",
                "EndpointConfigName",
                "EndpointStatus",
                "CreationTime",
                "LastModifiedTime",
            )
        }
        if record.get("FailureReason"):
            answer["FailureReason"] = record["FailureReason"]
        pending = record.get("pending")
        share, target = (float(pending["traffic"]), float(pending["target"])) if pending else (0.0, 0.0)
        current = record.get("current")
        if current is not None:
            answer["ProductionVariants"] = [
                _variant_summary(variant, current, 1.0 - share, 1.0 - target, loaded=True)
                for variant in current["variants"]
            ]
        if pending is not None:
            deployment = pending["deployment"]
            variants = []
            for variant in deployment["variants"]:
                summary = _variant_summary(variant, deployment, share, target, loaded=bool(pending["loaded"]))
                if variant.get("InstanceType"):
                    summary["InstanceType"] = variant["InstanceType"]
                summary["VariantStatus"] = [
                    {
                        "Status": pending["phase"],
                        "StatusMessage": pending["message"],
                        "StartTime": pending["phase_start"],
                    }
                ]
                variants.append(summary)
            answer["PendingDeploymentSummary"] = {
                "EndpointConfigName": deployment["config"],
                "ProductionVariants": variants,
                "StartTime": pending["start"],
            }
        if record.get("LastDeploymentConfig"):
            answer["LastDeploymentConfig"] = copy.deepcopy(record["LastDeploymentConfig"])
        return answer

    # ================================================================== invoking
    def invoke(
        self,
        name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        target_variant: str | None = None,
        target_container: str | None = None,
    ) -> tuple[Answer, str]:
        """One InvokeEndpoint: the fleet by the current traffic shares, the variant by weight (or target)."""
        try:
            return self._invoke_once(name, body, content_type, accept, target_variant, target_container)
        except ContainerStopped:  # its fleet was retired meanwhile (an update ended): route it again
            return self._invoke_once(name, body, content_type, accept, target_variant, target_container)

    def _invoke_once(
        self,
        name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        target_variant: str | None,
        target_container: str | None,
    ) -> tuple[Answer, str]:
        with self._lock:
            record = self.endpoints.get(name)
            hosting = self._hosting.get(name)
            serving = record is not None and record["EndpointStatus"] in ("InService", "Updating", "RollingBack")
            if not serving or hosting is None or hosting.blue is None:
                raise ApiError("ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
            fleets = [hosting.blue]
            pending = record.get("pending") if record else None
            if hosting.green is not None and pending is not None and random.random() < float(pending["traffic"]):
                fleets.insert(0, hosting.green)
            elif hosting.green is not None:
                fleets.append(hosting.green)
        variant = None
        for fleet in fleets:
            variant = fleet.pick(target_variant)
            if variant is not None:
                break
        if variant is None:
            raise ApiError("ValidationError", f"Variant {target_variant} not found for endpoint {name}.")
        if variant.mode == "Direct":
            hostnames = [c.hostname for c in variant.containers]
            if target_container not in hostnames:
                raise ApiError(
                    "ValidationError",
                    f"Endpoint {name} serves its containers directly (InferenceExecutionConfig Mode Direct): "
                    f"set TargetContainerHostname to one of {hostnames}.",
                )
        started = time.perf_counter()
        answer = variant.invoke(body, content_type, accept, target_container)
        latency_us = (time.perf_counter() - started) * 1e6
        self._metrics.record(name, variant.name, None if answer.timed_out else latency_us, answer.status)
        if not 200 <= answer.status < 300:
            raise _model_error(name, answer)
        return answer, variant.name

    # ================================================================== lifecycle threads
    def _start_thread(self, name: str, target: Callable[[str, int], None], generation: int) -> None:
        hosting = self._hosting.setdefault(name, _Hosting())
        hosting.threads = [t for t in hosting.threads if t.is_alive()]
        thread = threading.Thread(target=target, args=(name, generation), name=f"endpoint-{name}", daemon=True)
        hosting.threads.append(thread)
        thread.start()

    def _current(self, name: str, generation: int) -> dict[str, Any] | None:
        """The endpoint's record if this operation is still the endpoint's latest (call with the lock held)."""
        record = self.endpoints.get(name)
        if record is None or record["generation"] != generation or self._stopping.is_set():
            return None
        return record

    def _fleet(self, name: str, deployment: dict[str, Any]) -> Fleet:
        return build_fleet(name, deployment, self._root / name, self._log_dir, lambda: self._client("s3"))

    def _run_create(self, name: str, generation: int) -> None:
        with self._lock:
            record = self._current(name, generation)
            if record is None:
                return
            deployment = record["pending"]["deployment"]
        fleet = self._fleet(name, deployment)
        failure = None
        try:
            fleet.start()
        except HostingError as failed:
            failure = str(failed)
        with self._lock:
            record = self._current(name, generation)
            if record is not None:
                record["LastModifiedTime"] = _now()
                record["pending"] = None
                if failure is None:
                    self._hosting.setdefault(name, _Hosting()).blue = fleet
                    record.update(EndpointStatus="InService", current=deployment)
                    record.pop("FailureReason", None)
                else:
                    record.update(EndpointStatus="Failed", FailureReason=failure[:1024])
        if record is None and failure is None:
            fleet.stop()
        if record is not None:
            self._changed()

    def _run_update(self, name: str, generation: int) -> None:
        with self._lock:
            record = self._current(name, generation)
            if record is None:
                return
            pending = record["pending"]
            deployment, plan = pending["deployment"], pending["plan"]
            old_config = record["EndpointConfigName"]
        started = time.monotonic()
        green = self._fleet(name, deployment)
        try:
            green.start()
        except HostingError as failed:
            self._roll_back(name, generation, None, str(failed))
            return
        with self._lock:
            if self._current(name, generation) is None:
                green.stop()
                return
            self._hosting[name].green = green
            pending["loaded"] = True
        alarms = plan.get("alarms", [])
        deadline = started + plan["timeout"] if plan.get("timeout") else None
        steps = plan.get("steps") or [(1.0, 0.0)]
        for index, (share, bake) in enumerate(steps, start=1):
            step = f"step {index} of {len(steps)}"
            self._set_phase(name, generation, "ActivatingTraffic", f"Shifting {share:.0%} of traffic ({step})", share)
            self._set_phase(name, generation, "Baking", f"Baking with {share:.0%} of traffic for {bake:g} s ({step})")
            outcome = self._bake(name, generation, bake, alarms, deadline)
            if outcome is _STALE:
                return
            if outcome is not None:
                self._roll_back(
                    name, generation, green, _rollback_reason(outcome, deployment["config"], old_config, share)
                )
                return
        termination = float(plan.get("termination", 0.0))
        self._set_phase(name, generation, "Baking", f"Termination wait of {termination:g} s before the old fleet stops")
        outcome = self._bake(name, generation, termination, alarms, deadline)
        if outcome is _STALE:
            return
        if outcome is not None:
            self._roll_back(name, generation, green, _rollback_reason(outcome, deployment["config"], old_config, 1.0))
            return
        with self._lock:
            record = self._current(name, generation)
            if record is None:
                return
            hosting = self._hosting[name]
            blue, hosting.blue, hosting.green = hosting.blue, green, None
            record.update(
                EndpointStatus="InService",
                EndpointConfigName=deployment["config"],
                current=deployment,
                pending=None,
                LastModifiedTime=_now(),
            )
            record.pop("FailureReason", None)
        self._changed()
        if blue is not None:
            blue.stop()

    def _set_phase(self, name: str, generation: int, phase: str, message: str, share: float | None = None) -> None:
        with self._lock:
            record = self._current(name, generation)
            if record is None or record.get("pending") is None:
                return
            pending = record["pending"]
            pending.update(phase=phase, message=message, phase_start=_now())
            if share is not None:
                pending["traffic"] = share

    def _bake(self, name: str, generation: int, seconds: float, alarms: list[str], deadline: float | None) -> Any:
        """Wait a baking period reading the alarms: None when it passed, _STALE if the endpoint's operation was
        superseded or the service is stopping, else why the deployment must roll back."""
        end = time.monotonic() + seconds
        while True:
            with self._lock:
                if self._current(name, generation) is None:
                    return _STALE
            if alarms:
                firing = self._alarms_in_alarm(alarms)
                if firing:
                    return ("alarm", firing)
            if deadline is not None and time.monotonic() > deadline:
                return ("timeout", None)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            self._stopping.wait(min(ALARM_POLL_S, remaining))

    def _alarms_in_alarm(self, names: list[str]) -> list[str]:
        try:
            described = self._client("cloudwatch").describe_alarms(AlarmNames=names)
        except Exception:  # CloudWatch unreadable: no alarm is known to fire (SageMaker would keep baking)
            return []
        alarms = described.get("MetricAlarms", []) + described.get("CompositeAlarms", [])
        return sorted(a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM")

    def _roll_back(self, name: str, generation: int, green: Fleet | None, reason: str) -> None:
        """All traffic back to the old fleet (RollingBack), the new fleet stopped, InService on the old config."""
        with self._lock:
            record = self._current(name, generation)
            if record is None:
                if green is not None:
                    green.stop()
                return
            hosting = self._hosting[name]
            hosting.green = None
            record["EndpointStatus"] = "RollingBack"
            record["LastModifiedTime"] = _now()
            record["rollback_reason"] = reason[:1024]
            pending = record["pending"]
            pending.update(traffic=0.0, target=0.0, phase="Deleting", message=f"Rolling back: {reason}"[:1024])
            pending["phase_start"] = _now()
        self._changed()
        self._stopping.wait(ROLLBACK_S)
        if green is not None:
            green.stop()
        with self._lock:
            record = self._current(name, generation)
            if record is None:
                return
            record.update(
                EndpointStatus="InService", pending=None, LastModifiedTime=_now(), FailureReason=reason[:1024]
            )
            record.pop("rollback_reason", None)
        self._changed()

    def _run_delete(self, name: str, generation: int) -> None:
        with self._lock:
            hosting = self._hosting.pop(name, None)
        fleets = [f for f in (hosting.blue, hosting.green) if f is not None] if hosting else []
        for fleet in fleets:
            fleet.stop()
        with self._lock:
            record = self.endpoints.get(name)
            if record is not None and record["generation"] == generation:
                del self.endpoints[name]
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):  # the runtime reports save failures itself and retries
                self.on_change()

    # ================================================================== persistence and stop
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy({"models": self.models, "configs": self.configs, "endpoints": self.endpoints})

    def restore(self, saved: dict[str, Any] | None, stopped_cleanly: bool) -> list[str]:
        """Take back saved models, configs and endpoints. An endpoint being created is created again; an update
        in flight comes back rolled back to the config it served (its instances are gone); InService endpoints
        start their containers in the background (a request waits for them). Returns the rolled-back ones."""
        saved = saved or {}
        interrupted = []
        how = "stopped" if stopped_cleanly else "killed"
        with self._lock:
            self.models.update(copy.deepcopy(saved.get("models") or {}))
            self.configs.update(copy.deepcopy(saved.get("configs") or {}))
            for name, record in copy.deepcopy(saved.get("endpoints") or {}).items():
                status = record["EndpointStatus"]
                if status == "Deleting":
                    continue
                if status in ("Updating", "RollingBack"):
                    pending = record.get("pending") or {}
                    new_config = (pending.get("deployment") or {}).get("config", "?")
                    reason = record.pop("rollback_reason", None) or (
                        f"The update to endpoint configuration {new_config} was rolled back: the local service was "
                        f"{how} while it was in progress. The endpoint serves endpoint configuration "
                        f"{record['EndpointConfigName']}."
                    )
                    record.update(
                        EndpointStatus="InService", pending=None, FailureReason=reason, LastModifiedTime=_now()
                    )
                    interrupted.append(name)
                self.endpoints[name] = record
                self._hosting[name] = _Hosting()
                if record["EndpointStatus"] == "Creating":
                    record["pending"].update(phase_start=_now())
                    self._start_thread(name, self._run_create, int(record["generation"]))
                elif record["EndpointStatus"] == "InService" and record.get("current"):
                    fleet = self._fleet(name, record["current"])
                    self._hosting[name].blue = fleet
                    threading.Thread(target=_warm, args=(fleet,), name=f"endpoint-{name}-warm", daemon=True).start()
        return interrupted

    def stop(self) -> None:
        """Stop every endpoint's containers and deployments (records stay as they are: a restart recovers them)."""
        self._stopping.set()
        with self._lock:
            hostings = list(self._hosting.values())
        for hosting in hostings:
            for thread in hosting.threads:
                thread.join(2)
            for fleet in (hosting.blue, hosting.green):
                if fleet is not None:
                    fleet.stop(drain=1.0)
        self._metrics.stop()

    def status(self) -> dict[str, str]:
        with self._lock:
            return {name: record["EndpointStatus"] for name, record in self.endpoints.items()}


_STALE = object()


def _warm(fleet: Fleet) -> None:
    with contextlib.suppress(HostingError):  # a request starts them again, and reports why they cannot load
        fleet.start(stop_on_failure=False)


def _variant_summary(
    variant: dict[str, Any], deployment: dict[str, Any], share: float, target: float, loaded: bool
) -> dict[str, Any]:
    weight = float(variant.get("InitialVariantWeight", 1.0))
    summary: dict[str, Any] = {
        "VariantName": variant["VariantName"],
        "DeployedImages": [
            {
                "SpecifiedImage": c["Image"],
                "ResolvedImage": resolved_image(str(c["Image"])),
                "ResolutionTime": deployment["created"],
            }
            for c in variant["containers"]
        ],
        "CurrentWeight": round(weight * share, 6),
        "DesiredWeight": round(weight * target, 6),
    }
    if variant.get("ServerlessConfig"):
        summary["DesiredServerlessConfig"] = copy.deepcopy(variant["ServerlessConfig"])
        if loaded:
            summary["CurrentServerlessConfig"] = copy.deepcopy(variant["ServerlessConfig"])
    else:
        count = int(variant.get("InitialInstanceCount", 1))
        summary["CurrentInstanceCount"] = count if loaded else 0
        summary["DesiredInstanceCount"] = count
    return summary


def _share(size: dict[str, Any], instances: int, what: str, low: float, high: float) -> float:
    kind, value = size.get("Type"), size.get("Value")
    if kind not in ("INSTANCE_COUNT", "CAPACITY_PERCENT") or not isinstance(value, int | float) or value <= 0:
        raise _validation(f"{what} needs Type INSTANCE_COUNT or CAPACITY_PERCENT and a positive Value; got {size}.")
    fraction = value / 100.0 if kind == "CAPACITY_PERCENT" else value / max(1, instances)
    if not low <= fraction <= high:
        raise _validation(
            f"{what} must be between {low:.0%} and {high:.0%} of the variant's total instance count "
            f"({instances} instance(s)); {value} {kind} is {fraction:.0%}."
        )
    return float(fraction)


def _plan(config: dict[str, Any] | None, deployment: dict[str, Any]) -> dict[str, Any]:
    """The traffic steps, baking periods, alarms and timeout of a DeploymentConfig (validated as SageMaker does)."""
    if not config:
        return {"steps": [(1.0, 0.0)], "termination": 0.0, "alarms": [], "timeout": None}
    if config.get("RollingUpdatePolicy"):
        raise _validation("RollingUpdatePolicy is not emulated by the local runtime; use BlueGreenUpdatePolicy.")
    alarms = [str(a.get("AlarmName")) for a in (config.get("AutoRollbackConfiguration") or {}).get("Alarms") or []]
    if len(alarms) > 10:
        raise _validation("AutoRollbackConfiguration.Alarms can hold at most 10 alarms.")
    policy = config.get("BlueGreenUpdatePolicy")
    if not policy:
        return {"steps": [(1.0, 0.0)], "termination": 0.0, "alarms": alarms, "timeout": None}
    routing = policy.get("TrafficRoutingConfiguration") or {}
    checks = _Checks()
    where = "deploymentConfig.blueGreenUpdatePolicy"
    checks.required(routing.get("Type"), f"{where}.trafficRoutingConfiguration.type")
    checks.one_of(routing.get("Type"), ("ALL_AT_ONCE", "CANARY", "LINEAR"), f"{where}.trafficRoutingConfiguration.type")
    checks.required(routing.get("WaitIntervalInSeconds"), f"{where}.trafficRoutingConfiguration.waitIntervalInSeconds")
    checks.between(
        routing.get("WaitIntervalInSeconds"), 0, 3600, f"{where}.trafficRoutingConfiguration.waitIntervalInSeconds"
    )
    checks.between(policy.get("TerminationWaitInSeconds"), 0, 3600, f"{where}.terminationWaitInSeconds")
    checks.between(
        policy.get("MaximumExecutionTimeoutInSeconds"), 600, 28800, f"{where}.maximumExecutionTimeoutInSeconds"
    )
    checks.done()
    wait = float(routing["WaitIntervalInSeconds"])
    termination = float(policy.get("TerminationWaitInSeconds", 0))
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout is not None and timeout <= wait + termination:
        raise _validation(
            "MaximumExecutionTimeoutInSeconds must be larger than the total waiting time of "
            "TerminationWaitInSeconds and WaitIntervalInSeconds."
        )
    instances = sum(int(v.get("InitialInstanceCount", 1)) for v in deployment["variants"])
    kind = routing["Type"]
    steps: list[tuple[float, float]]
    if kind == "ALL_AT_ONCE":
        steps = [(1.0, wait)]
    elif kind == "CANARY":
        if not routing.get("CanarySize"):
            raise _validation("TrafficRoutingConfiguration of Type CANARY needs a CanarySize.")
        canary = _share(routing["CanarySize"], instances, "CanarySize", 0.0, 0.5)
        steps = [(canary, wait), (1.0, 0.0)]
    else:
        if not routing.get("LinearStepSize"):
            raise _validation("TrafficRoutingConfiguration of Type LINEAR needs a LinearStepSize.")
        step = _share(routing["LinearStepSize"], instances, "LinearStepSize", 0.1, 0.5)
        shares = []
        share = step
        while share < 1.0 - 1e-9:
            shares.append(round(share, 6))
            share += step
        steps = [(s, wait) for s in shares] + [(1.0, 0.0)]
    return {"steps": steps, "termination": termination, "alarms": alarms, "timeout": timeout}


def _rollback_reason(outcome: tuple[str, Any], new_config: str, old_config: str, share: float) -> str:
    kind, detail = outcome
    if kind == "alarm":
        return (
            f"Deployment of endpoint configuration {new_config} was rolled back: CloudWatch alarm(s) "
            f"{', '.join(detail)} in ALARM state during a baking period ({share:.0%} of traffic on the new fleet). "
            f"All traffic is back on endpoint configuration {old_config}."
        )
    return (
        f"Deployment of endpoint configuration {new_config} was rolled back: it did not complete within "
        f"MaximumExecutionTimeoutInSeconds. All traffic is back on endpoint configuration {old_config}."
    )


def _model_error(endpoint: str, answer: Answer) -> ApiError:
    """InvokeEndpoint's ModelError, as SageMaker words it."""
    text = answer.body.decode("utf-8", errors="replace")
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    extra: dict[str, Any] = {"LogStreamArn": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{log_group}"}
    if answer.timed_out:
        message = (
            f"Your invocation timed out while waiting for a response from container {answer.container}. Review the "
            "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
        )
        return ApiError("ModelError", message, 424, extra)
    kind = "client" if 400 <= answer.status < 500 else "server"
    url = f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:group={log_group}"
    message = (
        f'Received {kind} error ({answer.status}) from {answer.container} with message "{text}". '
        f"See {url} in account {ACCOUNT} for more information."
    )
    return ApiError("ModelError", message, 424, {**extra, "OriginalStatusCode": answer.status, "OriginalMessage": text})


def _metadata(status: int) -> dict[str, Any]:
    return {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _page(
    rows: list[dict[str, Any]], request: dict[str, Any], key: str, name_key: str, sort_keys: dict[str, str]
) -> dict[str, Any]:
    """List* paging as SageMaker does it: NameContains, SortBy/SortOrder (newest first by default), MaxResults."""
    contains = request.get("NameContains")
    if contains:
        rows = [r for r in rows if str(contains) in str(r[name_key])]
    sort_key = sort_keys.get(str(request.get("SortBy", "CreationTime")), "CreationTime")
    rows.sort(key=lambda r: r[sort_key], reverse=str(request.get("SortOrder", "Descending")) == "Descending")
    start = int(request.get("NextToken") or 0)
    size = int(request.get("MaxResults") or 10)
    answer: dict[str, Any] = {key: rows[start : start + size]}
    if start + size < len(rows):
        answer["NextToken"] = str(start + size)
    return answer
