"""`mlops contract show/update`: the contract in force, and a person replacing a pinned one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sfn_mlops.contract import DataContract, pin_contract, read_pinned

from sfn_mlops_local import cli
from sfn_mlops_local.cli_errors import BadArgument, Refused
from sfn_mlops_local.operations import Target
from tests.conftest import BUCKET, ROOT, TABLE

ABALONE = json.loads((ROOT / "models/abalone/pipeline.json").read_text())


@pytest.fixture
def target(bucket: str, monkeypatch: pytest.MonkeyPatch) -> Target:
    """The commands' target on moto, with abalone published WITHOUT a declared contract."""
    config = json.loads(json.dumps(ABALONE))
    config["data"] = {"label": "rings", "categorical": {"sex": ["M", "F", "I"]}}
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="pipelines/abalone/pipeline.json", Body=json.dumps(config).encode())
    made = Target(boto3.client, BUCKET, TABLE, "arn:aws:states:us-east-1:123456789012:stateMachine:f", "test")

    @contextlib.contextmanager
    def target_for(_args: Any) -> Iterator[tuple[Target, None]]:
        yield made, None

    monkeypatch.setattr(cli, "target_for", target_for)
    return made


def mlops(*argv: str) -> int:
    args = cli.parser().parse_args(list(argv))
    return int(args.handler(args, cli.make_console(stderr=True)))


def test_show_says_when_no_contract_is_pinned_yet(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    assert mlops("contract", "show", "abalone", "--json") == 0
    view = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert view["contract"] is None and view["where"].endswith("pipelines/abalone/contract.json")


def test_update_from_a_file_replaces_the_pinned_contract(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a contract pinned by a run
    contract = DataContract.model_validate(ABALONE["data"]["contract"])
    pin_contract(target.s3, BUCKET, "abalone", contract, run_id="abalone-run")
    # When a person updates it from a file (the shape `contract show --json` prints)
    edited = contract.model_dump(mode="json")
    edited["features"][1]["max"] = 2.0
    path = tmp_path / "contract.json"
    path.write_text(json.dumps({"contract": edited}))
    assert mlops("contract", "update", "abalone", "--file", str(path)) == 0
    # Then later runs read the new one, and show names its source
    pinned = read_pinned(target.s3, BUCKET, "abalone")
    assert pinned is not None and pinned["source"] == "user" and pinned["contract"]["features"][1]["max"] == 2.0
    capsys.readouterr()
    assert mlops("contract", "show", "abalone", "--json") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["source"] == "user"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"features": [{"name": "a", "max": NaN}], "label": {"name": "rings"}}', "NaN is not a number JSON allows"),
        ('{"features": [{"name": "a"}], "label": {"name": "age"}}', "label 'age' is not the pipeline's 'rings'"),
        ("not json", "is not valid JSON"),
    ],
)
def test_a_bad_contract_file_is_refused_in_one_line(target: Target, tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(BadArgument, match=problem):
        mlops("contract", "update", "abalone", "--file", str(path))
    # And nothing was pinned
    assert read_pinned(target.s3, BUCKET, "abalone") is None


def test_update_from_a_run_infers_the_contract_from_its_validated_data(target: Target) -> None:
    # Given a run's validated dataset snapshot with an extra 'batch' column
    lines = (ROOT / "models/abalone/data/abalone.csv").read_text().splitlines()[:50]
    body = "\n".join([lines[0] + ",batch"] + [f"{line},b{i % 3}" for i, line in enumerate(lines[1:])])
    target.s3.put_object(Bucket=BUCKET, Key="runs/abalone/abalone-r1/input/x.csv", Body=body.encode())
    # When the contract is updated from that run
    assert mlops("contract", "update", "abalone", "--from-run", "abalone-r1") == 0
    # Then the pinned contract has the run's columns, with the declared categories
    pinned = read_pinned(target.s3, BUCKET, "abalone")
    assert pinned is not None and pinned["run_id"] == "abalone-r1"
    contract = DataContract.model_validate(pinned["contract"])
    assert contract.categorical == {"sex": ["M", "F", "I"], "batch": ["b0", "b1", "b2"]}


def test_a_declared_contract_cannot_be_updated_from_the_cli(target: Target, tmp_path: Path) -> None:
    target.s3.put_object(Bucket=BUCKET, Key="pipelines/abalone/pipeline.json", Body=json.dumps(ABALONE).encode())
    path = tmp_path / "c.json"
    path.write_text(json.dumps(ABALONE["data"]["contract"]))
    with pytest.raises(Refused, match=r"declared in its pipeline\.json"):
        mlops("contract", "update", "abalone", "--file", str(path))
