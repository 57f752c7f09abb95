"""The ``dynscale`` command: one root parser, one subcommand group per package, one error rule.

It sits above every package (dnn -> hwmodels -> envs -> agents -> runtime), so no package
imports another upwards to build the command line. Every :class:`dnn.errors.UserError` is one
line on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from agents import cli as agents_cli
from dnn import cli as dnn_cli
from dnn.errors import OneLineParser, run_cli
from envs import cli as envs_cli
from hwmodels import cli as hwmodels_cli
from runtime import cli as runtime_cli


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dynscale",
        description="RL control of a dynamic DNN's groups, mapping and DVFS on embedded boards.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dnn_cli.add_commands(sub)
    hwmodels_cli.add_commands(sub)
    envs_cli.add_commands(sub)
    parsers = agents_cli.add_commands(sub)
    runtime_cli.add_commands(sub, parsers["compare"])
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
