"""Read the evaluation report and put the quality gate's inputs where the Choice state expects them."""

from __future__ import annotations

import json
import math
from typing import Any, TypeGuard

from sfn_mlops.errors import MetricsNotFound
from sfn_mlops.events import ReadMetricsEvent, parse_event
from sfn_mlops.s3uri import split_s3_uri


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _refuse_non_finite(metrics: dict[str, Any], source: str) -> None:
    """A NaN or infinite metric fails the run here, readably: stored, it would crash every reader of the run."""
    bad = {name: value for name, value in metrics.items() if _is_number(value) and not math.isfinite(value)}
    if bad:
        listed = ", ".join(f"{name}={value}" for name, value in sorted(bad.items()))
        raise MetricsNotFound(f"the evaluation report {source} has non-finite metrics ({listed}): nothing registered")


def read_metrics(s3: Any, event: dict[str, Any] | ReadMetricsEvent) -> dict[str, Any]:
    given = event if isinstance(event, ReadMetricsEvent) else parse_event(ReadMetricsEvent, event, "read-metrics input")
    evaluation_uri = given.evaluation_uri
    gate = given.gate.model_dump(exclude_none=True)
    bucket, key = split_s3_uri(evaluation_uri)
    try:
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey as exc:
        raise MetricsNotFound(f"the evaluation job wrote no report at {evaluation_uri}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetricsNotFound(f"the evaluation report {evaluation_uri} is not JSON: {exc}") from exc
    metrics = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(metrics, dict) or not metrics:
        raise MetricsNotFound(f"the evaluation report {evaluation_uri} has no 'metrics' object")
    _refuse_non_finite(metrics, evaluation_uri)
    metric = given.gate.metric
    value = metrics.get(metric)
    if not _is_number(value):
        raise MetricsNotFound(
            f"the evaluation report {evaluation_uri} has no numeric metric {metric!r} for the quality gate; "
            f"found: {', '.join(sorted(str(m) for m in metrics))}"
        )
    compared = {}
    for other in ("champion", "baseline"):  # scored on the same test rows, when the job had them
        other_metrics = (report.get(other) or {}).get("metrics") if isinstance(report.get(other), dict) else None
        if not isinstance(other_metrics, dict):
            continue
        _refuse_non_finite({f"{other}.{k}": v for k, v in other_metrics.items()}, evaluation_uri)
        other_value = other_metrics.get(metric)
        if _is_number(other_value):
            compared[f"{other}_value"] = float(other_value)
    return {
        "metrics": {k: v for k, v in metrics.items() if _is_number(v)},
        "gate": {**gate, "value": float(value), **compared},
        "evaluation_uri": evaluation_uri,
    }
