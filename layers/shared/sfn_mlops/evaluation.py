"""Read the evaluation report and put the quality gate's inputs where the Choice state expects them."""

from __future__ import annotations

import json
import math
from typing import Any

from sfn_mlops.errors import MetricsNotFound
from sfn_mlops.s3uri import split_s3_uri


def read_metrics(s3: Any, event: dict[str, Any]) -> dict[str, Any]:
    evaluation_uri = str(event.get("evaluation_uri", ""))
    gate = event.get("gate") or {}
    bucket, key = split_s3_uri(evaluation_uri)
    try:
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey as exc:
        raise MetricsNotFound(f"the evaluation job wrote no report at {evaluation_uri}") from exc
    except json.JSONDecodeError as exc:
        raise MetricsNotFound(f"the evaluation report {evaluation_uri} is not JSON: {exc}") from exc
    metrics = report.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise MetricsNotFound(f"the evaluation report {evaluation_uri} has no 'metrics' object")
    metric = str(gate.get("metric", ""))
    value = metrics.get(metric)
    if not isinstance(value, int | float) or math.isnan(value):
        raise MetricsNotFound(
            f"the evaluation report {evaluation_uri} has no numeric metric {metric!r} for the quality gate; "
            f"found: {', '.join(sorted(metrics))}"
        )
    compared = {}
    for other in ("champion", "baseline"):  # scored on the same test rows, when the job had them
        other_value = ((report.get(other) or {}).get("metrics") or {}).get(metric)
        if isinstance(other_value, int | float) and math.isfinite(other_value):
            compared[f"{other}_value"] = float(other_value)
    return {
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "gate": {**gate, "value": float(value), **compared},
        "evaluation_uri": evaluation_uri,
    }
