"""Channels and their data, by the 1.7-1 container's rules.

Rule sources (restated): aws/sagemaker-xgboost-container, src/sagemaker_algorithm_toolkit/channel_validation.py
and algorithm_mode/channel_validation.py (which channels, content types, input modes and distributions),
data_utils.py (content types, the hidden-file check, the first-line format checks, the three folder levels,
and CSV/libsvm read by xgboost's own parser through a DMatrix URI, so a header line becomes a row with
label 0 and non-numeric cells become missing values, exactly as on SageMaker).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import NotEmulated, UserError

log = logging.getLogger("sagemaker_xgboost_container")

CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF = "csv", "libsvm", "parquet", "recordio-protobuf"
VALID_CONTENT_TYPES = (
    CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF, "text/csv", "text/libsvm", "text/x-libsvm", "application/x-parquet",
    "application/x-recordio-protobuf",
)  # fmt: skip
VALID_PIPED_CONTENT_TYPES = (CSV, PARQUET, RECORDIO_PROTOBUF, "text/csv", "application/x-parquet",
                             "application/x-recordio-protobuf")  # fmt: skip
DEFAULT_CONTENT_TYPE = "text/libsvm"
FILE, PIPE = "File", "Pipe"
DISTRIBUTIONS = ("ShardedByS3Key", "FullyReplicated")
MAX_FOLDER_DEPTH = 3


def _supported(content_types: tuple[str, ...], mode: str) -> set[tuple[str, str, str]]:
    return {(content_type, mode, dist) for content_type in content_types for dist in DISTRIBUTIONS}


TRAINING_CHANNEL_SUPPORT = _supported(VALID_CONTENT_TYPES, FILE) | _supported(VALID_PIPED_CONTENT_TYPES, PIPE)
# (name, required, supported (content type, input mode, distribution)); "code" is the script-mode toggle.
CHANNELS: tuple[tuple[str, bool, set[tuple[str, str, str]]], ...] = (
    ("train", True, TRAINING_CHANNEL_SUPPORT),
    ("validation", False, TRAINING_CHANNEL_SUPPORT),
    ("code", False, {("text/python", FILE, "FullyReplicated")}),
)


def validate_channels(config: Any) -> dict[str, dict[str, Any]]:
    """inputdataconfig.json checked as the toolkit does; ContentType defaults to text/libsvm."""
    if not isinstance(config, dict):
        raise UserError("inputdataconfig.json must hold a JSON object")
    for name, required, _ in CHANNELS:
        if required and name not in config:
            raise UserError(f"Missing required channel: {name}")
    supported = {name: support for name, _, support in CHANNELS}
    validated = {}
    for name, raw in config.items():
        if name not in supported:
            raise UserError(f"Extraneous channel found: {name}")
        value = dict(raw or {})
        # SageMaker leaves ContentType out when unset and always fills the mode and distribution;
        # a local runtime may write them empty instead, which means the same.
        if not value.get("ContentType"):
            value.pop("ContentType", None)
            value["ContentType"] = DEFAULT_CONTENT_TYPE
        value["TrainingInputMode"] = value.get("TrainingInputMode") or FILE
        value["S3DistributionType"] = value.get("S3DistributionType") or "FullyReplicated"
        key = (value["ContentType"], value["TrainingInputMode"], value["S3DistributionType"])
        if key not in supported[name]:
            raise UserError(f"Channel configuration for '{name}' channel is not supported: {value}")
        validated[name] = value
    return validated


def file_type(content_type: str) -> str:
    """csv, libsvm, parquet or recordio-protobuf, from a ContentType with optional parameters."""
    kind, *options = (part.strip() for part in content_type.lower().split(";"))
    params = dict(option.split("=", 1) for option in options if "=" in option)
    if kind in (CSV, "text/csv"):
        if params.get("label_size", "1") != "1":
            raise UserError(
                f"{content_type} is not an accepted csv ContentType. Optional parameter label_size must be equal to 1"
            )
        return CSV
    if kind in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if kind in (PARQUET, "application/x-parquet"):
        return PARQUET
    if kind in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError(f"{content_type} is not an accepted ContentType: {', '.join(VALID_CONTENT_TYPES)}.")


def data_size(path: Path) -> int:
    """Bytes under path; a hidden file anywhere fails the job, as in the container."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name.startswith("."):
                raise UserError("Hidden file found in the data path! Remove that before training.")
            total += (Path(root) / name).stat().st_size
    return total


def _is_data_file(path: Path) -> bool:
    name = path.name
    if not path.is_file() or name.startswith((".", "_")):
        return False
    return not (".cache" in name and ("dtrain" in name or "dval" in name))


def sniff_delimiter(line: str) -> str:
    try:
        delimiter = csv.Sniffer().sniff(line).delimiter
    except Exception as exc:
        raise UserError(f"Could not determine delimiter on line {line[:50]}:\n{exc}") from None
    log.info("Determined delimiter of CSV input is '%s'", delimiter)
    return delimiter


