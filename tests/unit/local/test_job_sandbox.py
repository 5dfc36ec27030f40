"""A local job stays in its sandbox: its paths and keys cannot leave it, it sees no HOME or AWS settings of the
user's, and a failing script's reason carries the end of its log and where the whole log is."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import wait_until
from tests.unit.local.model_fixtures import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE

BUCKET = "sandbox-tests"


class Jobs:
    def __init__(self, runner: Any, s3: Any, outside: Path) -> None:
        self.runner = runner
        self.s3 = s3
        self.outside = outside  # a folder beside the sandboxes, where nothing may be written
        self.count = 0

    def put(self, key: str, body: str) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())

    def process(
        self, script: str, inputs: list[dict[str, Any]] | None = None, outputs: tuple[str, ...] | list[str] = ()
    ) -> dict[str, Any]:
        """Run ``script`` as a processing job (inputs: extra ProcessingInputs) and return its description."""
        self.count += 1
        name = f"job-{self.count}"
        self.put(f"code/{name}/job.py", textwrap.dedent(script))
        request = {
            "ProcessingJobName": name,
            "RoleArn": ROLE,
            "AppSpecification": {
                "ImageUri": SKLEARN_IMAGE,
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/code/job.py"],
            },
            "ProcessingInputs": [
                {"InputName": "code", "S3Input": _s3_input(f"s3://{BUCKET}/code/{name}/", "/opt/ml/processing/code")},
                *(inputs or []),
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {"OutputName": f"o{i}", "S3Output": _s3_output(f"s3://{BUCKET}/out/{name}/{i}", path)}
                    for i, path in enumerate(outputs)
                ]
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        }
        self.runner.handle("CreateProcessingJob", request)
        return self.wait("processing", name)

    def wait(self, kind: str, name: str) -> dict[str, Any]:
        return wait_until(
            lambda: (
                (d := self.runner.describe(kind, name))
                and d[f"{'Processing' if kind == 'processing' else 'Training'}JobStatus"] != "InProgress"
                and d
            ),
            timeout=90,
        )

    def keys(self, prefix: str) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def _s3_input(uri: str, local: str) -> dict[str, str]:
    return {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File"}


def _s3_output(uri: str, local: str) -> dict[str, str]:
    return {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"}


@pytest.fixture
def jobs(aws: None, tmp_path: Path) -> Iterator[Jobs]:
    from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    runner = LocalJobRunner(lambda: s3, tmp_path / "work", tmp_path / "logs")
    yield Jobs(runner, s3, tmp_path / "outside")
    runner.wait_idle(30)
    runner.terminate_all()


# ------------------------------------------------------------------------------------------- paths and keys
@pytest.mark.parametrize(
    "local_path",
    [
        "/opt/ml/processing/../../../../outside",
        "/opt/ml/processing/input/../../../../../../tmp/escape",
        "/tmp/escape",
        "opt/ml/processing/input",
        "/opt/ml/processingx/input",
        "/opt/ml/model",  # a container path, but not one a processing job may name
    ],
)
def test_a_processing_local_path_outside_opt_ml_processing_fails_the_job_naming_the_rule(
    jobs: Jobs, local_path: str
) -> None:
    # Given an input whose LocalPath is not under /opt/ml/processing/ once normalised
    jobs.put("data/train.csv", "1,2\n")
    # When the job runs
    described = jobs.process(
        "print('ran')\n", inputs=[{"InputName": "data", "S3Input": _s3_input(f"s3://{BUCKET}/data/", local_path)}]
    )
    # Then it fails before its script runs, naming the path and SageMaker's rule, and wrote nothing outside
    assert described["ProcessingJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith("ClientError: ") and repr(local_path) in reason and "/opt/ml/processing/" in reason
    assert list(jobs.outside.iterdir()) == []


def test_an_output_local_path_climbing_out_fails_the_job(jobs: Jobs) -> None:
    # Given an output whose LocalPath climbs out of the container
    described = jobs.process("print('ran')\n", outputs=["/opt/ml/processing/output/../../../../../outside"])
    # Then the job fails naming it
    assert described["ProcessingJobStatus"] == "Failed" and "without '..'" in described["FailureReason"]


def test_an_s3_key_that_would_land_outside_the_input_folder_is_refused(jobs: Jobs) -> None:
    # Given an input prefix holding a key that climbs out of it once downloaded (S3 keys may contain '..')
    jobs.put("data/ok.csv", "1,2\n")
    jobs.put("data/a/../../../../../escape.csv", "stolen\n")
    # When a job downloads the prefix
    described = jobs.process(
        "print('ran')\n",
        inputs=[{"InputName": "data", "S3Input": _s3_input(f"s3://{BUCKET}/data/", "/opt/ml/processing/input")}],
    )
    # Then the job fails naming the key, and no file was written outside the sandbox
    assert described["ProcessingJobStatus"] == "Failed"
    assert "data/a/../../../../../escape.csv" in described["FailureReason"]
    assert "would leave its folder" in described["FailureReason"]
    # (os.walk: the failed job's sandbox may be being removed while we look; a vanished folder is no escape)
    assert not [f for _, _, files in os.walk(jobs.runner._work_dir.parent) for f in files if f == "escape.csv"]


def test_a_training_channel_named_dot_dot_is_refused(jobs: Jobs) -> None:
    # Given a training job with a channel named '..' (SageMaker's channel name pattern allows dots)
    jobs.put("train/train.csv", "1,2\n")
    jobs.runner.handle(
        "CreateTrainingJob",
        {
            "TrainingJobName": "train-dots",
            "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "InputDataConfig": [
                {
                    "ChannelName": "..",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/train/"}},
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        },
    )
    # Then the job fails naming the channel, before any download
    described = jobs.wait("training", "train-dots")
    assert described["TrainingJobStatus"] == "Failed" and "ChannelName '..'" in described["FailureReason"]


def test_files_a_job_links_to_outside_its_sandbox_are_neither_uploaded_nor_read_as_its_message(
    jobs: Jobs, tmp_path: Path
) -> None:
    # Given a secret outside the sandbox, and a job that links its output and its exit message to it
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    script = f"""
        import os, sys
        out = os.path.join(os.getcwd(), "opt/ml/processing/output")
        open(os.path.join(out, "real.csv"), "w").write("1,2\\n")
        os.symlink({str(secret)!r}, os.path.join(out, "linked.csv"))
        os.symlink({str(secret)!r}, "/opt/ml/output/message")
    """
    described = jobs.process(script, outputs=["/opt/ml/processing/output"])
    # Then the job completes, its real output is uploaded, the linked file is not, and the secret is nowhere
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    assert jobs.keys("out/") == [f"out/{described['ProcessingJobName']}/0/real.csv"]
    assert "TOP-SECRET" not in json.dumps(described, default=str)


def test_a_symlink_out_of_the_sandbox_is_not_followed_by_path_checks(tmp_path: Path) -> None:
    from sfn_mlops_local.local.job_sandbox import SandboxEscape, contained, container_path

    # Given a sandbox whose input folder is a link to a folder outside it
    sandbox = tmp_path / "sandbox"
    (sandbox / "opt/ml/processing").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (sandbox / "opt/ml/processing/input").symlink_to(tmp_path / "elsewhere")
    # When a container path or a key goes through it, Then it is refused
    with pytest.raises(SandboxEscape, match="symbolic link"):
        container_path(sandbox, "/opt/ml/processing/input/data.csv", "/opt/ml/processing")
    with pytest.raises(SandboxEscape, match="symbolic link"):
        contained(sandbox / "opt/ml/processing", "input/data.csv", "S3 key")
    # And a path that stays inside is mapped into the sandbox
    assert (
        container_path(sandbox, "/opt/ml/processing/code/", "/opt/ml/processing") == sandbox / "opt/ml/processing/code"
    )


# ------------------------------------------------------------------------------------------- environment
def test_a_job_sees_a_home_of_its_own_and_none_of_the_users_aws_settings(
    jobs: Jobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a user whose HOME holds AWS credentials, with AWS variables in the service's environment
    home = tmp_path / "user-home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws/credentials").write_text("[default]\naws_access_key_id = AKIAUSERKEY\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSERKEY")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws/config"))
    # When a job prints its environment and reads ~/.aws/credentials into its output
    script = """
        import json, os
        out = os.path.join(os.getcwd(), "opt/ml/processing/output")
        credentials = os.path.expanduser("~/.aws/credentials")
        seen = {"env": dict(os.environ), "home": os.path.expanduser("~"), "aws": os.path.exists(credentials)}
        open(os.path.join(out, "seen.json"), "w").write(json.dumps(seen))
    """
    described = jobs.process(script, outputs=["/opt/ml/processing/output"])
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    key = f"out/{described['ProcessingJobName']}/0/seen.json"
    seen = json.loads(jobs.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    # Then its HOME is inside its sandbox, it finds no ~/.aws, and no AWS variable reached it
    assert seen["home"] != str(home) and "/work/" in seen["home"] and seen["home"].endswith("/home")
    assert seen["aws"] is False
    assert not [name for name in seen["env"] if name.startswith("AWS_")]
    assert "AKIAUSERKEY" not in json.dumps(seen)
    assert seen["env"]["PATH"]  # what a container's contract gives it is still there


# ------------------------------------------------------------------------------------------- failure messages
def test_a_failing_script_reason_ends_with_its_exception_and_names_its_log_file(jobs: Jobs) -> None:
    # Given a script that prints 30 lines and then raises
    script = """
        for i in range(30):
            print(f"progress line {i}", flush=True)
        raise ValueError("column 'rings' has negative values")
    """
    described = jobs.process(script)
    # Then the job fails with the last lines of its log, the exception line last, and the log's path
    assert described["ProcessingJobStatus"] == "Failed"
    reason = described["FailureReason"]
    log_path = jobs.runner._log_dir / f"{described['ProcessingJobName']}.log"
    tail, _, where = reason.partition("; log file: ")
    assert where == str(log_path) and log_path.exists()
    assert tail.startswith("AlgorithmError: ")
    assert tail.splitlines()[-1] == "ValueError: column 'rings' has negative values"
    assert "progress line 29" in tail and "progress line 0\n" not in tail  # only the last lines
    assert len(reason) <= 1024


def test_a_script_with_an_exit_message_keeps_it_and_the_reason_names_the_log(jobs: Jobs) -> None:
    # Given a script that writes its own exit message and exits 1
    script = """
        import sys
        path = "/opt/ml/output/message"
        open(path, "w").write("the dataset has no rows")
        print("reading the dataset", file=sys.stderr)
        sys.exit(1)
    """
    described = jobs.process(script)
    # Then its message is the ExitMessage, and the FailureReason carries the log's tail and location
    assert described["ExitMessage"] == "the dataset has no rows"
    assert "reading the dataset" in described["FailureReason"] and "; log file: " in described["FailureReason"]


def test_the_reason_keeps_the_log_location_whole_however_long_the_tail() -> None:
    from sfn_mlops_local.local.job_sandbox import failure_reason, with_log_location

    # Given a very long tail and a log path
    log_path = Path("/state/logs/job-1.log")
    reason = failure_reason("AlgorithmError", "x" * 5000 + "\nKeyError: 'rings'", log_path)
    # Then it fits SageMaker's 1,024 characters, ends with the exception line and the path, and starts plainly
    assert len(reason) == 1024 and reason.endswith("KeyError: 'rings'; log file: /state/logs/job-1.log")
    assert reason.startswith("AlgorithmError: ...")
    assert len(with_log_location("y" * 2000, log_path)) == 1024


def test_the_tail_of_a_log_is_its_last_lines_within_the_limit(tmp_path: Path) -> None:
    from sfn_mlops_local.local.job_sandbox import log_tail

    # Given a log of 100 lines and an empty one
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    (tmp_path / "empty.log").write_text("")
    # Then the tail is the last 10 lines, the last line last; an empty or missing log gives ''
    assert log_tail(log).splitlines() == [f"line {i}" for i in range(90, 100)]
    assert log_tail(log, limit=20).endswith("line 99") and len(log_tail(log, limit=20)) == 20
    assert log_tail(tmp_path / "empty.log") == "" and log_tail(tmp_path / "missing.log") == ""
