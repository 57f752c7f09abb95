"""The runtimes that can run the dynamic DNN, and the runner of each (:mod:`dnn.runner` on torch,
:mod:`dnn.onnx_runner` on ONNX Runtime); each is imported only when chosen, so a board without
torch never imports it.
"""

from __future__ import annotations

import os

from dnn.runner_base import Runner

#: the runtimes a runner can use: torch (every unit), ONNX Runtime (CPU units)
BACKENDS = ("torch", "onnx")
_NEEDS_EXPORT = "--backend onnx: give the export folder with --export DIR (made by: dynscale dnn export --out DIR)"


def check_backend_flags(backend: str, export: str | os.PathLike | None) -> None:
    """``--export`` only with ``--backend onnx``, which needs a readable export folder (checked
    before any slow work; raises :class:`dnn.errors.UsageError` or the manifest's error)."""
    from dnn.errors import UsageError

    if export and backend != "onnx":
        raise UsageError("--export: only with --backend onnx")
    if backend == "onnx":
        if not export:
            raise UsageError(_NEEDS_EXPORT)
        from dnn.onnx_runner import load_manifest

        load_manifest(export)


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
    :param export: the export folder of ``dynscale dnn export`` (onnx)
    """
    from dnn.errors import UsageError

    if backend == "torch":
        from dnn.runner import InferenceRunner
        from dnn.train import load_weights

        return InferenceRunner(load_weights(weights), images, labels, device="cuda" if kind == "gpu" else "cpu")
    if backend == "onnx":
        if kind != "cpu":
            raise UsageError(f"--backend onnx: runs CPU units only (this profile has a {kind} unit); use --backend torch")
        if export is None:
            raise UsageError(_NEEDS_EXPORT)
        from dnn.onnx_runner import OnnxRunner

        return OnnxRunner(export, images, labels)
    raise UsageError(f"--backend: {backend!r} is none of {', '.join(BACKENDS)}")
