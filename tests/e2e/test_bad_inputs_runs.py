"""Bad overrides, bad events and concurrent commands (issue #10): refused naming the problem, nothing started or
registered by mistake, exactly one run per upload, and every other command still working afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.bad_inputs import SAMPLE, Outcome, Suite, module_suite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    with module_suite(tmp_path_factory, "runs") as made:
        yield made


@pytest.fixture(scope="module")
def victim(suite: Suite) -> dict[str, Any]:
    """A run the override cases rerun (not the known-good one: an override that got through would stay on it)."""
    outcome = suite.cli("run", "abalone", "--fail-at", "train")
    assert outcome.answer["status"] == "FAILED", outcome.stderr[-2000:]
    return outcome.answer


def refused_or_failed(suite: Suite, outcome: Outcome, *names: str) -> bool:
    """(a)+(b): refused before anything started, or a FAILED run naming the problem; True if it was refused."""
    if outcome.answer.get("status"):
        suite.failed_run(outcome, *names)
        return False
    suite.refused(outcome, *names)
    return True


# ---------------------------------------------------------------------------------------------------- overrides
BAD_OVERRIDES = [
    # (case id, the rerun's extra arguments, what the message must name); the ones a rerun might carry out go last
    pytest.param(("--set", "gate.threshold"), ("gate.threshold",), id="set-without-equals"),
    pytest.param(("--set", "register.approval_status=Approved"), ("register.approval_status",), id="set-locked-key"),
    pytest.param(("--set", "gate.threshold=NaN"), ("gate.threshold",), id="set-nan"),
    pytest.param(("--set", "train.hyperparameters.eta=1e999"), ("train.hyperparameters.eta",), id="set-infinity"),
    pytest.param(("--set", "train.hyperparameters.max_depth=deep"), ("max_depth",), id="set-wrong-type"),
    pytest.param(
        ("--unset", "train.hyperparameters.eta"),
        ("train.hyperparameters.eta", "not"),
        id="unset-not-carried",
    ),
    pytest.param(
        ("--set", "train.hyperparameters.max_dpeth=4"),
        ("max_dpeth",),
        id="set-mistyped-hyperparameter",
    ),
    pytest.param(
        ("--set", "train.compute.instance_type=ml.m5.huge"),
        ("ml.m5.huge",),
        id="set-bad-instance-type",
    ),
]


@pytest.mark.parametrize(("extra", "names"), BAD_OVERRIDES)
def test_a_bad_override_is_refused_naming_the_key_and_the_run_keeps_its_overrides(
    suite: Suite, victim: dict[str, Any], request: pytest.FixtureRequest, extra: tuple[str, ...], names: tuple[str, ...]
) -> None:
    suite.count(request, "overrides")
    # Given a run and what it carries
    before = suite.before()
    carried = suite.cli("status", victim["run_id"]).answer["overrides"]
    # When it is rerun with a bad override
    outcome = suite.cli("rerun", victim["run_id"], *extra)
    # Then the override is refused (or the run fails naming it), nothing is registered, the run keeps what it
    # carried when nothing started, and the other commands still work
    if refused_or_failed(suite, outcome, *names):
        assert suite.cli("status", victim["run_id"]).answer["overrides"] == carried
        assert not suite.new_runs(before)
    suite.nothing_left(before)
    suite.others_still_work(rerun=True)
    # A run that failed naming it carries it now (as any override): drop it, so that the next case starts clean
    stuck = sorted(set(suite.cli("status", victim["run_id"]).answer["overrides"]) - set(carried))
    if stuck:
        suite.cli("rerun", victim["run_id"], *[arg for key in stuck for arg in ("--unset", key)])


# ---------------------------------------------------------------------------------------------------- events
def trigger_answer(suite: Suite, event: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """Deliver ``event`` to the trigger function itself: (started, the message it gave, its whole answer)."""
    functions = suite.client("lambda").list_functions()["Functions"]
    [name] = [f["FunctionName"] for f in functions if f["FunctionName"].endswith("TriggerFunction")]
    response = suite.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    answer = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        return False, str(answer.get("errorType", "")) + ": " + str(answer.get("errorMessage", "")), answer
    return bool(answer.get("started")), str(answer.get("reason", "")), answer


def s3_event(bucket: str, key: str, version_id: str | None = None, source: str = "aws.s3") -> dict[str, Any]:
    from sfn_mlops_local.local.events import object_created_event

    event = object_created_event(bucket, key, {"ContentLength": 10, "ETag": "0" * 32, "VersionId": version_id}, "test")
    event["source"] = source
    return event


def _named(message: str, names: tuple[str, ...]) -> None:
    for name in names:  # "a|b": either is enough
        assert any(option.lower() in message.lower() for option in name.split("|")), f"{name!r} not in: {message}"


LONG_KEY = "data/abalone/" + "k" * (1000 - len("data/abalone/") - len(".csv")) + ".csv"

BAD_UPLOADS = [
    # (case id, the key uploaded, what the trigger's refusal must name)
    pytest.param(
        "data/abalone/../abalone/dots.csv",
        ("..",),
        id="key-with-dotdot",
    ),
    pytest.param("data/abalone/a#b.csv", ("#",), id="key-with-hash"),
    pytest.param(LONG_KEY, ("long|bytes|length",), id="key-of-1000-bytes"),
    pytest.param("data/abalone.csv", ("data/<pipeline>/|pipeline",), id="key-outside-pipeline-folder"),
]


@pytest.mark.parametrize(("key", "names"), BAD_UPLOADS)
def test_an_upload_under_a_bad_key_starts_no_run_and_the_trigger_says_why(
    suite: Suite, request: pytest.FixtureRequest, key: str, names: tuple[str, ...]
) -> None:
    suite.count(request, "events")
    before = suite.before()
    # Given a good dataset uploaded under a bad key (S3 sends its event to the rule and the trigger)
    put = suite.client("s3").put_object(Bucket=suite.bucket, Key=key, Body=SAMPLE.read_bytes())
    suite.idle()
    # Then no run started, and the trigger, given the same event, refuses it naming the problem
    assert not suite.new_runs(before), "a run started for a bad key"
    started, message, answer = trigger_answer(suite, s3_event(suite.bucket, key, put.get("VersionId")))
    assert not started, answer
    _named(message, names)
    suite.nothing_left(before)
    suite.others_still_work(rerun=True)


FOREIGN_EVENTS = [
    pytest.param(
        {"source": "my.app"},
        ("source|aws.s3",),
        id="event-from-another-source",
    ),
    pytest.param(
        {"bucket": "someone-elses-bucket"},
        ("someone-elses-bucket|bucket",),
        id="event-from-another-bucket",
    ),
]


@pytest.mark.parametrize(("change", "names"), FOREIGN_EVENTS)
def test_an_object_created_event_from_elsewhere_starts_no_run(
    suite: Suite, request: pytest.FixtureRequest, change: dict[str, str], names: tuple[str, ...]
) -> None:
    suite.count(request, "events")
    before = suite.before()
    # Given an existing dataset of the pipeline, announced by someone else's event (PutEvents, then straight
    # to the trigger as a rule that matched it would)
    key = "data/abalone/abalone.csv"
    event = s3_event(change.get("bucket", suite.bucket), key, None, change.get("source", "aws.s3"))
    entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}
    suite.client("events").put_events(Entries=[entry])
    suite.idle()
    assert not suite.new_runs(before)
    started, message, answer = trigger_answer(suite, event)
    # Then nothing starts and the trigger names what is wrong with the event
    assert not started, answer
    _named(message, names)
    suite.idle()
    assert not suite.new_runs(before)
    suite.nothing_left(before)
    suite.others_still_work(rerun=True)


def test_a_duplicate_delivery_of_one_upload_makes_exactly_one_run(suite: Suite, request: pytest.FixtureRequest) -> None:
    suite.count(request, "events")
    before = suite.before()
    # Given an upload whose run the trigger started
    key = f"data/abalone/dup-{uuid.uuid4().hex[:8]}.csv"
    put = suite.client("s3").put_object(Bucket=suite.bucket, Key=key, Body=SAMPLE.read_bytes())
    suite.idle()
    [first] = suite.new_runs(before)
    # When EventBridge delivers the same event again (at-least-once delivery)
    started, _, answer = trigger_answer(suite, s3_event(suite.bucket, key, put.get("VersionId")))
    suite.idle()
    # Then it is recognised as a duplicate of the same run and no second run starts
    assert not started and answer.get("duplicate") and answer.get("run_id") == first["run_id"], answer
    assert [r["run_id"] for r in suite.new_runs(before)] == [first["run_id"]]
    suite.others_still_work(rerun=True)


# ---------------------------------------------------------------------------------------------------- concurrency
def in_parallel(suite: Suite, *commands: tuple[str, ...]) -> list[Outcome]:
    """Start each ``mlops`` command as its own process at once (as two terminals would), wait for all."""
    environment = {**os.environ, "MLOPS_LOCAL_STATE": str(suite.cli.state)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "sfn_mlops_local.cli", *command, "--json"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outcomes = []
    for command, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=240)
        outcomes.append(Outcome(command, process.returncode, out, err))
    return outcomes


def test_two_reruns_of_one_run_at_once_one_runs_and_the_other_fails_fast_with_unit_already_running(
    suite: Suite, request: pytest.FixtureRequest
) -> None:
    suite.count(request, "concurrent commands")
    failed = suite.cli("run", "abalone", "--fail-at", "train").answer
    before = suite.before()
    # When two reruns of one failed run start at once
    outcomes = in_parallel(suite, ("rerun", failed["run_id"]), ("rerun", failed["run_id"]))
    # Then one carries the run on and the other fails naming the lock's holder; the run ends recorded, not RUNNING
    codes = sorted(o.code or 0 for o in outcomes)
    assert codes[0] == 0 and codes[1] != 0, [(o.code, o.stderr[-500:]) for o in outcomes]
    [loser] = [o for o in outcomes if o.code != 0]
    assert "UnitAlreadyRunning" in loser.stderr + loser.stdout, loser.stderr[-2000:]
    assert "Traceback" not in loser.stderr
    final = suite.cli("status", failed["run_id"]).answer
    assert final["status"] == "SUCCEEDED", final.get("error")
    assert len(suite.packages() - before.packages) <= 1
    suite.others_still_work(rerun=True)


def test_two_publishes_at_once_both_succeed_and_leave_a_whole_config(
    suite: Suite, request: pytest.FixtureRequest
) -> None:
    suite.count(request, "concurrent commands")
    # When `mlops publish abalone` runs twice at once
    outcomes = in_parallel(suite, ("publish", "abalone"), ("publish", "abalone"))
    # Then both answer (no traceback) and what is published is one whole, valid config
    assert [o.code for o in outcomes] == [0, 0], [o.stderr[-1000:] for o in outcomes]
    from sfn_mlops.pipeline import parse_pipeline_config

    body = suite.client("s3").get_object(Bucket=suite.bucket, Key="pipelines/abalone/pipeline.json")["Body"].read()
    assert parse_pipeline_config(body, source="published").name == "abalone"
    suite.others_still_work(rerun=True)


def test_a_run_beside_a_rerun_are_both_recorded(suite: Suite, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    suite.count(request, "concurrent commands")
    failed = suite.cli("run", "abalone", "--fail-at", "train").answer
    before = suite.before()
    data = tmp_path / "beside.csv"
    data.write_text("\n".join(SAMPLE.read_text().splitlines()[:1500]) + "\n")
    # When a new run and a rerun of another run go at once
    run, rerun = in_parallel(suite, ("run", "abalone", "--data", str(data)), ("rerun", failed["run_id"]))
    # Then both finish and both are recorded with their outcome
    assert run.code == 0 and rerun.code == 0, (run.stderr[-1000:], rerun.stderr[-1000:])
    new = {r["run_id"]: r["status"] for r in suite.new_runs(before)}
    assert new == {run.answer["run_id"]: run.answer["status"]}
    assert suite.cli("status", failed["run_id"]).answer["status"] == "SUCCEEDED"
    suite.others_still_work(rerun=True)
