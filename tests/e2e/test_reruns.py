"""Reruns, the cache and lineage through the CLI, each command a client of one local service."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, service_target

pytestmark = pytest.mark.e2e


def units(summary: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {u["name"]: (u["status"], u["attempt"]) for u in summary["units"]}


class Cli:
    """Runs ``mlops`` as a user would: every call is a client of the local service on one state folder."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.progress: dict[tuple[str, ...], str] = {}  # what each command showed while it ran (stderr)

    def __call__(self, *argv: str) -> tuple[int, dict[str, Any]]:
        from sfn_mlops_local.cli import main

        buffer, shown = io.StringIO(), io.StringIO()
        with redirect_stdout(buffer), redirect_stderr(shown):
            code = main([*argv, "--json"])
        self.progress[argv] = shown.getvalue()
        return code, json.loads(buffer.getvalue().strip().splitlines()[-1])

    def approval(self, model_package_arn: str) -> str:
        target, _ = service_target(self.state)
        described = target.sagemaker.describe_model_package(ModelPackageName=model_package_arn)
        return str(described["ModelApprovalStatus"])

    def model_packages(self, pipeline: str) -> list[str]:
        """The packages in the stack's group for the pipeline (<resource prefix>-<pipeline>)."""
        target, _ = service_target(self.state)
        groups = target.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
        [group] = [g["ModelPackageGroupName"] for g in groups if g["ModelPackageGroupName"].endswith(f"-{pipeline}")]
        listed = target.sagemaker.list_model_packages(ModelPackageGroupName=group)
        return [p["ModelPackageArn"] for p in listed["ModelPackageSummaryList"]]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    state = tmp_path_factory.mktemp("reruns") / "state"
    previous_dir = Path.cwd()
    os.environ["MLOPS_LOCAL_STATE"] = str(state)
    os.chdir(ROOT)
    try:
        yield Cli(state)
    finally:
        from sfn_mlops_local.local import client

        client.stop(state)
        del os.environ["MLOPS_LOCAL_STATE"]
        os.chdir(previous_dir)


@pytest.fixture(scope="module")
def failed_run(cli: Cli) -> dict[str, Any]:
    code, summary = cli("run", "abalone", "--fail-at", "train")
    assert code == 1
    return summary


@pytest.fixture(scope="module")
def resumed(cli: Cli, failed_run: dict[str, Any]) -> dict[str, Any]:
    code, summary = cli("rerun", failed_run["run_id"])
    assert code == 0, summary
    return summary


def test_run_with_fail_at_train_fails_in_train_after_preprocess(failed_run: dict[str, Any]) -> None:
    # Given `mlops run abalone --fail-at train`, Then the run fails in train with the injected error
    assert failed_run["status"] == "FAILED"
    assert units(failed_run) == {
        "preprocess": ("SUCCEEDED", 1),
        "train": ("FAILED", 1),
        "evaluate": ("NOT_STARTED", 0),
        "register": ("NOT_STARTED", 0),
    }
    assert failed_run["error"]["unit"] == "train" and failed_run["error"]["error"] == "InjectedFault"
    assert failed_run["model_package_arn"] is None


def test_plain_rerun_skips_what_succeeded_and_runs_the_rest(resumed: dict[str, Any]) -> None:
    # When `mlops rerun RUN_ID`, Then preprocess is skipped (attempt it succeeded in) and train is attempt 2
    assert resumed["status"] == "SUCCEEDED"
    assert units(resumed) == {
        "preprocess": ("SKIPPED", 1),
        "train": ("SUCCEEDED", 2),
        "evaluate": ("SUCCEEDED", 1),
        "register": ("SUCCEEDED", 1),
    }
    assert resumed["model_package_arn"] and 1.0 < resumed["metrics"]["rmse"] < 3.1
    assert resumed["error"] is None


def test_rerun_progress_shows_what_this_rerun_did_once_each(cli: Cli, resumed: dict[str, Any]) -> None:
    # Given the plain rerun of the failed run, Then its live progress reports this rerun's events only,
    # each once: preprocess skipped, train's attempt 2 (not attempt 1's failure), evaluate, register.
    events = [tuple(line.split("job flow > executor > worker", 1)[1].split()[:2]) for line in _progress(cli, resumed)]
    assert len(events) == len(set(events)), events
    # (a unit may finish between two polls, so RUNNING is shown when seen, always before its outcome)
    outcomes = [event for event in events if event[1] != "RUNNING"]
    assert outcomes == [
        ("preprocess", "SKIPPED"),
        ("train", "SUCCEEDED"),
        ("evaluate", "SUCCEEDED"),
        ("register", "SUCCEEDED"),
    ]
    for unit, status in events:
        if status == "RUNNING":
            assert events.index((unit, status)) < events.index((unit, "SUCCEEDED"))
    assert "(attempt 1's outputs reused)" in _progress(cli, resumed)[0]


