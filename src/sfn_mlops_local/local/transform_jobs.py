"""SageMaker Batch Transform in the local runtime: Create/Describe/List/StopTransformJob.

A transform job runs a model's containers (an inference pipeline runs them in series) as one warm set of
container processes for the whole job (endpoint_hosting.py's ContainerWorker and Variant, forked from the warm
interpreter), and feeds them the job's input the way Batch Transform does:

- the input is every object under ``S3Prefix`` (or listed by a ``ManifestFile``), optionally gzip-compressed;
- ``SplitType`` ``Line`` splits an object into records (its lines; empty lines are not records), ``None`` sends
  the object whole;
- ``BatchStrategy`` ``MultiRecord`` packs as many records as fit in ``MaxPayloadInMB`` into one request,
  ``SingleRecord`` sends one record per request; ``MaxConcurrentTransforms`` requests are in flight at once;
- ``DataProcessing``: ``InputFilter`` selects the columns sent (CSV, SageMaker's JSONPath subset: ``$``,
  ``$[i]``, ``$[i,j]``, ``$[i:j]``, ``$[-1]``...), ``JoinSource`` ``Input`` appends each record's output to
  the whole input record, ``OutputFilter`` selects the columns written;
- ``AssembleWith`` ``Line`` writes each output record on its own line; the output of
  ``<prefix>/<relative key>`` is ``<S3OutputPath>/<relative key>.out``, written only when the whole object
  succeeded.

The containers see what SageMaker sets for batch: ``SAGEMAKER_BATCH``, ``SAGEMAKER_MAX_PAYLOAD_IN_MB``,
``SAGEMAKER_BATCH_STRATEGY`` and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``. A container's error fails the job with
the model's own message in FailureReason (there is no CloudWatch locally; the job's log file has the rest).
See docs/decisions/0016-local-transform-jobs.md.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import gzip
import io
import json
import operator
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from sfn_mlops.s3uri import split_s3_uri

from sfn_mlops_local.local import job_sandbox
from sfn_mlops_local.local.endpoint_hosting import Answer, ContainerStopped, ContainerWorker, HostingError, Variant
from sfn_mlops_local.local.endpoints import ApiError, _Checks, _page, _timestamp
from sfn_mlops_local.local.sagemaker_jobs import JobFailed
from sfn_mlops_local.local.template import ACCOUNT, PARTITION, REGION

if TYPE_CHECKING:
    from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner

MB = 1024 * 1024
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_PAYLOAD_MB = 100
# Batch Transform's defaults when the request and the container leave them out.
DEFAULT_CONCURRENCY = 1
DEFAULT_STRATEGY = "MultiRecord"
MODEL_NAME_PATTERN = "^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN + "$")
_S3_URI = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
_ITEM = re.compile(r"^\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?(?::\s*(-?\d+)?\s*)?$")


def _validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


# ==================================================================================== filters
@dataclass(frozen=True)
class ColumnFilter:
    """SageMaker's JSONPath subset for CSV records: ``$`` (the whole record) or ``$[...]`` with comma-separated
    indexes (negative from the end) and slices, applied to the record's fields as to a JSON array."""

    expression: str
    items: tuple[int | slice, ...] | None  # None: the whole record

    @classmethod
    def parse(cls, expression: str | None, field_name: str) -> ColumnFilter:
        text = (expression or "$").strip()
        if text == "$":
            return cls("$", None)
        if not (text.startswith("$[") and text.endswith("]")):
            if text.startswith("$."):
                raise _validation(
                    f"{field_name} {text!r} selects a JSON attribute: the local runtime applies filters to CSV "
                    "records only ($, $[i], $[i,j], $[i:j], $[i:], $[-1])"
                )
            raise _validation(f"{field_name} {text!r} is not a valid JSONPath expression")
        items: list[int | slice] = []
        for part in text[2:-1].split(","):
            matched = _ITEM.match(part)
            if not part.strip() or matched is None:
                raise _validation(f"{field_name} {text!r} is not a valid JSONPath expression")
            start, stop, step = (int(g) if g is not None else None for g in matched.groups())
            if ":" not in part:
                items.append(int(part))
            else:
                if step == 0:
                    raise _validation(f"{field_name} {text!r}: a slice step cannot be 0")
                items.append(slice(start, stop, step))
        return cls(text, tuple(items))

    @property
    def whole(self) -> bool:
        return self.items is None

    def apply(self, fields: list[bytes]) -> list[bytes]:
        if self.items is None:
            return fields
        chosen: list[bytes] = []
        for item in self.items:
            if isinstance(item, slice):
                chosen.extend(fields[item])
            elif -len(fields) <= item < len(fields):
                chosen.append(fields[item])
            else:
                raise IndexError(f"{self.expression} selects field {item} of a record with {len(fields)} fields")
        return chosen

    def selector(self) -> Callable[[list[bytes]], Sequence[bytes]]:
        """``apply`` for hundreds of thousands of records: the common shapes without a Python loop per field
        (an IndexError is raised without the message: ``apply`` on that record says which field)."""
        items = self.items
        if items is None:
            return lambda fields: fields
        if len(items) == 1 and isinstance(items[0], slice):
            only = items[0]
            return lambda fields: fields[only]
        if all(isinstance(item, int) for item in items):
            getter = operator.itemgetter(*items)
            if len(items) == 1:
                return lambda fields: (getter(fields),)
            return getter
        return self.apply

    def filter_records(self, records: list[bytes], outputs: list[bytes] | None, plain: bool) -> list[bytes]:
        """Each CSV record (joined with its output's fields when ``outputs`` are given) filtered, as CSV again.
        ``plain``: no field is quoted, so splitting and joining on commas is exact. One pass per record, keeping
        no per-record lists alive (hundreds of thousands of them would make the garbage collector crawl)."""
        select = self.selector()
        try:
            if plain and outputs is None:
                return [b",".join(select(r.split(b","))) for r in records]
            if plain and outputs is not None:
                return [b",".join(select(r.split(b",") + o.split(b","))) for r, o in zip(records, outputs, strict=True)]
            if outputs is None:
                return [join_fields(select(split_fields(r))) for r in records]
            return [
                join_fields(select(split_fields(r) + split_fields(o))) for r, o in zip(records, outputs, strict=True)
            ]
        except IndexError:
            for index, record in enumerate(records):
                fields = split_fields(record) + (split_fields(outputs[index]) if outputs is not None else [])
                self.apply(fields)  # raises with the message naming the field
            raise


