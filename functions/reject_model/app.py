"""Quality gate, rejection path: an undecided package an earlier execution of the run registered is rejected."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.events import RejectEvent, parse_event
from sfn_mlops.registry import reject_superseded_package

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(RejectEvent, event, "reject input")
    logger.append_keys(run_id=request.run_id, unit="gate")
    result = reject_superseded_package(client("sagemaker"), request)
    name = "ModelPackagesRejectedByGate" if result["changed"] else "ModelPackagesKeptAsDecided"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return result