def _progress(cli: Cli, summary: dict[str, Any]) -> list[str]:
    shown = cli.progress[("rerun", summary["run_id"])]
    return [line for line in shown.splitlines() if "job flow > executor > worker" in line]


def test_rerun_from_evaluate_runs_evaluate_and_register_and_keeps_the_package(
    cli: Cli, resumed: dict[str, Any]
) -> None:
    # When `mlops rerun RUN_ID --from evaluate`
    code, summary = cli("rerun", resumed["run_id"], "--from", "evaluate")
    # Then only evaluate and register run, and registration returns the same model package
    assert code == 0 and summary["status"] == "SUCCEEDED"
    assert units(summary) == {
        "preprocess": ("SKIPPED", 1),
        "train": ("SKIPPED", 2),
        "evaluate": ("SUCCEEDED", 2),
        "register": ("SUCCEEDED", 2),
    }
    assert summary["model_package_arn"] == resumed["model_package_arn"]
    assert summary["metrics"] == resumed["metrics"]
    assert cli.model_packages("abalone") == [resumed["model_package_arn"]]


def test_lineage_answers_both_directions_for_the_package(cli: Cli, resumed: dict[str, Any]) -> None:
    arn = resumed["model_package_arn"]
    # When the package's lineage is asked, Then it names the run and the exact dataset version
    code, model = cli("lineage", "model", arn)
    assert code == 0 and model["model_package_arn"] == arn and model["run_id"] == resumed["run_id"]
    dataset = resumed["dataset"]
    assert [(d["uri"], d["version"]) for d in model["datasets"]] == [(dataset["uri"], dataset["version"])]
    # When the dataset's lineage is asked, Then the run and the package are there
    code, lineage = cli("lineage", "dataset", dataset["uri"])
    assert code == 0
    assert resumed["run_id"] in [r["run_id"] for r in lineage["runs"]]
    assert arn in [p["model_package_arn"] for p in lineage["model_packages"]]


def test_set_reruns_only_units_whose_fingerprint_changes(cli: Cli, resumed: dict[str, Any]) -> None:
    run_id = resumed["run_id"]
    # When the quality gate's threshold is overridden, no unit's inputs change: nothing reruns, the gate rejects
    code, strict = cli("rerun", run_id, "--set", "gate.threshold=0.5")
    assert strict["status"] == "REJECTED" and code == 0 and strict["model_package_arn"] is None
    assert strict["metrics"]["rmse"] == strict["gate_verdict"]["value"]  # the metrics this execution's gate judged
    assert [u["status"] for u in strict["units"]] == ["SKIPPED", "SKIPPED", "SKIPPED", "STALE"]
    # and the package an earlier execution registered, which nobody had decided on, is rejected too
    assert cli.approval(resumed["model_package_arn"]) == "Rejected"
    # When a hyperparameter is overridden (and the gate restored), train and everything after it run again
    code, retuned = cli("rerun", run_id, "--set", "train.hyperparameters.max_depth=3", "--set", "gate.threshold=3.1")
    assert code == 0 and retuned["status"] == "SUCCEEDED"
    assert units(retuned)["preprocess"] == ("SKIPPED", 1)
    assert units(retuned)["train"] == ("SUCCEEDED", 3)
    assert units(retuned)["evaluate"][0] == "SUCCEEDED" and units(retuned)["register"][0] == "SUCCEEDED"
    assert retuned["overrides"] == {"gate.threshold": 3.1, "train.hyperparameters.max_depth": 3}
    assert retuned["model_package_arn"] != resumed["model_package_arn"]  # a different model, a new version
    # When the run is resumed plainly afterwards, the overrides stay and nothing runs
    code, again = cli("rerun", run_id)
    assert code == 0 and all(status == "SKIPPED" for status, _ in units(again).values())
    assert again["model_package_arn"] == retuned["model_package_arn"]


