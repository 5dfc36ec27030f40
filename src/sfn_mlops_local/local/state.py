"""The local state folder's files: the saved backends (format-stamped, signed) and the running service's address.

The state file is a pickle, and unpickling runs code: so it is only ever unpickled after its signature checks
out (HMAC-SHA256 with a key kept in the user's own config folder, never in the project), and only from a folder
the service marked as its state folder when it first took it. A project folder someone else prepared (a cloned
repository with a ``.mlops-local/state.pkl``) is refused with one line; nothing of it is loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FILE = "state.pkl"
SERVICE_FILE = "service.json"
# Bump when what is saved changes shape; a file with another stamp is refused, never half-read.
STATE_FORMAT = "sfn-mlops-local-state"
STATE_VERSION = 4  # 3: endpoints (models, configs, endpoints) and CloudWatch; 4: a signed header before the pickle
MAGIC = b"sfn-mlops-local-state\n"
# Written when the service first takes a folder: a folder without it that holds anything else is not ours.
MARKER_FILE = "sfn-mlops-state-folder.json"
# What a client leaves in a state folder before the service first takes it (its log, the lock, the address).
FRESH_FOLDER_ENTRIES = {"logs", "service.lock", "service.json", MARKER_FILE}
KEY_BYTES = 32


class StateFormatError(RuntimeError):
    """The state folder holds a file this version cannot read, or one it did not write."""


def signing_key_path() -> Path:
    """Where the key that signs local state files lives: the user's config folder, outside every project."""
    explicit = os.environ.get("MLOPS_LOCAL_STATE_KEY")
    if explicit:
        return Path(explicit)
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "sfn-mlops" / "local-state.key"


def signing_key() -> bytes:
    """This user's state-signing key, created (readable by the user only) the first time it is needed."""
    path = signing_key_path()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
        try:
            os.link(tmp, path)  # never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise StateFormatError(f"the local state signing key {path} is damaged (too short): remove it")
    return key


def _signature(payload: bytes) -> str:
    return hmac.new(signing_key(), payload, hashlib.sha256).hexdigest()


def claim_state_folder(state_dir: Path) -> None:
    """Make ``state_dir`` the service's state folder, or refuse it: a folder this service marked before, a new
    one, or one holding only what a starting client leaves is taken (and marked); any other is refused."""
    marker = state_dir / MARKER_FILE
    if marker.is_file() and not marker.is_symlink():
        return
    if state_dir.exists():
        if not state_dir.is_dir():
            raise StateFormatError(f"{state_dir} is not a folder: set MLOPS_LOCAL_STATE to a folder for local state")
        foreign = sorted(p.name for p in state_dir.iterdir() if p.name not in FRESH_FOLDER_ENTRIES)
        if foreign:
            raise StateFormatError(
                f"{state_dir} is not a local state folder made by sfn-mlops (no {MARKER_FILE}; it holds "
                f"{', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); nothing in it is loaded: "
                "point MLOPS_LOCAL_STATE at a new folder, or remove this one yourself if it is an old local state "
                "(`mlops local reset` removes the project's own .mlops-local)"
            )
    state_dir.mkdir(parents=True, exist_ok=True)
    stamp = {"format": STATE_FORMAT, "created": datetime.now(UTC).isoformat()}
    write_atomically(marker, json.dumps(stamp).encode())


def is_state_folder(state_dir: Path) -> bool:
    """True if ``state_dir`` is absent or a folder the service marked (safe to remove as local state)."""
    if not state_dir.exists():
        return True
    marker = state_dir / MARKER_FILE
    return marker.is_file() and not marker.is_symlink()


def write_atomically(path: Path, payload: bytes) -> None:
    """Write, flush to disk, then rename over the old file: a crash leaves the old file or the new, never half."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as out:
        out.write(payload)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def dump_state(path: Path, moto_version: str, backends: dict[str, bytes], extra: dict[str, Any]) -> None:
    """The stamp and the payload's signature on one JSON line (read without unpickling), then the pickle."""
    stamp = {"format": STATE_FORMAT, "version": STATE_VERSION, "moto": moto_version}
    payload = pickle.dumps({**stamp, "backends": backends, **extra})
    header = json.dumps({**stamp, "hmac": _signature(payload)}).encode()
    write_atomically(path, MAGIC + header + b"\n" + payload)


def load_state(path: Path, moto_version: str) -> dict[str, Any] | None:
    """The saved state, or None if there is none; refuses a file of another format or moto version."""
    if not path.exists():
        return None
    hint = "remove it with `mlops local reset` (this forgets all local runs), or use the version that wrote it"
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise StateFormatError(f"cannot read the local state {path} ({exc.strerror}): {hint}") from exc
    if not content.startswith(MAGIC):
        raise StateFormatError(f"{path} is not a local state file of this version of sfn-mlops: {hint}")
    header_line, _, payload = content[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(header_line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        raise StateFormatError(f"cannot read the local state {path} (its header is damaged): {hint}")
    if header.get("version") != STATE_VERSION or header.get("moto") != moto_version:
        raise StateFormatError(
            f"{path} was written in state format {header.get('version')} with moto {header.get('moto')}; "
            f"this version reads format {STATE_VERSION} with moto {moto_version}: {hint}"
        )
    # Only a file this user's service signed is unpickled: anyone else's could run code when loaded.
    if not hmac.compare_digest(str(header.get("hmac", "")), _signature(payload)):
        raise StateFormatError(
            f"{path} was not written by your local service (its signature does not match), so it is not loaded: {hint}"
        )
    try:
        saved = pickle.loads(payload)
    except Exception as exc:
        raise StateFormatError(f"cannot read the local state {path} ({type(exc).__name__}): {hint}") from exc
    if not isinstance(saved, dict):
        raise StateFormatError(f"{path} is not a local state file of this version of sfn-mlops: {hint}")
    return saved


@dataclass
class ServiceInfo:
    """What a client needs to reach the running service; written by the service, removed when it stops."""

    endpoint: str
    pid: int
    state_dir: str
    resources: dict[str, str] = field(default_factory=dict)
    save_error: str | None = None  # what the service last said about saving (from its status, not the file)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "save_error"}

    def write(self, state_dir: Path) -> None:
        write_atomically(state_dir / SERVICE_FILE, json.dumps(self.as_dict(), indent=2).encode())

    @staticmethod
    def read(state_dir: Path) -> ServiceInfo | None:
        try:
            data = json.loads((state_dir / SERVICE_FILE).read_text())
            return ServiceInfo(**data)
        except (OSError, ValueError, TypeError):
            return None

    @staticmethod
    def remove(state_dir: Path) -> None:
        (state_dir / SERVICE_FILE).unlink(missing_ok=True)
