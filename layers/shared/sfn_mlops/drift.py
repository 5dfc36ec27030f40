"""Data drift: a baseline of the training split and a check of batch input against it.

The baseline is written in SageMaker Model Monitor's documented file formats (``statistics.json``,
``constraints.json``) and a check reports ``constraint_violations.json`` in Model Monitor's format, with
its check types. Everything here is pure Python (it runs in Lambda): no numpy.

Numeric features keep exact quantiles of the training split as the KLL sketch's data (all values up to
``SKETCH_K`` rows); the check measures the Population Stability Index on the baseline's decile bins and
the Kolmogorov-Smirnov distance ``sup |ECDF_batch - CDF_baseline|`` against them. Categorical features are
compared by L-infinity distance or a chi-square test over the baseline's domain.
"""

from __future__ import annotations

import csv
import io
import json
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfn_mlops.errors import DatasetValidationError, InvalidBaseline, validation_problems
from sfn_mlops.events import parse_event
from sfn_mlops.pipeline import DriftSpec

__all__ = [
    "DRIFT_METRICS_NAMESPACE",
    "DriftReport",
    "DriftSpec",
    "FeatureDrift",
    "Violation",
    "build_baseline",
    "check_input",
    "metric_data",
    "parse_write_baseline_event",
    "write_training_baseline",
]

DRIFT_METRICS_NAMESPACE = "sfn-mlops/Drift"
# Cells spelled like this are missing values, as the preprocess script reads them.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# Model Monitor's KLL parameters; up to K values the sketch is exact (all values), beyond it K quantiles.
SKETCH_C, SKETCH_K = 0.64, 2048
HISTOGRAM_BUCKETS = 10  # Model Monitor materialises distributions in 10 buckets
PSI_BINS = 10  # deciles of the baseline
PSI_FLOOR = 1e-4  # an empty bin's share, so that PSI stays finite
# "Robust" comparison: a distance only counts when the difference is also significant at this level for the
# sample sizes (KS for numeric features, chi-square for categorical ones): a 10-row batch differs from any
# baseline by chance.
ROBUST_ALPHA = 0.01
# A string column (not declared categorical) keeps its observed values as its domain up to this many.
MAX_DOMAIN = 50
MAX_SHOWN = 5

CheckType = Literal[
    "missing_column_check",
    "extra_column_check",
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "categorical_values_check",
]
InferredType = Literal["Integral", "Fractional", "String", "Unknown"]


# ------------------------------------------------------------------------------------------------ the report
class Violation(BaseModel):
    """One entry of constraint_violations.json."""

    feature_name: str
    constraint_check_type: CheckType
    description: str


class FeatureDrift(BaseModel):
    """What the check measured on one feature of the batch."""

    inferred_type: InferredType
    completeness: float
    psi: float | None = None
    ks: float | None = None
    linf: float | None = None
    chi2_p: float | None = None
    unknown_categories: list[str] | None = None
    drifted: bool = False


class DriftReport(BaseModel):
    status: Literal["OK", "DRIFT"]
    row_count: int
    violations: list[Violation]
    features: dict[str, FeatureDrift]

    def violations_document(self) -> dict[str, Any]:
        """constraint_violations.json"""
        return {"violations": [v.model_dump() for v in self.violations]}