def split_fields(record: bytes) -> list[bytes]:
    """A CSV record as SageMaker reads it: an array of its fields (quoted fields may hold commas)."""
    if b'"' not in record:
        return record.split(b",")
    row = next(csv.reader([record.decode("utf-8")]), [])
    return [value.encode("utf-8") for value in row]


def join_fields(fields: Sequence[bytes]) -> bytes:
    if not any(b"," in f or b'"' in f or b"\n" in f for f in fields):
        return b",".join(fields)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([f.decode("utf-8") for f in fields])
    return buffer.getvalue().encode("utf-8")


# ==================================================================================== the request
@dataclass(frozen=True)
class TransformPlan:
    """What a validated CreateTransformJob asks for, with Batch Transform's defaults filled in."""

    model_name: str
    data_type: str
    input_uri: str
    content_type: str | None
    compression: str
    split: str
    output_path: str
    accept: str | None
    assemble: str
    strategy: str
    max_payload_mb: int
    concurrency: int
    input_filter: ColumnFilter
    output_filter: ColumnFilter
    join_input: bool
    environment: dict[str, str]
    instance_count: int = 1

    @property
    def max_payload(self) -> int | None:
        """Bytes per request, or None: 0 means no limit (the container must accept chunked requests)."""
        return self.max_payload_mb * MB if self.max_payload_mb else None

    @property
    def processes_records(self) -> bool:
        """Whether records are filtered or joined one by one (else the containers' answers are written as is)."""
        return self.join_input or not self.input_filter.whole or not self.output_filter.whole


