"""``mlops changed``: which pipelines changed since a git ref, so that CI publishes and runs only those.

A pipeline is a folder ``models/<name>/`` holding ``pipeline.json``. It changed when a file under its folder
changed, or when a file under one of ``SHARED_PATHS`` changed: code every pipeline runs, so a change there
changes them all. Anything else (docs, tests, the CLI's other commands, the lock file) changes no pipeline:
the test suite checks those. docs/decisions/0026-changed-pipelines-ci.md says why each path is or is not shared.

The comparison is the one a pull request shows (``git diff BASE...HEAD``): what HEAD changed since it left
BASE (their merge base), not what BASE gained since. Uncommitted changes count only when asked
(``include_uncommitted``): CI compares commits, and a stray file in a work tree must not add a pipeline to it.

Pure: reads the repository through read-only git commands, writes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_mlops.naming import PIPELINE_NAME_PATTERN

from sfn_mlops_local.cli_errors import BadArgument, NotFound

MODELS = "models/"

# Paths (relative to the project root; a trailing "/" is a folder) whose change changes every pipeline.
SHARED_PATHS: tuple[tuple[str, str], ...] = (
    ("template.yaml", "the stack: flows' wiring, Lambda settings, the job images' URIs and versions"),
    ("statemachines/", "the job flows, executor and workers every run goes through"),
    ("functions/", "the Lambda handlers of every unit (plan, validate, register, deploy...)"),
    ("layers/", "the shared domain package and its pinned libraries, used by every Lambda"),
    ("src/sfn_mlops_local/containers/", "the local stand-ins for the SageMaker algorithm and serving containers"),
    ("src/sfn_mlops_local/local/images/", "the package lists of the local image environments job scripts run in"),
)


class GitMissing(NotFound):
    """git is not on PATH."""


class NotAGitRepository(NotFound):
    """The project folder is not inside a git work tree."""


class UnknownRef(NotFound):
    """The base names no commit the repository has (mistyped, or not fetched in a shallow clone)."""


class NoCommonAncestor(BadArgument):
    """BASE and HEAD share no history, so "changed since BASE" means nothing."""


@dataclass(frozen=True)
class ChangedPipeline:
    name: str
    reasons: tuple[str, ...]  # "models/<name>/" (its own folder) and/or "shared: <path>"


@dataclass(frozen=True)
class Changes:
    base: str  # the ref as given
    base_commit: str  # the merge base of BASE and HEAD: what is compared against
    head: str  # HEAD's commit
    include_uncommitted: bool
    pipelines: tuple[ChangedPipeline, ...]  # the ones to publish and run, by name
    removed: tuple[str, ...] = ()  # pipelines the base had and HEAD (or the work tree) no longer has
    shared: tuple[str, ...] = field(default=())  # the SHARED_PATHS entries that changed

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "base_commit": self.base_commit,
            "head": self.head,
            "include_uncommitted": self.include_uncommitted,
            "pipelines": [{"name": p.name, "reasons": list(p.reasons)} for p in self.pipelines],
            "removed": list(self.removed),
            "shared_changed": bool(self.shared),
            "shared": list(self.shared),
        }


def shared_entry(path: str) -> str | None:
    """The SHARED_PATHS entry a project-relative path falls under, if any."""
    for entry, _why in SHARED_PATHS:
        if path == entry or (entry.endswith("/") and path.startswith(entry)):
            return entry
    return None


def pipeline_of(path: str) -> str | None:
    """``churn`` for ``models/churn/...``; None for anything else (``models/README.md`` included)."""
    if not path.startswith(MODELS):
        return None
    folder, slash, _rest = path[len(MODELS) :].partition("/")
    return folder if slash and folder else None


def changed_pipelines(root: Path, base: str, include_uncommitted: bool = False) -> Changes:
    """The pipelines of the project at ``root`` that changed between ``base``...HEAD (and, if asked, in the
    work tree), with the reason for each."""
    if base.startswith("-"):
        raise BadArgument(f"{base!r} is not a git ref (it would be read as an option)")
    git = _Git(root)
    head = git.commit("HEAD", what="HEAD")
    base_commit = git.merge_base(git.commit(base, what="base"), head, base)
    paths = git.changed_paths(base_commit, head, include_uncommitted)
    before = _pipelines_in(git.tree_files(base_commit))
    now = _pipelines_on_disk(root) if include_uncommitted else _pipelines_in(git.tree_files(head))
    shared = sorted({entry for entry in map(shared_entry, paths) if entry})
    own = {name for name in map(pipeline_of, paths) if name}
    pipelines = []
    for name in sorted(now):
        reasons = ([f"{MODELS}{name}/"] if name in own else []) + [f"shared: {entry}" for entry in shared]
        if reasons:
            pipelines.append(ChangedPipeline(name, tuple(reasons)))
    return Changes(
        base=base,
        base_commit=base_commit,
        head=head,
        include_uncommitted=include_uncommitted,
        pipelines=tuple(pipelines),
        removed=tuple(sorted(before - now)),
        shared=tuple(shared),
    )


def _pipelines_in(files: list[str]) -> set[str]:
    """Names of the folders models/<name>/ holding a pipeline.json; a folder whose name is not a pipeline name
    is not one (``mlops publish`` refuses it too, and a name with a blank would break ``for p in $(...)``)."""
    names = set()
    for path in files:
        name = pipeline_of(path)
        if name and path == f"{MODELS}{name}/pipeline.json" and PIPELINE_NAME_PATTERN.match(name):
            names.add(name)
    return names


def _pipelines_on_disk(root: Path) -> set[str]:
    return _pipelines_in([f"{MODELS}{p.parent.name}/pipeline.json" for p in (root / "models").glob("*/pipeline.json")])


class _Git:
    """Read-only git commands run in the project folder; paths come back relative to it (``--relative``), so a
    project in a subfolder of a larger repository sees only its own files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.executable = shutil.which("git")
        if self.executable is None:
            raise GitMissing("git is not installed (no 'git' on PATH): it is needed to compare commits")
        inside = self._run("rev-parse", "--is-inside-work-tree", check=False)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            said = " ".join(inside.stderr.split())
            if said and "not a git repository" not in said:  # e.g. git's "dubious ownership": its words say why
                raise NotAGitRepository(f"git cannot read the repository at {root}: {said}")
            raise NotAGitRepository(f"{root} is not in a git work tree (git init, or run it in a clone)")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # No pager, no prompt for credentials, untranslated messages; -c core.quotepath=off so names are as is.
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
        result = subprocess.run(
            [str(self.executable), "-c", "core.quotepath=off", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if check and result.returncode != 0:
            problem = " ".join(result.stderr.split()) or f"exit code {result.returncode}"
            raise NotFound(f"git {args[0]} failed: {problem}")
        return result

    def commit(self, ref: str, what: str) -> str:
        found = self._run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
        if what == "HEAD":
            raise UnknownRef("the repository has no commit yet (HEAD names none)")
        hint = ""
        if self._run("rev-parse", "--is-shallow-repository", check=False).stdout.strip() == "true":
            hint = " (this clone is shallow: fetch more history, e.g. actions/checkout with fetch-depth: 0)"
        raise UnknownRef(f"no commit {ref!r} in this repository: a branch, tag or commit to compare with{hint}")

    def merge_base(self, base: str, head: str, given: str) -> str:
        found = self._run("merge-base", base, head, check=False)
        if found.returncode != 0 or not found.stdout.strip():
            raise NoCommonAncestor(f"{given!r} and HEAD have no common history: nothing to compare against")
        return found.stdout.strip()

    def changed_paths(self, base: str, head: str, include_uncommitted: bool) -> list[str]:
        # --no-renames: a moved file counts as removed from its old folder and added to its new one.
        options = ("diff", "--name-only", "--no-renames", "--no-ext-diff", "--relative", "-z")
        if not include_uncommitted:
            return _split(self._run(*options, base, head, "--").stdout)
        tracked = _split(self._run(*options, base, "--").stdout)  # the commits, the index and the work tree
        untracked = _split(self._run("ls-files", "--others", "--exclude-standard", "-z").stdout)
        return sorted({*tracked, *untracked})

    def tree_files(self, commit: str) -> list[str]:
        return _split(self._run("ls-tree", "-r", "--name-only", "-z", commit, "--", "models").stdout)


def _split(output: str) -> list[str]:
    return [path for path in output.split("\0") if path]
