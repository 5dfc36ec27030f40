"""Benchmark: the main job through the local service, its orchestration overhead per unit, and how fast a
read-only command answers.

Starts a local service on a fresh state folder (as `mlops` does), then:
  wall       upload -> run finished, as the user waits for it (the CLI's own client calls, over HTTP)
  scripts    seconds spent inside the job scripts' processes (preprocess, train, evaluate)
  jobs       whole SageMaker jobs: scripts plus staging data from and to S3 (SageMaker's part)
  overhead   (wall - jobs) / units: what the three tiers of state machines, Lambda handlers, DynamoDB
             records and the client's polling cost per unit. Target: under 0.2 s per unit. The first run after
             the service starts also pays for starting the job processes: it is shown apart, as a warm-up.
  cpu        the service process's own CPU seconds per unit (jobs run in processes of their own): the same
             cost, less sensitive to what else the machine is doing.
  read-only  `mlops runs abalone` and `mlops status RUN` as processes (Python start-up included), median.
             Target: under 0.5 s. Also the machine's `python -c pass` and `import boto3`, for scale: the
             machine is noisy, so compare ratios across runs rather than absolute seconds.

Usage: python bench/orchestration_overhead.py [--repeat N] [--reads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(target: Any, info: Any) -> dict[str, float]:
    from sfn_mlops_local import operations
    from sfn_mlops_local.local import client

    before = client.request(info, "GET", "jobs")
    cpu_before = cpu_seconds(info.pid)
    started = time.perf_counter()
    key, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
    run_id, arn = operations.find_run_for_upload(target, key, version)
    summary = operations.follow_run(target, run_id, arn, lambda _: None, poll_s=0.05)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(info.pid) - cpu_before
    if summary["status"] != "SUCCEEDED":
        raise SystemExit(f"benchmark run did not succeed: {summary.get('error')}")
    after = client.request(info, "GET", "jobs")

    def new_seconds(kind: str) -> float:
        return sum(v for name, v in after[kind].items() if name not in before[kind])

    units = sum(1 for u in summary["units"] if u["status"] in ("SUCCEEDED", "CACHED"))
    jobs = new_seconds("job_seconds")
    return {
        "wall": wall,
        "scripts": new_seconds("script_seconds"),
        "jobs": jobs,
        "units": units,
        "overhead_per_unit": (wall - jobs) / units,
        "cpu_per_unit": cpu / units,
        "run_id": run_id,  # type: ignore[dict-item]
    }


def timed(command: list[str], env: dict[str, str], times: int) -> float:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reads", type=int, default=7)
    args = parser.parse_args()
    from sfn_mlops_local import operations
    from sfn_mlops_local.local import client
    from sfn_mlops_local.operations import Target

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        started = time.perf_counter()
        info = client.start(state, ROOT)
        print(f"service cold start: {time.perf_counter() - started:.2f} s ({info.endpoint})")
        try:
            target = Target.for_local_service(info, "benchmark")
            operations.publish_pipeline(target, ROOT / "models" / "abalone")
            warm_up = one_run(target, info)
            print(
                f"warm-up run (starts the job processes): wall {warm_up['wall']:.2f} s, "
                f"overhead {warm_up['overhead_per_unit']:.3f} s/unit"
            )
            results = []
            for i in range(args.repeat):
                result = one_run(target, info)
                results.append(result)
                print(
                    f"run {i + 1}: wall {result['wall']:.2f} s, job scripts {result['scripts']:.2f} s, "
                    f"SageMaker jobs with staging {result['jobs']:.2f} s, "
                    f"overhead {result['overhead_per_unit']:.3f} s/unit over {result['units']:.0f} units run, "
                    f"service CPU {result['cpu_per_unit']:.3f} s/unit"
                )
            wall = statistics.median(r["wall"] for r in results)
            jobs = statistics.median(r["jobs"] for r in results)
            overhead = statistics.median(r["overhead_per_unit"] for r in results)
            cpu = statistics.median(r["cpu_per_unit"] for r in results)
            print(
                f"median of {args.repeat}: wall {wall:.2f} s, SageMaker jobs with staging {jobs:.2f} s, orchestration "
                f"overhead {overhead:.3f} s/unit (target < 0.2 s/unit: {'met' if overhead < 0.2 else 'NOT met'}), "
                f"service CPU {cpu:.3f} s/unit"
            )
            env = {**os.environ, "MLOPS_LOCAL_STATE": str(state)}
            mlops = [sys.executable, "-m", "sfn_mlops_local.cli"]
            runs = timed([*mlops, "runs", "abalone", "--json"], env, args.reads)
            status = timed([*mlops, "status", str(results[-1]["run_id"]), "--json"], env, args.reads)
            python = timed([sys.executable, "-c", "pass"], env, args.reads)
            boto3 = timed([sys.executable, "-c", "import boto3"], env, args.reads)
            worst = max(runs, status)
            print(
                f"read-only commands, median of {args.reads}: `mlops runs` {runs:.3f} s, `mlops status RUN` "
                f"{status:.3f} s (target < 0.5 s: {'met' if worst < 0.5 else 'NOT met'}); for scale on this "
                f"machine now: `python -c pass` {python:.3f} s, `import boto3` {boto3:.3f} s"
            )
        finally:
            client.stop(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
