"""CIFAR-10 loading, caching and augmentation.

Two on-disk layouts are read, each as a folder or as a ``.tar.gz``:

* the official python batches (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``,
  or the official ``cifar-10-python.tar.gz``), which is what users download;
* class folders (``train/<class>/*.jpg|png`` and ``test/<class>/...``), which is how the
  JPEG re-encoding of CIFAR-10 shipped with this project comes.

Decoding 60,000 images takes seconds, so the decoded ``uint8`` arrays are cached as ``.npz``
keyed by the source's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only augments and converts for training: loading images (the board's deploy --data) needs numpy alone
    import torch

from dnn.errors import UserError
from dnn.fileio import atomic_write

#: CIFAR-10's own label order (0..9).
CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: md5 published on the CIFAR-10 page for cifar-10-python.tar.gz.
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CACHE_VERSION = 1


class DatasetError(UserError, ValueError):
    """A dataset path that cannot be read; the message names the path."""


@dataclass(frozen=True)
class Cifar10:
    """Decoded CIFAR-10 splits as ``uint8`` NHWC images and ``int64`` labels.

    :param train_x: training images, shape (N, 32, 32, 3)
    :param train_y: training labels in 0..9
    :param test_x: test images, shape (M, 32, 32, 3)
    :param test_y: test labels in 0..9
    :param source: the path the data was read from
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str

    def subset(self, n: int, seed: int = 0) -> Cifar10:
        """At most ``n`` images of each split, drawn at random (seeded) so all classes appear."""
        rng = np.random.default_rng(seed)
        tr = np.sort(rng.permutation(len(self.train_x))[:n])
        te = np.sort(rng.permutation(len(self.test_x))[:n])
        return Cifar10(self.train_x[tr], self.train_y[tr], self.test_x[te], self.test_y[te], self.source)

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation of the training split, in [0, 1] units."""
        x = self.train_x.reshape(-1, 3).astype(np.float64) / 255.0
        return x.mean(axis=0).astype(np.float32), x.std(axis=0).astype(np.float32)


# ---------------------------------------------------------------- public entry points


def default_cache_dir() -> Path:
    """Where decoded arrays are cached: ``$DYNSCALE_CACHE`` or ``~/.cache/dynscale``."""
    env = os.environ.get("DYNSCALE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dynscale"


def load_cifar10(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Cifar10:
    """Load CIFAR-10 from ``path`` in either supported layout, using the decode cache.

    :param path: a folder or ``.tar.gz`` holding the python batches or class folders
    :param cache_dir: where to cache decoded arrays; ``None`` for :func:`default_cache_dir`
    :raises DatasetError: the path is missing, of no known layout, or holds a bad file
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise DatasetError(f"{src}: no such file or folder")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / f"cifar10-{_fingerprint(src)}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file) as z:
                return Cifar10(z["train_x"], z["train_y"], z["test_x"], z["test_y"], str(src))
        except (OSError, ValueError, KeyError):
            cache_file.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    data = _decode(src)
    _atomic_savez(cache_file, train_x=data.train_x, train_y=data.train_y, test_x=data.test_x, test_y=data.test_y)
    return data


