"""Export of the dynamic DNN to ONNX (one graph per k, one shared weights file) and the
torch-free ONNX Runtime runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dnn.data import to_tensor
from dnn.model import Architecture, DynamicAlexNet
from dnn.train import Checkpoint, save_weights
from dynscale_cli import main

TINY = Architecture(conv_channels=(4, 6, 8, 8, 4), fc_hidden=16)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Checkpoint, Path]:
    tmp = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    model = DynamicAlexNet(TINY).eval()
    for m in model.modules():  # BatchNorm statistics other than the identity, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ckpt = Checkpoint(model, 4, np.array([0.5, 0.4, 0.3]), np.array([0.25, 0.2, 0.3]), {}, "test")
    save_weights(tmp / "tiny.pt", ckpt)
    assert main(["dnn", "export", "--weights", str(tmp / "tiny.pt"), "--out", str(tmp / "onnx"), "--quiet"]) == 0
    return ckpt, tmp / "onnx"


def test_every_configuration_matches_torch_and_the_graphs_share_one_weights_file(exported) -> None:
    import onnx

    from dnn.onnx_runner import OnnxRunner, normalise

    ckpt, folder = exported
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["groups"] == 4 and sorted(p.name for p in folder.iterdir()) == sorted(
        [*manifest["graphs"].values(), "dynalexnet.weights", "model.json"]
    )
    # the weights of group g are stored once: every graph that runs it points at the same bytes
    refs = {}
    for k in range(1, 5):
        graph = onnx.load(str(folder / manifest["graphs"][str(k)]), load_external_data=False)
        refs[k] = {
            tuple((e.key, e.value) for e in t.external_data)
            for t in graph.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL
        }
        assert all(dict(r)["location"] == "dynalexnet.weights" for r in refs[k])
    assert refs[1] < refs[2] < refs[3] < refs[4]
    one_file = sum(p.numel() * p.element_size() for p in ckpt.model.parameters())
    assert (folder / "dynalexnet.weights").stat().st_size < 1.1 * one_file + 4096 * len(refs[4])

    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    x_torch = to_tensor(images, ckpt.mean, ckpt.std)
    x_np = normalise(images, manifest["mean"], manifest["std"])
    np.testing.assert_allclose(x_np, x_torch.numpy(), rtol=1e-6, atol=1e-6)
    runner = OnnxRunner(folder, images, labels=np.zeros(16, dtype=int))
    for k in range(1, 5):
        with torch.no_grad():
            want = ckpt.model(x_torch, groups=k).numpy()
        np.testing.assert_allclose(runner.logits(x_np, k), want, rtol=1e-4, atol=1e-5)
        ms, correct = runner.infer(k)
        assert ms > 0 and isinstance(correct, bool)
    assert runner.time_config(2, threads=2, repeats=3, warmup=1) and runner.session(2, 2) is runner.session(2, 2)


def test_the_runner_needs_neither_torch_nor_a_damaged_export(exported, tmp_path: Path) -> None:
    _, folder = exported
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from dnn.onnx_runner import OnnxRunner\n"
        f"r = OnnxRunner({str(folder)!r})\n"
        "print(r.infer(4)[0] > 0, 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]

    from dnn.onnx_runner import ExportError, load_manifest

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for p in folder.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    blob = bytearray((damaged / "dynalexnet.weights").read_bytes())
    blob[100] ^= 0xFF
    (damaged / "dynalexnet.weights").write_bytes(bytes(blob))
    with pytest.raises(ExportError, match=r"dynalexnet\.weights: SHA-256 differs"):
        load_manifest(damaged)
    with pytest.raises(ExportError, match=r"model\.json: no such file"):
        load_manifest(tmp_path)


def test_eval_backend_flags_exit_2_naming_the_flag(exported, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    _, folder = exported
    for argv, flag in (
        (["--backend", "onnx"], "--backend onnx"),
        (["--export", str(folder)], "--export"),
        (["--backend", "onnx", "--export", str(tmp_path)], "model.json"),
    ):
        assert main(["dnn", "eval", "--data", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err, err


def test_exporting_again_into_the_same_folder_replaces_it(exported, capsys: pytest.CaptureFixture) -> None:
    """--out is a folder: a second export into it replaces the files (it used to be refused as
    'a directory'), and the weights come out byte for byte the same."""
    ckpt, folder = exported
    before = (folder / "dynalexnet.weights").read_bytes()
    save_weights(folder.parent / "again.pt", ckpt)
    assert main(["dnn", "export", "--weights", str(folder.parent / "again.pt"), "--out", str(folder), "--quiet"]) == 0
    assert (folder / "dynalexnet.weights").read_bytes() == before


@pytest.fixture(scope="module")
def exported_ncnn(exported) -> tuple[Checkpoint, Path]:
    pytest.importorskip("pnnx", reason="the ncnn export needs pnnx (pip install pnnx ncnn)")
    pytest.importorskip("ncnn")
    ckpt, onnx_folder = exported
    out = onnx_folder.parent / "ncnn"
    weights = onnx_folder.parent / "tiny.pt"
    assert main(["dnn", "export", "--format", "ncnn", "--weights", str(weights), "--out", str(out), "--quiet"]) == 0
    return ckpt, out


def test_ncnn_export_runs_every_configuration_as_torch_does(exported_ncnn, tmp_path: Path) -> None:
    """pnnx converts each configuration; ncnn's logits are torch's to its float16 storage, at any
    thread count; a damaged .bin is refused by the manifest's SHA-256."""
    from dnn.backends import make_runner
    from dnn.ncnn_runner import load_ncnn_manifest
    from dnn.onnx_runner import ExportError, normalise

    ckpt, folder = exported_ncnn
    manifest = load_ncnn_manifest(folder)
    assert manifest["format"] == "dynscale-dnn-ncnn" and sorted(p.name for p in folder.iterdir()) == sorted(
        [*(f"dynalexnet_k{k}.{x}" for k in range(1, 5) for x in ("param", "bin")), "model.json"]
    )
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    x_np = normalise(images, manifest["mean"], manifest["std"])
    runner = make_runner("ncnn", "cpu", images, np.zeros(8, dtype=int), export=folder)
    for threads in (1, 2):
        runner.set_threads(threads)
        for k in range(1, 5):
            with torch.no_grad():
                want = ckpt.model(to_tensor(images, ckpt.mean, ckpt.std), groups=k).numpy()
            got = runner.logits(x_np, k)
            np.testing.assert_allclose(got, want, atol=0.02 * max(1.0, float(np.abs(want).max())))
            assert (got.argmax(1) == want.argmax(1)).mean() >= 0.75
            ms, correct = runner.infer(k)
            assert ms > 0 and isinstance(correct, bool)
    assert runner.net(3) is runner.net(3) and runner.net(3) is not runner.net(2)

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for p in folder.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    blob = bytearray((damaged / "dynalexnet_k2.bin").read_bytes())
    blob[-1] ^= 0xFF
    (damaged / "dynalexnet_k2.bin").write_bytes(bytes(blob))
    with pytest.raises(ExportError, match=r"\.bin files' SHA-256 differs"):
        load_ncnn_manifest(damaged)
    with pytest.raises(ExportError, match=r"field 'format' is not 'dynscale-dnn-ncnn'"):
        load_ncnn_manifest(exported_ncnn[1].parent / "onnx")  # an ONNX export is not an ncnn one


def test_ncnn_backend_flags_exit_2_naming_the_flag(exported_ncnn, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    _, folder = exported_ncnn
    for argv, flag in (
        (["--backend", "ncnn"], "--backend ncnn: give the export folder"),
        (["--backend", "ncnn", "--export", str(folder.parent / "onnx")], "is not 'dynscale-dnn-ncnn'"),
    ):
        assert main(["dnn", "eval", "--data", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err, err
