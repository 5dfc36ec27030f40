"""Benchmark: preprocess wall time and peak memory per engine at 1x, 100x and 1,000x a model's sample rows.

Engines (each run is its own process, in the Python that has the engine's packages):
  pandas  models/abalone/scripts/preprocess.py: despite the name, the standard library and numpy in one process
          (the sagemaker-scikit-learn image's preprocess); run with the project's Python (the one running this)
  spark   models/churn/scripts/preprocess.py: PySpark in local mode, the same argument interface; run with
          $MLOPS_SPARK_PYTHON, else the local runtime's built sagemaker-spark-processing environment; skipped
          with a message if neither is there

Datasets: shaped like a pipeline's sample file (models/<name>/data), rows drawn with replacement and numeric
non-integer columns jittered by ~1 % (clipped to the contract's range) so the rows are not one file repeated; the
arguments come from models/<name>/pipeline.json's data contract (label, --categorical domains, --features).
  abalone  4,177 rows, 9 columns; the label rings is written 0/1 (10 rings or more) so that the Spark script,
           a binary classification's (churn's), reads the same file
  churn    5,000 rows, 20 columns; the label is written 0/1 (not no/yes) so that both scripts read the same file:
           abalone's preprocess takes numeric labels only
The files are written to a temporary folder, never the repository, and removed at the end (--keep keeps them).

Measured per run: wall time; peak RSS of the whole process tree (every process of the run's session, so the
Spark JVM too, even once orphaned), sampled from /proc every 0.2 s; the run's ru_maxrss from wait4 as a
cross-check (the largest single process the run waited for: the JVM is not one of them); input MB and rows/s.
A run is killed at --timeout or when its tree passes --memory-cap-gb (so the machine, shared with other work,
never swaps or meets the OOM killer), and a scale whose time or memory the smaller scales' slope puts past those
limits is skipped. Each successful run's schema.json must account for every input row.

The closing verdict per engine and dataset: the largest scale that fitted, and from the slope of the two largest
measured scales the scale at which the run would pass this machine's memory or take more than an hour.

Usage: python bench/preprocess_engines.py [--scales 1,100,1000] [--engines pandas,spark]
           [--datasets abalone,churn] [--timeout 1800] [--memory-cap-gb 19] [--driver-memory 8g] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers/shared")]

SCRIPTS = {
    "pandas": ROOT / "models/abalone/scripts/preprocess.py",
    "spark": ROOT / "models/churn/scripts/preprocess.py",
}
SPARK_PYTHON_VARIABLE = "MLOPS_SPARK_PYTHON"
SPARK_REPOSITORY = "sagemaker-spark-processing"
LABEL_MAPS = {"churn": {"no": "0", "yes": "1"}}
# The Spark script (churn's) preprocesses a binary classification's data: abalone's rings become "10 or more"
# (0/1), so one abalone-shaped file suits both engines; the rows and feature columns stay abalone's.
LABEL_THRESHOLDS = {"abalone": 10}
JITTER = 0.01
CHUNK_ROWS = 200_000
SAMPLE_SECONDS = 0.2
HOUR = 3600.0
GB = 1024**3
MB = 1024**2
# What a Spark run holds besides the driver heap: the JVM's metaspace, threads and buffers, and the Python driver.
SPARK_OFF_HEAP = 2 * GB


@dataclass
class Dataset:
    name: str
    label: str
    source: Path
    features: list[dict[str, Any]]
    label_spec: dict[str, Any]

    @classmethod
    def load(cls, name: str) -> Dataset:
        pipeline = json.loads((ROOT / "models" / name / "pipeline.json").read_text())
        data = pipeline["data"]
        contract = data["contract"]
        return cls(
            name, data["label"], ROOT / "models" / name / data["sample_file"], contract["features"], contract["label"]
        )

    def arguments(self) -> list[str]:
        """abalone's preprocess arguments from the contract: the label, each categorical domain and the features."""
        categorical = [
            f"{f['name']}={','.join(map(str, f['domain']))}" for f in self.features if f["type"] == "categorical"
        ]
        args = ["--label", self.label, "--features", ",".join(str(f["name"]) for f in self.features)]
        for spec in categorical:
            args += ["--categorical", spec]
        return [*args, "--train-ratio", "0.7", "--validation-ratio", "0.15", "--seed", "42"]


