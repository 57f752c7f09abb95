"""Incremental training of the dynamic DNN, and its weight file.

Stage k trains group k and its classifier with groups 1..k-1 frozen (no gradient, BatchNorm in
eval mode), so configurations 1..k-1 compute bit-identical outputs before and after stage k.
Group k learns on its own (its classifier's loss); the per-epoch log reports the test accuracy
of configuration k, the average of groups 1..k. The
weight file is rewritten (atomically) after every stage, which is also the resume point; the
random streams of stage k depend only on ``(seed, k)``, so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dnn.data import Cifar10, augment, to_tensor
from dnn.errors import UserError
from dnn.fileio import atomic_write
from dnn.model import Architecture, DynamicAlexNet

WEIGHTS_FORMAT = "dynscale-dynamic-alexnet"
WEIGHTS_VERSION = 1
#: The weight file shipped inside the package (see README for how it was trained).
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "dynalexnet_cifar10.pt"
LOG_FIELDS = ("stage", "epoch", "lr", "train_loss", "train_top1", "test_top1", "seconds")


class WeightsError(UserError, ValueError):
    """A weight file that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of incremental training (one set for every stage).

    :param epochs_per_stage: epochs of stage k
    :param batch_size: images per SGD step
    :param lr: peak learning rate of the one-cycle schedule
    :param momentum: SGD (Nesterov) momentum
    :param weight_decay: L2 weight decay
    :param seed: seed of initialisation, shuffling and augmentation
    """

    epochs_per_stage: int = 16
    batch_size: int = 128
    lr: float = 0.08
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0


@dataclass
class Checkpoint:
    """What a weight file holds."""

    model: DynamicAlexNet
    stages_done: int
    mean: np.ndarray
    std: np.ndarray
    settings: dict
    source: str


def save_weights(path: Path, ckpt: Checkpoint) -> None:
    """Write a weight file atomically (a crash never leaves a half-written file)."""
    payload = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "arch": ckpt.model.arch.to_dict(),
        "state_dict": ckpt.model.state_dict(),
        "stages_done": ckpt.stages_done,
        "mean": [float(v) for v in ckpt.mean],
        "std": [float(v) for v in ckpt.std],
        "settings": ckpt.settings,
        "source": ckpt.source,
    }
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` refused a file, in a few words (its own message runs to several lines
    and advises ``weights_only=False``, which would execute whatever the file holds)."""
    text = str(exc)
    if "Unsupported global" in text:
        return "it holds Python objects, not only tensors; refused for safety"
    if "Weights only load failed" in text or isinstance(exc, OSError) or "PytorchStreamReader" in text:
        return "truncated, or not a file torch.save wrote"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 120 else first[:117] + "..."


