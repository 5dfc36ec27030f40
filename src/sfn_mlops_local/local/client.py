"""Reaching the local service from a command: find it, start it if it is not running, stop it.

Kept free of moto and the runtime so that a read-only command imports only boto3 and answers fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfn_mlops_local.local.state import SERVICE_FILE, ServiceInfo

# The service's own routes need this header: a web page cannot send it cross-origin without a preflight,
# which these routes never grant, so a page open in a browser cannot stop the service or inject faults.
CONTROL_HEADER = "X-Mlops-Local-Client"

REGION = "us-east-1"
START_TIMEOUT_S = 180  # a cold start imports moto and xgboost and provisions the template: seconds, not minutes
# Requests go straight to the loopback address, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalServiceError(RuntimeError):
    """The local service could not be reached, started or asked: the message says why, in one line.
    ``status`` is the HTTP status when the service answered and refused (400: a bad request), else None."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def project_root() -> Path:
    """The folder holding template.yaml: the current one or a parent, else the installed source tree."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "template.yaml").exists() and (folder / "statemachines").is_dir():
            return folder
    return Path(__file__).resolve().parents[3]


def default_state_dir(root: Path | None = None) -> Path:
    return Path(os.environ.get("MLOPS_LOCAL_STATE") or (root or project_root()) / ".mlops-local").resolve()


def request(info: ServiceInfo, method: str, route: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """Call one of the service's own routes (``/_mlops/...``); errors come back as LocalServiceError."""
    data = json.dumps(body or {}).encode() if method != "GET" else None
    call = urllib.request.Request(f"{info.endpoint}/_mlops/{route}", data=data, method=method)
    call.add_header("Content-Type", "application/json")
    call.add_header(CONTROL_HEADER, "mlops")
    try:
        with _opener.open(call, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read() or b"{}")
        except ValueError:
            answer = {}
        message = answer.get("message") or f"the local service answered {exc.code}"
        raise LocalServiceError(message, status=exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LocalServiceError(f"the local service at {info.endpoint} did not answer ({exc})") from exc


def running(state_dir: Path) -> ServiceInfo | None:
    """The service that owns ``state_dir``, if it is up and answering. An endpoint left in a stale
    service.json may now belong to another folder's service (a reused port): that one is not ours."""
    info = ServiceInfo.read(state_dir)
    if info is None:
        return None
    try:
        status = request(info, "GET", "status", timeout=5)
    except LocalServiceError:
        return None
    ours = status.get("pid") == info.pid and Path(str(status.get("state_dir"))).resolve() == state_dir.resolve()
    if not (status.get("running") and ours):
        return None
    info.save_error = status.get("save_error")
    return info


def ensure(state_dir: Path, say: Callable[[str], None], root: Path | None = None) -> ServiceInfo:
    """The running service, started in the background first if there is none (said in one line)."""
    info = running(state_dir)
    if info is None:
        info = start(state_dir, root)
        say(f"started the local service at {info.endpoint} (state in {info.state_dir}; `mlops local stop` stops it)")
    if info.save_error:
        say(f"warning: the local service cannot save its state ({info.save_error}); see {state_dir}/logs")
    return info


def start(state_dir: Path, root: Path | None = None) -> ServiceInfo:
    """Start ``mlops local serve`` detached (it outlives this command) and wait until it answers."""
    log_path = state_dir / "logs" / "service.log"
    command = [sys.executable, "-m", "sfn_mlops_local.cli", "local", "serve", "--state-dir", str(state_dir)]
    from sfn_mlops_local.local.state import claim_state_folder

    claim_state_folder(state_dir)  # a foreign folder is refused here, before anything is written into it
    try:
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115  # handed to the child, closed below
    except OSError as exc:
        raise LocalServiceError(f"cannot use {state_dir} as the local state folder: {exc.strerror}") from exc
    with log:
        process = subprocess.Popen(
            command,
            cwd=str(root or project_root()),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal stops the command, not the service
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = running(state_dir)
        if info is not None:
            return info
        if process.poll() is not None:
            # Lost a race with another command that started it first: use that one.
            info = _wait_for_other(state_dir, deadline)
            if info is not None:
                return info
            raise LocalServiceError(f"the local service did not start: {_last_line(log_path)} (log: {log_path})")
        time.sleep(0.05)
    process.terminate()
    raise LocalServiceError(f"the local service did not answer within {START_TIMEOUT_S}s (log: {log_path})")


def _wait_for_other(state_dir: Path, deadline: float) -> ServiceInfo | None:
    lock = state_dir / "service.lock"
    while time.monotonic() < deadline and lock.exists() and _lock_held(lock):
        info = running(state_dir)
        if info is not None:
            return info
        time.sleep(0.05)
    return running(state_dir)


def _lock_held(lock: Path) -> bool:
    import fcntl

    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def stop(state_dir: Path, timeout: float = 90) -> ServiceInfo | None:
    """Ask the service to stop (it lets in-flight work finish for up to 30 s, stops the rest, and saves) and
    wait until it has exited. None if no service owns the folder; LocalServiceError if it would not stop."""
    info = ServiceInfo.read(state_dir)
    lock = state_dir / "service.lock"
    if info is None and lock.exists() and _lock_held(lock):
        info = _wait_for_other(state_dir, time.monotonic() + START_TIMEOUT_S)  # still starting: let it
    if info is None:
        return None
    with contextlib.suppress(LocalServiceError):  # not answering: the lock below tells whether it is gone
        if running(state_dir) is not None:
            request(info, "POST", "stop", timeout=5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and lock.exists() and _lock_held(lock):
        time.sleep(0.05)
    if lock.exists() and _lock_held(lock):
        raise LocalServiceError(
            f"the local service (pid {info.pid}) is still stopping after {timeout:.0f}s; "
            f"`kill {info.pid}` twice stops it at once (in-flight work is then marked interrupted)"
        )
    (state_dir / SERVICE_FILE).unlink(missing_ok=True)  # it is gone: a stale file would only mislead
    return info


_session: Any = None
_session_lock = threading.Lock()


def _shared_session() -> Any:
    """One boto3 session per process for the service's clients: a session loads botocore's endpoint data and each
    service's model once, so a process that runs many commands (a notebook, the tests) does not reload them for
    every command (about 0.08 s each). Clients are made under a lock: a boto3 session is not thread-safe."""
    global _session
    if _session is None:
        from sfn_mlops_local.model_cache import session as cached_session

        _session = cached_session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return _session


def client_factory(info: ServiceInfo) -> Callable[[str], Any]:
    """boto3 clients for the service's endpoint: the same calls the CLI makes to AWS with ``--stack``."""
    from botocore.config import Config

    config = Config(proxies={}, retries={"max_attempts": 3, "mode": "standard"})

    def client(service: str) -> Any:
        with _session_lock:
            return _shared_session().client(service, endpoint_url=info.endpoint, config=config)

    return client
