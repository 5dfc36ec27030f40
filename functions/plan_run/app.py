"""First step of a job flow: pin dataset and code, resolve each unit's config, record the run."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.events import PlanRunEvent, parse_event
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.planner import plan_run
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(PlanRunEvent, event, "training flow input")
    logger.append_keys(run_id=request.run.run_id, unit="plan")
    settings = get_settings()
    plan = plan_run(client("s3"), MetadataTable(client("dynamodb"), settings.table_name), settings, request)
    metrics.add_metric(name="RunsPlanned", unit=MetricUnit.Count, value=1)
    return plan
