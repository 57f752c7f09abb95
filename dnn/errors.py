"""``UserError``: the one base of every error caused by what a user gave (a path, a file's
content, a flag), and how the command line reports it.

It lives in ``dnn`` because ``dnn`` is the root of the import graph (dnn -> hwmodels -> envs ->
agents -> runtime): every package can derive its errors from it without importing upwards.
"""

from __future__ import annotations

import argparse
import signal
import sys


class UserError(Exception):
    """Bad input from the user. The message is one line that names the file, field or flag at
    fault; the command line prints it after ``dynscale:`` and exits with code 2. Any other
    exception is a bug and keeps its traceback."""


#: exit code of a command refused for bad input (argparse uses the same)
EXIT_USAGE = 2
#: exit codes of a command stopped by SIGINT / SIGTERM (the shell's convention, 128 + signal)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so partial outputs are removed on the way out."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def run_command(args: argparse.Namespace, prog: str = "dynscale") -> int:
    """Run a parsed command (``args.func(args)``); a :class:`UserError` becomes one line on
    stderr and exit code 2; Ctrl-C and SIGTERM unwind (temporary files are removed, the board
    is restored), say so in one line and exit with 130 / 143.

    :param args: the parsed arguments; ``args.func`` is the command
    :param prog: the program name that prefixes error lines
    """
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"{prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"{prog}: interrupted (SIGINT); {_how_it_ended(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        print(f"{prog}: terminated (SIGTERM); {_how_it_ended(exc)}", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _how_it_ended(exc: BaseException) -> str:
    """What a command that was stopped says it left behind: its own words (raised again with a
    message, e.g. deploy's request count), or the rule every atomic output follows."""
    return " ".join(str(exc).split()) if exc.args else "partial outputs removed"


class UsageError(UserError, ValueError):
    """Flags that contradict each other, are out of range, or name nothing."""


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a count: zero is not "the default")."""
    return _whole_number(text, 1)


def seed_int(text: str) -> int:
    """argparse type: a random seed, a whole number 0 .. 2**32 - 1 (numpy's range)."""
    value = _whole_number(text, 0)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed below 2**32, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def finite_float(low: float | None = None, high: float | None = None, positive: bool = False):
    """argparse type: a finite number within [low, high] (``positive``: > 0)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"{'-inf' if low is None else f'{low:g}'}..{'inf' if high is None else f'{high:g}'}"
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: error: ...``) and exit code 2; the
    usage stays one ``--help`` away. Subcommand parsers made from it are the same kind."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None, prog: str = "dynscale") -> int:
    """A command line's exit code: parse ``argv`` with ``parser`` and run the command (the
    ``main`` of ``dynscale`` and ``dynscale-board``)."""
    args = parse_or_exit_code(parser, argv)
    return args if isinstance(args, int) else run_command(args, prog)


def parse_or_exit_code(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code when parsing ended the command (``--help``: 0, an error: 2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
