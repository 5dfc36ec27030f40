"""The 1.7-1 container's hyperparameter rules, as a table, and the toolkit's way of applying them.

Rule source (rules restated, not copied): aws/sagemaker-xgboost-container,
src/sagemaker_xgboost_container/algorithm_mode/hyperparameter_validation.py (names, types, ranges,
aliases, cross-parameter checks, messages) and src/sagemaker_algorithm_toolkit/hyperparameter_validation.py
(the order of the checks and their messages):

1. aliases become their names (learning_rate -> eta, ...); a later key wins over an earlier one;
2. a missing required name fails ("Missing required hyperparameter: num_round");
3. each value is parsed in the order given; an unknown name or an unparsable value (a ValueError) fails;
   other parse errors (monotone_constraints is eval()'d, interaction_constraints literal_eval()'d) are not
   caught: the job ends with the uncaught SyntaxError or NameError, as the container's does;
4. each value is checked against its range, in the order given;
5. cross-parameter checks run dependencies first.
"""

from __future__ import annotations

import ast
import builtins
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AlgorithmError, NotEmulated, UserError
from .metrics import MAXIMIZE_METRICS, MINIMIZE_METRICS, TUNING_METRIC_NAMES


@dataclass(frozen=True)
class Interval:
    """A numeric range; printed like the toolkit's Interval ("[0, 1]", "(0, 1]", "[0, +inf)")."""

    min_closed: float | None = None
    min_open: float | None = None
    max_closed: float | None = None
    max_open: float | None = None

    def __contains__(self, value: Any) -> bool:
        # The toolkit asks "is it outside?", so NaN (no comparison holds) counts as inside.
        return not (
            (self.min_open is not None and value <= self.min_open)
            or (self.min_closed is not None and value < self.min_closed)
            or (self.max_open is not None and value >= self.max_open)
            or (self.max_closed is not None and value > self.max_closed)
        )

    def __str__(self) -> str:
        low = f"({self.min_open}, " if self.min_open is not None else f"[{self.min_closed}, "
        if self.min_open is None and self.min_closed is None:
            low = "(-inf, "
        high = f"{self.max_open})" if self.max_open is not None else f"{self.max_closed}]"
        if self.max_open is None and self.max_closed is None:
            high = "+inf)"
        return low + high


@dataclass(frozen=True)
class Choices:
    """Allowed values, printed as the Python list the container prints; `check` overrides membership."""

    values: tuple[Any, ...]
    check: Callable[[Any], bool] | None = None

    def __contains__(self, value: Any) -> bool:
        return self.check(value) if self.check else value in self.values

    def __str__(self) -> str:
        return str(list(self.values))


Range = Interval | Choices
Dependencies = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # int | float | category | list (comma-separated) | tuple | nested (list of lists)
    range: Range
    depends_on: tuple[str, ...] = ()
    check_dependencies: Callable[[Any, Dependencies], None] | None = field(default=None, compare=False)
    required: bool = False


# --- cross-parameter checks (messages as the container words them) -------------------------------

_TREE_UPDATERS = (
    "grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker", "sync", "refresh",
    "prune", "grow_quantile_histmaker",
)  # fmt: skip
_TREE_GROWERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_quantile_histmaker")
_LINEAR_UPDATERS = ("shotgun", "coord_descent")


def _check_updater(value: list[str], deps: Dependencies) -> None:
    if deps.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in _LINEAR_UPDATERS):
            # The container's format call prints a generator object here; the gist is kept.
            raise UserError("Linear updater should be one of these options: 'shotgun', 'coord_descent'.")
    elif deps.get("process_type") == "update":
        if not all(item in ("refresh", "prune") for item in value):
            raise UserError("process_type 'update' can only be used with updater 'refresh' and 'prune'")
    else:
        if not all(item in _TREE_UPDATERS for item in value):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', 'distcol', 'grow_histmaker', "
                "'grow_local_histmaker', 'grow_skmaker', 'grow_quantile_histmaker', 'sync', 'refresh', 'prune', "
                "'shortgun', 'coord_descent'."
            )
        if sum(item in _TREE_GROWERS for item in value) > 1:
            raise UserError(
                "Only one tree grow plugin can be selected. Choose one from thefollowing: 'grow_colmaker', "
                "'distcol', 'grow_histmaker', 'grow_local_histmaker', 'grow_skmaker'"
            )


def _check_objective(value: str, deps: Dependencies) -> None:
    if value in ("multi:softmax", "multi:softprob") and deps.get("num_class") is None:
        raise UserError("Require input for parameter 'num_class' for multi-classification")


def _check_eval_metric_objective(value: list[str], deps: Dependencies) -> None:
    # As in the container: the objective is looked up unconditionally, so eval_metric without an
    # objective ends the job with an uncaught KeyError('objective').
    objective = deps["objective"]
    if "auc" in value and not objective.startswith(("binary:", "rank:")):
        raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in value and objective != "survival:aft":
        raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _check_monotone(value: Any, deps: Dependencies) -> None:
    if value is not None and deps.get("tree_method") not in ("exact", "hist"):
        raise UserError(
            "monotone_constraints can be used only when the tree_method parameter is set to either 'exact' or 'hist'."
        )


