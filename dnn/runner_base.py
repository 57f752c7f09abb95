"""What the profiler, the deploy loop and ``dnn eval`` time: batch-1 inference of configuration
k, the same way whichever runtime runs it (:class:`dnn.runner.InferenceRunner` on torch,
:class:`dnn.onnx_runner.OnnxRunner` on ONNX Runtime, :class:`dnn.ncnn_runner.NcnnRunner` on
ncnn). Standard library only: a board's runner must import without torch.
"""

from __future__ import annotations


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
