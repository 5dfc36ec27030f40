# mypy: disable-error-code="typeddict-item,attr-defined,arg-type,union-attr,unused-ignore"
# (it subclasses moto interpreter internals, whose typed dicts and untyped clients do not line up)
"""Every change we make to moto's ASL interpreter, in one place.

Pinned to moto 5.2.5: ``apply()`` refuses another version, because each adaptation replaces a piece of
moto's internals. Each adaptation has a test in tests/unit/local/test_moto_adaptations.py that fails
if moto's behaviour changes underneath it (see docs/decisions/0001-local-runtime.md).

1. ``states:startExecution`` (.sync / .sync:2): moto passes AWS's PascalCase parameters straight to
   boto3 and returns camelCase results. We convert both ways as AWS does: ``Output`` is parsed JSON for
   ``.sync:2`` and a string for ``.sync``; dates are epoch milliseconds; a missing ``Name`` gets a UUID
   (moto names every unnamed execution "None"); ``InputDetails`` is there as on AWS.
2. ``sagemaker:create*Job.sync``: unsupported in moto. We call the API, poll ``Describe*Job`` until the
   job ends and return its output, or fail with ``States.TaskFailed`` and the output as JSON cause.
3. ``.sync`` waits wake when something ends: moto polls the child every 0.5 s (three nested tiers would wait
   up to 1.5 s per unit doing nothing, and each poll is a full API call). Here a waiting task describes its
   child, then sleeps until an execution or a SageMaker job ends (or 0.25 s at most) and looks again.
4. Task fault injection (tests, ``mlops run --fail-at``): a registered fault makes a Task state fail
   before it calls its resource, with a chosen error name and cause, exactly as a failing task does:
   a TaskFailed event, then Retry/Catch by that name, else the execution fails with it.
5. Parsed definitions are cached per definition text, in memory and on disk: moto parses the ASL with ANTLR's
   pure-Python runtime (~0.1-0.3 s per state machine) when a state machine is created and for every execution;
   a service start parsed 14 definitions (about 2 s). The parsed program is pickled once per definition (and
   moto, Python and this module's version) into a private cache folder, and every execution gets its own
   unpickled copy (~1 ms), so nothing a run changes on a component (Map keeps iteration state there) reaches
   another run. moto's static analysers, which need ANTLR's tree, parse for themselves once per process.
6. Requests to moto are served one at a time: moto's backends change their dicts in place without a
   lock, so a DynamoDB Query from the CLI while an execution's UpdateItem adds or removes attributes
   fails with "dictionary changed size during iteration" (AWS's services are atomic per item; S3 and
   the model registry list dicts the same way). Every write in the runtime goes through a request, so
   serialising requests is enough; each takes milliseconds and none waits on another thread.
7. JSONata and workflow variables: moto's JSONata evaluator is an empty hook (every ``{% %}`` expression and
   every ``$var`` read, even in a JSONPath state, fails with ``States.Runtime``), and it splices values into
   the expression as text (a string with a quote breaks it). We evaluate with jsonata-python, values passed as
   bindings (``$states`` and the variables in scope), with Step Functions' functions (``$partition``,
   ``$range``, ``$hash``, ``$random``, ``$uuid``, ``$parse``; ``$eval`` refused). An expression that fails or
   returns nothing fails the state with ``States.QueryEvaluationError``, naming the field as AWS does
   (``Arguments/Input/name``), which a Task's Catch sees as such (moto's integrations re-labelled it).
8. Execution results serialised as AWS does: ``$$.Execution.StartTime`` is an ISO-8601 string (moto puts a
   datetime there, so ``$$`` or ``$states.context`` as a value broke the execution's output), and the output
   is JSON text even when it is a string (moto returned ``hi`` where AWS returns ``"hi"``).
9. A Lambda task given a bare function ARN as its resource reports Lambda's own errors (an unknown function)
   as the ``lambda:invoke`` integration does, ``Lambda.ResourceNotFoundException`` with Lambda's message,
   where moto called them ``Exception`` (nothing could catch them by name).
10. The 256 KiB limit (``States.DataLimitExceeded``) is measured as AWS documents it, on the value as compact
    JSON text in UTF-8, up to and including 262,144 bytes. moto measured a string without its quotes and
    anything else with ``", "`` and ``": "`` separators and ``\\u`` escapes, refused exactly 262,144 bytes, and
    for a bare-ARN Lambda task measured the whole Invoke response instead of the payload (its result).
11. A ``Wait`` that would end after the execution's one-year maximum duration (a Standard workflow's quota, and
    the documented maximum wait) times the execution out at once, as AWS times it out when the year is up,
    instead of waiting, or failing with a Python ``OverflowError`` as cause for a timestamp centuries ahead.
12. The optimized ``lambda:invoke`` and ``dynamodb:*`` integrations return ``SdkHttpMetadata`` (the response's
    HTTP headers and status) and ``SdkResponseMetadata`` (its request ID) with the API's output, as AWS does;
    moto returned the output alone. ``aws-sdk:*`` integrations return the output alone, on AWS as in moto.
14. The interpreter's clients are shared: moto builds a new boto3 client for every task call and every ``.sync``
    poll (tens of milliseconds each, a sixth of its time in a run); one per service, region and session here.
13. S3 "Object Created" reaches the local event bus: moto sends a bucket's EventBridge notifications to its own
    events backend, which cannot invoke our in-process functions. Hooked where moto's S3 model emits the
    notification, so every writer is covered (HTTP clients of the local service, jobs and functions in-process),
    for buckets with EventBridge notifications on, as on AWS; one event per multipart upload (moto sent two).
15. A DynamoDB Query on a table's key reads that partition: moto listed and sorted every item of the table
    for each Query, then kept the partition's, so following a run cost more with every run ever recorded.
    The results (the partition's items, in sort-key order) are the same; GSI queries are left as they are.
16. The local service finds a request's backend without listing moto's package folder: moto's dispatcher did
    an ``os.listdir`` and an ``isdir`` per folder (~150) for every HTTP request.
17. DynamoDB item responses (GetItem, Query, Scan, Put/Update/DeleteItem, BatchGetItem, TransactGetItems) are
    written as JSON directly: moto walks botocore's output shape for every attribute of every item (the most
    expensive part of serving a DynamoDB request, and the interpreter's DynamoDB tasks go through it too).
    moto has already made the result plain (binary values as bytes, base64-encoded here as its serializer
    does); members outside the output shape are left out as moto's serializer leaves them out; a result with
    anything else (a date, a None, consumed capacity) goes to moto's serializer. A test compares the bodies.
18. ``UpdateModelPackage`` changes what it is given and nothing else, as on AWS: moto set every field the call
    left out to None (an approval cleared the package's CustomerMetadataProperties, which carry its run id; a
    metadata update cleared its approval status). And a package created with, or changed to, another approval
    status sends "SageMaker Model Package State Change" to the local event bus, as SageMaker sends it to
    EventBridge (moto sends none): an approval starts the deployment flow locally as on AWS.
19. ``aws-sdk:*`` task results carry timestamps as ISO-8601 strings in UTC with milliseconds
    ("2013-08-23T01:02:15.422Z"), as Step Functions returns them; moto left Python datetimes in the result,
    which a JSONata state cannot read (``States.QueryEvaluationError``: unsupported result type).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import functools
import hashlib
import json
import math
import os
import pickle
import random
import sys
import threading
import uuid
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import jsonata
import moto
from botocore.exceptions import ClientError
from jsonata.utils import Utils as JsonataUtils
from moto import backends as moto_backends
from moto import settings as moto_settings
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.models import botocore_stubber
from moto.core.serialize import XFormedAttributePicker
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult
from moto.sagemaker.models import SageMakerModelBackend
from moto.stepfunctions.parser.api import (
    EvaluationFailedEventDetails,
    ExecutionStatus,
    HistoryEventType,
    LambdaFunctionFailedEventDetails,
    TaskFailedEventDetails,
)
from moto.stepfunctions.parser.asl.component.common.assign.assign_decl import AssignDecl
from moto.stepfunctions.parser.asl.component.common.assign.assign_template_binding import AssignTemplateBinding
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.jsonata.jsonata_template_binding import JSONataTemplateBinding
from moto.stepfunctions.parser.asl.component.common.outputdecl import Output
from moto.stepfunctions.parser.asl.component.common.parargs import (
    ArgumentsJSONataTemplateValueObject,
    ArgumentsStringJSONata,
)
from moto.stepfunctions.parser.asl.component.common.query_language import QueryLanguageMode
from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
    StringJSONata,
    StringVariableSample,
)
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison import ConditionStringJSONata
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_map.items.items import ItemsJSONata
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda as state_task_lambda_module
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service as state_task_service_module,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
    state_task_service_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb import (
    StateTaskServiceDynamoDB,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
from moto.stepfunctions.parser.asl.component.state.fail.cause_decl import Cause as FailCause
from moto.stepfunctions.parser.asl.component.state.fail.error_decl import Error as FailError
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser
from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from sfn_mlops_local.model_cache import user_cache_root, write_whole

PINNED_MOTO_VERSION = "5.2.5"
SYNC_POLL_SECONDS = 0.0  # the resolvers themselves wait for an ending (adaptation 3)
# A waiting .sync task looks again at least this often, even if no ending was announced (an aborted child).
SYNC_FALLBACK_SECONDS = 0.25

_original_factory = state_task_service_factory.state_task_service_for
_original_list_of_moto_modules = moto_backends.list_of_moto_modules
_original_dynamodb_execute_result = DynamoResult.execute_result
_original_update_model_package = SageMakerModelBackend.update_model_package
_original_create_model_package = SageMakerModelBackend.create_model_package
_UPDATE_MODEL_PACKAGE_ARGS = (
    "model_approval_status",
    "approval_description",
    "customer_metadata_properties",
    "customer_metadata_properties_to_remove",
    "additional_inference_specifications_to_add",
)
ORIGINAL_SYNC_POLL_SECONDS = state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK
_applied = False


def to_epoch_millis(value: Any) -> Any:
    """AWS returns dates inside task results as epoch milliseconds; datetimes do not serialise."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: to_epoch_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_epoch_millis(v) for v in value]
    return value


