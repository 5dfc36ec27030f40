"""Benchmark: what a rerun costs next to a full run, and what one skipped unit costs.

On the embedded local runtime (fresh state), it runs the abalone pipeline once cleanly (the full run),
then once with its last unit (register) failing, then reruns that failed run, and prints:
  full_wall        upload -> run finished, clean run
  rerun_wall       `mlops rerun` start -> finished, on the run that failed in register
  ratio            rerun_wall / full_wall (the machine is noisy: the ratio is the figure to compare)
  transitions      state transitions one skipped unit costs, counted across the job flow (its "Run X" and
                   "Is X the last unit to run?" states) and the executor (every state it entered).
                   Target: at most 5.
  dynamodb_reads   DynamoDB reads (GetItem/Query/BatchGetItem) naming that unit's record. Target: 1.

Usage: python bench/rerun_cost.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
READS = {"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"}


def run_once(rt: Any, fail_at: str | None = None) -> tuple[dict[str, Any], float]:
    from sfn_mlops_local import operations

    target = rt.target()
    if fail_at:
        rt.fail_unit(fail_at)
    started = time.perf_counter()
    key, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
    run_id, arn = operations.find_run_for_upload(target, key, version)
    summary = operations.follow_run(target, run_id, arn, lambda _: None, poll_s=0.05)
    return summary, time.perf_counter() - started


def entered_states(sfn: Any, execution_arn: str) -> list[str]:
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def skipped_unit_transitions(sfn: Any, flow_arn: str, unit: str) -> int:
    """States entered for one unit: the job flow's own states for it, plus the whole executor execution."""
    flow_states = [s for s in entered_states(sfn, flow_arn) if s in (f"Run {unit}", f"Is {unit} the last unit to run?")]
    history = sfn.get_execution_history(executionArn=flow_arn, maxResults=1000)["events"]
    for event in history:
        details = event.get("taskSucceededEventDetails") or {}
        output = json.loads(details.get("output") or "{}")
        if isinstance(output, dict) and (output.get("Output") or {}).get("unit") == unit:
            return len(flow_states) + len(entered_states(sfn, output["ExecutionArn"]))
    raise SystemExit(f"no executor execution for {unit} in {flow_arn}")


def one_repetition() -> dict[str, float]:
    import boto3
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations
    from sfn_mlops_local.local.runtime import LocalRuntime

    with tempfile.TemporaryDirectory() as state, LocalRuntime(root=ROOT, state_dir=Path(state), persist=False) as rt:
        target = rt.target()
        operations.publish_pipeline(target, ROOT / "models" / "abalone")
        full, full_wall = run_once(rt)
        if full["status"] != "SUCCEEDED":
            raise SystemExit(f"clean run did not succeed: {full.get('error')}")
        failed, _ = run_once(rt, fail_at="register")
        if failed["status"] != "FAILED" or failed["error"]["unit"] != "register":
            raise SystemExit(f"expected a run failed in register, got {failed['status']}")
        reads: list[str] = []

        def count_reads(params: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name in READS and '"UNIT#preprocess"' in json.dumps(params.get("body", ""), default=str).replace(
                "\\", ""
            ):
                reads.append(model.name)

        events: Any = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-call.dynamodb", count_reads)
        started = time.perf_counter()
        flow_arn = operations.start_rerun(target, failed["run_id"], RerunOptions())
        rerun = operations.follow_run(target, failed["run_id"], flow_arn, lambda _: None, poll_s=0.05)
        rerun_wall = time.perf_counter() - started
        events.unregister("before-call.dynamodb", count_reads)
        if rerun["status"] != "SUCCEEDED":
            raise SystemExit(f"rerun did not succeed: {rerun.get('error')}")
        skipped = [u["name"] for u in rerun["units"] if u["status"] == "SKIPPED"]
        if skipped != ["preprocess", "train", "evaluate"]:
            raise SystemExit(f"expected preprocess, train and evaluate skipped, got {skipped}")
        transitions = skipped_unit_transitions(rt.client("stepfunctions"), flow_arn, "preprocess")
    return {
        "full_wall": full_wall,
        "rerun_wall": rerun_wall,
        "ratio": rerun_wall / full_wall,
        "transitions": transitions,
        "dynamodb_reads": len(reads),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = []
    for i in range(args.repeat):
        result = one_repetition()
        results.append(result)
        print(
            f"repetition {i + 1}: full {result['full_wall']:.2f}s  rerun {result['rerun_wall']:.2f}s  "
            f"ratio {result['ratio']:.3f}  skipped unit: {result['transitions']:.0f} transitions, "
            f"{result['dynamodb_reads']:.0f} DynamoDB read(s)"
        )
    median = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"median: full {median['full_wall']:.2f}s  rerun {median['rerun_wall']:.2f}s  ratio {median['ratio']:.3f}  "
        f"skipped unit: {median['transitions']:.0f} transitions (target <= 5), "
        f"{median['dynamodb_reads']:.0f} DynamoDB read(s) (target 1)"
    )
    ok = median["transitions"] <= 5 and median["dynamodb_reads"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
