"""A run, deployment or batch that ran and failed: one line on stderr naming it, the failing unit, why, and where
its logs are (the tree on stdout has the details)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sfn_mlops.job_failures import meaningful_line

from sfn_mlops_local.cli_errors import EXIT_FAILED, command_name, line_for

# SageMaker's log group per job kind (a job's streams are <job name>/...); the units that are not jobs log to
# their Lambda function's group, which the Step Functions execution names.
_JOB_LOG_GROUPS = {"train": "/aws/sagemaker/TrainingJobs", "transform": "/aws/sagemaker/TransformJobs"}
_PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def where_the_logs_are(args: argparse.Namespace, summary: dict[str, Any], unit_name: str | None) -> str:
    """The failing unit's log: locally the job's file (else the service's log folder); on AWS the job's
    CloudWatch log stream (else the flow execution, whose history names the failing step)."""
    unit = next((u for u in summary.get("units", []) if u.get("name") == unit_name), None) or {}
    job = unit.get("job_name")
    if getattr(args, "stack", None):
        if job:
            return f"CloudWatch log group {_JOB_LOG_GROUPS.get(str(unit_name), _PROCESSING_LOG_GROUP)}, streams {job}/*"
        execution = unit.get("worker_execution_arn") or summary.get("flow_execution_arn")
        return f"Step Functions execution {execution}" if execution else ""
    from sfn_mlops_local.local import client

    logs = client.default_state_dir() / "logs"
    job_log = logs / f"{job}.log" if job else None
    return str(job_log) if job_log is not None and job_log.is_file() else f"{logs}/"


def readable_cause(cause: str) -> str:
    """A cause that quotes a job's multi-line FailureReason (a traceback first, its exception last, as AWS and the
    local runtime report it) as its first line and its meaningful last line; a one-line cause as it is."""
    lines = [line for line in cause.splitlines() if line.strip()]
    if len(lines) < 2:
        return cause
    first, last = lines[0].strip(), meaningful_line("\n".join(lines[1:]))
    return first if last in first else f"{first} {last}"


def failure_line(args: argparse.Namespace, summary: dict[str, Any], noun: str = "run") -> str:
    """``mlops <command>: run <id> FAILED in <unit>: <error>: <cause> (logs: <where>)``."""
    error = summary.get("error") or {}
    unit = error.get("unit")
    run_id = summary.get("run_id") or summary.get("deployment_id") or "?"
    problem = f"{noun} {run_id} {summary.get('status') or 'FAILED'}" + (f" in {unit}" if unit else "")
    cause = readable_cause(str(error.get("cause") or ""))
    if error.get("error") or cause:
        problem += f": {error.get('error') or 'error'}: {cause}".rstrip(": ")
    logs = where_the_logs_are(args, summary, unit)
    if logs and logs.rstrip("/") not in cause:  # the job's own message may name its log already
        problem += f" (logs: {logs})"
    return line_for(command_name(args, []), problem)


def report_failed(args: argparse.Namespace, summary: dict[str, Any], noun: str = "run") -> int:
    """Print the failure line on stderr; the exit code of a run that failed."""
    print(failure_line(args, summary, noun), file=sys.stderr, flush=True)
    return EXIT_FAILED


def report_failed_run(args: argparse.Namespace, summary: dict[str, Any]) -> int:
    return report_failed(args, summary, "run")
