"""The local sagemaker-xgboost:1.7-1 serving container answers ``POST /invocations`` as the real one does.

One table per rule of the container's serving code (aws/sagemaker-xgboost-container, 1.7-1 era:
``algorithm_mode/serve.py``, ``algorithm_mode/serve_utils.py``, ``data_utils.get_content_type``,
``encoder.csv_to_dmatrix``; sagemaker-inference-toolkit ``encoder.encode``); the table of rules and their sources is
docs/decisions/0025-xgboost-serving-rules.md. Each row: what is sent, the status, and what the answer says.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sfn_mlops_local.containers.xgboost_serving import NOT_EMULATED, XGBoostServer

HTML = "text/html; charset=utf-8"
ROWS = [[0.1, 0.2, 0.3], [0.7, 0.5, 0.9]]
CSV_ROWS = b"0.1,0.2,0.3\n0.7,0.5,0.9"
LIBSVM_ROWS = b"0 0:0.1 1:0.2 2:0.3\n0 0:0.7 1:0.5 2:0.9"
ACCEPTED = (
    "csv, libsvm, parquet, recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, application/x-parquet, "
    "application/x-recordio-protobuf."
)


def _train(objective: str, seed: int, **params: Any) -> Any:
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    features = rng.uniform(size=(90, 3))
    score = features @ np.array([1.0, 2.0, 3.0])
    labels = {
        "reg:squarederror": score,
        "binary:logistic": (score > 3).astype(float),
        "multi:softprob": np.digitize(score, [2.0, 4.0]).astype(float),
        "multi:softmax": np.digitize(score, [2.0, 4.0]).astype(float),
    }[objective]
    return xgb.train({"objective": objective, "max_depth": 2, **params}, xgb.DMatrix(features, label=labels), 4)


def _folder(root: Path, name: str, boosters: dict[str, Any], pickled: bool = False) -> str:
    folder = root / name
    folder.mkdir()
    for file_name, booster in boosters.items():
        if pickled:
            (folder / file_name).write_bytes(pickle.dumps(booster))
        else:
            booster.save_model(str(folder / file_name))
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Model folders as the training container leaves them (one ``xgboost-model``), and a few it does not."""
    root = tmp_path_factory.mktemp("models")
    reg, reg_b = _train("reg:squarederror", 1), _train("reg:squarederror", 2, eta=0.9)
    binary = _train("binary:logistic", 3)
    softprob = _train("multi:softprob", 4, num_class=3)
    softmax = [_train("multi:softmax", seed, num_class=3, eta=eta) for seed, eta in ((5, 0.3), (6, 0.9), (7, 0.05))]
    folders = {
        "reg": _folder(root, "reg", {"xgboost-model": reg}),
        "reg_pkl": _folder(root, "reg_pkl", {"xgboost-model": reg}, pickled=True),
        "binary": _folder(root, "binary", {"xgboost-model": binary}),
        "softprob": _folder(root, "softprob", {"xgboost-model": softprob}),
        "softmax": _folder(root, "softmax", {"xgboost-model": softmax[0]}),
        "two_reg": _folder(root, "two_reg", {"a-model": reg, "b-model": reg_b}),
        "three_softmax": _folder(root, "three_softmax", {f"{i}-model": b for i, b in enumerate(softmax)}),
    }
    (Path(folders["two_reg"]) / ".DS_Store").write_bytes(b"not a model")
    broken = root / "broken"
    broken.mkdir()
    (broken / "xgboost-model").write_bytes(b"not a booster")
    folders["broken"] = str(broken)
    return {
        **folders,
        "boosters": {"reg": reg, "reg_b": reg_b, "binary": binary, "softprob": softprob},
        "softmax_boosters": softmax,
    }


def _predict(booster: Any, rows: list[list[float]] = ROWS) -> Any:
    import xgboost as xgb

    return booster.predict(xgb.DMatrix(np.array(rows)))


