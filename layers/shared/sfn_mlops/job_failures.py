"""A failed SageMaker job's FailureReason as one readable line, whichever shape it has.

SageMaker prefixes what the container wrote to ``/opt/ml/output/failure`` with the error's kind
(``AlgorithmError``, ``ClientError``...). What follows is often a traceback first and the message last
(a framework error), or the training toolkit's ``ExecuteUserScriptError:\\nExitCode 1\\nErrorMessage "..."\\n
Command "..."`` (aws/sagemaker-training-toolkit, src/sagemaker_training/errors.py), whose message is inside
``ErrorMessage``. The local runtime's reason is the tail of the job's log (the exception line last) followed by
``; log file: <path>`` where AWS would point at CloudWatch. The meaningful line is the exception line: the last
line that is not part of a traceback's frames. The worker state machines do the same in JSONata
(docs/decisions/0024-job-api-as-aws.md).
"""

from __future__ import annotations

import re

LOG_FILE_MARK = "; log file: "
_KIND = re.compile(r"^([A-Z][A-Za-z]*Error): ?", re.DOTALL)
# Lines that are not an error's message: a traceback's header, frames and position markers, the training
# container's "framework error:" preamble and the connectors between chained exceptions.
_NOT_A_MESSAGE = re.compile(
    r"^(\s|Traceback \(most recent call last\):|File \"|framework error:|During handling of the above exception"
    r"|The above exception was the direct cause|[\^~]+$)",
    re.IGNORECASE,
)
# The toolkit's ErrorMessage "..." ends at a quote followed by the next field's name (ExtraInfo, Command; perhaps
# cut short at 1,024 characters) or by the end of the reason.
_ERROR_MESSAGE = re.compile(r'ErrorMessage "(.*?)"\s*(?:\n[A-Z][A-Za-z]*(?: "|$)|$)', re.DOTALL)
# What is said when SageMaker's 1,024 characters end before the message (a long traceback).
CUT_SHORT = "the reason was cut at 1,024 characters before its message: see the job log"


def split_log_location(reason: str) -> tuple[str, str | None]:
    """(the reason, the local log file it names or None)."""
    if LOG_FILE_MARK in reason:
        text, _, where = reason.rpartition(LOG_FILE_MARK)
        return text, where.strip() or None
    return reason, None


def meaningful_line(text: str) -> str:
    """The last line of ``text`` that is an error's message (not a traceback's header, frame or marker, not the
    framework's preamble or a chained exception's connector), or '' if it has none."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _NOT_A_MESSAGE.match(line)]
    return lines[-1] if lines else ""


def readable_reason(reason: str) -> str:
    """``<Kind>: <the meaningful line>`` for a FailureReason (AWS's or the local runtime's), its local log
    location dropped (callers say where the logs are)."""
    text, _ = split_log_location(reason)
    kind_match = _KIND.match(text)
    kind = kind_match.group(1) if kind_match else ""
    body = text[kind_match.end() :] if kind_match else text
    wrapped = _ERROR_MESSAGE.search(body)
    if wrapped and wrapped.group(1).strip():
        body = wrapped.group(1)
    line = meaningful_line(body) or (CUT_SHORT if body.strip() else "")
    return f"{kind}: {line}" if kind and line else (kind or line)