def validate(request: dict[str, Any], instance_types: list[str]) -> TransformPlan:
    """CreateTransformJob's request checked as SageMaker checks it (ApiError with its messages)."""
    checks = _Checks()
    checks.name(request.get("TransformJobName"), "transformJobName")
    model = request.get("ModelName")
    if checks.required(model, "modelName") and (len(str(model)) > 63 or not _MODEL_NAME.match(str(model))):
        checks.errors.append(
            f"Value '{model}' at 'modelName' failed to satisfy constraint: Member must satisfy regular expression "
            f"pattern: {MODEL_NAME_PATTERN}"
        )
    given_input = request.get("TransformInput")
    given_output = request.get("TransformOutput")
    resources = request.get("TransformResources")
    checks.required(given_input, "transformInput")
    checks.required(given_output, "transformOutput")
    checks.required(resources, "transformResources")
    transform_input: dict[str, Any] = given_input or {}
    transform_output: dict[str, Any] = given_output or {}
    source = ((transform_input.get("DataSource") or {}).get("S3DataSource")) or {}
    if given_input is not None and checks.required(source or None, "transformInput.dataSource.s3DataSource"):
        checks.required(source.get("S3DataType"), "transformInput.dataSource.s3DataSource.s3DataType")
        checks.one_of(
            source.get("S3DataType"),
            ("ManifestFile", "S3Prefix", "AugmentedManifestFile", "Converse"),
            "transformInput.dataSource.s3DataSource.s3DataType",
        )
        _uri(checks, source.get("S3Uri"), "transformInput.dataSource.s3DataSource.s3Uri")
    checks.one_of(transform_input.get("CompressionType"), ("None", "Gzip"), "transformInput.compressionType")
    checks.one_of(
        transform_input.get("SplitType"), ("None", "Line", "RecordIO", "TFRecord"), "transformInput.splitType"
    )
    if given_output is not None:
        _uri(checks, transform_output.get("S3OutputPath"), "transformOutput.s3OutputPath")
    checks.one_of(transform_output.get("AssembleWith"), ("None", "Line"), "transformOutput.assembleWith")
    if resources is not None:
        if checks.required(resources.get("InstanceType"), "transformResources.instanceType"):
            checks.one_of(resources.get("InstanceType"), instance_types, "transformResources.instanceType")
        if checks.required(resources.get("InstanceCount"), "transformResources.instanceCount"):
            checks.between(resources.get("InstanceCount"), 1, 1e9, "transformResources.instanceCount")
    checks.between(request.get("MaxPayloadInMB"), 0, MAX_PAYLOAD_MB, "maxPayloadInMB")
    checks.between(request.get("MaxConcurrentTransforms"), 0, 1e9, "maxConcurrentTransforms")
    checks.one_of(request.get("BatchStrategy"), ("MultiRecord", "SingleRecord"), "batchStrategy")
    processing = request.get("DataProcessing") or {}
    checks.one_of(processing.get("JoinSource"), ("Input", "None"), "dataProcessing.joinSource")
    for key in ("InputFilter", "OutputFilter"):
        value = processing.get(key)
        if value is not None and len(str(value)) > 63:
            checks.errors.append(
                f"Value '{value}' at 'dataProcessing.{key[0].lower() + key[1:]}' failed to satisfy constraint: "
                "Member must have length less than or equal to 63"
            )
    environment = request.get("Environment") or {}
    if len(environment) > 16:
        checks.errors.append(
            "Value at 'environment' failed to satisfy constraint: Member must have length less than or equal to 16"
        )
    checks.done()

    data_type = str(source["S3DataType"])
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise _validation(f"S3DataType {data_type} is not supported by the local runtime: use S3Prefix or ManifestFile")
    split = str(transform_input.get("SplitType") or "None")
    if split not in ("None", "Line"):
        raise _validation(
            f"SplitType {split} is not supported by the local runtime: use Line (one record per line) or None"
        )
    max_payload = int(request.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB))
    concurrency = int(request.get("MaxConcurrentTransforms") or DEFAULT_CONCURRENCY)
    if max_payload and concurrency * max_payload > MAX_PAYLOAD_MB:
        raise _validation(
            f"MaxConcurrentTransforms ({concurrency}) * MaxPayloadInMB ({max_payload}) must not exceed "
            f"{MAX_PAYLOAD_MB} MB."
        )
    input_filter = ColumnFilter.parse(processing.get("InputFilter"), "InputFilter")
    output_filter = ColumnFilter.parse(processing.get("OutputFilter"), "OutputFilter")
    join_input = processing.get("JoinSource") == "Input"
    plan = TransformPlan(
        model_name=str(model),
        data_type=data_type,
        input_uri=str(source["S3Uri"]),
        content_type=transform_input.get("ContentType") or None,
        compression=str(transform_input.get("CompressionType") or "None"),
        split=split,
        output_path=str(transform_output["S3OutputPath"]),
        accept=transform_output.get("Accept") or None,
        assemble=str(transform_output.get("AssembleWith") or "None"),
        strategy=str(request.get("BatchStrategy") or DEFAULT_STRATEGY),
        max_payload_mb=max_payload,
        concurrency=concurrency,
        input_filter=input_filter,
        output_filter=output_filter,
        join_input=join_input,
        environment={str(k): str(v) for k, v in environment.items()},
        instance_count=int(request["TransformResources"]["InstanceCount"]),
    )
    if plan.processes_records and plan.split != "Line":
        raise _validation(
            "DataProcessing (InputFilter, JoinSource, OutputFilter) needs TransformInput.SplitType Line locally: "
            "records are filtered and joined one line at a time"
        )
    if plan.processes_records and (plan.content_type or "text/csv").split(";")[0].strip() != "text/csv":
        raise _validation(
            f"DataProcessing on ContentType {plan.content_type} is not supported by the local runtime: "
            "filters and JoinSource apply to text/csv records"
        )
    return plan


