"""Guards for each adaptation of moto's ASL interpreter: they fail if moto's behaviour changes underneath."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sfn_mlops_local.local import moto_adaptations
from tests.conftest import wait_until

ROLE = "arn:aws:iam::123456789012:role/test"


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
    assert output["InputDetails"] == {"Included": True} and output["OutputDetails"] == {"Included": True}


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


def test_a_child_failed_by_an_uncaught_task_error_has_no_output(sfn: Any) -> None:
    # moto gives such an execution "" as output; AWS gives none, and a parsed "" would be a States.Runtime
    child = machine(
        sfn,
        "child3",
        {"Work": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem", "Parameters": {}, "End": True}},
        "Work",
    )
    moto_adaptations.inject_task_fault("child3", "Work", "Broken", "it broke")
    parent = machine(
        sfn,
        "parent3",
        {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "Parameters": {"cause.$": "States.StringToJson($.Cause)"}, "End": True},
        },
        "Call",
    )
    cause = json.loads(run(sfn, parent, {})["output"])["cause"]
    assert cause["Error"] == "Broken" and cause["Cause"] == "it broke" and "Output" not in cause


def put_item_machine(sfn: Any, name: str, extra: dict[str, Any]) -> str:
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    states = {
        "Write": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {"TableName": name, "Item": {"PK": {"S": "written"}}},
            "ResultPath": None,
            **extra,
        },
        "Done": {"Type": "Pass", "End": True},
        "Recovered": {"Type": "Pass", "Result": {"path": "recovered"}, "End": True},
    }
    return machine(sfn, name, states, "Write")


def test_an_injected_fault_is_caught_by_name_and_calls_nothing(sfn: Any) -> None:
    # Given a fault at a Task state that has a Catch for that error name
    arn = put_item_machine(
        sfn, "faulty1", {"Catch": [{"ErrorEquals": ["Injected"], "Next": "Recovered"}], "Next": "Done"}
    )
    moto_adaptations.inject_task_fault("faulty1", "Write", "Injected", "on purpose")
    # When it runs, Then the Catch path is taken and the resource was never called
    assert json.loads(run(sfn, arn, {})["output"]) == {"path": "recovered"}
    assert boto3.client("dynamodb").scan(TableName="faulty1")["Items"] == []
    assert moto_adaptations.pending_task_faults() == []


def test_an_injected_fault_counts_retries_and_shows_in_the_history(sfn: Any) -> None:
    retry = {"Retry": [{"ErrorEquals": ["Injected"], "IntervalSeconds": 1, "MaxAttempts": 2}], "Next": "Done"}
    arn = put_item_machine(sfn, "faulty2", retry)
    moto_adaptations.inject_task_fault("faulty2", "Write", "Injected", "once", times=1)
    execution = sfn.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()))["executionArn"]
    wait_until(lambda: sfn.describe_execution(executionArn=execution)["status"] != "RUNNING")
    events = [e["type"] for e in sfn.get_execution_history(executionArn=execution)["events"]]
    assert sfn.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"
    assert events.count("TaskFailed") == 1 and "TaskSucceeded" in events
    assert boto3.client("dynamodb").scan(TableName="faulty2")["Count"] == 1


def test_an_uncaught_injected_fault_fails_the_execution_with_its_error(sfn: Any) -> None:
    arn = put_item_machine(sfn, "faulty3", {"Next": "Done"})
    moto_adaptations.inject_task_fault("faulty3", "Write", "DynamoDB.InternalServerErrorException", "boom")
    result = run(sfn, arn, {})
    assert (result["status"], result["error"], result["cause"]) == (
        "FAILED",
        "DynamoDB.InternalServerErrorException",
        "boom",
    )


def test_faults_cannot_use_step_functions_error_names() -> None:
    with pytest.raises(ValueError, match="Step Functions' own"):
        moto_adaptations.inject_task_fault("m", "s", "States.Timeout", "no")


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_program(
    sfn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an empty parse cache and one definition executed twice
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    monkeypatch.setenv(moto_adaptations.ASL_CACHE_VARIABLE, str(tmp_path / "asl"))
    monkeypatch.setattr(moto_adaptations, "_parsed", {})
    counts = moto_adaptations._parse_counts
    parsed_before = counts["parsed"]
    states = {"Echo": {"Type": "Pass", "Parameters": {"value.$": "$.value"}, "End": True}}
    arn = machine(sfn, "parsed-once", states, "Echo")
    definition = json.dumps({"StartAt": "Echo", "States": states})
    # When it runs twice, Then both executions run independently on one parse
    assert json.loads(run(sfn, arn, {"value": 1})["output"]) == {"value": 1}
    assert json.loads(run(sfn, arn, {"value": 2})["output"]) == {"value": 2}
    assert counts["parsed"] == parsed_before + 1
    # and every use gets a program of its own: a Map keeps iteration state on its components
    inner = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    mapped = json.dumps({"StartAt": "M", "States": {"M": {"Type": "Map", "Iterator": inner, "End": True}}})
    first, second = AmazonStateLanguageParser.parse(mapped)[0], AmazonStateLanguageParser.parse(mapped)[0]
    assert first is not second and type(first) is type(second)
    # and a new process (memory empty) reads the parsed program from the cache folder, readable by this user only
    monkeypatch.setattr(moto_adaptations, "_parsed", {})
    from_disk = counts["from_disk"]
    assert AmazonStateLanguageParser.parse(definition)[0] is not None
    assert counts["from_disk"] == from_disk + 1 and counts["parsed"] == parsed_before + 2
    assert (tmp_path / "asl").stat().st_mode & 0o077 == 0


def test_a_definition_that_does_not_parse_is_refused_and_nothing_is_cached_for_it(
    sfn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(moto_adaptations.ASL_CACHE_VARIABLE, str(tmp_path / "asl"))
    with pytest.raises(ClientError, match="definition"):
        sfn.create_state_machine(name="bad", definition='{"StartAt": "X"}', roleArn=ROLE)
    assert not list((tmp_path / "asl").glob("*"))


def test_a_cache_file_that_does_not_load_is_replaced_by_a_fresh_parse(
    sfn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a definition parsed into the cache, whose file a crash then cut short
    monkeypatch.setenv(moto_adaptations.ASL_CACHE_VARIABLE, str(tmp_path / "asl"))
    monkeypatch.setattr(moto_adaptations, "_parsed", {})
    states = {"Echo": {"Type": "Pass", "End": True}}
    arn = machine(sfn, "cut-short", states, "Echo")
    (cached,) = (tmp_path / "asl").glob("*.pickle")
    cached.write_bytes(cached.read_bytes()[:10])
    # When a new process (memory empty) runs it, Then it runs, and the file holds a whole program again
    monkeypatch.setattr(moto_adaptations, "_parsed", {})
    assert json.loads(run(sfn, arn, {"value": 1})["output"]) == {"value": 1}
    assert len(cached.read_bytes()) > 10


def test_a_cache_folder_others_can_write_is_not_used(sfn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given MLOPS_ASL_CACHE naming a folder anyone can write (a pickle there could run anyone's code)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(moto_adaptations.ASL_CACHE_VARIABLE, str(shared))
    monkeypatch.setattr(moto_adaptations, "_parsed", {})
    # When a state machine is created and run, Then it runs and nothing is read from or written there
    arn = machine(sfn, "not-shared", {"Echo": {"Type": "Pass", "End": True}}, "Echo")
    assert json.loads(run(sfn, arn, {"value": 2})["output"]) == {"value": 2}
    assert list(shared.iterdir()) == []


def test_moto_s_static_analysers_still_read_the_parse_tree() -> None:
    # The cached parse returns no ANTLR tree; the analysers parse for themselves
    from moto.stepfunctions.parser.asl.static_analyser.variable_references_static_analyser import (
        VariableReferencesStaticAnalyser,
    )

    states = {
        "Set": {"Type": "Pass", "Assign": {"n": 1}, "Next": "Use"},
        "Use": {"Type": "Pass", "Parameters": {"v.$": "$n"}, "End": True},
    }
    definition = json.dumps({"StartAt": "Set", "States": states})
    moto_adaptations.apply()
    assert VariableReferencesStaticAnalyser.process_and_get(definition) == {"Use": ["n"]}


def test_runtime_fault_api_validates_names(runtime: Any) -> None:
    with pytest.raises(ValueError, match="no state machine 'Nope'; the template has"):
        runtime.fail_task("Nope", "Get unit record")
    with pytest.raises(ValueError, match="Executor has no Task state 'Unit failed'; its Task states: Get unit record"):
        runtime.fail_task("Executor", "Unit failed")
    with pytest.raises(ValueError, match="unknown unit 'serve'; the units are preprocess, train, evaluate, register"):
        runtime.fail_unit("serve")
    assert runtime.task_states()["Executor"][:2] == ["Get unit record", "Look up cached success"]


def _update_and_query_concurrently(seconds: float) -> list[str]:
    """Writers add and remove 30 attributes of their items while readers query the partition."""
    import threading
    import time

    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="racy",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    names = [f"a{i}" for i in range(30)]

    def write(sk: str) -> None:
        client = boto3.client("dynamodb")
        key = {"PK": {"S": "RUN#1"}, "SK": {"S": sk}}
        grow = {"UpdateExpression": "SET " + ", ".join(f"{n} = :v" for n in names)}
        shrink = {"UpdateExpression": "REMOVE " + ", ".join(names)}
        while time.monotonic() < deadline and not errors:
            try:
                client.update_item(TableName="racy", Key=key, **grow, ExpressionAttributeValues={":v": {"S": "x"}})
                client.update_item(TableName="racy", Key=key, **shrink)
            except Exception as exc:
                errors.append(repr(exc))

    def read() -> None:
        client = boto3.client("dynamodb")
        while time.monotonic() < deadline and not errors:
            try:
                client.query(
                    TableName="racy", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "RUN#1"}}
                )
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=write, args=(f"UNIT#{i}",)) for i in range(3)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_requests_from_many_threads_never_see_an_item_half_updated() -> None:
    # Given the adaptations (an execution's UpdateItem runs while the CLI polls the run with Query)
    moto_adaptations.apply()
    with mock_aws():
        # When writers and readers hammer one partition for two seconds, Then no request fails
        # (without adaptation 6, moto fails a Query within a second or two: "dictionary changed size")
        assert _update_and_query_concurrently(seconds=2.0) == []


def test_upstream_still_has_no_jsonata_evaluator() -> None:
    # If this fails, moto evaluates JSONata itself: re-check adaptation 7 against it before keeping it.
    from moto.stepfunctions.parser.asl.component.intrinsic import jsonata as moto_functions
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata

    with pytest.raises(TypeError, match="'NoneType' object is not callable"):
        moto_jsonata.eval_jsonata_expression("1 + 1")
    assert "not supported" in moto_functions._DECLARATION_HASH  # moto's $hash and $uuid are stubs


def test_jsonata_states_and_variables_evaluate_with_aws_functions(sfn: Any) -> None:
    # Given a JSONata state assigning a variable and a JSONPath state reading it (both fail without adaptation 7)
    states = {
        "Compute": {
            "Type": "Pass",
            "QueryLanguage": "JSONata",
            "Assign": {"digest": "{% $hash($states.input.text, 'SHA-256') %}"},
            "Output": {"chunks": "{% $partition($range(1, 5, 1), 2) %}", "quoted": "{% $states.input.text %}"},
            "Next": "Read",
        },
        "Read": {"Type": "Pass", "Parameters": {"digest.$": "$digest", "chunks.$": "$.chunks"}, "End": True},
    }
    arn = machine(sfn, "jsonata-guard", states, "Compute")
    # When it runs, Then both states see the values AWS computes
    output = json.loads(run(sfn, arn, {"text": 'a "quoted" text'})["output"])
    assert output == {"digest": hashlib.sha256(b'a "quoted" text').hexdigest(), "chunks": [[1, 2], [3, 4], [5]]}


def test_the_context_object_and_a_string_output_serialise_as_on_aws(sfn: Any) -> None:
    # Given states returning $$ whole and a bare string (moto: a datetime inside $$; a string output unquoted)
    context = machine(sfn, "whole-context", {"P": {"Type": "Pass", "Parameters": {"c.$": "$$"}, "End": True}}, "P")
    text = machine(sfn, "string-output", {"P": {"Type": "Pass", "Result": "hi", "End": True}}, "P")
    # When they run, Then the start time is AWS's ISO-8601 string and the string output is JSON text
    started = json.loads(run(sfn, context, {})["output"])["c"]["Execution"]["StartTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", started), started
    assert run(sfn, text, {})["output"] == '"hi"'


# --------------------------------------------------------------------------- Lambda tasks answer as AWS does
HANDLERS = """
def text(event, context):
    return "hello"


