"""File helpers shared by every package: atomic writes, and YAML reads with errors naming the file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    On any exception the temporary file is removed and ``path`` is left as it was.

    :param path: the file to (re)write
    :param mode: ``"w"`` for text or ``"wb"`` for bytes
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_yaml(path: str | os.PathLike, error: type[Exception], what: str = "file") -> Any:
    """Parse a YAML file; a missing file, an unreadable one or bad YAML raises ``error`` with
    one line that names the path.

    :param error: the exception class of the caller's domain (its message names the file)
    :param what: what the file is, for the missing-file message ("DNN profile", ...)
    """
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such {what}")
    try:
        return yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).replace("\n", " ")
        raise error(f"{p}: not readable YAML ({reason})") from exc
