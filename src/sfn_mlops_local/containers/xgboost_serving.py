"""``sagemaker-xgboost:1.7-1`` in algorithm mode, serving: what its ``POST /invocations`` answers, rule by rule.

The rules are the container's published serving code of the 1.7-1 era (aws/sagemaker-xgboost-container,
``src/sagemaker_xgboost_container/``): ``algorithm_mode/serve.py`` (the Flask app a single-model endpoint and a
transform job run), ``algorithm_mode/serve_utils.py`` (decoding, loading, predicting, selectable output),
``data_utils.py`` (``get_content_type``), ``encoder.py`` (``csv_to_dmatrix``) and the ``encode`` of
sagemaker-inference-toolkit (``encoder.py``) the app answers with. Our own code, written from those rules; the
table in docs/decisions/0025-xgboost-serving-rules.md names each rule's source. In short:

- the body: over ``MAX_CONTENT_LENGTH`` (6 MiB unless set) 413; empty 204;
- the Content-Type (none means libsvm): text/csv, csv, text/libsvm, text/x-libsvm, libsvm; ``label_size`` other
  than 1, an unknown type, or parquet, 415 with the container's message; rows that do not parse, 415;
- the model: every file of ``/opt/ml/model`` but dotfiles (only the first if ``SAGEMAKER_INFERENCE_ENSEMBLE`` is
  not ``true``), pickled or ``Booster.save_model``; several are averaged (voted for multi:softmax, binary:hinge);
- a pickled booster checks the feature count (csv: as many as the model, or one fewer; libsvm: at most one
  more); the booster's own refusal is 400 ``Unable to evaluate payload provided: ...``;
- the Accept (after predicting; none or ``*/*`` means ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or text/csv):
  application/json, application/jsonlines, application/x-recordio-protobuf or text/csv, else 406;
- the answer: under ``SAGEMAKER_BATCH`` one prediction per line whatever the Accept; else text/csv one row per
  prediction (``numpy.savetxt``: one value a line, a multi:softprob row's probabilities joined by commas),
  application/json ``{"predictions": [{"score": ...}]}``; jsonlines or recordio-protobuf fail the app (500);
- ``SAGEMAKER_INFERENCE_OUTPUT`` (selectable inference content): the chosen keys per prediction, by objective.

Not emulated, answered ``501`` with a message saying so (never a different answer): recordio-protobuf request
bodies, and recordio-protobuf answers of selectable inference content.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from sfn_mlops_local.containers.serving import ModelLoadError, Response, flask_content_type

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
HTML = "text/html"
NOT_EMULATED = 501  # the container never answers 501: a local limit is never mistaken for its answer

DEFAULT_MAX_CONTENT_LENGTH = 6 * 1024 * 1024
# data_utils.VALID_CONTENT_TYPES, in its order (its 415 message lists them).
VALID_CONTENT_TYPES = (
    "csv",
    "libsvm",
    "parquet",
    "recordio-protobuf",
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
)
SUPPORTED_ACCEPTS = [JSON, JSONLINES, RECORDIO, CSV]  # serve.SUPPORTED_ACCEPTS; its 406 message prints the list

# serve_utils.VALID_OBJECTIVES: the selectable keys each objective can answer.
_CLASSIFIER_KEYS = ("predicted_label", "labels", "raw_score", "raw_scores")
_PROBABILITY_KEYS = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores")
VALID_OBJECTIVES: dict[str, tuple[str, ...]] = {
    "reg:squarederror": ("predicted_score",),
    "reg:logistic": ("predicted_score",),
    "reg:gamma": ("predicted_score",),
    "reg:tweedie": ("predicted_score",),
    "binary:logistic": _PROBABILITY_KEYS,
    "binary:logitraw": _CLASSIFIER_KEYS,
    "binary:hinge": _CLASSIFIER_KEYS,
    "multi:softmax": _CLASSIFIER_KEYS,
    "multi:softprob": _PROBABILITY_KEYS,
}
KEY_ORDER = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores", "predicted_score")
VOTED_OBJECTIVES = ("multi:softmax", "binary:hinge")

# What Flask (werkzeug) answers for an error the app does not handle, and for a body over MAX_CONTENT_LENGTH.
FLASK_500 = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. Either the server is "
    b"overloaded or there is an error in the application.</p>\n"
)
FLASK_413 = (
    b"<!doctype html>\n<html lang=en>\n<title>413 Request Entity Too Large</title>\n<h1>Request Entity Too Large"
    b"</h1>\n<p>The data value transmitted exceeds the capacity limit.</p>\n"
)


class Refused(Exception):
    """An answer other than 200, with the container's status and message (Flask's text/html by default)."""

    def __init__(self, status: int, message: str | bytes, content_type: str = HTML) -> None:
        super().__init__(message if isinstance(message, str) else message.decode())
        self.status = status
        self.body = message.encode() if isinstance(message, str) else message
        self.content_type = content_type

    @property
    def response(self) -> Response:
        return self.status, self.body, flask_content_type(self.content_type)


def not_emulated(what: str) -> Refused:
    return Refused(NOT_EMULATED, f"{what} is not emulated locally (the sagemaker-xgboost:1.7-1 container supports it)")


# --------------------------------------------------------------------------- request: content type and body
def parse_header(value: str) -> tuple[str, dict[str, str]]:
    """cgi.parse_header, which the container uses: the media type and its ``;key=value`` parameters."""
    media, *parts = value.split(";")
    params = {}
    for part in parts:
        if "=" in part:
            key, _, val = part.partition("=")
            params[key.strip().lower()] = val.strip().strip('"')
    return media.strip(), params


def content_kind(content_type: str | None) -> str:
    """data_utils.get_content_type: ``csv``, ``libsvm``, ``parquet`` or ``recordio-protobuf``; no header at all is
    libsvm. Raises the container's 415 for anything else."""
    if content_type is None:
        return "libsvm"
    media, params = parse_header(content_type.lower())
    if media in ("csv", CSV):
        if params.get("label_size", "1") != "1":
            raise Refused(
                415,
                f"{content_type} is not an accepted csv ContentType. Optional parameter label_size must be equal to 1",
            )
        return "csv"
    if media in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return "libsvm"
    if media in ("parquet", "application/x-parquet"):
        return "parquet"
    if media in ("recordio-protobuf", RECORDIO):
        return "recordio-protobuf"
    raise Refused(415, f"{content_type} is not an accepted ContentType: {', '.join(VALID_CONTENT_TYPES)}.")


