"""What the runners of an exported DNN share (ONNX Runtime: :mod:`dnn.onnx_runner`, ncnn:
:mod:`dnn.ncnn_runner`): the manifest's name, its error, numpy input normalisation and the
request loop. numpy and the standard library only: a board without torch imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dnn.errors import UserError
from dnn.runner_base import Runner

#: the manifest every export folder holds (its ``format`` says which runtime it is for)
MANIFEST = "model.json"


class ExportError(UserError):
    """An export folder that cannot be read: names the file and what is wrong."""


def normalise(images: np.ndarray, mean, std) -> np.ndarray:
    """NHWC ``uint8`` images to normalised NCHW ``float32`` (numpy: what ``dnn.data.to_tensor``
    does with torch, for runners without it)."""
    x = np.ascontiguousarray(images, dtype=np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - m) / s)


class ExportedRunner(Runner):
    """A runner of an export folder: cycles through its images one request at a time and times
    the :meth:`classifier` of the configuration (the runtime's inference and argmax).

    :param folder: the export folder
    :param manifest: its checked manifest
    :param images: uint8 images (N, 32, 32, 3) to cycle through (``None``: one random image)
    :param labels: their labels (``None``: correctness is not reported)
    """

    def __init__(self, folder: str | os.PathLike, manifest: dict, images: np.ndarray | None, labels: np.ndarray | None) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        size = int(manifest["image_size"])
        if images is None:
            self.x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        else:
            self.x = normalise(images, manifest["mean"], manifest["std"])
        self.y = None if labels is None else np.asarray(labels)
        self._next = 0
        self._threads = 1

    @property
    def groups(self) -> int:
        return int(self.manifest["groups"])

    def set_threads(self, threads: int) -> None:
        """Threads for the next inferences."""
        self._threads = int(threads)

    def _check_groups(self, k: int) -> None:
        if not 1 <= k <= self.groups:
            raise ValueError(f"groups must be an integer in 1..{self.groups}, got {k!r}")

    def logits(self, x: np.ndarray, k: int) -> np.ndarray:
        """Logits of configuration ``k`` for a batch of normalised images."""
        raise NotImplementedError

    def classifier(self, k: int) -> Callable[[np.ndarray], int]:
        """The function that classifies one normalised image (1, 3, H, W) with configuration
        ``k`` at the current threads and CPUs: what :meth:`infer` times. Made (a session, a net
        loaded) before the clock starts, so a configuration's first request is not charged for it."""
        raise NotImplementedError

    def infer(self, k: int) -> tuple[float, bool | None]:
        """Classify the next image with configuration ``k``.

        :return: (latency in ms, whether the prediction was right; ``None`` without labels)
        """
        i = self._next
        self._next = (i + 1) % len(self.x)
        classify = self.classifier(k)
        x = self.x[i : i + 1]
        t0 = time.perf_counter()
        pred = classify(x)
        ms = (time.perf_counter() - t0) * 1e3
        return ms, (None if self.y is None else bool(pred == int(self.y[i])))
