"""What a run would cost on AWS: its usage (state transitions, Lambda invocations, SageMaker instance-seconds)
priced at on-demand list prices. Pure arithmetic on usage that ``data.py`` reads from the run's executions.

The estimate leaves out what a run's executions cannot tell: S3 and DynamoDB requests, CloudWatch, data
transfer, free tiers, Savings Plans, and the Lambda functions invoked outside the run's executions (the upload
trigger). The page says so beside the figures.
"""

from __future__ import annotations

import math
from typing import Any

# On-demand list prices in US East (N. Virginia), as published by AWS on its pricing pages for Step Functions,
# Lambda and SageMaker AI. Prices change: the page prints this table and the date it was recorded.
PRICES: dict[str, Any] = {
    "recorded_on": "2026-11-30",
    "region": "us-east-1",
    "source": (
        "AWS pricing pages: aws.amazon.com/step-functions/pricing, aws.amazon.com/lambda/pricing, "
        "aws.amazon.com/sagemaker/pricing (On-Demand, US East (N. Virginia))"
    ),
    "step_functions_per_transition": 0.025 / 1000,  # Standard workflows: $0.025 per 1,000 state transitions
    "lambda_per_request": 0.20 / 1_000_000,  # $0.20 per 1M requests
    "lambda_per_gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    # USD per instance-hour, by SageMaker job kind (each kind has its own price list).
    "sagemaker_per_instance_hour": {
        "processing": {
            "ml.t3.medium": 0.05,
            "ml.t3.large": 0.1,
            "ml.m5.large": 0.115,
            "ml.m5.xlarge": 0.23,
            "ml.m5.2xlarge": 0.461,
            "ml.m5.4xlarge": 0.922,
            "ml.c5.xlarge": 0.204,
            "ml.c5.2xlarge": 0.408,
        },
        "training": {
            "ml.m5.large": 0.115,
            "ml.m5.xlarge": 0.23,
            "ml.m5.2xlarge": 0.461,
            "ml.m5.4xlarge": 0.922,
            "ml.c5.xlarge": 0.204,
            "ml.c5.2xlarge": 0.408,
            "ml.m4.xlarge": 0.24,
        },
        "transform": {
            "ml.m5.large": 0.115,
            "ml.m5.xlarge": 0.23,
            "ml.m5.2xlarge": 0.461,
            "ml.m5.4xlarge": 0.922,
            "ml.c5.xlarge": 0.204,
            "ml.c5.2xlarge": 0.408,
        },
    },
    "excluded": (
        "S3 and DynamoDB requests, CloudWatch, data transfer, free tiers, Savings Plans, "
        "and functions invoked outside the run's executions (the upload trigger)"
    ),
}


def lambda_cost(invocations: list[dict[str, Any]], prices: dict[str, Any] = PRICES) -> dict[str, Any]:
    """Requests plus GB-seconds: each invocation's duration billed up to the next millisecond, times its
    function's configured memory (``memory_mb``) at its architecture's price."""
    gb_seconds = 0.0
    duration_usd = 0.0
    for call in invocations:
        billed_s = math.ceil(max(float(call["duration_ms"]), 0.0)) / 1000
        gb_s = float(call["memory_mb"]) / 1024 * billed_s
        gb_seconds += gb_s
        rate = prices["lambda_per_gb_second"].get(call.get("architecture") or "x86_64")
        duration_usd += gb_s * (rate if rate is not None else prices["lambda_per_gb_second"]["x86_64"])
    requests_usd = len(invocations) * prices["lambda_per_request"]
    return {
        "invocations": len(invocations),
        "gb_seconds": round(gb_seconds, 6),
        "usd": requests_usd + duration_usd,
    }


def sagemaker_cost(jobs: list[dict[str, Any]], prices: dict[str, Any] = PRICES) -> dict[str, Any]:
    """Instance-seconds (per-second billing, whole seconds) times the instance type's hourly price for the job's
    kind. A job whose type has no price in the table is listed with ``usd`` None and named in ``unpriced``."""
    priced: list[dict[str, Any]] = []
    unpriced: list[str] = []
    for job in jobs:
        seconds = math.ceil(max(float(job["seconds"]), 0.0))
        instance_seconds = seconds * int(job["instance_count"])
        hourly = prices["sagemaker_per_instance_hour"].get(job["kind"], {}).get(job["instance_type"])
        usd = None if hourly is None else instance_seconds * hourly / 3600
        if usd is None:
            unpriced.append(f"{job['kind']} {job['instance_type']}")
        priced.append({**job, "billed_seconds": seconds, "instance_seconds": instance_seconds, "usd": usd})
    return {
        "jobs": priced,
        "instance_seconds": sum(j["instance_seconds"] for j in priced),
        "usd": sum(j["usd"] for j in priced if j["usd"] is not None),
        "unpriced": unpriced,
    }


def run_cost(usage: dict[str, Any], prices: dict[str, Any] = PRICES) -> dict[str, Any]:
    """A run's estimate from its usage: ``executions``, ``transitions``, ``lambda_invocations``, ``jobs``."""
    transitions = int(usage["transitions"])
    step_functions = {"transitions": transitions, "usd": transitions * prices["step_functions_per_transition"]}
    lambdas = lambda_cost(usage["lambda_invocations"], prices)
    sagemaker = sagemaker_cost(usage["jobs"], prices)
    return {
        "executions": int(usage["executions"]),
        "step_functions": step_functions,
        "lambda": lambdas,
        "sagemaker": sagemaker,
        "total_usd": step_functions["usd"] + lambdas["usd"] + sagemaker["usd"],
        "missing_executions": len(usage.get("missing_executions") or []),
        # True when some usage had no price or its execution's history is gone: the total is then a lower bound
        "partial": bool(sagemaker["unpriced"] or usage.get("missing_executions")),
    }
