"""The instances behind a local SageMaker endpoint: one long-lived process per container of each variant.

A fleet is one deployment of an endpoint configuration (the blue or the green fleet of an update). Loading a
fleet does what SageMaker does before an endpoint goes InService: for each variant, each container's
``ModelDataUrl`` is downloaded from (local) S3 and extracted into the container's ``/opt/ml/model``, the
container is started, and it must load its model (its health check) before the variant can take traffic.
Containers run in processes forked from the warm interpreter of job_process.py
(``sfn_mlops_local.containers.serving``); user inference code is only ever imported there.

Instance counts are not capacity here: a variant runs one process per container whatever its
``InitialInstanceCount``, and serves one request at a time per container.
"""

from __future__ import annotations

import atexit
import hashlib
import random
import shutil
import tarfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_mlops.s3uri import split_s3_uri

from sfn_mlops_local.local import job_process, job_sandbox
from sfn_mlops_local.local.sagemaker_jobs import JobFailed, check_image

CONTAINER_MODEL_DIR = "/opt/ml/model"
# SageMaker's default health check timeout for a container that is starting (seconds).
STARTUP_TIMEOUT_S = 600
# How long an invocation may take before SageMaker gives up on the container (seconds).
INVOCATION_TIMEOUT_S = 60
# How long a stopping fleet lets a request in flight finish.
DRAIN_S = 5.0


# Every container process started here: none may outlive the process that started it (multiprocessing would
# otherwise wait for them at exit).
_live: weakref.WeakSet[ContainerWorker] = weakref.WeakSet()


@atexit.register
def _stop_every_container() -> None:
    for worker in list(_live):
        worker._kill()


class HostingError(Exception):
    """A fleet could not be brought up; the message is the endpoint's FailureReason."""


class ContainerStopped(Exception):
    """The container was stopped (its fleet retired by an update or a rollback) before the request reached it."""


class ContainerGone(Exception):
    """The container's process ended, or did not answer in time, during an invocation."""


@dataclass
class Answer:
    """What a variant answered: the last container's response, or the first failing container's."""

    status: int
    body: bytes
    content_type: str
    container: str  # the hostname that answered (the failing one on an error)
    timed_out: bool = False


def resolved_image(image: str) -> str:
    """A stable digest-pinned form of the image, as DescribeEndpoint's ResolvedImage (no registry locally)."""
    return f"{image.split('@', 1)[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


