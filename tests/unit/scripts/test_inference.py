"""models/abalone/scripts/inference.py, the preprocessing container of a registered package, called as the
scikit-learn container calls it: model_fn on the extracted model.tar.gz, then input_fn -> predict_fn -> output_fn."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "models" / "abalone" / "scripts"
DATA = REPO / "models" / "abalone" / "data" / "abalone.csv"
SEED = 42


@dataclass
class Fitted:
    """preprocess run on the real data, and the package's preprocessing model built from what it wrote."""

    output_dir: Path
    model_dir: Path
    schema: dict[str, Any]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    from sfn_mlops.registry import preprocessing_archive, preprocessing_document

    root = tmp_path_factory.mktemp("inference")
    (root / "input").mkdir()
    (root / "input" / "abalone.csv").write_bytes(DATA.read_bytes())
    command = [
        sys.executable, str(SCRIPTS / "preprocess.py"), "--input-dir", str(root / "input"),
        "--output-dir", str(root / "output"), "--message-file", str(root / "message"), "--seed", str(SEED),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    schema = json.loads((root / "output" / "schema" / "schema.json").read_text())
    # The register worker's model.tar.gz, extracted where SageMaker puts it (/opt/ml/model)
    document = preprocessing_document(schema, "schema.json")
    archive = preprocessing_archive(document, (SCRIPTS / "inference.py").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root / "model", filter="data")
    return Fitted(root / "output", root / "model", schema)


def container_module(model_dir: Path) -> ModuleType:
    """SAGEMAKER_PROGRAM imported from SAGEMAKER_SUBMIT_DIRECTORY (/opt/ml/model/code), fresh for each test."""
    spec = importlib.util.spec_from_file_location("inference_under_test", model_dir / "code" / "inference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_rows() -> tuple[list[str], list[list[str]]]:
    with DATA.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def without_label(header: list[str], rows: list[list[str]], label: str) -> str:
    keep = [i for i, name in enumerate(header) if name != label]
    return "".join(",".join(row[i] for i in keep) + "\n" for row in rows)


def invoke(module: ModuleType, model: Any, body: bytes | str, content_type: str = "text/csv") -> str:
    data = module.input_fn(body, content_type)
    prediction = module.predict_fn(data, model)
    text, mimetype = module.output_fn(prediction, "text/csv")
    assert mimetype == "text/csv"
    return str(text)


def test_raw_test_rows_encode_exactly_as_preprocess_encoded_them(fitted: Fitted) -> None:
    # Given the raw rows preprocess put in its test split (its seeded permutation), without the label
    header, rows = raw_rows()
    sizes = fitted.schema["rows"]
    order = np.random.RandomState(SEED).permutation(len(rows))
    test_indices = order[sizes["train"] + sizes["validation"] :]
    test_rows = [rows[i] for i in test_indices]
    written = np.loadtxt(fitted.output_dir / "test" / "test.csv", delimiter=",")
    assert written.shape[0] == len(test_rows)
    assert np.array_equal(written[:, 0], [float(r[header.index("rings")]) for r in test_rows])  # the same rows
    # When the container encodes them
    module = container_module(fitted.model_dir)
    model = module.model_fn(str(fitted.model_dir))
    encoded = np.loadtxt(io.StringIO(invoke(module, model, without_label(header, test_rows, "rings"))), delimiter=",")
    # Then they are the rows preprocess wrote, label left out, in the model's feature order
    assert encoded.shape == (len(test_rows), len(fitted.schema["features"]))
    assert np.allclose(encoded, written[:, 1:], rtol=0, atol=1e-12)


def test_a_header_row_of_the_input_columns_is_optional(fitted: Fitted) -> None:
    header, rows = raw_rows()
    module = container_module(fitted.model_dir)
    model = module.model_fn(str(fitted.model_dir))
    body = without_label(header, rows[:5], "rings")
    inputs = ",".join(name for name in header if name != "rings") + "\n"
    # With or without the header, as text or bytes (a byte-order mark too), with a charset: the same rows
    plain = invoke(module, model, body)
    assert invoke(module, model, inputs + body) == plain
    assert invoke(module, model, ("\ufeff" + inputs + body).encode(), "text/csv; charset=utf-8") == plain
    assert plain.splitlines()[0] == "0.455,0.365,0.095,0.514,0.2245,0.101,0.15,1,0,0"  # M: sex_M first
    assert len(plain.splitlines()) == 5


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\nF,0.5,0.4\n", "row 2 has 3 columns, expected 8: sex, length"),
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n", "row 1 has 9 columns, expected 8"),
        (
            "X,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\n",
            "row 1, column 'sex': unknown category 'X'; expected one of M, F, I",
        ),
        ("M,0.455,0.365,abc,0.514,0.2245,0.101,0.15\n", "row 1, column 'height': non-numeric value 'abc'"),
        ("M,0.455,0.365,inf,0.514,0.2245,0.101,0.15\n", "row 1, column 'height': non-numeric value 'inf'"),
        ("M,0.455,,0.095,0.514,0.2245,0.101,0.15\n", "row 1, column 'diameter': missing value ''"),
        (
            "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight\n\nI,0.4,0.3,x,1,1,1,1\n",
            "row 1 (line 3), column 'height': non-numeric value 'x'",
        ),
        (
            "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings\n",
            "row 1 is a header with the label column 'rings'",
        ),
        ("\n\n", "the request has no rows"),
    ],
)
def test_a_bad_row_is_a_value_error_naming_row_and_column(fitted: Fitted, body: str, problem: str) -> None:
    module = container_module(fitted.model_dir)
    module.model_fn(str(fitted.model_dir))
    with pytest.raises(ValueError) as raised:
        module.input_fn(body, "text/csv")
    assert problem in str(raised.value)


