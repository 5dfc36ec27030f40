"""Benchmark: the main job's wall time, the time the job scripts themselves took, and the overhead per unit.

Runs the abalone pipeline end to end on the embedded local runtime (fresh state each repetition) and
prints, per repetition and as a median:
  wall       upload -> run finished, as the user waits for it
  scripts    seconds spent inside the job scripts' processes (preprocess, train, evaluate)
  jobs       whole SageMaker jobs: scripts plus staging data from and to S3 (SageMaker's part)
  overhead   (wall - jobs) / units: what the three tiers of state machines, Lambda handlers and
             DynamoDB records cost per unit. Target: under 0.5 s per unit on a 2-core machine.

Usage: python bench/orchestration_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run() -> dict[str, float]:
    from sfn_mlops_local import operations
    from sfn_mlops_local.local.runtime import LocalRuntime

    with (
        tempfile.TemporaryDirectory() as state,
        LocalRuntime(root=ROOT, state_dir=Path(state), persist=False) as rt,
    ):
        target = rt.target()
        operations.publish_pipeline(target, ROOT / "models" / "abalone")
        started = time.perf_counter()
        key, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
        run_id, arn = operations.find_run_for_upload(target, key, version)
        summary = operations.follow_run(target, run_id, arn, lambda _: None, poll_s=0.1)
        wall = time.perf_counter() - started
        if summary["status"] != "SUCCEEDED":
            raise SystemExit(f"benchmark run did not succeed: {summary.get('error')}")
        scripts = sum(rt.jobs.job_seconds.values())
        jobs = sum(rt.jobs.job_total_seconds.values())
        units = len(summary["units"])
    return {
        "wall": wall,
        "scripts": scripts,
        "jobs": jobs,
        "units": units,
        "overhead_per_unit": (wall - jobs) / units,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = []
    for i in range(args.repeat):
        result = one_run()
        results.append(result)
        print(
            f"run {i + 1}: wall {result['wall']:.2f} s, job scripts {result['scripts']:.2f} s, "
            f"SageMaker jobs with staging {result['jobs']:.2f} s, "
            f"overhead {result['overhead_per_unit']:.3f} s/unit over {result['units']:.0f} units"
        )
    wall = statistics.median(r["wall"] for r in results)
    scripts = statistics.median(r["scripts"] for r in results)
    jobs = statistics.median(r["jobs"] for r in results)
    overhead = statistics.median(r["overhead_per_unit"] for r in results)
    print(
        f"median: wall {wall:.2f} s, job scripts {scripts:.2f} s ({scripts / wall:.0%} of wall), "
        f"SageMaker jobs with staging {jobs:.2f} s, "
        f"orchestration overhead {overhead:.3f} s/unit (target < 0.5 s/unit: {'met' if overhead < 0.5 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
