"""Text for one readable line of an error message: control characters escaped, the length bounded."""

from __future__ import annotations

import re

MAX_MESSAGE = 600
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """Control characters (a newline in a fuzzed key...) shown escaped, and the line cut: one readable line."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
