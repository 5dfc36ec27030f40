"""The rich Console every ``mlops`` command prints with: fitted to a terminal, never wrapped when piped."""

from __future__ import annotations

from rich.console import Console

from sfn_mlops_local.cli_errors import EXIT_BROKEN_PIPE


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader stopped reading (``mlops runs | head -1``): quiet, as rich makes it, with the code a
        shell reports for SIGPIPE rather than rich's 1, which would read as a failed command."""
        try:
            super().on_broken_pipe()
        except SystemExit:
            raise SystemExit(EXIT_BROKEN_PIPE) from None


# Wide enough that no line is ever cut: rich pads tables and trees to their content, not to this width.
UNWRAPPED_WIDTH = 1_000_000


def make_console(stderr: bool = False) -> Console:
    """On a terminal, rich fits tables and trees to its width. Piped or redirected, a line is a record for
    grep, cut or a script; rich would wrap it at 80 columns (its default without a terminal), cutting ARNs
    and run ids in two, so it gets a width it never reaches and soft wrapping."""
    console = _Console(stderr=stderr)
    if console.is_terminal:
        return console
    return _Console(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True)


def say_on_stderr(line: str) -> None:
    """A notice beside a command's output (the service started, a warning): on stderr, one line."""
    make_console(stderr=True).print(line, soft_wrap=True, markup=False, highlight=False)
