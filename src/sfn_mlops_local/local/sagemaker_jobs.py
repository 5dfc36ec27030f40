"""SageMaker processing and training jobs as local processes that honour the container contract.

A job gets a sandbox whose ``opt/ml`` tree stands for the container's ``/opt/ml``: inputs are downloaded
from (local) S3 into it, the job's process sees it at ``/opt/ml`` (its own mount namespace, where Linux
allows one; else ``/opt/ml`` paths in its arguments are mapped, and its log says so), and outputs are
uploaded back to S3 when the process ends, exactly where SageMaker would put them. Nothing is added to a
job's arguments.

Each image runs its jobs in an environment built from that image's package list (image_environments.py,
decision 0023); the request is checked against SageMaker's API limits first (decision 0024).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ClientError
from sfn_mlops.images import image_version
from sfn_mlops.s3uri import split_s3_uri

from sfn_mlops_local.local import image_environments, job_process, job_sandbox, spark_local
from sfn_mlops_local.local.template import ACCOUNT, PARTITION, REGION

CONTAINER_ROOT = job_sandbox.CONTAINER_ROOT
# How long a stopped job's process has between SIGTERM and SIGKILL (SageMaker gives 120 s; locally the scripts
# save nothing on SIGTERM, so a short grace keeps a timed-out run's end prompt).
STOP_GRACE_SECONDS = 2.0
PROCESSING_ROOT = job_sandbox.PROCESSING_ROOT
# Container version tag -> XGBoost library version it ships (SageMaker XGBoost container release notes).
XGBOOST_LIBRARY_FOR_CONTAINER = {"1.7-1": "1.7."}
# An entrypoint's interpreter names that mean the image's Python (its environment's, locally).
IMAGE_PYTHONS = ("python", "python3")
# The built-in XGBoost algorithm's program: its entry file and the package beside it (standard library and the
# image's packages only), copied into each training job as the image ships them.
ALGORITHM_SOURCE = Path(__file__).resolve().parents[1] / "containers" / "xgboost_algorithm.py"
ALGORITHM_PACKAGE = ALGORITHM_SOURCE.parent / "xgboost_container"
NO_NAMESPACES_NOTE = (
    "local runtime: mount namespaces are not available here, so /opt/ml is not the job's own: /opt/ml paths in "
    "its entrypoint and arguments are mapped to its sandbox, paths its script hard-codes are not"
)


class JobFailed(Exception):
    """A job's end other than Completed: ``status`` Failed (``reason`` is its FailureReason) or Stopped
    (``secondary_status`` MaxRuntimeExceeded when its StoppingCondition ended it, as SageMaker reports it)."""

    def __init__(
        self,
        reason: str,
        exit_message: str | None = None,
        status: str = "Failed",
        secondary_status: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_message = exit_message
        self.status = status
        self.secondary_status = secondary_status


# Images whose local 'container' runs a multi-instance job's contract. The Spark processing image: Spark spreads
# the work over the instances on AWS and over local mode's threads here, with the same result (its inputs are
# FullyReplicated; decision 0028). Every other image runs one instance locally and a job asking for more is
# refused at its start, never run on one silently (docs/decisions/0024-job-api-as-aws.md).
SPARK_REPOSITORY = "sagemaker-spark-processing"
MULTI_INSTANCE_IMAGES: frozenset[str] = frozenset({SPARK_REPOSITORY})


def instance_count_refusal(image_uri: str, count: Any) -> str | None:
    """The ClientError a job asking for ``count`` instances of an image the local runtime runs on one gets."""
    repository = str(image_uri).rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if not isinstance(count, int) or count <= 1 or repository in MULTI_INSTANCE_IMAGES:
        return None
    return (
        f"ClientError: the local runtime runs one instance: InstanceCount {count} asks for a distributed job "
        f"({repository} runs on one host locally, and its data is not sharded); set instance_count 1 for local runs"
    )


def installed_xgboost_version() -> str:
    from importlib.metadata import version

    return version("xgboost")


def check_image(image_uri: str) -> str:
    """Which local 'container' runs this image; raises JobFailed if this machine cannot run it faithfully."""
    repository = image_uri.rsplit("/", 1)[-1].split(":", 1)[0]
    tag = image_version(image_uri)
    if repository == "sagemaker-scikit-learn":
        return "sklearn"
    if repository == "sagemaker-xgboost":
        expected = XGBOOST_LIBRARY_FOR_CONTAINER.get(tag)
        if expected is None:
            raise JobFailed(f"ClientError: the local runtime does not know XGBoost container version {tag!r}")
        found = installed_xgboost_version()
        if not found.startswith(expected):
            raise JobFailed(
                f"ClientError: container sagemaker-xgboost:{tag} ships XGBoost {expected}x but this "
                f"environment has {found}; a model trained with another version predicts differently"
            )
        return "xgboost"
    raise JobFailed(f"ClientError: image {image_uri} is not available in the local runtime")


def copy_algorithm_program(folder: Path) -> Path:
    """The XGBoost algorithm as its image ships it: a copy of its standalone program (the script and its package,
    without bytecode) in ``folder``, which is created; returns the script to run with the image's Python."""
    folder.mkdir()
    shutil.copyfile(ALGORITHM_SOURCE, folder / ALGORITHM_SOURCE.name)
    shutil.copytree(ALGORITHM_PACKAGE, folder / ALGORITHM_PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    return folder / ALGORITHM_SOURCE.name


def _now() -> datetime:
    return datetime.now(UTC)


# A training job's SecondaryStatus for its status (DescribeTrainingJob), unless its end named another
# (MaxRuntimeExceeded: Stopped by its StoppingCondition), and the StatusMessage its last transition carries.
_SECONDARY = {
    "InProgress": "Training",
    "Completed": "Completed",
    "Failed": "Failed",
    "Stopping": "Stopping",
    "Stopped": "Stopped",
}
_STATUS_MESSAGES = {
    "Training": "Training in progress.",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job runtime exceeded MaxRuntimeInSeconds provided",
}


def _secondary_status(job: dict[str, Any]) -> str:
    if job["status"] == "Stopped" and job.get("secondary_status"):
        return str(job["secondary_status"])
    return _SECONDARY[job["status"]]


def _secondary_transitions(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Starting, then Training, then the job's end (each ending where the next starts), as DescribeTrainingJob
    lists them; the last one's StatusMessage says why the job ended."""
    started, ended = job.get("started"), job.get("ended")
    transitions: list[dict[str, Any]] = [
        {"Status": "Starting", "StartTime": job["created"], "StatusMessage": "Preparing the instances for training"}
    ]
    if started is None:
        return transitions
    transitions[0]["EndTime"] = started
    transitions.append({"Status": "Training", "StartTime": started, "StatusMessage": _STATUS_MESSAGES["Training"]})
    final = _secondary_status(job)
    if final != "Training":
        if ended is not None:
            transitions[-1]["EndTime"] = ended
        last = {"Status": final, "StartTime": ended or started, "StatusMessage": _STATUS_MESSAGES[final]}
        if ended is not None and final != "Stopping":
            last["EndTime"] = ended
        transitions.append(last)
    return transitions


class LocalJobRunner:
    """Implements Create/Describe for processing and training jobs; jobs run on background threads."""

    def __init__(self, s3_client: Callable[[], Any], work_dir: Path, log_dir: Path) -> None:
        self._s3 = s3_client
        self._work_dir = work_dir
        self._log_dir = log_dir
        self.jobs: dict[str, dict[str, Any]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._processes: dict[str, job_process.JobProcess] = {}
        self.on_job_end: Callable[[], None] | None = None  # wakes the .sync tasks waiting on jobs
        # Seconds inside job processes, and whole jobs with their S3 staging (what SageMaker bills).
        self.job_seconds: dict[str, float] = {}
        self.job_total_seconds: dict[str, float] = {}
        self.fault: Callable[[str, dict[str, Any]], str | None] | None = None
        # A model's record by name ({"containers": [...], "mode": ...}), for transform jobs: the runtime points it
        # at the endpoint service's models.
        self.models: Callable[[str], dict[str, Any] | None] | None = None
        from sfn_mlops_local.local.transform_jobs import TransformJobs  # it builds on this module

        self.transforms = TransformJobs(self)

    # ---------------------------------------------------------------- botocore hooks
    def on_call(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params.get("body") or b"{}"
        answer = self.handle(model.name, json.loads(body.decode() if isinstance(body, bytes) else body))
        if answer is None:
            return None
        status, parsed = answer
        return AWSResponse(params.get("url", ""), status, HTTPHeaders(), None), parsed

    def handle(self, operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The job APIs this runner serves (in-process calls and the local service's HTTP endpoint alike);
        None for any other SageMaker operation (moto answers it)."""
        handlers = {
            "CreateProcessingJob": self.create_processing_job,
            "CreateTrainingJob": self.create_training_job,
            "DescribeProcessingJob": lambda r: self.describe("processing", r["ProcessingJobName"]),
            "DescribeTrainingJob": lambda r: self.describe("training", r["TrainingJobName"]),
            "ListProcessingJobs": lambda r: self.list_jobs("processing", r),
            "ListTrainingJobs": lambda r: self.list_jobs("training", r),
            "StopProcessingJob": lambda r: self.stop("processing", r["ProcessingJobName"]),
            "StopTrainingJob": lambda r: self.stop("training", r["TrainingJobName"]),
            "CreateTransformJob": self.transforms.create,
            "DescribeTransformJob": lambda r: self.transforms.describe(str(r.get("TransformJobName"))),
            "ListTransformJobs": self.transforms.list_jobs,
            "StopTransformJob": lambda r: self.transforms.stop(str(r.get("TransformJobName"))),
        }
        handler = handlers.get(operation)
        if handler is None:
            return None
        try:
            return 200, handler(request)
        except ClientError as exc:
            return 400, dict(exc.response)

    @staticmethod
    def _client_error(code: str, message: str, operation: str) -> ClientError:
        response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return ClientError(response, operation)

    # ---------------------------------------------------------------- API
    def _register(self, kind: str, name: str, record: dict[str, Any], operation: str) -> None:
        with self._lock:
            if name in self.jobs:
                raise self._client_error(
                    "ValidationException",
                    f"Job name {name} must be unique within an AWS account and region, "
                    "and a job with this name already exists",
                    operation,
                )
            self.jobs[name] = record

    def create_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ProcessingJobName"]
        arn = f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:processing-job/{name.lower()}"
        record = {
            "kind": "processing",
            "request": request,
            "status": "InProgress",
            "created": _now(),
            "arn": arn,
        }
        self._check_limits("CreateProcessingJob", request)
        cluster = (request.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        record["refusal"] = instance_count_refusal(
            (request.get("AppSpecification") or {}).get("ImageUri", ""), cluster.get("InstanceCount")
        )
        self._register("processing", name, record, "CreateProcessingJob")
        self._start(name, self._run_processing)
        return {"ProcessingJobArn": arn}

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        arn = f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:training-job/{name.lower()}"
        record = {
            "kind": "training",
            "request": request,
            "status": "InProgress",
            "created": _now(),
            "arn": arn,
        }
        self._check_limits("CreateTrainingJob", request)
        record["refusal"] = instance_count_refusal(
            (request.get("AlgorithmSpecification") or {}).get("TrainingImage", ""),
            (request.get("ResourceConfig") or {}).get("InstanceCount"),
        )
        self._register("training", name, record, "CreateTrainingJob")
        self._start(name, self._run_training)
        return {"TrainingJobArn": arn}

    def _check_limits(self, operation: str, request: dict[str, Any]) -> None:
        """SageMaker's request validation (enums, lengths, bounds, required members from its service model):
        a request AWS would refuse is refused here with AWS's ValidationException, before any job exists."""
        from sfn_mlops import api_limits

        message = api_limits.refusal(operation, request)
        if message is not None:
            raise self._client_error("ValidationException", message, operation)

    def describe(self, kind: str, name: str) -> dict[str, Any]:
        job = self.jobs.get(name)
        if job is None or job["kind"] != kind:
            operation = "DescribeProcessingJob" if kind == "processing" else "DescribeTrainingJob"
            raise self._client_error("ValidationException", f"Could not find requested job with name {name}", operation)
        request = job["request"]
        common = {"CreationTime": job["created"], "LastModifiedTime": job.get("ended", job["created"])}
        if job.get("started"):
            common["ProcessingStartTime" if kind == "processing" else "TrainingStartTime"] = job["started"]
        if job.get("ended"):
            common["ProcessingEndTime" if kind == "processing" else "TrainingEndTime"] = job["ended"]
        if job.get("failure_reason") and job["status"] == "Failed":  # SageMaker gives a reason for failures only
            common["FailureReason"] = job["failure_reason"]
        if kind == "processing":
            result = {
                **request,
                **common,
                "ProcessingJobArn": job["arn"],
                "ProcessingJobStatus": job["status"],
            }
            if job.get("exit_message"):
                result["ExitMessage"] = job["exit_message"]
            return result
        result = {
            **request,
            **common,
            "TrainingJobArn": job["arn"],
            "TrainingJobStatus": job["status"],
            "SecondaryStatus": _secondary_status(job),
            "SecondaryStatusTransitions": _secondary_transitions(job),
            "ModelArtifacts": {"S3ModelArtifacts": job.get("model_data", "")},
        }
        if job.get("billable"):
            result["BillableTimeInSeconds"] = job["billable"]
        return result

    def list_jobs(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        """List*Jobs, newest first, with the filters our users reach for (name, status, one page)."""
        label = "ProcessingJob" if kind == "processing" else "TrainingJob"
        with self._lock:
            jobs = [(name, dict(job)) for name, job in self.jobs.items() if job["kind"] == kind]
        contains, status = request.get("NameContains", ""), request.get("StatusEquals")
        chosen = [
            (name, job)
            for name, job in sorted(jobs, key=lambda item: item[1]["created"], reverse=True)
            if contains in name and (status is None or job["status"] == status)
        ][: int(request.get("MaxResults", 10))]
        summaries = []
        for name, job in chosen:
            summary = {
                f"{label}Name": name,
                f"{label}Arn": job["arn"],
                "CreationTime": job["created"],
                f"{label}Status": job["status"],
            }
            if job.get("ended"):
                summary[f"{'Processing' if kind == 'processing' else 'Training'}EndTime"] = job["ended"]
            summaries.append(summary)
        return {f"{label}Summaries": summaries}

    def stop(self, kind: str, name: str) -> dict[str, Any]:
        """Stop*Job: the job's process is stopped and the job ends Stopped, as SageMaker's does."""
        operation = "StopProcessingJob" if kind == "processing" else "StopTrainingJob"
        job = self.jobs.get(name)
        if job is None or job["kind"] != kind:
            raise self._client_error("ValidationException", f"Could not find job to stop with name {name}", operation)
        if job["status"] != "InProgress":
            raise self._client_error(
                "ValidationException", f"The job {name} is not in progress (status: {job['status']})", operation
            )
        job["stop_requested"] = True
        job["status"] = "Stopping"  # as SageMaker reports it until the job's process has ended
        process = self._processes.get(name)
        if process is not None and process.running():
            process.terminate()
        return {}

    def wait_idle(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    # ---------------------------------------------------------------- persistence
    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dict(job) for name, job in self.jobs.items()}

    def restore(self, saved: dict[str, dict[str, Any]]) -> list[str]:
        """Take back saved jobs; one that was running when the service stopped ran in a process that is gone,
        so it ends Failed (as SageMaker reports a job its instance lost), never InProgress forever."""
        interrupted = []
        with self._lock:
            for name, job in saved.items():
                if job.get("status") == "Stopping":  # its stop was asked for: it ends as it would have
                    job["status"] = "Stopped"
                    job["ended"] = job.get("ended") or _now()
                if job.get("status") == "InProgress":
                    job["status"] = "Failed"
                    job["failure_reason"] = "InternalServerError: the local service stopped while this job ran"
                    job["ended"] = job.get("ended") or _now()
                    interrupted.append(name)
                self.jobs[name] = job
        return interrupted

    # ---------------------------------------------------------------- running
    def _start(self, name: str, target: Callable[[str, Path], None]) -> None:
        def run() -> None:
            job = self.jobs[name]
            sandbox = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._work_dir))
            job["started"] = _now()
            try:
                injected = self.fault(name, job) if self.fault else None
                if injected:
                    raise JobFailed(injected)
                if job.get("refusal"):  # what the local runtime cannot run faithfully (several instances)
                    raise JobFailed(job["refusal"])
                target(name, sandbox)
                job["status"] = "Completed"
            except JobFailed as failed:
                job["status"] = failed.status
                job["failure_reason"] = failed.reason[:1024]
                if failed.secondary_status:
                    job["secondary_status"] = failed.secondary_status
                if failed.exit_message:
                    job["exit_message"] = failed.exit_message[:1024]
            except Exception as exc:  # the runner itself broke: report it like SageMaker's InternalServerError
                job["status"] = "Failed"
                job["failure_reason"] = f"InternalServerError: local job runner: {type(exc).__name__}: {exc}"[:1024]
            finally:
                if job.get("stop_requested"):
                    job["status"] = "Stopped"
                job["ended"] = _now()
                self.job_total_seconds[name] = (job["ended"] - job["started"]).total_seconds()
                job["billable"] = max(1, int((job["ended"] - job["started"]).total_seconds()))
                shutil.rmtree(sandbox, ignore_errors=True)
                if self.on_job_end is not None:
                    self.on_job_end()

        thread = threading.Thread(target=run, name=f"sagemaker-job-{name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]  # finished jobs need no joining
        self._threads.append(thread)
        thread.start()

    @staticmethod
    def _local(sandbox: Path, container_path: str, root: str = CONTAINER_ROOT) -> Path:
        """The sandbox file for a container path; one outside ``root`` (or climbing out with ``..`` or a symlink)
        fails the job as SageMaker's validation refuses it."""
        try:
            return job_sandbox.container_path(sandbox, container_path, root)
        except job_sandbox.SandboxEscape as exc:
            raise JobFailed(f"ClientError: {exc}") from None

    def _download(self, uri: str, target: Path) -> int:
        bucket, prefix = split_s3_uri(uri)
        s3 = self._s3()
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
                try:  # a key such as a/../../x must not write outside the input's folder
                    destination = job_sandbox.contained(target, relative, f"S3 key s3://{bucket}/{key} as a file")
                except job_sandbox.SandboxEscape as exc:
                    raise JobFailed(f"ClientError: input {uri}: {exc}") from None
                destination.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, key, str(destination))
                count += 1
        if count == 0:
            raise JobFailed(f"ClientError: no S3 objects found under the input URI {uri}")
        return count

    def _upload(self, source: Path, uri: str) -> None:
        bucket, prefix = split_s3_uri(uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        s3 = self._s3()
        for path in job_sandbox.regular_files(source):  # a symlink the job left is not followed out
            s3.upload_file(str(path), bucket, prefix + path.relative_to(source).as_posix())

    def _run_process(self, name: str, command: list[str], env: dict[str, str], cwd: Path, timeout: int) -> int:
        """Run the job's process; ``timeout`` is its MaxRuntimeInSeconds, which counts from the job's start (its
        downloads included). Past it the process is stopped (SIGTERM, then SIGKILL after a grace period) and the
        job ends Stopped with SecondaryStatus MaxRuntimeExceeded, as SageMaker ends it."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        job_started = self.jobs[name].get("started") if name in self.jobs else None
        elapsed = (_now() - job_started).total_seconds() if job_started is not None else 0.0
        remaining = max(0.0, timeout - elapsed)
        try:
            process = job_process.start(command, env, cwd, self._log_dir / f"{name}.log")
            self._processes[name] = process
            try:
                return process.wait(remaining)
            except subprocess.TimeoutExpired as exc:
                process.terminate()  # SageMaker's SIGTERM: a script may save what it has
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(None)
                raise JobFailed(
                    f"MaxRuntimeExceeded: the job ran longer than its StoppingCondition.MaxRuntimeInSeconds "
                    f"({timeout} seconds) and was stopped",
                    status="Stopped",
                    secondary_status="MaxRuntimeExceeded",
                ) from exc
        finally:
            self._processes.pop(name, None)
            self.job_seconds[name] = time.perf_counter() - started

    def terminate_all(self) -> list[str]:
        """Stop every job process still running (the service is stopping): none outlives the service."""
        stopped = []
        for name, process in list(self._processes.items()):
            if process.running():
                process.kill()
                stopped.append(name)
        return stopped

    @staticmethod
    def _base_env(sandbox: Path) -> dict[str, str]:
        """A container's environment: its own HOME in the sandbox, none of the user's AWS credentials or config,
        nothing of the project on its path (the script runs in its image's environment)."""
        return job_sandbox.job_environment(sandbox)

    def _image_environment(self, name: str, image_uri: str) -> tuple[Path, job_process.ImageServer]:
        """The Python of the job's image environment (built on first use: like an image pull, before the job's
        clock starts) and its fork server; the log starts with how the environment differs from the image."""
        try:
            spec = image_environments.spec_for(image_uri)
        except image_environments.ImageEnvironmentError as exc:
            raise JobFailed(f"ClientError: {exc}") from None
        log_path = self._log_dir / f"{name}.log"
        self._log_dir.mkdir(parents=True, exist_ok=True)
        try:
            built = image_environments.is_built(spec)
            if not built:
                with open(log_path, "a") as log:
                    log.write(f"building the local image environment {spec.label} (once)\n")
            python = image_environments.ensure(spec)
            if not built:
                self.jobs[name]["started"] = _now()  # the image was 'pulled': the job starts now
            server = job_process.image_server(python, list(spec.preload))
        except (image_environments.ImageEnvironmentError, job_process.ImageServerError) as exc:
            raise JobFailed(f"InternalServerError: local image environment {spec.label}: {exc}") from None
        with open(log_path, "a") as log:
            log.write(spec.header() + "\n")
            if not server.namespaces:
                log.write(NO_NAMESPACES_NOTE + "\n")
        return python, server

    def _failure(self, name: str, prefix: str = "AlgorithmError") -> JobFailed:
        """A failed script's reason: the tail of its log (the exception line last) and where the whole log is."""
        log_path = self._log_dir / f"{name}.log"
        return JobFailed(job_sandbox.failure_reason(prefix, job_sandbox.log_tail(log_path), log_path))

    def _spark_java(self, image_uri: str, entrypoint: list[str], namespaces: bool) -> spark_local.Java | None:
        """The Java a ``smspark-submit`` job's PySpark starts (None for any other job), checked before anything is
        downloaded: a machine without one fails the job at once, saying what to install."""
        if not entrypoint or entrypoint[0] != spark_local.ENTRYPOINT:
            return None
        repository = image_environments.image_key(image_uri)[0]
        if repository != SPARK_REPOSITORY:
            raise JobFailed(f"ClientError: {spark_local.ENTRYPOINT} is the entrypoint of {SPARK_REPOSITORY} images, "
                            f"not of {repository}")  # fmt: skip
        try:
            java = spark_local.find_java()
        except spark_local.SparkUnavailable as exc:
            raise JobFailed(f"ClientError: {exc}") from None
        if namespaces and java.home.is_relative_to("/opt"):  # the job's own /opt would hide it
            raise JobFailed(
                f"ClientError: {java.label} is under /opt, which a job's container paths replace; install Java "
                f"from the system packages (apt-get install {spark_local.JAVA_PACKAGE}) or set JAVA_HOME to one"
            )
        return java

    def _run_processing(self, name: str, sandbox: Path) -> None:
        request = self.jobs[name]["request"]
        app = request["AppSpecification"]
        python, server = self._image_environment(name, app["ImageUri"])
        java = self._spark_java(app["ImageUri"], list(app.get("ContainerEntrypoint", [])), server.namespaces)
        for item in request.get("ProcessingInputs", []):
            s3_input = item["S3Input"]
            self._download(s3_input["S3Uri"], self._local(sandbox, s3_input["LocalPath"], PROCESSING_ROOT))
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for item in outputs:
            self._local(sandbox, item["S3Output"]["LocalPath"], PROCESSING_ROOT).mkdir(parents=True, exist_ok=True)
        (sandbox / "opt/ml/output").mkdir(parents=True, exist_ok=True)
        entrypoint = list(app.get("ContainerEntrypoint", []))
        if not entrypoint:
            raise JobFailed("ClientError: the local runtime needs AppSpecification.ContainerEntrypoint")
        # The image's python is its environment's; the job's own arguments are passed as given (nothing added).
        command = [str(python) if part in IMAGE_PYTHONS else part for part in entrypoint]
        command += app.get("ContainerArguments", [])
        spark_env: dict[str, str] = {}
        if java is not None:  # smspark-submit app.py args...: the app run by the image's Python, Spark local
            cluster = request["ProcessingResources"]["ClusterConfig"]
            try:
                spark = spark_local.local_command(
                    command[1:], cluster["InstanceType"], cluster["InstanceCount"], sandbox, python, java
                )
            except ValueError as exc:
                raise JobFailed(f"ClientError: {exc}") from None
            command, spark_env = [str(python), *spark.argv], spark.env
            with open(self._log_dir / f"{name}.log", "a") as log:
                log.write("".join(f"{note}\n" for note in spark.notes))
        if not (server.namespaces and job_process.runs_in_image(command)):  # /opt/ml is not the job's: map it
            command = [
                part if i == 0 or not part.startswith(CONTAINER_ROOT) else str(self._local(sandbox, part))
                for i, part in enumerate(command)
            ]
        env = {**self._base_env(sandbox), **spark_env, **request.get("Environment", {})}
        env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"  # a shell entrypoint's python3 is the image's too
        timeout = int(request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
        code = self._run_process(name, command, env, sandbox, timeout)
        exit_message = (job_sandbox.read_own_file(sandbox / "opt/ml/output/message") or "").strip() or None
        if code != 0:
            failed = self._failure(name)
            raise JobFailed(failed.reason, exit_message)
        for item in outputs:
            self._upload(
                self._local(sandbox, item["S3Output"]["LocalPath"], PROCESSING_ROOT), item["S3Output"]["S3Uri"]
            )
        if exit_message:
            self.jobs[name]["exit_message"] = exit_message

    def _run_training(self, name: str, sandbox: Path) -> None:
        request = self.jobs[name]["request"]
        image = request["AlgorithmSpecification"]["TrainingImage"]
        if check_image(image) != "xgboost":
            raise JobFailed(f"ClientError: {image} is not a training algorithm image the local runtime can run")
        python, server = self._image_environment(name, image)
        root = sandbox / "opt/ml"
        config_dir = root / "input/config"
        config_dir.mkdir(parents=True)
        (config_dir / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters", {})))
        channels = {}
        for channel in request.get("InputDataConfig", []):
            channels[channel["ChannelName"]] = {
                "ContentType": channel.get("ContentType", ""),
                "TrainingInputMode": channel.get("InputMode", "File"),
                "S3DistributionType": channel["DataSource"]["S3DataSource"].get("S3DataDistributionType", ""),
                "RecordWrapperType": "None",
            }
            try:  # the channel's name is a folder name: SageMaker's pattern for it allows '..'
                channel_dir = job_sandbox.contained(root / "input/data", channel["ChannelName"], "ChannelName")
            except job_sandbox.SandboxEscape as exc:
                raise JobFailed(f"ClientError: {exc}") from None
            self._download(channel["DataSource"]["S3DataSource"]["S3Uri"], channel_dir)
        (config_dir / "inputdataconfig.json").write_text(json.dumps(channels))
        (config_dir / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
        )
        for folder in ("model", "output/data", "output"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        # The job sees its sandbox's opt/ml as /opt/ml where namespaces allow it, else is told where it is.
        opt_ml = Path(CONTAINER_ROOT) if server.namespaces else root
        env = {
            **self._base_env(sandbox),
            "SM_MODEL_DIR": str(opt_ml / "model"),
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_CURRENT_HOST": "algo-1",
        }
        if not server.namespaces:
            env["MLOPS_OPT_ML"] = str(root)
        env.update({f"SM_CHANNEL_{c.upper()}": str(opt_ml / "input/data" / c) for c in channels})
        timeout = int(request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
        # The algorithm ships inside the image: a copy of its (standalone) program, run by the image's Python.
        command = [str(python), str(copy_algorithm_program(sandbox / "program"))]
        code = self._run_process(name, command, env, sandbox, timeout)
        if code != 0:
            reason = (job_sandbox.read_own_file(root / "output/failure") or "").strip()
            log_path = self._log_dir / f"{name}.log"
            if reason:  # the container's failure file, as SageMaker shows it (its first 1,024 characters)
                raise JobFailed(job_sandbox.with_log_location(f"AlgorithmError: {reason}", log_path))
            raise self._failure(name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in job_sandbox.regular_files(root / "model"):  # no symlink out of the sandbox is packed
                archive.add(path, arcname=path.relative_to(root / "model").as_posix())
        output_path = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, prefix = split_s3_uri(f"{output_path}/{name}/output/model.tar.gz")
        self._s3().put_object(Bucket=bucket, Key=prefix, Body=buffer.getvalue())
        self.jobs[name]["model_data"] = f"s3://{bucket}/{prefix}"
