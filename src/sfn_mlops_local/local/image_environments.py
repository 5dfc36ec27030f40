"""Each SageMaker image the pipelines use, as a Python environment built from that image's own package list.

A job's script runs in the environment of its image, never with the service's interpreter: it can import what
the image ships (at the image's versions where a wheel of them installs on this Python) and nothing else, so a
script that imports what its image lacks fails here with the ``ModuleNotFoundError`` it would meet on AWS, and
nothing of the project is on its path. The lists live in ``images/<repository>-<version>.txt``; every difference
from the image (its Python, a package version with no wheel here) is written there, printed at the top of each
job's log (``header``) and explained in docs/decisions/0023-image-environments.md.

An environment is built once (``python -m venv`` and a pip install of exactly the pinned wheels) into
``$MLOPS_IMAGE_ENVS`` (default: ``image-envs`` inside the virtual environment ``mlops`` runs from, so that
``make clean`` removes them with it; outside one, the user's cache folder), in a folder named after the
image and a hash of its list, under a file lock so that concurrent test workers build it once; it is built in a
temporary folder and renamed into place when complete, so a half-built environment is never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

IMAGES_DIR = Path(__file__).resolve().parent / "images"
ENVS_VARIABLE = "MLOPS_IMAGE_ENVS"
COMPLETE_MARKER = "sfn-mlops-image-environment.txt"
BUILD_TIMEOUT_SECONDS = 1800


class ImageEnvironmentError(RuntimeError):
    """An image the local runtime has no environment for, or one it could not build (the reason is readable)."""


@dataclass(frozen=True)
class Package:
    name: str
    image_version: str  # "-" when the image's files do not pin it (a dependency)
    local_version: str

    @property
    def substituted(self) -> bool:
        return self.image_version not in ("-", self.local_version)


@dataclass(frozen=True)
class ImageSpec:
    repository: str
    version: str
    image_python: str
    local_python: str
    packages: tuple[Package, ...]
    preload: tuple[str, ...]
    digest: str
    # Packages PyPI has as a source distribution only (PySpark): pip builds their wheel (once: pip caches it).
    source_only: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.repository}:{self.version}"

    @property
    def folder_name(self) -> str:
        return f"{self.repository}-{self.version}-{self.digest[:12]}"

    def header(self) -> str:
        """The line at the top of every job's log: which environment, and each way it differs from the image."""
        parts = [f"Python {self.local_python} (image: {self.image_python})"] if self.substituted_python else []
        parts += [f"{p.name} {p.local_version} (image: {p.image_version})" for p in self.packages if p.substituted]
        differences = "; ".join(parts) if parts else "same versions as the image"
        return f"local image environment {self.label}: {differences}"

    @property
    def substituted_python(self) -> bool:
        return self.image_python != self.local_python


def this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def image_key(image_uri: str) -> tuple[str, str]:
    """(repository, container version) of an image URI; the tag's ``-cpu-py3`` style suffix is dropped:
    ``1.2-1-cpu-py3`` is version 1.2-1, ``3.5-cpu-py312-v1`` (the Spark processing images) version 3.5."""
    last = image_uri.rsplit("/", 1)[-1]
    repository, _, tag = last.partition(":")
    parts = tag.split("-")
    if len(parts) >= 2 and parts[1].isdigit():
        return repository, "-".join(parts[:2])
    if len(parts) >= 2 and parts[1] in ("cpu", "gpu"):
        return repository, parts[0]
    return repository, tag


def list_key(stem: str) -> tuple[str, str]:
    """(repository, version) of a package list's file name: the version starts at the first part that is a number
    (``sagemaker-spark-processing-3.5``, ``sagemaker-scikit-learn-1.2-1``)."""
    parts = stem.split("-")
    first = next((i for i, part in enumerate(parts) if part[:1].isdigit()), len(parts))
    return "-".join(parts[:first]), "-".join(parts[first:])


