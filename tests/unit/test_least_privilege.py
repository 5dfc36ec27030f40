"""Least privilege and containment in template.yaml: dead-letter queues, state machine timeouts, the network
isolation and cost guardrail Denys, and DynamoDB LeadingKeys conditions checked against what the code touches."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, ROOT, TABLE

RUN_ID = "abalone-20261123t101500-1a2b3c4d"
RESOURCES_WITH_LEADING_KEYS = ("TriggerFunctionRole", "ReleaseLockFunctionRole", "Executor", "TrainingFlow")


def template() -> Any:
    from sfn_mlops_local.local.template import load_template

    return load_template(ROOT)


def statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The IAM statements of a role (Policies) or of a SAM state machine (Policies with Statement)."""
    found = []
    for policy in resource["Properties"].get("Policies", []):
        if isinstance(policy, dict):
            document = policy.get("PolicyDocument", policy)
            found += document.get("Statement", []) if isinstance(document, dict) else []
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- dead-letter queues
def test_every_eventbridge_and_scheduler_target_dead_letters_to_an_encrypted_queue_of_the_stack() -> None:
    resolved = template()
    queues = resolved.resources("AWS::SQS::Queue")
    targets = 0
    for function in resolved.functions().values():
        for name, event in function.events.items():
            if event["Type"] not in ("EventBridgeRule", "ScheduleV2", "Schedule"):
                continue
            targets += 1
            props = event["Properties"]
            queue_arn = props.get("DeadLetterConfig", {}).get("Arn")
            (queue,) = [q for q in queues if resolved.physical[q]["Arn"] == queue_arn] or [None]
            assert queue, f"{function.logical_id}/{name} has no dead-letter queue of the stack"
            queue_props = queues[queue]["Properties"]
            assert queue_props.get("SqsManagedSseEnabled") or queue_props.get("KmsMasterKeyId"), queue
            assert props.get("RetryPolicy"), f"{function.logical_id}/{name} has no retry policy"
    assert targets == 3  # the upload and approval rules (each pipeline's schedules are made by mlops publish)


