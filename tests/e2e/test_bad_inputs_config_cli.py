"""Bad pipeline.json files and bad CLI arguments (issue #10): each is refused with one line naming the problem,
writes nothing, and leaves every other command working."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tests.conftest import ROOT
from tests.e2e.bad_inputs import Suite, module_suite

pytestmark = pytest.mark.e2e

_SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


def _enum(shape: str) -> set[str]:
    return set(_SAGEMAKER.shape_for(shape).enum)  # type: ignore[attr-defined]  # a StringShape


# SageMaker's own lists (botocore's service model): a type only training jobs take, one only endpoints take
TRAINING_ONLY = sorted(_enum("TrainingInstanceType") - _enum("ProcessingInstanceType"))[0]
ENDPOINT_ONLY = sorted(_enum("ProductionVariantInstanceType") - _enum("TrainingInstanceType"))[0]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    with module_suite(tmp_path_factory, "config-cli") as made:
        yield made


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project beside the repository's: its template and state machines, and a models/ folder of our own."""
    root = tmp_path_factory.mktemp("project")
    for name in ("template.yaml", "statemachines"):
        (root / name).symlink_to(ROOT / name)
    (root / "models").mkdir()
    return root


def pipeline_folder(project: Path, name: str, text: str) -> None:
    folder = project / "models" / name
    folder.mkdir()
    for name_in_folder in ("scripts", "data"):
        (folder / name_in_folder).symlink_to(ROOT / "models" / "abalone" / name_in_folder)
    (folder / "pipeline.json").write_text(text)


