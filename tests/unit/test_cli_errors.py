"""``mlops`` errors as a person reads them (issue #10): every failure is one line on stderr naming the problem,
``mlops <command>: ...``, with a documented exit code (docs/cli.md); ``--debug`` adds the traceback; piped output
is never wrapped. In-process ``main([...])`` with the target faked where a case needs one, plus a few runs of the
installed ``mlops`` to show that no traceback reaches a terminal. No local service is started."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from sfn_mlops_local import cli, cli_errors, cli_failures, operations
from sfn_mlops_local.cli_output import UNWRAPPED_WIDTH, make_console
from tests.conftest import ROOT, tally

SUITE = "bad-input suite"
RUN_ID = "abalone-20261130t053625-cf182cb6"
PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sfn-mlops-local-abalone-with-a-long-name/12"
FLOW_ARN = f"arn:aws:states:us-east-1:123456789012:execution:sfn-mlops-local-TrainingFlow:{RUN_ID}"
MLOPS = ROOT / ".venv" / "bin" / "mlops"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def mlops(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """One command in-process, as the console script runs it: its exit code, stdout and stderr."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1  # a text: the interpreter prints it and exits 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    captured = capsys.readouterr()
    return Result(int(code), captured.out, captured.err)


def fake_target(description: str = "a fake target") -> SimpleNamespace:
    return SimpleNamespace(description=description, bucket="bucket", table_name="table", table=None)


