"""Check unit of the batch flow: the input against the package's drift baseline; the transform job's input."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.batch import check_input, parse_check_event
from sfn_mlops.metadata import MetadataTable
from sfn_mlops.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    unit, config = parse_check_event(event)  # the config not trusted as given, before any read
    logger.append_keys(run_id=unit.run_id, unit=unit.unit)
    settings = get_settings()
    table = MetadataTable(client("dynamodb"), settings.table_name)
    result = check_input(
        client("s3"),
        client("cloudwatch"),
        client("stepfunctions"),
        table,
        settings,
        unit.run_id,
        unit.pipeline,
        unit.attempt,
        config,
    )
    metrics.add_metric(name=f"BatchInputs{result['drift_status'].title()}", unit=MetricUnit.Count, value=1)
    return result
