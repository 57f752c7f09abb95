"""Batch-1 inference of the dynamic DNN as a board runs it: one image per request, k groups,
a given number of torch threads. The profiler, the deploy loop and ``dnn eval``'s latency
column all time inference through this one class.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from dnn.data import to_tensor
from dnn.runner_base import Runner
from dnn.train import Checkpoint


class InferenceRunner(Runner):
    """Runs configuration k of a trained model on one image at a time.

    :param ckpt: the loaded weight file
    :param images: uint8 images (N, 32, 32, 3) to cycle through (``None``: one random image,
        for timing only)
    :param labels: their labels (``None``: correctness is not reported)
    :param device: ``cpu`` or ``cuda``
    """

    def __init__(
        self,
        ckpt: Checkpoint,
        images: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        device: str = "cpu",
    ) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
        self.model = ckpt.model.to(device).eval()
        self.device = device
        size = self.model.arch.image_size
        if images is None:
            self.x = torch.randn(1, 3, size, size, device=device)
        else:
            self.x = to_tensor(images, ckpt.mean, ckpt.std).to(device)
        self.y = None if labels is None else np.asarray(labels)
        self._next = 0

    @property
    def groups(self) -> int:
        return self.model.groups

    def set_threads(self, threads: int) -> None:
        """Intra-op threads for the next inferences (CPU units; a no-op when unchanged)."""
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def infer(self, k: int) -> tuple[float, bool | None]:
        """Classify the next image with configuration ``k``.

        :return: (latency in ms, whether the prediction was right; ``None`` without labels)
        """
        i = self._next
        self._next = (i + 1) % len(self.x)
        x = self.x[i : i + 1]
        t0 = time.perf_counter()
        logits = self.model(x, groups=k)
        pred = int(logits.argmax(1)[0])  # .item() waits for a GPU, so the time is complete
        ms = (time.perf_counter() - t0) * 1e3
        return ms, (None if self.y is None else bool(pred == int(self.y[i])))


def median_latency_ms(ckpt: Checkpoint, k: int, threads: int, repeats: int = 50, warmup: int = 10) -> float:
    """Median batch-1 latency of configuration ``k`` with ``threads`` threads (restores the thread count)."""
    previous = torch.get_num_threads()
    try:
        return statistics.median(InferenceRunner(ckpt).time_config(k, threads, repeats, warmup))
    finally:
        torch.set_num_threads(previous)
