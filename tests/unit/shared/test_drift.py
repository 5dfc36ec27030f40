"""Drift: abalone's training split as the baseline (Model Monitor's formats), batches checked against it."""

from __future__ import annotations

import csv
import json
import time
from typing import Any

import numpy as np
import pytest
from scipy import special, stats
from sfn_mlops.drift import (
    DRIFT_METRICS_NAMESPACE,
    SKETCH_K,
    DriftReport,
    DriftSpec,
    build_baseline,
    check_input,
    chi_square_p,
    ks_distance,
    metric_data,
    psi,
)
from sfn_mlops.errors import DatasetValidationError, InvalidBaseline, InvalidPipelineConfig
from sfn_mlops.pipeline import parse_pipeline_config

from tests.conftest import ROOT

LABEL = "rings"
CATEGORICAL = {"sex": ["M", "F", "I"]}
CHECK_TYPES = {
    "missing_column_check",
    "extra_column_check",
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "categorical_values_check",
}


def _read() -> tuple[list[str], list[list[str]]]:
    with (ROOT / "models/abalone/data/abalone.csv").open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


HEADER, ROWS = _read()
# The preprocess script's split: a RandomState(42) permutation, the first 70% train.
ORDER = np.random.RandomState(42).permutation(len(ROWS))
TRAIN = [ROWS[i] for i in ORDER[: int(len(ROWS) * 0.7)]]
HELD_OUT = [ROWS[i] for i in ORDER[int(len(ROWS) * 0.7) :]]
FEATURES = [c for c in HEADER if c != LABEL]


def without_label(rows: list[list[str]]) -> list[list[str]]:
    index = HEADER.index(LABEL)
    return [row[:index] + row[index + 1 :] for row in rows]


@pytest.fixture(scope="module")
def baseline() -> tuple[dict[str, Any], dict[str, Any]]:
    return build_baseline(HEADER, TRAIN, LABEL, CATEGORICAL)


def check(
    baseline: tuple[dict[str, Any], dict[str, Any]], header: list[str], rows: list[list[str]], **spec: Any
) -> DriftReport:
    statistics, constraints = baseline
    return check_input(header, rows, statistics, constraints, DriftSpec(**spec))


def flagged(report: Any) -> set[tuple[str, str]]:
    return {(v.feature_name, v.constraint_check_type) for v in report.violations}


def column(rows: list[list[str]], name: str, header: list[str] = HEADER) -> list[float]:
    return [float(row[header.index(name)]) for row in rows]