def edited(change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def make(name: str) -> str:
        config = json.loads((ROOT / "models" / "abalone" / "pipeline.json").read_text())
        config["name"] = name
        change(config)
        return json.dumps(config, indent=2)

    return make


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _without(section: str) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.pop(section)


def _text_edit(old: str, new: str) -> Callable[[str], str]:
    return lambda name: edited(lambda _: None)(name).replace(old, new)


BAD_CONFIGS = [
    # (case id = pipeline name, the pipeline.json text for that name, what the refusal must name)
    pytest.param(lambda name: edited(lambda _: None)(name)[:-20], ("pipeline.json", "json"), id="cfg-broken-json"),
    pytest.param(edited(lambda c: c.update(trian=c["train"])), ("trian",), id="cfg-unknown-key"),
    pytest.param(edited(_set("preprocess.train_ratio", "high")), ("train_ratio",), id="cfg-wrong-type"),
    pytest.param(edited(_without("data")), ("data",), id="cfg-missing-section"),
    pytest.param(
        edited(_set("train.compute.instance_type", "ml.m5.huge")),
        ("ml.m5.huge",),
        id="cfg-unknown-instance",
    ),
    pytest.param(
        edited(_set("preprocess.compute.instance_type", TRAINING_ONLY)),
        (TRAINING_ONLY, "preprocess"),
        id="cfg-train-type-in-prep",
    ),
    pytest.param(
        edited(_set("train.compute.instance_type", ENDPOINT_ONLY)),
        (ENDPOINT_ONLY, "train"),
        id="cfg-infer-type-in-train",
    ),
    pytest.param(_text_edit('"threshold": 3.1', '"threshold": NaN'), ("NaN",), id="cfg-nan-number"),
    pytest.param(
        edited(_set("gate.metric", "accuracy")),
        ("accuracy",),
        id="cfg-bad-gate-metric",
    ),
    pytest.param(
        edited(_set("train.hyperparameters.objective", "reg:nonsense")),
        ("reg:nonsense",),
        id="cfg-unknown-objective",
    ),
    pytest.param(edited(_set("train.compute.instance_count", 0)), ("instance_count",), id="cfg-zero-instances"),
]


@pytest.mark.parametrize(("config_text", "names"), BAD_CONFIGS)
def test_a_bad_pipeline_json_is_refused_naming_the_field_and_publishes_nothing(
    suite: Suite,
    project: Path,
    request: pytest.FixtureRequest,
    config_text: Callable[[str], str],
    names: tuple[str, ...],
) -> None:
    suite.count(request, "pipeline.json")
    name = request.node.callspec.id
    # Given a pipeline folder whose pipeline.json has one thing wrong
    pipeline_folder(project, name, config_text(name))
    before = suite.before()
    # When it is published
    outcome = suite.cli("publish", name, cwd=project)
    # Then it is refused naming the problem, nothing of it is uploaded, and the other commands still work
    suite.refused(outcome, *names)
    listed = suite.client("s3").list_objects_v2(Bucket=suite.bucket, Prefix=f"pipelines/{name}/")
    assert listed.get("KeyCount", 0) == 0, [o["Key"] for o in listed.get("Contents", [])]
    suite.nothing_left(before)
    suite.others_still_work(rerun=True)


UNKNOWN_RUN = "abalone-20990101t000000-00000000"

BAD_ARGUMENTS = [
    # (case id, the arguments given the suite, what the refusal must name, whether it touched run state)
    pytest.param(lambda s: ("run", "nosuch"), ("nosuch",), False, id="unknown-pipeline"),
    pytest.param(lambda s: ("status", UNKNOWN_RUN), (UNKNOWN_RUN,), False, id="status-unknown-run"),
    pytest.param(lambda s: ("rerun", UNKNOWN_RUN), (UNKNOWN_RUN,), True, id="rerun-unknown-run"),
    pytest.param(
        lambda s: ("run", "abalone", "--fail-at", "nosuchunit"),
        ("nosuchunit",),
        True,
        id="unknown-fail-at-unit",
    ),
    pytest.param(
        lambda s: ("runs", "abalone", "--limit", "-1"),
        ("--limit",),
        False,
        id="negative-limit",
    ),
    pytest.param(
        lambda s: ("rerun", s.good["run_id"], "--from", "train", "--only", "train"),
        ("--from", "--only"),
        True,
        id="from-and-only",
    ),
    pytest.param(
        lambda s: ("rerun", s.good["run_id"], "--from", "nosuchunit"), ("nosuchunit",), True, id="from-unknown"
    ),
    pytest.param(lambda s: ("lineage", "model", "not-an-arn"), ("not-an-arn",), False, id="lineage-garbage-arn"),
    pytest.param(lambda s: ("impact", "not-a-uri"), ("not-a-uri",), False, id="impact-garbage-uri"),
    pytest.param(lambda s: ("approve", s.good["model_package_arn"]), ("--reason",), False, id="approve-no-reason"),
    pytest.param(lambda s: ("batch", "abalone"), ("--data",), False, id="batch-without-data"),
    pytest.param(
        lambda s: ("batch", "abalone", "--data", "/nonexistent/rows.csv"), ("rows.csv",), False, id="batch-missing-file"
    ),
]


@pytest.mark.parametrize(("argv", "names", "touches_runs"), BAD_ARGUMENTS)
def test_a_bad_argument_is_refused_in_one_line_and_changes_nothing(
    suite: Suite,
    request: pytest.FixtureRequest,
    argv: Callable[[Suite], tuple[str, ...]],
    names: tuple[str, ...],
    touches_runs: bool,
) -> None:
    suite.count(request, "CLI arguments")
    # Given the pipeline's runs and packages as they are
    before = suite.before()
    approval = suite.client("sagemaker").describe_model_package(ModelPackageName=suite.good["model_package_arn"])
    # When a command is given a bad argument
    outcome = suite.cli(*argv(suite))
    # Then it is refused naming the problem: no new run or package, no approval, and the other commands still work
    suite.refused(outcome, *names)
    assert not suite.new_runs(before)
    suite.nothing_left(before)
    after = suite.client("sagemaker").describe_model_package(ModelPackageName=suite.good["model_package_arn"])
    assert after["ModelApprovalStatus"] == approval["ModelApprovalStatus"]
    suite.others_still_work(rerun=touches_runs)
