"""The template and state machines: substitutions both ways, validators, naming rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
BIN = Path(sys.executable).parent


def machines() -> dict[str, dict]:
    from sfn_mlops_local.local.template import load_template

    template = load_template(ROOT)
    return {
        logical: resource["Properties"]
        for logical, resource in template.raw["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


def test_every_asl_file_belongs_to_a_state_machine() -> None:
    used = {Path(p["DefinitionUri"]).name for p in machines().values()}
    assert used == {p.name for p in (ROOT / "statemachines").glob("*.asl.json")}


@pytest.mark.parametrize("logical", sorted(machines()))
def test_asl_placeholders_match_definition_substitutions_both_ways(logical: str) -> None:
    props = machines()[logical]
    text = (ROOT / props["DefinitionUri"]).read_text()
    placeholders = set(PLACEHOLDER.findall(text))
    substitutions = set(props.get("DefinitionSubstitutions", {}))
    assert placeholders - substitutions == set(), "placeholders without a substitution"
    assert substitutions - placeholders == set(), "substitutions the definition never uses"


@pytest.mark.parametrize("logical", sorted(machines()))
def test_state_names_follow_the_naming_rules(logical: str) -> None:
    definition = json.loads((ROOT / machines()[logical]["DefinitionUri"]).read_text())
    for name, state in definition["States"].items():
        if state["Type"] == "Choice":
            assert name.endswith("?"), f"Choice {name!r} should be a question"
        assert state["Type"] != "Task" or (name[0].isupper() and " " in name), f"Task {name!r} should be a verb phrase"
        assert "arn:aws:" not in json.dumps(state), f"{name}: ARNs come through DefinitionSubstitutions"


def _jsonata_expressions(value: object) -> Iterator[str]:
    """Every ``{% ... %}`` expression in a definition (field values only: keys are never evaluated)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{%") and text.endswith("%}"):
            yield text[2:-2]
    elif isinstance(value, dict):
        for item in value.values():
            yield from _jsonata_expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _jsonata_expressions(item)


@pytest.mark.parametrize("logical", sorted(machines()))
def test_every_jsonata_expression_parses(logical: str) -> None:
    # statelint 3.1.0 checks JSONata states' fields (Arguments, Output, Assign, Condition, Fail's Error and
    # Cause; no JSONPath fields in a JSONata state) but not the expressions inside {% %}, and neither
    # cfn-lint nor sam validate looks into the ASL: parse each one with jsonata-python, as the local
    # interpreter does, so that a typo fails here rather than in the middle of a run.
    import jsonata

    definition = json.loads((ROOT / machines()[logical]["DefinitionUri"]).read_text())
    for expression in _jsonata_expressions(definition["States"]):
        try:
            jsonata.Jsonata(expression)
        except Exception as exc:  # jsonata-python raises its own JException
            pytest.fail(f"{logical}: {{% {expression} %}} does not parse: {exc}")


# Actions IAM grants only on "*" (no resource-level permissions), with what limits them instead.
ONLY_ON_EVERY_RESOURCE = {
    "ecr:GetAuthorizationToken",  # the pulls themselves are limited to SageMaker's image repositories
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",  # limited by a cloudwatch:namespace condition
    "logs:CreateLogDelivery",  # vended log delivery for state machine logging
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # List calls name no resource; the deploy workers use them to adopt what an earlier attempt created.
    "sagemaker:ListModels",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListEndpoints",
}


def _statements(value: object) -> list[dict]:
    """Every IAM policy statement anywhere in the template (roles, function and state machine policies)."""
    if isinstance(value, dict):
        found = [value] if "Effect" in value and ("Action" in value or "NotAction" in value) else []
        return found + [s for v in value.values() for s in _statements(v)]
    if isinstance(value, list):
        return [s for v in value for s in _statements(v)]
    return []


def test_adding_a_pipeline_is_adding_a_folder_no_pipeline_is_named_in_the_stack() -> None:
    # Given every pipeline folder under models/
    pipelines = sorted(path.parent.name for path in (ROOT / "models").glob("*/pipeline.json"))
    assert pipelines, "no pipeline folders found"
    # When the template, the sample config and every state machine are read
    stack_files = [ROOT / "template.yaml", ROOT / "samconfig.toml", *sorted((ROOT / "statemachines").glob("*.json"))]
    # Then none names a pipeline: schedules, groups and flows come from each pipeline's own pipeline.json
    for path in stack_files:
        text = path.read_text(encoding="utf-8").lower()
        named = [name for name in pipelines if re.search(rf"(?<![a-z0-9-]){re.escape(name)}(?![a-z0-9])", text)]
        assert not named, f"{path.relative_to(ROOT)} names pipeline(s) {named}"


