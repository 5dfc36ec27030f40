"""Job processes forked from a warm interpreter: the container's ``python script.py`` without the import wait.

A SageMaker job runs its script in a fresh container process. Locally that is a process too, but a fresh
Python pays 1-2 s importing numpy and xgboost before the script's first line, three times per run. The
standard library's forkserver keeps one interpreter with those modules imported and forks a child per
job: a separate process with the job's own argv, environment, working folder, session and log file, whose
exit code and failure files are the job's, exactly as before. Only the import time is gone (the modules
are the same versions a fresh process would import). See docs/decisions/0011-warm-job-processes.md.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
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
