"""The local service as users meet it: separate `mlops` processes, the AWS CLI and boto3 as its clients.

Every command here is a real process (as a user's terminal runs it), so concurrency is real: two commands
at once, a killed service, a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, service_target, wait_until

pytestmark = pytest.mark.e2e

MLOPS = [sys.executable, "-m", "sfn_mlops_local.cli"]


class Terminal:
    """Runs `mlops` and `aws` as processes against one state folder (one local service)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.processes: list[subprocess.Popen[str]] = []
        self.env = {
            **os.environ,
            "MLOPS_LOCAL_STATE": str(state),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, *argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*MLOPS, *argv], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Stop commands a failed test left running (one could start a service after the test), then the service."""
        from sfn_mlops_local.local import client

        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
        client.stop(self.state)

    def mlops(self, *argv: str, timeout: float = 300) -> tuple[int, dict[str, Any], str]:
        """Exit code, the --json object (or {}), and stderr."""
        process = self.start(*argv, "--json")
        out, err = process.communicate(timeout=timeout)
        return process.returncode, _last_json(out), err

    @staticmethod
    def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, dict[str, Any], str]:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, _last_json(out), err

    def aws(self, *argv: str, endpoint: str) -> subprocess.CompletedProcess[str]:
        aws = str(Path(sys.executable).parent / "aws")
        return subprocess.run(
            [aws, "--endpoint-url", endpoint, *argv], env=self.env, capture_output=True, text=True, timeout=120
        )


def _last_json(out: str) -> dict[str, Any]:
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    state = tmp_path_factory.mktemp("service") / "state"
    terminal = Terminal(state)
    yield terminal
    terminal.close()


@pytest.fixture(scope="module")
def failed_run(terminal: Terminal) -> dict[str, Any]:
    code, summary, err = terminal.mlops("run", "abalone", "--fail-at", "train")
    assert code == 1 and summary["status"] == "FAILED", err
    return summary


def test_a_command_starts_the_service_once_and_says_so_in_one_line(terminal: Terminal) -> None:
    # Given a state folder with no service, When a read-only command runs
    code, listed, err = terminal.mlops("runs", "abalone")
    # Then it started the service (one line saying where) and answered
    assert code == 0 and listed == {"pipeline": "abalone", "runs": listed["runs"]}
    assert [line for line in err.splitlines() if "started the local service at http://127.0.0.1:" in line], err
    code, status, _ = terminal.mlops("local", "status")
    assert status["running"] is True and status["state_dir"] == str(terminal.state)
    # And the service listens on the loopback address only
    assert status["endpoint"].startswith("http://127.0.0.1:")
    # And its own routes refuse a request without the client header (a web page cannot stop it)
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(urllib.request.Request(f"{status['endpoint']}/_mlops/stop", data=b"{}"), timeout=10)
    # And the next command finds it running and says nothing about starting it
    code, _, err_again = terminal.mlops("runs", "abalone")
    assert "started the local service" not in err_again


def test_two_reruns_at_once_one_runs_the_unit_the_other_fails_fast_with_unit_already_running(
    terminal: Terminal, failed_run: dict[str, Any]
) -> None:
    run_id = failed_run["run_id"]
    # When two reruns of the failed run start at the same moment (two terminals)
    first, second = terminal.start("rerun", run_id, "--json"), terminal.start("rerun", run_id, "--json")
    results = [terminal.finish(first), terminal.finish(second)]
    # Then one ran train and succeeded, the other failed fast naming the holder
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(summary for code, summary, _ in results if code == 1)
    assert loser["error"]["error"] == "UnitAlreadyRunning", loser["error"]
    assert loser["error"]["unit"] == "train" and "already running in" in loser["error"]["cause"]
    # And afterwards the run reads SUCCEEDED with train trained exactly once more (attempt 2), nothing lost
    _, status, _ = terminal.mlops("status", run_id)
    assert status["status"] == "SUCCEEDED", status["error"]
    units = {u["name"]: u for u in status["units"]}
    assert units["train"]["attempt"] == 2 and units["preprocess"]["attempt"] == 1
    assert status["run_attempt"] == 3  # the failed run and both reruns are counted
    assert status["model_package_arn"]


def test_a_run_beside_a_rerun_of_another_run_are_both_recorded(terminal: Terminal, failed_run: dict[str, Any]) -> None:
    run_id = failed_run["run_id"]
    _, before, _ = terminal.mlops("status", run_id)
    # When a new run and a rerun --from evaluate of the other run go at the same time
    new = terminal.start("run", "abalone", "--json")
    rerun = terminal.start("rerun", run_id, "--from", "evaluate", "--json")
    (new_code, new_summary, new_err), (rerun_code, rerun_summary, rerun_err) = (
        terminal.finish(new),
        terminal.finish(rerun),
    )
    # Then both succeed and both are recorded
    assert new_code == 0 and new_summary["status"] == "SUCCEEDED", new_err
    assert rerun_code == 0 and rerun_summary["status"] == "SUCCEEDED", rerun_err
    _, listed, _ = terminal.mlops("runs", "abalone")
    by_id = {r["run_id"]: r for r in listed["runs"]}
    assert by_id[new_summary["run_id"]]["status"] == "SUCCEEDED"
    assert by_id[run_id]["run_attempt"] == before["run_attempt"] + 1
    _, status, _ = terminal.mlops("status", run_id)
    evaluate = {u["name"]: u for u in status["units"]}["evaluate"]
    assert evaluate["attempt"] == {u["name"]: u for u in before["units"]}["evaluate"]["attempt"] + 1


def test_stop_then_a_command_brings_back_every_run_package_and_lineage_record(terminal: Terminal) -> None:
    _, listed, _ = terminal.mlops("runs", "abalone")
    packaged = [r for r in listed["runs"] if r["model_package_arn"]]
    assert packaged
    _, lineage, _ = terminal.mlops("lineage", "model", packaged[0]["model_package_arn"])
    # When the service is stopped and a command runs
    code, _, _ = terminal.mlops("local", "stop")
    assert code == 0 and terminal.mlops("local", "status")[1]["running"] is False
    code, again, err = terminal.mlops("runs", "abalone")
    # Then the service started again and every run, package and lineage record is there
    assert code == 0 and "started the local service" in err
    assert again["runs"] == listed["runs"]
    assert terminal.mlops("lineage", "model", packaged[0]["model_package_arn"])[1] == lineage


def test_the_aws_cli_and_boto3_use_the_endpoint_and_an_upload_starts_a_run(terminal: Terminal, tmp_path: Path) -> None:
    target, info = service_target(terminal.state)
    # When the AWS CLI lists the state machines through the endpoint
    listed = terminal.aws("stepfunctions", "list-state-machines", endpoint=info.endpoint)
    assert listed.returncode == 0, listed.stderr
    names = {m["name"] for m in json.loads(listed.stdout)["stateMachines"]}
    assert {"sfn-mlops-local-TrainingFlow", "sfn-mlops-local-Executor"} <= names
    # And boto3 reads the table
    assert target.dynamodb.describe_table(TableName=target.table_name)["Table"]["TableStatus"] == "ACTIVE"
    # When the AWS CLI uploads a dataset under data/abalone/
    _, before, _ = terminal.mlops("runs", "abalone")
    data = tmp_path / "x.csv"
    data.write_bytes((ROOT / "models/abalone/data/abalone.csv").read_bytes())
    copied = terminal.aws("s3", "cp", str(data), f"s3://{target.bucket}/data/abalone/x.csv", endpoint=info.endpoint)
    assert copied.returncode == 0, copied.stderr
    # Then a run starts, which `mlops runs` lists, and it finishes
    known = {r["run_id"] for r in before["runs"]}

    def new_run() -> dict[str, Any] | None:
        runs = terminal.mlops("runs", "abalone")[1]["runs"]
        fresh = [r for r in runs if r["run_id"] not in known and r["dataset"]["uri"].endswith("/data/abalone/x.csv")]
        return fresh[0] if fresh and fresh[0]["status"] != "RUNNING" else None

    run = wait_until(new_run, timeout=300, interval=1)
    assert run["status"] == "SUCCEEDED"
    # And the AWS CLI lists its SageMaker jobs (run by the local job runner), newest first
    jobs = terminal.aws("sagemaker", "list-training-jobs", endpoint=info.endpoint)
    assert jobs.returncode == 0, jobs.stderr
    names = [j["TrainingJobName"] for j in json.loads(jobs.stdout)["TrainingJobSummaries"]]
    assert names and names[0].startswith(run["run_id"])


def test_a_function_invoked_through_the_endpoint_runs_its_own_code(terminal: Terminal) -> None:
    target, info = service_target(terminal.state)
    lambdas = target.client("lambda")
    # Given the stack's functions, listed by Lambda's API as on AWS
    listed = {f["FunctionName"]: f for f in lambdas.list_functions()["Functions"]}
    assert listed[info.resources["PlanRunFunction"]]["Handler"] == "app.lambda_handler"
    # When a function is invoked with an event it cannot parse (as `aws lambda invoke` would)
    answer = lambdas.invoke(FunctionName=info.resources["PlanRunFunction"], Payload=b"{}")
    # Then its own code answered, with Lambda's error shape
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] and error["errorMessage"]
    # And an asynchronous invocation is accepted at once
    assert lambdas.invoke(FunctionName=info.resources["PlanRunFunction"], InvocationType="Event")["StatusCode"] == 202
    # And a function the stack does not have is Lambda's ResourceNotFoundException, naming the qualifier
    with pytest.raises(lambdas.exceptions.ResourceNotFoundException, match=r"function:nope:live"):
        lambdas.invoke(FunctionName="nope", Qualifier="live")


def test_a_schedule_fires_while_the_service_runs_and_on_demand(terminal: Terminal) -> None:
    from datetime import UTC, datetime, timedelta

    target, _ = service_target(terminal.state)
    scheduler = target.client("scheduler")
    _, before, _ = terminal.mlops("runs", "abalone")
    known = {r["run_id"] for r in before["runs"]}
    # Given an enabled one-time schedule due in two seconds, targeting the trigger like the retrain schedule
    retrain = scheduler.get_schedule(Name="sfn-mlops-local-abalone-retrain")
    at = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    scheduler.create_schedule(
        Name="retrain-soon",
        ScheduleExpression=f"at({at})",
        State="ENABLED",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={key: retrain["Target"][key] for key in ("Arn", "RoleArn", "Input")},
    )

    # Then, with no command following anything, it fires and starts a retraining run on the newest data
    def scheduled_run() -> dict[str, Any] | None:
        """A new run, once it has finished (so that it is not still going when the next test starts)."""
        runs = terminal.mlops("runs", "abalone")[1]["runs"]
        new = next((r for r in runs if r["run_id"] not in known), None)
        return new if new and new["status"] != "RUNNING" else None

    fired = wait_until(scheduled_run, timeout=300, interval=1)
    assert fired["status"] == "SUCCEEDED"
    known.add(fired["run_id"])
    # When the (disabled) retrain schedule is fired by hand
    code, delivered, err = terminal.mlops("local", "fire", "sfn-mlops-local-abalone-retrain")
    # Then it is delivered with the scheduled time filled in, and starts a run of its own
    assert code == 0 and delivered["Ok"] is True, err
    assert "<aws.scheduler" not in delivered["Input"]
    assert wait_until(scheduled_run, timeout=300, interval=1)["status"] == "SUCCEEDED"


def test_ctrl_c_stops_following_not_the_run(terminal: Terminal) -> None:
    target, _ = service_target(terminal.state)
    # Given `mlops run` following a run it started, the moment it shows train running (its own progress line, read
    # as it is written: polling the table instead could see the unit late, after a short run had ended)
    follower = terminal.start("run", "abalone", "--json")
    assert follower.stderr is not None
    run_id = None
    for line in follower.stderr:  # progress goes to stderr, the summary to stdout
        if started := re.search(r"run (\S+) started", line):
            run_id = started.group(1)
        if " train " in line and "RUNNING" in line:
            break
    else:
        raise AssertionError("the follower ended without showing train running")
    assert run_id is not None
    # When the user presses Ctrl-C
    follower.send_signal(signal.SIGINT)
    code, _, err = Terminal.finish(follower)
    # Then the command stops with one line telling how to follow again, without a traceback
    assert code == 130 and "Traceback" not in err, err
    assert f"mlops status {run_id}" in err
    # And the run goes on to the end in the service
    finished = wait_until(lambda: (r := target.table.get_run(run_id)) and r["status"] != "RUNNING" and r, 300, 0.5)
    assert finished["status"] == "SUCCEEDED"


def test_a_killed_service_loses_only_the_in_flight_execution_and_says_so(terminal: Terminal) -> None:
    # Given a run in flight, in train
    assert terminal.mlops("publish", "abalone")[0] == 0
    follower = terminal.start("run", "abalone", "--json")
    pid = json.loads((terminal.state / "service.json").read_text())["pid"]
    target, _ = service_target(terminal.state)

    def run_in_train() -> str | None:
        runs = target.table.list_runs("abalone", limit=1)
        if not runs or runs[0].get("status") != "RUNNING":
            return None
        run = target.table.get_run(runs[0]["PK"].split("#", 1)[1])
        return run["PK"].split("#", 1)[1] if run and run["units"].get("train", {}).get("status") == "RUNNING" else None

    run_id = wait_until(run_in_train, timeout=300, interval=0.2)
    # (the service saves within 0.2 s of each execution ending; make sure this moment is the saved one)
    from sfn_mlops_local.local import client

    client.request(client.running(terminal.state), "POST", "save")  # type: ignore[arg-type]
    # When the service is killed (SIGKILL: no chance to save or clean up)
    os.kill(pid, signal.SIGKILL)
    code, _, err = Terminal.finish(follower)
    # Then the follower says what happened in one line (no traceback)
    assert code != 0 and "Traceback" not in err, err
    # And on the next command the service starts again and the run reads FAILED with a cause, not RUNNING
    code, status, _ = terminal.mlops("status", run_id)
    assert status["status"] == "FAILED"
    assert status["error"]["error"] == "LocalServiceInterrupted" and "killed" in status["error"]["cause"]
    units = {u["name"]: u for u in status["units"]}
    assert units["preprocess"]["status"] in ("SUCCEEDED", "CACHED")  # a completed execution is saved
    # (train's lock is saved with the client writes at most 2 s later: ABANDONED, or not started yet)
    assert units["train"]["status"] in ("ABANDONED", "NOT_STARTED")
    # And a plain rerun finishes it without redoing preprocess, train as its next attempt
    code, rerun, err = terminal.mlops("rerun", run_id)
    assert code == 0 and rerun["status"] == "SUCCEEDED", err
    attempts = {u["name"]: u["attempt"] for u in rerun["units"]}
    assert attempts["train"] == units["train"]["attempt"] + 1
    assert {u["name"]: u["status"] for u in rerun["units"]}["preprocess"] == "SKIPPED"


def test_an_acknowledged_upload_survives_a_kill_and_its_run_happens(terminal: Terminal, tmp_path: Path) -> None:
    assert terminal.mlops("publish", "abalone")[0] == 0
    target, info = service_target(terminal.state)
    data = tmp_path / "y.csv"
    data.write_bytes((ROOT / "models/abalone/data/abalone.csv").read_bytes())
    # When an upload is acknowledged and the service is killed at once
    copied = terminal.aws("s3", "cp", str(data), f"s3://{target.bucket}/data/abalone/y.csv", endpoint=info.endpoint)
    assert copied.returncode == 0, copied.stderr
    os.kill(info.pid, signal.SIGKILL)
    # Then after a restart the upload is there and its run happens (or, if it had started, reads interrupted)
    target, info = service_target(terminal.state)
    assert target.s3.head_object(Bucket=target.bucket, Key="data/abalone/y.csv")["ContentLength"] == data.stat().st_size

    def run_of_upload() -> dict[str, Any] | None:
        runs = terminal.mlops("runs", "abalone")[1]["runs"]
        mine = [r for r in runs if r["dataset"]["uri"].endswith("/data/abalone/y.csv") and r["status"] != "RUNNING"]
        return mine[0] if mine else None

    run = wait_until(run_of_upload, timeout=300, interval=1)
    if run["status"] == "FAILED":
        _, status, _ = terminal.mlops("status", run["run_id"])
        assert status["error"]["error"] == "LocalServiceInterrupted", status["error"]
    else:
        assert run["status"] == "SUCCEEDED"


def test_a_state_file_of_another_format_is_refused_in_one_line(tmp_path: Path) -> None:
    # Given a state folder whose state file another version wrote
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.pkl").write_bytes(b"not a state file")
    # When a command needs the service
    terminal = Terminal(state)
    process = terminal.start("runs", "abalone")
    _, err = process.communicate(timeout=300)
    terminal.close()
    # Then it fails with one readable line naming the folder, what it holds and the way out; nothing is overwritten
    assert process.returncode != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "state.pkl" in err and "not a local state folder made by sfn-mlops" in err and "MLOPS_LOCAL_STATE" in err
    assert (state / "state.pkl").read_bytes() == b"not a state file"