def _server(monkeypatch: pytest.MonkeyPatch, folder: str, env: dict[str, str] | None = None) -> XGBoostServer:
    for name in ("SAGEMAKER_BATCH", "SAGEMAKER_INFERENCE_OUTPUT", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    return XGBoostServer(folder)


def _floats(body: bytes) -> list[float]:
    return [float(v) for v in body.decode().split()]


# --------------------------------------------------------------------------- the request's Content-Type
CONTENT_TYPES = [
    # (content type, body, status, answer starts with)
    ("text/csv", CSV_ROWS, 200, ""),
    ("text/csv; charset=utf-8", CSV_ROWS, 200, ""),
    ("TEXT/CSV", CSV_ROWS, 200, ""),
    ("csv", CSV_ROWS, 200, ""),
    ("text/csv;label_size=1", CSV_ROWS, 200, ""),
    (
        "text/csv;label_size=2",
        CSV_ROWS,
        415,
        "text/csv;label_size=2 is not an accepted csv ContentType. Optional parameter label_size must be equal to 1",
    ),
    ("text/libsvm", LIBSVM_ROWS, 200, ""),
    ("text/x-libsvm", LIBSVM_ROWS, 200, ""),
    ("libsvm", LIBSVM_ROWS, 200, ""),
    (None, LIBSVM_ROWS, 200, ""),  # no Content-Type at all is libsvm
    (None, CSV_ROWS, 415, "Loading libsvm data failed with Exception, please ensure data is in libsvm format:"),
    ("application/json", b"[[0.1, 0.2, 0.3]]", 415, f"application/json is not an accepted ContentType: {ACCEPTED}"),
    ("application/x-parquet", b"PAR1", 415, "Content-type application/x-parquet is not supported."),
    ("application/x-recordio-protobuf", b"\n\x00", NOT_EMULATED, "A request body in application/x-recordio-pro"),
]


@pytest.mark.parametrize(("content_type", "body", "status", "message"), CONTENT_TYPES)
def test_the_request_content_type_decides_how_rows_are_read_or_the_status_that_refuses_them(
    monkeypatch: pytest.MonkeyPatch,
    models: dict[str, Any],
    content_type: str | None,
    body: bytes,
    status: int,
    message: str,
) -> None:
    # Given the container serving a regression booster
    server = _server(monkeypatch, models["reg"])
    # When rows are sent with this Content-Type
    got_status, answer, answer_type = server.invoke(body, content_type, None)
    # Then the rows are scored, or refused with the container's status and message (Flask's text/html)
    assert got_status == status, answer
    if status == 200:
        assert np.allclose(_floats(answer), _predict(models["boosters"]["reg"]), atol=1e-6)
    else:
        assert answer.decode().startswith(message) and answer_type == HTML
    if status == NOT_EMULATED:
        assert "is not emulated locally" in answer.decode()


# --------------------------------------------------------------------------- the request's body
BODIES = [
    # (body, environment, status, answer starts with)
    (b"", {}, 204, ""),
    (b"\n0.1,0.2,0.3\n0.7,0.5,0.9\n\n", {}, 200, ""),  # surrounding newlines are stripped
    (
        b"f1,f2,f3\n0.1,0.2,0.3",
        {},
        415,
        "Loading csv data failed with Exception, please ensure data is in csv format:\n <class 'ValueError'>\n "
        "could not convert string to float: 'f1'",
    ),
    (b"0.1,0.2,0.3\n0.7,0.5", {}, 415, "Loading csv data failed with Exception"),  # ragged rows
    (b"\xff\xfe,1,2", {}, 415, "Loading csv data failed with Exception"),  # not UTF-8
    (CSV_ROWS, {"MAX_CONTENT_LENGTH": "10"}, 413, "<!doctype html>"),  # over the app's MAX_CONTENT_LENGTH
]


@pytest.mark.parametrize(("body", "env", "status", "message"), BODIES)
def test_the_request_body_is_scored_or_answered_with_the_containers_status(
    monkeypatch: pytest.MonkeyPatch, models: dict[str, Any], body: bytes, env: dict[str, str], status: int, message: str
) -> None:
    # Given the container serving a regression booster, with this environment
    server = _server(monkeypatch, models["reg"], env)
    # When the body is sent as text/csv
    got_status, answer, _ = server.invoke(body, "text/csv", None)
    # Then it is the container's status and answer
    assert got_status == status, answer
    if status == 200:
        assert np.allclose(_floats(answer), _predict(models["boosters"]["reg"]), atol=1e-6)
    else:
        assert answer.decode().startswith(message)
    if status == 204:
        assert answer == b""


# --------------------------------------------------------------------------- feature counts
FEATURE_COUNTS = [
    # (model folder, content type, body, status, answer starts with)
    ("reg_pkl", "text/csv", b"0.1,0.2,0.3", 200, ""),
    ("reg_pkl", "text/csv", b"0.1,0.2", 200, ""),  # one feature fewer than the model is allowed
    (
        "reg_pkl",
        "text/csv",
        b"5.0,0.1,0.2,0.3",  # a label column first
        400,
        "Unable to evaluate payload provided: Feature size of csv inference data 4 is not consistent with feature "
        "size of trained model 3.",
    ),
    (
        "reg_pkl",
        "text/csv",
        b"0.1",
        400,
        "Unable to evaluate payload provided: Feature size of csv inference data 1 is not consistent with feature "
        "size of trained model 3.",
    ),
    ("reg_pkl", "text/libsvm", b"0 1:0.1 2:0.2 3:0.3", 400, "Unable to evaluate payload provided: "),  # 1-based
    (
        "reg_pkl",
        "text/libsvm",
        b"0 4:0.1",
        400,
        "Unable to evaluate payload provided: Feature size of libsvm inference data 5 is larger than feature size of "
        "trained model 3.",
    ),
    # A saved (not pickled) booster is not checked by the container: xgboost itself refuses more columns
    ("reg", "text/csv", b"5.0,0.1,0.2,0.3", 400, "Unable to evaluate payload provided: "),
    ("reg", "text/csv", b"0.1,0.2", 200, ""),
]


@pytest.mark.parametrize(("folder", "content_type", "body", "status", "message"), FEATURE_COUNTS)
def test_rows_with_the_wrong_number_of_features_are_400_with_the_containers_message(
    monkeypatch: pytest.MonkeyPatch,
    models: dict[str, Any],
    folder: str,
    content_type: str,
    body: bytes,
    status: int,
    message: str,
) -> None:
    # Given a pickled or a saved booster of 3 features
    server = _server(monkeypatch, models[folder])
    # When rows of another width are sent
    got_status, answer, _ = server.invoke(body, content_type, None)
    # Then the container's check (pickled boosters) or xgboost's own refusal is a 400
    assert got_status == status, answer
    assert answer.decode().startswith(message)


# --------------------------------------------------------------------------- Accept and the answer's format
def _csv_lines(values: Any) -> str:
    return "".join(f"{v}\n" for v in np.asarray(values).tolist())


ACCEPTS = [
    # (Accept, environment, status, answer content type, what the answer is)
    (None, {}, 200, "text/csv; charset=utf-8", "lines"),
    ("*/*", {}, 200, "text/csv; charset=utf-8", "lines"),
    ("text/csv", {}, 200, "text/csv; charset=utf-8", "lines"),
    ("TEXT/CSV; q=0.9", {}, 200, "text/csv; charset=utf-8", "lines"),
    ("application/json", {}, 200, "application/json", "json"),
    (None, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}, 200, "application/json", "json"),
    ("application/jsonlines", {}, 500, HTML, "flask 500"),  # the encoder has none: the app fails
    ("application/x-recordio-protobuf", {}, 500, HTML, "flask 500"),
    ("application/x-npy", {}, 406, HTML, "406"),
    ("text/plain", {}, 406, HTML, "406"),
    ("text/csv, application/json", {}, 406, HTML, "406"),  # one type only, as cgi.parse_header reads it
    ("application/json", {"SAGEMAKER_BATCH": "true"}, 200, "application/json", "batch lines"),
    ("text/csv", {"SAGEMAKER_BATCH": "true"}, 200, "text/csv; charset=utf-8", "batch lines"),
]


