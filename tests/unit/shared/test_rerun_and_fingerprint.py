"""Rerun options, overrides and fingerprints: the rules that decide what a rerun runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

ORDER = ["preprocess", "train", "evaluate", "register"]
DONE = {u: {"status": "SUCCEEDED"} for u in ORDER}


def config() -> Any:
    from sfn_mlops.pipeline import parse_pipeline_config

    return parse_pipeline_config(Path(ROOT / "models/abalone/pipeline.json").read_bytes(), source="abalone")


def test_policies_for_plain_from_and_only() -> None:
    from sfn_mlops.rerun import RerunOptions, unit_policies

    assert unit_policies(ORDER, RerunOptions(), {}) == dict.fromkeys(ORDER, "resume")
    assert unit_policies(ORDER, RerunOptions(**{"from": "evaluate"}), DONE) == {
        "preprocess": "resume",
        "train": "resume",
        "evaluate": "force",
        "register": "force",
    }
    # --only: upstream reused whatever its fingerprint, the unit forced, downstream not run at all
    assert unit_policies(ORDER, RerunOptions(only="train"), DONE) == {"preprocess": "reuse", "train": "force"}


def test_only_needs_its_upstream_to_have_succeeded() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import RerunOptions, unit_policies

    recorded = {"preprocess": {"status": "SUCCEEDED"}, "train": {"status": "FAILED"}}
    with pytest.raises(InvalidRerun, match="train is FAILED in this run: rerun without --only first"):
        unit_policies(ORDER, RerunOptions(only="evaluate"), recorded)
    with pytest.raises(InvalidRerun, match="unknown unit 'deploy': the units are preprocess, train"):
        unit_policies(ORDER, RerunOptions(**{"from": "deploy"}), recorded)


def test_rerun_options_reject_from_with_only_and_unknown_fields() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import parse_rerun

    with pytest.raises(InvalidRerun, match="either --from or --only"):
        parse_rerun({"from": "train", "only": "evaluate"})
    with pytest.raises(InvalidRerun, match="invalid rerun options"):
        parse_rerun({"form": "train"})


def test_overrides_parse_json_values_and_validate_like_a_published_config() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import apply_overrides, parse_override

    assert parse_override("train.hyperparameters.max_depth=4") == ("train.hyperparameters.max_depth", 4)
    assert parse_override('register.inference_instance_types=["ml.m5.large"]')[1] == ["ml.m5.large"]
    changed = apply_overrides(config(), {"train.hyperparameters.max_depth": 4, "gate.threshold": 2.5}, "abalone")
    assert changed.train.hyperparameters["max_depth"] == 4 and changed.gate.threshold == 2.5
    with pytest.raises(InvalidRerun, match="must leave rows for the test split"):
        apply_overrides(config(), {"preprocess.train_ratio": 0.95}, "abalone")  # leaves no test split
    with pytest.raises(InvalidRerun, match="takes KEY=VALUE"):
        parse_override("max_depth")


def test_fingerprints_follow_content_code_and_parameters_but_not_the_run() -> None:
    from sfn_mlops.fingerprint import static_fingerprints

    units = {
        "preprocess": {"image_uri": "img", "script": {"uri": "s3://b/runs/r1/code/p.py", "sha256": "s1"}, "seed": 1},
        "train": {"image_uri": "img", "hyperparameters": {"max_depth": "5"}, "runs_root": "s3://b/runs/r1/"},
    }
    dataset = {"uri": "s3://b/data/a.csv", "version": "v1", "content": "sha256:abc"}
    base = static_fingerprints(units, dataset)
    # Another run (other prefixes), another object version with the same bytes: the same fingerprints
    moved = {
        "preprocess": {**units["preprocess"], "script": {"uri": "s3://b/runs/r2/code/p.py", "sha256": "s1"}},
        "train": {**units["train"], "runs_root": "s3://b/runs/r2/"},
    }
    assert static_fingerprints(moved, {**dataset, "version": "v2", "uri": "s3://b/data/b.csv"}) == base
    # Different bytes, code or parameters: that unit's fingerprint changes, the others' do not
    assert static_fingerprints(units, {**dataset, "content": "sha256:abd"})["preprocess"] != base["preprocess"]
    code = {**units, "preprocess": {**units["preprocess"], "script": {"uri": "x", "sha256": "s2"}}}
    assert static_fingerprints(code, dataset)["preprocess"] != base["preprocess"]
    params = {**units, "train": {**units["train"], "hyperparameters": {"max_depth": "4"}}}
    changed = static_fingerprints(params, dataset)
    assert changed["train"] != base["train"] and changed["preprocess"] == base["preprocess"]


def test_only_refuses_a_set_that_would_change_a_unit_it_reuses() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import parse_rerun, unit_policies

    order = ["preprocess", "train", "evaluate", "register"]
    done = {u: {"status": "SUCCEEDED"} for u in order}
    # --only train with a preprocess (or data) parameter: the reused splits would not follow it
    for key in ("preprocess.seed", "data.label"):
        options = parse_rerun({"only": "train", "overrides": {key: 7}})
        with pytest.raises(InvalidRerun, match=f"--set {key} changes preprocess, which --only train reuses"):
            unit_policies(order, options, done)
    # a parameter of the unit itself, or of a later one, is fine
    options = parse_rerun({"only": "train", "overrides": {"train.hyperparameters.max_depth": 3, "gate.threshold": 2}})
    assert unit_policies(order, options, done)["train"] == "force"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("register.approval_status", "approval is a person's act (mlops approve PACKAGE_ARN --reason TEXT)"),
        ("register.model_package_group", "the group cannot be overridden"),
        ("register", "the register section cannot be replaced as a whole"),
        ("register.approval_status.x", "approval is a person's act"),
        ("name", "the pipeline's name cannot be overridden"),
    ],
)
def test_no_override_can_approve_a_package_or_move_it_to_another_group(key: str, problem: str) -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import apply_overrides, parse_override, parse_rerun

    # Given a --set of the approval, the group, or the register section as a whole
    # When the command line is parsed, Then it fails at once with one readable line naming the key
    with pytest.raises(InvalidRerun, match=f"^--set {key}: ") as raised:
        parse_override(f"{key}=Approved")
    assert problem in str(raised.value) and "\n" not in str(raised.value)
    # And so do rerun options given another way (the executor's console input) and the planner's merge
    with pytest.raises(InvalidRerun, match=f"--set {key}: "):
        parse_rerun({"overrides": {key: "Approved"}})
    with pytest.raises(InvalidRerun, match=f"--set {key}: "):
        apply_overrides(config(), {key: "Approved"}, "abalone")
    # While the register section's other keys can still be overridden
    changed = apply_overrides(config(), {"register.transform_instance_types": ["ml.m5.xlarge"]}, "abalone")
    assert changed.registration.transform_instance_types == ["ml.m5.xlarge"]


@pytest.mark.parametrize(
    "text",
    [
        "gate.threshold=NaN",
        "gate.threshold=Infinity",
        "gate.threshold=-Infinity",
        "gate.threshold=1e400",
        "train.hyperparameters.eta=nan",
        "train.hyperparameters.eta=inf",
        "register.x=[1, NaN]",
    ],
)
def test_a_non_finite_override_value_is_refused_in_one_line(text: str) -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import parse_override

    # When --set gives NaN or an infinity (JSON parsers accept them; so does float() as text)
    with pytest.raises(InvalidRerun, match=r"^--set [\w.]+: .* is not a finite number$"):
        parse_override(text)


def test_a_non_finite_value_given_to_the_planner_is_refused_too() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import apply_overrides, parse_rerun

    with pytest.raises(InvalidRerun, match=r"gate\.threshold: NaN is not a finite number"):
        parse_rerun({"overrides": {"gate.threshold": float("nan")}})
    with pytest.raises(InvalidRerun, match=r"train\.hyperparameters\.eta: Infinity is not a finite number"):
        apply_overrides(config(), {"train.hyperparameters.eta": float("inf")}, "abalone")


def test_unset_names_a_carried_key_and_cannot_go_with_a_set_of_it() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import parse_unset, refuse_set_and_unset, without_unset

    carried = {"gate.threshold": 2.5, "train.hyperparameters.max_depth": 3}
    assert parse_unset(" gate.threshold ") == "gate.threshold"
    assert without_unset(carried, ["gate.threshold"], "r1") == {"train.hyperparameters.max_depth": 3}
    with pytest.raises(InvalidRerun, match="takes a KEY the run was given with --set"):
        parse_unset("gate.threshold=2")
    # A key the run does not carry: one line listing what it carries
    with pytest.raises(
        InvalidRerun,
        match=r"^--unset gate\.treshold: run r1 carries no such override "
        r"\(its overrides: gate\.threshold=2\.5, train\.hyperparameters\.max_depth=3\)$",
    ):
        without_unset(carried, ["gate.treshold"], "r1")
    with pytest.raises(InvalidRerun, match=r"its overrides: none"):
        without_unset({}, ["gate.threshold"], "r1")
    with pytest.raises(InvalidRerun, match=r"--set and --unset of the same key \(gate\.threshold\)"):
        refuse_set_and_unset({"gate.threshold": 2.0}, ["gate.threshold"])


def test_an_override_error_says_when_the_key_came_from_an_earlier_set_and_how_to_remove_it() -> None:
    from sfn_mlops.errors import InvalidRerun
    from sfn_mlops.rerun import apply_overrides

    # Given overrides the run carries from an earlier --set, one of them now invalid
    carried = {"preprocess.train_ratio": 0.95, "train.hyperparameters.max_depth": 3}
    # When the config is built with them
    with pytest.raises(InvalidRerun) as raised:
        apply_overrides(config(), carried, "abalone", earlier=list(carried), run_id="r1")
    # Then the message names the key, where it came from, and the command that removes it (not the valid one)
    message = str(raised.value)
    assert "must leave rows for the test split" in message
    assert message.endswith(
        "(preprocess.train_ratio: from an earlier --set on run r1; "
        "remove it with: mlops rerun r1 --unset preprocess.train_ratio)"
    )
    # And a key that does not exist, carried from earlier, says the same
    with pytest.raises(InvalidRerun, match=r"has no 'train.nonsense' .*--unset train\.nonsense\.depth\)$"):
        apply_overrides(config(), {"train.nonsense.depth": 3}, "abalone", earlier=["train.nonsense.depth"], run_id="r1")
    # But a key given now is not blamed on an earlier --set
    with pytest.raises(InvalidRerun) as now:
        apply_overrides(config(), carried, "abalone", earlier=["train.hyperparameters.max_depth"], run_id="r1")
    assert "earlier --set" not in str(now.value)