def _libsvm_feature_count(line: str) -> int:
    """-1 when the line is not libsvm; the container checks the first feature's shape on every field."""
    fields = line.split(" ")
    label = fields[0].split(":")
    try:
        if len(label) > 2:
            return -1
        for part in label:
            float(part)
    except ValueError:
        return -1
    for item in fields[1:]:
        if ":" not in item or len(fields[1].split(":")) != 2:
            return -1
    return len(fields) - 1


def _check_libsvm_file(path: Path) -> None:
    with path.open(errors="ignore") as lines:
        for line in lines:
            count = _libsvm_feature_count(line)
            if count > 1:
                return
            if count < 0:
                raise UserError(
                    f"First line '{line[:50]}...' of file '{path.name}' is not 'LIBSVM' format. "
                    "Please ensure the file is in 'LIBSVM' format."
                )
    log.warning("File %s is not an invalid LIBSVM file but has no features. Accepting simple validation.", path.name)


def check_first_lines(path: Path, kind: str) -> None:
    """The container's light format check: only the files of the first folder without sub-folders."""
    folder = path
    if path.is_dir():
        for root, dirs, _ in os.walk(path):
            dirs.sort()
            if not dirs:
                folder = Path(root)
                break
    files = [path] if path.is_file() else sorted(item for item in folder.iterdir() if _is_data_file(item))
    for file in files:
        if kind == CSV:
            with file.open(errors="ignore") as lines:
                sniff_delimiter(lines.readline())
        elif kind == LIBSVM:
            _check_libsvm_file(file)


def _link_files(source: Path, depth: int, links: list[Path]) -> None:
    if depth > MAX_FOLDER_DEPTH:
        raise _TooDeep
    if source.is_file():
        links.append(source)
        return
    # The container walks os.scandir order; sorted names make the local order reproducible.
    for item in sorted(source.iterdir()):
        if item.is_file():
            links.append(item)
        elif item.is_dir():
            _link_files(item, depth + 1, links)


class _TooDeep(Exception):
    pass


@contextmanager
def gathered_files(path: Path) -> Iterator[Path]:
    """One folder holding a link to every file of the channel up to three folder levels deep.

    As in the container, meeting a deeper folder stops the gathering (files met before it are kept)
    with a warning. Files starting with '_' are read too; xgboost's reader takes a folder's every file.
    """
    with tempfile.TemporaryDirectory(prefix="sagemaker_xgboost_input_data") as folder:
        target = Path(folder)
        links: list[Path] = []
        try:
            _link_files(path, 1, links)
        except _TooDeep:
            log.warning(
                "The depth of folder %s exceed the limit %s. Files in deeper sub dirs won't be loaded. "
                "Please adjust the folder structure accordingly.",
                path,
                MAX_FOLDER_DEPTH,
            )
        for index, file in enumerate(links):
            link = target / f"{file.name}-{index}"
            try:
                link.symlink_to(file.resolve())
            except OSError:  # no symlinks here: a copy reads the same
                shutil.copyfile(file, link)
        yield target


def load_matrix(xgb: Any, path: Path, kind: str, csv_weights: int) -> Any:
    """A DMatrix read by xgboost's own parser, as the container reads File-mode channels."""
    if kind in (PARQUET, RECORDIO_PROTOBUF):
        raise NotEmulated(f"ContentType {kind}")
    with gathered_files(path) as folder:
        if kind == CSV:
            files = sorted(item for item in folder.iterdir() if item.is_file())
            if not files:
                raise UserError(f"No data files within {MAX_FOLDER_DEPTH} folder levels of {path}")
            with files[0].open() as first:
                delimiter = sniff_delimiter(first.readline())
            weights = "&weight_column=1" if csv_weights == 1 else ""
            uri = f"{folder}?format=csv&label_column=0&delimiter={delimiter}{weights}"
        else:
            uri = f"{folder}?format=libsvm"
        try:
            matrix = xgb.DMatrix(uri)
        except Exception as exc:
            raise UserError(f"Failed to load {kind} data with exception:\n{exc}") from None
    if matrix.get_label().size == 0:
        raise UserError(
            "Got input data without labels. Please check the input data set. If training job is running on "
            "multiple instances, please switch to using single instance if number of records in the data set is "
            "less than number of workers (16 * number of instance) in the cluster."
        )
    return matrix


def warn_on_shared_files(train: Path, validation: Path) -> None:
    """The container's warning for same-named, same-sized files in train and validation."""
    if train == validation or train.name == validation.name:
        log.warning(
            "Found same path for training and validation. This is not recommended and results may not be correct."
        )
        return
    for path, which in ((train, "training"), (validation, "validation")):
        if not path.exists():
            raise UserError(f"{which} data's path is not existed")
    names = {item.name for item in train.iterdir() if item.is_file()}
    for item in validation.iterdir():
        if item.is_file() and item.name in names and item.stat().st_size == (train / item.name).stat().st_size:
            log.warning(
                "Suspected identical files found. (%s and %s with same size %s bytes). Note: Duplicate data in the "
                "training set and validation set is usually not intentional and can impair the validity of the "
                "model evaluation by the validation score.",
                train / item.name,
                item,
                item.stat().st_size,
            )