@pytest.mark.parametrize(("accept", "env", "status", "answer_type", "shape"), ACCEPTS)
def test_the_accept_header_chooses_the_answers_format_or_406(
    monkeypatch: pytest.MonkeyPatch,
    models: dict[str, Any],
    accept: str | None,
    env: dict[str, str],
    status: int,
    answer_type: str,
    shape: str,
) -> None:
    # Given the container serving a regression booster, with this environment
    server = _server(monkeypatch, models["reg"], env)
    expected = _predict(models["boosters"]["reg"])
    # When two rows are sent with this Accept
    got_status, answer, got_type = server.invoke(CSV_ROWS, "text/csv", accept)
    # Then the answer is in the format the container writes for it
    assert (got_status, got_type) == (status, answer_type), answer
    text = answer.decode()
    if shape in ("lines", "batch lines"):  # one prediction a line, the last one ended too
        assert text == _csv_lines(expected)
    elif shape == "json":
        scores = [p["score"] for p in json.loads(text)["predictions"]]
        assert list(json.loads(text)) == ["predictions"] and np.allclose(scores, expected, atol=1e-6)
    elif shape == "flask 500":
        assert "<title>500 Internal Server Error</title>" in text
    else:
        assert text == (
            f"Accept type {accept} is not supported. Please use supported accept types: "
            "['application/json', 'application/jsonlines', 'application/x-recordio-protobuf', 'text/csv']."
        )


