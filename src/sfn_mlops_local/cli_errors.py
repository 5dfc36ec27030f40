"""How a failed ``mlops`` command reads: one line on stderr, ``mlops <command>: <problem>``, and an exit code a
script can branch on. docs/cli.md documents the codes; keep the two in step.

Kept free of rich, pydantic and the runtime: every command imports it, and ``mlops runs`` must start fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from sfn_mlops.naming import PIPELINE_NAME_PATTERN

EXIT_OK = 0
EXIT_FAILED = 1  # the run, deployment or batch failed; or an unexpected error
EXIT_USAGE = 2  # a bad argument or input file (argparse's own code for usage errors)
EXIT_NOT_FOUND = 3  # no such run, pipeline, package, deployment, stack or file
EXIT_REFUSED = 4  # refused or in conflict: another execution holds the unit, approval refused, access denied
EXIT_UNREACHABLE = 5  # the local service or AWS did not answer, or no usable AWS credentials
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
EXIT_BROKEN_PIPE = 141  # the reader of stdout closed the pipe (128 + SIGPIPE, as shells report it)


class CommandError(SystemExit):
    """A command's failure as one readable line, with its exit code. A SystemExit so that callers that catch
    SystemExit (the follow loop, in-process tests) keep working; ``main`` prints it and exits with ``exit_code``."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)


class BadArgument(CommandError):
    """An argument or input file the command cannot use."""

    exit_code = EXIT_USAGE


class NotFound(CommandError):
    """The run, pipeline, package, deployment, endpoint or file named does not exist."""

    exit_code = EXIT_NOT_FOUND


class Refused(CommandError):
    """The target refused the operation, or it conflicts with one in progress."""

    exit_code = EXIT_REFUSED


class Interrupted(CommandError):
    """Ctrl-C: the command stopped (what it started goes on, in the local service or on AWS)."""

    exit_code = EXIT_INTERRUPTED


class ExitStatus(int):
    """The code ``main`` exits with, reading as its message. To the interpreter it is an int (the process exits
    with it and prints nothing more: the line is on stderr already); to an in-process caller that catches the
    SystemExit, ``str(exc)`` and ``str(exc.code)`` are the line, as they were when commands raised SystemExit(str)."""

    message: str

    def __new__(cls, code: int, message: str) -> ExitStatus:
        status = super().__new__(cls, code)
        status.message = message
        return status

    def __str__(self) -> str:
        return self.message


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (not the usage block), exit code 2."""

    def error(self, message: str) -> Any:  # NoReturn in argparse's stubs
        line = f"{self.prog}: {message} (see `{self.prog} --help`)"
        print(line, file=sys.stderr)
        raise SystemExit(ExitStatus(EXIT_USAGE, line))  # an in-process caller reads the line from the code too


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--limit``), refused before any call is made."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0 for a free one, else 1-65535)")
    return value


def pipeline_name(text: str) -> str:
    """An argparse type: a pipeline's name as pipeline.json allows it (so it is never a path)."""
    if not PIPELINE_NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pipeline name (a lowercase letter, then lowercase letters, digits or '-', 24 at most)"
        )
    return text


def command_name(args: argparse.Namespace | None, argv: list[str]) -> str:
    """``run``, ``local stop``...: from the parsed arguments, else the first word that is not an option."""
    if args is not None and getattr(args, "command", None):
        sub = getattr(args, "local_command", None)
        return f"{args.command} {sub}" if args.command == "local" and sub else str(args.command)
    words = [word for word in argv if not word.startswith("-")][:2]
    return " ".join(words) if words[:1] == ["local"] else "".join(words[:1])


def squeezed(text: str) -> str:
    """Any message on one line: its lines joined, runs of blanks squeezed."""
    return " ".join(text.split())


_OWN_PREFIX = re.compile(r"^mlops(?: [a-z][a-z-]*){0,2}: ")


def line_for(command: str, problem: str) -> str:
    """``mlops <command>: <problem>``; a message that already names a command (``mlops: ...``) is not prefixed twice."""
    problem = _OWN_PREFIX.sub("", squeezed(problem), count=1)
    return f"mlops {command}: {problem}" if command else f"mlops: {problem}"


# Domain errors (sfn_mlops.errors) by class name: a name, not an import, so that a class added later and not
# listed here is still a plain failure (1) rather than an import error.
_DOMAIN_CODES = {
    "PipelineNotFound": EXIT_NOT_FOUND,
    "LineageNotFound": EXIT_NOT_FOUND,
    "ModelPackageNotFound": EXIT_NOT_FOUND,
    "MetricsNotFound": EXIT_NOT_FOUND,
    "UnitAlreadyRunning": EXIT_REFUSED,
    "JobNameInUse": EXIT_REFUSED,
    "ApprovalRefused": EXIT_REFUSED,
    "InvalidRerun": EXIT_USAGE,
    "InvalidPipelineConfig": EXIT_USAGE,
    "DatasetValidationError": EXIT_USAGE,
    "InvalidUnitInput": EXIT_USAGE,
    "InvalidBaseline": EXIT_USAGE,
}

