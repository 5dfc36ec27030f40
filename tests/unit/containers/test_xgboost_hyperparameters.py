"""The local XGBoost 1.7-1 container's hyperparameter rules, one row per rule, against the container's own.

Expected outcomes and messages are those of aws/sagemaker-xgboost-container's algorithm_mode/
hyperparameter_validation.py and the algorithm toolkit's validator (see
docs/decisions/0022-xgboost-container-rules.md).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest

from sfn_mlops_local.containers.xgboost_container import hyperparameters
from sfn_mlops_local.containers.xgboost_container.errors import AlgorithmError, NotEmulated, UserError

PACKAGE = Path(hyperparameters.__file__).parent
BASE = {"num_round": "10", "objective": "reg:squarederror"}

# (given hyperparameters on top of BASE, what the container keeps: {name: parsed value})
ACCEPTED: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "alias learning_rate is eta": ({"learning_rate": "0.1"}, {"eta": 0.1}),
    "alias min_split_loss is gamma": ({"min_split_loss": "2"}, {"gamma": 2.0}),
    "alias reg_lambda is lambda": ({"reg_lambda": "3"}, {"lambda": 3.0}),
    "alias reg_alpha is alpha": ({"reg_alpha": "0.5"}, {"alpha": 0.5}),
    "eta bounds are closed": ({"eta": "1"}, {"eta": 1.0}),
    "max_depth 0 means no limit": ({"max_depth": "0"}, {"max_depth": 0}),
    "subsample 1 is the top of (0, 1]": ({"subsample": "1"}, {"subsample": 1.0}),
    "eval_metric is a comma-separated list": ({"eval_metric": "rmse,mae"}, {"eval_metric": ["rmse", "mae"]}),
    "eval_metric with a threshold": (
        {"objective": "binary:logistic", "eval_metric": "error@0.7"},
        {"eval_metric": ["error@0.7"]},
    ),
    "container metrics r2 and mse": ({"eval_metric": "r2,mse"}, {"eval_metric": ["r2", "mse"]}),
    "auc with a binary objective": ({"objective": "binary:logistic", "eval_metric": "auc"}, {"eval_metric": ["auc"]}),
    "auc with a ranking objective": ({"objective": "rank:pairwise", "eval_metric": "auc"}, {"eval_metric": ["auc"]}),
    "multi-class with num_class": (
        {"objective": "multi:softprob", "num_class": "3"},
        {"objective": "multi:softprob", "num_class": 3},
    ),
    "monotone constraints with hist": (
        {"tree_method": "hist", "monotone_constraints": "(1,0,-1)"},
        {"monotone_constraints": (1, 0, -1)},
    ),
    "interaction constraints with approx": (
        {"tree_method": "approx", "interaction_constraints": "[[1, 2], [3]]"},
        {"interaction_constraints": [[1, 2], [3]]},
    ),
    "gpu_hist is a tree method in 1.7-1": ({"tree_method": "gpu_hist"}, {"tree_method": "gpu_hist"}),
    "linear booster with one linear updater": (
        {"booster": "gblinear", "updater": "coord_descent"},
        {"updater": ["coord_descent"]},
    ),
    "tuning metric of the container's list": (
        {"_tuning_objective_metric": "validation:rmse"},
        {"_tuning_objective_metric": "validation:rmse"},
    ),
    "csv_weights and save_model_on_termination": (
        {"csv_weights": "1", "save_model_on_termination": "true"},
        {"csv_weights": 1, "save_model_on_termination": "true"},
    ),
    "num_class without an objective is left to xgboost": ({"num_class": "3"}, {"num_class": 3}),
    "use_dask_gpu_training false (XGBoost 1.5+)": (
        {"use_dask_gpu_training": "false"},
        {"use_dask_gpu_training": "false"},
    ),
    "use_dask_gpu_training true passes the rules (training refuses it as not emulated)": (
        {"use_dask_gpu_training": "true"},
        {"use_dask_gpu_training": "true"},
    ),
    "monotone constraints after spaces, which eval drops": (
        {"tree_method": "exact", "monotone_constraints": "  (1, -1)"},
        {"monotone_constraints": (1, -1)},
    ),
    "monotone constraints without parentheses are eval's tuple": (
        {"tree_method": "hist", "monotone_constraints": "1,0,-1"},
        {"monotone_constraints": (1, 0, -1)},
    ),
}

# (given hyperparameters on top of BASE, error class, the container's message)
REJECTED: dict[str, tuple[dict[str, str], type[Exception], str]] = {
    "eta above 1": ({"eta": "2"}, UserError, "Hyperparameter eta: 2.0 is not in [0, 1]"),
    "alias out of range names the parameter": (
        {"learning_rate": "1.5"},
        UserError,
        "Hyperparameter eta: 1.5 is not in [0, 1]",
    ),
    "subsample 0 is outside (0, 1]": ({"subsample": "0"}, UserError, "Hyperparameter subsample: 0.0 is not in (0, 1]"),
    "negative gamma": ({"gamma": "-1"}, UserError, "Hyperparameter gamma: -1.0 is not in [0, +inf)"),
    "num_round 0": ({"num_round": "0"}, UserError, "Hyperparameter num_round: 0 is not in [1, +inf)"),
    "num_round not an integer": (
        {"num_round": "10.5"},
        UserError,
        "Hyperparameter num_round: could not parse value (caused by ValueError)",
    ),
    "verbosity above 3": ({"verbosity": "4"}, UserError, "Hyperparameter verbosity: 4 is not in [0, 3]"),
    "tweedie power is an open interval": (
        {"tweedie_variance_power": "2"},
        UserError,
        "Hyperparameter tweedie_variance_power: 2.0 is not in (1, 2)",
    ),
    "unknown name": ({"max_dept": "5"}, UserError, "Extraneous hyperparameter found: max_dept"),
    "xgboost parameter the container does not list": (
        {"max_cat_to_onehot": "4"},
        UserError,
        "Extraneous hyperparameter found: max_cat_to_onehot",
    ),
    "unknown booster": (
        {"booster": "forest"},
        UserError,
        "Hyperparameter booster: forest is not in ['gbtree', 'gblinear', 'dart']",
    ),
    "unknown objective": (
        {"objective": "reg:absoluteerror"},
        UserError,
        "Hyperparameter objective: reg:absoluteerror is not in ['aft_loss_distribution', 'binary:logistic',",
    ),
    "unknown eval_metric": (
        {"eval_metric": "rmse,foo"},
        UserError,
        "Hyperparameter eval_metric: value ['rmse', 'foo'] not in range ['accuracy', 'auc',",
    ),
    "auc with a regression objective": (
        {"eval_metric": "auc"},
        UserError,
        "Metric 'auc' can only be applied for classification and ranking problems.",
    ),
    "aft-nloglik without survival:aft": (
        {"eval_metric": "aft-nloglik"},
        UserError,
        "Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.",
    ),
    "threshold on a metric that takes none": (
        {"eval_metric": "rmse@0.5"},
        UserError,
        "Metric 'rmse@0.5' is not supported. Parameter 'eval_metric' with customized threshold should be one of "
        "these options: 'error', 'ndcg', 'map'.",
    ),
    "threshold that is not a number": (
        {"objective": "binary:logistic", "eval_metric": "error@high"},
        UserError,
        "Threshold value 't' in 'error@t' expects float input.",
    ),
    "multi-class without num_class": (
        {"objective": "multi:softmax"},
        UserError,
        "Require input for parameter 'num_class' for multi-classification",
    ),
    "num_class below 2": ({"num_class": "1"}, UserError, "Hyperparameter num_class: 1 is not in [2, +inf)"),
    "monotone constraints need exact or hist": (
        {"monotone_constraints": "(1,-1)"},
        UserError,
        "monotone_constraints can be used only when the tree_method parameter is set to either 'exact' or 'hist'.",
    ),
    "monotone constraint outside -1, 0, 1": (
        {"tree_method": "hist", "monotone_constraints": "(2,0)"},
        UserError,
        "Hyperparameter monotone_constraints: value (2, 0) not in range [-1, 0, 1]",
    ),
    "monotone constraints that are not a tuple": (
        {"tree_method": "hist", "monotone_constraints": "1"},
        AlgorithmError,
        "Hyperparameter monotone_constraints: unexpected failure when validating 1 (caused by TypeError)",
    ),
    "interaction constraints need exact, hist or approx": (
        {"interaction_constraints": "[[1, 2]]"},
        UserError,
        "interaction_constraints can be used only when the tree_method parameter is set to either 'exact', "
        "'hist' or 'approx'.",
    ),
    "interaction constraint feature 0": (
        {"tree_method": "hist", "interaction_constraints": "[[0, 1]]"},
        UserError,
        "Hyperparameter interaction_constraints: value [[0, 1]] not in range [1, +inf)",
    ),
    "two tree growers": (
        {"updater": "grow_colmaker,grow_histmaker"},
        UserError,
        "Only one tree grow plugin can be selected.",
    ),
    "linear booster with a tree updater": (
        {"booster": "gblinear", "updater": "grow_colmaker"},
        UserError,
        "Linear updater should be one of these options:",
    ),
    "update process with a grower": (
        {"process_type": "update", "updater": "grow_colmaker"},
        UserError,
        "process_type 'update' can only be used with updater 'refresh' and 'prune'",
    ),
    "tuning metric outside the container's list": (
        {"_tuning_objective_metric": "train:rmse"},
        UserError,
        "Hyperparameter _tuning_objective_metric: train:rmse is not in ['validation:accuracy',",
    ),
    "csv_weights 2": ({"csv_weights": "2"}, UserError, "Hyperparameter csv_weights: 2 is not in [0, 1]"),
    "save_model_on_termination yes": (
        {"save_model_on_termination": "yes"},
        UserError,
        "Hyperparameter save_model_on_termination: yes is not in ['true', 'false']",
    ),
    "use_dask_gpu_training yes": (
        {"use_dask_gpu_training": "yes"},
        UserError,
        "Hyperparameter use_dask_gpu_training: yes is not in ['true', 'false']",
    ),
    "interaction constraints naming features are not literals (literal_eval's ValueError)": (
        {"tree_method": "hist", "interaction_constraints": "[[a, b]]"},
        UserError,
        "Hyperparameter interaction_constraints: could not parse value (caused by ValueError)",
    ),
    "monotone constraints holding a builtin's name": (
        {"tree_method": "hist", "monotone_constraints": "(int, 1)"},
        UserError,
        "Hyperparameter monotone_constraints: value (<class 'int'>, 1) not in range [-1, 0, 1]",
    ),
    "monotone constraints computed by a call are not emulated (eval would run it)": (
        {"tree_method": "hist", "monotone_constraints": "tuple([1, 0])"},
        NotEmulated,
        "monotone_constraints given as a Python expression ('tuple([1, 0])') is not emulated",
    ),
    "seed at 2**31 - 1 is outside the open range": (
        {"seed": str(2**31 - 1)},
        UserError,
        "Hyperparameter seed: 2147483647 is not in (-2147483648, 2147483647)",
    ),
}


# (given hyperparameters on top of BASE, the exact error class, its message or None where Python versions word it
# differently): the container's parse lets all but ValueError through, so its job ends with them uncaught.
UNCAUGHT: dict[str, tuple[dict[str, str], type[Exception], str | None]] = {
    "monotone constraints that are not Python (eval's SyntaxError)": (
        {"tree_method": "hist", "monotone_constraints": "(1,,0)"},
        SyntaxError,
        None,
    ),
    "empty monotone constraints": ({"tree_method": "hist", "monotone_constraints": ""}, SyntaxError, None),
    "monotone constraints naming features (eval's NameError)": (
        {"tree_method": "hist", "monotone_constraints": "(inc, 0, dec)"},
        NameError,
        "name 'inc' is not defined",
    ),
    "monotone constraint true in JSON's spelling": (
        {"tree_method": "hist", "monotone_constraints": "(true, 0)"},
        NameError,
        "name 'true' is not defined",
    ),
    "monotone constraints with a set of a list (eval's TypeError, before the later name)": (
        {"tree_method": "hist", "monotone_constraints": "({[1]}, later)"},
        TypeError,
        "unhashable type: 'list'",
    ),
    "interaction constraints not closed (literal_eval's SyntaxError)": (
        {"tree_method": "hist", "interaction_constraints": "[[1, 2]"},
        SyntaxError,
        None,
    ),
    "interaction constraints after a space (the image's Python 3.8 literal_eval does not strip it)": (
        {"tree_method": "hist", "interaction_constraints": " [[1, 2]]"},
        IndentationError,
        "unexpected indent",
    ),
}


@pytest.mark.parametrize(("given", "kept"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_hyperparameters_the_container_accepts_are_accepted_and_parsed_as_it_parses_them(
    given: dict[str, str], kept: dict[str, Any]
) -> None:
    # Given hyperparameters the 1.7-1 container accepts (strings, as SageMaker passes them)
    # When they are validated
    validated = hyperparameters.validate({**BASE, **given})

    # Then they pass, under their canonical names, with the container's parsed values
    assert {name: validated[name] for name in kept} == kept
    assert validated["num_round"] == int(given.get("num_round", BASE["num_round"]))
    assert not set(validated) & set(hyperparameters.ALIASES)


@pytest.mark.parametrize(("given", "error", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_hyperparameters_the_container_rejects_fail_with_its_message(
    given: dict[str, str], error: type[Exception], message: str
) -> None:
    # Given hyperparameters the 1.7-1 container rejects
    # When they are validated
    with pytest.raises(error) as raised:
        hyperparameters.validate({**BASE, **given})

    # Then the error is the container's kind, worded as the container words it
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(("given", "error", "message"), UNCAUGHT.values(), ids=UNCAUGHT.keys())
def test_parse_errors_the_container_does_not_catch_are_not_caught(
    given: dict[str, str], error: type[Exception], message: str | None
) -> None:
    # Given a tuple or nested-list value the container's eval or literal_eval fails on with other than ValueError
    # When it is validated
    with pytest.raises(error) as raised:
        hyperparameters.validate({**BASE, **given})

    # Then that very error comes out, not a UserError (the job ends as the container's does, exit code 2)
    assert type(raised.value) is error
    assert not isinstance(raised.value, UserError)
    if message is not None:
        assert str(raised.value).startswith(message)


def test_a_missing_num_round_is_reported_before_anything_else() -> None:
    with pytest.raises(UserError, match=r"^Missing required hyperparameter: num_round$"):
        hyperparameters.validate({"eta": "5", "bogus": "1"})


def test_eval_metric_without_an_objective_ends_in_the_containers_uncaught_key_error() -> None:
    # The container looks the objective up unconditionally when eval_metric is given.
    with pytest.raises(KeyError, match="objective"):
        hyperparameters.validate({"num_round": "10", "eval_metric": "rmse"})


def test_the_later_of_a_name_and_its_alias_wins() -> None:
    assert hyperparameters.validate({"num_round": "1", "eta": "0.1", "learning_rate": "0.4"})["eta"] == 0.4


def test_the_rules_table_has_every_name_once_and_the_abalone_hyperparameters_pass() -> None:
    names = [rule.name for rule in hyperparameters.RULES]
    assert len(names) == len(set(names)) == 54
    abalone = {
        "objective": "reg:squarederror", "num_round": 50, "max_depth": 5, "eta": 0.2, "gamma": 4,
        "min_child_weight": 6, "subsample": 0.7, "verbosity": 0,
    }  # fmt: skip
    assert hyperparameters.validate(abalone)["subsample"] == 0.7


def test_the_container_package_imports_only_the_images_packages() -> None:
    # The runtime runs it by path in an environment built from the image's package list.
    allowed = set(sys.stdlib_module_names) | {"numpy", "scipy", "pandas", "sklearn", "xgboost", "__future__"}
    sources = [*PACKAGE.glob("*.py"), PACKAGE.parent / "xgboost_algorithm.py"]
    imported = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported <= allowed, imported - allowed
