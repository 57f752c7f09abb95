"""Batch-1 inference of the exported dynamic DNN on ncnn (Tencent's runtime for phones and
boards, the one behind the published XU4 and Nano CNN latencies in FACTS), without torch.

It has the interface of :class:`dnn.runner_base.Runner`, so the profiler and the deploy loop time
it as they time torch and ONNX Runtime. Its input is the folder of ``dynscale dnn export
--format ncnn`` (:func:`dnn.export.export_ncnn`): ``model.json`` and one ``.param`` / ``.bin``
pair per group count. numpy and the ``ncnn`` package only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from dnn.exported import MANIFEST, ExportedRunner, ExportError
from dnn.fileio import read_json_document

#: the manifest's format tag
NCNN_FORMAT = "dynscale-dnn-ncnn"


def load_ncnn_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of an ncnn export folder, checked: every k's param and bin present, the bins'
    SHA-256 (in k order) as exported (raises :class:`dnn.exported.ExportError`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{path}: no such file (export one with: dynscale dnn export --format ncnn --out {folder})")
    fields = ("groups", "mean", "std", "input", "output", "graphs", "weights_sha256", "image_size")
    m = read_json_document(path, ExportError, NCNN_FORMAT, fields, "ncnn export manifest")
    if not isinstance(m["groups"], int) or m["groups"] < 1 or not isinstance(m["graphs"], dict):
        raise ExportError(f"{path}: field 'groups' must be a whole number >= 1 and 'graphs' a mapping")
    digest = hashlib.sha256()
    for k in range(1, m["groups"] + 1):
        pair = m["graphs"].get(str(k))
        if not isinstance(pair, dict) or not all(isinstance(pair.get(x), str) for x in ("param", "bin")):
            raise ExportError(f"{path}: field 'graphs.{k}' must name the 'param' and 'bin' files of k = {k}")
        for x in ("param", "bin"):
            if Path(pair[x]).name != pair[x] or not (folder / pair[x]).is_file():
                raise ExportError(f"{path}: the {x} file of k = {k} ({pair[x]!r}) is missing from {folder}")
        digest.update((folder / pair["bin"]).read_bytes())
    if digest.hexdigest() != m["weights_sha256"]:
        raise ExportError(f"{folder}: the .bin files' SHA-256 differs from the manifest's (a different or damaged export)")
    return m


class NcnnRunner(ExportedRunner):
    """Runs configuration k of an ncnn export on one image at a time.

    One ``ncnn.Net`` per (k, threads), loaded on first use: ncnn picks its convolution kernels
    (gemm, winograd) for the thread count it is loaded with and keeps them ("opt.num_threads
    changed, convolution gemm will use load-time value" otherwise). ncnn's threads are an OpenMP
    pool: the deploy loop pins every thread of the process to the configuration's CPUs
    (:func:`runtime.topology.set_affinity`).

    ncnn's own defaults stand, as a board would run them: where the CPU converts half floats (x86
    F16C, ARM VFPv4) it stores weights and activations as float16, so logits differ from torch's
    by up to 0.03 and every test image's prediction agrees (README).

    :param folder: the export folder
    :param images: uint8 images (N, 32, 32, 3) to cycle through (``None``: one random image)
    :param labels: their labels (``None``: correctness is not reported)
    """

    def __init__(self, folder: str | os.PathLike, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> None:
        # OpenMP threads that sleep between parallel regions instead of spinning (read when ncnn's
        # libgomp loads): measured on this project's 2-CPU host (ncnn alone in the process),
        # requests 16 ms apart that alternate one- and two-thread configurations took 12.5 ms at
        # two threads (2.8 ms alone) with the default policy, 3.2 ms with passive waiting, and
        # spinning ("active") made the one-thread runs beside an idle pool thread up to 2x slower.
        # At the profiler's 33 ms pace two-thread runs still take ~12 ms whatever the policy: the
        # idle second vCPU's wake-up, which the profile then records
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        try:
            import ncnn
        except ImportError:
            raise ExportError("the ncnn backend needs the ncnn package: pip install ncnn") from None
        self._ncnn = ncnn
        super().__init__(folder, load_ncnn_manifest(folder), images, labels)
        self._nets: dict[tuple[int, int], object] = {}

    def net(self, k: int):
        """The ncnn net of configuration ``k`` at the current thread count (loaded on first use)."""
        self._check_groups(k)
        key = (k, self._threads)
        if key not in self._nets:
            net = self._ncnn.Net()
            net.opt.num_threads = self._threads
            pair = self.manifest["graphs"][str(k)]
            if net.load_param(str(self.folder / pair["param"])) != 0 or net.load_model(str(self.folder / pair["bin"])) != 0:
                raise ExportError(f"{self.folder}: ncnn could not load the graph of k = {k} ({pair['param']}, {pair['bin']})")
            self._nets[key] = net
        return self._nets[key]

    def _run(self, net, image: np.ndarray) -> np.ndarray:
        """Logits of one normalised image (3, H, W) on ``net``."""
        ex = net.create_extractor()
        ex.input(self.manifest["input"], self._ncnn.Mat(image))
        status, out = ex.extract(self.manifest["output"])
        if status != 0:
            raise RuntimeError(f"ncnn: extracting {self.manifest['output']!r} failed ({status})")
        return np.array(out)

    def logits(self, x: np.ndarray, k: int) -> np.ndarray:
        """Logits of configuration ``k`` for a batch of normalised images (run one by one)."""
        net = self.net(k)
        return np.stack([self._run(net, np.ascontiguousarray(img)) for img in x])

    def classifier(self, k: int):
        net = self.net(k)
        return lambda x: int(self._run(net, x[0]).argmax())
