"""The CLI's boto3 sessions load botocore's data through a marshal cache: same models, no JSON parse the second
time, and a broken cache never breaks a command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from sfn_mlops_local import model_cache

CREDENTIALS = {"aws_access_key_id": "x", "aws_secret_access_key": "y", "region_name": "us-east-1"}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(model_cache.CACHE_VARIABLE, str(tmp_path / "cache"))
    return model_cache.cache_dir()


def model_of(session: Any, service: str) -> Any:
    return session.client(service, endpoint_url="http://127.0.0.1:9")._service_model


def test_a_cached_session_builds_the_same_clients_as_boto3(cache: Path) -> None:
    # Given a session through the cache, twice (the second reads the cache), and a plain boto3 session
    first = model_of(model_cache.session(**CREDENTIALS), "sagemaker")
    second = model_of(model_cache.session(**CREDENTIALS), "sagemaker")
    plain = model_of(boto3.session.Session(**CREDENTIALS), "sagemaker")
    # Then every operation and its input members, in order, are the same
    assert list(first.operation_names) == list(second.operation_names) == list(plain.operation_names)
    for name in ("CreateProcessingJob", "DescribeTrainingJob"):
        members = list(plain.operation_model(name).input_shape.members)
        assert list(second.operation_model(name).input_shape.members) == members
    assert any(cache.glob("*.marshal"))


def test_the_second_session_parses_no_json(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the cache filled by one session
    model_of(model_cache.session(**CREDENTIALS), "dynamodb")
    # When botocore's own JSON loading is made to fail
    import botocore.loaders

    def refuse(*_: Any) -> Any:
        raise AssertionError("parsed JSON although the cache holds it")

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", refuse)
    # Then a new session still builds its client, from the cache alone
    assert "Query" in model_of(model_cache.session(**CREDENTIALS), "dynamodb").operation_names


def test_a_corrupt_cache_file_falls_back_to_botocore(cache: Path) -> None:
    # Given a filled cache whose files are then overwritten with garbage
    model_of(model_cache.session(**CREDENTIALS), "dynamodb")
    for path in cache.glob("*.marshal"):
        path.write_bytes(b"\x00not marshal")
    # When a session builds a client, Then it is whole, and the cache is rewritten
    assert "Query" in model_of(model_cache.session(**CREDENTIALS), "dynamodb").operation_names
    assert not any(path.read_bytes().startswith(b"\x00not") for path in cache.glob("*.marshal"))


def test_an_unwritable_cache_folder_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a cache location that is a file, so nothing can be stored under it
    blocker = tmp_path / "blocked"
    blocker.write_text("")
    monkeypatch.setenv(model_cache.CACHE_VARIABLE, str(blocker))
    # When a session builds a client, Then it works
    assert "Query" in model_of(model_cache.session(**CREDENTIALS), "dynamodb").operation_names
