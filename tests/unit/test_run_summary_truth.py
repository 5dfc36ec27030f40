"""A run's summary tells its latest execution's truth (STALE units, no stale package or metrics), overrides can be
undone with --unset, and a non-finite number on an old record is read without breaking JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any

import boto3
import pytest

from tests.conftest import TABLE

RUN = "abalone-20261130t120000-0000000a"
ORDER = ["preprocess", "train", "evaluate", "register"]
DATASET = {"uri": "s3://b/data/abalone/abalone.csv", "bucket": "b", "key": "data/abalone/abalone.csv", "version": "v1"}
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/stack-abalone/1"
GATE = {"metric": "rmse", "threshold": 3.1, "direction": "minimize"}
VERDICT = {"passed": True, "value": 2.1, "reasons": ["rmse 2.1 beats the threshold 3.1"]}


class FakeStepFunctions:
    """What start_rerun asks of Step Functions: the executions it starts."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.started.append(kwargs)
        return {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:flow:{kwargs['name']}"}


@pytest.fixture
def target(table: str, published: str) -> Any:
    from sfn_mlops_local.operations import Target

    sfn = FakeStepFunctions()
    return Target.from_clients(
        lambda service: sfn if service == "stepfunctions" else boto3.client(service),
        bucket=published,
        table_name=TABLE,
        training_flow_arn="arn:aws:states:us-east-1:123456789012:stateMachine:flow",
        description="moto",
    )


def _unit(name: str, status: str, attempt: int, **fields: Any) -> None:
    from sfn_mlops.metadata import serialize

    item = {"PK": f"RUN#{RUN}", "SK": f"UNIT#{name}", "status": status, "attempt": attempt, **fields}
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=serialize(item))


def _finish(status: str, results: dict[str, Any], **fields: Any) -> None:
    """The run record as the training flow's Record run success/failure/rejection/partial states leave it."""
    from sfn_mlops.metadata import serialize

    sets = {"status": status, "unit_results": json.dumps(results), "finished_at": "2026-11-30T12:05:00Z", **fields}
    names = {f"#f{i}": key for i, key in enumerate(sets)}
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key=serialize({"PK": f"RUN#{RUN}", "SK": "RUN"}),
        UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(sets))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=serialize({f":v{i}": value for i, value in enumerate(sets.values())}),
    )


def _start(target: Any, overrides: dict[str, Any] | None = None) -> None:
    plan = {"run_id": RUN, "pipeline": "abalone", "dataset": DATASET, "order": ORDER, "gate": GATE}
    target.table.start_run({**plan, "overrides": overrides or {}}, "arn:aws:states:us-east-1:1:execution:flow:x")


def _succeeded_once(target: Any, overrides: dict[str, Any] | None = None) -> None:
    """A run whose first execution registered PACKAGE."""
    _start(target, overrides)
    for name in ORDER:
        _unit(name, "SUCCEEDED", 1)
    results = {name: {"status": "SUCCEEDED", "attempt": 1} for name in ORDER}
    _finish(
        "SUCCEEDED",
        results,
        metrics=json.dumps({"rmse": 2.1}),
        model_package_arn=PACKAGE,
        gate_verdict=json.dumps(VERDICT),
    )


