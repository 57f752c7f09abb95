"""Fixtures shared by the test suite: tiny datasets and tiny models built on the spot."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dnn.data import CLASSES


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 32x32 RGB images with labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n, dtype=np.int64) % len(CLASSES)


def write_python_batches(root: Path, per_batch: int = 20, test: int = 20) -> Path:
    """The official ``cifar-10-batches-py`` layout with tiny batches."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x, y = make_images(test if name == "test_batch" else per_batch, seed=i)
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": flat, b"labels": y.tolist()}, f)
    return d


def write_class_folders(root: Path, per_class: int = 2, suffix: str = ".png") -> Path:
    """``train/<class>/NNNN.png`` and ``test/<class>/...``."""
    from PIL import Image

    for split, seed in (("train", 0), ("test", 1)):
        x, _ = make_images(per_class * len(CLASSES), seed)
        for c, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(x[c * per_class + j]).save(d / f"{j:04d}{suffix}")
    return root


@pytest.fixture
def batches_dir(tmp_path: Path) -> Path:
    return write_python_batches(tmp_path / "data")


@pytest.fixture
def folders_dir(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's decode cache from tests."""
    monkeypatch.setenv("DYNSCALE_CACHE", str(tmp_path / "cache"))
