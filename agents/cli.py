"""The ``dynscale`` command: one entry point, one subcommand group per package."""

from __future__ import annotations

import argparse
import sys

from agents import train_cli
from agents.numpy_policy import PolicyFileError
from agents.train import HyperparamsError
from dnn import cli as dnn_cli
from dnn.data import DatasetError
from dnn.profile import ProfileError
from dnn.train import WeightsError
from envs import cli as envs_cli
from envs.scenario import ScenarioError
from hwmodels import cli as hwmodels_cli
from hwmodels.config import ConfigError
from hwmodels.live import LiveError
from hwmodels.profile import PlatformProfileError

#: Errors caused by what the user gave (a path, a file's content, a flag); reported in one
#: line with exit code 2. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    DatasetError,
    WeightsError,
    ProfileError,
    PlatformProfileError,
    ConfigError,
    ScenarioError,
    PolicyFileError,
    HyperparamsError,
    train_cli.UsageError,
    LiveError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynscale",
        description="RL control of a dynamic DNN's groups, mapping and DVFS on embedded boards.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dnn_cli.add_commands(sub)
    hwmodels_cli.add_commands(sub)
    hwmodels_cli.add_board_commands(sub)
    envs_cli.add_commands(sub)
    train_cli.add_commands(sub)
    return parser


def run_with_errors(args: argparse.Namespace) -> int:
    """Run a parsed command; user errors become one line on stderr and exit code 2."""
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"dynscale: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dynscale: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_with_errors(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