def test_an_unreadable_body_is_415_before_an_unsupported_accept_is_406(
    monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]
) -> None:
    # Given the container; When a body it cannot read comes with an Accept it does not support
    status, answer, _ = _server(monkeypatch, models["reg"]).invoke(b"a,b,c", "text/csv", "text/plain")
    # Then the body is refused first, as the container reads it before it looks at the Accept
    assert status == 415 and answer.decode().startswith("Loading csv data failed")


# --------------------------------------------------------------------------- classification objectives
def test_multiclass_probabilities_are_one_row_per_prediction_in_each_format(
    monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]
) -> None:
    probabilities = _predict(models["boosters"]["softprob"])
    assert probabilities.shape == (2, 3)
    # Given a multi:softprob booster, When rows are scored for text/csv: one row of 3 probabilities per prediction
    _, answer, _ = _server(monkeypatch, models["softprob"]).invoke(CSV_ROWS, "text/csv", "text/csv")
    rows = [[float(v) for v in line.split(",")] for line in answer.decode().splitlines()]
    assert np.allclose(rows, probabilities, atol=1e-6)
    # And for application/json: a list of 3 as each prediction's score
    _, answer, _ = _server(monkeypatch, models["softprob"]).invoke(CSV_ROWS, "text/csv", "application/json")
    assert np.allclose([p["score"] for p in json.loads(answer)["predictions"]], probabilities, atol=1e-6)
    # And in a transform job: each prediction's list as Python writes it, one a line
    batch = _server(monkeypatch, models["softprob"], {"SAGEMAKER_BATCH": "true"})
    _, answer, _ = batch.invoke(CSV_ROWS, "text/csv", "text/csv")
    assert answer.decode() == "".join(f"{row}\n" for row in probabilities.tolist())


def test_multiclass_softmax_answers_class_indices(monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]) -> None:
    # Given a multi:softmax booster; When rows are scored; Then each answer is the class index, as a float
    _, answer, _ = _server(monkeypatch, models["softmax"]).invoke(CSV_ROWS, "text/csv", None)
    assert answer.decode() == _csv_lines(_predict(models["softmax_boosters"][0]))
    assert all(float(v).is_integer() for v in answer.split())


