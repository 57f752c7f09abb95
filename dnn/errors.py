"""``UserError``: the one base of every error caused by what a user gave (a path, a file's
content, a flag), and how the command line reports it.

It lives in ``dnn`` because ``dnn`` is the root of the import graph (dnn -> hwmodels -> envs ->
agents -> runtime): every package can derive its errors from it without importing upwards.
"""

from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    """Bad input from the user. The message is one line that names the file, field or flag at
    fault; the command line prints it after ``dynscale:`` and exits with code 2. Any other
    exception is a bug and keeps its traceback."""


#: exit code of a command refused for bad input (argparse uses the same)
EXIT_USAGE = 2
#: exit code of a command interrupted by SIGINT (the shell's convention, 128 + 2)
EXIT_INTERRUPTED = 130


def run_command(args: argparse.Namespace, prog: str = "dynscale") -> int:
    """Run a parsed command (``args.func(args)``); a :class:`UserError` becomes one line on
    stderr and exit code 2, Ctrl-C one line and exit code 130.

    :param args: the parsed arguments; ``args.func`` is the command
    :param prog: the program name that prefixes error lines
    """
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"{prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


class UsageError(UserError, ValueError):
    """Flags that contradict each other, are out of range, or name nothing."""
