"""Export of the dynamic DNN to ONNX: one graph per group count k = 1..G, one weights file.

Configuration k runs groups 1..k, and group g's weights are the same in every configuration
that runs it (the incremental training froze them), so the graphs share their weights: every
graph stores its tensors as ONNX external data pointing into one file, ``dynalexnet.weights``,
at the offset where that tensor's bytes are, each tensor's bytes stored once (deduplicated by
content). On the board the one-file memory claim holds for ONNX as for the torch weight file:
a runtime that maps the file (ONNX Runtime does for external data) keeps one copy of group 1
whichever configurations it has loaded.

Each graph takes ``image`` (N x 3 x 32 x 32, normalised with the manifest's mean and std) and
gives ``logits`` (N x 10); ``model.json`` (the manifest) names the graphs, the input
normalisation and the weights file's SHA-256, so a runner needs nothing from torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dnn.fileio import atomic_write
from dnn.onnx_runner import MANIFEST, MANIFEST_FORMAT, WEIGHTS_FILE

if TYPE_CHECKING:
    from dnn.train import Checkpoint

#: tensors start at multiples of this in the weights file (a page: a runtime may map them)
ALIGN = 4096
#: tensors smaller than this stay inside their graph (shapes, constants)
MIN_EXTERNAL_BYTES = 1024
OPSET = 18


def export_onnx(ckpt: Checkpoint, out: str | os.PathLike, source: str = "", progress: bool = True) -> dict:
    """Write ``dynalexnet_k{k}.onnx`` for k = 1..G, the shared ``dynalexnet.weights`` and
    ``model.json`` into ``out`` (created; files written atomically, the manifest last, so a
    folder with a manifest is complete).

    :param ckpt: the loaded weight file
    :param out: the export folder
    :param source: the weight file's path, recorded in the manifest
    :param progress: show a progress bar
    :return: the manifest
    """
    import onnx
    from onnx.external_data_helper import set_external_data

    from dnn.progress import progress as progress_bar

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = ckpt.model.groups
    graphs, blobs, where = {}, bytearray(), {}
    bar = progress_bar(groups, "export", progress, "graph", leave=False)
    for k in range(1, groups + 1):
        graph = _export_graph(ckpt, k)
        for tensor in graph.graph.initializer:
            data = tensor.raw_data
            if len(data) < MIN_EXTERNAL_BYTES:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest not in where:  # stored once, whichever graphs use it
                blobs.extend(b"\0" * (-len(blobs) % ALIGN))
                where[digest] = (len(blobs), len(data))
                blobs.extend(data)
            offset, length = where[digest]
            set_external_data(tensor, WEIGHTS_FILE, offset, length)
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
        graphs[k] = graph
        bar.update()
    bar.close()
    with atomic_write(out / WEIGHTS_FILE, "wb") as f:
        f.write(bytes(blobs))
    names = {}
    for k, graph in graphs.items():
        names[str(k)] = graph_file(k)
        with atomic_write(out / names[str(k)], "wb") as f:
            f.write(graph.SerializeToString())
    manifest = {
        "format": MANIFEST_FORMAT,
        "groups": groups,
        "image_size": ckpt.model.arch.image_size,
        "num_classes": ckpt.model.arch.num_classes,
        "mean": [float(v) for v in ckpt.mean],
        "std": [float(v) for v in ckpt.std],
        "input": "image",
        "output": "logits",
        "graphs": names,
        "weights": WEIGHTS_FILE,
        "weights_bytes": len(blobs),
        "weights_sha256": hashlib.sha256(blobs).hexdigest(),
        "opset": OPSET,
        "source": source,
    }
    with atomic_write(out / MANIFEST) as f:
        json.dump(manifest, f, indent=2)
    return manifest


def graph_file(k: int) -> str:
    """The file name of configuration ``k``'s graph."""
    return f"dynalexnet_k{k}.onnx"


def export_files(groups: int) -> list[str]:
    """Every file :func:`export_onnx` writes into its folder, for a network of ``groups`` groups."""
    return [WEIGHTS_FILE, *(graph_file(k) for k in range(1, groups + 1)), MANIFEST]


def _export_graph(ckpt: Checkpoint, k: int):
    """Configuration ``k`` as an ONNX model (weights inline; a dynamic batch dimension)."""
    import onnx
    import torch

    class Configuration(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = ckpt.model

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.net(image, groups=k)

    model = Configuration().eval()
    size = ckpt.model.arch.image_size
    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = logging.getLogger("torch.onnx")  # says it skips torchvision's operators: not ours
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (torch.zeros(2, 3, size, size),),
                dynamo=True,
                input_names=["image"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamic_shapes={"image": {0: batch}},
                verbose=False,
            )
            path = Path(tmp) / "graph.onnx"
            program.save(str(path))
            return onnx.load(str(path), load_external_data=True)
    finally:
        quiet.setLevel(level)
