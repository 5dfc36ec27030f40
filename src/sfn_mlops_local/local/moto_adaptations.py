# mypy: disable-error-code="typeddict-item,attr-defined,arg-type,union-attr,unused-ignore"
# (it subclasses moto interpreter internals, whose typed dicts and untyped clients do not line up)
"""Every change we make to moto's ASL interpreter, in one place.

Pinned to moto 5.2.5: ``apply()`` refuses another version, because each adaptation replaces a piece of
moto's internals. Each adaptation has a test in tests/unit/local/test_moto_adaptations.py that fails
if moto's behaviour changes underneath it (see docs/decisions/0001-local-runtime.md).

1. ``states:startExecution`` (.sync / .sync:2): moto passes AWS's PascalCase parameters straight to
   boto3 and returns camelCase results. We convert both ways as AWS does: ``Output`` is parsed JSON for
   ``.sync:2`` and a string for ``.sync``; dates are epoch milliseconds; a missing ``Name`` gets a UUID
   (moto names every unnamed execution "None").
2. ``sagemaker:create*Job.sync``: unsupported in moto. We call the API, poll ``Describe*Job`` until the
   job ends and return its output, or fail with ``States.TaskFailed`` and the output as JSON cause.
3. The poll interval of ``.sync`` integrations: 0.5 s in moto, 0.02 s here: three nested tiers would
   otherwise wait up to 1.5 s per unit doing nothing.
4. Task fault injection (tests, ``mlops run --fail-at``): a registered fault makes a Task state fail
   before it calls its resource, with a chosen error name and cause, exactly as a failing task does:
   a TaskFailed event, then Retry/Catch by that name, else the execution fails with it.
5. Parsed definitions are cached per definition text: moto parses the ASL (ANTLR, ~70 ms for the
   executor) for every execution, nine times per run; the parsed program keeps no execution state.
6. Requests to moto are served one at a time: moto's backends change their dicts in place without a
   lock, so a DynamoDB Query from the CLI while an execution's UpdateItem adds or removes attributes
   fails with "dictionary changed size during iteration" (AWS's services are atomic per item; S3 and
   the model registry list dicts the same way). Every write in the runtime goes through a request, so
   serialising requests is enough; each takes milliseconds and none waits on another thread.
"""

from __future__ import annotations

import datetime
import functools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.session
import moto
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import BotocoreStubber
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
    state_task_service_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

PINNED_MOTO_VERSION = "5.2.5"
SYNC_POLL_SECONDS = 0.02

_original_factory = state_task_service_factory.state_task_service_for
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
            described = client.describe_execution(executionArn=execution_arn)
            if described["status"] in ("RUNNING", "PENDING_REDRIVE"):
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


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    def __init__(self) -> None:
        # WaitForTaskToken is listed only because moto's callback base class assumes a callback endpoint.
        super().__init__(supported_integration_patterns={ResourceCondition.Sync, ResourceCondition.WaitForTaskToken})

    def _get_supported_parameters(self) -> set[str] | None:
        # Every member of the API's request shape, as AWS accepts them all (moto drops the rest).
        action = self.resource.api_action.lower()
        if action not in _SAGEMAKER_JOBS:
            return None
        model = botocore.session.get_session().get_service_model("sagemaker")
        operation = next(name for name in model.operation_names if name.lower() == action)
        return set(model.operation_model(operation).input_shape.members)

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
            described = getattr(client, describe)(**{name_key: job_name})
            described.pop("ResponseMetadata", None)
            status = described[status_key]
            if status in ("InProgress", "Stopping"):
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
        if isinstance(ex, InjectedTaskFault):
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


@functools.lru_cache(maxsize=64)
def _parse_cached(definition: str) -> Any:
    return _original_parse(definition)


def _parse(definition: str) -> Any:
    # In moto 5.2.5 states set attributes only when parsed, except Map's iteration machinery: never share
    # a parsed Map (or Parallel, to be safe) between executions.
    if '"Map"' in definition or '"Parallel"' in definition:
        return _original_parse(definition)
    return _parse_cached(definition)


# --------------------------------------------------------------------------- 6. one moto request at a time
_original_process_request = BotocoreStubber.process_request
_moto_requests = threading.RLock()  # re-entrant: a backend may call another service in the same thread


def moto_requests_lock() -> threading.RLock:
    """The lock every request to moto's backends holds: the local service's HTTP endpoint takes it too."""
    return _moto_requests


def _process_request_serially(self: Any, request: Any) -> Any:
    with _moto_requests:
        return _original_process_request(self, request)


# --------------------------------------------------------------------------- wiring
def _service_for(service_name: str) -> Any:
    if service_name == "states":
        return AwsCasedStateTaskServiceSfn()
    if service_name == "sagemaker":
        return StateTaskServiceSageMaker()
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
    ExecutionState._evaluate_with_timeout = _evaluate_with_faults  # type: ignore[method-assign]
    for task_class in [StateTask, *_all_subclasses(StateTask)]:
        if "_from_error" in task_class.__dict__:
            task_class._from_error = _passing_injected_faults(task_class.__dict__["_from_error"])
    AmazonStateLanguageParser.parse = staticmethod(_parse)  # type: ignore[method-assign]
    BotocoreStubber.process_request = _process_request_serially  # type: ignore[method-assign]
    _applied = True