def _task_failed(env: Any, resource: str, resource_type: str, cause: str) -> FailureEventException:
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=resource,
                    resourceType=resource_type,
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=cause,
                )
            ),
        )
    )


# --------------------------------------------------------------------------- 1. nested executions
_SFN_REQUEST_KEYS = {
    "StateMachineArn": "stateMachineArn",
    "Input": "input",
    "Name": "name",
    "TraceHeader": "traceHeader",
}
_SFN_DESCRIBE_KEYS = {
    "executionArn": "ExecutionArn",
    "stateMachineArn": "StateMachineArn",
    "name": "Name",
    "status": "Status",
    "startDate": "StartDate",
    "stopDate": "StopDate",
    "input": "Input",
    "output": "Output",
    "inputDetails": "InputDetails",
    "outputDetails": "OutputDetails",
    "error": "Error",
    "cause": "Cause",
    "traceHeader": "TraceHeader",
}


def describe_execution_as_aws(described: dict[str, Any], parse_json: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, aws_key in _SFN_DESCRIBE_KEYS.items():
        if key in described and described[key] is not None:
            result[aws_key] = described[key]
    if result.get("Output") == "":
        del result["Output"]  # moto gives an execution that failed on an uncaught error "" as output; AWS none
    if parse_json:
        for key in ("Input", "Output"):
            if isinstance(result.get(key), str):
                result[key] = json.loads(result[key])
    if "Input" in result:
        result.setdefault("InputDetails", {"included": True})  # moto's DescribeExecution has none; AWS's has
    for details in ("InputDetails", "OutputDetails"):
        if isinstance(result.get(details), dict):
            result[details] = {"Included": result[details].get("included", True)}
    return to_epoch_millis(result)


class AwsCasedStateTaskServiceSfn(StateTaskServiceSfn):
    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        if self._get_boto_service_action() != "start_execution":
            return super()._eval_service_task(env, resource_runtime_part, normalised_parameters, state_credentials)
        request = {_SFN_REQUEST_KEYS.get(k, k): v for k, v in normalised_parameters.items()}
        request.setdefault("name", str(uuid.uuid4()))
        client = boto_client_for(
            region=resource_runtime_part.region, service="stepfunctions", state_credentials=state_credentials
        )
        response = client.start_execution(**request)
        env.stack.append(
            {"ExecutionArn": response["executionArn"], "StartDate": to_epoch_millis(response["startDate"])}
        )

    def _resolver(
        self, env: Any, resource_runtime_part: Any, state_credentials: Any, parse_json: bool
    ) -> Callable[[], Any]:
        client = boto_client_for(
            region=resource_runtime_part.region, service="stepfunctions", state_credentials=state_credentials
        )
        execution_arn = env.stack.pop()["ExecutionArn"]

        def resolve() -> Any:
            seen = work_generation()
            described = client.describe_execution(executionArn=execution_arn)
            if described["status"] in ("RUNNING", "PENDING_REDRIVE"):
                wait_for_work_to_end(seen)
                return None
            result = describe_execution_as_aws(described, parse_json)
            if described["status"] == "SUCCEEDED":
                return result
            raise _task_failed(env, self._get_sfn_resource(), self._get_sfn_resource_type(), to_json_str(result))

        return resolve

    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        return self._resolver(env, resource_runtime_part, state_credentials, parse_json=False)

    def _build_sync2_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        return self._resolver(env, resource_runtime_part, state_credentials, parse_json=True)


# --------------------------------------------------------------------------- 2. SageMaker jobs
_SAGEMAKER_JOBS = {
    "createprocessingjob": ("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "createtrainingjob": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "createtransformjob": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}


@functools.cache
def _sagemaker_model() -> Any:
    """Loading SageMaker's service model takes ~0.1-0.3 s: once per process, not once per job task or kind."""
    return botocore.session.get_session().get_service_model("sagemaker")


@functools.lru_cache(maxsize=8)
def _sagemaker_request_members(action: str) -> set[str]:
    model = _sagemaker_model()
    operation = next(name for name in model.operation_names if name.lower() == action)
    return set(model.operation_model(operation).input_shape.members)


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    def __init__(self) -> None:
        # WaitForTaskToken is listed only because moto's callback base class assumes a callback endpoint.
        super().__init__(supported_integration_patterns={ResourceCondition.Sync, ResourceCondition.WaitForTaskToken})

    def _get_supported_parameters(self) -> set[str] | None:
        # Every member of the API's request shape, as AWS accepts them all (moto drops the rest).
        action = self.resource.api_action.lower()
        if action not in _SAGEMAKER_JOBS:
            return None
        return _sagemaker_request_members(action)

    def _validate_service_integration_is_supported(self) -> None:
        if self.resource.api_action.lower() not in _SAGEMAKER_JOBS:
            raise ValueError(f"sagemaker:{self.resource.api_action} is not supported by the local runtime")

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            error = "SageMaker.AmazonSageMakerException"
            if ex.response["Error"]["Code"] == "ResourceLimitExceeded":
                error = "SageMaker.ResourceLimitExceededException"
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=error,
                        cause=ex.response["Error"].get("Message", str(ex)),
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        failure: FailureEvent = super()._from_error(env=env, ex=ex)
        return failure

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        client = boto_client_for(
            region=resource_runtime_part.region, service="sagemaker", state_credentials=state_credentials
        )
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(response)

    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        describe, name_key, status_key = _SAGEMAKER_JOBS[self.resource.api_action.lower()]
        client = boto_client_for(
            region=resource_runtime_part.region, service="sagemaker", state_credentials=state_credentials
        )
        env.stack.pop()  # the Create*Job response: AWS's .sync result is the Describe*Job output
        job_name = normalised_parameters[name_key]

        def resolve() -> Any:
            seen = work_generation()
            described = getattr(client, describe)(**{name_key: job_name})
            described.pop("ResponseMetadata", None)
            status = described[status_key]
            if status in ("InProgress", "Stopping"):
                wait_for_work_to_end(seen)
                return None
            result = to_epoch_millis(described)
            if status == "Completed":
                return result
            raise _task_failed(env, self._get_sfn_resource(), self._get_sfn_resource_type(), to_json_str(result))

        return resolve


# --------------------------------------------------------------------------- 4. Task fault injection
@dataclass
class TaskFault:
    state_machine_name: str
    state_name: str
    error: str
    cause: str
    remaining: int


_faults: list[TaskFault] = []
_faults_lock = threading.Lock()
_original_evaluate_with_timeout = ExecutionState._evaluate_with_timeout


def inject_task_fault(state_machine_name: str, state_name: str, error: str, cause: str, times: int = 1) -> None:
    """Make the next ``times`` evaluations of that Task state fail (retries count) with ``error``."""
    if error.startswith("States."):
        raise ValueError(f"a task cannot raise {error!r}: names starting with 'States.' are Step Functions' own")
    with _faults_lock:
        _faults.append(TaskFault(state_machine_name, state_name, error, cause, times))


def clear_task_faults() -> None:
    with _faults_lock:
        _faults.clear()


def pending_task_faults() -> list[TaskFault]:
    """Faults not yet reached (a test that expects each to fire checks this is empty)."""
    with _faults_lock:
        return [f for f in _faults if f.remaining > 0]


def _take_fault(state_machine_name: str, state_name: str) -> TaskFault | None:
    with _faults_lock:
        for fault in _faults:
            if fault.remaining > 0 and (fault.state_machine_name, fault.state_name) == (state_machine_name, state_name):
                fault.remaining -= 1
                return fault
    return None


class InjectedTaskFault(FailureEventException):
    """Raised instead of calling a Task's resource; every task kind reports it as the failure it carries."""


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def _passing_injected_faults(original: Callable[..., FailureEvent]) -> Callable[..., FailureEvent]:
    """Task kinds translate their own errors in ``_from_error``; an injected fault is already translated."""

    @functools.wraps(original)
    def _from_error(self: Any, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, (InjectedTaskFault, EvaluationFailure)):
            return ex.failure_event
        return original(self, env, ex)

    return _from_error


def _evaluate_with_faults(self: Any, env: Any) -> None:
    if isinstance(self, StateTask):
        machine = env.states.context_object.context_object_data["StateMachine"]["Name"]
        fault = _take_fault(machine, self.name)
        if fault is not None:
            raise InjectedTaskFault(
                FailureEvent(
                    env=env,
                    error_name=CustomErrorName(fault.error),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(error=fault.error, cause=fault.cause)
                    ),
                )
            )
    _original_evaluate_with_timeout(self, env)


# --------------------------------------------------------------------------- 5. parse once per definition
_original_parse = AmazonStateLanguageParser.parse
ASL_CACHE_VARIABLE = "MLOPS_ASL_CACHE"  # a folder for the parsed-definition cache, or "off"
_parsed: dict[str, bytes | None] = {}  # cache key -> pickled program (None: it does not pickle)
_parse_counts = {"parsed": 0, "from_disk": 0}


@functools.cache
def _code_fingerprint() -> str:
    """What a pickled program depends on: moto's classes, these adaptations' classes, and the Python."""
    source = Path(__file__).read_bytes()
    return hashlib.sha256(b"|".join([moto.__version__.encode(), sys.version.encode(), source])).hexdigest()


def asl_cache_dir() -> Path | None:
    configured = os.environ.get(ASL_CACHE_VARIABLE)
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    return user_cache_root() / "asl-programs"


def _cache_key(definition: str) -> str:
    return hashlib.sha256(f"{_code_fingerprint()}|{definition}".encode()).hexdigest()[:40]


@functools.lru_cache(maxsize=64)
def _parse_tree(definition: str) -> Any:
    """ANTLR's parse tree, for moto's static analysers (read-only visitors): parsed at most once per process."""
    return _original_parse(definition)[1]


def _private_folder(folder: Path) -> Path | None:
    """``folder`` (created if missing) when only this user can write it, else None: a pickle runs code when loaded,
    so a folder someone else can write (a shared /tmp path in MLOPS_ASL_CACHE) turns the disk cache off."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        status = folder.stat()
    except OSError:
        return None
    return folder if status.st_uid == os.getuid() and not status.st_mode & 0o022 else None


def _read_cached(path: Path) -> tuple[bytes, Any] | None:
    """A cache file's pickled program and that program, loaded once; a file that does not load (cut short by a
    crash, written by another version) is removed, and the definition is parsed again."""
    try:
        entry = path.read_bytes()
    except OSError:
        return None
    try:
        program = pickle.loads(entry)  # written by this module, in a folder only this user can write
    except Exception:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    _parse_counts["from_disk"] += 1
    return entry, program


def _parsed_entry(definition: str) -> tuple[bytes | None, Any]:
    """The pickled program of ``definition`` (from memory, the cache folder, or a parse), and a program that
    nobody else has when this call made one (parsed, or loaded from the folder). No bytes when the program cannot
    be pickled (it is then parsed per use). A definition that does not parse raises as moto's parser does, and
    nothing is cached for it."""
    key = _cache_key(definition)
    if key in _parsed:
        return _parsed[key], None
    folder = asl_cache_dir()
    private = _private_folder(folder) if folder else None
    cached = private / f"{key}.pickle" if private else None
    found = _read_cached(cached) if cached else None
    if found is not None:
        entry, program = found
    else:
        program, _tree = _original_parse(definition)
        _parse_counts["parsed"] += 1
        try:
            entry = pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a component moto adds later may not pickle: parse per use then
            _parsed[key] = None
            return None, program
        if cached is not None:
            write_whole(cached, entry)
    _parsed[key] = entry
    return entry, program


def _parse(definition: str) -> Any:
    entry, made_now = _parsed_entry(definition)
    if made_now is not None:  # this call's own program: nobody else has it
        return made_now, None
    if entry is None:
        return _original_parse(definition)
    program = pickle.loads(entry)  # written by this module, in a folder only this user can write
    # No parse tree: the only readers of it are moto's static analysers, which _analyse gives their own.
    return program, None


def _analyse(self: Any, definition: str) -> None:
    self.visit(_parse_tree(definition))


# --------------------------------------------------------------------------- 6. one moto request at a time
_original_process_request = BotocoreStubber.process_request
_moto_requests = threading.RLock()  # re-entrant: a backend may call another service in the same thread


def moto_requests_lock() -> threading.RLock:
    """The lock every request to moto's backends holds: the local service's HTTP endpoint takes it too."""
    return _moto_requests


def _process_request_serially(self: Any, request: Any) -> Any:
    with _moto_requests:
        return _original_process_request(self, request)


# --------------------------------------------------------------------------- 7. JSONata and variables
class _Undefined:
    """JSONata's ``undefined`` (no value at all), which jsonata-python reports as ``None`` like ``null``."""


UNDEFINED = _Undefined()
_HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _given(value: Any) -> bool:
    return value is not None and value is not JsonataUtils.NULL_VALUE


def _partition(array: Any = None, size: Any = None) -> Any:
    # AWS rounds a size towards zero; a zero size or an empty array is undefined (the field then fails)
    if not isinstance(array, list) or not array or not _given(size) or int(size) <= 0:
        return None
    size = int(size)
    return [list(array[i : i + size]) for i in range(0, len(array), size)]


def _range(start: Any = None, end: Any = None, step: Any = None) -> Any:
    if not (_given(start) and _given(end) and _given(step)) or int(step) == 0:
        return None
    first, last, by = int(start), int(end), int(step)
    if (last - first) * by < 0:
        return None
    values = list(range(first, last + (1 if by > 0 else -1), by))
    return values[0] if len(values) == 1 else values  # a JSONata sequence of one is the value itself


def _hash(value: Any = None, algorithm: Any = None) -> Any:
    if not _given(value) or not _given(algorithm):
        return None
    if algorithm not in _HASH_ALGORITHMS:
        raise ValueError(f"$hash: unsupported algorithm '{algorithm}'; use one of {', '.join(_HASH_ALGORITHMS)}")
    if not isinstance(value, str):
        raise ValueError("$hash: the value to hash must be a string")
    return hashlib.new(_HASH_ALGORITHMS[algorithm], value.encode()).hexdigest()


def _random(seed: Any = None) -> float:
    return random.Random(int(seed)).random() if _given(seed) else random.random()


def _parse_json(text: Any = None) -> Any:
    if not isinstance(text, str):
        return None
    return json.loads(text)


def _no_eval(*_: Any) -> Any:
    raise ValueError("$eval is not available in Step Functions: use $parse")


# The functions Step Functions adds to JSONata (moto declares stubs for $hash and $uuid in JSONata text).
AWS_JSONATA_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "partition": _partition,
    "range": _range,
    "hash": _hash,
    "random": _random,
    "uuid": lambda: str(uuid.uuid4()),
    "parse": _parse_json,
    "eval": _no_eval,
}


