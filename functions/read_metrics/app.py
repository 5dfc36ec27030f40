"""Evaluate worker, last step: read evaluation.json and hand the gate its metric."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.evaluation import read_metrics
from sfn_mlops.events import ReadMetricsEvent, parse_event

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ReadMetricsEvent, event, "read-metrics input")
    logger.append_keys(unit="evaluate")
    result = read_metrics(client("s3"), request)
    # The gate's metric as a CloudWatch metric: model quality over time, per gate metric.
    metrics.add_dimension(name="GateMetric", value=str(result["gate"].get("metric")))
    metrics.add_metric(name="QualityGateValue", unit=MetricUnit.NoUnit, value=result["gate"]["value"])
    return result
