"""Last step of the deployment flow: the outcome, what serves the endpoint now, and serving lineage."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.deployment import record_outcome
from sfn_mlops.events import DeploymentRecordEvent, parse_event
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(DeploymentRecordEvent, event, "deployment outcome")
    logger.append_keys(run_id=request.plan.run_id, unit="record")
    table = MetadataTable(client("dynamodb"), get_settings().table_name)
    summary = record_outcome(table, request)
    metrics.add_metric(name=f"Deployments{summary['status'].title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    return summary