def _plain(value: Any) -> Any:
    """jsonata-python's result as JSON values: plain lists, None for null, whole numbers as integers (AWS's
    numbers are JavaScript's: 3/1 is 3, not 3.0)."""
    if value is JsonataUtils.NULL_VALUE:
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}  # inside a value None is null (JSONata drops undefined)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)


@functools.lru_cache(maxsize=2048)
def _parsed_jsonata(expression: str) -> Any:
    """The expression's syntax tree, parsed once (parsing is most of an evaluation's cost; evaluating does not
    change the tree). Raises the parse error, which is not cached."""
    return jsonata.Jsonata(expression).ast


def _jsonata_query(expression: str) -> jsonata.Jsonata:
    """A new evaluator for each evaluation (the library keeps per-evaluation state on it) over the cached tree:
    what ``Jsonata.__init__`` does, without parsing the text again."""
    query = jsonata.Jsonata.__new__(jsonata.Jsonata)
    query.regex_engine = jsonata.Jsonata.__init__.__defaults__[0]
    query.timeout = query.stack = None
    query.parser = jsonata.Jsonata.get_parser()
    query.ast = _parsed_jsonata(expression)
    query.errors = None
    query.environment = query.create_frame(jsonata.Jsonata.static_frame)
    query.timestamp = jsonata.timebox.Timebox.current_milli_time()
    query.input = None
    query.validate_input = True
    query.output_convert_nulls = True
    jsonata.Jsonata.CURRENT.jsonata = query
    return query