def load_weights(path: str | os.PathLike | None = None) -> Checkpoint:
    """Read a weight file written by :func:`save_weights` (default: the shipped weights).

    :raises WeightsError: missing file, wrong format, or a missing or malformed field
    """
    p = Path(path) if path is not None else SHIPPED_WEIGHTS
    if not p.is_file():
        raise WeightsError(f"{p}: no such weight file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        raise WeightsError(f"{p}: not a dynscale weight file ({_load_failure(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{p}: field 'format' is not {WEIGHTS_FORMAT!r}")
    for field in ("arch", "state_dict", "stages_done", "mean", "std"):
        if field not in payload:
            raise WeightsError(f"{p}: field {field!r} missing")
    try:
        arch = Architecture.from_dict(payload["arch"])
    except TypeError as exc:
        raise WeightsError(f"{p}: field 'arch' malformed ({exc})") from exc
    model = DynamicAlexNet(arch)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise WeightsError(f"{p}: field 'state_dict' does not match 'arch' ({exc})") from exc
    stages = payload["stages_done"]
    if not isinstance(stages, int) or not 0 <= stages <= arch.groups:
        raise WeightsError(f"{p}: field 'stages_done' must be in 0..{arch.groups}, got {stages!r}")
    model.end_stage()
    model.set_active_groups(max(stages, 1))
    return Checkpoint(
        model=model,
        stages_done=stages,
        mean=np.asarray(payload["mean"], dtype=np.float32),
        std=np.asarray(payload["std"], dtype=np.float32),
        settings=dict(payload.get("settings", {})),
        source=str(payload.get("source", "")),
    )


def log_path(weights: Path) -> Path:
    """The per-epoch training log written next to a weight file."""
    return weights.with_name(weights.stem + ".log.csv")


def train_incremental(
    data: Cifar10,
    out: str | os.PathLike,
    settings: TrainSettings = TrainSettings(),
    arch: Architecture | None = None,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
) -> Checkpoint:
    """Train all stages not yet done, writing the weight file and log after every stage.

    :param data: decoded CIFAR-10 (or any dataset of the same shape)
    :param out: weight file to write
    :param settings: hyperparameters
    :param arch: widths (default: the shipped architecture); ignored when resuming
    :param device: ``cpu`` or ``cuda``
    :param resume: continue from the stages already in ``out``
    :param progress: show a progress bar
    """
    out = Path(out)
    if resume and out.is_file():
        ckpt = load_weights(out)
        if ckpt.settings.get("seed") != settings.seed:
            raise WeightsError(f"{out}: field 'settings.seed' is {ckpt.settings.get('seed')}, resume asked for {settings.seed}")
    else:
        torch.manual_seed(settings.seed)
        mean, std = data.channel_stats()
        ckpt = Checkpoint(DynamicAlexNet(arch), 0, mean, std, _settings_dict(settings), data.source)
        _write_log_header(log_path(out))
    # epochs actually trained per stage: a resumed run may use another --epochs-per-stage
    done = ckpt.settings.get("epochs_by_stage") or [ckpt.settings.get("epochs_per_stage")] * ckpt.stages_done
    ckpt.settings = {k: v for k, v in _settings_dict(settings).items() if k != "epochs_per_stage"}
    ckpt.settings["epochs_by_stage"] = list(done[: ckpt.stages_done])
    model = ckpt.model.to(device)
    train_x = to_tensor(data.train_x, ckpt.mean, ckpt.std)
    test_x = to_tensor(data.test_x, ckpt.mean, ckpt.std)
    train_y = torch.from_numpy(data.train_y)
    test_y = torch.from_numpy(data.test_y)
    for stage in range(ckpt.stages_done + 1, model.groups + 1):
        rows = _train_stage(model, stage, train_x, train_y, test_x, test_y, settings, device, progress)
        ckpt.stages_done = stage
        ckpt.settings["epochs_by_stage"].append(settings.epochs_per_stage)
        model.end_stage()
        model.cpu()
        save_weights(out, ckpt)
        _append_log(log_path(out), rows)
        model.to(device)
    model.cpu().end_stage()
    return ckpt


def _train_stage(
    model: DynamicAlexNet,
    stage: int,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    s: TrainSettings,
    device: str,
    progress: bool,
) -> list[dict]:
    from dnn.progress import is_terminal
    from dnn.progress import progress as progress_bar

    gen = torch.Generator().manual_seed(s.seed * 1000 + stage)
    torch.manual_seed(s.seed * 1000 + stage)  # dropout
    params = model.begin_stage(stage)
    opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, nesterov=True, weight_decay=s.weight_decay)
    n = len(train_x)
    steps = math.ceil(n / s.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _one_cycle(steps * s.epochs_per_stage))
    loss_fn = nn.CrossEntropyLoss()
    rows = []
    for epoch in range(1, s.epochs_per_stage + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total_loss, correct = 0.0, 0
        # the batch bar only on a terminal: a log gets the one line per epoch below
        bar = progress_bar(
            steps, f"stage {stage}/{model.groups} epoch {epoch}/{s.epochs_per_stage}", progress and is_terminal(), "batch", False
        )
        for b in range(steps):
            idx = perm[b * s.batch_size : (b + 1) * s.batch_size]
            x = augment(train_x[idx], gen).to(device)
            y = train_y[idx].to(device)
            logits = model.group_logits(x, stage)  # group k learns alone; configuration k averages
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            if b % 20 == 0:
                bar.set_postfix_str(f"loss={loss.item():.3f}")
            bar.update()
        bar.close()
        test_top1 = accuracy(model, test_x, test_y, stage, device=device)
        row = {
            "stage": stage,
            "epoch": epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": total_loss / n,
            "train_top1": correct / n,
            "test_top1": test_top1,
            "seconds": time.perf_counter() - t0,
        }
        rows.append(row)
        if progress:
            print(
                f"stage {stage} epoch {epoch}: loss {row['train_loss']:.4f} train {row['train_top1']:.4f} "
                f"test {test_top1:.4f} ({row['seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return rows


@torch.no_grad()
def predict_proba(model: DynamicAlexNet, x: torch.Tensor, k: int, batch_size: int = 500, device: str = "cpu") -> torch.Tensor:
    """Softmax outputs of configuration ``k`` for normalised images ``x`` (evaluation mode)."""
    was_training = model.training
    model.eval()
    try:
        out = [torch.softmax(model(x[i : i + batch_size].to(device), groups=k), 1).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def accuracy(model: DynamicAlexNet, x: torch.Tensor, y: torch.Tensor, k: int, device: str = "cpu") -> float:
    """Top-1 accuracy of configuration ``k``."""
    return float((predict_proba(model, x, k, device=device).argmax(1) == y).float().mean())


def _one_cycle(total: int, warmup_frac: float = 0.2):
    """Linear warm-up to the peak rate, then cosine decay to zero; valid for any ``total >= 1``."""
    warm = max(1, int(total * warmup_frac))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return factor


def _settings_dict(s: TrainSettings) -> dict:
    return {f: getattr(s, f) for f in s.__dataclass_fields__}


def _write_log_header(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.DictWriter(f, LOG_FIELDS).writeheader()


def _append_log(path: Path, rows: list[dict]) -> None:
    if not path.is_file():
        _write_log_header(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, LOG_FIELDS)
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
