"""Transform unit of the batch flow, first step: the job request, or the job this attempt already completed."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.batch import parse_transform_event, prepare_transform

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    unit = parse_transform_event(event)
    logger.append_keys(run_id=unit.event.run_id, unit=unit.event.unit)
    return prepare_transform(client("sagemaker"), unit)
