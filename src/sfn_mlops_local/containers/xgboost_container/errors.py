"""The algorithm toolkit's three error kinds and its message format.

Rule source: aws/sagemaker-xgboost-container, src/sagemaker_algorithm_toolkit/exceptions.py: the message
is the given text (or the cause's text), followed by " (caused by <CauseClass>)" when there is a cause.
"""

from __future__ import annotations


class ToolkitError(Exception):
    def __init__(self, message: str | None = None, caused_by: BaseException | None = None) -> None:
        text = message or (str(caused_by) if caused_by is not None else "unknown error occurred")
        if caused_by is not None:
            text += f" (caused by {type(caused_by).__name__})"
        super().__init__(text)
        self.message = text
        self.caused_by = caused_by


class UserError(ToolkitError):
    """The job's configuration or data is wrong; the user can fix it."""


class AlgorithmError(ToolkitError):
    """The algorithm failed in a way the user could not prevent."""


class PlatformError(ToolkitError):
    """The environment is not what the algorithm needs."""


class NotEmulated(UserError):
    """The real container accepts this, but the local emulation does not reproduce it."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not emulated by the local XGBoost 1.7-1 container; run it on SageMaker")