@contextlib.contextmanager
def _client_errors(operation: str) -> Iterator[None]:
    """The runner answers botocore ClientErrors; the checks shared with the hosting APIs raise ApiError."""
    try:
        yield
    except ApiError as error:
        response: Any = {
            "Error": {"Code": error.code, "Message": error.message},
            "ResponseMetadata": {"HTTPStatusCode": error.status},
        }
        raise ClientError(response, operation) from None


def _uri(checks: _Checks, value: Any, field_name: str) -> None:
    if not checks.required(value, field_name):
        return
    if len(str(value)) > 1024 or not _S3_URI.match(str(value)):
        checks.errors.append(
            f"Value '{value}' at '{field_name}' failed to satisfy constraint: Member must satisfy regular "
            "expression pattern: (https|s3)://([^/]+)/?(.*)"
        )


# ==================================================================================== the API
class TransformJobs:
    """The transform-job API of a LocalJobRunner: records live in its ``jobs`` (kind ``transform``), so they are
    saved, restored, waited for, fault-injected and timed like processing and training jobs."""

    def __init__(self, runner: LocalJobRunner) -> None:
        self._runner = runner
        self._instance_types: list[str] | None = None
        self._containers: dict[str, _RunningContainers] = {}

    def _types(self) -> list[str]:
        if self._instance_types is None:
            import botocore.session

            model = botocore.session.get_session().get_service_model("sagemaker")
            shape: Any = model.shape_for("TransformInstanceType")
            self._instance_types = list(shape.enum)
        return self._instance_types

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        with _client_errors("CreateTransformJob"):
            # The API's own limits first (enums, lengths, bounds from the service model), in AWS's words; then
            # what this runtime checks further before it can run the job (validate).
            from sfn_mlops import api_limits

            message = api_limits.refusal("CreateTransformJob", request)
            if message is not None:
                raise _validation(message)
            return self._create(request)

    def describe(self, name: str) -> dict[str, Any]:
        with _client_errors("DescribeTransformJob"):
            return self._describe(name)

    def list_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        with _client_errors("ListTransformJobs"):
            return self._list(request)

    def stop(self, name: str) -> dict[str, Any]:
        with _client_errors("StopTransformJob"):
            return self._stop(name)

    def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        plan = validate(request, self._types())
        models = self._runner.models
        model = models(plan.model_name) if models is not None else None
        if model is None:
            raise _validation(f'Could not find model "{_arn("model", plan.model_name)}".')
        if model.get("mode") == "Direct" and len(model.get("containers") or []) > 1:
            raise _validation(
                f"Model {plan.model_name} serves its containers directly (InferenceExecutionConfig Mode Direct): "
                "batch transform runs an inference pipeline's containers in series"
            )
        name = str(request["TransformJobName"])
        job_arn = _arn("transform-job", name)
        record = {
            "kind": "transform",
            "request": copy.deepcopy(request),
            "status": "InProgress",
            "created": _now(),
            "arn": job_arn,
            "containers": copy.deepcopy(model["containers"]),  # the model as it is now, as SageMaker snapshots it
        }
        self._runner._register("transform", name, record, "CreateTransformJob")
        self._runner._start(name, self._run)
        return {"TransformJobArn": job_arn}

    def _describe(self, name: str) -> dict[str, Any]:
        job = self._runner.jobs.get(name)
        if job is None or job["kind"] != "transform":
            raise _validation(f"Could not find requested job with name {name}")
        request = job["request"]
        answer: dict[str, Any] = {
            "TransformJobName": name,
            "TransformJobArn": job["arn"],
            "TransformJobStatus": job["status"],
        }
        if job.get("failure_reason") and job["status"] != "Stopped":
            answer["FailureReason"] = job["failure_reason"]
        answer["ModelName"] = request["ModelName"]
        answer["MaxConcurrentTransforms"] = int(request.get("MaxConcurrentTransforms") or DEFAULT_CONCURRENCY)
        answer["MaxPayloadInMB"] = int(request.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB))
        answer["BatchStrategy"] = request.get("BatchStrategy") or DEFAULT_STRATEGY
        for key in ("ModelClientConfig", "Environment", "DataCaptureConfig", "ExperimentConfig"):
            if key in request:
                answer[key] = copy.deepcopy(request[key])
        answer["TransformInput"] = {
            "CompressionType": "None",
            "SplitType": "None",
            **copy.deepcopy(request["TransformInput"]),
        }
        answer["TransformOutput"] = {"AssembleWith": "None", **copy.deepcopy(request["TransformOutput"])}
        answer["TransformResources"] = copy.deepcopy(request["TransformResources"])
        answer["CreationTime"] = job["created"]
        if job.get("started"):
            answer["TransformStartTime"] = job["started"]
        if job.get("ended"):
            answer["TransformEndTime"] = job["ended"]
        answer["DataProcessing"] = {
            "InputFilter": "$",
            "OutputFilter": "$",
            "JoinSource": "None",
            **copy.deepcopy(request.get("DataProcessing") or {}),
        }
        return answer

    def _list(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._runner._lock:
            jobs = [(name, dict(job)) for name, job in self._runner.jobs.items() if job["kind"] == "transform"]
        rows = []
        for name, job in jobs:
            row: dict[str, Any] = {
                "TransformJobName": name,
                "TransformJobArn": job["arn"],
                "CreationTime": job["created"],
                "LastModifiedTime": job.get("ended") or job.get("started") or job["created"],
                "TransformJobStatus": job["status"],
            }
            if job.get("ended"):
                row["TransformEndTime"] = job["ended"]
            if job.get("failure_reason") and job["status"] != "Stopped":
                row["FailureReason"] = job["failure_reason"]
            rows.append(row)
        status = request.get("StatusEquals")
        rows = [r for r in rows if status is None or r["TransformJobStatus"] == status]
        for key, field_name, before in (
            ("CreationTimeBefore", "CreationTime", True),
            ("CreationTimeAfter", "CreationTime", False),
            ("LastModifiedTimeBefore", "LastModifiedTime", True),
            ("LastModifiedTimeAfter", "LastModifiedTime", False),
        ):
            if request.get(key) is not None:
                bound = _timestamp(request[key])
                rows = [r for r in rows if (r[field_name] < bound if before else r[field_name] > bound)]
        return _page(
            rows,
            request,
            "TransformJobSummaries",
            "TransformJobName",
            {"Name": "TransformJobName", "CreationTime": "CreationTime", "Status": "TransformJobStatus"},
        )

    def _stop(self, name: str) -> dict[str, Any]:
        """StopTransformJob: Stopping at once; the containers are stopped and the job ends Stopped."""
        with self._runner._lock:
            job = self._runner.jobs.get(name)
            if job is None or job["kind"] != "transform":
                raise _validation(f"Could not find job to stop with name {name}")
            if job["status"] != "InProgress":
                raise _validation(f"The job {name} is not in progress (status: {job['status']})")
            job["stop_requested"] = True
            job["status"] = "Stopping"
        running = self._containers.get(name)
        if running is not None:
            running.terminate()
        return {}

    # ---------------------------------------------------------------------------------- running
    def _run(self, name: str, sandbox: Path) -> None:
        job = self._runner.jobs[name]
        plan = validate(job["request"], self._types())
        log_path = self._runner._log_dir / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = _Log(log_path)
        containers = _RunningContainers(job, plan, sandbox, log_path, self._runner._s3)
        self._containers[name] = containers
        self._runner._processes[name] = containers  # a service stop (terminate_all) stops them too
        started = time.perf_counter()
        try:
            objects = list(self._inputs(plan))
            log.write(f"transform {name}: {len(objects)} input object(s), model {plan.model_name}")
            if plan.instance_count > 1:
                # AWS shares the input objects out among the instances; each object's output is the same either way.
                log.write(
                    f"transform {name}: the local runtime runs InstanceCount {plan.instance_count} as one host "
                    "(the outputs are the same as on AWS, where the instances share out the input objects)"
                )
            containers.start()
            for source_uri, relative in objects:
                if job.get("stop_requested"):
                    raise JobFailed("Stopped")
                self._transform_object(job, plan, containers, source_uri, relative, log)
            log.write(f"transform {name}: completed")
        except JobFailed as failed:
            log.write(f"transform {name}: failed: {failed.reason}")
            if failed.reason == "Stopped":
                raise
            raise JobFailed(job_sandbox.with_log_location(failed.reason, log_path), failed.exit_message) from None
        finally:
            containers.stop()
            self._containers.pop(name, None)
            self._runner._processes.pop(name, None)
            self._runner.job_seconds[name] = time.perf_counter() - started

    def _inputs(self, plan: TransformPlan) -> Iterator[tuple[str, str]]:
        """(object URI, key relative to the input's prefix) for every input object, in S3's key order."""
        s3 = self._runner._s3()
        if plan.data_type == "ManifestFile":
            yield from _manifest(s3, plan.input_uri)
            return
        bucket, prefix = split_s3_uri(plan.input_uri)
        base = prefix if prefix.endswith("/") or not prefix else prefix[: prefix.rfind("/") + 1]
        found = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                found += 1
                yield f"s3://{bucket}/{obj['Key']}", obj["Key"][len(base) :]
        if not found:
            raise JobFailed(
                f'ClientError: No S3 objects found under S3 URL "{plan.input_uri}" given in input data source. '
                "Please ensure that the bucket exists in the selected region (us-east-1), that objects exist under "
                "that S3 prefix, and that the role has permission to read them."
            )

    def _transform_object(
        self,
        job: dict[str, Any],
        plan: TransformPlan,
        containers: _RunningContainers,
        source_uri: str,
        relative: str,
        log: _Log,
    ) -> None:
        s3 = self._runner._s3()
        bucket, key = split_s3_uri(source_uri)
        try:
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise JobFailed(f"ClientError: could not read the input object {source_uri}: {exc}") from None
        if plan.compression == "Gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise JobFailed(f"ClientError: the input object {source_uri} is not gzip data: {exc}") from None
        started = time.perf_counter()
        if plan.split == "None":
            batches: list[list[bytes]] = [[data]] if data else []
        else:
            records = [line.rstrip(b"\r") for line in data.split(b"\n")]
            records = [r for r in records if r]
            batches = list(self._batches(plan, records, source_uri))
        output = _Output(plan, source_uri)
        quoted = b'"' in data  # else every field is split and joined on commas alone, fast

        def requests() -> Iterator[_Request]:  # built as they are sent: preparing one overlaps the others
            line = 1
            for batch in batches:
                yield _Request(batch, self._payload(plan, batch, source_uri, quoted), line, source_uri)
                line += len(batch)

        for request, answer in containers.transform(requests(), plan, job):
            output.add(request.records, answer, request.first_line)
        out_uri = f"{plan.output_path.rstrip('/')}/{relative}.out"
        out_bucket, out_key = split_s3_uri(out_uri)
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=output.body())
        log.write(
            f"{source_uri}: {output.records} record(s) in {len(batches)} request(s), "
            f"{time.perf_counter() - started:.2f}s -> {out_uri}"
        )

    @staticmethod
    def _payload(plan: TransformPlan, batch: list[bytes], source_uri: str, quoted: bool) -> bytes:
        if plan.split == "None":
            return batch[0]
        if plan.input_filter.whole:
            return b"\n".join(batch) + b"\n"
        try:
            return b"\n".join(plan.input_filter.filter_records(batch, None, plain=not quoted)) + b"\n"
        except IndexError as exc:
            raise JobFailed(f"ClientError: InputFilter: {exc} in {source_uri}") from None

    @staticmethod
    def _batches(plan: TransformPlan, records: list[bytes], source_uri: str) -> Iterator[list[bytes]]:
        """Mini-batches: one record each (SingleRecord), or as many whole records as fit the payload limit."""
        limit = plan.max_payload
        if plan.strategy == "SingleRecord":
            for record in records:
                if limit is not None and len(record) + 1 > limit:
                    raise JobFailed(_too_large(source_uri, plan))
                yield [record]
            return
        batch: list[bytes] = []
        size = 0
        for record in records:
            # Measured on the record as read: a filter only makes what is sent smaller.
            length = len(record) + 1
            if limit is not None and length > limit:
                raise JobFailed(_too_large(source_uri, plan))
            if batch and limit is not None and size + length > limit:
                yield batch
                batch, size = [], 0
            batch.append(record)
            size += length
        if batch:
            yield batch


