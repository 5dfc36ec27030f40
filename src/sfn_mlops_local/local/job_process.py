"""Job processes forked from a warm interpreter: the container's ``python script.py`` without the import wait.

A SageMaker job runs its script in a fresh container process. Locally that is a process too, but a fresh
Python pays 1-2 s importing numpy and xgboost before the script's first line, three times per run. The
standard library's forkserver keeps one interpreter with those modules imported and forks a child per
job: a separate process with the job's own argv, environment, working folder, session and log file, whose
exit code and failure files are the job's, exactly as before. Only the import time is gone (the modules
are the same versions a fresh process would import). See docs/decisions/0011-warm-job-processes.md.

Jobs of a SageMaker image run in that image's environment (image_environments.py), not in this interpreter:
``start_in_image`` asks a small standard-library fork server run by the environment's own Python
(image_fork_server.py, one per environment, started on first use and kept warm with the image's heavy modules
imported) to fork the job. See docs/decisions/0023-image-environments.md.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any, Protocol

# What the job scripts and the XGBoost container import; anything else is imported by the job as usual.
PRELOAD = ["numpy", "xgboost", "sfn_mlops_local.containers.xgboost_algorithm"]

_context: ForkServerContext | None = None


class JobProcess(Protocol):
    def wait(self, timeout: float | None) -> int: ...
    def running(self) -> bool: ...
    def kill(self) -> None: ...
    def terminate(self) -> None: ...


def _warm_context() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


def warm_context() -> ForkServerContext:
    """The warm forkserver context, for other long-lived local processes (endpoint containers) to fork from."""
    return _warm_context()


def runs_warm(command: list[str]) -> bool:
    """Python scripts and modules run by this interpreter can start warm; anything else is a plain process."""
    if len(command) < 2 or command[0] != sys.executable:
        return False
    return (command[1] == "-m" and len(command) >= 3) or command[1].endswith(".py")


class _Forked:
    def __init__(self, process: Any) -> None:
        self._process = process

    def wait(self, timeout: float | None) -> int:
        self._process.join(timeout)
        if self._process.is_alive():
            raise subprocess.TimeoutExpired("job", timeout or 0)
        return int(self._process.exitcode)

    def running(self) -> bool:
        return bool(self._process.is_alive())

    def kill(self) -> None:
        self._process.kill()

    def terminate(self) -> None:
        self._process.terminate()


class _Spawned:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    def wait(self, timeout: float | None) -> int:
        return self._process.wait(timeout=timeout)

    def running(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        self._process.kill()

    def terminate(self) -> None:
        self._process.terminate()


def start(command: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> JobProcess:
    """Start the job's process with its output in ``log_path``; in its own session, so that Ctrl-C in a
    foreground service's terminal does not reach it (the service decides what happens to in-flight jobs)."""
    preload = _image_preloads.get(command[0]) if command else None
    if preload is not None and runs_in_image(command):
        return start_in_image(Path(command[0]), preload, command[1:], env, cwd, log_path)
    if runs_warm(command):
        process = _warm_context().Process(target=_run, args=(command, env, str(cwd), str(log_path)))
        process.start()
        return _Forked(process)
    with open(log_path, "ab") as log:
        spawned = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return _Spawned(spawned)


def _run(command: list[str], env: dict[str, str], cwd: str, log_path: str) -> None:
    """In the forked child: become the job's process, then run its script as ``__main__``."""
    os.setsid()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115  # PYTHONUNBUFFERED's line buffering
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    extra = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]
    try:
        if command[1] == "-m":
            sys.argv = [command[2], *command[3:]]
            sys.path[:0] = [cwd, *extra]
            runpy.run_module(command[2], run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(command[1])
            sys.argv = [command[1], *command[2:]]
            sys.path[:0] = [os.path.dirname(script), *extra]
            runpy.run_path(script, run_name="__main__")
    except Exception as exc:
        _print_script_traceback(exc)
        sys.exit(1)


def _print_script_traceback(exc: BaseException) -> None:
    """The traceback ``python script.py`` would print: the script's frames only, not the fork's and runpy's
    (the tail of the log is what a failed job's reason quotes, so it must end with the script's own lines)."""
    import traceback

    machinery = {os.path.abspath(__file__), os.path.abspath(runpy.__file__)}
    tb = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) in machinery:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


# ---------------------------------------------------------------- jobs in an image's environment
SERVER_SCRIPT = Path(__file__).resolve().parent / "image_fork_server.py"
SERVER_START_TIMEOUT = 120.0


class ImageServerError(RuntimeError):
    """The fork server of an image environment could not be started (the reason is readable)."""


