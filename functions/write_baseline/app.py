"""Preprocess worker, last step: the data baseline (Model Monitor's statistics.json and constraints.json) of the
raw training split the processing job wrote; batch input is checked against it."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.drift import parse_write_baseline_event, write_training_baseline

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_write_baseline_event(event)
    logger.append_keys(run_id=request.run_id, unit=request.unit)
    written = write_training_baseline(client("s3"), request)
    metrics.add_metric(name="BaselineRows", unit=MetricUnit.Count, value=written["rows"])
    return written