def evaluate_jsonata(expression: str, bindings: dict[str, Any]) -> Any:
    """Evaluate with jsonata-python: no context item (AWS's expressions read ``$states`` and variables), AWS's
    functions bound. Returns ``UNDEFINED`` for no value; raises what the expression raises."""
    query = _jsonata_query(expression)
    query.set_output_convert_nulls(False)  # tell null from undefined
    for name, function in AWS_JSONATA_FUNCTIONS.items():
        query.register_lambda(name, function)
    # a variable holding null must not read as undefined (nested nulls jsonata-python reads as null itself)
    result = query.evaluate(None, {k: JsonataUtils.NULL_VALUE if v is None else v for k, v in bindings.items()})
    return UNDEFINED if result is None else _plain(result)


def _variables(env: Any) -> dict[str, Any]:
    store = env.variable_store
    return {**store._outer_scope, **store._inner_scope}


class EvaluationFailure(FailureEventException):
    """A field of the state failed to evaluate: the state's failure as such, which a Task's integration must not
    re-translate as its service's error (moto's DynamoDB integration reported it as its own exception)."""


_field_path = threading.local()


def _field(env: Any) -> str:
    """The field being evaluated as AWS names it (``Arguments/Input/name``), else moto's name for it."""
    segments = getattr(_field_path, "segments", None)
    return "/".join(segments) if segments else str(env.next_field_name)