def test_only_text_csv_is_accepted(fitted: Fitted) -> None:
    module = container_module(fitted.model_dir)
    module.model_fn(str(fitted.model_dir))
    with pytest.raises(ValueError, match="unsupported content type 'application/json': send text/csv rows of sex"):
        module.input_fn('{"sex": "M"}', "application/json")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        module.input_fn(b"\xff\xfe\x00M", "text/csv")


def test_model_fn_refuses_preprocessing_that_does_not_match_the_model(fitted: Fitted, tmp_path: Path) -> None:
    document = json.loads((fitted.model_dir / "preprocessing.json").read_text())
    module = container_module(fitted.model_dir)
    # Given features in another order than the encoding of the columns gives
    document["features"] = list(reversed(document["features"]))
    (tmp_path / "preprocessing.json").write_text(json.dumps(document))
    # Then loading fails before any request is answered
    with pytest.raises(ValueError, match="the encoding of its columns gives features"):
        module.model_fn(str(tmp_path))
    (tmp_path / "preprocessing.json").write_text(json.dumps({"label": "rings"}))
    with pytest.raises(ValueError, match=r"preprocessing\.json is malformed"):
        module.model_fn(str(tmp_path))


def test_a_contract_ordering_features_unlike_the_file_still_encodes_requests_as_training_did(tmp_path: Path) -> None:
    from sfn_mlops.registry import preprocessing_archive, preprocessing_document

    # Given a data contract that lists the features in another order than the file's columns
    header, rows = raw_rows()
    features = [name for name in reversed(header) if name != "rings"]
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "abalone.csv").write_bytes(DATA.read_bytes())
    command = [
        sys.executable, str(SCRIPTS / "preprocess.py"), "--input-dir", str(tmp_path / "input"),
        "--output-dir", str(tmp_path / "output"), "--message-file", str(tmp_path / "message"),
        "--seed", str(SEED), "--features", ",".join(features),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    schema = json.loads((tmp_path / "output" / "schema" / "schema.json").read_text())
    archive = preprocessing_archive(
        preprocessing_document(schema, "schema.json"), (SCRIPTS / "inference.py").read_bytes()
    )
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    # When the package's preprocessing container loads and encodes the test split's raw rows (in file order)
    module = container_module(tmp_path / "model")
    model = module.model_fn(str(tmp_path / "model"))
    order = np.random.RandomState(SEED).permutation(len(rows))
    test_rows = [rows[i] for i in order[schema["rows"]["train"] + schema["rows"]["validation"] :]]
    encoded = np.loadtxt(io.StringIO(invoke(module, model, without_label(header, test_rows, "rings"))), delimiter=",")
    # Then it loads, and gives exactly the rows the model was trained and evaluated on
    written = np.loadtxt(tmp_path / "output" / "test" / "test.csv", delimiter=",")
    assert np.allclose(encoded, written[:, 1:], rtol=0, atol=1e-12)
