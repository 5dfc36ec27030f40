"""Read template.yaml and resolve it for the local runtime: the template is the only source of resources."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


@dataclass
class LocalFunction:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    events: dict[str, dict[str, Any]]


@dataclass
class LocalStateMachine:
    logical_id: str
    name: str
    arn: str
    definition_path: Path
    substitutions: dict[str, str]


@dataclass
class ResolvedTemplate:
    root: Path
    stack_name: str
    raw: dict[str, Any]
    parameters: dict[str, str | list[str]]
    physical: dict[str, dict[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------ intrinsic functions
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.physical[logical][attribute]
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::FindInMap":
                name, key1, key2 = (self.resolve(a) for a in arg)
                return self.raw["Mappings"][name][key1][key2]
            if fn == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if fn == "Fn::Join":
                separator, items = arg
                resolved = self.resolve(items)  # a list, or a Ref to a list parameter
                return separator.join(
                    str(self.resolve(i)) for i in (resolved if isinstance(resolved, list) else [resolved])
                )
        return {k: self.resolve(v) for k, v in value.items()}

    def condition(self, name: str) -> bool:
        spec = self.raw.get("Conditions", {})[name]
        if "Fn::Equals" in spec:
            left, right = (self.resolve(v) for v in spec["Fn::Equals"])
            return bool(left == right)
        raise NotImplementedError(f"condition {name}: only Fn::Equals is supported locally")

    def _ref(self, name: str) -> str | list[str]:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.stack_name,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical[name]["Ref"]

    def _sub(self, arg: Any) -> str:
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.physical[logical][attribute]
            return str(self._ref(name))

        return _SUB_VAR.sub(replace, template)

    # ------------------------------------------------------------ views
    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == type_}

    def globals_env(self) -> dict[str, str]:
        variables = self.raw.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        return {k: str(self.resolve(v)) for k, v in variables.items()}

    def functions(self) -> dict[str, LocalFunction]:
        result = {}
        global_handler = self.raw.get("Globals", {}).get("Function", {}).get("Handler", "app.lambda_handler")
        for logical, resource in self.resources("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = self.globals_env()
            env.update({k: str(self.resolve(v)) for k, v in props.get("Environment", {}).get("Variables", {}).items()})
            result[logical] = LocalFunction(
                logical_id=logical,
                name=self.physical[logical]["Ref"],
                arn=self.physical[logical]["Arn"],
                code_dir=self.root / props["CodeUri"],
                handler=props.get("Handler", global_handler),
                environment=env,
                events={k: self.resolve(v) for k, v in props.get("Events", {}).items()},
            )
        return result

    def state_machines(self) -> dict[str, LocalStateMachine]:
        result = {}
        for logical, resource in self.resources("AWS::Serverless::StateMachine").items():
            props = resource["Properties"]
            result[logical] = LocalStateMachine(
                logical_id=logical,
                name=self.physical[logical]["Name"],
                arn=self.physical[logical]["Ref"],
                definition_path=self.root / props["DefinitionUri"],
                substitutions={k: str(self.resolve(v)) for k, v in props.get("DefinitionSubstitutions", {}).items()},
            )
        return result

    def definition(self, machine: LocalStateMachine) -> str:
        text = machine.definition_path.read_text()
        missing = sorted(set(_SUB_VAR.findall(text)) - set(machine.substitutions))
        if missing:
            raise ValueError(f"{machine.definition_path.name} uses undefined substitutions: {', '.join(missing)}")
        for name, value in machine.substitutions.items():
            text = text.replace("${" + name + "}", value)
        json.loads(text)
        return text


def _physical_ids(raw: dict[str, Any], stack: str) -> dict[str, dict[str, str]]:
    """Names and ARNs as CloudFormation would give them, made predictable for local use."""
    ids: dict[str, dict[str, str]] = {}
    for logical, resource in raw["Resources"].items():
        kind = resource["Type"]
        name = f"{stack}-{logical}"
        if kind == "AWS::DynamoDB::Table":
            ids[logical] = {"Ref": name, "Arn": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}
        elif kind == "AWS::S3::Bucket":
            bucket = name.lower()
            ids[logical] = {"Ref": bucket, "Arn": f"arn:{PARTITION}:s3:::{bucket}"}
        elif kind == "AWS::Serverless::Function":
            arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"
            ids[logical] = {"Ref": name, "Arn": arn}
        elif kind == "AWS::Serverless::StateMachine":
            arn = f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            ids[logical] = {"Ref": arn, "Arn": arn, "Name": name}
        elif kind == "AWS::IAM::Role":
            ids[logical] = {"Ref": name, "Arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"}
        elif kind == "AWS::SQS::Queue":
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            ids[logical] = {"Ref": url, "Arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name}
        elif kind == "AWS::Logs::LogGroup":
            ids[logical] = {"Ref": name, "Arn": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"}
        else:
            ids[logical] = {"Ref": f"arn:{PARTITION}:local:{REGION}:{ACCOUNT}:{logical}:{name}"}
    return ids


def _default(spec: dict[str, Any]) -> str | list[str]:
    """A parameter's default as CloudFormation passes it: a CommaDelimitedList is a list (e.g. in IAM conditions)."""
    value = str(spec.get("Default", ""))
    return [item.strip() for item in value.split(",")] if spec.get("Type") == "CommaDelimitedList" else value


def read_template_yaml(path: Path) -> dict[str, Any]:
    """template.yaml as plain data, CloudFormation's short forms as their long forms (``!Ref X`` -> ``{"Ref": "X"}``,
    ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` -> ``{"Fn::Sub": "s"}``), as cfn-lint and SAM read it
    (tests/unit/local/test_template_yaml.py compares them). libyaml's loader: cfn-lint's decoder took ~0.7 s to import
    (sympy) and 0.1 s to parse, in every process that starts a local runtime (decision 0030)."""
    import yaml

    class Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
        pass

    def short_form(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}

    def mapping(loader: Any, node: Any) -> dict[str, Any]:
        # Keys are text, as in JSON and CloudFormation (a Mappings key 1 is "1"); a key given twice is an error,
        # as cfn-lint reports it, not the last one silently winning.
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node, deep=True))
            if key in result:
                raise ValueError(f"{path.name} line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            result[key] = loader.construct_object(value_node, deep=True)
        return result

    Loader.add_multi_constructor("!", short_form)
    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    # A bare date is text to CloudFormation (AWSTemplateFormatVersion: 2010-09-09), not a YAML timestamp
    Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    with path.open(encoding="utf-8") as f:
        data = yaml.load(f, Loader=Loader)  # a SafeLoader, with constructors for the short forms only
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: expected a mapping at the top")
    return data


def load_template(root: Path, stack_name: str = "sfn-mlops-local") -> ResolvedTemplate:
    raw = read_template_yaml(root / "template.yaml")
    parameters = {name: _default(spec) for name, spec in raw.get("Parameters", {}).items()}
    return ResolvedTemplate(
        root=root,
        stack_name=stack_name,
        raw=raw,
        parameters=parameters,
        physical=_physical_ids(raw, stack_name),
    )
