"""First step of the batch flow: resolve the input, the approved package and its drift baseline; record the run."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.batch import PlanBatchEvent, plan_batch
from sfn_mlops.events import parse_event
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(PlanBatchEvent, event, "batch flow input")
    settings = get_settings()
    table = MetadataTable(client("dynamodb"), settings.table_name)
    plan = plan_batch(client("s3"), client("sagemaker"), table, settings, request)
    logger.append_keys(run_id=plan["run_id"], unit="plan")
    logger.info("batch planned", extra={"input": plan["input"]["uri"], "package": plan["model_package_arn"]})
    metrics.add_metric(name="BatchesPlanned", unit=MetricUnit.Count, value=1)
    return plan
