"""Benchmark: the image environments (their build time and size) and what a job's start costs in them.

  build      seconds to build each image's environment: cold (an empty environments folder; pip's own cache
             decides whether wheels are downloaded) and cached (already built: a marker check)
  size       each environment's size on disk
  server     seconds for an environment's fork server to start (its preloads imported, namespaces probed)
  job start  median seconds from asking for a job to its exit, for a script that imports numpy and pandas:
             old   forked from the service interpreter's warm forkserver (decision 0011: before image environments)
             warm  forked from the image environment's fork server (now)
             cold  a fresh `<env>/bin/python -I script.py` process (what it would cost without a fork server)

Usage: python bench/image_environments.py [--cold] [--jobs N]
  --cold builds into a temporary folder (minutes, downloads if pip's cache is empty); without it the environments
  in MLOPS_IMAGE_ENVS (or the user's cache) are used, built there first if missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers/shared")]

from sfn_mlops_local.local import image_environments, job_process  # noqa: E402

IMAGES = {
    "sklearn": "sagemaker-scikit-learn:1.2-1-cpu-py3",
    "xgboost": "sagemaker-xgboost:1.7-1",
}
JOB_SCRIPT = "import numpy, pandas\nprint(numpy.__version__, pandas.__version__)\n"


def size_mb(folder: Path) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def job_seconds(command: list[str], work: Path, count: int) -> float:
    """Median seconds from start() to exit for ``count`` jobs running ``command``."""
    samples = []
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "PYTHONUNBUFFERED": "1"}
    for i in range(count):
        started = time.perf_counter()
        process = job_process.start(command, env, work, work / f"job-{i}.log")
        code = process.wait(120)
        samples.append(time.perf_counter() - started)
        if code != 0:
            raise SystemExit(f"job failed: {(work / f'job-{i}.log').read_text()}")
    return statistics.median(samples)


def cold_seconds(python: Path, script: Path, count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([str(python), "-I", str(script)], check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="build the environments into an empty temporary folder")
    parser.add_argument("--jobs", type=int, default=10, help="jobs per measurement (median)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="image-envs-bench-")) if args.cold else image_environments.environments_root()
    work = Path(tempfile.mkdtemp(prefix="image-envs-jobs-"))
    script = work / "job.py"
    script.write_text(JOB_SCRIPT)
    try:
        print(f"environments in {root}")
        for name, uri in IMAGES.items():
            spec = image_environments.spec_for(uri)
            started = time.perf_counter()
            python = image_environments.ensure(spec, root)
            first = time.perf_counter() - started
            started = time.perf_counter()
            image_environments.ensure(spec, root)
            cached = time.perf_counter() - started
            folder = python.parent.parent
            what = "cold" if args.cold else "first call"
            print(f"{name:8} build {what} {first:7.1f} s   cached {cached * 1000:6.2f} ms")
            print(f"{'':8} size {size_mb(folder):8.0f} MB   {spec.header()}")
            started = time.perf_counter()
            server = job_process.image_server(python, list(spec.preload))
            print(f"{'':8} fork server start {time.perf_counter() - started:5.2f} s   namespaces {server.namespaces}")
            warm = job_seconds([str(python), str(script)], work, args.jobs)
            cold = cold_seconds(python, script, max(3, args.jobs // 3))
            print(
                f"{'':8} job start+run (import numpy, pandas): warm {warm * 1000:6.0f} ms   cold {cold * 1000:6.0f} ms"
            )
        old = job_seconds([sys.executable, str(script)], work, 1)  # the first one starts the forkserver
        old = job_seconds([sys.executable, str(script)], work, args.jobs)
        print(f"old (service interpreter's forkserver, decision 0011): {old * 1000:6.0f} ms")
    finally:
        job_process.stop_image_servers()
        shutil.rmtree(work, ignore_errors=True)
        if args.cold:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