def test_only_the_stacks_rules_and_roles_may_send_to_the_dead_letter_queue() -> None:
    resolved = template()
    raw = resolved.raw["Resources"]
    policy = resolved.resolve(raw["TriggerDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    rules = {
        f"arn:aws:events:us-east-1:123456789012:rule/{event['Properties']['RuleName']}"
        for event in resolved.functions()["TriggerFunction"].events.values()
        if event["Type"] == "EventBridgeRule"
    }
    assert set(by_sid["OwnRulesOnly"]["Condition"]["ArnEquals"]["aws:SourceArn"]) == rules
    senders = set(by_sid["NobodyElse"]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
    assert senders == {resolved.physical["TriggerFunctionRole"]["Arn"], resolved.physical["BatchScheduleRole"]["Arn"]}
    # The roles that send: the trigger's (its on-failure destination), the schedules' (their dead-letter config)
    trigger = raw["TriggerFunction"]["Properties"]
    destination = trigger["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}
    for role in ("TriggerFunctionRole", "BatchScheduleRole"):
        sends = [s for s in statements(raw[role]) if "sqs:SendMessage" in as_list(s["Action"])]
        assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}], role


def test_the_documented_longest_stack_name_keeps_every_rule_name_within_eventbridges_limit() -> None:
    import re

    # Given the rules the dead-letter queue's policy names (<stack>-<suffix>) and EventBridge's 64-character limit
    resolved = template()
    names = [
        event["Properties"]["RuleName"]
        for event in resolved.functions()["TriggerFunction"].events.values()
        if event["Type"] == "EventBridgeRule"
    ]
    assert names and all(name.startswith(f"{resolved.stack_name}-") for name in names), names
    longest_suffix = max(len(name) - len(resolved.stack_name) for name in names)
    # When the decision record states the longest stack name, Then it is what the longest suffix leaves
    record = (ROOT / "docs" / "decisions" / "0020-security-scan-findings.md").read_text()
    stated = re.search(r"the stack name has\s+at most (\d+) characters", record)
    assert stated, "decision 0020 states no longest stack name"
    assert int(stated.group(1)) == 64 - longest_suffix


def test_a_pipelines_schedules_dead_letter_to_the_templates_queue_and_run_as_its_schedule_role(aws: None) -> None:
    from sfn_mlops.pipeline import parse_pipeline_config

    from sfn_mlops_local.operations import Target
    from sfn_mlops_local.pipeline_schedules import put_pipeline_schedules

    # Given the local stack's wiring for the per-pipeline schedules
    resolved = template()
    wiring = Target.local_batch_schedule(resolved.stack_name)
    target = Target.from_clients(
        boto3.client, BUCKET, TABLE, "", "test", stack_name=resolved.stack_name, batch_schedule=wiring
    )
    config = parse_pipeline_config((ROOT / "models/abalone/pipeline.json").read_text(), "pipeline.json")
    # When a pipeline's schedules are put (as mlops publish does)
    put_pipeline_schedules(target, config)
    # Then its retrain and batch schedules retry, dead-letter to the template's queue and run as its schedule role
    for kind in ("retrain", "batch"):
        schedule = boto3.client("scheduler").get_schedule(Name=f"{resolved.stack_name}-abalone-{kind}")
        assert schedule["Target"]["DeadLetterConfig"]["Arn"] == resolved.physical["TriggerDeadLetterQueue"]["Arn"]
        assert schedule["Target"]["RoleArn"] == resolved.physical["BatchScheduleRole"]["Arn"]
        assert schedule["Target"]["Arn"] == resolved.physical["TriggerFunction"]["Arn"]
        assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert schedule["State"] == "DISABLED"  # abalone's config leaves both off


# ---------------------------------------------------------------- timeouts
def test_every_state_machine_times_out_after_its_longest_legitimate_run() -> None:
    from sfn_mlops.pipeline import BatchSpec, ComputeSpec

    def longest(model: Any) -> int:
        (bound,) = [m.le for m in model.model_fields["max_runtime_s"].metadata if hasattr(m, "le")]
        return int(bound)

    resolved = template()
    timeouts = {
        logical: json.loads(machine.definition_path.read_text()).get("TimeoutSeconds")
        for logical, machine in resolved.state_machines().items()
    }
    assert all(isinstance(t, int) and 0 < t <= 365 * 86400 for t in timeouts.values()), timeouts
    for worker in ("PreprocessWorker", "TrainWorker", "EvaluateWorker"):
        assert timeouts[worker] > longest(ComputeSpec), worker
    assert timeouts["TransformWorker"] > longest(BatchSpec)
    workers = [k for k in timeouts if k.endswith("Worker")]
    assert all(timeouts["Executor"] > timeouts[w] for w in workers)
    # A flow runs its units one after the other through the executor: three jobs for training.
    assert timeouts["TrainingFlow"] > 3 * timeouts["PreprocessWorker"]
    assert timeouts["DeploymentFlow"] > 2 * timeouts["DeployWorker"]  # the deployment and its rollback
    assert timeouts["BatchFlow"] > timeouts["TransformWorker"]


# ---------------------------------------------------------------- SageMaker Denys
def sagemaker_denys(resource: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in statements(resource) if s["Effect"] == "Deny" and f"sagemaker:{action}" in as_list(s["Action"])]


def condition_keys(statement: dict[str, Any], operator: str) -> set[str]:
    return set(statement.get("Condition", {}).get(operator, {}))


@pytest.mark.parametrize(
    ("machine", "action", "keys"),
    [
        ("PreprocessWorker", "CreateProcessingJob", {"NetworkIsolation", "InterContainerTrafficEncryption"}),
        ("EvaluateWorker", "CreateProcessingJob", {"NetworkIsolation", "InterContainerTrafficEncryption"}),
        ("TrainWorker", "CreateTrainingJob", {"NetworkIsolation", "InterContainerTrafficEncryption"}),
    ],
)
def test_a_job_request_that_leaves_out_an_isolation_key_is_denied_like_one_that_turns_it_off(
    machine: str, action: str, keys: set[str]
) -> None:
    denys = sagemaker_denys(template().raw["Resources"][machine], action)
    turned_off = {k for s in denys for k in condition_keys(s, "Bool")}
    left_out = {k for s in denys for k in condition_keys(s, "Null") if s["Condition"]["Null"][k] == "true"}
    assert {f"sagemaker:{k}" for k in keys} <= turned_off
    assert turned_off <= left_out, "a Bool Deny without its Null twin lets a request that omits the key through"
    # Each condition stands alone: two keys in one Deny would only deny requests matching both.
    assert all(len(s["Condition"]) == 1 and len(next(iter(s["Condition"].values()))) == 1 for s in denys)


@pytest.mark.parametrize(
    ("machine", "action", "runtime"),
    [
        ("PreprocessWorker", "CreateProcessingJob", True),
        ("EvaluateWorker", "CreateProcessingJob", True),
        ("TrainWorker", "CreateTrainingJob", True),
        ("TransformWorker", "CreateTransformJob", False),  # transform jobs have no MaxRuntimeInSeconds key
        ("EndpointConfigWorker", "CreateEndpointConfig", False),  # nor endpoint configs
    ],
)
def test_jobs_are_held_to_the_allowed_instance_types_and_runtime(machine: str, action: str, runtime: bool) -> None:
    denys = sagemaker_denys(template().raw["Resources"][machine], action)
    other_types = [s for s in denys if "sagemaker:InstanceTypes" in condition_keys(s, "ForAnyValue:StringNotEquals")]
    assert [s["Condition"]["ForAnyValue:StringNotEquals"]["sagemaker:InstanceTypes"] for s in other_types] == [
        {"Fn::Split": [",", {"Ref": "AllowedInstanceTypes"}]}
    ]
    nulls = {k for s in denys for k in condition_keys(s, "Null")}
    # A serverless endpoint config has no instance type: a Null Deny would refuse every serverless deployment.
    assert ("sagemaker:InstanceTypes" in nulls) == (action != "CreateEndpointConfig")
    longer = [s for s in denys if "sagemaker:MaxRuntimeInSeconds" in condition_keys(s, "NumericGreaterThan")]
    assert bool(longer) == runtime and ("sagemaker:MaxRuntimeInSeconds" in nulls) == runtime


def test_every_principal_that_creates_sagemaker_compute_is_held_to_the_allowed_instance_types() -> None:
    # Given every Allow of an action that starts SageMaker compute, anywhere in the template
    creating = {"CreateProcessingJob", "CreateTrainingJob", "CreateTransformJob", "CreateEndpointConfig"}
    resources = template().raw["Resources"]
    for logical, resource in resources.items():
        granted = {
            a.split(":", 1)[1]
            for s in statements(resource)
            if s["Effect"] == "Allow"
            for a in as_list(s["Action"])
            if a.startswith("sagemaker:")
        }
        # Then each such action has its instance-type Deny beside it
        for action in sorted(granted & creating):
            denys = sagemaker_denys(resource, action)
            assert any("sagemaker:InstanceTypes" in condition_keys(s, "ForAnyValue:StringNotEquals") for s in denys), (
                logical,
                action,
            )


def allowed_instance_types(parameters: dict[str, Any]) -> set[str]:
    return set(str(parameters["AllowedInstanceTypes"]).split(","))


def test_the_default_guardrails_let_every_example_pipeline_run() -> None:
    from sfn_mlops.pipeline import parse_pipeline_config

    parameters = template().parameters
    allowed = allowed_instance_types(parameters)
    for path in sorted(ROOT.glob("models/*/pipeline.json")):
        config = parse_pipeline_config(path.read_text(), str(path))
        for unit in (config.preprocess, config.train, config.evaluate):
            assert unit.compute.instance_type in allowed, (path, unit.compute.instance_type)
            assert unit.compute.max_runtime_s <= int(parameters["MaxJobRuntimeSeconds"]), path
        assert config.batch.instance_type in allowed, path
        assert config.deploy.serverless is not None or config.deploy.instance_type in allowed, path


# ---------------------------------------------------------------- DynamoDB LeadingKeys
def leading_key_grants(logical: str) -> list[tuple[set[str], list[str]]]:
    """(DynamoDB operations, allowed partition key patterns) of each table statement of a role or state machine."""
    grants = []
    for statement in statements(template().raw["Resources"][logical]):
        actions = {a.split(":", 1)[1] for a in as_list(statement["Action"]) if a.startswith("dynamodb:")}
        if statement["Effect"] != "Allow" or not actions:
            continue
        condition = statement.get("Condition", {})
        patterns = condition.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        assert patterns, f"{logical}: a table statement without a LeadingKeys condition"
        assert condition.get("Null") == {"dynamodb:LeadingKeys": "false"}, f"{logical}: ForAllValues passes no key"
        grants.append((actions, as_list(patterns)))
    return grants


def allowed(logical: str, operation: str, partition_key: str) -> bool:
    return any(
        operation in actions and any(fnmatch.fnmatchcase(partition_key, p) for p in patterns)
        for actions, patterns in leading_key_grants(logical)
    )


@pytest.mark.parametrize("machine", ["Executor", "TrainingFlow"])
def test_state_machine_table_tasks_touch_only_the_items_their_leading_keys_allow(machine: str) -> None:
    resolved = template()
    definition = json.loads(resolved.state_machines()[machine].definition_path.read_text())
    tasks = [s for s in definition["States"].values() if s["Type"] == "Task" and ":dynamodb:" in s["Resource"]]
    assert tasks
    for task in tasks:
        operation = task["Resource"].rsplit(":", 1)[1]
        operation = operation[0].upper() + operation[1:]
        key = task["Arguments"]["Key"]["PK"]["S"]
        # The partition key is built as '<PREFIX>#' & ...: the literal prefix decides the item type.
        prefix = key.removeprefix("{%").strip().split("&", 1)[0].strip().strip("'")
        assert allowed(machine, operation, prefix + "x"), (machine, operation, key)


@pytest.fixture
def table_calls(table: str) -> list[tuple[str, str]]:
    """(operation, partition key) of every call the functions' DynamoDB client makes from now on."""
    from sfn_mlops.aws import client

    calls: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = params.get("Key") or params.get("Item") or {}
        calls.append((model.name, key.get("PK", {}).get("S", "<no key>")))

    client("dynamodb").meta.events.register("before-parameter-build.dynamodb", record)
    return calls


def test_the_lock_release_function_touches_only_run_items(
    table_calls: list[tuple[str, str]], lambda_context: Any
) -> None:
    from sfn_mlops.metadata import run_pk, serialize, unit_sk

    from tests.unit.functions.test_handlers import handler_module

    # Given a unit RUNNING under a holder that is gone and a lease long expired
    started = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    holder = "arn:aws:states:us-east-1:123456789012:execution:sfn-mlops-Executor:gone"
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item=serialize(
            {
                "PK": run_pk(RUN_ID),
                "SK": unit_sk("train"),
                "status": "RUNNING",
                "executor_execution_arn": holder,
                "started_at": started,
                "lease_s": 60,
                "attempt": 1,
            }
        ),
    )
    # When the release function runs for another execution
    event = {"run_id": RUN_ID, "unit": "train", "execution_arn": holder.replace("gone", "me")}
    result = handler_module("release_lock").lambda_handler(event, lambda_context)
    # Then it released the lock, reading and writing only what its role's LeadingKeys allow
    assert result["released"] is True
    assert {op for op, _ in table_calls} == {"GetItem", "UpdateItem"}
    assert all(allowed("ReleaseLockFunctionRole", op, pk) for op, pk in table_calls), table_calls


