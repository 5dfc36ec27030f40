"""Names that must be unique and valid: run ids, SageMaker job names, S3 prefixes."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

# SageMaker job names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PIPELINE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
RUN_ID = re.compile(r"^[a-z][a-z0-9-]{0,23}-\d{8}t\d{6}-[0-9a-f]{8}$")
UNIT_CODES = {"preprocess": "prep", "train": "train", "evaluate": "eval", "register": "reg"}
# The training units that run a SageMaker job of their own (jobs.BUILDERS builds their requests). Here, apart from
# jobs.py, so a read-only command can tell them without importing the request builders and their models.
JOB_UNITS = frozenset({"preprocess", "train", "evaluate"})


def make_run_id(pipeline: str, started: datetime, identity: str) -> str:
    """A run id that is the same for every delivery of one trigger (dedup) and sorts by time."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"{pipeline}-{started.strftime('%Y%m%dt%H%M%S')}-{digest}"


def is_run_id(value: str) -> bool:
    return bool(RUN_ID.match(value))


def job_name(run_id: str, unit: str, attempt: int) -> str:
    """Unique per run, unit and attempt, so a rerun never collides with an earlier job."""
    name = f"{run_id}-{UNIT_CODES.get(unit, unit[:5])}-a{attempt}"
    if len(name) > 63 or not JOB_NAME.match(name):
        raise ValueError(f"job name {name!r} is not a valid SageMaker job name")
    return name


def unit_prefix(runs_prefix: str, pipeline: str, run_id: str, unit: str, attempt: int) -> str:
    return f"{runs_prefix}{pipeline}/{run_id}/{unit}/a{attempt}/"
