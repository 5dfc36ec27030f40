"""models/churn/scripts/inference.py, the preprocessing container of a registered churn package, called as the
scikit-learn container calls it (model_fn, then input_fn -> predict_fn -> output_fn), with the XGBoost container's
step after it: raw rows in, one churn probability per row out. (That it encodes the smoke rows exactly as the PySpark
preprocess encoded them is tested beside the preprocess tests, on their Spark run: Spark is slow to start.)"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.unit.scripts.churn_spark import CHURN, DATA

pytestmark = pytest.mark.container  # runs a job container's script or a model server: not in the fast tier

SCRIPT = CHURN / "scripts" / "inference.py"
CONFIG = json.loads((CHURN / "pipeline.json").read_text())


def raw_rows() -> tuple[list[str], list[list[str]]]:
    with DATA.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def churn_schema() -> dict[str, Any]:
    """The schema.json churn's preprocess writes, built from the contract: numeric columns in file order, then each
    categorical column one-hot in its domain order."""
    header, _ = raw_rows()
    categorical = {f["name"]: f["domain"] for f in CONFIG["data"]["contract"]["features"] if f["type"] == "categorical"}
    numeric = [name for name in header if name != "churn" and name not in categorical]
    one_hot = [f"{column}_{value}" for column, values in categorical.items() for value in values]
    return {"label": "churn", "features": numeric + one_hot, "columns": header, "categorical": categorical}


def package_model(schema: dict[str, Any], root: Path) -> Path:
    """The register worker's preprocessing model.tar.gz, extracted where SageMaker puts it (/opt/ml/model)."""
    from sfn_mlops.registry import preprocessing_archive, preprocessing_document

    archive = preprocessing_archive(preprocessing_document(schema, "schema.json"), SCRIPT.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root / "model", filter="data")
    return root / "model"


def container_module(model_dir: Path) -> ModuleType:
    """SAGEMAKER_PROGRAM imported from SAGEMAKER_SUBMIT_DIRECTORY (/opt/ml/model/code), fresh for each test."""
    spec = importlib.util.spec_from_file_location("churn_inference_under_test", model_dir / "code" / "inference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encode(module: ModuleType, model: Any, body: str) -> str:
    body_out, content_type = module.output_fn(module.predict_fn(module.input_fn(body, "text/csv"), model), "text/csv")
    assert content_type == "text/csv"
    return str(body_out)


def without_label(header: list[str], rows: list[list[str]]) -> str:
    keep = [i for i, name in enumerate(header) if name != "churn"]
    return "".join(",".join(row[i] for i in keep) + "\n" for row in rows)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Any]:
    model_dir = package_model(churn_schema(), tmp_path_factory.mktemp("churn-inference"))
    module = container_module(model_dir)
    return module, module.model_fn(str(model_dir))


def test_raw_rows_encode_as_an_independent_one_hot_encoding(served: tuple[ModuleType, Any]) -> None:
    module, model = served
    header, rows = raw_rows()
    # When every raw row (without the label) goes through the preprocessing container
    encoded = np.loadtxt(io.StringIO(encode(module, model, without_label(header, rows))), delimiter=",", ndmin=2)
    # Then each row is its numeric cells in file order, then one flag per category of each categorical column
    schema = churn_schema()
    expected = []
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        values = [float(cells[name]) for name in header if name != "churn" and name not in schema["categorical"]]
        for column, categories in schema["categorical"].items():
            values += [1.0 if cells[column] == category else 0.0 for category in categories]
        expected.append(values)
    np.testing.assert_array_equal(encoded, np.array(expected))
    assert encoded.shape == (5000, 73)


def test_the_package_answers_one_churn_probability_per_raw_row(served: tuple[ModuleType, Any]) -> None:
    import xgboost

    module, model = served
    header, rows = raw_rows()
    labels = np.array([1.0 if row[-1] == "yes" else 0.0 for row in rows])
    features = np.loadtxt(io.StringIO(encode(module, model, without_label(header, rows))), delimiter=",")
    # Given the churn model (the pipeline's hyperparameters) trained on the encoded rows
    hyperparameters = dict(CONFIG["train"]["hyperparameters"])
    rounds = int(hyperparameters.pop("num_round"))
    booster = xgboost.train(hyperparameters, xgboost.DMatrix(features[:4000], label=labels[:4000]), rounds)
    # When raw rows with a header of the input columns are sent through both containers
    body = ",".join(header[:-1]) + "\n" + without_label(header, rows[4000:])
    encoded = encode(module, model, body)
    probabilities = booster.predict(xgboost.DMatrix(np.loadtxt(io.StringIO(encoded), delimiter=",", ndmin=2)))
    # Then there is one probability per row, in [0, 1], and they rank churners above the others
    assert probabilities.shape == (1000,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels[4000:], probabilities) > 0.85


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"state": "ZZ"}, "row 1, column 'state': unknown category 'ZZ'; expected one of AK, AL"),
        ({"international_plan": "Yes"}, "row 1, column 'international_plan': unknown category 'Yes'"),
        ({"total_day_minutes": "lots"}, "row 1, column 'total_day_minutes': non-numeric value 'lots'"),
        ({"account_length": ""}, "row 1, column 'account_length': missing value ''"),
    ],
)
def test_a_bad_cell_is_a_value_error_naming_row_and_column(
    served: tuple[ModuleType, Any], change: dict[str, str], problem: str
) -> None:
    module, model = served
    header, rows = raw_rows()
    row = [change.get(name, value) for name, value in zip(header, rows[0], strict=True)]
    with pytest.raises(ValueError, match=None) as raised:
        encode(module, model, without_label(header, [row]))
    assert problem in str(raised.value)


def test_a_header_with_the_label_is_refused(served: tuple[ModuleType, Any]) -> None:
    module, model = served
    header, rows = raw_rows()
    with pytest.raises(ValueError, match="row 1 is a header with the label column 'churn'"):
        encode(module, model, ",".join(header) + "\n" + ",".join(rows[0]) + "\n")
