"""Local emulation of the SageMaker inference containers the project deploys, serving mode.

Each container of an endpoint variant runs in its own long-lived process (``worker_main``), forked from the
warm interpreter of job_process.py, with its own environment, working folder and log file, as a container
has. The service talks to it over a pipe: one request at a time, ``(body, content_type, accept)`` in,
``(status, body, content_type)`` out, as the container's ``POST /invocations`` would answer. No user code is
ever imported into the service process.

Two images are emulated, following their published serving code:

- ``sagemaker-xgboost:1.7-1`` (algorithm mode, ``sagemaker_xgboost_container/algorithm_mode/serve.py``): its
  rules (content types, Accept, answers, status codes, model files, selectable output) are in xgboost_serving.py.
- ``sagemaker-scikit-learn:1.2-1-cpu-py3`` (framework mode, ``sagemaker_sklearn_container/serving.py`` on
  ``sagemaker_containers``): the user's module ``$SAGEMAKER_PROGRAM`` from ``$SAGEMAKER_SUBMIT_DIRECTORY``, its
  ``model_fn``/``input_fn``/``predict_fn``/``output_fn`` (or ``transform_fn``) with the framework's defaults for
  the ones it leaves out, the framework's request decoding (text/csv and application/json arrive as ``str``),
  and Flask's response types (a tuple ``(body, content_type)`` is that response; a bare string is text/html).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import textwrap
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sfn_mlops_local.containers.xgboost_serving import XGBoostServer

Response = tuple[int, bytes, str]

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
UTF8_TYPES = (JSON, CSV)


class ModelLoadError(Exception):
    """The container could not load its model: the endpoint's health check fails."""


def worker_main(conn: Connection, kind: str, env: dict[str, str], model_dir: str, code_dir: str, log_path: str) -> None:
    """In the forked child: become the container's process, load the model, answer invocations until the pipe
    closes (the service stopped the container, or died)."""
    os.setsid()  # Ctrl-C on a foreground service does not reach its containers; the service stops them
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115  # line-buffered, as PYTHONUNBUFFERED
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    os.chdir(model_dir)
    try:
        server: XGBoostServer | FrameworkServer
        if kind == "xgboost":
            from sfn_mlops_local.containers import xgboost_serving  # it imports this module: imported here

            server = xgboost_serving.XGBoostServer(model_dir)
        else:
            server = FrameworkServer(model_dir, code_dir)
    except BaseException as exc:  # a user's model_fn may raise anything, SystemExit included
        traceback.print_exc()
        conn.send(("failed", f"{type(exc).__name__}: {exc}".strip()))
        return
    print(f"model loaded from {model_dir}; serving", flush=True)
    conn.send(("ready", ""))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        body, content_type, accept = request
        try:
            response = server.invoke(body, content_type, accept)
        except BaseException as exc:  # the container answers 500 and keeps serving, as its web server does
            traceback.print_exc()
            response = (500, _error_body(exc), JSON)
        conn.send(response)


def flask_content_type(mimetype: str) -> str:
    """The Content-Type header Flask (werkzeug) writes for a mimetype: text types get the charset."""
    if "charset=" in mimetype:
        return mimetype
    base = mimetype.split(";", 1)[0].strip().lower()
    if base.startswith("text/") or base.endswith("+xml") or base in ("application/xml", "application/javascript"):
        return f"{mimetype}; charset=utf-8"
    return mimetype


def _error_body(error: BaseException) -> bytes:
    """sagemaker_containers' error response body."""
    return json.dumps(
        {"error": type(error).__name__, "error-message": str(error), "stack-trace": traceback.format_exc()}
    ).encode()


# --------------------------------------------------------------------------- sagemaker-scikit-learn:1.2-1
class UnsupportedFormatError(Exception):
    def __init__(self, content_type: str) -> None:
        super().__init__(
            textwrap.dedent(
                f"""Content type {content_type} is not supported by this framework.

                   Please implement input_fn to to deserialize the request data or an output_fn to
                   serialize the response. For more information, see the SageMaker Python SDK README."""
            )
        )


