"""The DNN profile: what flows from ``dnn`` to ``hwmodels``.

For each group count k: accuracy and work (MACs, bytes moved, layers run). YAML, validated on
load. This module needs numpy and PyYAML only, so the board's runtime reads it without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dnn.errors import UserError
from dnn.fileio import atomic_write, read_yaml

#: The DNN profile shipped with the package, made by ``dynscale dnn eval --write-profile``.
SHIPPED_PROFILE = Path(__file__).resolve().parent / "dynalexnet_profile.yaml"
PROFILE_FORMAT = "dynscale-dnn-profile"


class ProfileError(UserError, ValueError):
    """A DNN profile that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class GroupCost:
    """What configuration k costs and delivers.

    :param groups: k
    :param top1: test top-1 accuracy in [0, 1]
    :param macs: multiply-accumulates per image
    :param params: parameters used
    :param weight_bytes: bytes of weights (and BN statistics) read per inference
    :param activation_bytes: bytes of layer outputs written per inference (float32)
    :param layers: convolution and linear layers run (kernel launches on a GPU)
    """

    groups: int
    top1: float
    macs: int
    params: int
    weight_bytes: int
    activation_bytes: int
    layers: int


@dataclass(frozen=True)
class DNNProfile:
    """Per-configuration costs of one trained dynamic DNN."""

    name: str
    configs: tuple[GroupCost, ...]
    source: str = ""

    @property
    def max_groups(self) -> int:
        return len(self.configs)

    def cost(self, k: int) -> GroupCost:
        return self.configs[k - 1]

    def column(self, field: str) -> np.ndarray:
        """One field for k = 1..G as a float64 array (index k-1)."""
        return np.array([getattr(c, field) for c in self.configs], dtype=np.float64)


def load_dnn_profile(path: str | os.PathLike | None = None) -> DNNProfile:
    """Read and validate a DNN profile (default: the shipped one).

    :raises ProfileError: missing file, wrong format, or a missing or out-of-range field
    """
    p = Path(path) if path is not None else SHIPPED_PROFILE
    doc = read_yaml(p, ProfileError, "DNN profile")
    if not isinstance(doc, dict) or doc.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"{p}: field 'format' must be {PROFILE_FORMAT!r}")
    raw = doc.get("configs")
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"{p}: field 'configs' must be a non-empty list")
    configs = []
    for i, c in enumerate(raw):
        where = f"{p}: configs[{i}]"
        if not isinstance(c, dict):
            raise ProfileError(f"{where} must be a mapping")
        vals = {}
        for field in GroupCost.__dataclass_fields__:
            if field not in c:
                raise ProfileError(f"{where}.{field} missing")
            v = c[field]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
                raise ProfileError(f"{where}.{field} must be a non-negative number, got {v!r}")
            vals[field] = v
        if vals["groups"] != i + 1:
            raise ProfileError(f"{where}.groups must be {i + 1} (configurations listed in order k = 1..G)")
        if not vals["top1"] <= 1:
            raise ProfileError(f"{where}.top1 must be a fraction in [0, 1], got {vals['top1']}")
        configs.append(GroupCost(**{k: (float(v) if k == "top1" else int(v)) for k, v in vals.items()}))
    return DNNProfile(name=str(doc.get("name", p.stem)), configs=tuple(configs), source=str(p))


def write_profile(path: Path, report: dict, weights: str) -> None:
    """Write the DNN profile YAML from an :func:`evaluate_configs` report (atomically)."""
    doc = {
        "format": PROFILE_FORMAT,
        "name": "dynalexnet-cifar10",
        "weights": Path(weights).name,
        "measured_with": f"dynscale dnn eval on {report['test_images']} test images of {Path(report['data']).name}",
        "configs": [{f: c[f] for f in GroupCost.__dataclass_fields__} for c in report["configs"]],
    }
    with atomic_write(path) as f:
        yaml.safe_dump(doc, f, sort_keys=False)