# --------------------------------------------------------------------------- SAGEMAKER_INFERENCE_OUTPUT
SELECTABLE = [
    # (model, SAGEMAKER_INFERENCE_OUTPUT, Accept, status, what each prediction holds)
    ("binary", "predicted_label,probability", "application/json", 200, ["predicted_label", "probability"]),
    ("binary", " Probabilities , LABELS ", "application/json", 200, ["labels", "probabilities"]),
    ("binary", "raw_score,raw_scores,predicted_score", "application/json", 200, ["raw_score", "raw_scores", "nan"]),
    ("binary", "predicted_label,probabilities", "application/jsonlines", 200, ["predicted_label", "probabilities"]),
    ("binary", "probabilities,predicted_label", "text/csv", 200, ["csv"]),
    ("softprob", "predicted_label,probability,probabilities,labels", "application/json", 200, ["softprob"]),
    ("reg", "predicted_score,predicted_label", "application/json", 200, ["predicted_score", "nan"]),
    ("binary", "predicted_label", "application/x-recordio-protobuf", NOT_EMULATED, ["not emulated"]),
    ("binary", "predicted_label", "application/xml", 406, ["406"]),
]


@pytest.mark.parametrize(("folder", "keys", "accept", "status", "holds"), SELECTABLE)
def test_selectable_inference_output_answers_the_chosen_keys_for_the_objective(
    monkeypatch: pytest.MonkeyPatch,
    models: dict[str, Any],
    folder: str,
    keys: str,
    accept: str,
    status: int,
    holds: list[str],
) -> None:
    # Given the container with SAGEMAKER_INFERENCE_OUTPUT set
    server = _server(monkeypatch, models[folder], {"SAGEMAKER_INFERENCE_OUTPUT": keys})
    # When two rows are scored with this Accept
    got_status, answer, answer_type = server.invoke(CSV_ROWS, "text/csv", accept)
    # Then each prediction holds the chosen keys the objective can answer (NaN for the others)
    assert got_status == status, answer
    text = answer.decode()
    if status != 200:
        assert ("is not emulated locally" in text) if status == NOT_EMULATED else text.startswith("Accept type")
        return
    assert answer_type.startswith(accept)
    if accept == "text/csv":  # in the order chosen, a list quoted
        p = _predict(models["boosters"]["binary"])
        assert text == "\n".join(f'"[{1.0 - float(v)}, {float(v)}]",{int(v > 0.5)}' for v in p)
        return
    lines = text.splitlines()
    predictions = json.loads(text)["predictions"] if accept == "application/json" else [json.loads(x) for x in lines]
    if folder == "binary":
        p = [float(v) for v in _predict(models["boosters"]["binary"])]
        expected = [
            {
                "predicted_label": int(v > 0.5),
                "labels": [0, 1],
                "probability": v,
                "probabilities": [1.0 - v, v],
                "raw_score": v,
                "raw_scores": [1.0 - v, v],
            }
            for v in p
        ]
        for got, want in zip(predictions, expected, strict=True):
            assert {k: got[k] for k in holds if k != "nan"} == {k: want[k] for k in holds if k != "nan"}
        if "nan" in holds:
            assert all(math.isnan(got["predicted_score"]) for got in predictions)
    elif folder == "softprob":
        probabilities = _predict(models["boosters"]["softprob"]).tolist()
        assert predictions == [
            {
                "predicted_label": int(np.argmax(row)),
                "labels": [0, 1, 2],
                "probability": max(row),
                "probabilities": row,
            }
            for row in probabilities
        ]
    else:
        scores = [float(v) for v in _predict(models["boosters"]["reg"])]
        assert [p["predicted_score"] for p in predictions] == scores
        assert all(math.isnan(p["predicted_label"]) for p in predictions)


