"""The errors a command reports: each carries the message a person sees and the exit code.

Commands catch :class:`CommandError` and print its message (never a trace), so
every failure the supervisor and the commands (supervise, ops, cli) can foresee
is raised as one of these.
"""

from __future__ import annotations

#: Exit code for bad input (an unknown flow or node, a malformed option).
EXIT_USAGE = 2
#: Exit code for everything else that went wrong.
EXIT_FAILURE = 1
#: Exit code for a call whose result did not come in time (the invocation itself goes on);
#: 124, as GNU timeout(1) says it, so a script tells "not yet" from "failed".
EXIT_TIMEOUT = 124


class CommandError(Exception):
    """Something the person can act on; ``str(error)`` says what and how."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CommandError):
    """A name or value the person typed is not valid."""

    exit_code = EXIT_USAGE


class NothingRunning(CommandError):
    """A command needs a running supervisor and there is none."""


class SettingsError(ValueError):
    """An option or environment variable of a process has a value it cannot use."""


def quoted(text: str, limit: int = 40) -> str:
    """``text`` as a message shows what was typed: repr, cut to about ``limit`` characters."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"
