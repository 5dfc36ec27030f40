"""Guards for each adaptation of moto's ASL interpreter: they fail if moto's behaviour changes underneath."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws

from sfn_mlops_local.local import moto_adaptations
from tests.conftest import wait_until

ROLE = "arn:aws:iam::123456789012:role/test"


@pytest.fixture
def sfn() -> Iterator[Any]:
    moto_adaptations.apply()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions")


def machine(sfn: Any, name: str, states: dict[str, Any], start: str) -> str:
    arn: str = sfn.create_state_machine(
        name=name, roleArn=ROLE, definition=json.dumps({"StartAt": start, "States": states})
    )["stateMachineArn"]
    return arn


def run(sfn: Any, arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    execution = sfn.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(payload))
    return wait_until(
        lambda: (d := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] != "RUNNING" and d
    )


def test_adaptations_are_pinned_to_one_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert moto.__version__ == moto_adaptations.PINNED_MOTO_VERSION
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"written for moto 5\.2\.5"):
        moto_adaptations.apply()


def test_upstream_still_lacks_sagemaker_sync() -> None:
    # If this fails, moto supports SageMaker integrations itself: drop adaptation 2.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
        StateTaskServiceUnsupported,
    )

    assert isinstance(moto_adaptations._original_factory("sagemaker"), StateTaskServiceUnsupported)


def test_upstream_sync_poll_interval_is_still_half_a_second() -> None:
    # If this fails, moto changed its polling: re-measure before keeping adaptation 3.
    assert moto_adaptations.ORIGINAL_SYNC_POLL_SECONDS == 0.5
    moto_adaptations.apply()
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )

    assert state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK == moto_adaptations.SYNC_POLL_SECONDS


def test_nested_sync2_takes_pascal_case_parameters_and_returns_parsed_output(sfn: Any) -> None:
    child = machine(sfn, "child", {"Echo": {"Type": "Pass", "Parameters": {"got.$": "$.value"}, "End": True}}, "Echo")
    parent = machine(
        sfn,
        "parent",
        {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child, "Input": {"value.$": "$.value"}},
                "End": True,
            }
        },
        "Call",
    )
    result = run(sfn, parent, {"value": 7})
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["Output"] == {"got": 7}  # parsed JSON, as AWS returns for .sync:2
    assert output["Status"] == "SUCCEEDED"
    assert isinstance(output["StartDate"], int) and isinstance(output["StopDate"], int)  # epoch millis
    uuid.UUID(output["Name"])  # an unnamed child gets a UUID, not "None"


def test_nested_sync_returns_output_as_a_string(sfn: Any) -> None:
    child = machine(sfn, "child1", {"Echo": {"Type": "Pass", "End": True}}, "Echo")
    parent = machine(
        sfn,
        "parent1",
        {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync",
                "Parameters": {"StateMachineArn": child, "Input": {"a": 1}},
                "End": True,
            }
        },
        "Call",
    )
    output = json.loads(run(sfn, parent, {})["output"])
    assert output["Output"] == '{"a":1}' or json.loads(output["Output"]) == {"a": 1}
    assert isinstance(output["Output"], str)


def test_a_failed_child_fails_the_task_with_its_error_and_cause_in_json(sfn: Any) -> None:
    child = machine(sfn, "child2", {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}, "Boom")
    parent = machine(
        sfn,
        "parent2",
        {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child},
                "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {
                "Type": "Pass",
                "Parameters": {"cause.$": "States.StringToJson($.Cause)", "error.$": "$.Error"},
                "End": True,
            },
        },
        "Call",
    )
    output = json.loads(run(sfn, parent, {})["output"])
    assert output["error"] == "States.TaskFailed"
    assert output["cause"]["Error"] == "Boom" and output["cause"]["Cause"] == "it broke"
    assert output["cause"]["Status"] == "FAILED"