def target_raising(exc: BaseException) -> Callable[[argparse.Namespace], Any]:
    @contextmanager
    def target_for(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
        raise exc
        yield  # pragma: no cover  # a generator, for contextmanager

    return target_for


def target_yielding(target: Any, runtime: Any = None) -> Callable[[argparse.Namespace], Any]:
    @contextmanager
    def target_for(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
        yield target, runtime

    return target_for


def raiser(exc: BaseException) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return call


def client_error(code: str, message: str, operation: str = "DescribeStacks") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No credentials anywhere botocore looks (environment, files, instance metadata): what a new user has."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    scrubbed = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in scrubbed.items():
        monkeypatch.setenv(name, value)
    return scrubbed


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Output as when piped (nothing forces a terminal), and a state folder of the test's own."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("MLOPS_LOCAL_STATE", str(tmp_path / "state"))


def publish_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlops run abalone`` gets past publishing without a target: the bundled sample is its dataset."""
    config = SimpleNamespace(data=SimpleNamespace(sample_file="data/abalone.csv"))
    monkeypatch.setattr(operations, "publish_pipeline", lambda target, folder: config)


@dataclass
class Case:
    name: str
    argv: tuple[str, ...]
    code: int
    names: str  # the problem as the line must name it (case-insensitive)
    arrange: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    command: str | None = None  # the command the line names, when it is not the first word of argv


def broken_pipeline_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "project" / "models" / "broken"
    folder.mkdir(parents=True)
    (folder / "pipeline.json").write_text('{"name": "broken",')
    monkeypatch.setattr(cli, "project_root", lambda: tmp_path / "project")
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target()))


def fault_in_unknown_unit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sfn_mlops_local.local.client import LocalServiceError

    refusal = LocalServiceError("unknown unit 'trian'; the units are preprocess, train, evaluate", status=400)
    publish_nothing(monkeypatch)
    runtime = SimpleNamespace(fail_unit=raiser(refusal))
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target(), runtime))


def missing_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    publish_nothing(monkeypatch)
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target()))


def failing_target(exc: BaseException) -> Callable[[pytest.MonkeyPatch, Path], None]:
    def arrange(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setattr(cli, "target_for", target_raising(exc))

    return arrange


def failing_call(name: str, exc: BaseException) -> Callable[[pytest.MonkeyPatch, Path], None]:
    def arrange(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setattr(cli, "target_for", target_yielding(fake_target()))
        monkeypatch.setattr(operations, name, raiser(exc))

    return arrange


def unit_held_elsewhere() -> BaseException:
    from sfn_mlops.errors import UnitAlreadyRunning

    return UnitAlreadyRunning("unit train of run x is held by another execution until 12:00:05")


def local_service_down() -> BaseException:
    from sfn_mlops_local.local.client import LocalServiceError

    return LocalServiceError("the local service did not start: address in use (log: state/logs/service.log)")


CASES = [
    # refused by argparse, before any call
    Case("pipeline name that is not one", ("run", "Abalone!"), 2, "not a pipeline name"),
    Case("pipeline name that is a path", ("publish", "../models/abalone"), 2, "not a pipeline name"),
    Case("limit that is not a number", ("runs", "--limit", "ten"), 2, "--limit"),
    Case("zero limit of deployments", ("deployments", "--limit", "0"), 2, "must be at least 1"),
    Case("negative limit of the report", ("report", "abalone", "--limit", "-1"), 2, "must be at least 1"),
    Case("port out of range", ("local", "serve", "--port", "70000"), 2, "not a port number"),
    Case("no command", (), 2, "required: command"),
    Case("unknown command", ("trian",), 2, "invalid choice: 'trian'", command=""),
    Case("approval without a reason", ("approve", PACKAGE_ARN), 2, "--reason"),
    Case("both --from and --only", ("rerun", RUN_ID, "--from", "train", "--only", "evaluate"), 2, "not allowed with"),
    Case("unknown lineage kind", ("lineage", "table", "x"), 2, "invalid choice: 'table'"),
    # refused by the command or by what it calls
    Case("bad pipeline.json", ("publish", "broken"), 2, "pipeline.json is not valid JSON", broken_pipeline_json),
    Case(
        "--fail-at an unknown unit", ("run", "abalone", "--fail-at", "trian"), 2, "unknown unit", fault_in_unknown_unit
    ),
    Case(
        "dataset that is not there", ("run", "abalone", "--data", "/no/such.csv"), 3, "does not exist", missing_dataset
    ),
    Case(
        "negative limit reaching the API",
        ("runs", "--limit", "-1"),
        2,
        "limit",
        failing_call("list_runs", ParamValidationError(report="Invalid value for parameter Limit, value: -1")),
    ),
    Case(
        "no such run",
        ("status", RUN_ID),
        3,
        f"no run '{RUN_ID}'",
        failing_call("run_summary", SystemExit(f"no run '{RUN_ID}' in t")),
    ),
    Case(
        "stack that does not exist",
        ("runs", "--stack", "nostack"),
        3,
        "Stack with id nostack does not exist",
        failing_target(client_error("ValidationError", "Stack with id nostack does not exist")),
    ),
    Case(
        "access denied",
        ("runs", "--stack", "prod"),
        4,
        "AccessDenied",
        failing_target(client_error("AccessDeniedException", "not authorized to perform: dynamodb:Query")),
    ),
    Case(
        "unit held by another execution",
        ("status",),
        4,
        "held by another execution",
        failing_target(unit_held_elsewhere()),
    ),
    Case(
        "AWS unreachable",
        ("runs", "--stack", "prod"),
        5,
        "AWS did not answer",
        failing_target(EndpointConnectionError(endpoint_url="https://cloudformation.us-east-1.amazonaws.com/")),
    ),
    Case("local service down", ("runs",), 5, "did not start", failing_target(local_service_down())),
    Case("missing file", ("runs",), 3, "no such file", failing_target(FileNotFoundError(2, "No such file", "x.csv"))),
    Case("Ctrl-C", ("runs",), 130, "interrupted", failing_target(KeyboardInterrupt())),
    Case(
        "a bug",
        ("runs",),
        1,
        "unexpected error: RuntimeError: boom (run with --debug",
        failing_target(RuntimeError("boom")),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_invocation_is_one_line_on_stderr_with_its_exit_code(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: Any
) -> None:
    tally(request.config, SUITE, "CLI invocations (in-process)")
    # Given what the case needs in place (a broken pipeline.json, a failing call...)
    if case.arrange:
        case.arrange(monkeypatch, tmp_path)
    # When the command runs
    result = mlops(capsys, *case.argv)
    # Then it exits with the documented code and says what is wrong in one line, naming the command
    assert result.code == case.code, result
    assert len(result.lines) == 1, result.stderr
    command = cli_errors.command_name(None, list(case.argv)) if case.command is None else case.command
    assert result.lines[0].startswith(f"mlops {command}: " if command else "mlops: "), result.lines
    assert case.names.lower() in result.lines[0].lower(), result.lines
    assert "Traceback" not in result.stderr + result.stdout


def test_no_aws_credentials_for_a_stack_is_one_line_naming_the_stack(
    capsys: pytest.CaptureFixture[str], no_aws_credentials: dict[str, str], request: Any
) -> None:
    tally(request.config, SUITE, "CLI invocations (in-process)")
    # Given no AWS credentials anywhere
    # When a command targets a stack
    result = mlops(capsys, "runs", "--stack", "mlops-prod", "--region", "us-east-1")
    # Then it says so in one line, with how to give them, and exits 5
    assert result.code == cli_errors.EXIT_UNREACHABLE
    assert result.lines == [
        "mlops runs: no usable AWS credentials (Unable to locate credentials); --stack mlops-prod needs AWS "
        "credentials: set AWS_PROFILE or pass --profile (see `aws configure`)"
    ]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_shows_the_traceback_then_the_line(
    where: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a command that fails with an unexpected error
    monkeypatch.setattr(cli, "target_for", target_raising(RuntimeError("boom")))
    # When it runs with --debug
    argv = ["--debug", "runs"] if where == "before" else ["runs", "--debug"]
    result = mlops(capsys, *argv)
    # Then the traceback is shown, and the last line is still the one-line error
    assert result.code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "raise exc" in result.stderr
    assert result.lines[-1] == "mlops runs: unexpected error: RuntimeError: boom"


def test_ctrl_c_while_following_a_run_says_how_to_follow_it_again(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run that starts, and Ctrl-C while it is followed
    publish_nothing(monkeypatch)
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target("local service")))
    monkeypatch.setattr(operations, "upload_dataset", lambda target, pipeline, data: ("data/abalone/x.csv", "v1"))
    monkeypatch.setattr(operations, "find_run_for_upload", lambda target, key, version: (RUN_ID, FLOW_ARN))
    monkeypatch.setattr(operations, "follow_run", raiser(KeyboardInterrupt()))
    # When the run is followed
    result = mlops(capsys, "run", "abalone")
    # Then the command stops with 130 and one line on stderr saying the run goes on and how to follow it
    assert result.code == cli_errors.EXIT_INTERRUPTED
    assert result.lines == [
        f"mlops run: stopped following run {RUN_ID}; it goes on (local service). Follow it again: mlops status {RUN_ID}"
    ]
    assert f"run {RUN_ID} started" in result.stdout


def failed_summary(cause: str = "AlgorithmError: ValueError: could not convert 'M' to float") -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "status": "FAILED",
        "flow_execution_arn": FLOW_ARN,
        "units": [{"name": "train", "status": "FAILED", "attempt": 1, "job_name": f"{RUN_ID}-train-a1"}],
        "error": {"unit": "train", "error": "JobFailed", "cause": cause},
    }


def test_a_failed_run_ends_with_one_line_naming_the_run_the_unit_and_its_local_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a run whose train job failed locally, and its job log
    log = tmp_path / "state" / "logs" / f"{RUN_ID}-train-a1.log"
    log.parent.mkdir(parents=True)
    log.write_text("Traceback ...\nValueError: could not convert 'M' to float\n")
    # When the command finishes with it
    code = cli._finish(argparse.Namespace(json=False, stack=None, command="run"), failed_summary())
    # Then it exits 1 with one line: the run, the unit, why, and the job's log file
    assert code == cli_errors.EXIT_FAILED
    assert capsys.readouterr().err.splitlines() == [
        f"mlops run: run {RUN_ID} FAILED in train: JobFailed: AlgorithmError: ValueError: could not convert 'M' "
        f"to float (logs: {log})"
    ]


def test_a_failed_run_on_a_stack_points_at_the_jobs_cloudwatch_streams() -> None:
    # Given a run of a stack whose train job failed, with a cause over several lines
    summary = failed_summary("AlgorithmError: last lines:\n  File x\nValueError: bad")
    # When its failure line is made
    line = cli_failures.failure_line(argparse.Namespace(stack="prod", command="rerun"), summary)
    # Then it is one line, the reason's first line and its exception (not the traceback's frames), naming the
    # job's log group and streams
    assert line == (
        f"mlops rerun: run {RUN_ID} FAILED in train: JobFailed: AlgorithmError: last lines: ValueError: bad "
        f"(logs: CloudWatch log group /aws/sagemaker/TrainingJobs, streams {RUN_ID}-train-a1/*)"
    )


def test_a_failure_whose_message_names_its_log_does_not_name_it_twice(tmp_path: Path) -> None:
    # Given a job failure whose cause already says where its log is
    log = tmp_path / "state" / "logs" / f"{RUN_ID}-train-a1.log"
    log.parent.mkdir(parents=True)
    log.write_text("boom\n")
    summary = failed_summary(f"AlgorithmError: boom (log: {log})")
    # When its failure line is made
    line = cli_failures.failure_line(argparse.Namespace(stack=None, command="run"), summary)
    # Then the log is named once
    assert line.count(str(log)) == 1


# Piped output: no ARN or run id split across lines


def test_a_console_that_is_not_a_terminal_never_wraps(capsys: pytest.CaptureFixture[str]) -> None:
    # Given stdout that is not a terminal (captured, as when piped)
    console = make_console()
    # Then the console is as wide as it can be, and a long line stays one line
    assert not console.is_terminal and console.width == UNWRAPPED_WIDTH
    console.print(f"model package {PACKAGE_ARN} " * 4)
    assert len(capsys.readouterr().out.splitlines()) == 1


def long_run_summary() -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "pipeline": "abalone",
        "status": "SUCCEEDED",
        "kind": "training",
        "flow_execution_arn": FLOW_ARN,
        "units": [
            {
                "name": name,
                "status": "SUCCEEDED",
                "attempt": 1,
                "duration_s": 1.5,
                "executor_execution_arn": f"{FLOW_ARN}-{name}-executor",
                "worker_execution_arn": f"{FLOW_ARN}-{name}-worker-with-a-long-suffix",
                "job_name": f"{RUN_ID}-{name}-a1",
            }
            for name in ("preprocess", "train", "evaluate", "register")
        ],
        "metrics": {"validation:rmse": 2.1234},
        "gate_verdict": {"passed": True, "reasons": [f"validation:rmse 2.12 <= 2.5 for {PACKAGE_ARN}"]},
        "model_package_arn": PACKAGE_ARN,
    }


def assert_whole(output: str, *values: str) -> None:
    for value in values:
        assert any(value in line for line in output.splitlines()), f"{value} is split across lines:\n{output}"


def test_piped_status_keeps_every_arn_and_run_id_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run whose tree holds long ARNs
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target()))
    monkeypatch.setattr(operations, "run_summary", lambda target, run_id: long_run_summary())
    # When its status is printed to a pipe
    result = mlops(capsys, "status", RUN_ID)
    # Then no ARN or run id is cut
    assert result.code == 0, result
    assert_whole(
        result.stdout, PACKAGE_ARN, FLOW_ARN, f"{RUN_ID}-train-a1", f"{FLOW_ARN}-train-worker-with-a-long-suffix"[-60:]
    )


def test_piped_runs_table_keeps_run_ids_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given runs with long ids
    runs = [
        {
            "run_id": f"{RUN_ID}{i}",
            "kind": "training",
            "status": "SUCCEEDED",
            "started_at": "2026-11-30T05:36:25Z",
            "run_attempt": 1,
            "metrics": {"validation:rmse": 2.1},
            "gate": {"metric": "validation:rmse"},
            "model_package_arn": PACKAGE_ARN,
        }
        for i in range(3)
    ]
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target()))
    monkeypatch.setattr(operations, "list_runs", lambda target, pipeline, limit: runs)
    # When the table is printed to a pipe
    result = mlops(capsys, "runs")
    # Then each run's row is one line with its whole id
    assert result.code == 0, result
    for run in runs:
        assert_whole(result.stdout, f"{run['run_id']}  training  SUCCEEDED")


def test_piped_lineage_and_deployments_keep_arns_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sfn_mlops.lineage

    from sfn_mlops_local import deployments

    # Given a model's lineage and a pipeline's deployments with long ARNs and ids
    dataset_uri = "s3://sfn-mlops-local-artifactbucket/data/abalone/abalone-long-name.csv"
    answer: dict[str, Any] = {
        "run_id": RUN_ID,
        "runs": [{"run_id": RUN_ID, "version": "v" * 40, "status": "SUCCEEDED"}],
        "datasets": [{"uri": dataset_uri, "version": "x"}],
        "model_packages": [{"model_package_arn": PACKAGE_ARN, "run_id": RUN_ID, "version": 12}],
    }
    monkeypatch.setattr(cli, "target_for", target_yielding(fake_target()))
    monkeypatch.setattr(sfn_mlops.lineage, "model_lineage", lambda table, ref: answer)
    found = [
        {
            "deployment_id": f"deploy-{RUN_ID}-staging",
            "stage": "staging",
            "action": "deploy",
            "status": "SUCCEEDED",
            "model_package_arn": PACKAGE_ARN,
            "strategy": "CANARY",
            "started_at": "2026-11-30T05:36:25Z",
        }
    ]
    monkeypatch.setattr(deployments, "list_deployments", lambda target, pipeline, limit: found)
    # When they are printed to a pipe
    lineage = mlops(capsys, "lineage", "model", PACKAGE_ARN)
    listed = mlops(capsys, "deployments")
    # Then no ARN, URI or id is cut
    assert lineage.code == 0 and listed.code == 0, (lineage, listed)
    assert_whole(lineage.stdout, f"model package {PACKAGE_ARN}: run {RUN_ID}", dataset_uri)
    assert_whole(listed.stdout, f"deploy-{RUN_ID}-staging")


# The installed command, as a terminal runs it


def run_installed(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MLOPS), *argv], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False
    )


@pytest.fixture
def user_env(no_aws_credentials: dict[str, str], tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**keep, **no_aws_credentials, "MLOPS_LOCAL_STATE": str(tmp_path / "state")}


@pytest.mark.parametrize(
    ("argv", "code", "line"),
    [
        (("run", "Abalone"), 2, "mlops run: argument pipeline: 'Abalone' is not a pipeline name"),
        (("runs", "--stack", "mlops-prod", "--region", "us-east-1"), 5, "mlops runs: no usable AWS credentials"),
        (("deployments", "--limit", "-3"), 2, "mlops deployments: argument --limit: must be at least 1, not -3"),
    ],
)
def test_the_installed_command_prints_one_line_and_no_traceback(
    argv: tuple[str, ...], code: int, line: str, user_env: dict[str, str]
) -> None:
    # When `mlops` runs as a person would run it
    finished = run_installed(*argv, env=user_env)
    # Then its exit code is the documented one and stderr is one line
    assert finished.returncode == code, finished.stderr
    assert [text for text in finished.stderr.splitlines() if text.strip()] == [finished.stderr.strip()]
    assert finished.stderr.startswith(line), finished.stderr
    assert "Traceback" not in finished.stderr + finished.stdout


def test_the_installed_command_shows_the_traceback_with_debug(user_env: dict[str, str]) -> None:
    # When a failing command runs with --debug after the subcommand
    finished = run_installed("runs", "--stack", "mlops-prod", "--region", "us-east-1", "--debug", env=user_env)
    # Then the traceback comes first and the one-line error last
    assert finished.returncode == 5
    assert "Traceback (most recent call last):" in finished.stderr
    assert "NoCredentialsError" in finished.stderr
    assert finished.stderr.strip().splitlines()[-1].startswith("mlops runs: no usable AWS credentials")


def test_a_reader_that_stops_reading_ends_the_command_quietly_with_141(user_env: dict[str, str]) -> None:
    # Given stdout a pipe whose reader has gone (`mlops local status | head -0`)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        # When a command writes to it
        finished = subprocess.run(
            [str(MLOPS), "local", "status"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=user_env,
            timeout=60,
        )
    finally:
        os.close(write_end)
    # Then it ends quietly with the code a shell gives a SIGPIPE, not 1 (a failed command) nor a traceback
    assert finished.returncode == cli_errors.EXIT_BROKEN_PIPE
    assert finished.stderr == ""