def statuses(summary: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {u["name"]: (u["status"], u["attempt"]) for u in summary["units"]}


def test_a_failed_rerun_reads_stale_downstream_and_has_no_package_or_metrics(target: Any) -> None:
    from sfn_mlops_local import operations

    # Given a run that registered a package, then a rerun that ran train again and failed in it
    _succeeded_once(target)
    _start(target)
    _unit("train", "FAILED", 2, error="AlgorithmError", cause="boom")
    error = {"unit": "train", "error": "AlgorithmError", "cause": "boom"}
    _finish("FAILED", {"preprocess": {"status": "SKIPPED", "attempt": 1}}, error=json.dumps(error))
    # When its summary is read
    summary = operations.run_summary(target, RUN)
    # Then the units after the failure are out of date, and the old package and metrics are not the run's
    assert statuses(summary) == {
        "preprocess": ("SKIPPED", 1),
        "train": ("FAILED", 2),
        "evaluate": ("STALE", 1),
        "register": ("STALE", 1),
    }
    register = summary["units"][3]
    assert register["recorded_status"] == "SUCCEEDED" and register["duration_s"] is None
    assert summary["model_package_arn"] is None and summary["metrics"] is None
    assert summary["gate_verdict"] is None  # the verdict was an earlier execution's
    assert summary["error"] == error
    # And the pipeline's run list says the same
    (listed,) = operations.list_runs(target, "abalone")
    assert listed["status"] == "FAILED" and listed["model_package_arn"] is None and listed["metrics"] is None


def test_a_unit_that_never_succeeded_and_was_not_run_again_is_not_started() -> None:
    from sfn_mlops_local.operations import _unit_view

    # Given a unit whose only record is an earlier execution's failure, not run by the latest execution
    view = _unit_view("train", {"status": "FAILED", "attempt": 1, "error": "X", "cause": "old"}, None, not_run=True)
    # Then it reads NOT_STARTED, without the earlier execution's error
    assert (view["status"], view["recorded_status"], view["error"]) == ("NOT_STARTED", "FAILED", None)


def test_a_fully_skipped_rerun_that_passes_its_gate_keeps_the_package_it_reused(target: Any) -> None:
    from sfn_mlops_local import operations

    # Given a run that registered a package, and a plain rerun in which every unit was skipped
    _succeeded_once(target)
    _start(target)
    results = {name: {"status": "SKIPPED", "attempt": 1} for name in ORDER}
    _finish("SUCCEEDED", results, metrics=json.dumps({"rmse": 2.1}), model_package_arn=PACKAGE)
    # Then this execution's gate accepted the package (its registration reused as recorded): it is the run's
    summary = operations.run_summary(target, RUN)
    assert [u["status"] for u in summary["units"]] == ["SKIPPED"] * 4
    assert summary["model_package_arn"] == PACKAGE and summary["metrics"] == {"rmse": 2.1}


@pytest.mark.parametrize(
    ("status", "ran", "verdict"),
    [
        ("REJECTED", ["preprocess", "train", "evaluate"], {"passed": False, "value": 3.5, "reasons": ["no"]}),
        ("PARTIAL", ["preprocess", "train"], None),  # --only train
    ],
)
def test_a_rejected_or_partial_rerun_has_no_package_and_register_is_stale(
    target: Any, status: str, ran: list[str], verdict: dict[str, Any] | None
) -> None:
    from sfn_mlops_local import operations

    # Given a run that registered a package, then a rerun that ended before register
    _succeeded_once(target)
    _start(target)
    _unit("train", "SUCCEEDED", 2)
    results = {name: {"status": "SKIPPED" if name == "preprocess" else "SUCCEEDED"} for name in ran}
    # (Record rejection writes the verdict and the rejected model's metrics; Record partial run neither)
    judged = {"gate_verdict": json.dumps(verdict), "metrics": json.dumps({"rmse": 3.5})} if verdict else {}
    _finish(status, results, **judged)
    # Then register (and whatever else it did not reach) is out of date, and the run has no package
    summary = operations.run_summary(target, RUN)
    not_run = [u["name"] for u in summary["units"] if u["status"] == "STALE"]
    assert not_run == [name for name in ORDER if name not in ran]
    assert summary["model_package_arn"] is None
    # and the metrics and verdict are this execution's gate's, or none (never the earlier execution's rmse 2.1)
    assert summary["metrics"] == ({"rmse": 3.5} if status == "REJECTED" else None)
    assert summary["gate_verdict"] == (verdict if status == "REJECTED" else None)


def test_a_running_rerun_has_no_package_yet(target: Any) -> None:
    from sfn_mlops_local import operations

    # Given a run that registered a package, rerun and still running
    _succeeded_once(target)
    _start(target)
    # Then its package and metrics are not (yet) this execution's, and its units read as recorded so far
    summary = operations.run_summary(target, RUN)
    assert summary["status"] == "RUNNING" and summary["model_package_arn"] is None and summary["metrics"] is None
    assert [u["status"] for u in summary["units"]] == ["SUCCEEDED"] * 4


def test_non_finite_numbers_on_an_old_record_read_as_text_and_json_stays_valid(
    target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops_local import cli, operations

    # Given a run recorded before non-finite values were refused: an override, metrics and a verdict hold some
    _succeeded_once(target, overrides={"train.hyperparameters.eta": float("nan")})
    _finish(
        "SUCCEEDED",
        {name: {"status": "SUCCEEDED"} for name in ORDER},
        metrics='{"rmse": Infinity, "r2": -Infinity, "mae": NaN}',
        gate_verdict='{"passed": true, "value": NaN, "reasons": []}',
    )
    # When it is read
    summary = operations.run_summary(target, RUN)
    # Then the values read as text and the summary is valid JSON
    assert summary["overrides"] == {"train.hyperparameters.eta": "NaN"}
    assert summary["metrics"] == {"rmse": "Infinity", "r2": "-Infinity", "mae": "NaN"}
    json.dumps(summary, allow_nan=False)
    json.dumps(operations.list_runs(target, "abalone"), allow_nan=False)

    # And `mlops status` and `mlops runs` print it, their last line valid JSON
    @contextmanager
    def moto_target(_args: Any) -> Iterator[tuple[Any, None]]:
        yield target, None

    monkeypatch.setattr(cli, "target_for", moto_target)
    for argv in (["status", RUN, "--json"], ["status", RUN, "--json", "--full"], ["runs", "abalone", "--json"]):
        out, human = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(human):  # (--json: the human output goes to stderr)
            assert cli.main(argv) == 0
        last = out.getvalue().strip().splitlines()[-1]
        json.loads(last, parse_constant=lambda name, argv=argv: pytest.fail(f"{argv}: {name} in the JSON"))
        if argv[0] == "status":
            assert 'train.hyperparameters.eta="NaN"' in human.getvalue() and "rmse=Infinity" in human.getvalue()


def test_unset_drops_a_carried_override_before_the_rerun_starts(target: Any) -> None:
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations

    # Given a run carrying two overrides from earlier --set
    carried = {"train.hyperparameters.max_depth": 3, "gate.threshold": 3.0}
    _succeeded_once(target, overrides=carried)
    # When it is rerun with --unset of one of them
    operations.start_rerun(target, RUN, RerunOptions(), unset=("gate.threshold",))
    # Then the run's record keeps only the other, and the flow starts with no --unset to apply itself
    assert target.table.get_run(RUN)["overrides"] == {"train.hyperparameters.max_depth": 3}
    (started,) = target.sfn.started
    assert "rerun" not in json.loads(started["input"])


def test_unset_of_a_key_the_run_does_not_carry_lists_its_overrides_and_starts_nothing(target: Any) -> None:
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations

    _succeeded_once(target, overrides={"gate.threshold": 3.0})
    with pytest.raises(SystemExit, match=r"--unset gate\.treshold: run .* carries no such override \(its overrides: "):
        operations.start_rerun(target, RUN, RerunOptions(), unset=("gate.treshold",))
    with pytest.raises(SystemExit, match="use one or the other"):
        operations.start_rerun(target, RUN, RerunOptions(overrides={"gate.threshold": 2.0}), unset=("gate.threshold",))
    assert target.sfn.started == [] and target.table.get_run(RUN)["overrides"] == {"gate.threshold": 3.0}


def test_an_earlier_override_that_breaks_the_config_says_where_it_came_from(target: Any) -> None:
    from sfn_mlops.rerun import RerunOptions

    from sfn_mlops_local import operations

    # Given a run carrying an override recorded before such values were refused
    _succeeded_once(target, overrides={"preprocess.train_ratio": 0.95})
    # When it is rerun plainly, or with another --set
    for options in (RerunOptions(), RerunOptions(overrides={"train.hyperparameters.max_depth": 4})):
        with pytest.raises(SystemExit) as raised:
            operations.start_rerun(target, RUN, options)
        # Then nothing starts, and the message names the key, where it came from and how to remove it
        message = str(raised.value.code)
        assert "preprocess.train_ratio: from an earlier --set on run" in message, message
        assert f"mlops rerun {RUN} --unset preprocess.train_ratio" in message
    assert target.sfn.started == []
    # And a --set of a bad value is refused before it reaches the record
    with pytest.raises(SystemExit, match="must leave rows for the test split") as raised:
        operations.start_rerun(target, RUN, RerunOptions(overrides={"preprocess.validation_ratio": 0.5}))
    assert "--unset preprocess.validation_ratio" not in str(raised.value.code)
    assert target.table.get_run(RUN)["overrides"] == {"preprocess.train_ratio": 0.95}


def test_overrides_are_not_replaced_while_the_run_is_running(target: Any) -> None:
    # Given a run that is running (a rerun in flight records its own overrides)
    _start(target, overrides={"gate.threshold": 3.0})
    # Then an --unset's write is refused, as is one whose expected overrides are not the recorded ones
    assert target.table.replace_overrides(RUN, {}, expected={"gate.threshold": 3.0}) is False
    _finish("FAILED", {})
    assert target.table.replace_overrides(RUN, {}, expected={"gate.threshold": 2.0}) is False
    assert target.table.replace_overrides(RUN, {}, expected={"gate.threshold": 3.0}) is True
    assert target.table.get_run(RUN)["overrides"] == {}