def test_only_reruns_one_unit_on_recorded_upstream_outputs(cli: Cli, resumed: dict[str, Any]) -> None:
    before = cli("status", resumed["run_id"])[1]
    # When `--only train`
    code, summary = cli("rerun", resumed["run_id"], "--only", "train")
    # Then train alone runs again; preprocess is reused and evaluate/register are left as recorded
    # (the run is PARTIAL: the units after train are not up to date with it until a plain rerun)
    assert code == 0 and summary["status"] == "PARTIAL"
    assert units(summary)["preprocess"] == ("SKIPPED", 1)
    assert units(summary)["train"] == ("SUCCEEDED", units(before)["train"][1] + 1)
    for unit in ("evaluate", "register"):  # not run: their records (and attempts) are as they were, out of date
        assert units(summary)[unit] == ("STALE", units(before)[unit][1])
    # and the package and metrics recorded are not the new model's: the run has none until it catches up
    assert summary["model_package_arn"] is None and summary["metrics"] is None
    # When it is then resumed plainly, Then evaluate and register catch up with the new train, and it is complete
    code, caught_up = cli("rerun", resumed["run_id"])
    assert code == 0 and caught_up["status"] == "SUCCEEDED"
    assert [units(caught_up)[u][0] for u in ("preprocess", "train", "evaluate", "register")] == [
        "SKIPPED",
        "SKIPPED",
        "SUCCEEDED",
        "SUCCEEDED",
    ]


def test_status_shows_each_units_executor_input_for_console_reruns(cli: Cli, resumed: dict[str, Any]) -> None:
    code, status = cli("status", resumed["run_id"])
    assert code == 0
    for unit in status["units"]:
        given = unit["executor_input"]
        assert given["run_id"] == resumed["run_id"] and given["unit"] == unit["name"]
        assert {"worker_arn", "inputs", "fingerprint", "policy", "cache", "lease_s"} <= set(given)
        assert given["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"].startswith("arn:aws:states:")
        console = {k: v for k, v in given.items() if k != "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"}
        assert unit["console_rerun_input"] == {**console, "policy": "force"}


def test_bad_rerun_requests_fail_before_anything_starts(cli: Cli, failed_run: dict[str, Any]) -> None:
    from sfn_mlops_local.cli import main

    run_id = failed_run["run_id"]
    for argv, message in [
        (["rerun", run_id, "--only", "deploy"], "unknown unit 'deploy'"),
        (["rerun", run_id, "--set", "train.nonsense.depth=3"], "has no 'train.nonsense'"),
        (["rerun", run_id, "--set", "gate.threshold=high"], "gate.threshold"),
        (["rerun", run_id, "--set", "name=other"], "cannot be overridden"),
        # approval is a person's act, and a pipeline's group is its own: no --set changes either
        (["rerun", run_id, "--set", "register.approval_status=Approved"], "approval is a person's act"),
        (["rerun", run_id, "--set", "register.model_package_group=other"], "the group cannot be overridden"),
        (["rerun", "abalone-20990101t000000-00000000"], "no run"),
    ]:
        with pytest.raises(SystemExit, match=message):
            main(argv)


def test_cache_reuses_preprocess_for_identical_bytes_only(cli: Cli, resumed: dict[str, Any], tmp_path: Path) -> None:
    # When the same bytes are uploaded again (a new object version), with preprocess's cache on
    code, second = cli("run", "abalone")
    # Then preprocess is CACHED from an earlier run and the rest runs
    assert code == 0 and second["status"] == "SUCCEEDED"
    preprocess = second["units"][0]
    assert preprocess["status"] == "CACHED" and preprocess["cached_from"]["run_id"] == resumed["run_id"]
    assert [u["status"] for u in second["units"][1:]] == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]
    # And the new model's lineage records the reuse
    code, lineage = cli("lineage", "model", second["model_package_arn"])
    assert lineage["run_id"] == second["run_id"]
    assert [(r["unit"], r["run_id"]) for r in lineage["reused"]] == [("preprocess", resumed["run_id"])]
    assert lineage["units"]["train"]["status"] == "SUCCEEDED" and lineage["units"]["train"]["attempt"] == 1
    # When that run is rerun from preprocess (its own preprocess now, so a new model and package)
    code, redone = cli("rerun", second["run_id"], "--from", "preprocess")
    assert code == 0 and redone["units"][0]["status"] == "SUCCEEDED"
    assert redone["model_package_arn"] != second["model_package_arn"]
    # Then the first model's lineage still says what it was made from: the reused preprocess
    code, still = cli("lineage", "model", second["model_package_arn"])
    assert [(r["unit"], r["run_id"]) for r in still["reused"]] == [("preprocess", resumed["run_id"])]
    assert still["units"] == lineage["units"]
    code, new = cli("lineage", "model", redone["model_package_arn"])
    assert new["reused"] == [] and new["units"]["train"]["attempt"] == 2
    # When the data is uploaded with one row changed
    rows = (ROOT / "models/abalone/data/abalone.csv").read_text().splitlines()
    rows[1] = rows[1].rsplit(",", 1)[0] + ",29"
    changed = tmp_path / "abalone.csv"
    changed.write_text("\n".join(rows) + "\n")
    code, third = cli("run", "abalone", "--data", str(changed))
    # Then preprocess runs
    assert code == 0 and third["units"][0]["status"] == "SUCCEEDED" and third["units"][0]["cached_from"] is None


