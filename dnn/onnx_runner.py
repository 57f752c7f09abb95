"""Batch-1 inference of the exported dynamic DNN on ONNX Runtime, without torch: the runner a
board without torch wheels uses (the XU3's armv7, a Jetson without a current CUDA torch).

It has the interface of :class:`dnn.runner.InferenceRunner` (``groups``, ``set_threads``,
``infer``, ``time_config``), so the profiler and the deploy loop time it the same way. Its
input is the export folder of ``dynscale dnn export`` (:mod:`dnn.export`): ``model.json``, one
graph per group count and the one weights file they share. numpy and onnxruntime only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from dnn.exported import MANIFEST, ExportedRunner, ExportError, normalise
from dnn.fileio import read_json_document

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "WEIGHTS_FILE", "ExportError", "OnnxRunner", "load_manifest", "normalise"]

#: the manifest's format tag
MANIFEST_FORMAT = "dynscale-dnn-onnx"
WEIGHTS_FILE = "dynalexnet.weights"


def load_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of an export folder, checked: every graph and the weights file present, the
    weights file's size and SHA-256 as exported (raises :class:`ExportError`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{path}: no such file (export one with: dynscale dnn export --format onnx --out {folder})")
    fields = ("groups", "mean", "std", "input", "output", "graphs", "weights", "weights_sha256", "image_size")
    m = read_json_document(path, ExportError, MANIFEST_FORMAT, fields, "export manifest")
    if not isinstance(m["groups"], int) or m["groups"] < 1 or not isinstance(m["graphs"], dict):
        raise ExportError(f"{path}: field 'groups' must be a whole number >= 1 and 'graphs' a mapping")
    if not isinstance(m["weights"], str) or Path(m["weights"]).name != m["weights"]:
        raise ExportError(f"{path}: field 'weights' must name a file in {folder}, got {m['weights']!r}")
    for k in range(1, int(m["groups"]) + 1):
        if not (folder / str(m["graphs"].get(str(k), ""))).is_file():
            raise ExportError(f"{path}: graph of k = {k} ({m['graphs'].get(str(k))!r}) missing from {folder}")
    weights = folder / m["weights"]
    if not weights.is_file():
        raise ExportError(f"{weights}: no such file (the graphs' shared weights)")
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != m["weights_sha256"]:
        raise ExportError(f"{weights}: SHA-256 differs from the manifest's (a different or damaged export)")
    return m


class OnnxRunner(ExportedRunner):
    """Runs configuration k of an exported model on one image at a time with ONNX Runtime.

    One session per (k, threads, CPUs this thread may run on), made on first use: ONNX Runtime
    fixes a session's intra-op threads when it is created, and they keep the CPU mask they were
    created with (Linux affinity is per thread), so a session made while pinned to one cluster
    must not serve a request pinned to another. Sessions run sequentially with one inter-op thread; their
    intra-op threads do not spin while idle (a board's co-runners get the CPU back between
    requests, as with torch's pool).

    :param folder: the export folder
    :param images: uint8 images (N, 32, 32, 3) to cycle through (``None``: one random image)
    :param labels: their labels (``None``: correctness is not reported)
    """

    def __init__(self, folder: str | os.PathLike, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ExportError("the onnx backend needs onnxruntime: pip install onnxruntime") from None
        self._ort = onnxruntime
        super().__init__(folder, load_manifest(folder), images, labels)
        self._sessions: dict[tuple[int, int, frozenset], object] = {}

    def session(self, k: int, threads: int | None = None):
        """The ONNX Runtime session of configuration ``k`` with ``threads`` intra-op threads."""
        self._check_groups(k)
        key = (k, self._threads if threads is None else int(threads), frozenset(os.sched_getaffinity(0)))
        if key not in self._sessions:
            opts = self._ort.SessionOptions()
            opts.intra_op_num_threads = key[1]
            opts.inter_op_num_threads = 1
            opts.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            path = self.folder / self.manifest["graphs"][str(k)]
            self._sessions[key] = self._ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return self._sessions[key]

    def logits(self, x: np.ndarray, k: int) -> np.ndarray:
        """Logits of configuration ``k`` for a batch of normalised images."""
        return self.session(k).run([self.manifest["output"]], {self.manifest["input"]: x})[0]

    def classifier(self, k: int):
        run, out, name = self.session(k).run, [self.manifest["output"]], self.manifest["input"]
        return lambda x: int(run(out, {name: x})[0].argmax())
