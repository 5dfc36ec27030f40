"""boto3 sessions for the CLI whose botocore data files load from a marshal cache instead of JSON.

Every ``mlops`` command is a new process, and botocore parses its JSON data (endpoints, partitions, each
client's service model; SageMaker's alone is megabytes) on every client it creates: most of a read-only
command's time after the imports. The parsed data is the same until botocore changes, so it is kept per
botocore version, file and modification time in the user's cache folder, in ``marshal`` format (which, unlike
pickle, can only hold plain values: a cache file cannot run code). Anything wrong with the cache (unreadable,
not writable) falls back to botocore's own loading. The requests made are exactly boto3's.
"""

from __future__ import annotations

import hashlib
import marshal
import os
from pathlib import Path
from typing import Any

CACHE_VARIABLE = "MLOPS_BOTOCORE_CACHE"


def user_cache_root() -> Path:
    """The project's folder in the user's cache folder (XDG_CACHE_HOME, else ~/.cache): safe to delete."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sfn-mlops"


def write_whole(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees half a file, and a crash leaves no empty one (fsync before the
    rename). The folder is created readable by this user only. Failing to write only leaves the cache cold."""
    from sfn_mlops_local.local.state import write_atomically

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(path, data)
    except OSError:
        pass


def cache_dir() -> Path:
    import botocore

    configured = os.environ.get(CACHE_VARIABLE)
    return (Path(configured) if configured else user_cache_root() / "botocore-data") / botocore.__version__


class MarshalCachingFileLoader:
    """botocore's ``JSONFileLoader`` with a cache in front: same ``exists``/``load_file`` answers."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self._inner = inner
        self._folder = folder

    def exists(self, file_path: str) -> bool:
        return bool(self._inner.exists(file_path))

    def _cache_file(self, file_path: str) -> Path | None:
        for suffix in (".json", ".json.gz"):
            try:
                stat = os.stat(file_path + suffix)
            except OSError:
                continue
            key = f"{file_path}{suffix}|{stat.st_mtime_ns}|{stat.st_size}"
            return self._folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".marshal")
        return None

    def load_file(self, file_path: str) -> Any:
        cached = self._cache_file(file_path)
        if cached is None:  # no such data file (botocore looks in several folders)
            return None
        try:
            return marshal.loads(cached.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            pass
        data = self._inner.load_file(file_path)
        if data is not None:
            self._store(cached, data)
        return data

    def _store(self, cached: Path, data: Any) -> None:
        try:
            encoded = marshal.dumps(_plain(data))
        except ValueError:  # a value marshal cannot hold: left uncached
            return
        write_whole(cached, encoded)


def _plain(value: Any) -> Any:
    """botocore parses into OrderedDicts, which marshal cannot hold; a dict keeps the same order."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def session(**kwargs: Any) -> Any:
    """``boto3.session.Session(**kwargs)`` whose botocore data loads through the cache."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    loader = core.get_component("data_loader")
    loader.file_loader = MarshalCachingFileLoader(loader.file_loader, cache_dir())
    return boto3.session.Session(botocore_session=core, **kwargs)


_installed = False


def install_for_this_process() -> None:
    """Every botocore loader in this process reads its data files through the cache, and lists the services on
    its search path once: for the local runtime's process, where moto and the in-process functions create
    dozens of sessions (moto alone builds three at import to list EC2's regions), each loading the same files
    and listing botocore's data folder again. Idempotent; call it before moto is imported."""
    global _installed
    if _installed:
        return
    from botocore import loaders

    class _Uncached(loaders.JSONFileLoader):
        load_file = loaders.JSONFileLoader.load_file  # botocore's own, kept before the class is patched below

    cached = MarshalCachingFileLoader(_Uncached(), cache_dir())
    loaders.JSONFileLoader.load_file = lambda _self, file_path: cached.load_file(file_path)  # type: ignore[method-assign,assignment]
    listed: dict[tuple[tuple[str, ...], str], list[str]] = {}
    original_list = loaders.Loader.list_available_services

    def list_available_services(self: Any, type_name: str) -> list[str]:
        key = (tuple(self.search_paths), type_name)
        if key not in listed:
            listed[key] = original_list(self, type_name)
        return list(listed[key])  # the folders do not change while the process runs; callers get their own list

    loaders.Loader.list_available_services = list_available_services  # type: ignore[method-assign]
    _installed = True
