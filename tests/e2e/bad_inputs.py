"""The bad-input suite's harness (issue #10): ``mlops`` run in-process against one local service per module, a
known-good run made once, and the checks every case makes: refused with a message naming the problem, nothing
registered or half-written, and every other command still working afterwards."""

from __future__ import annotations

import io
import json
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT, service_target, tally, wait_until

SUITE = "bad-input suite"
SAMPLE = ROOT / "models" / "abalone" / "data" / "abalone.csv"


def sample_lines(rows: int = 300) -> list[str]:
    """The header and the first ``rows`` rows of the abalone sample: enough for every split, quick to process."""
    return SAMPLE.read_text().splitlines()[: rows + 1]


@dataclass
class Outcome:
    """What one command did: its exit code (None: it crashed with a traceback), stdout and stderr."""

    argv: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str

    @property
    def answer(self) -> dict[str, Any]:
        """The --json object (the last stdout line), or {} when there is none."""
        lines = self.stdout.strip().splitlines()
        try:
            parsed = json.loads(lines[-1]) if lines else {}
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


class Cli:
    """Runs ``mlops`` as a user would, in-process: every call is a client of the module's local service."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def __call__(self, *argv: str, json_output: bool = True, cwd: Path | None = None) -> Outcome:
        from sfn_mlops_local.cli import main

        args = (*argv, "--json") if json_output else argv
        out, err = io.StringIO(), io.StringIO()
        code: int | None
        with redirect_stdout(out), redirect_stderr(err), _working_directory(cwd):
            try:
                code = main(list(args))
            except SystemExit as exc:  # what the interpreter does with it: a text goes to stderr, exit 1
                if isinstance(exc.code, str):
                    print(exc.code, file=err)
                code = 1 if isinstance(exc.code, str) else int(exc.code or 0)
            except Exception:  # a traceback is what a case must not see: keep it to show
                print(traceback.format_exc(), file=err)
                code = None
        return Outcome(tuple(args), code, out.getvalue(), err.getvalue())


@contextmanager
def _working_directory(cwd: Path | None) -> Iterator[None]:
    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(previous)


@dataclass
class Before:
    """What a case may not change: the pipeline group's packages and which runs exist."""

    packages: set[str]
    runs: set[str]
    contract: str | None  # the pinned data contract's ETag (None: none pinned)


