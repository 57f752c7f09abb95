"""File helpers shared by every package: the rule for what a command writes, atomic writes,
and YAML / CSV reads with errors naming the file.

The rule for outputs: a command never writes over a file it reads (:func:`check_outputs`
compares resolved paths and refuses in one line), never writes to a directory named as a file,
and writes each file to a temporary file beside it that is renamed into place only when
complete (:func:`atomic_write`). A temporary file left by a killed run is swept by the next
write of the same file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from dnn.errors import UsageError

PathArgs = dict[str, "str | os.PathLike | None"] | list[tuple[str, "str | os.PathLike | None"]]


def check_outputs(outputs: PathArgs, inputs: PathArgs) -> None:
    """Refuse (:class:`UsageError`, one line) an output that is a directory, that lies under a
    file, that is the same file as an input or as another output, or that is an existing file
    inside an input folder.

    :param outputs: flag (as the user typed it, e.g. ``--log``) -> path the command will write
    :param inputs: flag -> path the command reads (``None`` entries are skipped); a list of
        (flag, path) pairs where a flag is given several paths
    """
    seen: dict[Path, str] = {}
    folders: dict[Path, str] = {}
    for flag, path in inputs.items() if isinstance(inputs, dict) else inputs:
        if path is not None and Path(path).is_dir():
            folders[Path(path).resolve()] = f"{flag} {path}"
        elif path is not None and Path(path).exists():
            for p in _files_of(Path(path)):
                seen.setdefault(p.resolve(), f"{flag} {path}")
    for flag, path in outputs.items() if isinstance(outputs, dict) else outputs:
        if path is None:
            continue
        p = Path(path)
        if p.is_dir():
            raise UsageError(f"{flag} {path}: is a directory; name the file to write")
        blocking = next((a for a in p.parents if a.exists() and not a.is_dir()), None)
        if blocking is not None:
            raise UsageError(f"{flag} {path}: {blocking} is a file, not a folder; choose another path")
        other = seen.get(p.resolve())
        if other is not None:
            raise UsageError(f"{flag} {path}: is the same file as {other}; refusing to write over an input")
        # an existing file anywhere inside a folder the command reads (a dataset, a run folder)
        inside = [label for d, label in folders.items() if d in p.resolve().parents]
        if inside and p.exists():
            raise UsageError(f"{flag} {path}: is a file inside {inside[0]}, which this command reads; write elsewhere")
        seen[p.resolve()] = f"{flag} {path}"


def _files_of(path: Path) -> list[Path]:
    """A path and, for a policy stem, both files it stands for."""
    if path.suffix in (".npz", ".json"):
        return [path, path.with_suffix(".json" if path.suffix == ".npz" else ".npz")]
    return [path]


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def sweep_partial(target: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``target`` left by writers that died (their pid is gone).

    :return: the files removed
    """
    t = Path(target)
    removed = []
    if not t.parent.is_dir():
        return removed
    for f in t.parent.glob(f"{_temp_prefix(t)}*.part"):
        pid = f.name[len(_temp_prefix(t)) :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    On any exception (Ctrl-C and, under :func:`dnn.errors.run_command`, SIGTERM included) the
    temporary file is removed and ``path`` is left as it was; one left by a killed process is
    swept by the next write of ``path``.

    :param path: the file to (re)write
    :param mode: ``"w"`` for text or ``"wb"`` for bytes
    """
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target}: is a directory; name the file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_partial(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{_temp_prefix(target)}{os.getpid()}.", suffix=".part")
    except OSError as exc:
        raise UsageError(f"{target}: cannot write here ({exc.strerror})") from None
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


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as strict JSON: NaN and infinities (never valid JSON) are written as ``null``,
    numpy scalars as plain numbers. Every JSON a command prints or writes goes through here."""
    plain = json.loads(json.dumps(obj, default=_plain))
    return json.dumps(_finite_or_none(plain), indent=indent, allow_nan=False)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _read_text(path: str | os.PathLike, error: type[Exception], what: str) -> tuple[Path, str]:
    """A text file's path and content; a UTF-8 byte-order mark is skipped (spreadsheet programs
    and some editors write one, and it would glue itself onto the first key or column name)."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such {what}")
    try:
        return p, p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror})") from None


def read_yaml(path: str | os.PathLike, error: type[Exception], what: str = "file") -> Any:
    """Parse a YAML file; a missing file, one that is not UTF-8 text or bad YAML raises
    ``error`` (the exception class of the caller's domain) with one line that names the path;
    ``what`` names the kind of file in the missing-file message ("DNN profile", ...)."""
    p, text = _read_text(path, error, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{p}: not readable YAML ({' '.join(str(exc).split())})") from None


def read_json_document(
    path: str | os.PathLike, error: type[Exception], fmt: str, fields: tuple[str, ...], what: str = "file"
) -> dict:
    """A JSON object tagged ``"format": fmt`` that has every one of ``fields`` (a policy's
    metadata, an export's manifest); errors as :func:`read_yaml`'s, naming the field at fault."""
    p, text = _read_text(path, error, what)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise error(f"{p}: field 'format' is not {fmt!r}")
    for key in fields:
        if key not in doc:
            raise error(f"{p}: field {key!r} missing")
    return doc


def read_csv_rows(path: str | os.PathLike, error: type[Exception], what: str = "file") -> list[list[str]]:
    """The rows of a CSV file; errors as :func:`read_yaml`'s (a NUL byte or a broken quote is
    "not a readable CSV file")."""
    p, text = _read_text(path, error, what)
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise error(f"{p}: not a readable CSV file ({' '.join(str(exc).split())})") from None


#: a run folder holding this file is incomplete (the run failed, was interrupted, or is running)
INCOMPLETE_MARKER = "INCOMPLETE"


def mark_incomplete(folder: str | os.PathLike, reason: str) -> None:
    """Mark a run folder incomplete until :func:`mark_complete` (the marker says why)."""
    with atomic_write(Path(folder) / INCOMPLETE_MARKER) as f:
        f.write(reason.rstrip() + "\n")


def mark_complete(folder: str | os.PathLike) -> None:
    (Path(folder) / INCOMPLETE_MARKER).unlink(missing_ok=True)


def incomplete_reason(folder: str | os.PathLike) -> str | None:
    """Why a run folder is incomplete, or ``None`` when it is complete."""
    marker = Path(folder) / INCOMPLETE_MARKER
    if not marker.is_file():
        return None
    return " ".join(marker.read_text(errors="replace").split()) or "no reason recorded"
