"""A warm job starter run by an image environment's own Python: standard library only, nothing of the project.

``<image env>/bin/python -I image_fork_server.py SOCKET MODULE...`` imports the image's heavy modules once, then
serves a Unix socket: each connection asks for one job (a JSON line: argv, env, cwd, log, opt_ml) and the server
forks a child that becomes that job, ``python script.py args`` as the image would run it, in its own session
with its own environment, working folder and log file. The server answers ``{"pid": n}`` and, when the child
ends, ``{"exit": code}`` (the negative signal number if killed), then closes the connection. When the service
that started it goes away (its stdin closes) the server kills its jobs and exits.

With ``opt_ml``, the child first enters a mount namespace of its own (a user namespace, so no privilege is
needed) where a tmpfs covers ``/opt`` and the job's sandbox folder is bound on ``/opt/ml``: the script's
hard-coded container paths (``/opt/ml/output/message``, ``/opt/ml/processing/...``) work unchanged.
See docs/decisions/0023-image-environments.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def _libc_call(name: str, *args: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def enter_container_paths(opt_ml: str) -> None:
    """Make ``/opt/ml`` this process's view of ``opt_ml`` (raises OSError where namespaces are not allowed)."""
    uid, gid = os.getuid(), os.getgid()
    _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNS)
    # The same ids inside as outside: files the job writes belong to the user, as before.
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"{gid} {gid} 1")
    _libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    _libc_call("mount", b"tmpfs", b"/opt", b"tmpfs", 0, b"mode=0755")
    os.mkdir("/opt/ml")
    _libc_call("mount", opt_ml.encode(), b"/opt/ml", None, MS_BIND | MS_REC, None)


def _probe_namespaces() -> bool:
    """Whether a job can get its own /opt/ml here (tried once, in a throwaway child)."""
    probe_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"sfn-opt-ml-probe-{os.getpid()}")
    os.makedirs(probe_dir, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        try:
            enter_container_paths(probe_dir)
            os._exit(0 if os.path.isdir("/opt/ml") else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    os.rmdir(probe_dir)
    return os.waitstatus_to_exitcode(status) == 0


def _script_traceback(exc: BaseException) -> None:
    """The traceback ``python script.py`` prints: the script's frames, not this server's or runpy's."""
    machinery = {os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>"}
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in machinery:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _become_job(request: dict[str, object]) -> int:
    """In the forked child (already the leader of its own session): the job's log, environment, folder and view of
    /opt/ml; then its script."""
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115  # PYTHONUNBUFFERED's line buffering
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    opt_ml = request.get("opt_ml")
    if opt_ml:
        enter_container_paths(str(opt_ml))
    os.chdir(str(request["cwd"]))
    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    script = os.path.abspath(argv[0])
    extra = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    sys.argv = argv
    sys.path[:0] = [os.path.dirname(script), *extra]  # what `python script.py` puts first
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException as exc:
        _script_traceback(exc)
        return 1
    return 0


def _child(request: dict[str, object], in_session: int) -> None:
    """The forked child: leads a session of its own, says so by closing ``in_session``, then becomes the job; it
    never returns into the server's loop, whatever fails."""
    code = 1
    try:
        os.setsid()
        os.close(in_session)  # the server answers with this process's pid once every write end is closed
        code = _become_job(request)
    except BaseException:  # the job could not be set up: say why in its log
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def serve(path: str, preload: list[str]) -> None:
    for module in preload:
        importlib.import_module(module)
    namespaces = _probe_namespaces()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    jobs: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
    print(json.dumps({"ready": True, "namespaces": namespaces, "python": sys.version.split()[0]}), flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "parent":  # the service is gone: so are its jobs
                for pid in jobs:
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                return
            if key.data == "child":
                os.read(wake_read, 512)
                _reap(jobs)
                continue
            connection, _ = listener.accept()
            with connection.makefile("rb") as reader:
                line = reader.readline()
            try:
                request = json.loads(line)
            except ValueError:
                connection.close()
                continue
            # The pid is answered only once the child leads its own session: a stop that comes right after the
            # start signals that session (os.killpg), which before the child's setsid did not exist yet.
            in_session_read, in_session_write = os.pipe()
            try:
                pid = os.fork()
            except OSError:  # no process to be had: the service reads the closed connection as a refusal
                for end in (in_session_read, in_session_write):
                    os.close(end)
                connection.close()
                continue
            if pid == 0:
                try:  # the child must never go on into the server's loop
                    os.close(in_session_read)
                    for fd in (listener, connection):
                        fd.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                except BaseException:
                    os._exit(1)
                _child(request, in_session_write)
            os.close(in_session_write)
            os.read(in_session_read, 1)  # b"" when the child has closed its end (or died)
            os.close(in_session_read)
            jobs[pid] = connection
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap(jobs: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = jobs.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            connection.close()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