@dataclass
class Suite:
    """One module's local service, its known-good run, and the checks each case makes."""

    cli: Cli
    kind: str
    good: dict[str, Any] = field(default_factory=dict)
    endpoint: str = ""

    # ------------------------------------------------------------------ clients of the local service
    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")  # type: ignore[call-overload]

    @property
    def bucket(self) -> str:
        return str(self.good["dataset"]["bucket"])

    def packages(self, pipeline: str = "abalone") -> set[str]:
        sagemaker = self.client("sagemaker")
        groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
        names = [g["ModelPackageGroupName"] for g in groups if g["ModelPackageGroupName"].endswith(f"-{pipeline}")]
        return {
            p["ModelPackageArn"]
            for name in names
            for p in sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
        }

    def runs(self, pipeline: str = "abalone") -> list[dict[str, Any]]:
        outcome = self.cli("runs", pipeline, "--limit", "100")
        assert outcome.code == 0, outcome.stderr
        return list(outcome.answer["runs"])

    def before(self) -> Before:
        return Before(self.packages(), {r["run_id"] for r in self.runs()}, self.pinned_contract())

    def pinned_contract(self, pipeline: str = "abalone") -> str | None:
        s3 = self.client("s3")
        try:
            return str(s3.head_object(Bucket=self.bucket, Key=f"pipelines/{pipeline}/contract.json")["ETag"])
        except s3.exceptions.ClientError:
            return None

    def new_runs(self, before: Before) -> list[dict[str, Any]]:
        return [r for r in self.runs() if r["run_id"] not in before.runs]

    def idle(self) -> None:
        """Wait until the service delivered every event and finished every execution it started."""
        from sfn_mlops_local.local import client

        _, info = service_target(self.cli.state)
        client.request(info, "POST", "idle", {"timeout": 120}, timeout=150)

    # ------------------------------------------------------------------ what every case asserts
    def count(self, request: pytest.FixtureRequest, kind: str) -> None:
        tally(request.config, SUITE, kind)

    @staticmethod
    def refused(outcome: Outcome, *names: str) -> str:
        """(a) a non-zero exit, no traceback, and (b) the message names each of ``names``; returns the message."""
        assert outcome.code is not None, f"{outcome.argv} crashed:\n{outcome.stderr}"
        assert outcome.code != 0, f"{outcome.argv} was accepted:\n{outcome.stdout[-2000:]}"
        assert "Traceback" not in outcome.stderr, outcome.stderr
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"{outcome.argv}: not one line:\n{outcome.stderr}"
        message = outcome.stderr.strip()
        for name in names:
            assert name.lower() in message.lower(), f"{name!r} not named in: {message}"
        return message

    @staticmethod
    def failed_run(outcome: Outcome, *names: str) -> dict[str, Any]:
        """(a) the command exits non-zero with a FAILED run and (b) the run's error, or the one line the command
        printed about it (which quotes the job log when SageMaker's 1,024-character FailureReason was cut before the
        message, as a long traceback's is), names each of ``names``."""
        assert outcome.code is not None, f"{outcome.argv} crashed:\n{outcome.stderr}"
        summary = outcome.answer
        assert summary.get("status") == "FAILED", f"{outcome.argv}: {summary.get('status')} {summary.get('error')}"
        assert outcome.code != 0
        error = summary.get("error") or {}
        message = f"{error.get('error')}: {error.get('cause')} | {outcome.stderr.strip().splitlines()[-1:]}"
        for name in names:
            assert name.lower() in message.lower(), f"{name!r} not named in: {message}"
        assert summary.get("model_package_arn") is None
        return summary

    def nothing_left(self, before: Before, dataset_uri: str | None = None) -> None:
        """(c) no new model package, no run left RUNNING, no package linked to the bad dataset."""
        assert self.packages() == before.packages, "a bad input registered a model package"
        assert self.pinned_contract() == before.contract, "a bad input changed the pinned data contract"
        wait_until(lambda: all(r["status"] != "RUNNING" for r in self.runs()), timeout=60, interval=0.2)
        if dataset_uri is not None:
            outcome = self.cli("lineage", "dataset", dataset_uri)
            assert outcome.code is not None, outcome.stderr
            assert not outcome.answer.get("model_packages"), outcome.answer

    def others_still_work(self, rerun: bool = False) -> None:
        """(d) runs, status, lineage and impact answer for the known-good run; with ``rerun``, so does a rerun."""
        good = self.good
        listed = self.cli("runs", "abalone")
        assert listed.code == 0 and good["run_id"] in [r["run_id"] for r in listed.answer["runs"]], listed.stderr
        status = self.cli("status", good["run_id"])
        assert status.code == 0 and status.answer["status"] == "SUCCEEDED", status.stderr
        lineage = self.cli("lineage", "model", good["model_package_arn"])
        assert lineage.code == 0 and lineage.answer["run_id"] == good["run_id"], lineage.stderr
        impact = self.cli("impact", good["dataset"]["uri"])
        assert impact.code == 0 and good["run_id"] in [r["run_id"] for r in impact.answer["runs"]], impact.stderr
        if rerun:
            again = self.cli("rerun", good["run_id"])
            assert again.code == 0, again.stderr[-2000:]
            assert {u["status"] for u in again.answer["units"]} == {"SKIPPED"}, again.answer["units"]
            assert again.answer["model_package_arn"] == good["model_package_arn"]


@contextmanager
def module_suite(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[Suite]:
    """One local service for the module, and the known-good run every case checks against."""
    state = tmp_path_factory.mktemp(f"bad-{kind}") / "state"
    previous_dir = Path.cwd()
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    os.chdir(ROOT)
    try:
        cli = Cli(state)
        _, info = service_target(state)
        good = cli("run", "abalone")
        assert good.code == 0 and good.answer["status"] == "SUCCEEDED", good.stderr[-3000:]
        yield Suite(cli, kind, good.answer, info.endpoint)
    finally:
        from sfn_mlops_local.local import client

        client.stop(state)
        del os.environ["MLOPS_LOCAL_STATE"]
        os.chdir(previous_dir)
