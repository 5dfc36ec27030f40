"""First step of the deployment flow: resolve the package, the endpoint and each unit's config; record it."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.deployment import PlanDeploymentEvent, plan_deployment
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
    request = parse_event(PlanDeploymentEvent, event, "deployment flow input")
    settings = get_settings()
    table = MetadataTable(client("dynamodb"), settings.table_name)
    plan = plan_deployment(client("s3"), client("sagemaker"), table, settings, request)
    logger.append_keys(run_id=plan["run_id"], unit="plan")
    logger.info("deployment planned", extra={"endpoint": plan["endpoint_name"], "strategy": plan["strategy"]})
    metrics.add_metric(name="DeploymentsPlanned", unit=MetricUnit.Count, value=1)
    return plan