def download_cifar10(dest: str | os.PathLike) -> Path:
    """Download the official ``cifar-10-python.tar.gz`` into ``dest`` and check its md5.

    :param dest: folder to download into (created if needed)
    :return: the path of the verified archive
    :raises DatasetError: the download failed or the checksum does not match
    """
    dest_dir = Path(dest).expanduser()
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / "cifar-10-python.tar.gz"
    if target.is_file() and _md5(target) == OFFICIAL_MD5:
        return target
    fd, tmp = tempfile.mkstemp(dir=dest_dir, suffix=".part")
    os.close(fd)
    try:
        urllib.request.urlretrieve(OFFICIAL_URL, tmp)
    except OSError as exc:
        os.unlink(tmp)
        raise DatasetError(f"{OFFICIAL_URL}: download failed ({exc})") from exc
    digest = _md5(Path(tmp))
    if digest != OFFICIAL_MD5:
        os.unlink(tmp)
        raise DatasetError(f"{OFFICIAL_URL}: md5 {digest} does not match the published {OFFICIAL_MD5}")
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad``-pixel zero padding and random horizontal flip, on a batch.

    Works on the whole NCHW batch at once so that no per-image Python loop or DataLoader
    worker is needed on a 2-core machine.

    :param x: float images, shape (N, C, H, W)
    :param generator: the torch generator that makes augmentation reproducible
    :param pad: padding in pixels on each side
    """
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    cropped = _crop(padded, dy, dx, h, w)
    flip = torch.rand(n, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(3)
    return cropped


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    import torch

    n, c, hp, wp = padded.shape
    rows = dy[:, None] + torch.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w)[None, :]  # (n, w)
    idx = rows[:, :, None] * wp + cols[:, None, :]  # (n, h, w) flat index into hp*wp
    flat = padded.reshape(n, c, hp * wp)
    return flat.gather(2, idx.reshape(n, 1, h * w).expand(n, c, h * w)).reshape(n, c, h, w)


def to_tensor(x_uint8: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """NHWC ``uint8`` images to normalised NCHW ``float32`` tensors."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x_uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return t.sub_(m).div_(s)


# ---------------------------------------------------------------- decoding


def _decode(src: Path) -> Cifar10:
    if src.is_file():
        if not (src.name.endswith(".tar.gz") or src.name.endswith(".tgz") or src.name.endswith(".tar")):
            raise DatasetError(f"{src}: not a folder or .tar.gz archive of CIFAR-10")
        return _decode_tar(src)
    batches = _find_batches_dir(src)
    if batches is not None:
        return _decode_batches({name: batches / name for name in (*_TRAIN_BATCHES, _TEST_BATCH)}, src)
    root = _find_class_root(src)
    if root is not None:
        return _decode_class_folders(root, src)
    raise DatasetError(
        f"{src}: no CIFAR-10 layout found (expected cifar-10-batches-py/data_batch_1..5 + test_batch, "
        "or train/<class>/ and test/<class>/ image folders)"
    )


def _find_batches_dir(src: Path) -> Path | None:
    for cand in (src, src / "cifar-10-batches-py"):
        if (cand / "data_batch_1").exists() or (cand / _TEST_BATCH).exists():
            return cand
    return None


def _find_class_root(src: Path) -> Path | None:
    cands = [src] + sorted(p for p in src.iterdir() if p.is_dir())
    for cand in cands:
        if (cand / "train").is_dir() and (cand / "test").is_dir():
            return cand
    return None


def _decode_batches(files: dict[str, Path | bytes], src: Path) -> Cifar10:
    parts = {}
    for name, f in files.items():
        where = f"{src}/{name}" if isinstance(f, bytes) else str(f)
        if isinstance(f, Path) and not f.is_file():
            raise DatasetError(f"{where}: batch file missing")
        raw = f if isinstance(f, bytes) else f.read_bytes()
        try:
            d = pickle.loads(raw, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8)
            y = np.asarray(d[b"labels"], dtype=np.int64)
        except Exception as exc:  # truncated pickles raise several types
            raise DatasetError(f"{where}: truncated or corrupt CIFAR-10 batch file ({type(exc).__name__})") from exc
        if x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
            raise DatasetError(f"{where}: batch has shape {x.shape}, expected (N, 3072) with N labels")
        parts[name] = (x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y)
    train_x = np.concatenate([parts[n][0] for n in _TRAIN_BATCHES])
    train_y = np.concatenate([parts[n][1] for n in _TRAIN_BATCHES])
    test_x, test_y = parts[_TEST_BATCH]
    return _checked(Cifar10(np.ascontiguousarray(train_x), train_y, np.ascontiguousarray(test_x), test_y, str(src)))


def _decode_class_folders(root: Path, src: Path) -> Cifar10:
    splits = {}
    for split in ("train", "test"):
        files = []
        for label, cls in enumerate(CLASSES):
            d = root / split / cls
            if not d.is_dir():
                raise DatasetError(f"{d}: class folder missing (expected one folder per CIFAR-10 class)")
            files += [(p, label) for p in sorted(d.iterdir()) if p.is_file()]
        splits[split] = _decode_images(((str(p), p.read_bytes, y) for p, y in files), len(files))
    return _checked(Cifar10(*splits["train"], *splits["test"], str(src)))


