"""Executor, for a unit with the cache on: find an earlier success with the same inputs fingerprint."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.cache import lookup_cached_success
from sfn_mlops.events import CacheLookupEvent, parse_event
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lookup = parse_event(CacheLookupEvent, event, "cache lookup")
    logger.append_keys(run_id=lookup.run_id, unit=lookup.unit)
    result = lookup_cached_success(MetadataTable(client("dynamodb"), get_settings().table_name), lookup)
    metrics.add_metric(name="CacheHits" if result["hit"] else "CacheMisses", unit=MetricUnit.Count, value=1)
    return result
