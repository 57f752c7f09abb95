"""Progress output fit for terminals and for logs alike.

On a terminal, a tqdm bar. When stderr is not a terminal (a CI log, ``2> err.txt``), one plain
line per tenth of the work, never carriage-return frames. Disabled (``--quiet``, ``--json``):
nothing. Every long command of every package reports progress through :func:`progress`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class LineProgress:
    """A tqdm-shaped progress reporter that writes one line per ``step`` fraction of ``total``.

    :param total: units of work (``None``: unknown; a line every ``every_s`` seconds instead)
    :param desc: what is being done
    :param unit: name of one unit of work
    :param stream: where lines go (default: stderr)
    :param step: fraction of the total between two lines
    :param every_s: seconds between two lines when the total is unknown
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        stream: TextIO | None = None,
        step: float = 0.1,
        every_s: float = 30.0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.step, self.every_s = step, every_s
        self.n = 0
        self._t0 = time.monotonic()
        self._next_frac = step
        self._next_t = self._t0 + every_s

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total:
            frac = self.n / self.total
            if frac >= self._next_frac - 1e-12:
                while self._next_frac <= frac + 1e-12:
                    self._next_frac += self.step
                self._line(f"{frac * 100:.0f}% ({self.n}/{self.total} {self.unit})")
        elif time.monotonic() >= self._next_t:
            self._next_t = time.monotonic() + self.every_s
            self._line(f"{self.n} {self.unit}")

    def set_postfix_str(self, _text: str) -> None:
        """Accepted for tqdm compatibility; a log gets no per-item detail."""

    def close(self) -> None:
        if self.total is None and self.n:
            self._line(f"{self.n} {self.unit}, done")

    def _line(self, what: str) -> None:
        print(f"{self.desc}: {what}, {time.monotonic() - self._t0:.0f} s", file=self.stream, flush=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class NoProgress:
    """Reports nothing (``--quiet``)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, _text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(total: int | None, desc: str, enabled: bool = True, unit: str = "it", leave: bool = True):
    """A progress reporter with ``update``, ``set_postfix_str`` and ``close``: a tqdm bar on a
    terminal, :class:`LineProgress` in a log, :class:`NoProgress` when disabled.

    :param total: units of work (``None``: unknown)
    :param desc: what is being done (the line's prefix)
    :param enabled: ``False`` (``--quiet``, ``--json``): report nothing
    :param unit: name of one unit of work
    :param leave: keep the bar on screen when done (terminal only)
    """
    if not enabled:
        return NoProgress()
    if is_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(total, desc, unit)
