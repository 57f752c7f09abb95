"""``dynscale-board``: what a board runs from a bundle (:mod:`runtime.bundle`): ``board info``,
``deploy`` and ``profile``, the same commands as ``dynscale``'s, importing numpy, PyYAML and the
DNN backend's package only (no torch, stable-baselines3, gymnasium or matplotlib; ``profile``
also SciPy, for its fits).
"""

from __future__ import annotations

import sys

from dnn.errors import OneLineParser, run_cli
from runtime.cli import add_board_commands


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="dynscale-board",
        description="Run a bundled policy live on this board, or profile the board (board info, deploy, profile).",
    )
    add_board_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv, prog="dynscale-board")


if __name__ == "__main__":
    sys.exit(main())
