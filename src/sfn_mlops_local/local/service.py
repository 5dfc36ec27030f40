"""The local service: one long-lived process on the loopback address that owns the local runtime.

Every ``mlops`` command without ``--stack`` is a client of it, as it is a client of AWS with ``--stack``;
the AWS CLI and boto3 scripts reach it with ``--endpoint-url``. Inside: moto's HTTP front end (the same
backends the in-process interpreter, Lambda host and job runner use), the event bus and the scheduler.
It is the only writer of the state folder (an exclusive lock), and saves the state after every completed
execution and on stop; a restart after a kill marks what was in flight as interrupted.

The project's own routes live under ``/_mlops/`` (status, fault injection, firing a schedule, stop).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sfn_mlops_local.local.client import CONTROL_HEADER
from sfn_mlops_local.local.state import ServiceInfo, claim_state_folder
from sfn_mlops_local.local.template import REGION

CONTROL_PREFIX = "/_mlops/"
_LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_ENDPOINT_INVOKE = re.compile(r"^/endpoints/[^/]+/invocations$")  # sagemaker-runtime InvokeEndpoint
LOOPBACK = "127.0.0.1"
# How often the saver looks for completed executions and other writes (a save takes tens of ms).
SAVE_CHECK_S = 0.2
# How long a stop lets in-flight executions and jobs finish before it stops them (they are then marked
# interrupted at the next start, as after a kill).
STOP_WAIT_S = 30.0


class ServiceCannotStart(RuntimeError):
    pass


class LocalService:
    def __init__(self, root: Path | None = None, state_dir: Path | None = None, port: int = 0) -> None:
        from sfn_mlops_local.local.runtime import LocalRuntime

        self.runtime = LocalRuntime(root=root, state_dir=state_dir, persist=True)
        self.state_dir = self.runtime.state_dir
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._saver: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._lock_file: Any = None
        self.endpoint = ""

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Take the state folder, start the runtime and the HTTP endpoint; returns the endpoint URL."""
        from werkzeug.serving import make_server

        self._take_state_folder()
        try:
            _check_port_free(self._port)
            self.runtime.start()
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )

            app = _ServiceApp(self, DomainDispatcherApplication(create_backend_app))
            self._server = make_server(LOOPBACK, self._port, app, threaded=True, request_handler=MotoRequestHandler)
            host, port = self._server.server_address[:2]
            self.endpoint = f"http://{host}:{port}"
            self._thread = threading.Thread(target=self._server.serve_forever, name="local-service", daemon=True)
            self._thread.start()
            self._saver = threading.Thread(target=self._save_loop, name="local-service-saver", daemon=True)
            self._saver.start()
            self.runtime.start_scheduler()
            collect_garbage_for_a_long_lived_process()
            self.info().write(self.state_dir)
        except BaseException:
            self._release_state_folder()
            raise
        return self.endpoint

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Foreground: run until SIGTERM/SIGINT or ``POST /_mlops/stop``."""
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the log
        endpoint = self.start()

        def on_signal(*_: object) -> None:
            if self._stopping.is_set():  # asked twice: stop now (what was in flight is marked at the next start)
                self.runtime.jobs.terminate_all()
                os._exit(130)
            self._stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        if on_ready:
            on_ready(endpoint)
        self._stopping.wait()
        self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Let in-flight work finish (up to ``wait_s``), stop what is left, save, release the state folder."""
        if self._stopped.is_set():
            return
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()  # no new requests; executions already started go on
        if self._saver is not None:
            self._saver.join()
        try:
            self.runtime.stop(wait_s=wait_s)  # saves the state one last time
        finally:
            ServiceInfo.remove(self.state_dir)
            self._release_state_folder()
            self._stopped.set()

    def info(self) -> ServiceInfo:
        return ServiceInfo(
            endpoint=self.endpoint,
            pid=os.getpid(),
            state_dir=str(self.state_dir),
            resources=self.runtime.resource_names(),
        )

    # ---------------------------------------------------------------- state folder ownership
    def _take_state_folder(self) -> None:
        claim_state_folder(self.state_dir)  # refuses a folder it did not make before writing anything into it
        self._lock_file = open(self.state_dir / "service.lock", "a+")  # noqa: SIM115  # held for the lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            self._lock_file = None
            raise ServiceCannotStart(f"a local service already owns {self.state_dir}") from exc

    def _release_state_folder(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # ---------------------------------------------------------------- durability
    def _save_loop(self) -> None:
        """Save within a tick of every execution that ends. Client writes are saved before their response
        (``save_for_client``), with the events they caused still undelivered: a kill before the next save
        delivers them again after the restart, so starting executions need no save of their own."""
        seen = self.runtime.completed_executions()
        failures = 0
        pause = SAVE_CHECK_S
        while not self._stopping.wait(pause):
            progress = self.runtime.completed_executions()
            if progress == seen:
                continue
            started = time.monotonic()
            try:
                self.runtime.save()
            except Exception as exc:  # retried with back-off, never fatal; clients are told (status)
                self.runtime.log_warning(f"saving the local state failed: {exc!r}")
                self._stopping.wait(min(30.0, 2.0 * (1 + failures)))
                failures += 1
                continue
            failures = 0
            seen = progress
            # A save pickles the whole state under the request lock: as the state grows, save less often, so
            # that saving never takes more than a fifth of the time (the durability window grows with it).
            pause = max(SAVE_CHECK_S, 4 * (time.monotonic() - started))

    def save_for_client(self) -> None:
        """A client's write is acknowledged only once it is on disk (as AWS acknowledges a durable write)."""
        try:
            self.runtime.save()
        except Exception as exc:  # the write happened in memory; the saver retries, and status says so
            self.runtime.log_warning(f"saving the local state failed: {exc!r}")

    # ---------------------------------------------------------------- control routes
    def control(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        route = path.removeprefix(CONTROL_PREFIX).strip("/")
        if route == "status" and method == "GET":
            return 200, {
                "running": True,
                **self.info().as_dict(),
                "in_flight": self.runtime.in_flight(),
                "save_error": self.runtime.save_error,
                "saves": self.runtime.saves,
            }
        if route == "stop" and method == "POST":
            self.request_stop()
            return 202, {"stopping": True}
        if route == "faults" and method == "POST":
            if body.get("unit"):
                self.runtime.fail_unit(str(body["unit"]), times=int(body.get("times", 1)))
            else:
                self.runtime.fail_task(
                    str(body["state_machine"]),
                    str(body["state"]),
                    error=str(body.get("error", "InjectedFault")),
                    cause=body.get("cause"),
                    times=int(body.get("times", 1)),
                )
            return 200, {"pending": len(self.runtime.pending_task_faults())}
        if route == "faults" and method == "GET":
            return 200, {"pending": [vars(f) for f in self.runtime.pending_task_faults()]}
        if route == "faults" and method == "DELETE":
            self.runtime.clear_task_faults()
            return 200, {"pending": []}
        if route == "idle" and method == "POST":
            self.runtime.wait_idle(timeout=float(body.get("timeout", 300)))
            return 200, {"in_flight": self.runtime.in_flight()}
        if route == "jobs" and method == "GET":  # what the benchmark subtracts from wall time
            jobs = self.runtime.jobs
            return 200, {"script_seconds": dict(jobs.job_seconds), "job_seconds": dict(jobs.job_total_seconds)}
        if route == "save" and method == "POST":
            self.runtime.save()
            return 200, {"saved": True}
        if route.startswith("schedules/") and route.endswith("/fire") and method == "POST":
            name = route.removeprefix("schedules/").removesuffix("/fire")
            return 200, self.runtime.fire_schedule(name, group=str(body.get("group", "default")))
        if route == "schedules" and method == "GET":
            return 200, {"schedules": self.runtime.schedules()}
        return 404, {"error": "NotFound", "message": f"no local service route {method} {path}"}


class _ServiceApp:
    """WSGI: the project's control routes, else moto, one request at a time (moto is not thread-safe)."""

    def __init__(self, service: LocalService, moto_app: Any) -> None:
        self._service = service
        self._moto = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, path, start_response)
        invoked = _LAMBDA_INVOKE.match(path)
        if invoked and environ.get("REQUEST_METHOD") == "POST":
            return self._lambda_invoke(environ, unquote(invoked.group(1)), start_response)
        if _ENDPOINT_INVOKE.match(path) and environ.get("REQUEST_METHOD") == "POST":
            return self._service.runtime.endpoints.wsgi_invoke(environ, _read_body(environ), start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("SageMaker."):
            served = self._sagemaker_job(environ, target.removeprefix("SageMaker."), start_response)
            if served is not None:
                return served
        from sfn_mlops_local.local import moto_adaptations

        with moto_adaptations.moto_requests_lock():
            # Drain the body inside the lock: moto builds some responses lazily from live backend dicts.
            chunks = list(self._moto(environ, start_response))
        if not _is_read(environ):
            self._service.save_for_client()
        return chunks

    def _lambda_invoke(self, environ: dict[str, Any], name: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Lambda's Invoke for HTTP clients (`aws lambda invoke`, boto3): the function's own code, in-process,
        answered exactly as the interpreter's tasks are (lambda_host.py)."""
        from urllib.parse import parse_qs

        from sfn_mlops_local.local.lambda_host import not_found_error

        lambdas = self._service.runtime.lambdas
        headers = [("X-Amz-Executed-Version", "$LATEST"), ("Content-Type", "application/json")]
        if lambdas.function(name) is None:
            qualifier = parse_qs(environ.get("QUERY_STRING", "")).get("Qualifier", [None])[0]
            error = not_found_error(name, qualifier, REGION)
            body = json.dumps({"Type": error["Type"], "Message": error["Message"]}).encode()
            start_response(
                "404 Not Found",
                [*headers, ("x-amzn-ErrorType", "ResourceNotFoundException"), ("Content-Length", str(len(body)))],
            )
            return [body]
        payload = json.loads(_read_body(environ) or b"{}")
        kind = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if kind == "DryRun":
            start_response("204 No Content", headers)
            return [b""]
        if kind == "Event":  # accepted now, run in the background, as Lambda's asynchronous invocation
            threading.Thread(target=lambdas.invoke, args=(name, payload), daemon=True).start()
            start_response("202 Accepted", [*headers, ("Content-Length", "0")])
            return [b""]
        body, function_error = lambdas.invoke_marshalled(name, payload)
        if function_error:
            headers.append(("X-Amz-Function-Error", function_error))
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _sagemaker_job(
        self, environ: dict[str, Any], operation: str, start_response: Callable[..., Any]
    ) -> Iterable[bytes] | None:
        """SageMaker jobs run in the local job runner and endpoints in the endpoint service, not in moto: their
        answers, for HTTP clients too (the endpoint service saves its writes before answering)."""
        raw = _read_body(environ)
        request = json.loads(raw or b"{}")
        runtime = self._service.runtime
        answer = runtime.jobs.handle(operation, request) or runtime.endpoints.handle(operation, request)
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(raw)  # moto reads the body again
            return None
        status, parsed = answer
        if status != 200:
            error = parsed.get("Error", {})
            parsed = {"__type": error.get("Code", "ValidationException"), "message": error.get("Message", "")}
        payload = json.dumps(parsed, default=_epoch_seconds).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Bad Request'}",
            [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _control(self, environ: dict[str, Any], path: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if not environ.get("HTTP_" + CONTROL_HEADER.upper().replace("-", "_")):
            refusal = json.dumps({"error": "Forbidden", "message": f"the {CONTROL_HEADER} header is required"})
            start_response("403 Forbidden", [("Content-Type", "application/json")])
            return [refusal.encode()]
        try:
            body = json.loads(_read_body(environ) or b"{}")
            status, answer = self._service.control(method, path, body if isinstance(body, dict) else {})
        except (ValueError, KeyError, TypeError) as exc:
            status, answer = 400, {"error": type(exc).__name__, "message": str(exc).strip("'\"")}
        except Exception as exc:
            status, answer = 500, {"error": type(exc).__name__, "message": str(exc)}
        payload = json.dumps(answer, default=str).encode()
        reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
        start_response(
            f"{status} {reason.get(status, 'Error')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(environ["wsgi.input"].read(length)) if length else b""


_READ_OPERATIONS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Search")


def _is_read(environ: dict[str, Any]) -> bool:
    """A request that cannot change state (no save needed): GET/HEAD, or a JSON-protocol read operation."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        return True
    operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
    return operation.startswith(_READ_OPERATIONS)


def _epoch_seconds(value: Any) -> Any:
    """SageMaker's JSON protocol sends timestamps as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    return str(value)


# A run allocates many short-lived objects and few cycles; the service's own objects live as long as it does.
GC_FIRST_GENERATION_THRESHOLD = 20_000


def collect_garbage_for_a_long_lived_process() -> None:
    """What the service has built so far (moto's models, parsed state machines, imported modules) stays until it
    stops: the cyclic collector need not scan it again at every collection, and collects less often. Collection
    was about a tenth of the CPU of a run (bench/orchestration_overhead.py measures the cost per unit)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, 20, 20)


def _check_port_free(port: int) -> None:
    """A taken port is one readable line, not werkzeug's two lines and exit."""
    if not port:
        return
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            raise ServiceCannotStart(f"port {port} on {LOOPBACK} is in use ({exc.strerror})") from exc


def serve(root: Path | None, state_dir: Path | None, port: int, on_ready: Callable[[str], None]) -> None:
    LocalService(root=root, state_dir=state_dir, port=port).serve_forever(on_ready)