def _check_interaction(value: Any, deps: Dependencies) -> None:
    if value is not None and deps.get("tree_method") not in ("exact", "hist", "approx"):
        raise UserError(
            "interaction_constraints can be used only when the tree_method parameter is set to "
            "either 'exact', 'hist' or 'approx'."
        )


def _eval_metric_allowed(metric: str) -> bool:
    if "<function" in metric:
        raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = (part.strip() for part in metric.split("@")[:2])
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized threshold should "
                "be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            float(threshold)
        except ValueError:
            raise UserError(f"Threshold value 't' in '{name}@t' expects float input.") from None
        return True
    return metric in MAXIMIZE_METRICS + MINIMIZE_METRICS


def _category(*values: Any, check: Callable[[Any], bool] | None = None) -> Choices:
    return Choices(tuple(values), check)


_OBJECTIVES = (
    "aft_loss_distribution",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:tweedie",
    "survival:aft",
    "survival:cox",
)  # fmt: skip  (the container lists "aft_loss_distribution" as an objective too)
_UPDATER_RANGE = (
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_local_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_local_histmaker",
    "grow_colmaker",
    "shotgun",
    "coord_descent",
    "refresh",
    "prune",
)  # fmt: skip  (repeats as in the container: they show in its message)
_BOOL = _category("true", "false")
_UNIT = Interval(min_closed=0, max_closed=1)
_PROPORTION = Interval(min_open=0, max_closed=1)
_NON_NEGATIVE = Interval(min_closed=0)

# fmt: off
RULES: tuple[Rule, ...] = (
    Rule("num_round", "int", Interval(min_closed=1), required=True),
    Rule("csv_weights", "int", _UNIT),
    Rule("early_stopping_rounds", "int", Interval(min_closed=1)),
    Rule("booster", "category", _category("gbtree", "gblinear", "dart")),
    Rule("verbosity", "int", Interval(min_closed=0, max_closed=3)),
    Rule("nthread", "int", Interval(min_closed=1)),
    Rule("eta", "float", _UNIT),
    Rule("gamma", "float", _NON_NEGATIVE),
    Rule("max_depth", "int", _NON_NEGATIVE),
    Rule("min_child_weight", "float", _NON_NEGATIVE),
    Rule("max_delta_step", "float", _NON_NEGATIVE),
    Rule("subsample", "float", _PROPORTION),
    Rule("colsample_bytree", "float", _PROPORTION),
    Rule("colsample_bylevel", "float", _PROPORTION),
    Rule("colsample_bynode", "float", _PROPORTION),
    Rule("lambda", "float", _NON_NEGATIVE),
    Rule("alpha", "float", _NON_NEGATIVE),
    Rule("tree_method", "category", _category("auto", "exact", "approx", "hist", "gpu_hist")),
    Rule("sketch_eps", "float", Interval(min_open=0, max_open=1)),
    Rule("scale_pos_weight", "float", Interval(min_open=0)),
    Rule("updater", "list", Choices(_UPDATER_RANGE), ("booster", "process_type"), _check_updater),
    Rule("dsplit", "category", _category("row", "col")),
    Rule("refresh_leaf", "int", _UNIT),
    Rule("process_type", "category", _category("default", "update")),
    Rule("grow_policy", "category", _category("depthwise", "lossguide")),
    Rule("max_leaves", "int", _NON_NEGATIVE),
    Rule("max_bin", "int", _NON_NEGATIVE),
    Rule("predictor", "category", _category("auto", "cpu_predictor", "gpu_predictor")),
    Rule("monotone_constraints", "tuple", Choices((-1, 0, 1)), ("tree_method",), _check_monotone),
    Rule("interaction_constraints", "nested", Interval(min_closed=1), ("tree_method",), _check_interaction),
    Rule("sample_type", "category", _category("uniform", "weighted")),
    Rule("normalize_type", "category", _category("tree", "forest")),
    Rule("rate_drop", "float", _UNIT),
    Rule("one_drop", "int", _UNIT),
    Rule("skip_drop", "float", _UNIT),
    Rule("lambda_bias", "float", _UNIT),
    Rule("tweedie_variance_power", "float", Interval(min_open=1, max_open=2)),
    Rule("objective", "category", Choices(_OBJECTIVES), ("num_class",), _check_objective),
    Rule("num_class", "int", Interval(min_closed=2)),
    Rule("base_score", "float", _NON_NEGATIVE),
    Rule("_kfold", "int", Interval(min_closed=2)),
    Rule("_num_cv_round", "int", Interval(min_closed=1)),
    Rule("_tuning_objective_metric", "category", Choices(TUNING_METRIC_NAMES)),
    Rule("eval_metric", "list", Choices(MAXIMIZE_METRICS + MINIMIZE_METRICS, _eval_metric_allowed),
         ("objective",), _check_eval_metric_objective),
    Rule("seed", "int", Interval(min_open=-(2**31), max_open=2**31 - 1)),
    Rule("num_parallel_tree", "int", Interval(min_closed=1)),
    Rule("save_model_on_termination", "category", _BOOL),
    Rule("aft_loss_distribution", "category", _category("normal", "logistic", "extreme")),
    Rule("aft_loss_distribution_scale", "float", _NON_NEGATIVE),
    Rule("single_precision_histogram", "category", _BOOL),
    Rule("deterministic_histogram", "category", _BOOL),
    Rule("sampling_method", "category", _category("uniform", "gradient_based")),
    Rule("prob_buffer_row", "int", Interval(min_open=1.0)),
    # XGBoost 1.5+: Dask training over the hosts' GPUs. train.py pops it; "true" is refused as not emulated.
    Rule("use_dask_gpu_training", "category", _BOOL),
)
# fmt: on
RULES_BY_NAME = {rule.name: rule for rule in RULES}
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}