def _naming_field(original: Callable[..., None], segment: Callable[[Any], str]) -> Callable[..., None]:
    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        segments = _field_path.__dict__.setdefault("segments", [])
        segments.append(segment(self))
        try:
            original(self, env)
        finally:
            segments.pop()

    return _eval_body


def _query_evaluation_error(env: Any, cause: str) -> FailureEventException:
    error = StatesErrorNameType.StatesQueryEvaluationError.to_name()
    failure = EvaluationFailure(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesQueryEvaluationError),
            event_type=HistoryEventType.EvaluationFailed,
            event_details=EventDetails(
                evaluationFailedEventDetails=EvaluationFailedEventDetails(
                    error=error, cause=cause, location=_field(env)
                )
            ),
        )
    )
    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType.EvaluationFailed,
        event_details=EventDetails(evaluationFailedEventDetails=failure.get_evaluation_failed_event_details()),
    )
    return failure


def _evaluate_in_state(env: Any, expression: str, bindings: dict[str, Any]) -> Any:
    field = _field(env)
    try:
        value = evaluate_jsonata(expression, bindings)
    except TypeError as unsupported:
        raise _query_evaluation_error(
            env,
            f"The JSONata expression '{expression}' specified for the field '{field}' returned an unsupported "
            f"result type ({unsupported}).",
        ) from None
    except Exception as failed:  # a JSONata error (JException), or one of AWS's functions refusing its arguments
        message = getattr(failed, "message", None) or str(failed)
        raise _query_evaluation_error(
            env,
            f"The JSONata expression '{expression}' specified for the field '{field}' threw an error during "
            f"evaluation: {message}",
        ) from None
    if value is UNDEFINED:
        raise _query_evaluation_error(
            env,
            f"The JSONata expression '{expression}' specified for the field '{field}' returned nothing (undefined).",
        )
    return value


def _eval_string_jsonata(self: Any, env: Any) -> None:
    env.stack.append(_evaluate_in_state(env, self.expression, {**_variables(env), "states": env.states._states_data}))


def _eval_variable_sample(self: Any, env: Any) -> None:
    """A variable read (``$name.path``): in a JSONata state an expression; in a JSONPath state a path."""
    if self.query_language_mode == QueryLanguageMode.JSONata:
        env.stack.append(
            _evaluate_in_state(env, self.expression, {**_variables(env), "states": env.states._states_data})
        )
        return
    name = self.expression[1:].split(".", 1)[0].split("[", 1)[0]
    variables = _variables(env)
    if name not in variables:
        raise _states_runtime(env, f"The variable '${name}' specified for the field '{_field(env)}' is not defined.")
    try:
        value = evaluate_jsonata(self.expression, variables)
    except Exception as failed:
        raise _states_runtime(
            env, f"Invalid path '{self.expression}': {getattr(failed, 'message', None) or failed}"
        ) from None
    if value is UNDEFINED:
        raise _states_runtime(
            env,
            f"The JSONPath '{self.expression}' specified for the field '{_field(env)}' could not be found in "
            f"the variable '${name}'.",
        )
    env.stack.append(value)