# ------------------------------------------------------------------------------------------------ the baseline
def _as_float(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_integral(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def _columns(header: Sequence[str], rows: Iterable[Sequence[str]]) -> tuple[list[str], list[list[str]], int]:
    """The stripped header and the table column by column (a ragged row is an error)."""
    names = [str(name).strip() for name in header]
    width = len(names)
    table = list(rows)
    if set(map(len, table)) - {width}:
        number, row = next((i, row) for i, row in enumerate(table, start=1) if len(row) != width)
        raise DatasetValidationError(f"data row {number} has {len(row)} fields but the header has {width}")
    if not table:
        return names, [[] for _ in names], 0
    return names, [list(map(str.strip, column)) for column in zip(*table, strict=True)], len(table)


def _present(cells: list[str]) -> list[str]:
    """The cells that are not missing; the set of distinct cells is small next to a large batch."""
    missing = {cell for cell in set(cells) if cell.lower() in MISSING_TOKENS}
    return [cell for cell in cells if cell not in missing] if missing else cells


def _infer_type(present: list[str]) -> InferredType:
    if not present:
        return "Unknown"
    # map() keeps the parsing at C speed on a large training split; the first bad cell ends each attempt.
    try:
        list(map(int, present))
        return "Integral"
    except ValueError:
        pass
    try:
        return "Fractional" if all(map(math.isfinite, map(float, present))) else "String"
    except ValueError:
        return "String"


def _sketch_points(ordered: list[float]) -> list[float]:
    """All values up to K (an exact sketch); beyond, the K mid-quantiles, each standing for n/K values."""
    n = len(ordered)
    if n <= SKETCH_K:
        return list(ordered)
    return [ordered[min(n - 1, int((i + 0.5) * n / SKETCH_K))] for i in range(SKETCH_K)]


def _histogram(ordered: list[float]) -> list[dict[str, float]]:
    low, high = ordered[0], ordered[-1]
    width = (high - low) / HISTOGRAM_BUCKETS
    if width == 0:
        return [{"lower_bound": low, "upper_bound": high, "count": float(len(ordered))}]
    buckets = []
    start = 0
    for i in range(HISTOGRAM_BUCKETS):
        upper = high if i == HISTOGRAM_BUCKETS - 1 else low + (i + 1) * width
        end = len(ordered) if i == HISTOGRAM_BUCKETS - 1 else bisect_left(ordered, upper, lo=start)
        buckets.append({"lower_bound": low + i * width, "upper_bound": upper, "count": float(end - start)})
        start = end
    return buckets


def _numeric_statistics(values: list[float], missing: int) -> dict[str, Any]:
    ordered = sorted(values)
    n = len(ordered)
    total = math.fsum(ordered)
    mean = total / n
    variance = math.fsum((v - mean) ** 2 for v in ordered) / n  # population, as Deequ's StandardDeviation
    return {
        "common": {"num_present": n, "num_missing": missing},
        "mean": mean,
        "sum": total,
        "std_dev": math.sqrt(variance),
        "min": ordered[0],
        "max": ordered[-1],
        "distribution": {
            "kll": {
                "buckets": _histogram(ordered),
                "sketch": {"parameters": {"c": SKETCH_C, "k": float(SKETCH_K)}, "data": [_sketch_points(ordered)]},
            }
        },
    }


def build_baseline(
    header: list[str], rows: Iterable[Sequence[str]], label: str, categorical: dict[str, list[str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics.json, constraints.json) of a raw table (the training split as read), in Model Monitor's formats.

    The label is not a feature (batch input has none). A categorical column's domain is its declared
    categories (what the model was fitted on), in their order."""
    names, columns, row_count = _columns(header, rows)
    if row_count == 0:
        raise InvalidBaseline("the training data has a header but no rows: there is nothing to make a baseline of")
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise InvalidBaseline(f"categorical column(s) {', '.join(unknown)} not among the columns {', '.join(names)}")
    stats_features: list[dict[str, Any]] = []
    constraint_features: list[dict[str, Any]] = []
    for name, cells in zip(names, columns, strict=True):
        if name == label:
            continue
        present = _present(cells)
        missing = row_count - len(present)
        inferred: InferredType = "String" if name in categorical else _infer_type(present)
        constraint: dict[str, Any] = {
            "name": name,
            "inferred_type": inferred,
            "completeness": len(present) / row_count,
        }
        if inferred in ("Integral", "Fractional"):
            numeric = _numeric_statistics(list(map(float, present)), missing)
            stats_features.append({"name": name, "inferred_type": inferred, "numerical_statistics": numeric})
            constraint["num_constraints"] = {"is_non_negative": numeric["min"] >= 0}
        elif inferred == "String":
            counts = Counter(present)
            declared = categorical.get(name)
            domain = list(declared) if declared is not None else sorted(counts)
            order = domain + sorted(v for v in counts if v not in domain)
            buckets = [{"value": value, "count": counts.get(value, 0)} for value in order if value in counts]
            stats_features.append(
                {
                    "name": name,
                    "inferred_type": "String",
                    "string_statistics": {
                        "common": {"num_present": len(present), "num_missing": missing},
                        "distinct_count": float(len(counts)),
                        "distribution": {"categorical": {"buckets": buckets}},
                    },
                }
            )
            if declared is not None or len(domain) <= MAX_DOMAIN:
                constraint["string_constraints"] = {"domains": domain}
        else:
            stats_features.append({"name": name, "inferred_type": "Unknown"})
        constraint_features.append(constraint)
    statistics = {"version": 0.0, "dataset": {"item_count": float(row_count)}, "features": stats_features}
    defaults = DriftSpec()
    constraints = {
        "version": 0.0,
        "features": constraint_features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            # Shares of present values that must have the baseline's type / lie in its domain.
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": defaults.ks_threshold,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": defaults.categorical_threshold,
                "categorical_drift_method": defaults.categorical_method,
            },
        },
    }
    return statistics, constraints


# ------------------------------------------------------------------------------------ reading a baseline back
class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Common(_Loose):
    num_present: float = Field(ge=0)
    num_missing: float = Field(default=0, ge=0)


class _Sketch(_Loose):
    data: list[list[float]]


class _Kll(_Loose):
    sketch: _Sketch


class _NumericDistribution(_Loose):
    kll: _Kll


class _NumericStatistics(_Loose):
    common: _Common
    distribution: _NumericDistribution


class _Bucket(_Loose):
    value: str
    count: float = Field(ge=0)


class _Categorical(_Loose):
    buckets: list[_Bucket]


class _StringDistribution(_Loose):
    categorical: _Categorical


class _StringStatistics(_Loose):
    common: _Common
    distribution: _StringDistribution | None = None


class _FeatureStatistics(_Loose):
    name: str
    inferred_type: InferredType
    numerical_statistics: _NumericStatistics | None = None
    string_statistics: _StringStatistics | None = None


class _Statistics(_Loose):
    features: list[_FeatureStatistics]


class _NumConstraints(_Loose):
    is_non_negative: bool | None = None


class _StringConstraints(_Loose):
    domains: list[str] | None = None


class _FeatureConstraint(_Loose):
    name: str
    inferred_type: InferredType
    completeness: float = Field(default=1.0, ge=0, le=1)
    num_constraints: _NumConstraints | None = None
    string_constraints: _StringConstraints | None = None


class _MonitoringConfig(_Loose):
    datatype_check_threshold: float = Field(default=1.0, ge=0, le=1)
    domain_content_threshold: float = Field(default=1.0, ge=0, le=1)


class _Constraints(_Loose):
    features: list[_FeatureConstraint]
    monitoring_config: _MonitoringConfig = _MonitoringConfig()


def _parse(model: type[BaseModel], document: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = validation_problems(exc, root="<root>", limit=3)
        raise InvalidBaseline(f"the data baseline's {what} is not in Model Monitor's format: {problems}") from None


# ------------------------------------------------------------------------------------------------ distances
def _cdf(points: list[float], x: float) -> float:
    return bisect_right(points, x) / len(points)


def psi(batch: list[float], points: list[float]) -> float:
    """Population Stability Index of sorted ``batch`` on the deciles of the baseline's sorted ``points``."""
    edges = sorted({points[min(len(points) - 1, int(len(points) * q / PSI_BINS))] for q in range(1, PSI_BINS)})
    total = 0.0
    previous_base = previous_batch = 0.0
    for edge in [*edges, math.inf]:
        base_cum = 1.0 if edge == math.inf else _cdf(points, edge)
        batch_cum = 1.0 if edge == math.inf else bisect_right(batch, edge) / len(batch)
        expected = max(base_cum - previous_base, PSI_FLOOR)
        actual = max(batch_cum - previous_batch, PSI_FLOOR)
        total += (actual - expected) * math.log(actual / expected)
        previous_base, previous_batch = base_cum, batch_cum
    return total


def ks_distance(batch: list[float], points: list[float]) -> float:
    """sup |ECDF_batch - CDF_baseline|; both are right-continuous steps, so the sup is at one of their points."""
    n, m = len(batch), len(points)
    best = 0.0
    for x in set(batch).union(points):
        best = max(best, abs(bisect_right(batch, x) / n - bisect_right(points, x) / m))
    return best


def ks_critical(n: int, m: int, alpha: float = ROBUST_ALPHA) -> float:
    """The two-sample KS statistic above which the samples differ at level ``alpha`` (asymptotic)."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def _upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): a series below a + 1, a continued fraction above (Lentz)."""
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        k = a
        for _ in range(10_000):
            k += 1
            term *= x / k
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi_square_p(observed: dict[str, int], expected_share: dict[str, float]) -> float:
    """p-value of a chi-square goodness-of-fit test of ``observed`` counts against the baseline's shares."""
    total = sum(observed.values())
    categories = [c for c in expected_share if expected_share[c] > 0]
    if total == 0 or len(categories) < 2:
        return 1.0
    statistic = 0.0
    for category in categories:
        expected = expected_share[category] * total
        statistic += (observed.get(category, 0) - expected) ** 2 / expected
    return _upper_gamma_regularized((len(categories) - 1) / 2, statistic / 2)


def linf_distance(observed: dict[str, int], expected_share: dict[str, float]) -> float:
    total = sum(observed.values())
    if total == 0:
        return 0.0
    return max(abs(observed.get(c, 0) / total - expected_share.get(c, 0.0)) for c in {*observed, *expected_share})


# ------------------------------------------------------------------------------------------------ the check
def _pct(share: float) -> str:
    return f"{100 * share:.4g}%"


def _shown(values: Iterable[str]) -> str:
    listed = sorted(values)
    more = f" and {len(listed) - MAX_SHOWN} more" if len(listed) > MAX_SHOWN else ""
    return ", ".join(repr(v) for v in listed[:MAX_SHOWN]) + more


class _Checker:
    def __init__(self, statistics: _Statistics, constraints: _Constraints, spec: DriftSpec, row_count: int) -> None:
        self.statistics = {f.name: f for f in statistics.features}
        self.config = constraints.monitoring_config
        self.spec = spec
        self.row_count = row_count
        self.violations: list[Violation] = []

    def flag(self, feature: str, check: CheckType, description: str) -> None:
        self.violations.append(Violation(feature_name=feature, constraint_check_type=check, description=description))

    def feature(self, constraint: _FeatureConstraint, cells: list[str]) -> FeatureDrift:
        name = constraint.name
        present = _present(cells)
        completeness = len(present) / self.row_count if self.row_count else 0.0
        if completeness < constraint.completeness - self.spec.completeness_tolerance - 1e-12:
            self.flag(
                name,
                "completeness_check",
                f"{name}: {_pct(completeness)} of values present, the training baseline had "
                f"{_pct(constraint.completeness)} (tolerance {_pct(self.spec.completeness_tolerance)})",
            )
        drift = FeatureDrift(inferred_type=constraint.inferred_type, completeness=completeness)
        stats = self.statistics.get(name)
        if constraint.inferred_type in ("Integral", "Fractional"):
            self._numeric(constraint, present, drift, stats)
        elif constraint.inferred_type == "String":
            self._string(constraint, present, drift, stats)
        return drift

    def _numeric(
        self, constraint: _FeatureConstraint, present: list[str], drift: FeatureDrift, stats: _FeatureStatistics | None
    ) -> None:
        name = constraint.name
        integral = constraint.inferred_type == "Integral"
        try:  # the common case, at C speed: every present cell has the baseline's type
            values = [float(v) for v in map(int, present)] if integral else list(map(float, present))
            wrong: list[str] = [] if all(map(math.isfinite, values)) else [c for c in present if _as_float(c) is None]
            if wrong:
                values = [v for v in values if math.isfinite(v)]
        except ValueError:
            values, wrong = [], []
            for cell in present:
                value = _as_float(cell)
                if value is None or (integral and not _is_integral(cell)):
                    wrong.append(cell)
                if value is not None:
                    values.append(value)
        if present:
            conforming = 1 - len(wrong) / len(present)
            if conforming < self.config.datatype_check_threshold:
                self.flag(
                    name,
                    "data_type_check",
                    f"{name}: {_pct(conforming)} of present values are {constraint.inferred_type}, the training "
                    f"baseline requires {_pct(self.config.datatype_check_threshold)} (e.g. {_shown(set(wrong))})",
                )
        values.sort()
        if constraint.num_constraints and constraint.num_constraints.is_non_negative and values and values[0] < 0:
            negative = bisect_left(values, 0.0)
            self.flag(
                name,
                "data_type_check",
                f"{name}: {negative} negative value(s) (min {values[0]:.6g}); the training baseline is non-negative",
            )
        sketch = stats.numerical_statistics if stats is not None else None
        if not values or sketch is None or not sketch.distribution.kll.sketch.data:
            return
        points = sorted(p for level in sketch.distribution.kll.sketch.data for p in level)
        if not points:
            return
        drift.psi = round(psi(values, points), 6)
        drift.ks = round(ks_distance(values, points), 6)
        baseline_n = int(sketch.common.num_present) or len(points)
        significant = drift.ks > ks_critical(len(values), baseline_n)
        over = []
        if drift.psi > self.spec.psi_threshold:
            over.append(f"PSI {drift.psi:.3g} > {self.spec.psi_threshold:g}")
        if drift.ks > self.spec.ks_threshold:
            over.append(f"KS {drift.ks:.3g} > {self.spec.ks_threshold:g}")
        if over and significant:
            drift.drifted = True
            self.flag(name, "baseline_drift_check", f"{name}: {' and '.join(over)} against the training baseline")

    def _string(
        self, constraint: _FeatureConstraint, present: list[str], drift: FeatureDrift, stats: _FeatureStatistics | None
    ) -> None:
        name = constraint.name
        counts = Counter(present)
        domain = constraint.string_constraints.domains if constraint.string_constraints else None
        if domain is None:
            return
        known = set(domain)
        unknown = {value: n for value, n in counts.items() if value not in known}
        drift.unknown_categories = sorted(unknown)
        if present and unknown:
            inside = 1 - sum(unknown.values()) / len(present)
            if inside < self.config.domain_content_threshold:
                drift.drifted = True
                self.flag(
                    name,
                    "categorical_values_check",
                    f"{name}: {sum(unknown.values())} value(s) outside the training baseline's domain "
                    f"({', '.join(repr(v) for v in domain)}): {_shown(unknown)}",
                )
        string_stats = stats.string_statistics if stats is not None else None
        if string_stats is None or string_stats.distribution is None:
            return
        base = {b.value: b.count for b in string_stats.distribution.categorical.buckets if b.value in known}
        base_total = sum(base.values())
        # Unknown values are the domain check's business: the distance compares the known categories' shares.
        observed = {value: n for value, n in counts.items() if value in known}
        if base_total == 0 or not observed:
            return
        shares = {value: base.get(value, 0.0) / base_total for value in domain}
        if self.spec.categorical_method == "LInfinity":
            drift.linf = round(linf_distance(observed, shares), 6)
            # Robust, as for numeric features: the distance counts when the shares also differ significantly.
            if drift.linf > self.spec.categorical_threshold and chi_square_p(observed, shares) < ROBUST_ALPHA:
                drift.drifted = True
                self.flag(
                    name,
                    "baseline_drift_check",
                    f"{name}: L-infinity distance {drift.linf:.3g} > {self.spec.categorical_threshold:g} "
                    "against the training baseline",
                )
        else:
            drift.chi2_p = chi_square_p(observed, shares)
            if drift.chi2_p < self.spec.categorical_threshold:
                drift.drifted = True
                self.flag(
                    name,
                    "baseline_drift_check",
                    f"{name}: chi-square p-value {drift.chi2_p:.3g} < {self.spec.categorical_threshold:g} "
                    "against the training baseline",
                )


def check_input(
    header: list[str],
    rows: Iterable[Sequence[str]],
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    spec: DriftSpec,
    id_columns: Sequence[str] = (),
) -> DriftReport:
    """Compare batch input (raw rows, as an endpoint or transform job takes them) with a baseline.

    ``id_columns`` are neither features nor extra columns. Violations use Model Monitor's check types."""
    parsed_stats: _Statistics = _parse(_Statistics, statistics, "statistics.json")
    parsed_constraints: _Constraints = _parse(_Constraints, constraints, "constraints.json")
    names, columns, row_count = _columns(header, rows)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetValidationError(f"duplicate column names in the header: {', '.join(duplicates)}")
    checker = _Checker(parsed_stats, parsed_constraints, spec, row_count)
    by_name = dict(zip(names, columns, strict=True))
    expected = [f.name for f in parsed_constraints.features]
    for name in expected:
        if name not in by_name:
            checker.flag(name, "missing_column_check", f"{name}: a column of the training baseline is missing")
    ignored = set(id_columns)
    for name in names:
        if name not in expected and name not in ignored:
            checker.flag(name, "extra_column_check", f"{name}: not a column of the training baseline")
    features = {
        constraint.name: checker.feature(constraint, by_name[constraint.name])
        for constraint in parsed_constraints.features
        if constraint.name in by_name
    }
    return DriftReport(
        status="DRIFT" if checker.violations else "OK",
        row_count=row_count,
        violations=checker.violations,
        features=features,
    )


# ---------------------------------------------------------------------------- the preprocess worker's step
BASELINE_ROWS_FILE = "train.csv"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
SCHEMA_FILE = "schema.json"


class PreprocessOutputs(BaseModel):
    """The preprocess job's outputs the baseline is made from (prefixes ending in '/')."""

    model_config = ConfigDict(extra="allow")
    baseline_uri: str = Field(pattern=r"^s3://[^/]+/.*/$")
    schema_uri: str = Field(pattern=r"^s3://[^/]+/.*/$")


class WriteBaselineEvent(BaseModel):
    run_id: str = Field(min_length=1)
    pipeline: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    outputs: PreprocessOutputs


def parse_write_baseline_event(event: object) -> WriteBaselineEvent:
    """The preprocess worker's write-baseline event (``InvalidEvent`` naming the bad field)."""
    return parse_event(WriteBaselineEvent, event, "write-baseline input")


def _split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _get(s3: Any, uri: str, what: str) -> bytes:
    bucket, key = _split_uri(uri)
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in {"NoSuchKey", "404", "NotFound"}:
            raise InvalidBaseline(f"{what} is missing: {uri} does not exist") from None
        raise
    return body


def write_training_baseline(s3: Any, event: WriteBaselineEvent) -> dict[str, Any]:
    """statistics.json and constraints.json next to the raw training split the preprocess job wrote.

    Always computed from that file (deterministic, so the adoption of a completed job writes the same bytes
    again); returns ``{"baseline": {"statistics": uri, "constraints": uri}}`` for the unit's outputs."""
    prefix = event.outputs.baseline_uri
    schema_bytes = _get(s3, event.outputs.schema_uri + SCHEMA_FILE, "the preprocess unit's schema")
    try:
        schema = json.loads(schema_bytes)
        label = str(schema["label"])
        categorical = {str(k): [str(v) for v in values] for k, values in dict(schema["categorical"]).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidBaseline(
            f"the preprocess unit's schema {event.outputs.schema_uri}{SCHEMA_FILE} does not name the label and "
            f"categorical columns ({type(exc).__name__}: {exc})"
        ) from None
    raw = _get(
        s3,
        prefix + BASELINE_ROWS_FILE,
        "the raw training split (the preprocess script writes it to baseline/train.csv with its header)",
    )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidBaseline(f"{prefix}{BASELINE_ROWS_FILE} is not UTF-8 text: {exc}") from None
    records = [record for record in csv.reader(io.StringIO(text, newline="")) if record]
    if not records:
        raise InvalidBaseline(f"{prefix}{BASELINE_ROWS_FILE} is empty: it needs a header and the training rows")
    statistics, constraints = build_baseline(records[0], records[1:], label, categorical)
    bucket, key = _split_uri(prefix)
    uris = {}
    for name, document in (("statistics", statistics), ("constraints", constraints)):
        file_key = key + (STATISTICS_FILE if name == "statistics" else CONSTRAINTS_FILE)
        body = (json.dumps(document, indent=2) + "\n").encode()
        s3.put_object(Bucket=bucket, Key=file_key, Body=body, ContentType="application/json")
        uris[name] = f"s3://{bucket}/{file_key}"
    return {"baseline": uris, "features": len(constraints["features"]), "rows": len(records) - 1}


# ------------------------------------------------------------------------------------------------ metrics
METRIC_FIELDS = {"psi": "PSI", "ks": "KS", "linf": "LInfinity", "chi2_p": "ChiSquaredPValue"}


def metric_data(report: DriftReport, pipeline: str) -> list[dict[str, Any]]:
    """CloudWatch PutMetricData entries (namespace DRIFT_METRICS_NAMESPACE): per feature its distances and
    completeness (dimensions Pipeline, Feature), and the batch's violation count (dimension Pipeline)."""
    data: list[dict[str, Any]] = []
    for feature, drift in sorted(report.features.items()):
        dimensions = [{"Name": "Pipeline", "Value": pipeline}, {"Name": "Feature", "Value": feature}]
        measured = {"Completeness": drift.completeness}
        measured.update({METRIC_FIELDS[k]: v for k in METRIC_FIELDS if (v := getattr(drift, k)) is not None})
        for metric, value in measured.items():
            data.append({"MetricName": metric, "Dimensions": dimensions, "Value": float(value), "Unit": "None"})
    data.append(
        {
            "MetricName": "Violations",
            "Dimensions": [{"Name": "Pipeline", "Value": pipeline}],
            "Value": float(len(report.violations)),
            "Unit": "Count",
        }
    )
    return data
