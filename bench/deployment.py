"""Benchmark: one deployment on the local service, and what it would cost in Step Functions on AWS.

Starts a local service on a fresh state folder, trains abalone twice, then:
  create   approve the first package: approval event -> deployment flow -> model, endpoint config,
           CreateEndpoint, wait for InService, smoke test -> recorded. Wall time from the approval.
  update   deploy the second package: a blue/green canary update with the given baking times. Wall time,
           and the same minus the configured waits (what the orchestration itself costs).
  transitions  state transitions of the deployment flow and every executor and worker execution it started
           (what Step Functions Standard bills: $0.025 per 1,000 in us-east-1), per deployment.

Usage: python bench/deployment.py [--wait-s N] [--termination-wait-s N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRICE_PER_TRANSITION = 0.025 / 1000


def transitions(sfn: Any, execution_arn: str) -> int:
    """States entered by an execution and, through .sync tasks, by the executions it started."""
    count = 0
    token: str | None = None
    while True:
        more = {"nextToken": token} if token else {}
        page = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000, **more)
        for event in page["events"]:
            if event["type"].endswith("StateEntered"):
                count += 1
            if event["type"] == "TaskSubmitted":
                output = json.loads(event["taskSubmittedEventDetails"].get("output") or "{}")
                child = output.get("ExecutionArn") or output.get("executionArn")
                if child:
                    count += transitions(sfn, child)
        token = page.get("nextToken")
        if not token:
            return count


def wait_for_deployment(target: Any, deployment_ids_before: set[str], timeout: float = 600) -> dict[str, Any]:
    from sfn_mlops_local import deployments

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = deployments.list_deployments(target, "abalone", 5)
        new = [d for d in listed if d["deployment_id"] not in deployment_ids_before]
        if new and new[0]["status"] not in ("RUNNING", None):
            return deployments.deployment_summary(target, new[0]["deployment_id"])
        time.sleep(0.1)
    raise SystemExit("the deployment did not finish in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait-s", type=int, default=5)
    parser.add_argument("--termination-wait-s", type=int, default=5)
    args = parser.parse_args()
    from sfn_mlops_local import approval_operations, deployments, operations
    from sfn_mlops_local.local import client
    from sfn_mlops_local.operations import Target

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        info = client.start(state, ROOT)
        try:
            target = Target.for_local_service(info, "benchmark")
            operations.publish_pipeline(target, ROOT / "models" / "abalone")
            key = "pipelines/abalone/pipeline.json"
            config = json.loads(target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read())
            config["deploy"]["traffic"].update(
                {"type": "CANARY", "wait_s": args.wait_s, "termination_wait_s": args.termination_wait_s}
            )
            target.s3.put_object(Bucket=target.bucket, Key=key, Body=json.dumps(config).encode())
            packages = []
            for data in ("abalone.csv", "abalone.csv"):
                key_, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data" / data)
                run_id, arn = operations.find_run_for_upload(target, key_, version)
                summary = operations.follow_run(target, run_id, arn, lambda _: None)
                packages.append(summary["model_package_arn"])
            results = []
            for label, package in (("create", packages[0]), ("update", packages[1])):
                before = {d["deployment_id"] for d in deployments.list_deployments(target, "abalone", 50)}
                started = time.perf_counter()
                approval_operations.approve_package(target, package, f"benchmark {label}")
                summary = wait_for_deployment(target, before)
                wall = time.perf_counter() - started
                count = transitions(target.sfn, summary["flow_execution_arn"])
                waits = args.wait_s + args.termination_wait_s if label == "update" else 0
                results.append((label, summary["status"], wall, wall - waits, count))
                print(
                    f"{label}: {summary['status']} ({summary['strategy']}) in {wall:.2f} s from the approval"
                    f"{f', {wall - waits:.2f} s without the {waits} s of configured baking' if waits else ''}; "
                    f"{count} state transitions = ${count * PRICE_PER_TRANSITION:.5f} on AWS"
                )
        finally:
            client.stop(state)
    return 0 if all(r[1] == "SUCCEEDED" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