def test_a_bad_rerun_started_from_the_console_fails_readably_at_planning(cli: Cli, resumed: dict[str, Any]) -> None:
    import json as _json

    from sfn_mlops_local import operations

    before = cli("status", resumed["run_id"])[1]
    # When the training flow is started by hand with the run's input and an impossible --only
    target, _ = service_target(cli.state)
    run_input = {
        "pipeline": "abalone",
        "run_id": resumed["run_id"],
        "dataset": {k: resumed["dataset"][k] for k in ("bucket", "key", "version_id")},
        "rerun": {"only": "deploy"},
    }
    arn = target.sfn.start_execution(
        stateMachineArn=target.training_flow_arn, name="console-bad-only", input=_json.dumps(run_input)
    )["executionArn"]
    summary = operations.follow_run(target, resumed["run_id"], arn, lambda _: None, timeout=120)
    # Then the run fails in planning with a readable cause, and no unit ran or changed
    assert summary["status"] == "FAILED"
    assert summary["error"]["unit"] == "plan" and summary["error"]["error"] == "InvalidRerun"
    assert summary["error"]["cause"].startswith("unknown unit 'deploy'"), summary["error"]  # the message, not JSON
    assert [u["attempt"] for u in summary["units"]] == [u["attempt"] for u in before["units"]]


def test_starting_the_executor_with_a_units_console_input_reruns_that_unit(cli: Cli, resumed: dict[str, Any]) -> None:
    import json as _json

    from tests.conftest import wait_until

    before = {u["name"]: u for u in cli("status", resumed["run_id"])[1]["units"]}
    given = before["evaluate"]["console_rerun_input"]
    # When the executor is started by hand (console "Start execution") with evaluate's console input
    target, info = service_target(cli.state)
    sfn = target.sfn
    arn = sfn.start_execution(
        stateMachineArn=info.resources["Executor"], name="console-evaluate", input=_json.dumps(given)
    )["executionArn"]
    done = wait_until(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, 120)
    # Then evaluate alone runs again, as its next attempt
    assert done["status"] == "SUCCEEDED", done.get("cause")
    output = _json.loads(done["output"])
    assert output["status"] == "SUCCEEDED" and output["attempt"] == before["evaluate"]["attempt"] + 1
    after = {u["name"]: u for u in cli("status", resumed["run_id"])[1]["units"]}
    assert after["evaluate"]["attempt"] == before["evaluate"]["attempt"] + 1
    assert after["train"]["attempt"] == before["train"]["attempt"]


def test_runs_lists_the_pipelines_runs_newest_first_with_their_latest_state(cli: Cli, resumed: dict[str, Any]) -> None:
    # Given a failed run that a rerun brought to success, and a newer run
    code, newer = cli("run", "abalone")
    assert code == 0
    # When the pipeline's runs are listed
    code, listed = cli("runs", "abalone")
    # Then the newest comes first, each with the state of its latest execution and its model package
    assert code == 0 and listed["pipeline"] == "abalone"
    ids = [r["run_id"] for r in listed["runs"]]
    assert ids.index(newer["run_id"]) < ids.index(resumed["run_id"])
    by_id = {r["run_id"]: r for r in listed["runs"]}
    _, latest = cli("status", resumed["run_id"])  # (earlier tests rerun it again, some on purpose badly)
    assert by_id[resumed["run_id"]]["status"] == latest["status"]
    assert by_id[resumed["run_id"]]["run_attempt"] == latest["run_attempt"] >= 2  # the failure, then reruns
    assert by_id[newer["run_id"]]["model_package_arn"] == newer["model_package_arn"]
    assert by_id[newer["run_id"]]["metrics"]["rmse"] == pytest.approx(newer["metrics"]["rmse"])


