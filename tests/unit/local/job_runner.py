"""A local SageMaker job runner on a moto bucket, for the tests of the job runner's parts (limits and timeouts,
image environments, Spark jobs): one way to start it and to leave nothing running after a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3


@contextmanager
def local_job_runner(tmp_path: Path, bucket: str, idle_s: float = 30) -> Iterator[tuple[Any, Any]]:
    """(the runner, its S3 client) with ``bucket`` created; afterwards its jobs get ``idle_s`` to end, then any
    process still running is stopped."""
    from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "work").mkdir()
    runner = LocalJobRunner(lambda: s3, tmp_path / "work", tmp_path / "logs")
    try:
        yield runner, s3
    finally:
        runner.wait_idle(idle_s)
        runner.terminate_all()
