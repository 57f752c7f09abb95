"""Export of the dynamic DNN for runtimes without torch: ONNX (one graph per group count
k = 1..G, one weights file they share) and ncnn (one ``.param`` + ``.bin`` pair per k, via pnnx).

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

ncnn has no external data: a ``.bin`` holds the weights of its own graph in layer order, and
pnnx fuses each layer's groups into one convolution, so configuration k's file holds k groups'
weights and the four files together hold about 2.5 times the network (each configuration ncnn
has loaded holds its own copy). The files keep float32 weights (pnnx would store float16); ncnn
itself then stores them as float16 where the CPU converts half floats (its default), so logits
differ from torch's by up to about 0.03. ``model.json`` (format ``dynscale-dnn-ncnn``) names each
k's pair, the blob names and the SHA-256 of the bins in k order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dnn.exported import MANIFEST, ExportError
from dnn.fileio import atomic_write
from dnn.onnx_runner import MANIFEST_FORMAT, WEIGHTS_FILE

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
        **_manifest_head(MANIFEST_FORMAT, ckpt),
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


def export_ncnn(ckpt: Checkpoint, out: str | os.PathLike, source: str = "", progress: bool = True) -> dict:
    """Write ``dynalexnet_k{k}.param`` and ``.bin`` for k = 1..G and ``model.json`` into ``out``
    (created; files written atomically, the manifest last), converted by pnnx from the traced torch
    configuration.

    :param ckpt: the loaded weight file
    :param out: the export folder
    :param source: the weight file's path, recorded in the manifest
    :param progress: show a progress bar
    :return: the manifest
    """
    try:
        import pnnx
    except ImportError:
        raise ExportError("--format ncnn needs pnnx (the converter): pip install pnnx ncnn") from None
    import torch

    from dnn.ncnn_runner import NCNN_FORMAT
    from dnn.progress import progress as progress_bar

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups, size = ckpt.model.groups, ckpt.model.arch.image_size
    digest, total, names = hashlib.sha256(), 0, {}
    bar = progress_bar(groups, "export", progress, "graph", leave=False)
    for k in range(1, groups + 1):
        with tempfile.TemporaryDirectory() as tmp, _quiet_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pnnx traces with torch.jit.trace, which torch deprecates
            pnnx.export(_configuration(ckpt, k), str(Path(tmp) / "graph.pt"), (torch.zeros(1, 3, size, size),), fp16=False)
            param, weights = (Path(tmp) / "graph.ncnn.param").read_bytes(), (Path(tmp) / "graph.ncnn.bin").read_bytes()
        names[str(k)] = {"param": f"dynalexnet_k{k}.param", "bin": f"dynalexnet_k{k}.bin"}
        for name, data in ((names[str(k)]["param"], param), (names[str(k)]["bin"], weights)):
            with atomic_write(out / name, "wb") as f:
                f.write(data)
        digest.update(weights)
        total += len(weights)
        bar.update()
    bar.close()
    manifest = {
        **_manifest_head(NCNN_FORMAT, ckpt),
        "input": "in0",
        "output": "out0",
        "graphs": names,
        "weights_bytes": total,
        "weights_sha256": digest.hexdigest(),
        "converter": f"pnnx {getattr(pnnx, '__version__', '?')}",
        "source": source,
    }
    with atomic_write(out / MANIFEST) as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _manifest_head(fmt: str, ckpt: Checkpoint) -> dict:
    """The manifest fields every export format has: its tag, the network's shape, the input's normalisation."""
    return {
        "format": fmt,
        "groups": ckpt.model.groups,
        "image_size": ckpt.model.arch.image_size,
        "num_classes": ckpt.model.arch.num_classes,
        "mean": [float(v) for v in ckpt.mean],
        "std": [float(v) for v in ckpt.std],
    }


@contextlib.contextmanager
def _quiet_stderr():
    """pnnx's C++ passes log to file descriptor 2: keep it aside, and show it only if the
    conversion fails (the whole process's stderr is redirected meanwhile: call it from one thread)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        try:
            os.dup2(log.fileno(), 2)
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def graph_file(k: int) -> str:
    """The file name of configuration ``k``'s graph."""
    return f"dynalexnet_k{k}.onnx"


#: the formats ``dynscale dnn export`` writes
EXPORT_FORMATS = ("onnx", "ncnn")


def export_files(groups: int, fmt: str = "onnx") -> list[str]:
    """Every file the export of format ``fmt`` writes into its folder, for a network of ``groups`` groups."""
    if fmt == "ncnn":
        return [*(f"dynalexnet_k{k}.{ext}" for k in range(1, groups + 1) for ext in ("param", "bin")), MANIFEST]
    return [WEIGHTS_FILE, *(graph_file(k) for k in range(1, groups + 1)), MANIFEST]


def _configuration(ckpt: Checkpoint, k: int):
    """Configuration ``k`` of the network as a module of one input (what the exporters trace)."""
    import torch

    class Configuration(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = ckpt.model

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.net(image, groups=k)

    return Configuration().eval()


def _export_graph(ckpt: Checkpoint, k: int):
    """Configuration ``k`` as an ONNX model (weights inline; a dynamic batch dimension)."""
    import onnx
    import torch

    model = _configuration(ckpt, k)
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
