"""Serve ``lambda.Invoke`` in-process from the functions' own code, as the Lambda service would."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto.core import DEFAULT_ACCOUNT_ID

from sfn_mlops_local.local.template import LocalFunction


@dataclass
class FakeLambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


WARM_MODULES = (
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_lambda_powertools.utilities.typing",
    "sfn_mlops.planner",
    "sfn_mlops.registry",
    "sfn_mlops.trigger",
    "sfn_mlops.jobs",
    "sfn_mlops.evaluation",
    "sfn_mlops.cache",
    "sfn_mlops.locks",
)

WARM_CLIENTS = ("s3", "dynamodb", "sagemaker", "stepfunctions")


class LambdaHost:
    """Loads each function's ``app.py`` once and invokes its handler for ``lambda.Invoke`` calls."""

    def __init__(self, functions: dict[str, LocalFunction], log_dir: Path) -> None:
        self._log_dir = log_dir
        self._by_name: dict[str, LocalFunction] = {}
        for function in functions.values():
            self._by_name[function.name] = function
            self._by_name[function.arn] = function
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()
        self.invocations: list[dict[str, Any]] = []
        self.fault: Any = None  # set by tests/CLI: callable(function_name, payload) -> Exception | None

    def warm(self) -> threading.Thread:
        """Import what the handlers import, in the background, as a warm Lambda environment would have.

        Only libraries and the shared package (nothing that prints); each handler module itself is
        still loaded on its first invocation, with its logs sent to its own file.
        """

        def load() -> None:
            for name in WARM_MODULES:
                with contextlib.suppress(ImportError):
                    importlib.import_module(name)
            from sfn_mlops.aws import client

            for service in WARM_CLIENTS:
                client(service)

        thread = threading.Thread(target=load, name="lambda-warm", daemon=True)
        thread.start()
        return thread

    def function(self, name_or_arn: str) -> LocalFunction | None:
        # Unqualified name, ARN, or ARN with a qualifier.
        return self._by_name.get(name_or_arn) or self._by_name.get(name_or_arn.rsplit(":", 1)[0])

    def _module(self, function: LocalFunction) -> ModuleType:
        with self._lock:
            module = self._modules.get(function.logical_id)
            if module is None:
                module_file, _ = function.handler.rsplit(".", 1)
                path = function.code_dir / f"{module_file.replace('.', '/')}.py"
                spec = importlib.util.spec_from_file_location(f"_local_lambda_{function.logical_id}", path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                # Powertools' Logger binds to sys.stdout when created: send each function's logs to its
                # own file (like CloudWatch Logs) instead of the CLI's output.
                self._log_dir.mkdir(parents=True, exist_ok=True)
                log = open(self._log_dir / f"lambda-{function.logical_id}.log", "a", buffering=1)  # noqa: SIM115
                with contextlib.redirect_stdout(log):
                    spec.loader.exec_module(module)
                self._modules[function.logical_id] = module
            return module

    def invoke(self, name_or_arn: str, payload: Any) -> tuple[Any, str | None]:
        """Returns (result payload, function error kind or None), with Lambda's error payload shape."""
        function = self.function(name_or_arn)
        if function is None:
            raise KeyError(name_or_arn)
        handler = getattr(self._module(function), function.handler.rsplit(".", 1)[1])
        context = FakeLambdaContext(
            function.name,
            function.arn,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{function.name}",
        )
        self.invocations.append({"function": function.logical_id, "request_id": context.aws_request_id})
        try:
            injected = self.fault(function.logical_id, payload) if self.fault else None
            if injected is not None:
                raise injected
            return handler(payload, context), None
        except Exception as exc:
            return {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": context.aws_request_id,
                "stackTrace": function_stack_trace(exc),
            }, "Unhandled"

    def invoke_marshalled(self, name_or_arn: str, payload: Any) -> tuple[bytes, str | None]:
        """Invoke's response body as the Python runtime sends it, and the function error kind or None."""
        result, error = self.invoke(name_or_arn, payload)
        try:
            return marshal_response(result), error
        except (TypeError, ValueError) as unmarshallable:
            # what the Python runtime answers for a result it cannot serialise (its Runtime.MarshalError)
            marshal_error = {
                "errorMessage": f"Unable to marshal response: {unmarshallable}",
                "errorType": "Runtime.MarshalError",
                "requestId": self.invocations[-1]["request_id"],
                "stackTrace": [],
            }
            return json.dumps(marshal_error).encode(), "Unhandled"

    # botocore "before-call.lambda.Invoke" handler: short-circuits the HTTP call.
    def on_invoke(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        name = unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])
        if self.function(name) is None:
            # Lambda's own answer (nothing else serves functions here: moto's backend has none of ours)
            qualifier = (params.get("query_string") or {}).get("Qualifier")
            region = (params.get("context") or {}).get("client_region") or "us-east-1"
            return _response(params, 404, not_found_error(name, qualifier, region))
        body = params.get("body") or b"{}"
        payload = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
        data, error = self.invoke_marshalled(name, payload)
        parsed: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": io.BytesIO(data)}
        if error:
            parsed["FunctionError"] = error
        return AWSResponse(params.get("url", ""), 200, HTTPHeaders(), None), parsed


def marshal_response(result: Any) -> bytes:
    """The Python runtime's response body: bytes as they are, anything else as JSON (raises if it cannot)."""
    if isinstance(result, bytes):
        return result
    return json.dumps(result).encode()


def function_stack_trace(exc: BaseException) -> list[str]:
    """The Python runtime's ``stackTrace``: the function's frames (not the host's, as the runtime drops its
    bootstrap's), formatted from (file, line, name, code) as the runtime does, so without column markers."""
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    while frames and frames[0][0] == __file__:
        frames.pop(0)
    return traceback.format_list(frames)  # type: ignore[arg-type]


def not_found_error(name: str, qualifier: str | None, region: str) -> dict[str, Any]:
    """Lambda's ResourceNotFoundException for Invoke: the function's ARN, with the qualifier if one was given."""
    if name.startswith("arn:"):
        arn = name
    else:
        parts = name.split(":")  # NAME, NAME:QUALIFIER, ACCOUNT:function:NAME[:QUALIFIER]
        account, function = (parts[0], ":".join(parts[2:])) if len(parts) > 2 else (DEFAULT_ACCOUNT_ID, name)
        arn = f"arn:aws:lambda:{region}:{account}:function:{function}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return {
        "Error": {"Code": "ResourceNotFoundException", "Message": f"Function not found: {arn}"},
        "Message": f"Function not found: {arn}",
        "Type": "User",
    }


def _response(params: dict[str, Any], status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    request_id = str(uuid.uuid4())
    parsed["ResponseMetadata"] = {
        "RequestId": request_id,
        "HTTPStatusCode": status,
        "HTTPHeaders": {"x-amzn-requestid": request_id, "x-amzn-errortype": parsed["Error"]["Code"]},
        "RetryAttempts": 0,
    }
    return AWSResponse(params.get("url", ""), status, HTTPHeaders(), None), parsed
