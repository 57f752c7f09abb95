"""Sysfs access under one root, the error every board interface raises, and restore on exit.

Everything the runtime reads or writes on the board goes through one :class:`Sysfs` root, so
tests point it at a fake tree shaped like an XU3 or a Nano. :func:`restore_on_exit` puts back
whatever was changed (DVFS settings, load workers) on a normal end, at interpreter exit and on
SIGTERM / SIGINT.

Standard library only: this is what the board runs beside the exported policy.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dnn.errors import UserError


class LiveError(UserError, RuntimeError):
    """A board interface that cannot be used; the message names the file and the reason."""


class Sysfs:
    """Reads and writes files under one root (``/`` on a board, a fake tree in tests).

    :param root: the directory that stands for ``/``
    """

    def __init__(self, root: str | os.PathLike = "/") -> None:
        self.root = Path(root)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def exists(self, p: str) -> bool:
        return self.path(p).exists()

    def read(self, p: str) -> str:
        f = self.path(p)
        try:
            return f.read_text().strip()
        except FileNotFoundError:
            raise LiveError(f"{f}: missing") from None
        except PermissionError:
            raise LiveError(f"{f}: permission denied (reading it needs root on this board)") from None
        except OSError as exc:
            raise LiveError(f"{f}: unreadable ({exc.strerror})") from None

    def write(self, p: str, value: str | int) -> None:
        f = self.path(p)
        try:
            with open(f, "w") as fh:
                fh.write(f"{value}\n")
        except FileNotFoundError:
            raise LiveError(f"{f}: missing") from None
        except PermissionError:
            raise LiveError(f"{f}: permission denied (DVFS control needs root)") from None
        except OSError as exc:
            raise LiveError(f"{f}: write of {value!r} refused ({exc.strerror})") from None


class Restorable(Protocol):
    """Anything that puts the board back as it found it (DVFS controls, the load generator)."""

    def restore(self) -> list[str]: ...


def restore_on_exit(*things: Restorable) -> Callable[[], None]:
    """Restore ``things`` at interpreter exit and on SIGTERM / SIGINT, first thing.

    After restoring, the signal goes on to the handler it replaced when that is Python code
    (Ctrl-C's ``KeyboardInterrupt``; under :func:`dnn.errors.run_command` SIGTERM's
    ``Terminated``), so the program unwinds, closes its files and says how it ended; where the
    replaced handler was the default, the process dies of the signal, as its caller expects.

    :return: the function to call on a normal end: it restores them all and puts back the
        signal handlers and exit hooks it replaced
    """

    def restore_all() -> None:
        for t in things:
            t.restore()

    def handler(signum, frame):
        restore_all()
        before = previous[signum]
        if callable(before):
            before(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    atexit.register(restore_all)
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def finish() -> None:
        restore_all()
        atexit.unregister(restore_all)
        for sig, h in previous.items():
            signal.signal(sig, h)

    return finish
