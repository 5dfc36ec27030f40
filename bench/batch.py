"""Benchmark: the batch inference flow on the local service, at 1x and 100x abalone's rows.

Starts a local service on a fresh state folder, trains abalone, approves the package (which also deploys it to
staging: the benchmark waits for that to finish first), then scores a batch of abalone's rows without the label
(1x: 4,177 rows; 100x: 417,700 rows, the file repeated) with `mlops batch`'s operations. For each size it prints
the flow's wall time from the start to the recorded outcome, each unit's time (model, check, transform) and rows
scored per second, and the Step Functions state transitions of the flow and every executor and worker it started.

Usage: python bench/batch.py [--scales 1,100]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from deployment import PRICE_PER_TRANSITION, transitions  # noqa: E402


def unlabelled_rows() -> tuple[list[str], list[list[str]]]:
    with (ROOT / "models/abalone/data/abalone.csv").open() as source:
        rows = list(csv.reader(source))
    label = rows[0].index("rings")
    return [c for i, c in enumerate(rows[0]) if i != label], [
        [c for i, c in enumerate(r) if i != label] for r in rows[1:]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,100", help="comma-separated multiples of abalone's rows")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    from sfn_mlops_local import approval_operations, batch_operations, deployments, operations
    from sfn_mlops_local.local import client
    from sfn_mlops_local.operations import Target

    header, rows = unlabelled_rows()
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        info = client.start(state, ROOT)
        try:
            target = Target.for_local_service(info, "benchmark")
            operations.publish_pipeline(target, ROOT / "models" / "abalone")
            key, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
            run_id, arn = operations.find_run_for_upload(target, key, version)
            package = operations.follow_run(target, run_id, arn, lambda _: None)["model_package_arn"]
            approval_operations.approve_package(target, package, "benchmark")
            deadline = time.monotonic() + 600  # the approval deploys to staging: not part of what is measured
            while not [d for d in deployments.list_deployments(target, "abalone", 5) if d["status"] != "RUNNING"]:
                if time.monotonic() > deadline:
                    raise SystemExit("the approval's deployment did not finish")
                time.sleep(0.2)
            for scale in scales:
                data = Path(folder) / f"abalone-x{scale}.csv"
                with data.open("w") as out:
                    out.write(",".join(header) + "\n")
                    for _ in range(scale):
                        out.writelines(",".join(r) + "\n" for r in rows)
                started = time.perf_counter()
                batch_id, execution = batch_operations.start_batch(target, "abalone", data)
                followed = operations.follow_run(target, batch_id, execution, lambda _: None, timeout=3600)
                wall = time.perf_counter() - started
                summary = batch_operations.batch_summary(target, batch_id, followed)
                ok = ok and summary["status"] == "SUCCEEDED" and summary["rows_scored"] == scale * len(rows)
                units = ", ".join(f"{u['name']} {u['duration_s'] or 0:.2f} s" for u in summary["units"])
                count = transitions(target.sfn, execution)
                print(
                    f"{scale}x ({scale * len(rows):,} rows, {data.stat().st_size / 1e6:.1f} MB): {summary['status']} "
                    f"in {wall:.2f} s ({units}); {summary['rows_scored'] / wall:,.0f} rows scored/s; "
                    f"{count} state transitions = ${count * PRICE_PER_TRANSITION:.5f} on AWS"
                )
        finally:
            client.stop(state)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
