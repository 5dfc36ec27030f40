"""Build the SageMaker job request for a unit (unique name per run, unit and attempt), or adopt its completed job."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sfn_mlops.aws import client
from sfn_mlops.jobs import parse_job_event, prepare_job

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job = parse_job_event(event)
    logger.append_keys(run_id=job.run_id, unit=job.unit)
    prepared = prepare_job(client("sagemaker"), job)
    # Adoptions count redriven or re-executed attempts whose SageMaker job had already completed.
    metrics.add_metric(
        name="JobsAdopted" if prepared.get("adopted") else "JobsRequested", unit=MetricUnit.Count, value=1
    )
    return prepared