def csv_rows(text: str) -> Any:
    """encoder.csv_to_dmatrix's parsing: the delimiter sniffed from the first line (a letter or digit means a
    comma), every line split on it, empty fields missing; floats, or the error the container reports."""
    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if field == "" else field for field in line.split(delimiter)] for line in text.split("\n")]
    return np.array(rows).astype(np.float64)


def libsvm_matrix(text: str) -> Any:
    """serve_utils._get_sparse_matrix_from_libsvm: ``index:value`` items of each line (the label has no colon and
    is skipped); the matrix is as wide as the largest index + 1 and as tall as the last row with a feature."""
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                parts = item.split(":")
                rows.append(row)
                cols.append(int(parts[0]))
                values.append(float(parts[1]))
    return csr_matrix((np.array(values, dtype=np.float64), (np.array(rows), np.array(cols, dtype=np.int64))))


def decode(body: bytes, kind: str, content_type: str | None, xgb: Any) -> Any:
    """serve_utils.parse_content_data: the request's rows as a DMatrix, or the container's 415."""
    if kind == "recordio-protobuf":
        raise not_emulated("A request body in application/x-recordio-protobuf")
    if kind not in ("csv", "libsvm"):
        raise Refused(415, f"Content-type {content_type} is not supported.")
    try:
        text = body.strip().decode("utf-8")
        return xgb.DMatrix(csv_rows(text) if kind == "csv" else libsvm_matrix(text))
    except Exception as exc:
        raise Refused(
            415,
            f"Loading {kind} data failed with Exception, please ensure data is in {kind} format:\n {type(exc)}\n {exc}",
        ) from exc


# --------------------------------------------------------------------------- model
def model_paths(model_dir: str, ensemble: bool) -> list[Path]:
    """serve_utils.get_loaded_booster's files: every file of the folder but dotfiles (the container warns and
    skips them); only the first unless ensembling. The container takes os.listdir's order; sorted here."""
    paths = [p for p in sorted(Path(model_dir).iterdir()) if p.is_file()]
    for path in paths:
        if path.name.startswith("."):
            print(f"Ignoring dotfile '{path}' found in model directory - please exclude dotfiles from model archives")
    kept = [p for p in paths if not p.name.startswith(".")]
    return kept if ensemble else kept[:1]


