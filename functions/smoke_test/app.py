"""Smoke-test worker: rows of the package's test split through the endpoint, equal to evaluation's predictions."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.deployment import smoke_test
from sfn_mlops.events import WorkerEvent, parse_event, smoke_test_config

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(WorkerEvent, event, "smoke-test input")
    logger.append_keys(run_id=request.run_id, unit=request.unit)
    config = smoke_test_config(request)
    result = smoke_test(client("s3"), client("sagemaker-runtime"), config.model_dump())
    metrics.add_metric(name="SmokeTestsPassed", unit=MetricUnit.Count, value=1)
    return result
