import csv
import fractions
import json
from pathlib import Path

import pytest
import torch

import dnn.train as train_mod
from dnn.data import load_cifar10
from dnn.model import Architecture
from dnn.train import TrainSettings, WeightsError, load_weights, train_incremental
from dynscale_cli import main

TINY = Architecture(conv_channels=(4, 6, 8, 8, 4), fc_hidden=16)


def test_train_then_eval_json(folders_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "w.pt"
    assert (
        main(["dnn", "train", "--data", str(folders_dir), "--epochs-per-stage", "1", "--out", str(out), "--batch-size", "8"]) == 0
    )
    ckpt = load_weights(out)
    assert ckpt.stages_done == 4
    with open(out.with_name("w.log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["stage"]) for r in rows] == [1, 2, 3, 4]
    capsys.readouterr()
    assert main(["dnn", "eval", "--weights", str(out), "--data", str(folders_dir), "--repeats", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["groups"] for c in report["configs"]] == [1, 2, 3, 4]
    for c in report["configs"]:
        assert 0 <= c["top1"] <= 1 and c["macs"] > 0 and c["weight_bytes"] > 0
        assert set(c["latency_ms"]) >= {"threads_1"} and all(v > 0 for v in c["latency_ms"].values())
    assert report["configs"][3]["macs"] == pytest.approx(4 * report["configs"][0]["macs"], rel=0.05)


def test_resume_equals_uninterrupted_run(folders_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_cifar10(folders_dir)
    s = TrainSettings(epochs_per_stage=1, batch_size=8, seed=3)
    whole = train_incremental(data, tmp_path / "a.pt", s, arch=TINY, progress=False)

    real = train_mod._train_stage

    def crash_at_stage_3(model, stage, *args, **kw):
        if stage == 3:
            raise KeyboardInterrupt
        return real(model, stage, *args, **kw)

    monkeypatch.setattr(train_mod, "_train_stage", crash_at_stage_3)
    with pytest.raises(KeyboardInterrupt):
        train_incremental(data, tmp_path / "b.pt", s, arch=TINY, progress=False)
    assert load_weights(tmp_path / "b.pt").stages_done == 2
    monkeypatch.setattr(train_mod, "_train_stage", real)
    resumed = train_incremental(data, tmp_path / "b.pt", s, resume=True, progress=False)
    for (n, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), n
    with open(tmp_path / "b.log.csv") as f:
        assert [int(r["stage"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]


def test_bad_data_path_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["dnn", "train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "w.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing: no such file or folder" in err


def test_bad_weight_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such weight file"):
        load_weights(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"format": "other"}, bad)
    with pytest.raises(WeightsError, match="bad.pt: field 'format'"):
        load_weights(bad)
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match=r"bad.pt: not a dynscale weight file \(truncated, or not a file torch.save wrote\)$"):
        load_weights(bad)

    torch.save({"format": "other", "obj": fractions.Fraction(1, 3)}, bad)  # not a tensor: never unpickled
    with pytest.raises(WeightsError, match="holds Python objects, not only tensors") as e:
        load_weights(bad)
    assert "weights_only" not in str(e.value)


def test_help_everywhere(capsys: pytest.CaptureFixture) -> None:
    for argv in (["--help"], ["dnn", "--help"], ["dnn", "train", "--help"], ["dnn", "eval", "--help"]):
        assert main(argv) == 0
    assert "--epochs-per-stage" in capsys.readouterr().out