def _states_runtime(env: Any, cause: str) -> FailureEventException:
    return EvaluationFailure(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesRuntime),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    error=StatesErrorNameType.StatesRuntime.to_name(), cause=cause
                )
            ),
        )
    )


_FIELD_SEGMENTS: dict[type, Callable[[Any], str]] = {
    Output: lambda _: "Output",
    ArgumentsJSONataTemplateValueObject: lambda _: "Arguments",
    ArgumentsStringJSONata: lambda _: "Arguments",
    AssignDecl: lambda _: "Assign",
    AssignTemplateBinding: lambda binding: binding.identifier,
    JSONataTemplateBinding: lambda binding: binding.identifier,
    ConditionStringJSONata: lambda _: "Condition",
    ItemsJSONata: lambda _: "Items",
    FailError: lambda _: "Error",
    FailCause: lambda _: "Cause",
}


# --------------------------------------------------------------------------- 8. results serialised as AWS does
_original_evaluation_environment = ExecutionWorker._get_evaluation_environment
_original_reflect_status = BaseExecutionWorkerCommunication._reflect_execution_status


def aws_timestamp(value: datetime.datetime) -> str:
    """AWS's context timestamps: UTC, milliseconds, ``Z`` (``2019-03-26T20:14:13.192Z``)."""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _evaluation_environment(self: Any) -> Any:
    env = _original_evaluation_environment(self)
    _root_environments[env.states.context_object.context_object_data["Execution"]["Id"]] = env  # for 11
    execution = env.states.context_object.context_object_data["Execution"]
    if isinstance(execution.get("StartTime"), datetime.datetime):
        execution["StartTime"] = aws_timestamp(execution["StartTime"])
    return env


def _reflect_status_as_json(self: Any) -> None:
    _original_reflect_status(self)
    execution = self.execution
    if execution.exec_status == ExecutionStatus.SUCCEEDED:
        # moto's DescribeExecution passes a str output through as is and json.dumps anything else
        execution.output = to_json_str(execution.output, separators=(",", ":"))


# --------------------------------------------------------------------------- 9. Lambda errors of a bare ARN task
def _lambda_task_from_error(original: Callable[..., FailureEvent]) -> Callable[..., FailureEvent]:
    @functools.wraps(original)
    def _from_error(self: Any, env: Any, ex: Exception) -> FailureEvent:
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(error=error, cause=cause)
            ),
        )

    return _from_error


# --------------------------------------------------------------------------- 10. the 256 KiB limit
MAX_PAYLOAD_BYTES = 262_144
_SIZE_QUOTA_MODULES = (state_module, state_task_service_module, state_task_lambda_module)


def within_size_quota(value: Any) -> bool:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8")) <= MAX_PAYLOAD_BYTES


_original_lambda_size_check = StateTaskLambda._verify_size_quota


def _lambda_result_size_check(self: Any, env: Any, value: Any) -> None:
    # a bare-ARN Lambda task's result is the payload: moto measured the whole Invoke response around it
    _original_lambda_size_check(self, env, value.get("Payload") if isinstance(value, dict) else value)


# --------------------------------------------------------------------------- 11. no Wait beyond the execution's year
MAX_EXECUTION_DURATION = datetime.timedelta(days=365)
# each execution's outermost environment: a Wait inside a Map or Parallel branch must time out the execution
_root_environments: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _started(env: Any) -> datetime.datetime:
    started = env.states.context_object.context_object_data["Execution"]["StartTime"]
    if isinstance(started, str):
        started = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
    return started if started.tzinfo else started.replace(tzinfo=datetime.UTC)


def _wait_within_the_year(self: Any, env: Any) -> None:
    seconds = self._get_wait_seconds(env=env)
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=max(seconds, 0))
    if ends - _started(env) > MAX_EXECUTION_DURATION:
        execution_id = env.states.context_object.context_object_data["Execution"]["Id"]
        # what the execution comes to on AWS, a year after it started (the root's frames time out with it)
        _root_environments.get(execution_id, env).set_timed_out()
        return
    self._wait_interval(env=env, wait_seconds=seconds)