def parse_spec(repository: str, version: str, text: str) -> ImageSpec:
    packages: list[Package] = []
    image_python = local_python = ""
    preload: tuple[str, ...] = ()
    source_only: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "preload":
            preload = tuple(words[1:])
            continue
        if words[0] == "source":
            source_only = tuple(words[1:])
            continue
        if len(words) not in (2, 3):
            raise ImageEnvironmentError(f"package list of {repository}:{version}, line {number}: {raw!r}")
        name, image_version = words[0], words[1]
        local_version = words[2] if len(words) == 3 else image_version
        if name == "python":
            image_python, local_python = image_version, local_version
        else:
            packages.append(Package(name, image_version, local_version))
    if not image_python or not packages:
        raise ImageEnvironmentError(f"package list of {repository}:{version} names no python or no package")
    digest = hashlib.sha256(f"{text}\n{sys.version}".encode()).hexdigest()
    unknown = [name for name in source_only if name not in {p.name for p in packages}]
    if unknown:
        raise ImageEnvironmentError(f"package list of {repository}:{version}: 'source' names unlisted {unknown}")
    return ImageSpec(repository, version, image_python, local_python, tuple(packages), preload, digest, source_only)


def spec_for(image_uri: str) -> ImageSpec:
    """The environment spec of an image URI; ImageEnvironmentError naming the known images if there is none."""
    repository, version = image_key(image_uri)
    path = IMAGES_DIR / f"{repository}-{version}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in IMAGES_DIR.glob("*.txt"))
        raise ImageEnvironmentError(
            f"image {repository}:{version} is not available in the local runtime (known images: {', '.join(known)})"
        )
    spec = parse_spec(repository, version, path.read_text())
    if spec.local_python != this_python():
        raise ImageEnvironmentError(
            f"the package list of {spec.label} is for Python {spec.local_python}, this runtime has {this_python()}"
        )
    return spec


def environments_root() -> Path:
    configured = os.environ.get(ENVS_VARIABLE)
    if configured:
        return Path(configured)
    if sys.prefix != sys.base_prefix:  # a virtual environment: the project's own
        return Path(sys.prefix) / "image-envs"
    # The account's home, not $HOME: a job's or a test's HOME override must not send the runtime to build anew.
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache")
    return Path(cache) / "sfn-mlops" / "image-envs"


def python_of(folder: Path) -> Path:
    return folder / "bin" / "python"


def is_built(spec: ImageSpec, root: Path | None = None) -> bool:
    return ((root or environments_root()) / spec.folder_name / COMPLETE_MARKER).is_file()


def ensure(spec: ImageSpec, root: Path | None = None) -> Path:
    """The Python of ``spec``'s environment, building it first if it does not exist yet (once, under a lock)."""
    root = root or environments_root()
    folder = root / spec.folder_name
    if (folder / COMPLETE_MARKER).is_file():
        return python_of(folder)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{spec.folder_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it: wait for it, then use its work
        if not (folder / COMPLETE_MARKER).is_file():
            _build(spec, folder)
    return python_of(folder)


def _build(spec: ImageSpec, folder: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.folder_name}.building-", dir=folder.parent))
    try:
        _run([sys.executable, "-m", "venv", "--without-pip", str(staging)], f"create the environment of {spec.label}")
        pins = [f"{p.name}=={p.local_version}" for p in spec.packages]
        # Wheels only, but for the packages the list names as source-only (a named package overrides :all:).
        sources = [f"--no-binary={name}" for name in spec.source_only]
        _run(
            [sys.executable, "-m", "pip", "--python", str(python_of(staging)), "install", "--quiet", "--no-deps",
             "--only-binary=:all:", *sources, "--disable-pip-version-check", "--no-input", *pins],
            f"install the packages of {spec.label}",
        )  # fmt: skip
        modules = ";".join(f"import {m}" for m in spec.preload)
        _run([str(python_of(staging)), "-I", "-c", modules], f"import the packages of {spec.label}")
        (staging / COMPLETE_MARKER).write_text(spec.header() + "\n" + "\n".join(pins) + "\n")
        if folder.exists():  # a complete one has the marker; anything else there is a leftover
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(command: list[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise ImageEnvironmentError(f"could not {what}: it took longer than {BUILD_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        detail = " | ".join(line for line in lines if not line.startswith("WARNING: Location"))[-600:]
        raise ImageEnvironmentError(f"could not {what}: {detail or f'exit code {done.returncode}'}")


def build_all() -> None:
    """Build every image's environment (``make test`` runs this once, before the tests, so none builds mid-run)."""
    import time

    for path in sorted(IMAGES_DIR.glob("*.txt")):
        repository, version = list_key(path.stem)
        spec = spec_for(f"{repository}:{version}")
        started = time.perf_counter()
        python = ensure(spec)
        print(f"{spec.label}: {python} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    build_all()
