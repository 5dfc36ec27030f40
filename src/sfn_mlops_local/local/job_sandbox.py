"""A local job's sandbox: the folder standing in for its container, which nothing the job is given can leave.

A container's paths (``/opt/ml/...``), the S3 keys downloaded into its channels and the files it leaves behind
are all mapped to files under the sandbox. A path that would resolve outside it (``..``, an absolute key, a
symlink the job planted) is refused with a readable ``ClientError`` instead of being written or read, and the
job's process gets an environment with a HOME inside the sandbox and none of the user's AWS settings.
See docs/decisions/0021-local-job-sandbox.md.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

CONTAINER_ROOT = "/opt/ml"
PROCESSING_ROOT = "/opt/ml/processing"
# What a local job inherits from the service's environment; everything else (HOME, AWS_*, tokens) stays out.
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT")
# The most of a failing job's log that its FailureReason quotes (SageMaker's FailureReason is 1,024 characters).
TAIL_LINES = 10
TAIL_BYTES = 1024


class SandboxEscape(ValueError):
    """A path or key given to a job would resolve outside its sandbox."""


def _inside(root: Path, candidate: Path) -> bool:
    return candidate == root or root in candidate.parents


def contained(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, refused if ``relative`` is absolute, climbs with ``..`` or reaches through a symlink
    out of ``root`` (the parts that exist are resolved; the rest cannot be links)."""
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith("/") or ".." in parts or "\0" in relative:
        raise SandboxEscape(f"{what} {relative!r} would leave its folder (absolute, or with '..')")
    base = root.resolve()
    target = root / posixpath.normpath(relative) if relative.strip("/") else root
    if not _inside(base, target.resolve()):
        raise SandboxEscape(f"{what} {relative!r} resolves outside its folder (through a symbolic link)")
    return target


def container_path(sandbox: Path, path: str, root: str = CONTAINER_ROOT) -> Path:
    """The sandbox file standing for container path ``path``, which must lie under ``root`` (as SageMaker
    requires of a LocalPath) once normalised; anything else is refused naming the rule."""
    normalised = posixpath.normpath(path) if path else ""
    if not path.startswith("/") or ".." in path.split("/") or not (normalised + "/").startswith(root + "/"):
        raise SandboxEscape(f"path {path!r} is not valid: it must be an absolute path under {root}/ without '..'")
    try:
        return contained(sandbox, normalised.lstrip("/"), "path")
    except SandboxEscape:
        raise SandboxEscape(f"path {path!r} resolves outside the job's {root} (through a symbolic link)") from None


def read_own_file(path: Path, limit: int = 64 * 1024) -> str | None:
    """A file the job leaves for the runner (its exit message, its failure file), never followed through a
    symlink to a file elsewhere (which would then be published as the job's message); None if absent."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError:  # a symlink (ELOOP), a folder: not a message the job wrote
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit).decode(errors="replace")


def regular_files(folder: Path) -> Iterator[Path]:
    """Every regular file under ``folder``, in a stable order, without following a symbolic link (a job's
    output that links to a file outside its sandbox is not uploaded)."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            if not path.is_symlink() and path.is_file():
                yield path


def job_environment(sandbox: Path, src_root: str | None = None) -> dict[str, str]:
    """The environment a container's process starts with: a HOME (and temp folder) of its own inside the
    sandbox, no AWS credentials or config of the user's; the runtime's source on PYTHONPATH only when given
    (endpoint containers served by the runtime's own code): a job's script runs in its image's environment,
    with nothing of the project on its path (docs/decisions/0023-image-environments.md)."""
    home = sandbox / "home"
    tmp = sandbox / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    env.update({"HOME": str(home), "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
    if src_root:
        env["PYTHONPATH"] = src_root
    return env


def log_tail(log_path: Path, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str:
    """The last ``lines`` lines of a job's log (at most ``limit`` characters, cut at the front so the last line,
    a traceback's exception line, survives), or '' when it wrote nothing."""
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 8 * limit))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    tail = "\n".join(kept)
    return tail if len(tail) <= limit else "..." + tail[-(limit - 3) :]


def failure_reason(prefix: str, tail: str, log_path: Path, limit: int = 1024) -> str:
    """``<prefix>: <tail of the log>; log file: <path>`` within SageMaker's 1,024 characters: the log's location
    is always kept whole, the tail is shortened at its front."""
    where = f"; log file: {log_path}"
    room = limit - len(prefix) - 2 - len(where)
    if not tail:
        tail = "the job wrote nothing to its log"
    if len(tail) > room:
        tail = "..." + tail[-max(0, room - 3) :]
    return f"{prefix}: {tail}{where}"


def with_log_location(reason: str, log_path: Path, limit: int = 1024) -> str:
    """``<reason>; log file: <path>`` within ``limit``: the reason is shortened at its end, the location kept."""
    where = f"; log file: {log_path}"
    room = max(0, limit - len(where))
    if len(reason) > room:
        reason = reason[: max(0, room - 3)] + "..."
    return reason + where
