"""The cost estimate: usage priced at the list prices the page prints."""

from __future__ import annotations

import pytest

from sfn_mlops_local.report import cost


def test_state_transitions_are_priced_per_thousand() -> None:
    # Given a run whose executions entered 2,000 states and used nothing else
    usage = {"executions": 3, "transitions": 2000, "lambda_invocations": [], "jobs": []}
    # When it is priced
    estimate = cost.run_cost(usage)
    # Then Step Functions Standard's $0.025 per 1,000 transitions is the whole bill
    assert estimate["step_functions"] == {"transitions": 2000, "usd": pytest.approx(0.05)}
    assert estimate["total_usd"] == pytest.approx(0.05)
    assert estimate["executions"] == 3 and estimate["partial"] is False


def test_lambda_bills_requests_and_gb_seconds_rounded_up_to_the_millisecond() -> None:
    # Given two invocations: 512 MB for 199.2 ms (billed 200 ms) and 256 MB arm64 for 1 s
    calls = [
        {"function": "plan", "duration_ms": 199.2, "memory_mb": 512, "architecture": "x86_64"},
        {"function": "lookup", "duration_ms": 1000.0, "memory_mb": 256, "architecture": "arm64"},
    ]
    # When they are priced
    priced = cost.lambda_cost(calls)
    # Then GB-seconds are memory x billed duration, each at its architecture's price, plus $0.20 per 1M requests
    assert priced["invocations"] == 2
    assert priced["gb_seconds"] == pytest.approx(0.5 * 0.2 + 0.25 * 1.0)
    expected = 2 * 0.20 / 1e6 + 0.5 * 0.2 * 0.0000166667 + 0.25 * 1.0 * 0.0000133334
    assert priced["usd"] == pytest.approx(expected)


def test_sagemaker_jobs_are_instance_seconds_at_the_kinds_hourly_price() -> None:
    # Given a training job on two ml.m5.xlarge for 90.2 s and a processing job on one ml.m5.large for 3600 s
    jobs = [
        {"kind": "training", "name": "t", "instance_type": "ml.m5.xlarge", "instance_count": 2, "seconds": 90.2},
        {"kind": "processing", "name": "p", "instance_type": "ml.m5.large", "instance_count": 1, "seconds": 3600},
    ]
    # When they are priced
    priced = cost.sagemaker_cost(jobs)
    # Then per-second billing rounds up to whole seconds, multiplied by the instance count
    training, processing = priced["jobs"]
    assert training["billed_seconds"] == 91 and training["instance_seconds"] == 182
    assert training["usd"] == pytest.approx(182 * 0.23 / 3600)
    assert processing["usd"] == pytest.approx(0.115)
    assert priced["instance_seconds"] == 3782
    assert priced["usd"] == pytest.approx(182 * 0.23 / 3600 + 0.115)
    assert priced["unpriced"] == []


def test_an_instance_type_without_a_price_is_named_and_the_total_is_a_lower_bound() -> None:
    # Given a job on an instance type the price table does not list
    usage = {
        "executions": 1,
        "transitions": 10,
        "lambda_invocations": [],
        "jobs": [
            {"kind": "training", "name": "g", "instance_type": "ml.p4d.24xlarge", "instance_count": 1, "seconds": 60}
        ],
    }
    # When the run is priced
    estimate = cost.run_cost(usage)
    # Then the job has no price, is named, and the estimate says it is partial
    assert estimate["sagemaker"]["jobs"][0]["usd"] is None
    assert estimate["sagemaker"]["unpriced"] == ["training ml.p4d.24xlarge"]
    assert estimate["partial"] is True
    assert estimate["total_usd"] == pytest.approx(10 * 0.025 / 1000)


def test_the_price_table_says_when_and_where_it_was_taken() -> None:
    assert cost.PRICES["recorded_on"] and cost.PRICES["source"] and cost.PRICES["region"] == "us-east-1"
