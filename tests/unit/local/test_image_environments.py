"""Each image runs its jobs in an environment of its own package list: a script can import what its image ships and
nothing else (not the project), sees the container's /opt/ml paths, and its log says how the environment differs
from the image. Environments are built once, under a lock, and never used half-built."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.unit.local.job_runner import local_job_runner
from tests.unit.local.model_fixtures import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE

BUCKET = "image-env-tests"


# ------------------------------------------------------------------------------------------- package lists
@pytest.mark.parametrize(
    ("image_uri", "label", "image_python", "differences"),
    [
        (
            SKLEARN_IMAGE,
            "sagemaker-scikit-learn:1.2-1",
            "3.9",
            ["pandas 1.5.0 (image: 1.1.3)", "scipy 1.9.2 (image: 1.8.0)"],
        ),
        (
            XGBOOST_IMAGE,
            "sagemaker-xgboost:1.7-1",
            "3.8",
            [
                "numpy 1.23.2 (image: 1.19.2)",
                "pandas 1.5.0 (image: 1.2.4)",
                "scikit-learn 1.1.3 (image: 0.24.1)",
                "scipy 1.9.2 (image: 1.6.2)",
            ],
        ),
    ],
)
def test_each_image_header_names_its_python_and_every_substituted_package(
    image_uri: str, label: str, image_python: str, differences: list[str]
) -> None:
    from sfn_mlops_local.local.image_environments import spec_for

    # Given the package list of an image the pipelines use
    spec = spec_for(image_uri)
    # Then its log header names the image, this Python against the image's, and each package at another version
    expected = "; ".join([f"Python 3.11 (image: {image_python})", *differences])
    assert spec.header() == f"local image environment {label}: {expected}"


@pytest.mark.parametrize(
    ("image_uri", "key"),
    [
        (SKLEARN_IMAGE, ("sagemaker-scikit-learn", "1.2-1")),
        (XGBOOST_IMAGE, ("sagemaker-xgboost", "1.7-1")),
        ("sagemaker-xgboost:1.7-1-cpu-py3", ("sagemaker-xgboost", "1.7-1")),
        (
            "acct.dkr.ecr.region.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3",
            ("sagemaker-scikit-learn", "0.23-1"),
        ),
    ],
)
def test_an_image_uri_names_its_repository_and_container_version(image_uri: str, key: tuple[str, str]) -> None:
    from sfn_mlops_local.local.image_environments import image_key

    assert image_key(image_uri) == key


def test_an_image_without_a_package_list_is_refused_naming_the_known_images() -> None:
    from sfn_mlops_local.local.image_environments import ImageEnvironmentError, spec_for

    # When a job names a container version the local runtime has no environment for
    with pytest.raises(ImageEnvironmentError) as raised:
        spec_for("acct.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3")
    # Then the error names it and the images that are available
    message = str(raised.value)
    assert "sagemaker-scikit-learn:0.23-1 is not available" in message
    assert "sagemaker-scikit-learn-1.2-1" in message and "sagemaker-xgboost-1.7-1" in message


def test_environments_live_in_the_configured_folder_else_the_virtual_environment_else_the_users_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from sfn_mlops_local.local.image_environments import environments_root

    # Given no configured folder, mlops running from a virtual environment
    monkeypatch.delenv("MLOPS_IMAGE_ENVS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    # Then they live inside it (make clean removes them with it)
    assert environments_root() == tmp_path / "venv/image-envs"
    # When mlops runs from no virtual environment, they live in the user's cache
    monkeypatch.setattr(sys, "prefix", "/usr")
    assert environments_root() == tmp_path / "cache/sfn-mlops/image-envs"
    # When a folder is configured, there
    monkeypatch.setenv("MLOPS_IMAGE_ENVS", str(tmp_path / "envs"))
    assert environments_root() == tmp_path / "envs"


# ------------------------------------------------------------------------------------------- building once
def _fake_spec() -> Any:
    from sfn_mlops_local.local.image_environments import parse_spec

    return parse_spec("fake-image", "1-1", "python 3.9 3.11\nsomething 1.0\n")


def test_concurrent_requests_build_an_environment_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sfn_mlops_local.local import image_environments

    # Given a build that takes a while, asked for by four workers at once
    builds: list[Path] = []
    started = threading.Event()

    def slow_build(spec: Any, folder: Path) -> None:
        builds.append(folder)
        started.set()
        threading.Event().wait(0.3)  # the others arrive while this build runs
        (folder / "bin").mkdir(parents=True)
        (folder / image_environments.COMPLETE_MARKER).write_text("done")

    monkeypatch.setattr(image_environments, "_build", slow_build)
    spec = _fake_spec()
    found: list[Path] = []
    workers = [
        threading.Thread(target=lambda: found.append(image_environments.ensure(spec, tmp_path))) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    # Then it was built once and every worker got the same Python
    assert len(builds) == 1
    assert found == [tmp_path / spec.folder_name / "bin/python"] * 4


def test_a_build_that_fails_halfway_leaves_nothing_that_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sfn_mlops_local.local import image_environments

    # Given a pip install that fails after the environment's folder was created
    def failing_run(command: list[str], what: str) -> None:
        if "pip" in command:
            raise image_environments.ImageEnvironmentError(f"could not {what}: No matching distribution")

    monkeypatch.setattr(image_environments, "_run", failing_run)
    spec = _fake_spec()
    # When it is asked for, Then the error says what failed
    with pytest.raises(image_environments.ImageEnvironmentError, match="could not install the packages of fake-image"):
        image_environments.ensure(spec, tmp_path)
    # And no environment (half-built or not) is left where a later job would find it
    assert not image_environments.is_built(spec, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


# ------------------------------------------------------------------------------------------- jobs in their image
class Jobs:
    def __init__(self, runner: Any, s3: Any) -> None:
        self.runner = runner
        self.s3 = s3
        self.count = 0

    def process(self, script: str, image: str = SKLEARN_IMAGE, arguments: list[str] | None = None) -> dict[str, Any]:
        self.count += 1
        name = f"image-job-{self.count}"
        self.s3.put_object(Bucket=BUCKET, Key=f"code/{name}/job.py", Body=textwrap.dedent(script).encode())
        request = {
            "ProcessingJobName": name,
            "RoleArn": ROLE,
            "AppSpecification": {
                "ImageUri": image,
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
                **({"ContainerArguments": arguments} if arguments else {}),
            },
            "ProcessingInputs": [
                {
                    "InputName": "code",
                    "S3Input": {
                        "S3Uri": f"s3://{BUCKET}/code/{name}/",
                        "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "out",
                        "S3Output": {
                            "S3Uri": f"s3://{BUCKET}/out/{name}",
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        }
        self.runner.handle("CreateProcessingJob", request)
        return wait_until(
            lambda: (d := self.runner.describe("processing", name)) and d["ProcessingJobStatus"] != "InProgress" and d,
            timeout=300,  # the first job of a machine builds its image's environment
        )

    def output(self, described: dict[str, Any], file: str) -> Any:
        key = f"out/{described['ProcessingJobName']}/{file}"
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def log(self, described: dict[str, Any]) -> str:
        return (self.runner._log_dir / f"{described['ProcessingJobName']}.log").read_text()


@pytest.fixture
def jobs(aws: None, tmp_path: Path) -> Iterator[Jobs]:
    with local_job_runner(tmp_path, BUCKET) as (runner, s3):
        yield Jobs(runner, s3)


def test_a_script_importing_what_its_image_lacks_fails_naming_the_package(jobs: Jobs) -> None:
    # Given a processing script on the scikit-learn image that imports XGBoost (which that image does not ship)
    described = jobs.process("import sklearn\nimport xgboost\n")
    # Then the job fails with the error it would meet on AWS, as the last line of its reason
    assert described["ProcessingJobStatus"] == "Failed"
    tail = described["FailureReason"].partition("; log file: ")[0]
    assert tail.splitlines()[-1] == "ModuleNotFoundError: No module named 'xgboost'"


@pytest.mark.parametrize(
    ("image", "versions"),
    [
        (SKLEARN_IMAGE, {"sklearn": "1.2.1", "numpy": "1.24.1", "pandas": "1.5.0", "xgboost": None}),
        (XGBOOST_IMAGE, {"xgboost": "1.7.4", "numpy": "1.23.2", "sklearn": "1.1.3", "pandas": "1.5.0"}),
    ],
)
def test_a_script_sees_its_images_packages_and_nothing_of_the_project(
    jobs: Jobs, image: str, versions: dict[str, str | None]
) -> None:
    # Given a script that reports the versions it can import, the Python running it and its module path
    script = """
        import importlib, json, sys
        found = {}
        for name in ("sklearn", "numpy", "pandas", "xgboost"):
            try:
                found[name] = importlib.import_module(name).__version__
            except ImportError:
                found[name] = None
        project = [m for m in ("sfn_mlops", "sfn_mlops_local", "boto3", "moto") if importlib.util.find_spec(m)]
        seen = {"versions": found, "python": sys.version.split()[0], "project": project, "path": sys.path}
        open("/opt/ml/processing/output/seen.json", "w").write(json.dumps(seen))
    """
    described = jobs.process(script, image=image)
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    seen = jobs.output(described, "seen.json")
    # Then it imports the image's packages at the environment's versions, and neither the project nor its tools
    assert seen["versions"] == versions
    assert seen["project"] == []
    assert not [p for p in seen["path"] if "/src" in p or "/layers/" in p]


def test_the_job_log_starts_with_how_its_environment_differs_from_the_image(jobs: Jobs) -> None:
    from sfn_mlops_local.local.image_environments import spec_for

    described = jobs.process("print('hello from the job')\n")
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    lines = [line for line in jobs.log(described).splitlines() if not line.startswith("building ")]
    assert lines[0] == spec_for(SKLEARN_IMAGE).header()
    assert lines[0].startswith("local image environment sagemaker-scikit-learn:1.2-1: Python 3.11 (image: 3.9)")
    assert "hello from the job" in lines


def test_arguments_pass_unchanged_and_the_default_message_file_becomes_the_exit_message(jobs: Jobs) -> None:
    # Given a script that writes its message where a container's default is (no --message-file given) and fails
    script = """
        import sys
        print("arguments:", sys.argv[1:])
        open("/opt/ml/output/message", "w").write("the dataset has no rows")
        sys.exit(1)
    """
    described = jobs.process(script, arguments=["--seed", "42"])
    # Then its message is the job's ExitMessage, and it was given exactly its arguments (nothing added)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["ExitMessage"] == "the dataset has no rows"
    assert "arguments: ['--seed', '42']" in jobs.log(described).splitlines()


def test_container_paths_in_arguments_reach_the_script_as_written(jobs: Jobs) -> None:
    # Given a script that records its argv, called with /opt/ml paths, as a pipeline's preprocess is
    script = """
        import json, os, sys
        seen = {"argv": sys.argv, "input_exists": os.path.isdir(sys.argv[2])}
        open("/opt/ml/processing/output/argv.json", "w").write(json.dumps(seen))
    """
    arguments = ["--code-dir", "/opt/ml/processing/input/code", "--seed", "42"]
    described = jobs.process(script, arguments=arguments)
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    # Then it got them unchanged, and they name its own folders
    seen = jobs.output(described, "argv.json")
    assert seen == {"argv": ["/opt/ml/processing/input/code/job.py", *arguments], "input_exists": True}


def test_a_job_stopped_the_moment_it_starts_is_stopped(tmp_path: Path) -> None:
    from sfn_mlops_local.local import image_environments, job_process

    # Given the scikit-learn image's fork server and a job script that would run for a minute
    spec = image_environments.spec_for(SKLEARN_IMAGE)
    server = job_process.image_server(image_environments.ensure(spec), list(spec.preload))
    script = tmp_path / "long.py"
    script.write_text("import time\ntime.sleep(60)\n")
    for attempt in range(10):
        # When each is killed as soon as the server answers with its pid (a stop racing the job's start)
        job = server.start([str(script)], {}, tmp_path, tmp_path / f"long-{attempt}.log", None)
        job.kill()
        # Then it ends at once, killed: its session existed when the signal was sent
        assert job.wait(10) == -9, attempt
