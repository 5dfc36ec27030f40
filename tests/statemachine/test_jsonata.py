"""JSONata and workflow variables in the local interpreter, with AWS's documented semantics.

Each test runs a state machine in moto's interpreter with our adaptations applied, as the local runtime
does, and checks the output AWS documents for it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import boto3

from sfn_mlops_local.local import moto_adaptations
from tests.conftest import wait_until

ROLE = "arn:aws:iam::123456789012:role/test"


def jsonata_machine(sfn: Any, name: str, states: dict[str, Any], start: str, language: str = "JSONata") -> str:
    definition = {"QueryLanguage": language, "StartAt": start, "States": states}
    arn: str = sfn.create_state_machine(name=name, roleArn=ROLE, definition=json.dumps(definition))["stateMachineArn"]
    return arn


def execute(sfn: Any, arn: str, payload: Any) -> dict[str, Any]:
    execution = sfn.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(payload))
    described: dict[str, Any] = wait_until(
        lambda: (d := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] != "RUNNING" and d,
        timeout=30,
    )
    return described


def output_of(sfn: Any, arn: str, payload: Any) -> Any:
    described = execute(sfn, arn, payload)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def pass_output(sfn: Any, name: str, output: Any, payload: Any = None) -> Any:
    arn = jsonata_machine(sfn, name, {"P": {"Type": "Pass", "Output": output, "End": True}}, "P")
    return output_of(sfn, arn, payload or {})


# A JSONPath state machine whose states opt in to JSONata one by one, as AWS allows (a JSONata machine's
# states cannot go back to JSONPath); the last state stays JSONPath and reads the variables.
JSONATA = {"QueryLanguage": "JSONata"}
ORDER_FLOW = {
    "Remember order": {
        **JSONATA,
        "Type": "Pass",
        "Assign": {"orderId": "{% $states.input.order.id %}", "lines": "{% $states.input.order.lines %}"},
        "Output": {"lineCount": "{% $count($states.input.order.lines) %}"},
        "Next": "Reserve stock",
    },
    "Reserve stock": {
        **JSONATA,
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:putItem",
        "Arguments": {"TableName": "stock", "Item": {"PK": {"S": "{% $orderId %}"}}},
        "Catch": [
            {
                "ErrorEquals": ["States.ALL"],
                "Assign": {"failure": "{% $states.errorOutput %}"},
                "Output": "{% $states.errorOutput %}",
                "Next": "Out of stock?",
            }
        ],
        "Output": {"reserved": "{% $orderId %}"},
        "Next": "Summarise",
    },
    "Out of stock?": {
        **JSONATA,
        "Type": "Choice",
        "Choices": [{"Condition": "{% $failure.Error = 'OutOfStock' %}", "Next": "Reject order"}],
        "Default": "Summarise",
    },
    "Reject order": {
        **JSONATA,
        "Type": "Fail",
        "Error": "{% 'Order.' & $failure.Error %}",
        "Cause": "{% 'order ' & $orderId & ' (' & $count($lines) & ' lines): ' & $failure.Cause %}",
    },
    "Summarise": {
        "Type": "Pass",
        "Parameters": {"order.$": "$orderId", "firstSku.$": "$lines[0].sku", "previous.$": "$"},
        "End": True,
    },
}
ORDER = {"order": {"id": "o-17", "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}}


def _stock_table() -> None:
    boto3.client("dynamodb").create_table(
        TableName="stock",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_a_jsonata_workflow_fails_with_the_error_and_cause_its_fail_state_computes(sfn: Any) -> None:
    # Given the order flow whose Task fails with OutOfStock, caught into a variable by its Catch
    _stock_table()
    arn = jsonata_machine(sfn, "orders-rejected", ORDER_FLOW, "Remember order", language="JSONPath")
    moto_adaptations.inject_task_fault("orders-rejected", "Reserve stock", "OutOfStock", "no B left")
    # When it runs
    described = execute(sfn, arn, ORDER)
    # Then the Choice condition on the caught error leads to the Fail state, whose Error and Cause read the
    # variables assigned two and three states earlier
    assert described["status"] == "FAILED", described
    assert described["error"] == "Order.OutOfStock"
    assert described["cause"] == "order o-17 (2 lines): no B left"


def test_a_caught_error_other_than_the_choice_condition_goes_on_to_a_jsonpath_state_reading_variables(
    sfn: Any,
) -> None:
    # Given the same flow failing with another error
    _stock_table()
    arn = jsonata_machine(sfn, "orders-other", ORDER_FLOW, "Remember order", language="JSONPath")
    moto_adaptations.inject_task_fault("orders-other", "Reserve stock", "Throttled", "slow down")
    # When it runs, Then the Catch Output ($states.errorOutput: Error and Cause) is the input of the JSONPath
    # state, which reads the variables with $name
    assert output_of(sfn, arn, ORDER) == {
        "order": "o-17",
        "firstSku": "A",
        "previous": {"Error": "Throttled", "Cause": "slow down"},
    }


def test_a_jsonata_task_gets_its_arguments_and_its_output_reads_variables(sfn: Any) -> None:
    # Given the flow with a Task that succeeds
    _stock_table()
    arn = jsonata_machine(sfn, "orders-ok", ORDER_FLOW, "Remember order", language="JSONPath")
    # When it runs, Then the item was written with the JSONata Arguments and the Output reached the next state
    assert output_of(sfn, arn, ORDER) == {"order": "o-17", "firstSku": "A", "previous": {"reserved": "o-17"}}
    assert boto3.client("dynamodb").get_item(TableName="stock", Key={"PK": {"S": "o-17"}})["Item"]


def test_assign_sees_the_state_input_and_result_and_the_variables_from_before_the_state(sfn: Any) -> None:
    # Given a variable assigned by one state and re-assigned by the next, which also reads its old value
    states = {
        "First": {"Type": "Pass", "Assign": {"n": 1}, "Output": {"v": 10}, "Next": "Second"},
        "Second": {
            "Type": "Pass",
            "Assign": {"n": "{% $n + 1 %}", "old": "{% $n %}", "fromInput": "{% $states.input.v %}"},
            "Output": {"n": "{% $n %}"},
            "Next": "Third",
        },
        "Third": {
            "Type": "Pass",
            "Output": {"n": "{% $n %}", "old": "{% $old %}", "in": "{% $fromInput %}"},
            "End": True,
        },
    }
    arn = jsonata_machine(sfn, "assign-order", states, "First")
    # When it runs, Then within one Assign every expression sees the values from before the state, and the
    # state's own Output still sees them too; the next state sees the new ones
    assert output_of(sfn, arn, {}) == {"n": 2, "old": 1, "in": 10}


def test_states_context_and_input_are_readable(sfn: Any) -> None:
    output = pass_output(
        sfn,
        "context",
        {"name": "{% $states.context.StateMachine.Name %}", "state": "{% $states.context.State.Name %}"},
    )
    assert output == {"name": "context", "state": "P"}


def test_an_expression_that_returns_nothing_fails_with_a_query_evaluation_error_a_catch_can_handle(
    sfn: Any,
) -> None:
    # Given an Output field reading an absent input field, with a Catch on States.QueryEvaluationError
    states = {
        "Read": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:getItem",
            "Arguments": {"TableName": "{% $states.input.absent %}", "Key": {}},
            "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Caught"}],
            "End": True,
        },
        "Caught": {"Type": "Pass", "End": True},
    }
    arn = jsonata_machine(sfn, "undefined-caught", states, "Read")
    # When it runs, Then the Catch gets the error and AWS's cause
    caught = output_of(sfn, arn, {})
    assert caught["Error"] == "States.QueryEvaluationError"
    assert caught["Cause"].endswith(
        "The JSONata expression '$states.input.absent' specified for the field 'Arguments/TableName' "
        "returned nothing (undefined)."
    )


def test_an_expression_that_fails_to_evaluate_fails_the_execution_with_a_query_evaluation_error(sfn: Any) -> None:
    arn = jsonata_machine(sfn, "bad-expr", {"P": {"Type": "Pass", "Output": "{% 'a' + 1 %}", "End": True}}, "P")
    described = execute(sfn, arn, {})
    assert described["status"] == "FAILED"
    assert described["error"] == "States.QueryEvaluationError"
    assert "An error occurred while executing the state 'P'" in described["cause"]
    assert "must evaluate to a number" in described["cause"]


def test_null_is_a_value_and_strings_with_quotes_survive_variables(sfn: Any) -> None:
    states = {
        "Keep": {"Type": "Pass", "Assign": {"quote": "{% $states.input.text %}", "nothing": None}, "Next": "Use"},
        "Use": {
            "Type": "Pass",
            "Output": {"text": "{% $quote %}", "nothing": "{% $nothing %}", "bar": "{% $states.input.bar %}"},
            "End": True,
        },
    }
    arn = jsonata_machine(sfn, "nulls", states, "Keep")
    text = 'say "hi" \\ then\nleave'
    assert output_of(sfn, arn, {"text": text, "bar": None}) == {"text": text, "nothing": None, "bar": None}


def test_step_functions_jsonata_functions_answer_as_on_aws(sfn: Any) -> None:
    output = pass_output(
        sfn,
        "functions",
        {
            "partition": "{% $partition([1, 2, 3, 4, 5], 2) %}",
            "range": "{% $range(0, 10, 5) %}",
            "rangeDown": "{% $range(3, 1, -1) %}",
            "rangeOfOne": "{% $range(1, 1, 1) %}",
            "md5": "{% $hash('abc', 'MD5') %}",
            "sha1": "{% $hash('abc', 'SHA-1') %}",
            "sha256": "{% $hash('abc', 'SHA-256') %}",
            "sha384": "{% $hash('abc', 'SHA-384') %}",
            "sha512": "{% $hash('abc', 'SHA-512') %}",
            "seeded": "{% $random(7) = $random(7) %}",
            "random": "{% $random() %}",
            "uuid": "{% $uuid() %}",
            "parsed": "{% $parse('{\"a\": [1, null]}') %}",
            "division": "{% 6 / 2 %}",
        },
    )
    assert output["partition"] == [[1, 2], [3, 4], [5]]
    assert output["range"] == [0, 5, 10] and output["rangeDown"] == [3, 2, 1] and output["rangeOfOne"] == 1
    for key, algorithm in [("md5", "md5"), ("sha1", "sha1"), ("sha256", "sha256"), ("sha384", "sha384")]:
        assert output[key] == hashlib.new(algorithm, b"abc").hexdigest()
    assert output["sha512"] == hashlib.sha512(b"abc").hexdigest()
    assert output["seeded"] is True and 0 <= output["random"] < 1
    assert uuid.UUID(output["uuid"]).version == 4
    assert output["parsed"] == {"a": [1, None]}
    assert output["division"] == 3 and isinstance(output["division"], int)


def test_eval_is_not_available_and_an_unknown_hash_algorithm_fails(sfn: Any) -> None:
    for name, expression in [("no-eval", "{% $eval('1') %}"), ("bad-hash", "{% $hash('a', 'SHA-999') %}")]:
        arn = jsonata_machine(sfn, name, {"P": {"Type": "Pass", "Output": expression, "End": True}}, "P")
        assert execute(sfn, arn, {})["error"] == "States.QueryEvaluationError"


def test_a_jsonata_map_iterates_items_with_an_item_selector(sfn: Any) -> None:
    states = {
        "Each": {
            "Type": "Map",
            "Items": "{% $states.input.values %}",
            "ItemSelector": {
                "value": "{% $states.context.Map.Item.Value %}",
                "index": "{% $states.context.Map.Item.Index %}",
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Double",
                "States": {
                    "Double": {
                        "Type": "Pass",
                        "Output": "{% $states.input.value * 2 + $states.input.index %}",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    }
    arn = jsonata_machine(sfn, "mapped", states, "Each")
    assert output_of(sfn, arn, {"values": [1, 2, 3]}) == [2, 5, 8]


def test_a_jsonpath_state_reading_an_undefined_variable_fails_with_states_runtime(sfn: Any) -> None:
    states = {
        "Set": {"Type": "Pass", "Assign": {"known": {"a": 1}}, "Next": "Read"},
        "Read": {"Type": "Pass", "Parameters": {"v.$": "$known.b"}, "End": True},
    }
    arn = jsonata_machine(sfn, "jsonpath-missing", states, "Set", language="JSONPath")
    described = execute(sfn, arn, {})
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")


def test_an_output_that_is_a_string_is_json_encoded_in_the_execution_output(sfn: Any) -> None:
    arn = jsonata_machine(sfn, "string-out", {"P": {"Type": "Pass", "Output": "{% 'done' %}", "End": True}}, "P")
    assert execute(sfn, arn, {})["output"] == '"done"'


def test_the_whole_context_is_a_value_with_aws_timestamps(sfn: Any) -> None:
    context = pass_output(sfn, "whole-context", "{% $states.context %}")
    assert context["Execution"]["StartTime"].endswith("Z") and context["State"]["Name"] == "P"
