"""The local service's state file and its recovery of work a stopped or killed service left in flight."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import TABLE


def test_a_saved_state_reads_back_with_its_stamp(tmp_path: Path) -> None:
    from sfn_mlops_local.local.state import dump_state, load_state

    # Given a state saved by this version
    dump_state(tmp_path / "state.pkl", "5.2.5", {"s3": b"blob"}, {"jobs": {}})
    # When it is loaded by the same version, Then it reads back whole
    saved = load_state(tmp_path / "state.pkl", "5.2.5")
    assert saved is not None and saved["backends"] == {"s3": b"blob"} and saved["jobs"] == {}
    # And no temporary file is left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["state.pkl"]


@pytest.fixture(autouse=True)
def signing_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state-signing key of the test's own, outside the folders it checks (never the user's config)."""
    key = tmp_path_factory.mktemp("key") / "local-state.key"
    monkeypatch.setenv("MLOPS_LOCAL_STATE_KEY", str(key))
    return key


def _stamped(version: int = 4, moto: str = "5.2.5", payload: bytes = b"") -> bytes:
    from sfn_mlops_local.local.state import MAGIC

    header = {"format": "sfn-mlops-local-state", "version": version, "moto": moto, "hmac": "0" * 64}
    return MAGIC + json.dumps(header).encode() + b"\n" + payload


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a pickle", "is not a local state file of this version"),
        (pickle.dumps({"format": "sfn-mlops-local-state", "version": 3, "moto": "5.2.5"}), "is not a local state"),
        (b"sfn-mlops-local-state\n{not json\n", "its header is damaged"),
        (_stamped(version=1), "state format 1"),
        (_stamped(moto="5.0.0"), "with moto 5.0.0"),
    ],
)
def test_a_state_file_of_another_kind_or_version_is_refused_naming_the_way_out(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    from sfn_mlops_local.local.state import StateFormatError, load_state

    # Given a state file of another kind, an older format or another moto
    (tmp_path / "state.pkl").write_bytes(content)
    # When it is loaded, Then it is refused in one line that names the way out
    with pytest.raises(StateFormatError, match=expected) as refused:
        load_state(tmp_path / "state.pkl", "5.2.5")
    assert "mlops local reset" in str(refused.value) and "\n" not in str(refused.value)


class _RunsCodeWhenUnpickled:
    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.proof), "w"))


def test_a_state_file_this_user_did_not_sign_is_never_unpickled(tmp_path: Path, signing_key: Path) -> None:
    from sfn_mlops_local.local.state import StateFormatError, dump_state, load_state

    # Given a state file in the right format whose pickle would run code, signed with someone else's key
    proof = tmp_path / "code-ran"
    dump_state(tmp_path / "state.pkl", "5.2.5", {}, {"jobs": _RunsCodeWhenUnpickled(proof)})
    signer = signing_key.read_bytes()
    signing_key.write_bytes(b"k" * 32)  # this user's key is another one
    # When the service loads it, Then it is refused naming why, and its pickle never ran
    with pytest.raises(StateFormatError, match="not written by your local service") as refused:
        load_state(tmp_path / "state.pkl", "5.2.5")
    assert not proof.exists() and "\n" not in str(refused.value)
    # And only the signature stood in its way: with the signer's key it loads (and its code runs)
    signing_key.write_bytes(signer)
    load_state(tmp_path / "state.pkl", "5.2.5")
    assert proof.exists()


def test_the_signing_key_is_made_once_readable_by_the_user_only(signing_key: Path) -> None:
    from sfn_mlops_local.local.state import signing_key as key_of_this_user

    # Given no key yet, When it is needed twice, Then it is made once, 32 random bytes, mode 0600
    first, second = key_of_this_user(), key_of_this_user()
    assert first == second and len(first) == 32
    assert signing_key.stat().st_mode & 0o777 == 0o600


def test_a_folder_the_service_did_not_make_is_refused_and_nothing_in_it_is_loaded(tmp_path: Path) -> None:
    from sfn_mlops_local.local.runtime import LocalRuntime
    from sfn_mlops_local.local.state import StateFormatError
    from tests.conftest import ROOT

    # Given a project someone prepared: a .mlops-local with a state file but no marker of the service's
    folder = tmp_path / ".mlops-local"
    folder.mkdir()
    proof = tmp_path / "code-ran"
    (folder / "state.pkl").write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(proof)))
    # When the runtime starts on it, Then it is refused in one line naming the folder, and nothing was loaded
    with pytest.raises(StateFormatError, match="is not a local state folder made by sfn-mlops") as refused:
        LocalRuntime(root=ROOT, state_dir=folder, persist=True).start()
    assert str(folder) in str(refused.value) and "state.pkl" in str(refused.value)
    assert "\n" not in str(refused.value) and not proof.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["state.pkl"]  # nothing written into it