def test_a_run_that_failed_in_planning_is_listed_explained_and_can_be_rerun(cli: Cli) -> None:
    from sfn_mlops_local import operations

    # Given a published pipeline whose evaluation script has gone missing
    target, _ = service_target(cli.state)
    operations.publish_pipeline(target, ROOT / "models" / "abalone")
    target.s3.delete_object(Bucket=target.bucket, Key="pipelines/abalone/scripts/evaluate.py")
    # When a dataset is uploaded
    key, version = operations.upload_dataset(target, "abalone", ROOT / "models/abalone/data/abalone.csv")
    run_id, arn = operations.find_run_for_upload(target, key, version)
    failed = operations.follow_run(target, run_id, arn, lambda _: None, timeout=120)
    # Then the run fails in planning with the function's message as its cause (not Lambda's JSON payload)
    assert failed["status"] == "FAILED" and failed["error"]["unit"] == "plan"
    assert failed["error"]["error"] == "PipelineNotFound"
    assert failed["error"]["cause"].startswith("pipeline 'abalone' has no script s3://"), failed["error"]
    # And it is listed among the pipeline's runs
    listed = cli("runs", "abalone")[1]["runs"]
    assert [r["status"] for r in listed if r["run_id"] == run_id] == ["FAILED"]
    # And it has no units to rerun --from, but once the script is published again a plain rerun runs it all
    with pytest.raises(SystemExit, match="failed before it was planned, so it has no units yet"):
        cli("rerun", run_id, "--from", "train")
    assert cli("publish", "abalone")[0] == 0
    code, rerun = cli("rerun", run_id)
    assert code == 0 and rerun["status"] == "SUCCEEDED", rerun.get("error")
    assert rerun["model_package_arn"]


def test_an_override_can_be_undone_and_a_failed_rerun_shows_what_is_out_of_date(cli: Cli) -> None:
    from sfn_mlops_local.cli import LocalHandle, main
    from sfn_mlops_local.report import data

    # Given a run that registered a package
    code, first = cli("run", "abalone")
    assert code == 0 and first["status"] == "SUCCEEDED", first.get("error")
    run_id = first["run_id"]
    # When it is rerun with a bad --set (a non-finite value, a key the config does not have)
    for argv, message in [
        (["rerun", run_id, "--set", "gate.threshold=NaN"], "gate.threshold: NaN is not a finite number"),
        (["rerun", run_id, "--set", "train.hyperparameters.eta=-Infinity"], "-Infinity is not a finite number"),
        (["rerun", run_id, "--set", "train.nonsense.depth=3"], "has no 'train.nonsense'"),
        (["rerun", run_id, "--unset", "gate.threshold"], r"carries no such override \(its overrides: none\)"),
    ]:
        with pytest.raises(SystemExit, match=message):
            main(argv)
    # Then nothing started and nothing stuck to the run
    code, unchanged = cli("status", run_id)
    assert unchanged["overrides"] == {} and unchanged["run_attempt"] == first["run_attempt"]
    # When a rerun with an override fails mid-way (evaluate's work fails once, after train ran again)
    target, info = service_target(cli.state)
    LocalHandle(info).fail_unit("evaluate")
    code, failed = cli("rerun", run_id, "--set", "train.hyperparameters.max_depth=3")
    # Then status shows train redone, evaluate failed, register out of date, and no package or metrics
    assert code == 1 and failed["status"] == "FAILED"
    assert [u["status"] for u in failed["units"]] == ["SKIPPED", "SUCCEEDED", "FAILED", "STALE"]
    code, status = cli("status", run_id)
    assert [u["status"] for u in status["units"]] == ["SKIPPED", "SUCCEEDED", "FAILED", "STALE"]
    assert status["model_package_arn"] is None and status["metrics"] is None and status["gate_verdict"] is None
    assert status["overrides"] == {"train.hyperparameters.max_depth": 3}
    assert "train.hyperparameters.max_depth=3" in cli.progress[("status", run_id)]  # the human tree shows it
    # And so do `mlops runs` and the report's data
    listed = {r["run_id"]: r for r in cli("runs", "abalone")[1]["runs"]}
    assert listed[run_id]["status"] == "FAILED"
    assert listed[run_id]["model_package_arn"] is None and listed[run_id]["metrics"] is None
    report = data.gather(target, "abalone", run_id)
    (row,) = [r for r in report["runs"] if r["run_id"] == run_id]
    assert row["model_package_arn"] is None and row["metrics"] == {} and row["gate"]["decision"] is None
    timeline = {u["name"]: u for u in report["timeline"]["units"]}
    assert timeline["register"]["status"] == "STALE" and timeline["register"]["start_s"] is None
    # When the override is undone
    code, undone = cli("rerun", run_id, "--unset", "train.hyperparameters.max_depth")
    # Then the run is back to its own config, complete, with a package again
    assert code == 0 and undone["status"] == "SUCCEEDED", undone.get("error")
    assert undone["overrides"] == {} and undone["model_package_arn"] and undone["metrics"]["rmse"] > 0
    assert [u["status"] for u in undone["units"]][2:] == ["SUCCEEDED", "SUCCEEDED"]