def test_selectable_output_for_an_objective_the_container_does_not_know_is_500(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a count:poisson booster and SAGEMAKER_INFERENCE_OUTPUT
    import xgboost as xgb

    booster = xgb.train({"objective": "count:poisson"}, xgb.DMatrix(np.array(ROWS), label=[1.0, 2.0]), 2)
    folder = _folder(tmp_path, "poisson", {"xgboost-model": booster})
    server = _server(monkeypatch, folder, {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_score"})
    # When rows are scored; Then the container's 500 names the objective
    status, answer, _ = server.invoke(CSV_ROWS, "text/csv", "application/json")
    assert (status, answer) == (500, b"Objective `count:poisson` unsupported for selectable inference predictions.")


# --------------------------------------------------------------------------- /opt/ml/model
def test_every_model_file_but_dotfiles_is_loaded_and_their_predictions_averaged(
    monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]
) -> None:
    boosters = models["boosters"]
    mean = (_predict(boosters["reg"]) + _predict(boosters["reg_b"])) / 2
    # Given two boosters and a dotfile in the model folder; When rows are scored
    server = _server(monkeypatch, models["two_reg"])
    _, answer, _ = server.invoke(CSV_ROWS, "text/csv", None)
    # Then the two are averaged, the dotfile ignored
    assert len(server.boosters) == 2 and np.allclose(_floats(answer), mean, atol=1e-6)
    # And with SAGEMAKER_INFERENCE_ENSEMBLE other than "true", only the first file answers
    alone = _server(monkeypatch, models["two_reg"], {"SAGEMAKER_INFERENCE_ENSEMBLE": "false"})
    _, answer, _ = alone.invoke(CSV_ROWS, "text/csv", None)
    assert len(alone.boosters) == 1 and np.allclose(_floats(answer), _predict(boosters["reg"]), atol=1e-6)


def test_several_multi_softmax_boosters_vote(monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]) -> None:
    many_rows = np.random.default_rng(9).uniform(size=(40, 3)).tolist()
    each = np.stack([_predict(b, many_rows) for b in models["softmax_boosters"]])
    voted = [min(set(col), key=lambda c: (-list(col).count(c), c)) for col in each.T.tolist()]
    assert not np.allclose(voted, each.mean(axis=0))  # the vote is not the mean on these rows
    # Given three multi:softmax boosters; When rows are scored; Then each row's answer is the most voted class
    body = "\n".join(",".join(str(v) for v in row) for row in many_rows).encode()
    _, answer, _ = _server(monkeypatch, models["three_softmax"]).invoke(body, "text/csv", None)
    assert _floats(answer) == voted


def test_a_pickled_booster_answers_as_the_saved_one(monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]) -> None:
    # Given the same booster pickled and saved; When the same rows are scored; Then both answer the same
    _, pickled, _ = _server(monkeypatch, models["reg_pkl"]).invoke(CSV_ROWS, "text/csv", None)
    _, saved, _ = _server(monkeypatch, models["reg"]).invoke(CSV_ROWS, "text/csv", None)
    assert pickled == saved


def test_a_model_file_that_is_neither_a_pickle_nor_a_booster_fails_the_container_naming_both_errors(
    monkeypatch: pytest.MonkeyPatch, models: dict[str, Any]
) -> None:
    # Given a model folder holding a file xgboost cannot read; When the container starts; Then it fails, saying why
    with pytest.raises(Exception, match=r"cannot be loaded:\nPickle load error=.*\nXGB load model error=") as failed:
        _server(monkeypatch, models["broken"])
    assert type(failed.value).__name__ == "ModelLoadError"


def test_the_serving_modules_import_neither_xgboost_nor_scipy() -> None:
    # Given the modules a container process is forked with; When they are imported alone
    code = (
        "import sys; import sfn_mlops_local.containers.serving, sfn_mlops_local.containers.xgboost_serving; "
        "print(sorted({'xgboost', 'scipy', 'sklearn', 'pandas'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    # Then nothing but the standard library and numpy came with them
    assert done.stdout.strip() == "[]"