def test_local_serve_on_a_foreign_folder_exits_with_one_line(tmp_path: Path) -> None:
    from sfn_mlops_local.cli import main

    # Given a folder of someone's files, When `mlops local serve --state-dir` points at it
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exited:
        main(["local", "serve", "--state-dir", str(tmp_path)])
    # Then the service refuses it in one line, and leaves no lock or marker behind
    message = str(exited.value.code)
    assert message.startswith("mlops") and "not a local state folder" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_new_or_freshly_started_folder_is_taken_and_marked(tmp_path: Path) -> None:
    from sfn_mlops_local.local.state import MARKER_FILE, claim_state_folder, is_state_folder

    # Given a folder where a client only started the service's log, and one that does not exist
    started = tmp_path / "started"
    (started / "logs").mkdir(parents=True)
    (started / "logs" / "service.log").write_text("starting\n")
    # When the service takes them, Then both are marked as its state folder
    for folder in (started, tmp_path / "new"):
        claim_state_folder(folder)
        assert (folder / MARKER_FILE).is_file() and is_state_folder(folder)
    # And a folder with other files is not one (reset must not remove it)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("x")
    assert not is_state_folder(tmp_path / "other")


def test_reset_refuses_to_remove_a_folder_the_service_did_not_make(tmp_path: Path) -> None:
    from sfn_mlops_local.local.runtime import LocalRuntime
    from sfn_mlops_local.local.state import StateFormatError
    from tests.conftest import ROOT

    # Given MLOPS_LOCAL_STATE pointing at a folder of the user's
    (tmp_path / "thesis.tex").write_text("years of work")
    # When the runtime is reset, Then it refuses and the folder is untouched
    with pytest.raises(StateFormatError, match="not removed"):
        LocalRuntime(root=ROOT, state_dir=tmp_path, persist=True).reset()
    assert (tmp_path / "thesis.tex").exists()


def _put(item: dict[str, Any]) -> None:
    from sfn_mlops.metadata import serialize

    boto3.client("dynamodb").put_item(TableName=TABLE, Item=serialize(item))


def test_work_in_flight_at_a_restart_is_marked_interrupted_once(table: str) -> None:
    from sfn_mlops_local.local.recovery import mark_interrupted_work
    from sfn_mlops_local.operations import Target

    # Given a run that was RUNNING in train (its preprocess done) and an older run that finished
    _put({"PK": "RUN#r1", "SK": "RUN", "status": "RUNNING", "pipeline": "abalone"})
    _put({"PK": "RUN#r1", "SK": "UNIT#preprocess", "status": "SUCCEEDED", "attempt": 1})
    _put({"PK": "RUN#r1", "SK": "UNIT#train", "status": "RUNNING", "attempt": 2})
    _put({"PK": "RUN#r0", "SK": "RUN", "status": "SUCCEEDED", "pipeline": "abalone"})
    target = Target.from_clients(boto3.client, "bucket", TABLE, "arn:flow", "test")
    # When the service restarts after a kill
    marked = mark_interrupted_work(target, stopped_cleanly=False)
    # Then the run reads FAILED with a cause naming the unit and the way on, and the unit ABANDONED
    assert sorted((m["run_id"], m["unit"] or "", m["status"]) for m in marked) == [
        ("r1", "", "FAILED"),
        ("r1", "train", "ABANDONED"),
    ]
    run = target.table.get_run("r1")
    assert run is not None and run["status"] == "FAILED"
    assert run["error"]["error"] == "LocalServiceInterrupted" and run["error"]["unit"] == "train"
    assert "killed" in run["error"]["cause"] and "mlops rerun r1" in run["error"]["cause"]
    train = run["units"]["train"]
    assert train["status"] == "ABANDONED" and train["error"] == "LocalServiceInterrupted"
    assert run["units"]["preprocess"]["status"] == "SUCCEEDED"
    assert target.table.get_run("r0")["status"] == "SUCCEEDED"  # type: ignore[index]
    # And a second restart finds nothing left to mark
    assert mark_interrupted_work(target, stopped_cleanly=True) == []


def test_a_job_running_when_the_service_stopped_comes_back_failed(tmp_path: Path) -> None:
    from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner

    runner = LocalJobRunner(lambda: None, tmp_path, tmp_path)
    interrupted = runner.restore({"a": {"status": "InProgress"}, "b": {"status": "Completed"}})
    assert interrupted == ["a"]
    assert runner.jobs["a"]["status"] == "Failed" and "stopped" in runner.jobs["a"]["failure_reason"]
    assert runner.jobs["b"]["status"] == "Completed"
    assert json.loads(json.dumps(runner.snapshot(), default=str))["b"] == {"status": "Completed"}


def test_the_console_rerun_policy_is_the_planners_force() -> None:
    from sfn_mlops.rerun import FORCE

    from sfn_mlops_local import operations

    assert operations.FORCE == FORCE


@pytest.mark.parametrize(
    ("method", "target", "read"),
    [
        ("GET", "", True),
        ("HEAD", "", True),
        ("POST", "DynamoDB_20120810.Query", True),
        ("POST", "AWSStepFunctions.DescribeExecution", True),
        ("POST", "SageMaker.ListModelPackages", True),
        ("POST", "DynamoDB_20120810.UpdateItem", False),
        ("POST", "AWSStepFunctions.StartExecution", False),
        ("PUT", "", False),
        ("DELETE", "", False),
    ],
)
def test_only_requests_that_can_change_state_make_the_service_save(method: str, target: str, read: bool) -> None:
    from sfn_mlops_local.local.service import _is_read

    assert _is_read({"REQUEST_METHOD": method, "HTTP_X_AMZ_TARGET": target}) is read
