"""A job's script run from the tests as the local job runner runs it: forked by its image environment's warm server,
with that environment's packages and nothing of the project on its path (docs/decisions/0023-image-environments.md)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.unit.local.model_fixtures import XGBOOST_IMAGE

__all__ = ["XGBOOST_IMAGE", "Ran", "run_in_image"]


@dataclass
class Ran:
    returncode: int
    log: str  # what the script printed, stdout and stderr as one stream (a job's log holds both)


def run_in_image(
    image_uri: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Ran:
    """``python argv...`` in ``image_uri``'s environment, in ``workdir``; its exit code and its log. A job still
    running after ``timeout`` seconds is killed (and the test fails on the timeout)."""
    from sfn_mlops_local.local import image_environments, job_process, job_sandbox

    spec = image_environments.spec_for(image_uri)
    server = job_process.image_server(image_environments.ensure(spec), list(spec.preload))
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "job.log"
    job = server.start(argv, {**job_sandbox.job_environment(workdir / "sandbox"), **(env or {})}, workdir, log, None)
    try:
        code = job.wait(timeout)
    except subprocess.TimeoutExpired:
        job.kill()
        raise
    return Ran(code, log.read_text(errors="replace") if log.exists() else "")
