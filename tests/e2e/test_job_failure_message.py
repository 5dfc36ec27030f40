"""A failing job script, seen through the CLI: `mlops status` quotes its exception and says where its log is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, service_target, wait_until

pytestmark = pytest.mark.e2e

RAISING_SCRIPT = b"""import sys
print("loading the dataset", flush=True)
raise RuntimeError("preprocess exploded on row 17")
"""


@pytest.fixture
def state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("e2e-job-failure") / "state"
    monkeypatch.setenv("MLOPS_LOCAL_STATE", str(state))
    monkeypatch.chdir(ROOT)
    yield state
    from sfn_mlops_local.local import client

    client.stop(state)


def test_a_preprocess_script_that_raises_shows_its_exception_and_log_file_in_status(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfn_mlops_local import operations
    from sfn_mlops_local.cli import main

    # Given the abalone pipeline published, then its preprocess script replaced by one that raises
    assert main(["publish", "abalone"]) == 0
    target, _ = service_target(state)
    target.s3.put_object(Bucket=target.bucket, Key="pipelines/abalone/scripts/preprocess.py", Body=RAISING_SCRIPT)
    # When a dataset lands and its run ends
    data = tmp_path / "abalone-raising.csv"
    data.write_bytes((ROOT / "models/abalone/data/abalone.csv").read_bytes())
    key, version = operations.upload_dataset(target, "abalone", data)
    run_id, _ = operations.find_run_for_upload(target, key, version)
    wait_until(
        lambda: (
            target.table.get_run(run_id) is not None
            and operations.run_summary(target, run_id)["status"] not in ("RUNNING", "PENDING")
        ),
        timeout=120,
    )
    capsys.readouterr()
    main(["status", run_id, "--json"])  # its exit code is the CLI's concern; the cause is this test's
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Then the run failed in preprocess, and its cause quotes the exception line and names the job's log file
    assert status["status"] == "FAILED" and status["error"]["unit"] == "preprocess"
    cause = status["error"]["cause"]
    assert "RuntimeError: preprocess exploded on row 17" in cause
    log_file = Path(cause.rsplit("; log file: ", 1)[1])
    assert log_file.is_file() and log_file.is_relative_to(state)
    assert "preprocess exploded on row 17" in log_file.read_text()