@dataclass
class Run:
    dataset: str
    engine: str
    scale: int
    rows: int
    input_mb: float
    status: str = "skipped"
    seconds: float = 0.0
    peak_bytes: int = 0
    maxrss_bytes: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Engine:
    name: str
    python: str | None
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    # Bytes the engine's memory cannot grow past whatever the rows (Spark: the JVM heap, then it spills to disk or
    # fails with its own OutOfMemoryError), so a straight line through two runs overstates larger ones.
    ceiling: int | None = None


# --- the data ---


def read_columns(path: Path) -> tuple[list[str], list[np.ndarray]]:
    with path.open(newline="") as f:
        rows = [[cell.strip() for cell in r] for r in csv.reader(f) if r]
    header, body = rows[0], rows[1:]
    return header, [np.array([r[i] for r in body], dtype=object) for i in range(len(header))]


def generate(dataset: Dataset, scale: int, path: Path, seed: int) -> int:
    """Write ``scale`` times the sample's rows to ``path``, drawn with replacement, floats jittered; returns rows."""
    header, columns = read_columns(dataset.source)
    specs = {str(f["name"]): f for f in dataset.features}
    specs[dataset.label] = dataset.label_spec
    label_map = LABEL_MAPS.get(dataset.name, {})
    floats: dict[int, np.ndarray] = {}
    for i, name in enumerate(header):
        spec = specs[name]
        if name == dataset.label and label_map:
            columns[i] = np.array([label_map[v] for v in columns[i]], dtype=object)
        elif name == dataset.label and dataset.name in LABEL_THRESHOLDS:
            threshold = LABEL_THRESHOLDS[dataset.name]
            columns[i] = np.array(["1" if float(v) >= threshold else "0" for v in columns[i]], dtype=object)
        elif spec["type"] == "numeric" and not spec.get("integer"):
            floats[i] = columns[i].astype(float)
    source_rows = len(columns[0])
    total = source_rows * scale
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(header) + "\n")
        for start in range(0, total, CHUNK_ROWS):
            size = min(CHUNK_ROWS, total - start)
            # 1x is the sample itself: the baseline the larger files are compared with.
            index = np.arange(size) if scale == 1 else rng.integers(0, source_rows, size)
            cells: list[list[str]] = []
            for i, name in enumerate(header):
                if i in floats and scale != 1:
                    spec = specs[name]
                    low, high = float(spec.get("min", 0.0)), float(spec.get("max", np.inf))
                    values = np.clip(floats[i][index] * (1 + rng.normal(0.0, JITTER, size)), low, high)
                    cells.append([f"{v:.4f}" for v in values])
                else:
                    cells.append(columns[i][index].tolist())
            out.write("\n".join(map(",".join, zip(*cells, strict=True))) + "\n")
    return total


# --- the engines ---


def spark_python() -> tuple[str | None, str]:
    configured = os.environ.get(SPARK_PYTHON_VARIABLE)
    if configured:
        return configured, f"${SPARK_PYTHON_VARIABLE}"
    try:
        from sfn_mlops_local.local import image_environments
    except ImportError as exc:
        return None, f"no local runtime ({exc})"
    for path in sorted(image_environments.IMAGES_DIR.glob(f"{SPARK_REPOSITORY}-*.txt")):
        version = path.stem[len(SPARK_REPOSITORY) + 1 :]
        try:
            spec = image_environments.parse_spec(SPARK_REPOSITORY, version, path.read_text())
        except image_environments.ImageEnvironmentError as exc:
            return None, str(exc)
        if image_environments.is_built(spec):
            folder = image_environments.environments_root() / spec.folder_name
            return str(image_environments.python_of(folder)), f"image environment {spec.label}"
        return None, f"image environment {spec.label} is not built yet"
    return None, f"no {SPARK_REPOSITORY} image environment and no ${SPARK_PYTHON_VARIABLE}"


def heap_bytes(size: str) -> int:
    """Bytes of a JVM size such as 8g or 512m."""
    units = {"k": 1024, "m": MB, "g": GB, "t": 1024 * GB}
    unit = size[-1:].lower()
    return int(float(size[:-1]) * units[unit]) if unit in units else int(size)