def _too_large(source_uri: str, plan: TransformPlan) -> str:
    return (
        f"ClientError: Too much data for max payload size: a record of {source_uri} is larger than "
        f"MaxPayloadInMB ({plan.max_payload_mb} MB)"
    )


def _manifest(s3: Any, uri: str) -> Iterator[tuple[str, str]]:
    """A ManifestFile: ``[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]``."""
    bucket, key = split_s3_uri(uri)
    try:
        entries = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        prefix = str(entries[0]["prefix"])
        keys = [str(e) for e in entries[1:]]
    except Exception as exc:
        raise JobFailed(
            f'ClientError: the manifest file {uri} is not [{{"prefix": "s3://..."}}, "key", ...]: {exc}'
        ) from None
    if not keys:
        raise JobFailed(f"ClientError: the manifest file {uri} lists no objects")
    for relative in keys:
        yield prefix + relative, relative


class _Log:
    """The job's log file (what SageMaker writes to /aws/sagemaker/TransformJobs); the containers append too."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock, open(self._path, "a") as log:
            log.write(f"{_now().isoformat()} [data-log] {line.rstrip()}\n")


class _Output:
    """One input object's output, assembled record by record (or answer by answer when nothing is joined)."""

    def __init__(self, plan: TransformPlan, source_uri: str) -> None:
        self._plan = plan
        self._source = source_uri
        self._parts: list[bytes] = []
        self.records = 0

    def add(self, batch: list[bytes], answer: bytes, first_line: int) -> None:
        plan = self._plan
        self.records += len(batch)
        if plan.split == "None" or (not plan.processes_records and plan.assemble == "None"):
            self._parts.append(answer)  # concatenated as the containers answered (binary assembly)
            return
        outputs = [answer.rstrip(b"\r\n")] if len(batch) == 1 else answer.rstrip(b"\r\n").splitlines()
        if len(outputs) != len(batch):
            last = first_line + len(batch) - 1
            raise JobFailed(
                f"ClientError: the model answered {len(outputs)} record(s) for the {len(batch)} record(s) of lines "
                f"{first_line}-{last} of {self._source}: with SplitType Line, every input record must have exactly "
                "one output line"
            )
        separator = b"\n" if plan.assemble == "Line" else b""
        if not plan.processes_records:
            self._parts.append(separator.join(outputs) + separator)
            return
        plain = b'"' not in answer and not any(b'"' in r for r in batch)
        try:
            if plan.join_input:  # CSV: the input record's fields, then the output's
                written = plan.output_filter.filter_records(batch, outputs, plain)
            else:
                written = plan.output_filter.filter_records(outputs, None, plain)
        except IndexError as exc:
            raise JobFailed(f"ClientError: OutputFilter: {exc} in the output of {self._source}") from None
        self._parts.append(separator.join(written) + separator)

    def body(self) -> bytes:
        return b"".join(self._parts)


