"""The ``dynscale`` command: one entry point, one subcommand group per package."""

from __future__ import annotations

import argparse
import sys

from dnn import cli as dnn_cli
from dnn.data import DatasetError
from dnn.evaluate import ProfileError
from dnn.train import WeightsError
from envs import cli as envs_cli
from envs.scenario import ScenarioError
from hwmodels import cli as hwmodels_cli
from hwmodels.config import ConfigError
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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynscale",
        description="RL control of a dynamic DNN's groups, mapping and DVFS on embedded boards.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dnn_cli.add_commands(sub)
    hwmodels_cli.add_commands(sub)
    envs_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"dynscale: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dynscale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
