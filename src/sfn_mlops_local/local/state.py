"""The local state folder's files: the saved backends (format-stamped) and the running service's address."""

from __future__ import annotations

import json
import os
import pickle
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.pkl"
SERVICE_FILE = "service.json"
# Bump when what is saved changes shape; a file with another stamp is refused, never half-read.
STATE_FORMAT = "sfn-mlops-local-state"
STATE_VERSION = 3  # 3: endpoints (models, configs, endpoints) and CloudWatch


class StateFormatError(RuntimeError):
    """The state folder holds a file this version cannot read."""


def write_atomically(path: Path, payload: bytes) -> None:
    """Write, flush to disk, then rename over the old file: a crash leaves the old file or the new, never half."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as out:
        out.write(payload)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def dump_state(path: Path, moto_version: str, backends: dict[str, bytes], extra: dict[str, Any]) -> None:
    stamp = {"format": STATE_FORMAT, "version": STATE_VERSION, "moto": moto_version}
    write_atomically(path, pickle.dumps({**stamp, "backends": backends, **extra}))


def load_state(path: Path, moto_version: str) -> dict[str, Any] | None:
    """The saved state, or None if there is none; refuses a file of another format or moto version."""
    if not path.exists():
        return None
    hint = "remove it with `mlops local reset` (this forgets all local runs), or use the version that wrote it"
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception as exc:
        raise StateFormatError(f"cannot read the local state {path} ({type(exc).__name__}): {hint}") from exc
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise StateFormatError(f"{path} is not a local state file of this version of sfn-mlops: {hint}")
    if saved.get("version") != STATE_VERSION or saved.get("moto") != moto_version:
        raise StateFormatError(
            f"{path} was written in state format {saved.get('version')} with moto {saved.get('moto')}; "
            f"this version reads format {STATE_VERSION} with moto {moto_version}: {hint}"
        )
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