def load_booster(path: Path, xgb: Any) -> tuple[Any, str]:
    """A pickle first, then ``Booster.load_model``; both errors in the container's message when neither works."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle), "pkl_format"  # the user's own model, as the container does
    except Exception as pickle_error:
        try:
            booster = xgb.Booster()
            booster.load_model(str(path))
            return booster, "xgb_format"
        except Exception as xgb_error:
            raise ModelLoadError(
                f"Model {path} cannot be loaded:\nPickle load error={pickle_error}\nXGB load model error={xgb_error}"
            ) from xgb_error


def check_feature_count(booster: Any, dtest: Any, kind: str) -> None:
    """serve_utils.predict's check, for a pickled booster only: csv rows have as many features as the model or one
    fewer; libsvm rows at most one more (a 1-based index)."""
    model = booster.num_features()
    data = len(dtest.feature_names) if dtest.feature_names is not None else dtest.num_col()
    if kind == "libsvm" and data > model + 1:
        raise ValueError(
            f"Feature size of libsvm inference data {data} is larger than feature size of trained model {model}."
        )
    if kind == "csv" and data not in (model, model - 1):
        raise ValueError(
            f"Feature size of csv inference data {data} is not consistent with feature size of trained model {model}."
        )


def vote(predictions: list[Any]) -> Any:
    """scipy.stats.mode over the models, per row (the smallest value wins a tie, as scipy's mode)."""
    stacked = np.stack(predictions)
    out = np.empty(stacked.shape[1:], dtype=stacked.dtype)
    for index in np.ndindex(*stacked.shape[1:]):
        values, counts = np.unique(stacked[(slice(None), *index)], return_counts=True)
        out[index] = values[np.argmax(counts)]
    return out


# --------------------------------------------------------------------------- answer
def parse_accept(accept: str | None) -> str:
    """serve._parse_accept: none or ``*/*`` is ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (default text/csv, taken as
    given); otherwise one of SUPPORTED_ACCEPTS, lower-cased, or the container's 406."""
    media, _ = parse_header(accept or "")
    if not media or media == "*/*":
        return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", CSV)
    if media.lower() not in SUPPORTED_ACCEPTS:
        raise Refused(
            406, f"Accept type {media} is not supported. Please use supported accept types: {SUPPORTED_ACCEPTS}."
        )
    return media.lower()


def encode_plain(values: list[Any], accept: str, batch: bool) -> bytes:
    """What serve.invocations writes without selectable output."""
    if batch:  # one prediction per line (a multi:softprob row as a Python list), whatever the Accept
        return ("\n".join(map(str, values)) + "\n").encode()
    if accept == JSON:  # serve_utils.encode_predictions_as_json
        return json.dumps({"predictions": [{"score": value} for value in values]}).encode()
    if accept == CSV:  # sagemaker_inference.encoder: numpy.savetxt, one row per prediction
        stream = io.StringIO()
        np.savetxt(stream, values, delimiter=",", fmt="%s")
        return stream.getvalue().encode()
    if accept == "application/x-npy":  # reachable through SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT only
        buffer = io.BytesIO()
        np.save(buffer, values)
        return buffer.getvalue()
    # sagemaker_inference.encoder has no encoder for it: UnsupportedFormatError, which the app does not handle
    print(f"UnsupportedFormatError: Content type {accept} is not supported by this framework.", flush=True)
    raise Refused(500, FLASK_500)


def selected_keys() -> list[str]:
    """serve_utils.get_selected_output_keys: the comma-separated keys, spaces removed, lower-cased."""
    return os.environ.get("SAGEMAKER_INFERENCE_OUTPUT", "").replace(" ", "").lower().split(",")


def select(raw: Any, keys: list[str], objective: str, num_class: str) -> dict[str, Any]:
    """serve_utils.get_selected_predictions for one prediction: the valid keys in the container's order, then the
    keys the objective cannot answer, as NaN (the container logs a warning for them)."""
    valid = VALID_OBJECTIVES[objective]
    value = np.asarray(raw)
    softprob = objective == "multi:softprob"
    out: dict[str, Any] = {}
    for key in KEY_ORDER:
        if key not in keys or key not in valid:
            continue
        if key == "predicted_label":
            if softprob:
                out[key] = int(np.argmax(value))
            elif objective == "binary:logistic":
                out[key] = int(value > 0.5)
            elif objective == "binary:logitraw":
                out[key] = int(value > 0)
            else:  # binary:hinge, multi:softmax: the prediction is the label
                out[key] = value.item()
        elif key == "labels":
            if objective.startswith("binary:"):
                out[key] = [0, 1]
            else:
                out[key] = list(range(int(num_class))) if num_class else math.nan
        elif key in ("probability", "raw_score"):
            out[key] = max(value.tolist()) if softprob else value.item()
        elif key in ("probabilities", "raw_scores"):
            out[key] = value.tolist() if softprob else [1.0 - value.item(), value.item()]
        else:  # predicted_score
            out[key] = value.item()
    for key in dict.fromkeys(keys):
        if key not in valid:
            out[key] = math.nan
    return out


def encode_selected(predictions: list[dict[str, Any]], keys: list[str], accept: str, batch: bool) -> bytes:
    """serve_utils.encode_selected_predictions."""
    if accept == JSON:
        return json.dumps({"predictions": predictions}).encode()
    if accept == JSONLINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode()
    if accept == RECORDIO:
        raise not_emulated("Selectable inference output in application/x-recordio-protobuf")
    if accept == CSV:
        lines = (",".join(f'"{p[k]}"' if isinstance(p[k], list) else str(p[k]) for k in keys) for p in predictions)
        return ("\n".join(lines) + ("\n" if batch else "")).encode()
    raise RuntimeError(f"Cannot encode selected predictions into accept type '{accept}'.")


class XGBoostServer:
    """The built-in algorithm's ScoringService: the environment read once (the container reads it at import), the
    model loaded at start (its worker fails to start, and the endpoint with it, if it cannot be)."""

    def __init__(self, model_dir: str) -> None:
        import xgboost as xgb

        self._xgb = xgb
        self.batch = bool(os.environ.get("SAGEMAKER_BATCH"))
        self.selectable = "SAGEMAKER_INFERENCE_OUTPUT" in os.environ
        self.max_content_length = int(os.environ.get("MAX_CONTENT_LENGTH", str(DEFAULT_MAX_CONTENT_LENGTH)))
        ensemble = os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") == "true"
        paths = model_paths(model_dir, ensemble)
        if not paths:
            raise ModelLoadError(f"no model file in {model_dir}")
        self.boosters: list[Any] = []
        self.formats: list[str] = []
        for path in paths:
            print(f"Loading the model from {path}", flush=True)
            booster, model_format = load_booster(path, xgb)
            booster.set_param("nthread", 1)
            self.boosters.append(booster)
            self.formats.append(model_format)
        config = json.loads(self.boosters[0].save_config())
        self.objective = str(config["learner"]["objective"]["name"])
        self.num_class = str(config["learner"]["learner_model_param"].get("num_class", ""))
        print(f"Model objective : {self.objective}", flush=True)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        try:
            return self._invoke(body, content_type, accept)
        except Refused as refused:
            return refused.response
        except Exception:  # the app does not handle it: Flask's 500, the traceback in the log
            traceback.print_exc()
            return 500, FLASK_500, flask_content_type(HTML)

    def _invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        if len(body) > self.max_content_length:
            raise Refused(413, FLASK_413)
        if len(body) == 0:
            return 204, b"", flask_content_type(HTML)
        kind = content_kind(content_type)
        dtest = decode(body, kind, content_type, self._xgb)
        try:
            predictions = self.predict(dtest, kind)
        except Exception as exc:
            raise Refused(400, f"Unable to evaluate payload provided: {exc}") from exc
        media = parse_accept(accept)
        if self.selectable:
            return self._selected(predictions, media)
        return 200, encode_plain(predictions.tolist(), media, self.batch), flask_content_type(media)

    def predict(self, dtest: Any, kind: str) -> Any:
        import warnings

        if self.formats[0] == "pkl_format":
            check_feature_count(self.boosters[0], dtest, kind)
        ensemble = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ntree_limit is deprecated in 1.7; the container still passes it
            for booster in self.boosters:
                limit = getattr(booster, "best_ntree_limit", 0)
                ensemble.append(booster.predict(dtest, ntree_limit=limit, validate_features=False))
        if len(ensemble) == 1:
            return ensemble[0]
        return vote(ensemble) if self.objective in VOTED_OBJECTIVES else np.mean(ensemble, axis=0)

    def _selected(self, predictions: Any, accept: str) -> Response:
        """serve._handle_selectable_inference_response: any failure is a 500 with its message."""
        try:
            if self.objective not in VALID_OBJECTIVES:
                raise ValueError(f"Objective `{self.objective}` unsupported for selectable inference predictions.")
            keys = selected_keys()
            chosen = [select(raw, keys, self.objective, self.num_class) for raw in predictions]
            body = encode_selected(chosen, keys, accept, self.batch)
        except Refused:
            raise
        except Exception as exc:
            traceback.print_exc()
            raise Refused(500, str(exc)) from exc
        return 200, body, flask_content_type(accept)
