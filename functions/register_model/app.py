"""Register worker: an inference-pipeline model package (fitted preprocessing, then the model) with metrics and
lineage, pending approval (approved by the stack itself only when it is deployed with auto-approval on); the
same artifacts are registered once."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.registry import parse_register_event, register_model
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_register_event(event)
    logger.append_keys(run_id=request.run_id, unit=request.unit)
    settings = get_settings()
    table = MetadataTable(client("dynamodb"), settings.table_name)
    registered = register_model(client("sagemaker"), client("s3"), table, settings, request)
    name = "ModelPackagesReused" if registered["reused"] else "ModelPackagesRegistered"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if not registered["reused"] and registered["approval_status"] == "Approved":
        metrics.add_metric(name="ModelPackagesAutoApproved", unit=MetricUnit.Count, value=1)
    return registered