def _parse(rule: Rule, value: str) -> Any:
    if rule.kind == "int":
        return int(value)
    if rule.kind == "float":
        return float(value)
    if rule.kind == "list":
        return value.split(",")
    if rule.kind == "tuple":
        return _eval_like_the_container(value)
    if rule.kind == "nested":
        # ast.literal_eval as in the image's Python 3.8, which does not strip leading spaces (3.10+ does):
        # a SyntaxError (IndentationError included) passes through, a non-literal is a ValueError.
        return ast.literal_eval(ast.parse(value, mode="eval"))
    return value


_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}


def _eval_like_the_container(text: str) -> Any:
    """What the container's eval(text) gives or raises, for displays of literals and names, running no code.

    eval() drops leading spaces and tabs and compiles as "<string>", so a SyntaxError passes through as eval's.
    Tuples, lists, sets and dicts of literals, unary signs and names evaluate as eval evaluates them: left to
    right, a name from the builtins or eval's NameError, a set of a list eval's TypeError. Anything else (a
    call, arithmetic, an attribute) would run code: refused as not emulated."""
    tree = ast.parse(text.lstrip(" \t"), filename="<string>", mode="eval")
    return _evaluate(tree.body, text)


def _evaluate(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if not hasattr(builtins, node.id):
            raise NameError(f"name '{node.id}' is not defined")
        return getattr(builtins, node.id)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, text))
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        items = [_evaluate(item, text) for item in node.elts]  # all evaluated before the display is built
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:  # (a None key is a ** unpacking)
        pairs = [
            (_evaluate(key, text), _evaluate(value, text))
            for key, value in zip(node.keys, node.values, strict=True)
            if key is not None
        ]
        return dict(pairs)
    raise NotEmulated(f"monotone_constraints given as a Python expression ({text!r})")


def _check_range(rule: Rule, value: Any) -> None:
    if rule.kind == "list":
        if any(item not in rule.range for item in value):
            raise UserError(f"Hyperparameter {rule.name}: value {value} not in range {rule.range}")
        return
    if rule.kind == "nested":
        outside = any(item not in rule.range for inner in value for item in inner)
    elif rule.kind == "tuple":
        outside = any(item not in rule.range for item in value)
    else:
        outside = value not in rule.range
    if outside:
        shown = "value " if rule.kind in ("nested", "tuple") else ""
        middle = "not in range" if shown else "is not in"
        raise UserError(f"Hyperparameter {rule.name}: {shown}{value} {middle} {rule.range}")


def _dependency_order(names: list[str]) -> list[str]:
    """The toolkit's order: a depth-first walk that puts each name's dependencies before it."""
    stack: list[str] = []
    visited = dict.fromkeys(names, False)

    def visit(name: str) -> None:
        visited[name] = True
        for dependency in RULES_BY_NAME[name].depends_on:
            if dependency in visited and not visited[dependency]:
                visit(dependency)
        stack.insert(0, name)

    for name in names:
        if not visited[name]:
            visit(name)
    return stack


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parsed hyperparameters, or raise the container's error for the first broken rule."""
    # SageMaker passes every value as a string; str() lets hand-written configs use numbers.
    given = {ALIASES.get(str(name), str(name)): str(value) for name, value in raw.items()}
    for required in (rule.name for rule in RULES if rule.required):
        if required not in given:
            raise UserError(f"Missing required hyperparameter: {required}")
    parsed: dict[str, Any] = {}
    for name, text in given.items():
        rule = RULES_BY_NAME.get(name)
        if rule is None:
            raise UserError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = _parse(rule, text)
        except ValueError as exc:
            raise UserError(f"Hyperparameter {name}: could not parse value", caused_by=exc) from None
    for name, value in parsed.items():
        try:
            _check_range(RULES_BY_NAME[name], value)
        except UserError:
            raise
        except Exception as exc:  # e.g. monotone_constraints=1: not a tuple to iterate
            raise AlgorithmError(f"Hyperparameter {name}: unexpected failure when validating {value}", exc) from None
    order = _dependency_order(list(parsed))
    validated: dict[str, Any] = {}
    while order:
        name = order.pop()
        rule = RULES_BY_NAME[name]
        if rule.check_dependencies is not None:
            known = {dep: validated[dep] for dep in rule.depends_on if dep in validated}
            rule.check_dependencies(parsed[name], known)
        validated[name] = parsed[name]
    return validated