class ContainerWorker:
    """One container of a variant: its sandbox (``opt/ml/model``), its process, and one request at a time."""

    def __init__(
        self,
        spec: dict[str, Any],
        sandbox: Path,
        log_path: Path,
        s3: Callable[[], Any],
        startup_timeout: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.hostname = str(spec["ContainerHostname"])
        self.sandbox = sandbox
        self.log_path = log_path
        self._s3 = s3
        self._startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Any = None
        self._prepared = False
        self._stopped = False
        _live.add(self)

    # ------------------------------------------------------------------ lifecycle
    def start(self, subject: str) -> None:
        """Download and extract the model, start the container and wait for its model to load.
        ``subject`` names the container in a FailureReason ("The primary container for production variant X")."""
        with self._lock:
            if not self.running():  # a request may have started it already
                self._start_locked(subject)

    def _start_locked(self, subject: str) -> None:
        try:
            self._bring_up(subject)
        except HostingError:
            raise
        except Exception as exc:  # the local hosting itself broke: reported like SageMaker's internal failure
            raise HostingError(
                f"{subject} could not be started by the local runtime: {type(exc).__name__}: {exc}"
            ) from exc

    def _bring_up(self, subject: str) -> None:
        if self._stopped:
            raise HostingError(f"{subject} was stopped")
        image = str(self.spec["Image"])
        try:
            kind = check_image(image)
        except JobFailed as failed:
            raise HostingError(f"{subject}: {failed.reason.removeprefix('ClientError: ')}") from None
        model_dir = self.sandbox / CONTAINER_MODEL_DIR.lstrip("/")
        if not self._prepared:
            shutil.rmtree(self.sandbox, ignore_errors=True)
            model_dir.mkdir(parents=True)
            if self.spec.get("ModelDataUrl"):
                self._download_model(str(self.spec["ModelDataUrl"]), model_dir)
            self._prepared = True
        environment = {str(k): str(v) for k, v in (self.spec.get("Environment") or {}).items()}
        code_dir = self._code_dir(environment, model_dir)
        env = {
            **_base_env(self.sandbox),
            **environment,
            "SM_MODEL_DIR": str(model_dir),
            "MLOPS_OPT_ML": str(self.sandbox / "opt/ml"),
        }
        if "SAGEMAKER_SUBMIT_DIRECTORY" in environment:
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(code_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        context = job_process.warm_context()
        parent, child = context.Pipe()
        from sfn_mlops_local.containers import serving

        process = context.Process(
            target=serving.worker_main,
            args=(child, kind, env, str(model_dir), str(code_dir), str(self.log_path)),
            name=f"endpoint-container-{self.hostname}",
        )
        process.start()
        child.close()
        self._process = process  # a stop while the model loads kills it
        try:
            if not parent.poll(self._startup_timeout):
                raise HostingError(
                    f"{subject} did not pass the ping health check within {self._startup_timeout:.0f} seconds. "
                    f"Please check CloudWatch logs for this endpoint (locally: {self.log_path})."
                )
            state, reason = parent.recv()
        except (EOFError, OSError):
            state, reason = "failed", "the container process exited while loading the model"
        except HostingError:
            self._process = None
            process.kill()
            process.join(5)
            parent.close()
            raise
        if state != "ready":
            self._process = None
            process.join(5)
            if process.is_alive():
                process.kill()
            parent.close()
            raise HostingError(
                f"{subject} did not pass the ping health check. Please check CloudWatch logs for this endpoint "
                f"(locally: {self.log_path}): {reason}"
            )
        if self._stopped:  # stopped while loading
            process.kill()
            process.join(5)
            parent.close()
            self._process = None
            raise HostingError(f"{subject} was stopped")
        self._conn = parent

    def _download_model(self, uri: str, model_dir: Path) -> None:
        bucket, key = split_s3_uri(uri)
        archive = self.sandbox / "model.tar.gz"
        try:
            self._s3().download_file(bucket, key, str(archive))
        except Exception as exc:
            self._log(f"downloading {uri} failed: {type(exc).__name__}: {exc}")
            raise HostingError(
                f'Failed to download model data(bucket: "{bucket}", key: "{key}"). Please ensure that there is an '
                "object located at the URL and that the role passed to CreateModel has permissions to download the "
                "model."
            ) from None
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(model_dir, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise HostingError(
                f'Failed to extract model data archive from URL "{uri}". Please ensure that the object located at '
                f"the URL is a valid tar.gz archive. ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            archive.unlink(missing_ok=True)

    def _log(self, line: str) -> None:
        """A line in the container's log (what SageMaker writes to the endpoint's CloudWatch log group)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(line.rstrip() + "\n")

    def _code_dir(self, environment: dict[str, str], model_dir: Path) -> Path:
        """SAGEMAKER_SUBMIT_DIRECTORY: a folder under /opt/ml/model (mapped into the sandbox), or an S3
        sourcedir.tar.gz (downloaded and extracted to /opt/ml/code, as the framework container does)."""
        submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            code_dir = self.sandbox / "opt/ml/code"
            if not code_dir.exists():
                code_dir.mkdir(parents=True)
                bucket, key = split_s3_uri(submit)
                archive = self.sandbox / "sourcedir.tar.gz"
                try:
                    self._s3().download_file(bucket, key, str(archive))
                    with tarfile.open(archive, "r:*") as tar:
                        tar.extractall(code_dir, filter="data")
                except Exception as exc:
                    raise HostingError(f"Failed to download the inference code from {submit}: {exc}") from None
                finally:
                    archive.unlink(missing_ok=True)
            return code_dir
        if submit.startswith("/opt/ml/"):
            try:
                return job_sandbox.container_path(self.sandbox, submit)
            except job_sandbox.SandboxEscape as exc:
                raise HostingError(f"SAGEMAKER_SUBMIT_DIRECTORY: {exc}") from None
        return model_dir / "code"

    def running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self, drain: float = DRAIN_S) -> None:
        """Stop the container; a request in flight gets ``drain`` seconds to finish."""
        self._stopped = True
        acquired = self._lock.acquire(timeout=drain)
        try:
            self._kill()
        finally:
            if acquired:
                self._lock.release()
        shutil.rmtree(self.sandbox, ignore_errors=True)

    def _kill(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)

    # ------------------------------------------------------------------ serving
    def invoke(self, body: bytes, content_type: str | None, accept: str | None, subject: str) -> tuple[int, bytes, str]:
        """One request to the container's /invocations. A container whose process died is started again first
        (SageMaker replaces an unhealthy instance); one that does not answer in time is stopped."""
        with self._lock:
            if self._stopped:
                raise ContainerStopped(self.hostname)
            if not self.running():
                self._kill()
                self._start_locked(subject)
            try:
                self._conn.send((body, content_type, accept))
                if not self._conn.poll(INVOCATION_TIMEOUT_S):
                    self._kill()
                    raise ContainerGone("timeout")
                status, answer, answer_type = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                self._kill()
                raise ContainerGone("exited") from exc
        return int(status), bytes(answer), str(answer_type)


@dataclass
class Variant:
    name: str
    weight: float
    containers: list[ContainerWorker]
    mode: str  # Serial (an inference pipeline) or Direct
    subject: Callable[[ContainerWorker], str] = field(repr=False, default=lambda c: c.hostname)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, target: str | None) -> Answer:
        """Serial: each container gets the previous one's response, with its content type, and the request's
        Accept; the last container's response is the endpoint's. Direct: the target container alone."""
        if self.mode == "Direct":
            chosen = [c for c in self.containers if c.hostname == target]
            containers = chosen
        else:
            containers = self.containers
        answer = Answer(200, body, content_type or "", "")
        for container in containers:
            try:
                status, payload, payload_type = container.invoke(
                    answer.body, answer.content_type or None, accept, self.subject(container)
                )
            except HostingError as failed:  # its process had died and it could not be started again
                return Answer(500, str(failed).encode(), "text/plain", container.hostname)
            except ContainerGone as gone:
                timed_out = str(gone) == "timeout"
                message = b"" if timed_out else b"the container's process exited during the request"
                return Answer(500, message, "text/plain", container.hostname, timed_out=timed_out)
            answer = Answer(status, payload, payload_type, container.hostname)
            if not 200 <= status < 300:
                return answer
        return answer

    def start(self) -> None:
        for container in self.containers:
            container.start(self.subject(container))

    def stop(self, drain: float = DRAIN_S) -> None:
        for container in self.containers:
            container.stop(drain)


class Fleet:
    """One deployment of an endpoint configuration: its variants, chosen by weight for each request."""

    def __init__(self, config_name: str, variants: list[Variant]) -> None:
        self.config_name = config_name
        self.variants = variants
        self._started = threading.Event()
        self._start_lock = threading.Lock()
        self.failure: str | None = None

    def start(self, stop_on_failure: bool = True) -> None:
        """Bring every variant up (raises HostingError with the FailureReason); safe to call again."""
        with self._start_lock:
            if self._started.is_set():
                return
            try:
                for variant in self.variants:
                    variant.start()
            except HostingError as failed:
                self.failure = str(failed)
                if stop_on_failure:
                    self.stop()
                raise
            self._started.set()

    def stop(self, drain: float = DRAIN_S) -> None:
        for variant in self.variants:
            variant.stop(drain)

    def pick(self, target: str | None) -> Variant | None:
        if target is not None:
            return next((v for v in self.variants if v.name == target), None)
        total = sum(v.weight for v in self.variants)
        if total <= 0:
            return self.variants[0]
        point = random.uniform(0, total)
        for variant in self.variants:
            point -= variant.weight
            if point <= 0:
                return variant
        return self.variants[-1]


def build_fleet(endpoint: str, deployment: dict[str, Any], root: Path, log_dir: Path, s3: Callable[[], Any]) -> Fleet:
    """A fleet for a deployment snapshot (``{"config": name, "id": ..., "variants": [...]}``)."""
    variants = []
    for spec in deployment["variants"]:
        name = str(spec["VariantName"])
        containers = []
        for container in spec["containers"]:
            hostname = str(container["ContainerHostname"])
            containers.append(
                ContainerWorker(
                    container,
                    root / deployment["id"] / name / hostname,
                    log_dir / endpoint / f"{name}-{deployment['id']}-{hostname}.log",
                    s3,
                    float(spec.get("ContainerStartupHealthCheckTimeoutInSeconds") or STARTUP_TIMEOUT_S),
                )
            )
        single = len(containers) == 1

        def subject(worker: ContainerWorker, variant: str = name, one: bool = single) -> str:
            if one:
                return f"The primary container for production variant {variant}"
            return f"The container {worker.hostname} for production variant {variant}"

        variants.append(
            Variant(name, float(spec.get("InitialVariantWeight", 1.0)), containers, str(spec["mode"]), subject)
        )
    return Fleet(str(deployment["config"]), variants)


def _base_env(sandbox: Path) -> dict[str, str]:
    """A serving container's environment: its own HOME in its sandbox, none of the user's AWS settings."""
    return job_sandbox.job_environment(sandbox, str(Path(__file__).resolve().parents[2]))