def test_the_trigger_touches_only_its_dedup_records(
    published: str, table_calls: list[tuple[str, str]], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfn_mlops.settings import get_settings

    from tests.unit.functions.test_handlers import handler_module, sample_event

    # Given a dataset upload and a training flow the trigger can start
    flow = boto3.client("stepfunctions").create_state_machine(
        name="test-flow",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    monkeypatch.setenv("TRAINING_FLOW_ARN", flow)
    get_settings.cache_clear()
    version = boto3.client("s3").put_object(
        Bucket=BUCKET, Key="data/abalone/abalone.csv", Body=(ROOT / "models/abalone/data/abalone.csv").read_bytes()
    )["VersionId"]
    event = sample_event("TriggerFunction")
    event["detail"]["object"]["version-id"] = version
    app = handler_module("trigger")
    # When it handles the upload twice (EventBridge delivers at least once)
    app.lambda_handler(event, lambda_context)
    app.lambda_handler(event, lambda_context)
    # Then every table call it made is on a TRIGGER# item its role allows
    assert table_calls and all(pk.startswith("TRIGGER#") for _, pk in table_calls), table_calls
    assert all(allowed("TriggerFunctionRole", op, pk) for op, pk in table_calls), table_calls


def test_every_resource_with_leading_keys_is_checked_here() -> None:
    resources = template().raw["Resources"]
    with_leading_keys = {
        logical for logical, resource in resources.items() if "dynamodb:LeadingKeys" in json.dumps(resource)
    }
    assert with_leading_keys == set(RESOURCES_WITH_LEADING_KEYS)