class _RunningContainers:
    """The job's one warm set of the model's containers (in series), serving up to MaxConcurrentTransforms
    requests at once; also what a service stop or StopTransformJob terminates."""

    def __init__(
        self, job: dict[str, Any], plan: TransformPlan, sandbox: Path, log_path: Path, s3: Callable[[], Any]
    ) -> None:
        batch_env = {
            "SAGEMAKER_BATCH": "true",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(plan.max_payload_mb),
            "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD" if plan.strategy == "SingleRecord" else "MULTI_RECORD",
            "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(plan.concurrency),
        }
        workers = []
        for spec in job["containers"]:
            container = copy.deepcopy(spec)
            container["Environment"] = {**(spec.get("Environment") or {}), **plan.environment, **batch_env}
            hostname = str(container["ContainerHostname"])
            workers.append(ContainerWorker(container, sandbox / hostname, log_path, s3))
        single = len(workers) == 1

        def subject(worker: ContainerWorker) -> str:
            return "The primary container" if single else f"The container {worker.hostname}"

        self.variant = Variant("transform", 1.0, workers, "Serial", subject)
        self._stopped = False

    def start(self) -> None:
        """Every container downloads and loads its model at the same time (as the instance's containers start);
        the first that cannot fails the job."""
        workers = self.variant.containers
        with ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="transform-start") as pool:
            started = [pool.submit(w.start, self.variant.subject(w)) for w in workers]
        for future in started:
            failure = future.exception()
            if isinstance(failure, HostingError):
                raise JobFailed(f"ClientError: {str(failure).replace('for this endpoint', 'for this transform job')}")
            if failure is not None:
                raise failure

    def transform(
        self, requests: Iterable[_Request], plan: TransformPlan, job: dict[str, Any]
    ) -> Iterator[tuple[_Request, bytes]]:
        """Each request with its answer, in input order, with up to ``plan.concurrency`` in flight."""

        def call(request: _Request) -> bytes:
            if job.get("stop_requested"):
                raise JobFailed("Stopped")
            try:
                answer = self.variant.invoke(request.body, plan.content_type, plan.accept, None)
            except ContainerStopped:  # StopTransformJob (or a service stop) took the containers away
                raise JobFailed("Stopped") from None
            if not 200 <= answer.status < 300:
                raise JobFailed(_container_failure(answer, request))
            return answer.body

        if plan.concurrency <= 1:
            for request in requests:
                yield request, call(request)
            return
        with ThreadPoolExecutor(max_workers=plan.concurrency, thread_name_prefix="transform") as pool:
            pending: deque[tuple[_Request, Future[bytes]]] = deque()
            try:
                for request in requests:
                    pending.append((request, pool.submit(call, request)))
                    if len(pending) >= 2 * plan.concurrency:
                        first, future = pending.popleft()
                        yield first, future.result()
                while pending:
                    first, future = pending.popleft()
                    yield first, future.result()
            finally:
                for _, future in pending:
                    future.cancel()

    # the JobProcess protocol of LocalJobRunner._processes
    def running(self) -> bool:
        return not self._stopped

    def terminate(self) -> None:
        self.stop()

    def kill(self) -> None:
        self.stop()

    def wait(self, timeout: float | None) -> int:
        return 0

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.variant.stop(drain=1.0)


@dataclass(frozen=True)
class _Request:
    """One invocation: its input records (as read), the body sent, and where the records are in their object."""

    records: list[bytes]
    body: bytes
    first_line: int
    source_uri: str

    @property
    def where(self) -> str:
        last = self.first_line + len(self.records) - 1
        lines = f"line {last}" if last == self.first_line else f"lines {self.first_line}-{last}"
        return f"the request with {lines} of {self.source_uri}"


def _container_failure(answer: Answer, request: _Request) -> str:
    """FailureReason for a request a container refused: SageMaker's words, then the model's own message (which
    SageMaker leaves in CloudWatch; there is none locally) and which input records the request held."""
    if answer.timed_out:
        return f"ClientError: See job logs for more details. {answer.container} did not answer {request.where} in time"
    text = answer.body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("error-message"):
            text = f"{parsed.get('error', 'Error')}: {parsed['error-message']}"
    except ValueError:
        pass
    return (
        f"ClientError: See job logs for more details. {answer.container} answered {answer.status} to "
        f"{request.where}: {text}"
    )


def _arn(kind: str, name: str) -> str:
    return f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def _now() -> datetime:
    return datetime.now(UTC)
