import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dnn.data import DatasetError, augment, load_cifar10
from tests.conftest import make_images, write_class_folders


def test_python_batches_folder_loads(batches_dir: Path) -> None:
    d = load_cifar10(batches_dir.parent)
    assert d.train_x.shape == (100, 32, 32, 3) and d.test_x.shape == (20, 32, 32, 3)
    x, y = make_images(20, seed=0)
    np.testing.assert_array_equal(d.train_x[:20], x)  # batch 1 decoded pixel-exact, HWC order
    np.testing.assert_array_equal(d.train_y[:20], y)


def test_python_batches_archive_loads(batches_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches_dir, arcname="cifar-10-batches-py")
    d = load_cifar10(archive)
    np.testing.assert_array_equal(d.test_x, load_cifar10(batches_dir).test_x)


def test_class_folders_and_archive_agree(folders_dir: Path, tmp_path: Path) -> None:
    d = load_cifar10(folders_dir)
    assert d.train_x.shape == (20, 32, 32, 3)
    assert sorted(set(d.train_y.tolist())) == list(range(10))
    archive = tmp_path / "jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folders_dir, arcname="cifar10-jpg")
    a = load_cifar10(archive)
    np.testing.assert_array_equal(a.train_x, d.train_x)  # PNG is lossless: same pixels both ways
    np.testing.assert_array_equal(a.test_y, d.test_y)


def test_cache_is_used_and_rebuilt_when_damaged(batches_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    first = load_cifar10(batches_dir, cache_dir=cache)
    (npz,) = cache.glob("*.npz")
    np.testing.assert_array_equal(load_cifar10(batches_dir, cache_dir=cache).train_x, first.train_x)
    npz.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_cifar10(batches_dir, cache_dir=cache).train_x, first.train_x)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nowhere: no such file"):
        load_cifar10(tmp_path / "nowhere")


def test_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"/x: no CIFAR-10 layout found"):
        load_cifar10(tmp_path / "x")


def test_truncated_batch_file(batches_dir: Path) -> None:
    f = batches_dir / "data_batch_3"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"data_batch_3: truncated or corrupt"):
        load_cifar10(batches_dir)


def test_non_image_file(folders_dir: Path) -> None:
    (folders_dir / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"cat/notes.txt: not an image"):
        load_cifar10(folders_dir)


def test_corrupt_image(folders_dir: Path) -> None:
    (folders_dir / "test" / "dog" / "0000.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match=r"dog/0000.png: not a readable image"):
        load_cifar10(folders_dir)


def test_subset_draws_every_class(tmp_path: Path) -> None:
    d = load_cifar10(write_class_folders(tmp_path / "d", per_class=5)).subset(30)
    assert len(d.train_x) == 30 and len(set(d.train_y.tolist())) > 5


def test_augment_crops_and_flips_reproducibly() -> None:
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    # every output row is a (possibly flipped, shifted, zero-padded) row of the input
    centre = augment(x, torch.Generator().manual_seed(2), pad=0)
    for i in range(2):
        assert torch.equal(centre[i], x[i]) or torch.equal(centre[i], x[i].flip(2))
