"""Executor, when a unit is found RUNNING: release the lock if its holder is gone or its lease ran out."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.events import ReleaseLockEvent, parse_event
from sfn_mlops.locks import release_expired_lock
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ReleaseLockEvent, event, "lock release")
    logger.append_keys(run_id=request.run_id, unit=request.unit)
    table = MetadataTable(client("dynamodb"), get_settings().table_name)
    result = release_expired_lock(table, client("stepfunctions"), request)
    if result["released"] and result.get("previous_holder"):
        logger.warning("released an abandoned unit lock", extra=result)
        metrics.add_metric(name="AbandonedLocksReleased", unit=MetricUnit.Count, value=1)
    return result
