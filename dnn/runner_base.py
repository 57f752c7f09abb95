"""What the profiler, the deploy loop and ``dnn eval`` time: batch-1 inference of configuration
k, the same way whichever runtime runs it (:class:`dnn.runner.InferenceRunner` on torch,
:class:`dnn.onnx_runner.OnnxRunner` on ONNX Runtime). Standard library only: a board's runner
must import without torch.
"""

from __future__ import annotations

import os

#: the runtimes a runner can use: torch (every unit), ONNX Runtime (CPU units)
BACKENDS = ("torch", "onnx")


class Runner:
    """Batch-1 inference of one configuration at a time (one image per request, cycling through
    the runner's images)."""

    @property
    def groups(self) -> int:
        """G: the configurations are k = 1..G."""
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """Intra-op threads for the next inferences (a no-op when unchanged)."""
        raise NotImplementedError

    def infer(self, k: int) -> tuple[float, bool | None]:
        """Classify the next image with configuration ``k``: (latency in ms of the inference and
        its argmax, whether the prediction was right; ``None`` without labels)."""
        raise NotImplementedError

    def time_config(self, k: int, threads: int, repeats: int, warmup: int) -> list[float]:
        """Latencies (ms) of ``repeats`` inferences of configuration ``k`` after ``warmup`` ones."""
        self.set_threads(threads)
        for _ in range(warmup):
            self.infer(k)
        return [self.infer(k)[0] for _ in range(repeats)]


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
            raise UsageError("--backend onnx: give the export folder with --export DIR (made by: dynscale dnn export --out DIR)")
        from dnn.onnx_runner import OnnxRunner

        return OnnxRunner(export, images, labels)
    raise UsageError(f"--backend: {backend!r} is none of {', '.join(BACKENDS)}")