def raw(event, context):
    return b"raw bytes"


def unserialisable(event, context):
    return {1, 2}


def big_text(event, context):
    return "x" * 262143  # 262,145 bytes as JSON


def big_list(event, context):
    return {"ab": [1] * 131068}  # 262,144 bytes as compact JSON


def boom(event, context):
    def inner():
        raise ValueError("it broke")

    inner()
"""


@pytest.fixture
def lambdas(sfn: Any, tmp_path: Any) -> Iterator[Any]:
    """Functions served by the LambdaHost, as in the local runtime."""
    from sfn_mlops_local.local.lambda_host import LambdaHost
    from sfn_mlops_local.local.template import LocalFunction

    (tmp_path / "app.py").write_text(HANDLERS)
    functions = {
        name: LocalFunction(
            name, name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}", tmp_path, f"app.{name}", {}, {}
        )
        for name in ("text", "raw", "unserialisable", "boom", "big_text", "big_list")
    }
    host = LambdaHost(functions, log_dir=tmp_path / "logs")
    events = boto3._get_default_session().events
    events.register("before-call.lambda.Invoke", host.on_invoke)
    yield host
    events.unregister("before-call.lambda.Invoke", host.on_invoke)


def invoke_machine(sfn: Any, name: str, parameters: dict[str, Any], catch: str | None = None) -> str:
    task: dict[str, Any] = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": parameters}
    if catch:
        task["Catch"] = [{"ErrorEquals": [catch], "Next": "Caught"}]
    return machine(sfn, name, {"Call": {**task, "End": True}, "Caught": {"Type": "Pass", "End": True}}, "Call")


def test_a_function_result_of_bytes_or_unserialisable_is_what_the_python_runtime_returns(
    sfn: Any, lambdas: Any
) -> None:
    # Given handlers returning a str, bytes (the runtime sends them as they are) and a set (it cannot)
    text = json.loads(run(sfn, invoke_machine(sfn, "p-text", {"FunctionName": "text"}), {})["output"])
    raw = json.loads(run(sfn, invoke_machine(sfn, "p-raw", {"FunctionName": "raw"}), {})["output"])
    failed = run(sfn, invoke_machine(sfn, "p-set", {"FunctionName": "unserialisable"}), {})
    # Then a str is the parsed JSON string, non-JSON bytes a string, and a set the runtime's MarshalError
    assert text["Payload"] == "hello" and raw["Payload"] == "raw bytes"  # was: States.Runtime, bytes not serialisable
    assert failed["error"] == "Runtime.MarshalError"
    assert json.loads(failed["cause"])["errorMessage"].startswith("Unable to marshal response: Object of type set")


def test_an_unhandled_error_shows_only_the_functions_frames(sfn: Any, lambdas: Any) -> None:
    arn = invoke_machine(sfn, "p-boom", {"FunctionName": "boom"}, catch="ValueError")
    execution = run(sfn, invoke_machine(sfn, "p-boom-uncaught", {"FunctionName": "boom"}), {})
    cause = json.loads(execution["cause"])
    assert execution["error"] == "ValueError" and set(cause) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert [line.split(", in ")[1].split("\n")[0] for line in cause["stackTrace"]] == ["boom", "inner"]
    assert "^" not in "".join(cause["stackTrace"])  # the runtime formats frames without column markers
    assert run(sfn, arn, {})["status"] == "SUCCEEDED"  # caught by the error's name


def test_an_unknown_function_is_lambdas_resource_not_found_naming_the_qualifier(sfn: Any, lambdas: Any) -> None:
    qualified = run(sfn, invoke_machine(sfn, "nf-1", {"FunctionName": "nope", "Qualifier": "prod"}), {})
    assert qualified["error"] == "Lambda.ResourceNotFoundException"
    assert qualified["cause"].startswith(
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope:prod (Service: AWSLambda; "
        "Status Code: 404; Error Code: ResourceNotFoundException; Request ID: "
    )
    caught = invoke_machine(sfn, "nf-2", {"FunctionName": "nope"}, catch="Lambda.ResourceNotFoundException")
    assert run(sfn, caught, {})["status"] == "SUCCEEDED"
    # a bare function ARN as the resource fails the same way (moto called it "Exception")
    bare = {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:nope", "End": True}
    failed = run(sfn, machine(sfn, "nf-3", {"Call": bare}, "Call"), {})
    assert failed["error"] == "Lambda.ResourceNotFoundException"
    assert failed["cause"].startswith("Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope (")


def test_the_256_kib_limit_counts_compact_json_bytes_up_to_and_including_262144(sfn: Any, lambdas: Any) -> None:
    def call(name: str) -> dict[str, Any]:
        task = {"Type": "Task", "Resource": f"arn:aws:lambda:us-east-1:123456789012:function:{name}", "End": True}
        return run(sfn, machine(sfn, f"limit-{name}", {"Call": task}, "Call"), {})

    # a string of 262,143 characters is 262,145 bytes of JSON (moto counted it without its quotes)
    too_big = call("big_text")
    assert (too_big["status"], too_big["error"]) == ("FAILED", "States.DataLimitExceeded")
    # exactly 262,144 bytes as compact JSON is within the limit (moto counted ", " separators)
    assert call("big_list")["status"] == "SUCCEEDED"


def test_a_wait_beyond_the_executions_one_year_maximum_times_it_out_at_once(sfn: Any) -> None:
    # Given Waits ending after the one-year maximum (moto waited, or failed with an OverflowError as cause)
    ahead = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=731)).strftime("%Y-%m-%dT%H:%M:%SZ")
    far = "9999-12-31T23:59:59Z"
    branch = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": far, "End": True}}}
    in_parallel = {"Type": "Parallel", "Branches": [branch], "Next": "Done"}
    for name, wait in (
        ("wait-2y", {"Type": "Wait", "Timestamp": ahead, "Next": "Done"}),
        ("wait-far", {"Type": "Wait", "Timestamp": far, "Next": "Done"}),
        ("wait-in-parallel", in_parallel),  # the execution times out, not only its branch
    ):
        states = {"W": wait, "Done": {"Type": "Pass", "End": True}}
        arn = machine(sfn, name, states, "W")
        execution = sfn.start_execution(stateMachineArn=arn, name=name)["executionArn"]
        # Then the execution ends at once, timed out as AWS ends it when its year is up
        described = wait_until(
            lambda arn=execution: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
            timeout=10,
        )
        assert described["status"] == "TIMED_OUT", described
        events = [e["type"] for e in sfn.get_execution_history(executionArn=execution)["events"]]
        assert events[-1] == "ExecutionTimedOut" and "PassStateEntered" not in events
    # and a Wait within the year still waits for its time
    short = {"W": {"Type": "Wait", "Seconds": 0, "End": True}}
    assert run(sfn, machine(sfn, "wait-0", short, "W"), {})["status"] == "SUCCEEDED"


def test_optimized_lambda_and_dynamodb_results_carry_the_sdk_metadata_aws_returns(sfn: Any, lambdas: Any) -> None:
    # Given the optimized Lambda and DynamoDB integrations, and DynamoDB through aws-sdk
    invoked = json.loads(run(sfn, invoke_machine(sfn, "meta-lambda", {"FunctionName": "text"}), {})["output"])
    arn = put_item_machine(sfn, "meta-ddb", {"ResultPath": "$.put", "Next": "Read"})
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    key = {"PK": {"S": "written"}}
    definition["States"]["Read"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:getItem",
        "Parameters": {"TableName": "meta-ddb", "Key": key},
        "ResultPath": "$.got",
        "Next": "Sdk",
    }
    definition["States"]["Sdk"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
        "Parameters": {"TableName": "meta-ddb", "Key": key},
        "ResultPath": "$.sdk",
        "End": True,
    }
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition))
    output = json.loads(run(sfn, arn, {})["output"])
    # Then the optimized results have AWS's fields (moto's had only the API's output); aws-sdk has none
    assert set(invoked) == {"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"}
    assert set(output["put"]) == {"SdkHttpMetadata", "SdkResponseMetadata"}
    assert set(output["got"]) == {"Item", "SdkHttpMetadata", "SdkResponseMetadata"}
    assert set(output["sdk"]) == {"Item"}
    metadata = output["got"]["SdkHttpMetadata"]
    assert metadata["HttpStatusCode"] == 200 and metadata["HttpHeaders"]["Content-Type"] == "application/x-amz-json-1.0"
    assert metadata["AllHttpHeaders"]["x-amzn-RequestId"] == [output["got"]["SdkResponseMetadata"]["RequestId"]]


def test_upstream_sends_s3_eventbridge_notifications_only_to_its_own_events_backend() -> None:
    # Adaptation 13 hooks this function; if moto renames it or starts delivering to targets, re-check the hook.
    from moto.s3 import notifications

    assert callable(notifications.send_event) and hasattr(notifications, "_send_event_bridge_message")


def test_objects_created_in_an_eventbridge_bucket_reach_the_listener_with_their_identity() -> None:
    created: list[tuple[Any, ...]] = []
    with mock_aws():
        moto_adaptations.on_object_created(lambda *args: created.append(args))
        try:
            s3 = boto3.client("s3", region_name="us-east-1")
            for bucket in ("events-on", "events-off"):
                s3.create_bucket(Bucket=bucket)
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_notification_configuration(
                Bucket="events-on", NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
            # When objects are put, copied and uploaded in parts, in a bucket with EventBridge on and one without
            put = s3.put_object(Bucket="events-on", Key="data/a.csv", Body=b"a,b\n1,2\n")
            s3.copy_object(
                Bucket="events-on", Key="data/b.csv", CopySource={"Bucket": "events-on", "Key": "data/a.csv"}
            )
            upload = s3.create_multipart_upload(Bucket="events-on", Key="data/c.csv")
            part = s3.upload_part(
                Bucket="events-on", Key="data/c.csv", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 10
            )
            s3.complete_multipart_upload(
                Bucket="events-on",
                Key="data/c.csv",
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
            )
            s3.put_object(Bucket="events-off", Key="data/a.csv", Body=b"a")
        finally:
            moto_adaptations.on_object_created(None)
    # Then each object created where EventBridge is on is reported once, with version, size, ETag and reason
    assert [(c[0], c[1], c[5]) for c in created] == [
        ("events-on", "data/a.csv", "PutObject"),
        ("events-on", "data/b.csv", "CopyObject"),
        ("events-on", "data/c.csv", "CompleteMultipartUpload"),
    ]
    assert created[0][2] == put["VersionId"] and created[0][3] == 8 and created[0][4] == put["ETag"].strip('"')


def test_upstream_still_builds_a_client_per_call_and_announces_endings_through_terminated() -> None:
    # Adaptations 3 and 14 hook these; if moto changes them, re-check both.
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    upstream = moto_adaptations._original_boto_client_for
    assert upstream.__module__ == "moto.stepfunctions.parser.asl.utils.boto_client"
    with mock_aws():
        assert upstream(region="us-east-1", service="dynamodb") is not upstream(region="us-east-1", service="dynamodb")
    assert "terminated" in BaseExecutionWorkerCommunication.__dict__


def test_a_waiting_sync_task_wakes_when_work_ends_not_when_its_poll_comes_round() -> None:
    import threading

    # Given a task waiting for its child, with a fallback far longer than the test's deadline
    seen = moto_adaptations.work_generation()
    woke = threading.Event()
    waiter = threading.Thread(
        target=lambda: (moto_adaptations.wait_for_work_to_end(seen, timeout=60), woke.set()), daemon=True
    )
    waiter.start()
    # When an execution or job ends, Then it wakes at once
    moto_adaptations.notify_work_ended()
    assert woke.wait(10), "the waiting task did not wake on the ending"
    # And an ending announced before it started waiting is not missed
    assert moto_adaptations.wait_for_work_to_end(seen, timeout=60) is None


def test_the_interpreter_reuses_one_client_per_service(sfn: Any) -> None:
    from types import SimpleNamespace

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_dynamodb

    first = state_task_service_dynamodb.boto_client_for(region="us-east-1", service="dynamodb")
    again = state_task_service_dynamodb.boto_client_for(region="us-east-1", service="dynamodb")
    assert first is again
    # (tasks pass the state machine's credentials: one client per role too)
    role = SimpleNamespace(role_arn="arn:aws:iam::123456789012:role/states")
    with_role = state_task_service_dynamodb.boto_client_for("us-east-1", "dynamodb", role)
    assert with_role is state_task_service_dynamodb.boto_client_for("us-east-1", "dynamodb", role)
    assert moto_adaptations._original_boto_client_for(region="us-east-1", service="dynamodb") is not first


def _table_with_partitions(ddb: Any) -> None:
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "G", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "G", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for run in ("a", "b", "c"):
        for unit in ("train", "evaluate", "RUN", "preprocess"):
            ddb.put_item(
                TableName="t",
                Item={"PK": {"S": f"RUN#{run}"}, "SK": {"S": unit}, "G": {"S": "all"}, "run": {"S": run}},
            )


def test_a_table_query_reads_its_partition_in_sort_key_order_and_leaves_index_queries_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models.table import Table

    moto_adaptations.apply()
    listed: list[int] = []  # how many items each listing of the table's items returned
    items_of = Table.all_items
    monkeypatch.setattr(Table, "all_items", lambda table: (found := items_of(table), listed.append(len(found)))[0])
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        # Given a table holding three runs' records
        _table_with_partitions(ddb)

        # When one run is queried, in pages of two and backwards
        def sort_keys(**extra: Any) -> list[str]:
            keys, start = [], None
            while True:
                page = ddb.query(
                    TableName="t",
                    KeyConditionExpression="PK = :pk",
                    ExpressionAttributeValues={":pk": {"S": "RUN#b"}},
                    Limit=2,
                    **({"ExclusiveStartKey": start} if start else {}),
                    **extra,
                )
                assert {i["run"]["S"] for i in page["Items"]} <= {"b"}
                keys += [i["SK"]["S"] for i in page["Items"]]
                if "LastEvaluatedKey" not in page:
                    return keys
                start = page["LastEvaluatedKey"]

        # Then it gets that run's records only, in sort-key order, without listing the table
        assert sort_keys() == ["RUN", "evaluate", "preprocess", "train"]
        assert sort_keys(ScanIndexForward=False) == ["train", "preprocess", "evaluate", "RUN"]
        assert listed and max(listed) == 4
        # And a partition nobody wrote is empty (and stays unwritten)
        missing = ddb.query(
            TableName="t", KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "RUN#z"}}
        )
        assert missing["Items"] == [] and ddb.scan(TableName="t", Select="COUNT")["Count"] == 12
        # And an index query still sees every partition, through moto's own listing
        indexed = ddb.query(
            TableName="t",
            IndexName="by-g",
            KeyConditionExpression="G = :g",
            ExpressionAttributeValues={":g": {"S": "all"}},
        )
        assert len(indexed["Items"]) == 12 and max(listed) == 12


def test_upstream_table_query_lists_the_whole_table_and_the_dispatcher_lists_moto_per_request() -> None:
    # Adaptations 15 and 16 hook these two places; if moto stops doing either, drop the adaptation.
    import inspect

    from moto.dynamodb.models.table import Table
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    moto_adaptations.apply()
    assert "for item in self.all_items()" in inspect.getsource(Table.query.__wrapped__)
    assert "backends.list_of_moto_modules()" in inspect.getsource(DomainDispatcherApplication.get_backend_for_host)


def test_the_service_dispatcher_finds_backends_without_listing_moto_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    moto_adaptations.apply()
    listed: list[int] = []
    monkeypatch.setattr(moto_adaptations, "_moto_modules", None)
    original = moto_adaptations._original_list_of_moto_modules
    monkeypatch.setattr(moto_adaptations, "_original_list_of_moto_modules", lambda: listed.append(1) or original())
    dispatcher = DomainDispatcherApplication.__new__(DomainDispatcherApplication)
    dispatcher.backend_url_patterns = []
    for _ in range(3):
        assert dispatcher.get_backend_for_host("dynamodb") == "dynamodb"
        assert dispatcher.get_backend_for_host("stepfunctions") == "stepfunctions"
    assert dispatcher.get_backend_for_host("no-such-service") is None
    assert len(listed) == 1


def test_dynamodb_item_responses_written_directly_are_the_bodies_moto_would_serialise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.responses import DynamoResult

    moto_adaptations.apply()
    compared: dict[str, int] = {}

    def both(result: Any, context: Any) -> Any:
        ours = moto_adaptations._execute_dynamodb_result(result, context)
        theirs = moto_adaptations._original_dynamodb_execute_result(result, context)
        name = context.operation_model.name
        assert ours[0] == theirs[0] and ours[1]["Content-Type"] == theirs[1]["Content-Type"], name
        assert json.loads(ours[2]) == json.loads(theirs[2]), name
        compared[name] = compared.get(name, 0) + 1
        return ours

    monkeypatch.setattr(DynamoResult, "execute_result", both)
    direct: list[str] = []
    plain = moto_adaptations._plain_json

    def recording(value: Any) -> Any:
        if isinstance(value, dict):
            direct.extend(value)
        return plain(value)

    monkeypatch.setattr(moto_adaptations, "_plain_json", recording)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _table_with_partitions(ddb)
        # Given an item with every attribute type, quotes and non-ASCII text
        item = {
            "PK": {"S": "RUN#typed"},
            "SK": {"S": "RUN"},
            "n": {"N": "1.50"},
            "b": {"B": b"\x00\xff"},
            "ss": {"SS": ["x", "y"]},
            "ns": {"NS": ["1", "2"]},
            "bs": {"BS": [b"a", b"\x01"]},
            "m": {"M": {"q": {"L": [{"NULL": True}, {"BOOL": False}, {"S": 'é"\\'}, {"B": b"\x02"}]}}},
        }
        key = {"PK": item["PK"], "SK": item["SK"]}
        typed = {":pk": {"S": "RUN#typed"}}
        # When every item operation reads or writes it, with capacity and item collection metrics asked for
        ddb.put_item(TableName="t", Item=item, ReturnConsumedCapacity="TOTAL", ReturnValues="ALL_OLD")
        ddb.put_item(TableName="t", Item=item, ReturnValues="ALL_OLD")
        got = ddb.get_item(TableName="t", Key=key, ReturnConsumedCapacity="INDEXES")
        ddb.get_item(TableName="t", Key={"PK": {"S": "none"}, "SK": {"S": "none"}})
        ddb.query(TableName="t", KeyConditionExpression="PK = :pk", ExpressionAttributeValues=typed)
        ddb.query(
            TableName="t",
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": "RUN#a"}},
            Limit=1,
            ProjectionExpression="SK, #r",
            ExpressionAttributeNames={"#r": "run"},
        )
        ddb.query(TableName="t", KeyConditionExpression="PK = :pk", ExpressionAttributeValues=typed, Select="COUNT")
        ddb.scan(TableName="t", Limit=5, ReturnConsumedCapacity="TOTAL")
        ddb.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET z = :z",
            ExpressionAttributeValues={":z": {"N": "3"}},
            ReturnValues="ALL_NEW",
        )
        ddb.update_item(TableName="t", Key=key, UpdateExpression="REMOVE z", ReturnValues="UPDATED_OLD")
        ddb.batch_get_item(RequestItems={"t": {"Keys": [key, {"PK": {"S": "RUN#a"}, "SK": {"S": "RUN"}}]}})
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key}}])
        ddb.delete_item(TableName="t", Key=key, ReturnValues="ALL_OLD")
        # Then moto's serializer would have written the same bodies, and the client reads the binary values back
    assert set(compared) >= moto_adaptations.PLAIN_ITEM_OPERATIONS
    assert {"Item", "Items", "Attributes", "Responses"} <= set(direct)  # they took the direct path
    assert got["Item"]["b"]["B"] == b"\x00\xff" and got["Item"]["bs"]["BS"] == [b"a", b"\x01"]


def test_a_jsonata_expression_is_parsed_once_and_its_evaluator_is_built_as_the_library_builds_it() -> None:
    import jsonata

    # Given the library's own evaluator and ours over the cached tree
    fresh = jsonata.Jsonata("$x.a + 1")
    ours = moto_adaptations._jsonata_query("$x.a + 1")
    # Then they have the same fields with the same settings (if the library adds one, this fails)
    assert set(vars(ours)) == set(vars(fresh))
    for field in ("regex_engine", "timeout", "stack", "errors", "input", "validate_input", "output_convert_nulls"):
        assert getattr(ours, field) == getattr(fresh, field), field
    # And the tree is reused, and evaluating does not change it
    assert moto_adaptations._parsed_jsonata("$x.a + 1") is ours.ast
    assert [moto_adaptations.evaluate_jsonata("$x.a + 1", {"x": {"a": n}}) for n in (1, 2)] == [2, 3]
    with pytest.raises(Exception, match="before end of expression"):  # a syntax error still raises
        moto_adaptations.evaluate_jsonata("$x.(", {})


def test_update_model_package_changes_only_what_it_is_given_and_announces_approval_changes() -> None:
    moto_adaptations.apply()
    announced: list[dict[str, Any]] = []
    moto_adaptations.on_model_package_changed(announced.append)
    try:
        with mock_aws():
            sagemaker = boto3.client("sagemaker", region_name="us-east-1")
            sagemaker.create_model_package_group(ModelPackageGroupName="g")
            # Given a package with metadata, pending approval
            arn = sagemaker.create_model_package(
                ModelPackageGroupName="g",
                ModelApprovalStatus="PendingManualApproval",
                CustomerMetadataProperties={"sfn-mlops:run-id": "r1"},
            )["ModelPackageArn"]
            # When a person approves it (status and description only)
            sagemaker.update_model_package(
                ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok"
            )
            described = sagemaker.describe_model_package(ModelPackageName=arn)
            # Then its metadata stays (moto cleared it), and creating and approving it were both announced
            assert described["CustomerMetadataProperties"] == {"sfn-mlops:run-id": "r1"}
            assert described["ModelApprovalStatus"] == "Approved"
            assert [a["ModelApprovalStatus"] for a in announced] == ["PendingManualApproval", "Approved"]
            # And a metadata-only update keeps the approval and announces nothing
            sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"note": "x"})
            described = sagemaker.describe_model_package(ModelPackageName=arn)
            assert described["ModelApprovalStatus"] == "Approved" and described["ApprovalDescription"] == "ok"
            assert described["CustomerMetadataProperties"] == {"sfn-mlops:run-id": "r1", "note": "x"}
            assert len(announced) == 2
    finally:
        moto_adaptations.on_model_package_changed(None)
