"""Shared fixtures: AWS mocked with moto, tables built from template.yaml itself, no network."""

from __future__ import annotations

import copy
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aws_xray_sdk.core  # noqa: F401  # opens its UDP socket at import: do it before sockets are blocked
import boto3
import pytest
import urllib3.util.connection  # noqa: F401  # probes IPv6 with a socket at import, same reason
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "sfn-mlops-test",
        "POWERTOOLS_METRICS_NAMESPACE": "SfnMlopsTest",
    }
)

TABLE = "test-metadata"
# Lines a test wants shown at the end of the run (e.g. how many fault points the fault matrix covered).
SUMMARY = pytest.StashKey[list[str]]()
# Cases a suite counts, by suite and kind: the end of the run shows "<suite>: N cases (<kind> n, ...)".
TALLIES = pytest.StashKey[dict[str, dict[str, int]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SUMMARY] = []
    config.stash[TALLIES] = {}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # Modules with tooling or Spark tests first: they run long in external processes (sam build, checkov, a JVM),
    # and last in collection order one ran on alone for a minute while the other worker had nothing left to do.
    first = {
        item.nodeid.split("::", 1)[0]
        for item in items
        if item.get_closest_marker("tooling") or item.get_closest_marker("spark")
    }
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in first)  # stable: the rest keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    # The test process runs in-process runtimes (moto's models, many short-lived objects): collect less often and
    # never rescan what collection imported, as the local service does for itself.
    from sfn_mlops_local.local.service import collect_garbage_for_a_long_lived_process

    collect_garbage_for_a_long_lived_process()


def tally(config: pytest.Config, suite: str, kind: str) -> None:
    """Count one case of ``suite`` under ``kind`` for the summary at the end of the run."""
    kinds = config.stash[TALLIES].setdefault(suite, {})
    kinds[kind] = kinds.get(kind, 0) + 1


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # A pytest-xdist worker's stash dies with it: hand its lines to the controller (pytest_testnodedown).
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        lines: list[str] = session.config.stash[SUMMARY]
        workeroutput["summary_lines"] = [*lines]
        workeroutput["summary_tallies"] = session.config.stash[TALLIES]


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent when it is not installed or -p no:xdist
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", None) or {}
    node.config.stash[SUMMARY].extend(output.get("summary_lines", []))
    for suite, kinds in output.get("summary_tallies", {}).items():
        for kind, count in kinds.items():
            merged = node.config.stash[TALLIES].setdefault(suite, {})
            merged[kind] = merged.get(kind, 0) + count


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)
    for suite, kinds in sorted(config.stash.get(TALLIES, {}).items()):
        counts = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
        terminalreporter.write_line(f"{suite}: {sum(kinds.values())} cases ({counts})")


BUCKET = "test-artifacts"


def wait_until(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.05) -> Any:
    """Poll with a deadline; returns the first truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS call, with the settings the functions read from their environment."""
    from sfn_mlops.aws import reset_clients
    from sfn_mlops.settings import get_settings

    monkeypatch.setenv("METADATA_TABLE", TABLE)
    monkeypatch.setenv("ARTIFACT_BUCKET", BUCKET)
    monkeypatch.setenv("TRAINING_FLOW_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:test-flow")
    # The stack's defaults (an in-process local runtime may have left its own in the environment)
    monkeypatch.setenv("RESOURCE_PREFIX", "sfn-mlops")
    monkeypatch.delenv("AUTO_APPROVE", raising=False)
    # The stack's cost guardrails are off unless a test sets them (an in-process runtime may have left them)
    monkeypatch.delenv("ALLOWED_INSTANCE_TYPES", raising=False)
    monkeypatch.delenv("MAX_JOB_RUNTIME_SECONDS", raising=False)
    monkeypatch.setenv("XGBOOST_IMAGE_URI", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
    monkeypatch.setenv(
        "SKLEARN_IMAGE_URI",
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    )
    monkeypatch.setenv(
        "SPARK_IMAGE_URI",
        "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1",
    )
    reset_clients()
    get_settings.cache_clear()
    with mock_aws():
        yield
    reset_clients()
    get_settings.cache_clear()


@functools.cache
def metadata_table_properties() -> dict[str, Any]:
    """MetadataTable's properties from template.yaml, read once per test session (parsing it takes ~0.2 s)."""
    from sfn_mlops_local.local.template import load_template

    template = load_template(ROOT)
    return dict(template.resolve(template.raw["Resources"]["MetadataTable"]["Properties"]))


@pytest.fixture
def table(aws: None) -> str:
    """The metadata table exactly as template.yaml defines it."""
    props = copy.deepcopy(metadata_table_properties())
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        BillingMode=props["BillingMode"],
    )
    return TABLE


@pytest.fixture
def bucket(aws: None) -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return BUCKET


@pytest.fixture
def published(bucket: str) -> str:
    """The abalone pipeline published to the bucket, as `mlops publish` does."""
    s3 = boto3.client("s3")
    folder = ROOT / "models" / "abalone"
    s3.put_object(Bucket=bucket, Key="pipelines/abalone/pipeline.json", Body=(folder / "pipeline.json").read_bytes())
    for script in ("preprocess.py", "evaluate.py", "inference.py"):
        s3.put_object(
            Bucket=bucket,
            Key=f"pipelines/abalone/scripts/{script}",
            Body=(folder / "scripts" / script).read_bytes(),
        )
    return bucket


@pytest.fixture
def sfn() -> Iterator[Any]:
    """moto's ASL interpreter with every adaptation, executing state machines (the interpreter's own tests)."""
    from sfn_mlops_local.local import moto_adaptations

    moto_adaptations.apply()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions")
    moto_adaptations.clear_task_faults()


@pytest.fixture
def lambda_context() -> Any:
    from sfn_mlops_local.local.lambda_host import FakeLambdaContext

    return FakeLambdaContext(
        "test-function",
        "arn:aws:lambda:us-east-1:123456789012:function:test-function",
        aws_request_id="req-1",
    )


def service_target(state: Path) -> tuple[Any, Any]:
    """A client of the local service that owns ``state`` (started if needed), as ``mlops`` builds one."""
    from sfn_mlops_local.local import client
    from sfn_mlops_local.operations import Target

    info = client.ensure(state, lambda _: None, root=ROOT)
    target = Target.for_local_service(info)
    return target, info


@pytest.fixture(scope="session", autouse=True)
def no_service_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests that start a local service stop it; whatever one left running is stopped here."""
    yield
    from sfn_mlops_local.local import client

    for service_file in tmp_path_factory.getbasetemp().rglob("service.json"):
        client.stop(service_file.parent, timeout=30)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Any]:
    """The embedded local runtime with its own state folder, nothing persisted."""
    from sfn_mlops_local.local.runtime import LocalRuntime

    local = LocalRuntime(root=ROOT, state_dir=tmp_path / "state", persist=False)
    with local:
        yield local