_CLIENT_ERROR_CODES = {
    code: exit_code
    for exit_code, codes in (
        (EXIT_NOT_FOUND, "ResourceNotFoundException NoSuchKey NoSuchBucket NotFound 404 ExecutionDoesNotExist"),
        (EXIT_NOT_FOUND, "StateMachineDoesNotExist"),
        (EXIT_REFUSED, "AccessDenied AccessDeniedException AuthorizationError UnauthorizedOperation"),
        (EXIT_REFUSED, "ConditionalCheckFailedException ConflictException ExecutionAlreadyExists ResourceInUse"),
        (EXIT_REFUSED, "ResourceInUseException TransactionCanceledException"),
        (EXIT_UNREACHABLE, "UnrecognizedClientException InvalidClientTokenId ExpiredToken ExpiredTokenException"),
        (EXIT_UNREACHABLE, "InvalidSignatureException SignatureDoesNotMatch RequestExpired ThrottlingException"),
        (
            EXIT_UNREACHABLE,
            "Throttling TooManyRequestsException ServiceUnavailable InternalFailure InternalServerError",
        ),
        (EXIT_USAGE, "ValidationException ValidationError InvalidParameterValue InvalidInput"),
    )
    for code in codes.split()
}

# SystemExit("...") raised by code that does not yet raise the classes above: known openings of its messages.
_TEXT_CODES = [
    (re.compile(r"^(no runs?|no deployment|unknown pipeline|no model package)\b|does not exist|is not published"), 3),
    (re.compile(r"^(cannot rerun|unknown unit)\b|is not a pipeline name|must be at least"), EXIT_USAGE),
]


def _credentials_hint(args: argparse.Namespace | None) -> str:
    stack = getattr(args, "stack", None)
    where = f"--stack {stack} needs AWS credentials" if stack else "AWS credentials are needed"
    return f"{where}: set AWS_PROFILE or pass --profile (see `aws configure`)"


def _botocore(exc: BaseException, args: argparse.Namespace | None) -> tuple[int, str] | None:
    from botocore import exceptions as aws

    if isinstance(exc, aws.NoCredentialsError | aws.PartialCredentialsError | aws.CredentialRetrievalError):
        return EXIT_UNREACHABLE, f"no usable AWS credentials ({exc}); {_credentials_hint(args)}"
    if isinstance(exc, aws.TokenRetrievalError | aws.SSOError):
        return EXIT_UNREACHABLE, f"AWS credentials could not be refreshed ({exc}); {_credentials_hint(args)}"
    if isinstance(exc, aws.ProfileNotFound):
        return EXIT_USAGE, f"{exc} (see --profile)"
    if isinstance(exc, aws.NoRegionError):
        return EXIT_USAGE, "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, aws.ParamValidationError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, aws.EndpointConnectionError | aws.ConnectionClosedError | aws.ConnectTimeoutError):
        where = "AWS" if getattr(args, "stack", None) else "the local service (see `mlops local status`)"
        return EXIT_UNREACHABLE, f"{where} did not answer: {exc}"
    if isinstance(exc, aws.ReadTimeoutError | aws.HTTPClientError):
        return EXIT_UNREACHABLE, f"the call did not complete: {exc}"
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code") or ""), str(error.get("Message") or "")
        exit_code = _CLIENT_ERROR_CODES.get(code, EXIT_FAILED)
        if code in ("ValidationError", "ValidationException") and "does not exist" in message:
            exit_code = EXIT_NOT_FOUND  # CloudFormation's answer for a stack that is not there
        return exit_code, f"{exc.operation_name} failed: {code}: {message}"
    return None


def _code_of_text(text: str) -> int:
    problem = _OWN_PREFIX.sub("", text)
    return next((code for pattern, code in _TEXT_CODES if pattern.search(problem)), EXIT_FAILED)


def classify(exc: BaseException, args: argparse.Namespace | None = None) -> tuple[int, str, bool]:
    """(exit code, the problem in words, whether it was expected). Unexpected errors name their type."""
    if isinstance(exc, CommandError):
        return exc.exit_code, str(exc.code), True
    if isinstance(exc, SystemExit):
        text = str(exc.code)
        cause = exc.__cause__
        code = classify(cause, args)[0] if cause is not None and classify(cause, args)[2] else _code_of_text(text)
        return code, text, True
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted (what it started goes on; see `mlops runs`)", True
    names = [cls.__name__ for cls in type(exc).__mro__]
    if "MlopsError" in names:
        code = next((_DOMAIN_CODES[name] for name in names if name in _DOMAIN_CODES), EXIT_FAILED)
        return code, str(exc), True
    if "LocalServiceError" in names:
        status = getattr(exc, "status", None)  # None: no answer at all; else the service answered and refused
        answered = {400: EXIT_USAGE, 404: EXIT_NOT_FOUND, 409: EXIT_REFUSED}
        return EXIT_UNREACHABLE if status is None else answered.get(status, EXIT_FAILED), str(exc), True
    if "StateFormatError" in names:
        return EXIT_UNREACHABLE, str(exc), True
    if type(exc).__module__.startswith("botocore"):
        described = _botocore(exc, args)
        if described is not None:
            return (*described, True)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return EXIT_NOT_FOUND, f"{exc.filename}: no such file or folder", True
    if isinstance(exc, OSError) and exc.filename:
        return EXIT_USAGE, f"cannot use {exc.filename}: {exc.strerror or exc}", True
    return EXIT_FAILED, f"unexpected error: {type(exc).__name__}: {exc}", False


def report(exc: BaseException, args: argparse.Namespace | None, argv: list[str], debug: bool) -> ExitStatus:
    """Print the failure as one line on stderr (after the traceback with ``--debug``); the status to exit with."""
    code, problem, expected = classify(exc, args)
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    elif not expected:
        problem += " (run with --debug for the traceback)"
    line = line_for(command_name(args, argv), problem)
    print(line, file=sys.stderr, flush=True)
    return ExitStatus(code, line)