class ImageServer:
    """One image environment's fork server: started by its own Python in isolated mode (``-I``: no PYTHONPATH,
    no user site, not even the script's folder on its path), in its own session, fed nothing of this process's
    environment but PATH and the locale; it lives as long as this process (its stdin is our pipe)."""

    def __init__(self, python: Path, preload: list[str]) -> None:
        self._folder = tempfile.mkdtemp(prefix="sfn-image-server-")  # 0700: only this user reaches the socket
        self.socket_path = os.path.join(self._folder, "jobs.sock")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE")}
        env["TMPDIR"] = self._folder
        self._process = subprocess.Popen(
            [str(python), "-I", str(SERVER_SCRIPT), self.socket_path, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self._folder,
            start_new_session=True,
        )
        ready = self._read_ready()
        self.namespaces = bool(ready.get("namespaces"))
        self.python_version = str(ready.get("python", ""))

    def _read_ready(self) -> dict[str, object]:
        assert self._process.stdout is not None
        result: dict[str, object] = {}

        def read() -> None:
            assert self._process.stdout is not None
            line = self._process.stdout.readline()
            if line:
                result.update(json.loads(line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(SERVER_START_TIMEOUT)
        if not result.get("ready"):
            self._process.kill()
            _, errors = self._process.communicate(timeout=10)
            tail = " | ".join(errors.decode(errors="replace").strip().splitlines()[-3:])
            raise ImageServerError(f"the image environment's job starter did not start: {tail or 'no output'}")
        return result

    def alive(self) -> bool:
        return self._process.poll() is None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, opt_ml: Path | None) -> _Served:
        request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log_path), "opt_ml": opt_ml and str(opt_ml)}
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        buffer = bytearray()
        try:
            connection.connect(self.socket_path)
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(_read_line(connection, buffer, SERVER_START_TIMEOUT) or b"{}")
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            connection.close()
            raise ImageServerError(f"the image environment's job starter did not answer: {exc}") from exc
        if "pid" not in answer:
            connection.close()
            raise ImageServerError("the image environment's job starter refused the job")
        return _Served(int(answer["pid"]), connection, buffer)

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # the server kills its jobs and exits
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self._folder, ignore_errors=True)


def _read_line(connection: socket.socket, buffer: bytearray, timeout: float | None) -> bytes:
    """One line from the server (b"" if it closed the connection); TimeoutExpired if none came in ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while b"\n" not in buffer:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([connection], [], [], remaining)
        if not readable:
            raise subprocess.TimeoutExpired("job", timeout or 0)
        data = connection.recv(4096)
        if not data:
            return b""
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


class _Served:
    """A job forked by an image server: its exit code comes over the connection; signals go to its session."""

    def __init__(self, pid: int, connection: socket.socket, buffer: bytearray) -> None:
        self.pid = pid
        self._connection = connection
        self._buffer = buffer
        self._code: int | None = None
        self._lock = threading.Lock()

    def _collect(self, timeout: float | None) -> int:
        line = _read_line(self._connection, self._buffer, timeout)
        try:  # no answer at all: the server died with the job (as if killed)
            self._code = int(json.loads(line)["exit"]) if line else -int(signal.SIGKILL)
        except (ValueError, KeyError, TypeError):
            self._code = 1
        self._connection.close()
        return self._code

    def wait(self, timeout: float | None) -> int:
        with self._lock:
            return self._code if self._code is not None else self._collect(timeout)

    def running(self) -> bool:
        if self._code is not None:
            return False
        if not self._lock.acquire(blocking=False):  # a waiter holds it: the job has not ended yet
            return self._code is None
        try:
            self._collect(0.0)
        except subprocess.TimeoutExpired:
            return True
        finally:
            self._lock.release()
        return False

    def _signal(self, number: int) -> None:
        if self._code is None:
            # The job's whole session: what it started goes with it, as a container's processes do.
            with contextlib.suppress(OSError):
                os.killpg(self.pid, number)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)


_servers: dict[Path, ImageServer] = {}
_servers_lock = threading.Lock()
_image_preloads: dict[str, list[str]] = {}  # image environments' Pythons (as a command names them): preloads


def image_server(python: Path, preload: list[str]) -> ImageServer:
    """The running fork server of the environment whose Python is ``python`` (started on first use); from then on
    ``start([python, script.py, ...], ...)`` runs that script in it."""
    with _servers_lock:
        _image_preloads[str(python)] = list(preload)
        server = _servers.get(python)
        if server is None or not server.alive():
            server = _servers[python] = ImageServer(python, preload)
        return server


def runs_in_image(command: list[str]) -> bool:
    """``python script.py ...`` is what an image's fork server runs; other forms (``-m``, ``-c``) run cold."""
    return len(command) >= 2 and not command[1].startswith("-")


def start_in_image(
    python: Path, preload: list[str], argv: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> JobProcess:
    """Run ``python argv...`` in an image environment, forked warm. Where the server found mount namespaces
    usable, the job sees ``cwd/opt/ml`` (its sandbox's, when there is one) as /opt/ml and its paths pass unchanged."""
    server = image_server(python, preload)
    opt_ml = cwd / "opt/ml"
    return server.start(argv, env, cwd, log_path, opt_ml if server.namespaces and opt_ml.is_dir() else None)


def stop_image_servers() -> None:
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()
