"""``mlops changed``: which pipelines CI publishes and runs, from a throwaway git repository per test."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from sfn_mlops_local import cli
from sfn_mlops_local.changed import SHARED_PATHS, changed_pipelines
from tests.conftest import ROOT

# A project as `mlops` finds one (template.yaml beside statemachines/), with two pipelines and the usual rest.
PROJECT = {
    "template.yaml": "Resources: {}\n",
    "statemachines/training_flow.asl.json": "{}\n",
    "functions/plan_run/app.py": "x = 1\n",
    "layers/shared/sfn_mlops/pipeline.py": "x = 1\n",
    "src/sfn_mlops_local/containers/serving.py": "x = 1\n",
    "src/sfn_mlops_local/local/images/sagemaker-xgboost-1.7-1.txt": "xgboost==1.7.6\n",
    "src/sfn_mlops_local/local/service.py": "x = 1\n",
    "src/sfn_mlops_local/cli_report.py": "x = 1\n",
    "models/README.md": "the pipelines\n",
    "models/abalone/pipeline.json": '{"name": "abalone"}\n',
    "models/abalone/scripts/preprocess.py": "x = 1\n",
    "models/churn/pipeline.json": '{"name": "churn"}\n',
    "models/churn/scripts/preprocess.py": "x = 1\n",
    "docs/cli.md": "# cli\n",
    "tests/unit/test_x.py": "x = 1\n",
    "README.md": "# project\n",
    "requirements.lock": "rich==1\n",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def write(repo: Path, files: Mapping[str, str | None]) -> None:
    """Write each file (None: delete it)."""
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def commit(repo: Path, files: Mapping[str, str | None], message: str = "change") -> None:
    write(repo, files)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A git repository holding PROJECT in one commit on main, and the current folder."""
    # Neither the user's nor the system's git config (signing, hooks, default branch) reaches these repositories.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(variable, raising=False)
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "config", "user.name", "Test")
    git(project, "config", "user.email", "test@example.com")
    commit(project, PROJECT, "the project")
    monkeypatch.chdir(project)
    yield project


