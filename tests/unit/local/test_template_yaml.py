"""template.yaml read by the local runtime's own YAML loader exactly as cfn-lint (and so CloudFormation's tooling)
reads it: the local runtime's resources come from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfn_mlops_local.local.template import read_template_yaml
from tests.conftest import ROOT


def _plain(value: object) -> object:
    return json.loads(json.dumps(value, default=str))  # cfn-lint keeps a bare date as a date: compare as text


def test_template_yaml_reads_as_cfn_lint_reads_it() -> None:
    # Given template.yaml, When the runtime and cfn-lint each read it, Then they agree value for value
    from cfnlint.decode import cfn_yaml

    assert _plain(read_template_yaml(ROOT / "template.yaml")) == _plain(cfn_yaml.load(str(ROOT / "template.yaml")))


def test_every_short_form_becomes_its_long_form(tmp_path: Path) -> None:
    # Given each short form CloudFormation accepts, in scalar, list and mapping shape
    text = """
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  A:
    Properties:
      Ref: !Ref Bucket
      Att: !GetAtt Role.Arn
      AttList: !GetAtt [Role, Arn]
      Sub: !Sub "${AWS::StackName}-x"
      SubMap: !Sub ["${x}", {x: !Ref Y}]
      If: !If [IsProd, 1, !Ref AWS::NoValue]
      Split: !Split [",", !Ref List]
      Map: !FindInMap [M, !Ref AWS::Region, key]
      Join: !Join ["", [a, b]]
      Select: !Select [0, !GetAZs ""]
      Cond: !Condition IsProd
      Date: 2010-09-09
"""
    (tmp_path / "t.yaml").write_text(text)
    from cfnlint.decode import cfn_yaml

    ours = _plain(read_template_yaml(tmp_path / "t.yaml"))
    # Then each reads as cfn-lint reads it (a bare date stays text, as in CloudFormation)
    assert ours == _plain(cfn_yaml.load(str(tmp_path / "t.yaml")))
    props = ours["Resources"]["A"]["Properties"]  # type: ignore[index]
    assert props["Att"] == {"Fn::GetAtt": ["Role", "Arn"]} and props["Cond"] == {"Condition": "IsProd"}


def test_a_template_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        read_template_yaml(tmp_path / "t.yaml")


def test_a_key_given_twice_is_refused_naming_it_and_its_line(tmp_path: Path) -> None:
    # Given a logical id pasted twice (cfn-lint refuses it; the last one must not silently win)
    (tmp_path / "t.yaml").write_text("Resources:\n  A:\n    Type: X\n  A:\n    Type: Y\n")
    with pytest.raises(ValueError, match=r"t\.yaml line 4: duplicate key 'A'"):
        read_template_yaml(tmp_path / "t.yaml")


def test_keys_are_text_as_in_json(tmp_path: Path) -> None:
    # Given a Mappings key YAML reads as a number, Then it is the text a !FindInMap with a parameter looks up
    (tmp_path / "t.yaml").write_text("Mappings:\n  M:\n    1:\n      v: a\n    base: &b {x: 1}\n    merged: {<<: *b}\n")
    mappings = read_template_yaml(tmp_path / "t.yaml")["Mappings"]["M"]
    assert mappings["1"] == {"v": "a"} and mappings["merged"] == {"x": 1}