# --------------------------------------------------------------------------- 12. SDK metadata of optimized results
def sdk_metadata(body: bytes, content_type: str, extra_headers: dict[str, str]) -> dict[str, Any]:
    """The fields AWS adds to an optimized integration's result: the response's headers and its request ID."""
    request_id = str(uuid.uuid4())
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(len(body)),
        "Content-Type": content_type,
        "Date": email.utils.formatdate(usegmt=True),
        "x-amzn-RequestId": request_id,
        **extra_headers,
    }
    return {
        "SdkHttpMetadata": {
            "AllHttpHeaders": {name: [value] for name, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
    }


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


class LambdaWithSdkMetadata(StateTaskServiceLambda):
    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        super()._eval_service_task(env, resource_runtime_part, normalised_parameters, state_credentials)
        result = env.stack[-1]
        if isinstance(result, dict) and self.resource.api_action.lower() == "invoke":
            version = str(result.get("ExecutedVersion", "$LATEST"))
            trace = f"root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};sampled=0"
            extra = {"X-Amz-Executed-Version": version, "x-amzn-Remapped-Content-Length": "0", "X-Amzn-Trace-Id": trace}
            result.update(sdk_metadata(_compact(result.get("Payload")), "application/json", extra))


class DynamoDBWithSdkMetadata(StateTaskServiceDynamoDB):
    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # type: ignore[no-untyped-def]
        super()._eval_service_task(env, resource_runtime_part, normalised_parameters, state_credentials)
        result = env.stack[-1]
        if isinstance(result, dict):
            body = _compact(result)
            extra = {"Server": "Server", "x-amz-crc32": str(zlib.crc32(body))}
            result.update(sdk_metadata(body, "application/x-amz-json-1.0", extra))


# --------------------------------------------------------------------------- 3. waits that wake on an ending
_ended = threading.Condition()
_ended_generation = 0


def notify_work_ended() -> None:
    """An execution or a SageMaker job ended: every .sync task waiting on one looks now."""
    global _ended_generation
    with _ended:
        _ended_generation += 1
        _ended.notify_all()


def work_generation() -> int:
    return _ended_generation


def wait_for_work_to_end(since: int, timeout: float = SYNC_FALLBACK_SECONDS) -> None:
    """Wait until something ended after ``since`` was read (so an ending in between is never missed)."""
    with _ended:
        _ended.wait_for(lambda: _ended_generation != since, timeout)


_original_terminated = BaseExecutionWorkerCommunication.terminated


def _terminated_and_announced(self: Any) -> None:
    try:
        _original_terminated(self)
    finally:
        notify_work_ended()


# --------------------------------------------------------------------------- 14. one client per service
_original_boto_client_for = boto_client_module.boto_client_for
_interpreter_clients: dict[tuple[Any, ...], Any] = {}
_interpreter_clients_lock = threading.Lock()


def _shared_boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto's interpreter builds a new boto3 client for every task call and every .sync poll (tens of ms each,
    a sixth of the interpreter's time). Clients are thread-safe: one per service and region, per default
    session (a runtime that starts again registers its hooks on a new one, and gets new clients)."""
    # moto builds the same client whatever the state's credentials (it signs with fixed keys): keyed anyway,
    # so that a version of moto that starts using them still gets one client per role.
    role = getattr(state_credentials, "role_arn", None)
    key = (region, service, role, boto3.DEFAULT_SESSION, botocore_stubber.enabled)
    with _interpreter_clients_lock:
        client = _interpreter_clients.get(key)
        if client is None:
            client = _interpreter_clients[key] = _original_boto_client_for(region, service, state_credentials)
    return client


def _modules_using_boto_client_for() -> list[Any]:
    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is not None
    ] + [sys.modules[__name__]]


# --------------------------------------------------------------------------- 15. a Query reads one partition
_original_all_items = Table.all_items
_query_partition = threading.local()


def _partition_items(self: Any) -> list[Any]:
    """Within a table (not index) Query: only the queried partition's items. ``Table.query`` itself keeps
    those with the hash key and sorts them by range key, as it did with the whole table's items."""
    hash_key = getattr(_query_partition, "hash_key", None)
    if hash_key is None:
        return _original_all_items(self)
    partition = self.items.get(hash_key)  # .get: ``items`` is a defaultdict, and a read must not add to it
    if partition is None:
        return []
    return list(partition.values()) if self.range_key_attr else [partition]


def _query_one_partition(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        _query_partition.hash_key = hash_key
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            _query_partition.hash_key = None

    return query


# --------------------------------------------------------------------------- 16. backends found without listdir
_moto_modules: frozenset[str] | None = None


def _cached_moto_modules() -> frozenset[str]:
    """The folder names of moto's services, listed once (moto lists its package folder for every request)."""
    global _moto_modules
    if _moto_modules is None:
        _moto_modules = frozenset(_original_list_of_moto_modules())
    return _moto_modules


# --------------------------------------------------------------------------- 17. DynamoDB items as plain JSON
PLAIN_ITEM_OPERATIONS = frozenset(
    {"GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "TransactGetItems"}
)

PLAIN_ITEM_MEMBERS = frozenset(
    {"Item", "Items", "Attributes", "Count", "ScannedCount", "LastEvaluatedKey", "Responses", "UnprocessedKeys"}
)


class _NotPlain(Exception):
    """A value moto's shape-driven serializer must handle (a date, a None member)."""


def _plain_json(value: Any) -> Any:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, dict):
        return {key: _plain_json(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_plain_json(member) for member in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("utf-8")
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise _NotPlain(type(value).__name__)


@functools.cache
def _plain_items_serializer(serializer_class: type) -> type:
    class PlainItemsSerializer(serializer_class):  # type: ignore[misc, valid-type]
        def _serialize_result(self, resp: Any, result: Any) -> Any:
            shape = self.operation_model.output_shape
            # Only the output shape's members are written (moto's results carry legacy extras), and only
            # members made of items and counts are written directly (ConsumedCapacity & co go to moto).
            members = {key: value for key, value in result.items() if key in shape.members}
            try:
                if not members.keys() <= PLAIN_ITEM_MEMBERS:
                    raise _NotPlain(", ".join(sorted(members.keys() - PLAIN_ITEM_MEMBERS)))
                plain = _plain_json(members)
            except _NotPlain:
                return super()._serialize_result(resp, result)
            return self._serialized_result_to_response(resp, result, shape, plain)

    return PlainItemsSerializer


def _execute_dynamodb_result(self: Any, context: Any) -> Any:
    if context.operation_model.name not in PLAIN_ITEM_OPERATIONS:
        return _original_dynamodb_execute_result(self, context)
    serializer = _plain_items_serializer(context.serializer_class)(
        operation_model=context.operation_model,
        pretty_print=moto_settings.PRETTIFY_RESPONSES,
        value_picker=XFormedAttributePicker(
            response_transformers=getattr(context.response, "RESPONSE_KEY_PATH_TO_TRANSFORMER", None)
        ),
    )
    serialized = serializer.serialize(self.result)
    return serialized["status_code"], serialized["headers"], serialized["body"]


# --------------------------------------------------------------------------- 18. model package updates and events
_model_package_listener: Callable[[dict[str, Any]], None] | None = None


def on_model_package_changed(listener: Callable[[dict[str, Any]], None] | None) -> None:
    """``listener(description)`` (the package as DescribeModelPackage shows it) when a package is created or its
    approval status changes; None removes it. Called inside the request: it must only queue."""
    global _model_package_listener
    _model_package_listener = listener


def _announce_model_package(package: Any) -> None:
    listener = _model_package_listener
    if listener is not None:
        listener(package.gen_response_object())


def _update_model_package(self: Any, model_package_arn: str, *args: Any, **kwargs: Any) -> str:
    package = self.model_packages.get(self.model_package_name_mapping.get(model_package_arn, model_package_arn))
    if package is None:
        return str(_original_update_model_package(self, model_package_arn, *args, **kwargs))
    given = dict(zip(_UPDATE_MODEL_PACKAGE_ARGS, args, strict=False)) | kwargs
    before = package.model_approval_status
    if given.get("model_approval_status") is None:
        given["model_approval_status"] = before
    if given.get("approval_description") is None:
        given["approval_description"] = package.approval_description
    given["customer_metadata_properties"] = {
        **(package.customer_metadata_properties or {}),
        **(given.get("customer_metadata_properties") or {}),
    }
    arn = str(_original_update_model_package(self, model_package_arn, **given))
    if package.model_approval_status != before:
        _announce_model_package(package)
    return arn


def _create_model_package(self: Any, *args: Any, **kwargs: Any) -> str:
    arn = str(_original_create_model_package(self, *args, **kwargs))
    package = self.model_packages.get(self.model_package_name_mapping.get(arn, arn))
    if package is not None and package.model_package_type == "Versioned":
        _announce_model_package(package)
    return arn


# --------------------------------------------------------------------------- 19. SDK results' timestamps
def sdk_timestamps(value: Any) -> Any:
    """Datetimes in an SDK response as Step Functions writes them: UTC, milliseconds, a Z."""
    if isinstance(value, datetime.datetime):
        moment = value.astimezone(datetime.UTC) if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: sdk_timestamps(member) for key, member in value.items()}
    if isinstance(value, list):
        return [sdk_timestamps(member) for member in value]
    return value


def _aws_sdk_task_with_iso_timestamps(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def evaluate(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        env.stack[-1] = sdk_timestamps(env.stack[-1])

    return evaluate


# --------------------------------------------------------------------------- wiring
def _service_for(service_name: str) -> Any:
    if service_name == "states":
        return AwsCasedStateTaskServiceSfn()
    if service_name == "sagemaker":
        return StateTaskServiceSageMaker()
    if service_name == "lambda":
        return LambdaWithSdkMetadata()
    if service_name == "dynamodb":
        return DynamoDBWithSdkMetadata()
    return _original_factory(service_name)


def apply() -> None:
    """Install the adaptations (idempotent)."""
    global _applied
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise RuntimeError(
            f"the local runtime's ASL adaptations are written for moto {PINNED_MOTO_VERSION}, "
            f"found {moto.__version__}: re-check each one (tests/unit/local/test_moto_adaptations.py) and re-pin"
        )
    if _applied:
        return
    state_task_factory.state_task_service_for = _service_for  # type: ignore[attr-defined]
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = SYNC_POLL_SECONDS  # type: ignore[misc]
    BaseExecutionWorkerCommunication.terminated = _terminated_and_announced  # type: ignore[method-assign]
    for module in _modules_using_boto_client_for():
        module.boto_client_for = _shared_boto_client_for
    ExecutionState._evaluate_with_timeout = _evaluate_with_faults  # type: ignore[method-assign]
    for module in _SIZE_QUOTA_MODULES:
        module.is_within_size_quota = within_size_quota
    StateTaskLambda._verify_size_quota = _lambda_result_size_check  # type: ignore[method-assign]
    WaitFunction._eval_body = _wait_within_the_year  # type: ignore[method-assign]
    StateTaskLambda._from_error = _lambda_task_from_error(StateTaskLambda.__dict__["_from_error"])  # type: ignore[method-assign]
    for task_class in [StateTask, *_all_subclasses(StateTask)]:
        if "_from_error" in task_class.__dict__:
            task_class._from_error = _passing_injected_faults(task_class.__dict__["_from_error"])
    AmazonStateLanguageParser.parse = staticmethod(_parse)  # type: ignore[method-assign]
    StaticAnalyser.analyse = _analyse  # type: ignore[method-assign]
    BotocoreStubber.process_request = _process_request_serially  # type: ignore[method-assign]
    StringJSONata._eval_body = _eval_string_jsonata  # type: ignore[method-assign]
    StringVariableSample._eval_body = _eval_variable_sample  # type: ignore[method-assign]
    for component, segment in _FIELD_SEGMENTS.items():
        component._eval_body = _naming_field(component._eval_body, segment)
    ExecutionWorker._get_evaluation_environment = _evaluation_environment  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_status_as_json  # type: ignore[method-assign]
    Table.all_items = _partition_items  # type: ignore[method-assign]
    Table.query = _query_one_partition(Table.query)  # type: ignore[method-assign]
    moto_backends.list_of_moto_modules = _cached_moto_modules  # type: ignore[assignment]
    DynamoResult.execute_result = _execute_dynamodb_result  # type: ignore[method-assign]
    SageMakerModelBackend.update_model_package = _update_model_package  # type: ignore[method-assign]
    SageMakerModelBackend.create_model_package = _create_model_package  # type: ignore[method-assign]
    StateTaskServiceAwsSdk._eval_service_task = _aws_sdk_task_with_iso_timestamps(  # type: ignore[method-assign]
        StateTaskServiceAwsSdk.__dict__["_eval_service_task"]
    )
    _applied = True


# --------------------------------------------------------------------------- 13. S3 "Object Created" to the bus
# moto sends a bucket's EventBridge notifications to its own events backend, which cannot invoke our
# in-process functions. Hooked where moto's S3 model emits the notification, every writer is covered:
# the CLI and the AWS CLI over HTTP, jobs and functions in-process (on AWS every PutObject,
# CompleteMultipartUpload and CopyObject emits it). The listener only queues: it runs inside a request.
_S3_CREATED_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "PostObject",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}
_object_created_listener: Callable[..., None] | None = None
_original_send_event: Callable[..., None] | None = None


def on_object_created(listener: Callable[..., None] | None) -> None:
    """``listener(bucket, key, version_id, size, etag, reason)`` for objects created in buckets with
    EventBridge notifications on; None removes it."""
    global _object_created_listener, _original_send_event
    from moto.s3 import notifications

    if _original_send_event is None:
        _original_send_event = notifications.send_event
        notifications.send_event = _send_event_to_listener  # type: ignore[assignment]
    _object_created_listener = listener


def _send_event_to_listener(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
    assert _original_send_event is not None
    _original_send_event(account_id, event_name, bucket, key)
    reason = _S3_CREATED_REASONS.get(str(getattr(event_name, "value", event_name)))
    listener = _object_created_listener
    configuration = bucket.notification_configuration
    if reason == "PutObject" and getattr(key, "multipart", None) is not None:
        return  # moto's CompleteMultipartUpload stores the object with put_object first: AWS sends one event
    if listener and reason and configuration is not None and configuration.event_bridge is not None:
        version = key.version_id if key.version_id not in (None, "null") else None
        listener(bucket.name, key.name, version, int(key.size), key.etag.strip('"'), reason)
