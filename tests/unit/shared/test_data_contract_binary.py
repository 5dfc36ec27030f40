"""A binary classification's label in the data contract: categorical with two values and a positive class (churn's
"yes"/"no"), or numeric 0/1; checked, inferred, and refused where it does not fit the pipeline."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sfn_mlops.contract import DataContract, LabelSpec, parse_contract
from sfn_mlops.contract_check import check_csv, positive_class
from sfn_mlops.errors import DatasetValidationError, InvalidDataContract, InvalidPipelineConfig
from sfn_mlops.pipeline import parse_pipeline_config

from tests.conftest import ROOT

CHURN_CONFIG = json.loads((ROOT / "models/churn/pipeline.json").read_text())
CHURN_CONTRACT = CHURN_CONFIG["data"]["contract"]
SMALL = {
    "features": [{"name": "plan", "type": "categorical", "domain": ["a", "b"]}, {"name": "calls", "min": 0}],
    "label": {"name": "churn", "type": "categorical", "domain": ["no", "yes"], "positive": "yes"},
}


def check(
    text: str,
    contract: dict[str, Any] | None = SMALL,
    problem_type: Any = "binary_classification",
    categorical: dict[str, list[str]] | None = None,
) -> Any:
    parsed = DataContract.model_validate(contract) if contract else None
    return check_csv(
        [text.encode()],
        parsed,
        label="churn",
        categorical={"plan": ["a", "b"]} if categorical is None else categorical,
        uri="s3://b/data/churn/x.csv",
        pipeline="churn",
        problem_type=problem_type,
    )


def test_the_real_churn_data_meets_its_declared_contract() -> None:
    contract = DataContract.model_validate(CHURN_CONTRACT)
    result = check_csv(
        [(ROOT / "models/churn/data/churn.csv").read_bytes()], contract, label="churn",
        categorical=contract.categorical, uri="s3://b/k", pipeline="churn", problem_type="binary_classification",
    )  # fmt: skip
    assert result.rows == 5000 and not result.inferred
    assert contract.label.positive == "yes" and contract.label.negative == "no"


def test_without_a_contract_churn_infers_its_declared_one() -> None:
    # Given no contract and no declared categories, When churn.csv is checked for a binary classification
    result = check_csv(
        [(ROOT / "models/churn/data/churn.csv").read_bytes()], None, label="churn", categorical={},
        uri="s3://b/k", pipeline="churn", problem_type="binary_classification",
    )  # fmt: skip
    # Then the label is categorical with "yes" positive, and the four text columns (51 states) are categorical
    assert result.inferred
    assert result.contract.label == LabelSpec(name="churn", type="categorical", domain=["no", "yes"], positive="yes")
    declared = DataContract.model_validate(CHURN_CONTRACT)
    assert result.contract.categorical == declared.categorical


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ({"type": "categorical", "domain": ["yes"], "positive": "yes"}, "needs a domain of two distinct"),
        ({"type": "categorical", "domain": ["a", "b", "c"], "positive": "a"}, "needs a domain of two distinct"),
        ({"type": "categorical", "domain": ["a", "a"], "positive": "a"}, "needs a domain of two distinct"),
        ({"type": "categorical", "domain": ["a", " b"], "positive": "a"}, "needs a domain of two distinct"),
        ({"type": "categorical", "domain": ["no", "yes"]}, "needs its positive class, one of ['no', 'yes']"),
        ({"type": "categorical", "domain": ["no", "yes"], "positive": "Yes"}, "needs its positive class"),
        ({"type": "categorical", "domain": ["no", "yes"], "positive": "yes", "max": 1}, "takes no min, max"),
        ({"domain": ["no", "yes"]}, "numeric label 'churn' takes no domain or positive"),
        ({"positive": "1"}, "numeric label 'churn' takes no domain or positive"),
        ({"type": "text"}, "Input should be 'numeric' or 'categorical'"),
    ],
)
def test_a_malformed_label_is_refused_naming_the_problem(label: dict[str, Any], problem: str) -> None:
    contract = {**SMALL, "label": {"name": "churn", **label}}
    with pytest.raises(InvalidDataContract) as raised:
        parse_contract(contract, source="contract.json")
    assert problem in str(raised.value), str(raised.value)


def test_a_numeric_label_dumps_as_before_so_stored_contracts_and_fingerprints_stay_the_same() -> None:
    abalone = json.loads((ROOT / "models/abalone/pipeline.json").read_text())["data"]["contract"]
    dumped = DataContract.model_validate(abalone).model_dump(mode="json")["label"]
    assert dumped == {"name": "rings", "type": "numeric", "min": 1, "max": 100, "integer": True}
    # And a categorical label survives the trip through contract.json (a pinned contract)
    stored = json.dumps({"contract": DataContract.model_validate(SMALL).model_dump(mode="json"), "source": "x"})
    assert parse_contract(stored, source="contract.json").label.positive == "yes"


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("a,1,no\nb,2,maybe\n", "unknown category 'maybe' in column 'churn' at row 2 (expected one of no, yes)"),
        ("a,1,no\nb,2,\n", "missing value '' in column 'churn' at row 2 (the column is not nullable)"),
        ("a,1,no\nb,2,no\n", "the label 'churn' is constant ('no' in every row)"),
        ("a,1,no\nb,2,Yes\n", "unknown category 'Yes' in column 'churn'"),
    ],
)
def test_a_label_outside_its_two_classes_fails_like_a_categorical_feature(rows: str, problem: str) -> None:
    with pytest.raises(DatasetValidationError) as raised:
        check("plan,calls,churn\n" + rows)
    assert problem in str(raised.value), str(raised.value)


def test_a_label_of_its_two_classes_passes() -> None:
    assert check("plan,calls,churn\na,1,no\nb,2,yes\n").rows == 2


def test_a_regression_refuses_a_contract_with_a_categorical_label() -> None:
    with pytest.raises(DatasetValidationError, match="categorical label 'churn': a regression needs a numeric label"):
        check("plan,calls,churn\na,1,no\nb,2,yes\n", problem_type="regression")


@pytest.mark.parametrize(
    ("labels", "problem_type", "expected"),
    [
        (["no", "yes", "no"], "binary_classification", {"domain": ["no", "yes"], "positive": "yes"}),
        (["False.", "True.", "False."], "binary_classification", {"domain": ["False.", "True."], "positive": "True."}),
        (["Y", "N", "N"], None, {"domain": ["N", "Y"], "positive": "Y"}),
        # no spelling says which: the rarer value is positive, on a tie the later in sorted order
        (["stay", "leave", "stay"], "binary_classification", {"domain": ["leave", "stay"], "positive": "leave"}),
        (["stay", "leave"], "binary_classification", {"domain": ["leave", "stay"], "positive": "stay"}),
    ],
)
def test_an_inferred_text_label_with_two_values_is_categorical_with_a_positive_class(
    labels: list[str], problem_type: Any, expected: dict[str, Any]
) -> None:
    text = "plan,calls,churn\n" + "".join(f"a,{i},{label}\n" for i, label in enumerate(labels))
    label = check(text, None, problem_type).contract.label
    assert label.model_dump(include={"type", "domain", "positive"}) == {"type": "categorical", **expected}


def test_an_inferred_0_1_label_of_a_binary_classification_is_bounded_to_0_and_1() -> None:
    label = check("plan,calls,churn\na,1,0\nb,2,1\n", None).contract.label
    assert (label.type, label.min, label.max, label.integer) == ("numeric", 0, 1, True)
    # A regression's numeric label is inferred as before (no upper bound)
    label = check("plan,calls,churn\na,1,0\nb,2,1\n", None, problem_type="regression").contract.label
    assert (label.min, label.max) == (0, None)


@pytest.mark.parametrize(
    ("labels", "problem_type", "problem"),
    [
        (["no", "yes"], "regression", "the label 'churn' is not numeric (row 1: 'no'): a regression needs a numeric"),
        (["no", "yes", "maybe"], "binary_classification", "is not numeric (row 1: 'no') and has more than two values"),
        (["0", "1", "2"], "binary_classification", "is 0/1 or two categories, not numbers from 0 to 2"),
        (["0.5", "1"], "binary_classification", "is 0/1 or two categories, not numbers from 0.5 to 1"),
        (["yes", "yes"], "binary_classification", "the label 'churn' is constant ('yes' in every row)"),
    ],
)
def test_a_label_that_does_not_fit_the_problem_infers_no_contract(
    labels: list[str], problem_type: Any, problem: str
) -> None:
    text = "plan,calls,churn\n" + "".join(f"a,{i},{label}\n" for i, label in enumerate(labels))
    with pytest.raises(DatasetValidationError) as raised:
        check(text, None, problem_type)
    assert problem in str(raised.value), str(raised.value)


def test_positive_class_prefers_a_positive_spelling_then_the_rarer_value() -> None:
    assert positive_class({"no": 10, "yes": 90}) == "yes"
    assert positive_class({"fraud": 3, "ok": 97}) == "fraud"
    assert positive_class({"yes": 1, "true": 1}) == "yes"  # both spelled positive: a tie, the later in order


def test_the_bundled_churn_config_validates_with_the_spark_engine() -> None:
    config = parse_pipeline_config(json.dumps(CHURN_CONFIG), source="pipeline.json")
    assert (config.problem_type, config.preprocess.engine, config.preprocess.image) == (
        "binary_classification", "spark", "spark",
    )  # fmt: skip
    assert list(config.data.categorical) == ["state", "area_code", "international_plan", "voice_mail_plan"]
    assert len(config.data.categorical["state"]) == 51
    assert config.gate.metric == "auc" and config.gate.direction == "maximize"
    hyperparameters = config.train.hyperparameters
    assert {k: hyperparameters[k] for k in ("max_depth", "eta", "gamma", "min_child_weight", "subsample")} == {
        "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.8,
    }  # fmt: skip
    abalone = parse_pipeline_config((ROOT / "models/abalone/pipeline.json").read_bytes(), source="pipeline.json")
    assert abalone.preprocess.engine == "pandas" and abalone.preprocess.image == "sklearn"


def _churn(change: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(CHURN_CONFIG)
    for path, value in change.items():
        node = config
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"problem_type": "regression", "gate.metric": "rmse", "gate.direction": "minimize",
          "train.hyperparameters.objective": "reg:squarederror"},
         "data.contract.label 'churn' is categorical: a regression pipeline needs a numeric label"),
        ({"data.contract.label": {"name": "churn"}},
         "data.contract.label 'churn' of a binary_classification pipeline is either numeric 0/1"),
        ({"data.contract.label": {"name": "churn", "min": 0, "max": 5, "integer": True}}, "either numeric 0/1"),
        ({"preprocess.image": "sklearn"}, "engine 'spark' does not run on image 'sklearn'"),
        ({"preprocess.engine": "pandas"}, "engine 'pandas' does not run on image 'spark'"),
        ({"preprocess.engine": "dask"}, "Input should be 'pandas' or 'spark'"),
    ],
)  # fmt: skip
def test_a_label_or_engine_that_does_not_fit_is_refused_when_the_config_is_read(
    change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidPipelineConfig) as raised:
        parse_pipeline_config(json.dumps(_churn(change)), source="pipeline.json")
    assert problem in str(raised.value), str(raised.value)


def test_a_binary_classification_may_declare_a_numeric_0_1_label() -> None:
    label = {"name": "churn", "type": "numeric", "min": 0, "max": 1, "integer": True}
    config = parse_pipeline_config(json.dumps(_churn({"data.contract.label": label})), source="pipeline.json")
    assert config.data.contract is not None and config.data.contract.label.type == "numeric"