# ------------------------------------------------------------------------------------------------ the baseline
def test_the_baseline_is_in_model_monitors_statistics_format_without_the_label(baseline: Any) -> None:
    statistics, _ = baseline
    assert statistics["version"] == 0.0 and statistics["dataset"] == {"item_count": float(len(TRAIN))}
    assert [f["name"] for f in statistics["features"]] == FEATURES
    by_name = {f["name"]: f for f in statistics["features"]}
    length = by_name["length"]
    assert length["inferred_type"] == "Fractional"
    numeric = length["numerical_statistics"]
    values = np.array(column(TRAIN, "length"))
    assert numeric["common"] == {"num_present": len(TRAIN), "num_missing": 0}
    assert numeric["mean"] == pytest.approx(values.mean()) and numeric["sum"] == pytest.approx(values.sum())
    assert numeric["std_dev"] == pytest.approx(values.std()) and numeric["min"] == values.min()
    assert numeric["max"] == values.max()
    kll = numeric["distribution"]["kll"]
    assert len(kll["buckets"]) == 10 and sum(b["count"] for b in kll["buckets"]) == len(TRAIN)
    assert kll["buckets"][0]["lower_bound"] == values.min() and kll["buckets"][-1]["upper_bound"] == values.max()
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    # More rows than the sketch keeps: K quantiles of the split, in order
    (points,) = kll["sketch"]["data"]
    assert len(points) == SKETCH_K and points == sorted(points)
    assert np.quantile(values, 0.5) == pytest.approx(points[SKETCH_K // 2], abs=0.01)
    sex = by_name["sex"]
    assert sex["inferred_type"] == "String"
    buckets = sex["string_statistics"]["distribution"]["categorical"]["buckets"]
    counts = {c: sum(row[0] == c for row in TRAIN) for c in "MFI"}
    assert buckets == [{"value": c, "count": counts[c]} for c in "MFI"]
    assert sex["string_statistics"]["distinct_count"] == 3.0


def test_the_baseline_constraints_carry_types_completeness_non_negativity_and_domains(baseline: Any) -> None:
    _, constraints = baseline
    assert constraints["version"] == 0.0
    by_name = {f["name"]: f for f in constraints["features"]}
    assert list(by_name) == FEATURES
    assert by_name["sex"] == {
        "name": "sex",
        "inferred_type": "String",
        "completeness": 1.0,
        "string_constraints": {"domains": ["M", "F", "I"]},
    }
    assert by_name["height"]["num_constraints"] == {"is_non_negative": True}
    assert all(f["completeness"] == 1.0 for f in constraints["features"])
    config = constraints["monitoring_config"]
    assert config["evaluate_constraints"] == "Enabled" and config["emit_metrics"] == "Enabled"
    assert config["distribution_constraints"] == {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    }
    json.dumps(constraints)  # serialisable as it is written to S3


def test_a_small_training_split_is_kept_whole_in_the_sketch_with_integral_and_missing_values() -> None:
    header = ["count", "size", "colour", "y"]
    rows = [["1", "0.5", "red", "0"], ["2", "", "blue", "1"], ["-3", "1.5", "red", "0"], ["4", "NA", "red", "1"]]
    statistics, constraints = build_baseline(header, rows, "y", {})
    by_name = {f["name"]: f for f in statistics["features"]}
    assert by_name["count"]["inferred_type"] == "Integral"
    assert by_name["count"]["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"] == [[-3.0, 1.0, 2.0, 4.0]]
    assert by_name["size"]["numerical_statistics"]["common"] == {"num_present": 2, "num_missing": 2}
    limits = {f["name"]: f for f in constraints["features"]}
    assert limits["count"]["num_constraints"] == {"is_non_negative": False}
    assert limits["size"]["completeness"] == 0.5
    assert limits["colour"]["string_constraints"] == {"domains": ["blue", "red"]}


def test_a_baseline_of_no_rows_or_of_undeclared_columns_is_refused_readably() -> None:
    with pytest.raises(InvalidBaseline, match="no rows"):
        build_baseline(HEADER, [], LABEL, CATEGORICAL)
    with pytest.raises(InvalidBaseline, match="colour"):
        build_baseline(HEADER, TRAIN, LABEL, {"colour": ["red"]})
    with pytest.raises(DatasetValidationError, match="data row 2 has 2 fields but the header has 9"):
        build_baseline(HEADER, [TRAIN[0], ["M", "0.1"]], LABEL, CATEGORICAL)


# ------------------------------------------------------------------------------------------------ the check
def test_the_training_split_itself_is_ok_with_no_violations(baseline: Any) -> None:
    report = check(baseline, FEATURES, without_label(TRAIN))
    assert (report.status, report.violations, report.row_count) == ("OK", [], len(TRAIN))
    assert set(report.features) == set(FEATURES) and not any(f.drifted for f in report.features.values())
    assert report.violations_document() == {"violations": []}


def test_rows_the_model_never_saw_from_the_same_data_are_ok(baseline: Any) -> None:
    assert check(baseline, FEATURES, without_label(HELD_OUT)).status == "OK"
    # and so are ten rows: too few to tell a distribution apart (the Robust comparison)
    assert check(baseline, FEATURES, without_label(HELD_OUT[:10])).violations == []


def test_every_length_times_one_and_a_half_drifts_on_length_only(baseline: Any) -> None:
    rows = without_label(TRAIN)
    index = FEATURES.index("length")
    shifted = [[*row[:index], repr(float(row[index]) * 1.5), *row[index + 1 :]] for row in rows]
    report = check(baseline, FEATURES, shifted)
    assert report.status == "DRIFT"
    assert flagged(report) == {("length", "baseline_drift_check")}
    (violation,) = report.violations
    length = report.features["length"]
    assert length.drifted and length.psi is not None and length.ks is not None
    assert violation.description == (
        f"length: PSI {length.psi:.3g} > 0.2 and KS {length.ks:.3g} > 0.1 against the training baseline"
    )


def test_an_unknown_sex_category_is_a_categorical_values_violation_on_sex(baseline: Any) -> None:
    rows = without_label(TRAIN)
    rows[5] = ["X", *rows[5][1:]]
    report = check(baseline, FEATURES, rows)
    assert flagged(report) == {("sex", "categorical_values_check")}
    assert report.features["sex"].unknown_categories == ["X"]
    assert "1 value(s) outside the training baseline's domain ('M', 'F', 'I'): 'X'" in report.violations[0].description


def test_a_dropped_column_is_a_missing_column_violation(baseline: Any) -> None:
    index = FEATURES.index("diameter")
    header = FEATURES[:index] + FEATURES[index + 1 :]
    rows = [row[:index] + row[index + 1 :] for row in without_label(TRAIN)]
    report = check(baseline, header, rows)
    assert flagged(report) == {("diameter", "missing_column_check")}
    assert "diameter" not in report.features


def test_all_three_together_name_exactly_those_features_and_check_types(baseline: Any) -> None:
    length, diameter = FEATURES.index("length"), FEATURES.index("diameter")
    rows = []
    for i, row in enumerate(without_label(TRAIN)):
        cells = [*row]
        cells[length] = repr(float(cells[length]) * 1.5)
        cells[0] = "X" if i % 50 == 0 else cells[0]
        rows.append(cells[:diameter] + cells[diameter + 1 :])
    header = FEATURES[:diameter] + FEATURES[diameter + 1 :]
    report = check(baseline, header, rows)
    assert report.status == "DRIFT"
    assert flagged(report) == {
        ("length", "baseline_drift_check"),
        ("sex", "categorical_values_check"),
        ("diameter", "missing_column_check"),
    }
    document = report.violations_document()
    assert json.loads(json.dumps(document)) == document
    assert all(set(v) == {"feature_name", "constraint_check_type", "description"} for v in document["violations"])
    assert {v["constraint_check_type"] for v in document["violations"]} <= CHECK_TYPES


def test_id_columns_are_neither_features_nor_extra_but_other_columns_are_extra(baseline: Any) -> None:
    header = ["row_id", *FEATURES, "note"]
    rows = [[str(i), *row, "x"] for i, row in enumerate(without_label(TRAIN))]
    statistics, constraints = baseline
    report = check_input(header, rows, statistics, constraints, DriftSpec(), id_columns=["row_id"])
    assert flagged(report) == {("note", "extra_column_check")}
    assert "row_id" not in report.features
    # the label is not a feature either: a batch that still has it has an extra column
    assert flagged(check(baseline, HEADER, TRAIN)) == {(LABEL, "extra_column_check")}


def test_missing_values_beyond_the_tolerance_are_a_completeness_violation(baseline: Any) -> None:
    rows = without_label(TRAIN)
    index = FEATURES.index("height")
    gappy = [[*row[:index], "" if i % 10 == 0 else row[index], *row[index + 1 :]] for i, row in enumerate(rows)]
    report = check(baseline, FEATURES, gappy)
    assert flagged(report) == {("height", "completeness_check")}
    assert report.features["height"].completeness == pytest.approx(0.9, abs=0.001)
    assert "height: 89.98% of values present, the training baseline had 100%" in report.violations[0].description
    assert check(baseline, FEATURES, gappy, completeness_tolerance=0.15).violations == []


def test_values_of_the_wrong_type_or_sign_are_data_type_violations(baseline: Any) -> None:
    rows = without_label(TRAIN)
    index = FEATURES.index("shell_weight")
    rows[0] = [*rows[0][:index], "heavy", *rows[0][index + 1 :]]
    rows[1] = [*rows[1][:index], "-0.5", *rows[1][index + 1 :]]
    report = check(baseline, FEATURES, rows)
    assert flagged(report) == {("shell_weight", "data_type_check")}
    descriptions = sorted(v.description for v in report.violations)
    assert descriptions[0].startswith("shell_weight: 1 negative value(s) (min -0.5)")
    assert "of present values are Fractional" in descriptions[1] and "'heavy'" in descriptions[1]


def test_a_shifted_sex_mix_drifts_by_l_infinity_and_by_chi_square(baseline: Any) -> None:
    rows = without_label(TRAIN)
    infants = [["I", *row[1:]] for row in rows]  # every abalone an infant
    report = check(baseline, FEATURES, infants)
    assert flagged(report) == {("sex", "baseline_drift_check")}
    share_i = sum(row[0] == "I" for row in TRAIN) / len(TRAIN)
    assert report.features["sex"].linf == pytest.approx(1 - share_i, abs=1e-6)
    chi = check(baseline, FEATURES, infants, categorical_method="ChiSquared", categorical_threshold=0.05)
    assert flagged(chi) == {("sex", "baseline_drift_check")} and chi.features["sex"].chi2_p == pytest.approx(0.0)
    assert check(baseline, FEATURES, rows, categorical_method="ChiSquared").status == "OK"


# ------------------------------------------------------------------------------------------ numbers vs scipy
def test_ks_equals_scipys_two_sample_statistic_when_the_sketch_holds_every_value() -> None:
    base = TRAIN[:1500]  # fewer rows than the sketch keeps: the baseline is exact
    statistics, constraints = build_baseline(HEADER, base, LABEL, CATEGORICAL)
    batch = without_label(HELD_OUT)
    index = FEATURES.index("whole_weight")
    shifted = [[*row[:index], repr(float(row[index]) + 0.05), *row[index + 1 :]] for row in batch]
    report = check_input(FEATURES, shifted, statistics, constraints, DriftSpec())
    expected = stats.ks_2samp(column(shifted, "whole_weight", FEATURES), column(base, "whole_weight")).statistic
    assert report.features["whole_weight"].ks == pytest.approx(expected, abs=1e-6)


def test_ks_against_the_k_quantile_sketch_is_within_its_resolution_of_scipy(baseline: Any) -> None:
    batch = without_label(HELD_OUT)
    report = check(baseline, FEATURES, batch)
    for name in ("length", "shell_weight"):
        expected = stats.ks_2samp(column(batch, name, FEATURES), column(TRAIN, name)).statistic
        assert report.features[name].ks == pytest.approx(expected, abs=2 / SKETCH_K)


def test_psi_equals_the_symmetric_relative_entropy_on_the_baselines_deciles() -> None:
    rng = np.random.RandomState(7)
    base = np.sort(rng.normal(0, 1, 2000))
    batch = np.sort(rng.normal(0.5, 1.2, 3000))
    edges = np.unique([base[int(len(base) * q / 10)] for q in range(1, 10)])
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    # right-closed bins, as (edge_i, edge_i+1]
    expected_share = np.diff([np.searchsorted(base, b, side="right") for b in bins]) / len(base)
    actual_share = np.diff([np.searchsorted(batch, b, side="right") for b in bins]) / len(batch)
    expected = float(
        np.sum(special.rel_entr(actual_share, expected_share) + special.rel_entr(expected_share, actual_share))
    )
    assert psi(batch.tolist(), base.tolist()) == pytest.approx(expected, rel=1e-9)
    assert ks_distance(batch.tolist(), base.tolist()) == pytest.approx(stats.ks_2samp(batch, base).statistic)


def test_the_chi_square_p_value_equals_scipys() -> None:
    shares = {"M": 0.37, "F": 0.31, "I": 0.32}
    for observed in ({"M": 40, "F": 30, "I": 30}, {"M": 400, "F": 250, "I": 350}, {"M": 5, "F": 90, "I": 5}):
        total = sum(observed.values())
        expected = stats.chisquare([observed[c] for c in shares], [shares[c] * total for c in shares]).pvalue
        assert chi_square_p(observed, shares) == pytest.approx(expected, rel=1e-9, abs=1e-300)


# ------------------------------------------------------------------------------------------ edges and output
def test_a_malformed_baseline_is_refused_in_one_readable_line(baseline: Any) -> None:
    statistics, constraints = baseline
    with pytest.raises(InvalidBaseline) as raised:
        check_input(FEATURES, without_label(TRAIN[:5]), statistics, {"features": [{"name": "sex"}]}, DriftSpec())
    assert "constraints.json is not in Model Monitor's format: features.0.inferred_type: Field required" in str(
        raised.value
    )
    assert "\n" not in str(raised.value)
    with pytest.raises(DatasetValidationError, match="duplicate column names in the header: sex"):
        check_input(
            ["sex", *FEATURES], [["M", *r] for r in without_label(TRAIN[:2])], statistics, constraints, DriftSpec()
        )


def test_metric_data_has_each_features_distances_and_the_violation_count(baseline: Any) -> None:
    rows = without_label(TRAIN)
    shifted = [[r[0], repr(float(r[1]) * 1.5), *r[2:]] for r in rows]
    report = check(baseline, FEATURES, shifted)
    data = metric_data(report, "abalone")
    assert DRIFT_METRICS_NAMESPACE == "sfn-mlops/Drift"
    by_key = {(d["MetricName"], d["Dimensions"][-1]["Value"]): d for d in data}
    assert by_key[("PSI", "length")]["Value"] == report.features["length"].psi
    assert by_key[("KS", "length")]["Dimensions"] == [
        {"Name": "Pipeline", "Value": "abalone"},
        {"Name": "Feature", "Value": "length"},
    ]
    assert by_key[("LInfinity", "sex")]["Value"] == report.features["sex"].linf
    assert by_key[("Completeness", "height")]["Value"] == 1.0
    assert by_key[("Violations", "abalone")] == {
        "MetricName": "Violations",
        "Dimensions": [{"Name": "Pipeline", "Value": "abalone"}],
        "Value": 1.0,
        "Unit": "Count",
    }
    assert len(data) <= 1000  # one PutMetricData call


def test_a_hundred_times_abalone_is_checked_in_seconds(baseline: Any) -> None:
    rows = without_label(ROWS) * 100
    started = time.perf_counter()
    report = check(baseline, FEATURES, rows)
    elapsed = time.perf_counter() - started
    assert report.row_count == 417_700 and report.status == "OK"
    assert elapsed < 30, f"{elapsed:.1f}s"


@pytest.mark.parametrize(
    ("drift", "problem"),
    [
        ({"action": "delete"}, "drift.action"),
        ({"psi_threshold": 0}, "drift.psi_threshold"),
        ({"ks_threshold": 1.5}, "drift.ks_threshold"),
        ({"categorical_method": "JensenShannon"}, "drift.categorical_method"),
        ({"completeness_tolerance": float("nan")}, "drift.completeness_tolerance"),
    ],
)
def test_a_bad_drift_config_is_one_readable_error(drift: dict[str, Any], problem: str) -> None:
    config = json.loads((ROOT / "models/abalone/pipeline.json").read_text())
    config["drift"] = drift
    with pytest.raises(InvalidPipelineConfig, match=problem):
        parse_pipeline_config(config, "pipeline.json")
    assert parse_pipeline_config({**config, "drift": {}}, "x").drift == DriftSpec()


# ------------------------------------------------------------------------------------ the preprocess worker's step
def test_the_write_baseline_function_writes_both_files_next_to_the_raw_training_split(
    bucket: str, lambda_context: Any
) -> None:
    import boto3

    from tests.unit.functions.test_handlers import handler_module, sample_event

    # Given what the preprocess job wrote: its schema and the raw training split
    event = sample_event("WriteBaselineFunction")
    outputs = event["outputs"]
    s3 = boto3.client("s3")
    key = outputs["baseline_uri"].split("/", 3)[3]
    lines = [",".join(HEADER), *(",".join(row) for row in TRAIN)]
    s3.put_object(Bucket=bucket, Key=key + "train.csv", Body=("\n".join(lines) + "\n").encode())
    schema = {"label": LABEL, "categorical": CATEGORICAL, "columns": HEADER}
    s3.put_object(Bucket=bucket, Key=outputs["schema_uri"].split("/", 3)[3] + "schema.json", Body=json.dumps(schema))
    # When the function runs (and runs again, as the adoption of a completed job does)
    app = handler_module("write_baseline")
    written = app.lambda_handler(event, lambda_context)
    assert app.lambda_handler(event, lambda_context) == written
    # Then statistics.json and constraints.json sit next to train.csv, equal to the baseline of those rows
    prefix = outputs["baseline_uri"]
    assert written == {
        "baseline": {"statistics": prefix + "statistics.json", "constraints": prefix + "constraints.json"},
        "features": len(FEATURES),
        "rows": len(TRAIN),
    }
    statistics, constraints = build_baseline(HEADER, TRAIN, LABEL, CATEGORICAL)
    for name, expected in (("statistics.json", statistics), ("constraints.json", constraints)):
        obj = s3.get_object(Bucket=bucket, Key=key + name)
        assert obj["ContentType"] == "application/json"
        assert json.loads(obj["Body"].read()) == expected


def test_the_write_baseline_function_names_what_is_missing(bucket: str, lambda_context: Any) -> None:
    import boto3
    from sfn_mlops.errors import InvalidUnitInput

    from tests.unit.functions.test_handlers import handler_module, sample_event

    event = sample_event("WriteBaselineFunction")
    app = handler_module("write_baseline")
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key=event["outputs"]["schema_uri"].split("/", 3)[3] + "schema.json",
        Body=json.dumps({"label": LABEL, "categorical": CATEGORICAL}),
    )
    # a preprocess script that wrote no raw training split
    with pytest.raises(
        InvalidBaseline, match=r"the raw training split \(.*\) is missing: s3://.*/baseline/train.csv does not exist"
    ):
        app.lambda_handler(event, lambda_context)
    # an input without the preprocess job's baseline output
    del event["outputs"]["baseline_uri"]
    with pytest.raises(
        InvalidUnitInput, match=r"write-baseline input is malformed: outputs\.baseline_uri: Field required"
    ):
        app.lambda_handler(event, lambda_context)
