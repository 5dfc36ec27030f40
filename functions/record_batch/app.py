"""Last step of the batch flow: rows scored, the output, lineage, and the run's outcome."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.batch import record_outcome
from sfn_mlops.events import BatchRecordEvent, parse_event
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(BatchRecordEvent, event, "batch outcome")
    logger.append_keys(run_id=request.plan.run_id, unit="record")
    table = MetadataTable(client("dynamodb"), get_settings().table_name)
    summary = record_outcome(client("s3"), table, request)
    metrics.add_metric(name=f"Batches{str(summary['status']).title()}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RowsScored", unit=MetricUnit.Count, value=summary["rows_scored"])
    return summary
