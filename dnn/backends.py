"""The runtimes that can run the dynamic DNN, and the runner of each (:mod:`dnn.runner` on torch,
:mod:`dnn.onnx_runner` on ONNX Runtime, :mod:`dnn.ncnn_runner` on ncnn); each is imported only
when chosen, so a board without torch never imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

from dnn.runner_base import Runner

#: the runtimes a runner can use: torch (every unit), ONNX Runtime and ncnn (CPU units, from an export)
BACKENDS = ("torch", "onnx", "ncnn")
#: the backends that run an export folder of ``dynscale dnn export --format <backend>``
EXPORTED = ("onnx", "ncnn")


def _needs_export(backend: str) -> str:
    return (
        f"--backend {backend}: give the export folder with --export DIR "
        f"(made by: dynscale dnn export --format {backend} --out DIR)"
    )


def load_export_manifest(backend: str, export: str | os.PathLike) -> dict:
    """The checked manifest of ``backend``'s export folder (raises the manifest's error)."""
    if backend == "ncnn":
        from dnn.ncnn_runner import load_ncnn_manifest

        return load_ncnn_manifest(export)
    from dnn.onnx_runner import load_manifest

    return load_manifest(export)


def require_torch():
    """``torch``, or a one-line :class:`dnn.errors.UsageError` where it is not installed (a board
    that runs an export: ``--backend torch`` is the default)."""
    from dnn.errors import UsageError

    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise UsageError(
            f"--backend torch: torch is not installed here; run an export with --backend {' or '.join(EXPORTED)} --export DIR"
        ) from None
    return torch


def export_backend(export: str | os.PathLike) -> str:
    """The backend an export folder is for (:data:`EXPORTED`), from its manifest's ``format``
    (raises :class:`dnn.exported.ExportError` where it is none of theirs)."""
    import json

    from dnn.exported import MANIFEST, ExportError
    from dnn.ncnn_runner import NCNN_FORMAT
    from dnn.onnx_runner import MANIFEST_FORMAT

    path = Path(export) / MANIFEST
    if not path.is_file():
        raise ExportError(
            f"--export {export}: no {MANIFEST} there (export one with: dynscale dnn export --format onnx --out DIR)"
        )
    try:
        fmt = json.loads(path.read_text()).get("format")
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportError(f"{path}: not an export manifest ({exc.__class__.__name__})") from None
    formats = {MANIFEST_FORMAT: "onnx", NCNN_FORMAT: "ncnn"}
    if fmt not in formats:
        raise ExportError(f"{path}: field 'format' is {fmt!r}, not one of {', '.join(formats)}")
    return formats[fmt]


def check_backend_flags(backend: str, export: str | os.PathLike | None) -> None:
    """``--export`` only with a backend that runs one (:data:`EXPORTED`), which needs a readable
    export folder of its format (checked before any slow work; raises
    :class:`dnn.errors.UsageError` or the manifest's error)."""
    from dnn.errors import UsageError

    if export and backend not in EXPORTED:
        raise UsageError(f"--export: only with --backend {' or '.join(EXPORTED)}")
    if backend in EXPORTED:
        if not export:
            raise UsageError(_needs_export(backend))
        load_export_manifest(backend, export)


def make_runner(
    backend: str,
    kind: str,
    images=None,
    labels=None,
    weights: str | os.PathLike | None = None,
    export: str | os.PathLike | None = None,
) -> Runner:
    """The runner of ``backend`` for a unit of ``kind`` (``cpu``, ``gpu``).

    :param backend: one of :data:`BACKENDS`
    :param kind: the unit's kind
    :param images: uint8 test images to classify (``None``: a random image)
    :param labels: their labels
    :param weights: the torch weight file (torch; default: the shipped weights)
    :param export: the export folder of ``dynscale dnn export`` (onnx, ncnn)
    """
    from dnn.errors import UsageError

    if backend == "torch":
        require_torch()
        from dnn.runner import InferenceRunner
        from dnn.train import load_weights

        return InferenceRunner(load_weights(weights), images, labels, device="cuda" if kind == "gpu" else "cpu")
    if backend not in EXPORTED:
        raise UsageError(f"--backend: {backend!r} is none of {', '.join(BACKENDS)}")
    if kind != "cpu":
        raise UsageError(f"--backend {backend}: runs CPU units only (this profile has a {kind} unit); use --backend torch")
    if export is None:
        raise UsageError(_needs_export(backend))
    if backend == "ncnn":
        from dnn.ncnn_runner import NcnnRunner

        return NcnnRunner(export, images, labels)
    from dnn.onnx_runner import OnnxRunner

    return OnnxRunner(export, images, labels)
