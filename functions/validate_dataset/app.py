"""Preprocess worker, first step: reject a bad dataset in seconds, then snapshot it into the run."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.datasets import validate_and_snapshot

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    validated = validate_and_snapshot(client("s3"), event)
    metrics.add_metric(name="DatasetsValidated", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DatasetBytes", unit=MetricUnit.Bytes, value=validated["dataset"].get("size") or 0)
    return validated
