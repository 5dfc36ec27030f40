"""Start the training flow for a dataset upload (S3 → EventBridge) or a scheduled retrain."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings
from sfn_mlops.trigger import handle_trigger

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    table = MetadataTable(client("dynamodb"), settings.table_name)
    decision = handle_trigger(client("stepfunctions"), client("s3"), table, settings, event)
    if decision.started:
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
        logger.info("run started", extra=decision.model_dump())
    elif decision.duplicate:
        metrics.add_metric(name="DuplicateTriggers", unit=MetricUnit.Count, value=1)
        logger.info("duplicate trigger ignored", extra=decision.model_dump())
    else:
        metrics.add_metric(name="RejectedTriggers", unit=MetricUnit.Count, value=1)
        logger.warning("trigger rejected", extra=decision.model_dump())
    return decision.model_dump()