def test_iam_grants_every_resource_only_where_aws_allows_nothing_narrower() -> None:
    from sfn_mlops_local.local.template import load_template

    raw = load_template(ROOT).raw
    for statement in _statements(raw["Resources"]):
        if statement["Effect"] == "Allow" and statement.get("Resource") == "*":
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert set(actions) <= ONLY_ON_EVERY_RESOURCE, f"narrow the resource of {actions}"
    # Functions have their own roles: SAM would otherwise attach AWSLambdaBasicExecutionRole (logs on "*")
    functions = {k: r for k, r in raw["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    for logical, function in functions.items():
        assert "Role" in function["Properties"] and "Policies" not in function["Properties"], logical
        assert function["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": f"{logical}Logs"}}, logical


def test_every_function_has_a_sample_event_and_env_vars_entry() -> None:
    from sfn_mlops_local.local.template import load_template

    template = load_template(ROOT)
    env_vars = json.loads((ROOT / "events" / "env.json").read_text())
    for logical in template.resources("AWS::Serverless::Function"):
        assert (ROOT / "events" / f"{logical}.json").exists(), f"events/{logical}.json missing"
        assert logical in env_vars, f"events/env.json has no entry for {logical}"


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


@pytest.mark.tooling
def test_cfn_lint_has_no_errors_or_warnings() -> None:
    result = subprocess.run(
        [_tool("cfn-lint"), "template.yaml", "--regions", "us-east-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


FINDINGS_RECORD = ROOT / "docs" / "decisions" / "0020-security-scan-findings.md"


def _accepted_findings() -> dict[str, set[str]]:
    """The decision record's tables: check or rule id -> the resources it is accepted for ("*": all of them)."""
    accepted: dict[str, set[str]] = {}
    for line in FINDINGS_RECORD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"CKV2?_AWS_\d+|[EWI]S?\d{4}", cells[0]):
            accepted[cells[0]] = {r.strip() for r in cells[1].split(",")}
    return accepted


@pytest.mark.tooling
def test_checkov_finds_nothing_the_decision_record_does_not_explain() -> None:
    # BC_SKIP_MAPPING and --skip-download keep checkov offline (no guideline or policy download).
    result = subprocess.run(
        [
            _tool("checkov"),
            "-f",
            "template.yaml",
            "--framework",
            "cloudformation",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        timeout=120,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0, result.stderr
    accepted = _accepted_findings()
    unexplained = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in report["results"]["failed_checks"]
        if not ({"*", f["resource"].split(".", 1)[1]} & accepted.get(f["check_id"], set()))
    ]
    assert unexplained == [], f"fix these or explain them in {FINDINGS_RECORD.name}"


@pytest.mark.tooling
def test_cfn_lint_serverless_rules_find_nothing_the_decision_record_does_not_explain() -> None:
    from sfn_mlops_local.local.template import load_template

    result = subprocess.run(
        [
            _tool("cfn-lint"),
            "template.yaml",
            "-a",
            "cfn_lint_serverless.rules",
            "--regions",
            "us-east-1",
            "--format",
            "parseable",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    resources = load_template(ROOT).raw["Resources"]

    def retained_log_group(function: str) -> bool:
        group = resources[function]["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        return bool(group) and "RetentionInDays" in resources[group]["Properties"]

    accepted = _accepted_findings()
    unexplained = []
    for line in result.stdout.splitlines():
        rule, message = line.split(":", 6)[5:7]
        subject = re.search(r"(?:Lambda function|SQS Queue) (\w+)", message)
        name = subject.group(1) if subject else ""
        if rule == "WS1004" and retained_log_group(name):
            continue  # named /aws/lambda/<stack>/<function>, referenced from the function (see the record)
        if rule != "WS1004" and name in accepted.get(rule, set()):
            continue
        unexplained.append(line)
    assert unexplained == [], f"fix these or explain them in {FINDINGS_RECORD.name}"
    assert result.returncode in (0, 4, 6, 8, 12, 14), result.stderr  # findings, not a crash


@pytest.mark.tooling
def test_sam_validate_lint_passes() -> None:
    result = subprocess.run(
        [_tool("sam"), "validate", "--lint", "--region", "us-east-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.tooling
def test_statelint_accepts_every_state_machine() -> None:
    files = sorted(str(p) for p in (ROOT / "statemachines").glob("*.asl.json"))
    result = subprocess.run([_tool("statelint"), *files], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tooling
def test_sam_build_without_a_container(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    result = subprocess.run(
        [
            _tool("sam"),
            "build",
            "--region",
            "us-east-1",
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The layer carries the domain package and its dependencies under python/, as Lambda expects.
    assert (build_dir / "SharedLayer" / "python" / "sfn_mlops" / "planner.py").exists()
    assert (build_dir / "SharedLayer" / "python" / "aws_lambda_powertools").is_dir()
    assert (build_dir / "PlanRunFunction" / "app.py").exists()