def engines(names: list[str], driver_memory: str) -> dict[str, Engine]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    found: dict[str, Engine] = {}
    for name in names:
        if name == "pandas":
            found[name] = Engine(name, sys.executable, dict(base), "the project's Python")
        elif name == "spark":
            python, where = spark_python()
            env = dict(base)
            env.update(
                PYSPARK_SUBMIT_ARGS=f"--master local[2] --driver-memory {driver_memory} pyspark-shell",
                SPARK_LOCAL_IP="127.0.0.1",
                PYSPARK_PYTHON=python or "",
            )
            ceiling = heap_bytes(driver_memory) + SPARK_OFF_HEAP
            note = f"{where}; local[2], driver memory {driver_memory}, so at most ~{ceiling / GB:.0f} GB"
            found[name] = Engine(name, python, env, note, ceiling)
        else:
            raise SystemExit(f"unknown engine {name!r} (known: {', '.join(SCRIPTS)})")
    return found


# --- measuring one run ---


def session_rss(session: int) -> int:
    """Resident bytes of every process in ``session`` (the run's processes, a Spark JVM included)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            # Fields after the parenthesised command name: state ppid pgrp session ...
            if int(stat.rpartition(")")[2].split()[3]) != session:
                continue
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            continue  # the process ended while being read
    return total


def measure(
    command: list[str], env: dict[str, str], log: Path, timeout: float, cap_bytes: int
) -> tuple[str, float, int, int]:
    """Run ``command`` in its own session; (status, seconds, peak tree RSS, ru_maxrss). Status is ok, exit N,
    timeout, over memory cap, or killed (signal: the kernel's OOM killer if it was SIGKILL and not ours)."""
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    peak = 0
    killed = ""
    status_word = None
    usage = None
    while True:
        pid, wait_status, rusage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            seconds = time.perf_counter() - started
            status_word, usage = wait_status, rusage
            process.returncode = os.waitstatus_to_exitcode(wait_status)
            break
        peak = max(peak, session_rss(process.pid))
        elapsed = time.perf_counter() - started
        if not killed and elapsed > timeout:
            killed = "timeout"
        elif not killed and peak > cap_bytes:
            killed = "over memory cap"
        if killed:
            _kill_session(process.pid)
        time.sleep(SAMPLE_SECONDS)
    # A JVM outlives its python by a moment (or, orphaned, for good): measure and end it too.
    deadline = time.monotonic() + 10
    while (rss := session_rss(process.pid)) and time.monotonic() < deadline:
        peak = max(peak, rss)
        time.sleep(SAMPLE_SECONDS)
    _kill_session(process.pid)
    code = process.returncode
    maxrss = usage.ru_maxrss * 1024 if usage else 0
    if killed:
        return killed, seconds, peak, maxrss
    if code == 0:
        return "ok", seconds, peak, maxrss
    if code == 1:
        return "rejected (exit 1)", seconds, peak, maxrss
    if code < 0:
        name = signal.Signals(-code).name
        return (f"killed by {name} (OOM killer?)" if name == "SIGKILL" else f"killed by {name}"), seconds, peak, maxrss
    assert status_word is not None
    return f"exit {code}", seconds, peak, maxrss


def _kill_session(session: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signal.SIGKILL)  # the session leader's pid is also its process group's


def output_check(output: Path, rows: int) -> str:
    """Empty when the outputs account for every input row; else what is wrong."""
    try:
        schema = json.loads((output / "schema" / "schema.json").read_text())
    except (OSError, ValueError) as exc:
        return f"no schema.json ({exc})"
    counted = sum(schema["rows"].values())
    return "" if counted == rows else f"schema.json counts {counted} rows, the input has {rows}"


def last_line(log: Path, message: Path) -> str:
    if message.is_file() and message.read_text().strip():
        return message.read_text().strip()
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- extrapolation ---


def crossing(points: list[tuple[int, float]], limit: float) -> float | None:
    """Rows at which a straight line through the two largest points reaches ``limit`` (None: it never does, or
    there are fewer than two points: one point cannot tell a fixed cost from a per-row one)."""
    if len(points) < 2 or points[-1][0] == points[-2][0]:
        return None
    (r1, v1), (r2, v2) = points[-2], points[-1]
    slope = (v2 - v1) / (r2 - r1)
    if slope <= 0:
        return None
    return r2 + (limit - v2) / slope


def predicted(done: list[Run], rows: int, ceiling: int | None) -> tuple[float, float] | None:
    """Seconds and bytes the slope of the two largest successful runs gives for ``rows`` (bytes at most
    ``ceiling``)."""
    ok = [r for r in done if r.ok]
    if len(ok) < 2:
        return None
    (a, b) = ok[-2], ok[-1]
    if a.rows == b.rows:
        return None
    step = (rows - b.rows) / (b.rows - a.rows)
    memory = b.peak_bytes + step * (b.peak_bytes - a.peak_bytes)
    return b.seconds + step * (b.seconds - a.seconds), min(memory, ceiling) if ceiling else memory


def verdict(dataset: Dataset, engine: Engine, runs: list[Run], source_rows: int, memory_bytes: int) -> str:
    ok = [r for r in runs if r.ok]
    failed = [r for r in runs if not r.ok and r.status != "skipped"]
    head = f"{engine.name:<6} on {dataset.name}: "
    if not ok:
        reason = failed[0].detail or failed[0].status if failed else "not run"
        return head + f"no scale ran ({reason})"
    best = ok[-1]
    text = head + f"fits up to {best.scale}x ({best.rows:,} rows: {best.seconds:.0f} s, {best.peak_bytes / GB:.1f} GB)"
    if failed:
        text += f"; {failed[0].scale}x did not ({failed[0].status})"
    bounded = engine.ceiling is not None and engine.ceiling < memory_bytes
    memory_rows = None if bounded else crossing([(r.rows, float(r.peak_bytes)) for r in ok], float(memory_bytes))
    hour_rows = crossing([(r.rows, r.seconds) for r in ok], HOUR)
    limits = [(rows, what) for rows, what in ((memory_rows, "memory"), (hour_rows, "1 h")) if rows is not None]
    if bounded:
        text += f"; memory stays under ~{(engine.ceiling or 0) / GB:.0f} GB (driver heap + off-heap)"
    if not limits:
        return text + "; too few scales for a slope" if len(ok) < 2 else text
    rows, what = min(limits)
    shown = [f"{w} at ~{r / source_rows:,.0f}x" for r, w in sorted(limits)]
    return text + f"; by the slope it stops fitting at ~{rows / 1e6:,.1f} M rows ({what} first: {', '.join(shown)})"


# --- the table ---


def print_table(runs: list[Run]) -> None:
    print()
    print(
        f"{'dataset':<8} {'engine':<6} {'scale':>6} {'rows':>11} {'input MB':>9} {'status':<18} {'wall s':>8} "
        f"{'rows/s':>10} {'peak tree MB':>13} {'ru_maxrss MB':>13}"
    )
    for r in runs:
        measured = r.status != "skipped"
        wall = f"{r.seconds:8.1f}" if measured else f"{'-':>8}"
        rate = f"{r.rows / r.seconds:10,.0f}" if r.ok and r.seconds else f"{'-':>10}"
        peak = f"{r.peak_bytes / MB:13,.0f}" if measured else f"{'-':>13}"
        maxrss = f"{r.maxrss_bytes / MB:13,.0f}" if measured else f"{'-':>13}"
        print(
            f"{r.dataset:<8} {r.engine:<6} {r.scale:>5}x {r.rows:>11,} {r.input_mb:>9.1f} {r.status[:18]:<18} {wall} "
            f"{rate} {peak} {maxrss}"
        )
    notes = [r for r in runs if r.detail]
    if notes:
        print()
        for r in notes:
            print(f"  {r.dataset} {r.engine} {r.scale}x: {r.detail}")


def memory_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no MemTotal in /proc/meminfo")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,100,1000", help="comma-separated multiples of the sample's rows")
    parser.add_argument("--engines", default="pandas,spark", help="comma-separated: pandas, spark")
    parser.add_argument("--datasets", default="abalone,churn", help="comma-separated: abalone, churn")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a run is killed")
    parser.add_argument(
        "--memory-cap-gb", type=float, default=None, help="tree RSS that kills a run (default: 80%% of RAM)"
    )
    parser.add_argument("--driver-memory", default="8g", help="Spark driver memory (local mode: the only JVM)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the generated files (their folder is printed)")
    args = parser.parse_args()
    scales = sorted(int(s) for s in args.scales.split(","))
    memory = memory_total()
    cap = int(args.memory_cap_gb * GB) if args.memory_cap_gb else int(memory * 0.8)
    found = engines(args.engines.split(","), args.driver_memory)
    print(
        f"machine: {os.cpu_count()} cores, {memory / GB:.1f} GB RAM; "
        f"a run is killed past {cap / GB:.1f} GB or {args.timeout:.0f} s"
    )
    for engine in found.values():
        python = engine.python or "not available: skipped"
        print(f"{engine.name:<6} {SCRIPTS[engine.name].relative_to(ROOT)} with {python} ({engine.note})")
    work = Path(tempfile.mkdtemp(prefix="preprocess-engines-"))
    runs: list[Run] = []
    verdicts: list[str] = []
    try:
        for name in args.datasets.split(","):
            dataset = Dataset.load(name)
            source_rows = sum(1 for _ in dataset.source.open()) - 1
            per_engine: dict[str, list[Run]] = {e: [] for e in found}
            for scale in scales:
                data_dir = work / f"{name}-{scale}x"
                data_dir.mkdir()
                started = time.perf_counter()
                # In a fresh process: Linux carries a process's peak RSS across fork and exec into its child's
                # ru_maxrss, so this process stays small for that cross-check to mean the run's own peak.
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                    rows = pool.submit(generate, dataset, scale, data_dir / f"{name}.csv", args.seed).result()
                size = (data_dir / f"{name}.csv").stat().st_size / MB
                print(
                    f"generated {name} {scale}x: {rows:,} rows, {size:.1f} MB in {time.perf_counter() - started:.1f} s"
                )
                for engine in found.values():
                    run = Run(name, engine.name, scale, rows, size)
                    runs.append(run)
                    done = per_engine[engine.name]
                    done.append(run)
                    if engine.python is None:
                        run.detail = "no Python with the engine's packages"
                        continue
                    earlier = [r for r in done[:-1] if not r.ok]
                    if earlier:
                        run.detail = f"not run: {earlier[0].scale}x was {earlier[0].status}"
                        continue
                    guess = predicted(done[:-1], rows, engine.ceiling)
                    if guess and (guess[0] > args.timeout or guess[1] > cap):
                        run.detail = f"predicted {guess[0]:.0f} s, {guess[1] / GB:.1f} GB: past the limits"
                        continue
                    run_one(run, engine, dataset, data_dir, work, args.timeout, cap)
                    print(
                        f"  {engine.name:<6} {scale}x: {run.status} in {run.seconds:.1f} s, "
                        f"peak {run.peak_bytes / MB:,.0f} MB"
                    )
                if not args.keep:
                    shutil.rmtree(data_dir)
            for engine_name, done in per_engine.items():
                verdicts.append(verdict(dataset, found[engine_name], done, source_rows, memory))
    finally:
        if args.keep:
            print(f"generated files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(runs)
    print()
    for line in verdicts:
        print(line)
    return 0


def run_one(run: Run, engine: Engine, dataset: Dataset, data_dir: Path, work: Path, timeout: float, cap: int) -> None:
    output = work / f"out-{run.dataset}-{run.engine}-{run.scale}x"
    message = work / f"message-{run.dataset}-{run.engine}-{run.scale}x"
    log = work / f"log-{run.dataset}-{run.engine}-{run.scale}x.txt"
    assert engine.python is not None
    command = [engine.python, "-I", str(SCRIPTS[engine.name]), "--input-dir", str(data_dir),
               "--output-dir", str(output), "--message-file", str(message), *dataset.arguments()]  # fmt: skip
    run.status, run.seconds, run.peak_bytes, run.maxrss_bytes = measure(command, engine.env, log, timeout, cap)
    if run.ok:
        problem = output_check(output, run.rows)
        if problem:
            run.status, run.detail = "bad output", problem
    else:
        run.detail = last_line(log, message)
    shutil.rmtree(output, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