def _decode_tar(src: Path) -> Cifar10:
    # One streaming pass in archive order: seeking backwards in a gzip stream restarts the
    # decompression, which makes random access to 60,000 members quadratic.
    batches: dict[str, bytes] = {}
    images: dict[str, list[tuple[str, bytes, int]]] = {"train": [], "test": []}
    try:
        with tarfile.open(src, "r|*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                parts = Path(m.name).parts
                if parts[-1] in (*_TRAIN_BATCHES, _TEST_BATCH):
                    batches[parts[-1]] = _read_member(tar, m, src)
                elif len(parts) >= 3 and parts[-3] in images and parts[-2] in CLASSES:
                    images[parts[-3]].append((f"{src}/{m.name}", _read_member(tar, m, src), CLASSES.index(parts[-2])))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{src}: unreadable or truncated archive ({exc})") from exc
    if batches:
        missing = [n for n in (*_TRAIN_BATCHES, _TEST_BATCH) if n not in batches]
        if missing:
            raise DatasetError(f"{src}/{missing[0]}: batch file missing in archive")
        return _decode_batches(dict(batches), src)
    if not images["train"] or not images["test"]:
        raise DatasetError(f"{src}: archive holds neither CIFAR-10 batches nor train/<class>/ and test/<class>/ images")
    out = {}
    for split, items in images.items():
        items.sort(key=lambda it: it[0])
        out[split] = _decode_images(((w, (lambda b=b: b), y) for w, b, y in items), len(items))
    return _checked(Cifar10(*out["train"], *out["test"], str(src)))


def _read_member(tar: tarfile.TarFile, m: tarfile.TarInfo, src: Path) -> bytes:
    try:
        f = tar.extractfile(m)
        if f is None:
            raise DatasetError(f"{src}/{m.name}: not a regular file")
        return f.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"{src}/{m.name}: truncated archive member ({exc})") from exc


def _decode_images(items: Iterator[tuple[str, callable, int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # a board's bundle does not install it: the python batches need numpy alone
        raise DatasetError(
            "CIFAR-10 as image files needs Pillow, which is not installed: pip install pillow, or give the python batches "
            "(cifar-10-python.tar.gz)"
        ) from None

    x = np.empty((n, 32, 32, 3), dtype=np.uint8)
    y = np.empty(n, dtype=np.int64)
    i = -1
    for i, (where, read, label) in enumerate(items):
        if not where.lower().endswith(_IMAGE_SUFFIXES):
            raise DatasetError(f"{where}: not an image (expected .jpg, .jpeg or .png)")
        try:
            with Image.open(io.BytesIO(read())) as im:
                arr = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DatasetError(f"{where}: not a readable image ({exc})") from exc
        if arr.shape != (32, 32, 3):
            raise DatasetError(f"{where}: image is {arr.shape[1]}x{arr.shape[0]}, CIFAR-10 images are 32x32")
        x[i] = arr
        y[i] = label
    if i + 1 != n:
        raise DatasetError(f"image count changed while reading ({i + 1} of {n})")
    return x, y


def _checked(d: Cifar10) -> Cifar10:
    for split, x, y in (("train", d.train_x, d.train_y), ("test", d.test_x, d.test_y)):
        if len(x) == 0:
            raise DatasetError(f"{d.source}: the {split} split is empty")
        if y.min() < 0 or y.max() >= len(CLASSES):
            raise DatasetError(f"{d.source}: {split} labels outside 0..9")
    return d


# ---------------------------------------------------------------- cache helpers


def _fingerprint(src: Path) -> str:
    """A key that changes when the source changes: path, sizes and modification times."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}:{src.resolve()}".encode())
    if src.is_file():
        st = src.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    try:
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError:
        pass  # the cache is an optimisation: a read-only cache folder must not stop the run


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
