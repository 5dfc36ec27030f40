"""The CI workflow (.github/workflows/pipelines.yml): actionlint finds nothing, and it does what docs/ci.md says."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sfn_mlops_local import cli
from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PIPELINES = ROOT / ".github" / "workflows" / "pipelines.yml"
BIN = Path(sys.executable).parent


def workflow() -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(PIPELINES.read_text())
    # YAML 1.1 reads the key `on` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def mlops_commands(text: str) -> list[list[str]]:
    """Each ``mlops ...`` command line of a script, its shell variables standing for a pipeline name."""
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("mlops "):
            words = shlex.split(re.sub(r'"\$[A-Z_]+"', "abalone", line.split(">")[0]))
            commands.append(words[1:])
    return commands


@pytest.mark.tooling
def test_actionlint_finds_nothing_in_any_workflow() -> None:
    # actionlint also runs shellcheck on every run: script when shellcheck is on PATH.
    assert WORKFLOWS, "no workflow in .github/workflows"
    tool = BIN / "actionlint"
    result = subprocess.run(
        [str(tool) if tool.exists() else shutil.which("actionlint") or "actionlint", "-oneline", *map(str, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_the_matrix_of_pipelines_comes_from_mlops_changed_on_the_full_history() -> None:
    jobs = workflow()["jobs"]
    changed = jobs["changed"]
    assert "mlops changed --base" in scripts(changed) and "--json" in scripts(changed)
    checkout = next(step for step in changed["steps"] if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # a shallow clone has no base commit to compare with
    for name in ("run", "promote"):
        assert jobs[name]["needs"] == "changed"
        assert jobs[name]["strategy"]["matrix"]["pipeline"] == "${{ fromJSON(needs.changed.outputs.pipelines) }}"
        assert "needs.changed.outputs.any == 'true'" in jobs[name]["if"]


def test_a_pull_request_publishes_and_runs_each_changed_pipeline_on_the_stack() -> None:
    run = workflow()["jobs"]["run"]
    assert "github.event_name == 'pull_request'" in run["if"]
    assert [c[0] for c in mlops_commands(scripts(run))] == ["publish", "run"]
    assert all("--stack" in command for command in mlops_commands(scripts(run)))


def test_promotion_waits_for_a_person_in_an_environment_and_only_on_main() -> None:
    promote = workflow()["jobs"]["promote"]
    assert promote["environment"] == "production"  # required reviewers there: the manual approval step
    assert "github.ref == 'refs/heads/main'" in promote["if"] and "github.event_name == 'push'" in promote["if"]
    assert "promote" in [c[0] for c in mlops_commands(scripts(promote))]


def test_ci_never_approves_a_model_package() -> None:
    # Approval is a person's act, recorded with who and why (ARCHITECTURE.md): CI promotes what one approved.
    for job in workflow()["jobs"].values():
        assert "approve" not in [c[0] for c in mlops_commands(scripts(job))]


def test_aws_credentials_come_from_oidc_not_from_stored_keys() -> None:
    text = PIPELINES.read_text()
    assert "aws-access-key-id" not in text and "secrets." not in text
    for name in ("run", "promote"):
        job = workflow()["jobs"][name]
        assert job["permissions"]["id-token"] == "write"
        login = next(s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
        assert login["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert workflow()["permissions"] == {"contents": "read"}


def test_every_action_is_pinned_to_a_full_commit_sha() -> None:
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_every_mlops_command_in_the_workflow_parses_with_the_cli() -> None:
    # A renamed flag or command would otherwise show only on GitHub.
    commands = [c for job in workflow()["jobs"].values() for c in mlops_commands(scripts(job))]
    assert len(commands) >= 4
    for command in commands:
        args = cli.parser().parse_args(command)
        assert args.handler is not None, command