def decode(data: Any, content_type: str) -> Any:
    """sagemaker_containers' decoders."""
    if content_type == JSON:
        return np.array(json.loads(data))
    if content_type == CSV:
        return np.genfromtxt(io.StringIO(data), dtype=None, delimiter=",")
    if content_type == NPY:
        return np.load(io.BytesIO(data), allow_pickle=True)
    raise UnsupportedFormatError(content_type)


def encode(array: Any, accept: str) -> bytes:
    """sagemaker_containers' encoders."""
    if accept == JSON:
        return json.dumps(array, default=lambda value: value.tolist() if hasattr(value, "tolist") else value).encode()
    if accept == CSV:
        stream = io.StringIO()
        np.savetxt(stream, array, delimiter=",", fmt="%s")
        return stream.getvalue().encode()
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()
    raise UnsupportedFormatError(accept)


def default_model_fn(model_dir: str) -> Any:
    raise NotImplementedError(
        textwrap.dedent(
            """
    Please provide a model_fn implementation.
    See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk
    """
        )
    )


def default_input_fn(input_data: Any, content_type: str) -> Any:
    array = decode(input_data, content_type)
    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def default_predict_fn(input_data: Any, model: Any) -> Any:
    return model.predict(input_data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    return encode(prediction, accept), accept


class _Status(Exception):
    def __init__(self, status: int, error: Exception) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error


class FrameworkServer:
    """The scikit-learn container's serving stack: the user's module's functions with the framework's defaults."""

    def __init__(self, model_dir: str, code_dir: str) -> None:
        program = os.environ.get("SAGEMAKER_PROGRAM", "")
        if not program:
            raise ModelLoadError("SAGEMAKER_PROGRAM is not set: the framework container has no module to serve")
        module_name = program[:-3] if program.endswith(".py") else program
        if not (Path(code_dir) / f"{module_name}.py").exists() and not (Path(code_dir) / module_name).is_dir():
            raise ModelLoadError(f"{program} not found in SAGEMAKER_SUBMIT_DIRECTORY ({code_dir})")
        sys.path.insert(0, code_dir)
        module = importlib.import_module(module_name)
        self.transform_fn = getattr(module, "transform_fn", None)
        functions = [getattr(module, name, None) for name in ("input_fn", "predict_fn", "output_fn")]
        if self.transform_fn is not None and any(functions):
            raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
        self.input_fn = functions[0] or default_input_fn
        self.predict_fn = functions[1] or default_predict_fn
        self.output_fn = functions[2] or default_output_fn
        self.model = getattr(module, "model_fn", default_model_fn)(model_dir)
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        content_type = content_type or JSON
        accept = self.default_accept if not accept or accept == "*/*" else accept
        content: Any = body.decode("utf-8") if content_type in UTF8_TYPES else body
        try:
            if self.transform_fn is not None:
                result = self.transform_fn(self.model, content, content_type, accept)
            else:
                result = self._default_transform(content, content_type, accept)
        except _Status as failed:
            return failed.status, _error_body(failed.error), flask_content_type(JSON)
        return _as_response(result)

    def _default_transform(self, content: Any, content_type: str, accept: str) -> Any:
        try:
            data = self.input_fn(content, content_type)
        except UnsupportedFormatError as exc:
            raise _Status(415, exc) from exc
        prediction = self.predict_fn(data, self.model)
        try:
            return self.output_fn(prediction, accept)
        except UnsupportedFormatError as exc:
            raise _Status(406, exc) from exc


def _as_response(result: Any) -> Response:
    """What the container's Flask app answers for a transform's result."""
    if isinstance(result, tuple):  # (body, content type): the framework's Response(response=..., mimetype=...)
        body, mimetype = result[0], str(result[1])
        return 200, _bytes(body), flask_content_type(mimetype)
    if hasattr(result, "get_data") and hasattr(result, "mimetype"):  # a Flask/werkzeug Response
        return int(getattr(result, "status_code", 200)), result.get_data(), str(result.content_type)
    return 200, _bytes(result), flask_content_type("text/html")  # Flask's response for a bare string


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list | tuple):  # an iterable of chunks, as a WSGI body
        return b"".join(_bytes(part) for part in value)
    return str(value).encode("utf-8")