def mlops(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(["changed", *argv])
    except SystemExit as exc:
        code = int(exc.code) if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


TOUCHED = {
    "only the churn folder": (["models/churn/scripts/preprocess.py"], ["churn"]),
    "only the abalone config": (["models/abalone/pipeline.json"], ["abalone"]),
    "the shared domain package": (["layers/shared/sfn_mlops/pipeline.py"], ["abalone", "churn"]),
    "a Lambda handler": (["functions/plan_run/app.py"], ["abalone", "churn"]),
    "a state machine": (["statemachines/training_flow.asl.json"], ["abalone", "churn"]),
    "the template": (["template.yaml"], ["abalone", "churn"]),
    "a local container stand-in": (["src/sfn_mlops_local/containers/serving.py"], ["abalone", "churn"]),
    "a local image's package list": (
        ["src/sfn_mlops_local/local/images/sagemaker-xgboost-1.7-1.txt"],
        ["abalone", "churn"],
    ),
    "the local service": (["src/sfn_mlops_local/local/service.py"], []),
    "docs, tests and the README": (["docs/cli.md", "tests/unit/test_x.py", "README.md"], []),
    "a CLI module that is not shared": (["src/sfn_mlops_local/cli_report.py"], []),
    "the lock file": (["requirements.lock"], []),
    "the models folder's README": (["models/README.md"], []),
    "churn and the docs": (["models/churn/pipeline.json", "docs/cli.md"], ["churn"]),
}


@pytest.mark.parametrize("paths, expected", TOUCHED.values(), ids=TOUCHED.keys())
def test_changed_lists_the_pipelines_a_commit_touches_one_per_line(
    repo: Path, capsys: pytest.CaptureFixture[str], paths: list[str], expected: list[str]
) -> None:
    # Given a commit that edits these files
    commit(repo, {path: (repo / path).read_text() + "# edited\n" for path in paths})
    # When asked what changed since the commit before it
    code, out, _err = mlops(capsys, "--base", "HEAD~1")
    # Then stdout is exactly the affected pipelines, one per line, for `for p in $(mlops changed)`
    assert code == 0
    assert out.splitlines() == expected


def test_a_shared_change_names_its_path_as_each_pipelines_reason_in_json(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a commit that touches churn's folder and the shared layer
    commit(repo, {"models/churn/scripts/preprocess.py": "x = 2\n", "layers/shared/sfn_mlops/pipeline.py": "x = 2\n"})
    head = git(repo, "rev-parse", "HEAD")
    base = git(repo, "rev-parse", "HEAD~1")
    # When asked for JSON
    code, out, err = mlops(capsys, "--base", "HEAD~1", "--json")
    # Then the last stdout line is the object CI builds its matrix from, and the summary is on stderr
    assert code == 0
    assert json.loads(out.splitlines()[-1]) == {
        "base": "HEAD~1",
        "base_commit": base,
        "head": head,
        "include_uncommitted": False,
        "pipelines": [
            {"name": "abalone", "reasons": ["shared: layers/"]},
            {"name": "churn", "reasons": ["models/churn/", "shared: layers/"]},
        ],
        "removed": [],
        "shared_changed": True,
        "shared": ["layers/"],
    }
    assert "2 pipeline(s) changed since HEAD~1" in err and "shared code changed (layers/)" in err


def test_a_deleted_pipeline_is_not_run_but_json_says_it_was_removed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a commit that removes the churn pipeline's folder
    commit(repo, {name: None for name in PROJECT if name.startswith("models/churn/")})
    # When asked what changed
    code, out, _err = mlops(capsys, "--base", "HEAD~1")
    _code, as_json, _err = mlops(capsys, "--base", "HEAD~1", "--json")
    # Then nothing is to run, and the JSON names churn as removed
    assert (code, out) == (0, "")
    changes = json.loads(as_json.splitlines()[-1])
    assert changes["pipelines"] == [] and changes["removed"] == ["churn"]


def test_a_new_pipeline_folder_is_listed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a commit adding models/fraud with its pipeline.json
    commit(repo, {"models/fraud/pipeline.json": '{"name": "fraud"}\n'})
    # Then it is the one pipeline to run
    assert mlops(capsys, "--base", "HEAD~1")[:2] == (0, "fraud\n")


def test_a_models_folder_without_pipeline_json_or_with_a_bad_name_is_no_pipeline(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a data-only folder and a folder whose name mlops publish would refuse, both under models/
    commit(repo, {"models/notes/data.csv": "a\n", "models/Bad Name/pipeline.json": "{}\n"})
    # Then neither is listed
    assert mlops(capsys, "--base", "HEAD~1")[:2] == (0, "")


def test_the_comparison_starts_where_the_branch_left_the_base_as_a_pull_request_does(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a branch that touches churn, and main, after the branch left it, touching abalone and the layer
    git(repo, "checkout", "--quiet", "-b", "feature")
    commit(repo, {"models/churn/pipeline.json": '{"name": "churn", "v": 2}\n'})
    git(repo, "checkout", "--quiet", "main")
    commit(repo, {"models/abalone/pipeline.json": '{"v": 2}\n', "layers/shared/sfn_mlops/pipeline.py": "x = 3\n"})
    git(repo, "checkout", "--quiet", "feature")
    # When the branch asks what changed since main
    code, out, _err = mlops(capsys, "--base", "main")
    # Then only the branch's own change counts (main's later commits are not the branch's)
    assert (code, out) == (0, "churn\n")


def test_uncommitted_changes_count_only_when_asked(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given an edit to churn not staged, a staged edit to nothing shared, and a new untracked file in abalone
    write(repo, {"models/churn/scripts/preprocess.py": "x = 9\n", "models/abalone/scripts/new.py": "y = 1\n"})
    # When asked without and with --include-uncommitted
    committed = mlops(capsys, "--base", "HEAD")
    with_work_tree = mlops(capsys, "--base", "HEAD", "--include-uncommitted")
    # Then commits alone show nothing; the work tree shows both
    assert committed[:2] == (0, "")
    assert with_work_tree[:2] == (0, "abalone\nchurn\n")


def test_a_staged_change_counts_with_include_uncommitted(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a shared change staged but not committed
    write(repo, {"template.yaml": "Resources: {A: 1}\n"})
    git(repo, "add", "template.yaml")
    # Then every pipeline counts with --include-uncommitted
    assert mlops(capsys, "--base", "HEAD", "--include-uncommitted")[:2] == (0, "abalone\nchurn\n")


def test_an_uncommitted_pipeline_deletion_is_removed_not_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(repo, {name: None for name in PROJECT if name.startswith("models/abalone/")})
    code, out, _err = mlops(capsys, "--base", "HEAD", "--include-uncommitted", "--json")
    changes = json.loads(out.splitlines()[-1])
    assert code == 0 and changes["pipelines"] == [] and changes["removed"] == ["abalone"]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_an_unknown_base_is_one_line_naming_it_exit_3(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlops(capsys, "--base", "origin/nope")
    assert (code, out) == (3, "")
    assert one_line(err).startswith("mlops changed: no commit 'origin/nope' in this repository")


def test_an_unfetched_base_in_a_shallow_clone_says_to_fetch_more(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a depth-1 clone (as actions/checkout makes by default) of a repository with two commits
    commit(repo, {"models/churn/pipeline.json": '{"v": 2}\n'})
    first = git(repo, "rev-parse", "HEAD~1")
    git(tmp_path, "clone", "--quiet", "--depth", "1", f"file://{repo}", "shallow")
    monkeypatch.chdir(tmp_path / "shallow")
    # When the base is the commit the clone did not fetch
    code, _out, err = mlops(capsys, "--base", first)
    # Then the line says how to get it
    assert code == 3 and "fetch-depth: 0" in one_line(err)


def test_a_base_that_reads_as_an_option_is_a_bad_argument(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = mlops(capsys, "--base=--output=x")
    assert code == 2 and "is not a git ref" in one_line(err)
    assert not (repo / "x").exists()


def test_a_base_with_no_common_history_is_a_bad_argument(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a branch that shares no commit with main
    git(repo, "checkout", "--quiet", "--orphan", "unrelated")
    commit(repo, {"README.md": "other\n"})
    code, _out, err = mlops(capsys, "--base", "main")
    assert code == 2 and "no common history" in one_line(err)


def test_outside_a_git_repository_it_fails_in_one_line_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a project folder (template.yaml and statemachines/) that no git repository holds
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git must not find a repository above tmp
    write(tmp_path, {"template.yaml": "Resources: {}\n", "statemachines/a.asl.json": "{}\n"})
    monkeypatch.chdir(tmp_path)
    code, _out, err = mlops(capsys)
    assert code == 3 and "is not in a git work tree" in one_line(err)


def test_without_git_installed_it_fails_in_one_line_exit_3(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _out, err = mlops(capsys, "--base", "HEAD")
    assert code == 3 and one_line(err) == (
        "mlops changed: git is not installed (no 'git' on PATH): it is needed to compare commits"
    )


def test_a_project_in_a_subfolder_of_a_repository_sees_only_its_own_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a monorepo whose project lives in proj/, and a commit touching a top-level layers/ folder outside it
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    top = tmp_path / "mono"
    top.mkdir()
    git(top, "init", "--quiet", "--initial-branch=main")
    git(top, "config", "user.name", "Test")
    git(top, "config", "user.email", "test@example.com")
    commit(top, {f"proj/{name}": text for name, text in PROJECT.items()} | {"layers/other.py": "x\n"})
    commit(top, {"layers/other.py": "y\n", "proj/models/churn/pipeline.json": '{"v": 3}\n'})
    # When the project's changes are read
    changes = changed_pipelines(top / "proj", "HEAD~1")
    # Then only churn counts: the outer layers/ is not the project's
    assert changes.names == ["churn"] and changes.shared == ()


def test_every_shared_path_names_something_in_this_project() -> None:
    # A shared path renamed away would silently stop triggering every pipeline.
    for entry, why in SHARED_PATHS:
        path = ROOT / entry
        assert path.is_dir() if entry.endswith("/") else path.is_file(), entry
        assert why
