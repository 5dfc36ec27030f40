"""Duplicate EventBridge deliveries of one upload start exactly one run, on the local runtime."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.conftest import ROOT, wait_until


def test_ten_simultaneous_deliveries_of_one_upload_start_one_run(runtime: Any) -> None:
    from sfn_mlops_local import operations

    target = runtime.target()
    operations.publish_pipeline(target, ROOT / "models" / "abalone")
    # Given an upload whose event was delivered once already (as the bus does)
    operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
    runtime.events.wait_idle()
    event = wait_until(lambda: next((d["event"] for d in runtime.events.deliveries if d["rule"]), None))
    # When EventBridge delivers the same event ten more times, all at once
    gate = threading.Barrier(10)

    def deliver(_: int) -> Any:
        gate.wait()
        return runtime.lambdas.invoke(runtime.physical("TriggerFunction"), event)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(deliver, range(10)))
    # Then no delivery errs, every one names the same run, and exactly one flow execution and run exist
    assert all(error is None for _, error in results), results
    first = runtime.events.deliveries[0]["result"]
    assert first["started"] is True
    assert {result["run_id"] for result, _ in results} == {first["run_id"]}
    assert all(result["duplicate"] and not result["started"] for result, _ in results)
    sfn = runtime.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=runtime.state_machine_arn("TrainingFlow"))["executions"]
    assert [e["name"] for e in executions] == [first["run_id"]]
    runtime.wait_idle()
    assert [run["PK"].removeprefix("RUN#") for run in target.table.list_runs("abalone")] == [first["run_id"]]
