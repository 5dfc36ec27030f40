"""A run, deployment or batch that ran and failed: one line on stderr naming it, the failing unit, why, and where
its logs are (the tree on stdout has the details)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from sfn_mlops.job_failures import CUT_SHORT, meaningful_line, split_log_location

from sfn_mlops_local.cli_errors import EXIT_FAILED, command_name, line_for

# SageMaker's log group per job kind (a job's streams are <job name>/...); the units that are not jobs log to
# their Lambda function's group, which the Step Functions execution names.
_JOB_LOG_GROUPS = {"train": "/aws/sagemaker/TrainingJobs", "transform": "/aws/sagemaker/TransformJobs"}
_PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def _log_group(unit_name: str | None) -> str:
    return _JOB_LOG_GROUPS.get(str(unit_name), _PROCESSING_LOG_GROUP)


def where_the_logs_are(args: argparse.Namespace, summary: dict[str, Any], unit_name: str | None) -> str:
    """The failing unit's log: locally the job's file (else the service's log folder); on AWS the job's
    CloudWatch log stream (else the flow execution, whose history names the failing step)."""
    unit = next((u for u in summary.get("units", []) if u.get("name") == unit_name), None) or {}
    job = unit.get("job_name")
    if getattr(args, "stack", None):
        if job:
            return f"CloudWatch log group {_log_group(unit_name)}, streams {job}/*"
        execution = unit.get("worker_execution_arn") or summary.get("flow_execution_arn")
        return f"Step Functions execution {execution}" if execution else ""
    from sfn_mlops_local.local import client

    logs = client.default_state_dir() / "logs"
    job_log = logs / f"{job}.log" if job else None
    return str(job_log) if job_log is not None and job_log.is_file() else f"{logs}/"


_FAILED_JOB = re.compile(r"\b(?:Training|Processing|Transform) job (\S+) failed")


def last_logged_error(args: argparse.Namespace, summary: dict[str, Any], unit_name: str | None, cause: str) -> str:
    """The last error message in the failing job's own log ('' if none can be read): what a FailureReason cut at
    1,024 characters inside its traceback no longer holds. Locally the log file the cause names; on AWS the tail
    of the job's CloudWatch streams (the caller's own credentials; failing to read them only leaves this out)."""
    _, local_log = split_log_location(cause)
    if local_log and not getattr(args, "stack", None):
        from sfn_mlops_local.local.job_sandbox import log_tail

        return meaningful_line(log_tail(Path(local_log), lines=1000, limit=64 * 1024))
    named = _FAILED_JOB.search(cause)
    if not named or not getattr(args, "stack", None):
        return ""
    from botocore.exceptions import BotoCoreError, ClientError

    from sfn_mlops_local.model_cache import session

    group = _log_group(unit_name)
    try:
        logs = session(profile_name=args.profile, region_name=args.region).client("logs")
        prefix = f"{named.group(1)}/"
        streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)["logStreams"]
        text = "\n".join(
            event["message"]
            for stream in streams[:4]
            for event in logs.get_log_events(
                logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=False, limit=100
            )["events"]
        )
    except (BotoCoreError, ClientError):
        return ""
    return meaningful_line(text)


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
    raw_cause = str(error.get("cause") or "")
    cause = readable_cause(raw_cause)
    if error.get("error") or cause:
        problem += f": {error.get('error') or 'error'}: {cause}".rstrip(": ")
    # SageMaker keeps 1,024 characters of what the job wrote: a long traceback's message is cut or gone (the
    # cause then says so, or ends in the middle of it); the job's own log has it whole.
    if CUT_SHORT in cause or "..." in cause:
        logged = last_logged_error(args, summary, unit, raw_cause)
        if logged and logged not in cause:
            problem += f" (its log's last error: {logged})"
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
