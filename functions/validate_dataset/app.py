"""Preprocess worker, first step: reject a bad dataset in seconds, then snapshot it into the run."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
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
    return validate_and_snapshot(client("s3"), event)
