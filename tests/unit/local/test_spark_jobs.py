"""The Spark processing image in the local runtime: its package list, ``smspark-submit app.py args`` run as the
app under the image's Python with Spark in local mode (arguments split as smspark-submit's shell line splits them),
the system's Java found or the job failed at once saying what to install, and several instances allowed."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import wait_until
from tests.unit.local.job_runner import local_job_runner
from tests.unit.local.model_fixtures import ROLE

SPARK_IMAGE = "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1"
BUCKET = "spark-job-tests"


# ------------------------------------------------------------------------------------------- package list
@pytest.mark.parametrize(
    ("given", "key"),
    [
        (SPARK_IMAGE, ("sagemaker-spark-processing", "3.5")),
        ("sagemaker-spark-processing:3.5-cpu-py39-v1.0", ("sagemaker-spark-processing", "3.5")),
        ("sagemaker-scikit-learn:1.2-1-cpu-py3", ("sagemaker-scikit-learn", "1.2-1")),
    ],
)
def test_a_spark_image_tag_names_its_spark_version(given: str, key: tuple[str, str]) -> None:
    from sfn_mlops_local.local.image_environments import image_key

    assert image_key(given) == key


@pytest.mark.parametrize(
    ("stem", "key"),
    [
        ("sagemaker-spark-processing-3.5", ("sagemaker-spark-processing", "3.5")),
        ("sagemaker-scikit-learn-1.2-1", ("sagemaker-scikit-learn", "1.2-1")),
        ("sagemaker-xgboost-1.7-1", ("sagemaker-xgboost", "1.7-1")),
    ],
)
def test_every_package_list_file_names_an_image_that_build_all_builds(stem: str, key: tuple[str, str]) -> None:
    from sfn_mlops_local.local.image_environments import IMAGES_DIR, list_key

    assert (IMAGES_DIR / f"{stem}.txt").is_file()
    assert list_key(stem) == key


def test_the_spark_image_log_header_names_its_python_and_pyspark_is_built_from_its_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sfn_mlops_local.local import image_environments

    # Given the Spark image's package list
    spec = image_environments.spec_for(SPARK_IMAGE)
    assert spec.header() == "local image environment sagemaker-spark-processing:3.5: Python 3.11 (image: 3.12)"
    assert {p.name: p.local_version for p in spec.packages}["pyspark"] == "3.5.0"

    # When its environment is built
    commands: list[list[str]] = []
    monkeypatch.setattr(image_environments, "_run", lambda command, what: commands.append(command))
    image_environments.ensure(spec, tmp_path)

    # Then every package comes as a wheel but PySpark, which PyPI has as a source distribution only
    install = next(c for c in commands if "install" in c)
    assert "--only-binary=:all:" in install and "--no-binary=pyspark" in install
    assert "pyspark==3.5.0" in install


# ------------------------------------------------------------------------------------------- the local command
def _java(tmp_path: Path) -> Any:
    from sfn_mlops_local.local.spark_local import Java

    return Java(tmp_path / "jdk", "17")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(["--label", "churn"], ["--label", "churn"], id="plain words"),
        pytest.param(["--categorical", "''"], ["--categorical", ""], id="a quoted empty value"),
        pytest.param(["--categorical", "'a b'"], ["--categorical", "a b"], id="a quoted space"),
        pytest.param(["--categorical", ""], ["--categorical"], id="an unquoted empty value vanishes"),
        pytest.param(["--note", "a b"], ["--note", "a", "b"], id="an unquoted space splits"),
    ],
)
def test_arguments_reach_the_app_as_smspark_submits_shell_line_splits_them(
    tmp_path: Path, arguments: list[str], expected: list[str]
) -> None:
    from sfn_mlops_local.local.spark_local import local_command

    command = local_command(
        ["/opt/ml/processing/input/code/app.py", *arguments], "ml.m5.xlarge", 1, tmp_path, Path("/env/python"),
        _java(tmp_path),
    )  # fmt: skip

    assert command.argv == ["/opt/ml/processing/input/code/app.py", *expected]


@pytest.mark.parametrize(
    ("instance_type", "count", "master", "note"),
    [
        ("ml.m5.large", 1, "local[{small}]", "of one ml.m5.large"),
        ("ml.m5.4xlarge", 1, "local[{cores}]", "of one ml.m5.4xlarge"),
        ("ml.m5.xlarge", 3, "local[*]", "stands for the 3 ml.m5.xlarge instances of a YARN cluster"),
    ],
)
def test_spark_runs_in_local_mode_on_the_cores_the_instances_stand_for(
    tmp_path: Path, instance_type: str, count: int, master: str, note: str
) -> None:
    import os

    from sfn_mlops_local.local.spark_local import local_command

    cores = os.cpu_count() or 1
    command = local_command(["app.py"], instance_type, count, tmp_path, Path("/env/python"), _java(tmp_path))

    expected = master.format(small=min(cores, 2), cores=min(cores, 16))
    assert command.env["PYSPARK_SUBMIT_ARGS"].startswith(f"--master {expected} ")
    assert command.env["PYSPARK_SUBMIT_ARGS"].endswith(" pyspark-shell")
    # the client compiler and the serial collector: a short local run's JVM, said in the log
    assert "--driver-java-options '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC'" in command.env["PYSPARK_SUBMIT_ARGS"]
    assert "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" in command.notes[1]
    assert command.env["PYSPARK_PYTHON"] == "/env/python"
    assert command.env["JAVA_HOME"] == str(tmp_path / "jdk")
    assert note in command.notes[0] and "not spark-submit --master yarn" in command.notes[0]


@pytest.mark.parametrize(
    ("app", "refusal"),
    [
        (["--jars", "/opt/ml/processing/jars", "app.py"], "smspark-submit's own options"),
        (["/opt/ml/processing/input/code/app.jar"], "PySpark applications only"),
    ],
)
def test_what_the_local_runtime_cannot_submit_is_refused(tmp_path: Path, app: list[str], refusal: str) -> None:
    from sfn_mlops_local.local.spark_local import local_command

    with pytest.raises(ValueError, match=refusal):
        local_command(app, "ml.m5.xlarge", 1, tmp_path, Path("/env/python"), _java(tmp_path))


# ------------------------------------------------------------------------------------------- Java
def _fake_java(home: Path, version: str) -> Path:
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    java.chmod(0o755)
    return home


@pytest.mark.parametrize(
    ("version", "found"),
    [("17.0.15", "17"), ("11.0.2", "11"), ("1.8.0_402", "8"), ("21.0.1", None), ("25", None)],
)
def test_java_is_the_java_home_one_when_spark_3_5_runs_on_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, found: str | None
) -> None:
    from sfn_mlops_local.local import spark_local

    home = _fake_java(tmp_path / f"jdk-{version}", version)
    monkeypatch.setenv("JAVA_HOME", str(home))
    monkeypatch.setattr(spark_local.shutil, "which", lambda name: None)
    if found is None:
        with pytest.raises(spark_local.SparkUnavailable, match=f"is Java {version.split('.')[0]}"):
            spark_local.find_java()
    else:
        assert spark_local.find_java() == spark_local.Java(home, found)


def test_without_java_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sfn_mlops_local.local import spark_local

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_local.shutil, "which", lambda name: None)

    with pytest.raises(spark_local.SparkUnavailable) as raised:
        spark_local.find_java()

    assert "no java on PATH and JAVA_HOME is not set" in str(raised.value)
    assert "apt-get install openjdk-17-jre-headless" in str(raised.value)


# ------------------------------------------------------------------------------------------- jobs
@pytest.fixture
def runner(aws: None, tmp_path: Path) -> Iterator[Any]:
    with local_job_runner(tmp_path, BUCKET, idle_s=120) as (local, _):
        yield local


def spark_request(name: str, script: str, arguments: list[str], instance_count: int = 1) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"code/{name}/app.py", Body=textwrap.dedent(script).encode())
    s3.put_object(Bucket=BUCKET, Key=f"data/{name}/rows.csv", Body=b"x,y\n1,a\n2,b\n3,a\n")

    def s3_input(what: str, path: str) -> dict[str, Any]:
        return {
            "InputName": what,
            "S3Input": {"S3Uri": f"s3://{BUCKET}/{what}/{name}/", "LocalPath": path, "S3DataType": "S3Prefix",
                        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
        }  # fmt: skip

    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": SPARK_IMAGE,
            "ContainerEntrypoint": ["smspark-submit", "/opt/ml/processing/input/code/app.py"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [
            s3_input("code", "/opt/ml/processing/input/code"),
            s3_input("data", "/opt/ml/processing/input/data"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://{BUCKET}/out/{name}/",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": instance_count, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 1}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def ended(runner: Any, name: str, timeout: float = 300) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (d := runner.describe("processing", name))["ProcessingJobStatus"] not in ("InProgress", "Stopping") and d
        ),
        timeout=timeout,
    )


def test_a_spark_job_without_java_fails_at_once_saying_how_to_install_it(
    runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops_local.local import spark_local

    # Given a machine without Java
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_local.shutil, "which", lambda name: None)

    # When a PySpark job is submitted to the Spark image
    runner.create_processing_job(spark_request("no-java", "print('never')\n", ["--x"]))

    # Then it fails as the user's to fix, naming the package
    described = ended(runner, "no-java")
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("ClientError: the Spark image's jobs run PySpark, which needs Java")
    assert "apt-get install openjdk-17-jre-headless" in described["FailureReason"]


APP = """
    import sys
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("t").getOrCreate()
    rows = spark.read.option("header", True).csv("/opt/ml/processing/input/data/rows.csv")
    counted = {r["y"]: r["count"] for r in rows.groupBy("y").count().collect()}
    master = spark.sparkContext.master
    spark.stop()
    with open("/opt/ml/processing/output/result.txt", "w") as out:
        out.write(f"{master} {sorted(counted.items())} {sys.argv[1:]}")
"""


@pytest.mark.spark
@pytest.mark.skipif(
    shutil.which("java") is None, reason="no Java on this machine (apt-get install openjdk-17-jre-headless)"
)
def test_a_pyspark_job_on_two_instances_runs_in_local_mode_with_its_arguments_as_given(runner: Any) -> None:
    # Given a PySpark app on two instances, with an argument quoted for smspark-submit's shell line
    runner.create_processing_job(spark_request("two-hosts", APP, ["--name", "'a b'", "--empty", "''"], 2))

    # Then it completes, run by Spark in local mode over every core, its arguments unchanged
    described = ended(runner, "two-hosts")
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key="out/two-hosts/result.txt")
    assert body["Body"].read().decode() == "local[*] [('a', 2), ('b', 1)] ['--name', 'a b', '--empty', '']"
    # And its log says how it differs from AWS
    log = (runner._log_dir / "two-hosts.log").read_text()
    assert "local image environment sagemaker-spark-processing:3.5: Python 3.11 (image: 3.12)" in log
    assert "stands for the 2 ml.m5.xlarge instances of a YARN cluster on AWS" in log
