"""The dynamic DNN: AlexNet for 32x32 CIFAR-10 with G channel groups in every layer.

Group g of layer l reads only group g of layer l-1 (block-diagonal weights, i.e. a grouped
convolution); the first layer of every group reads the image. Every group ends in its own
linear classifier; configuration k runs groups 1..k and averages their classifiers' logits,
which is one linear classifier over the concatenated features of groups 1..k (block weights
divided by k). Group g and its classifier are trained in stage g with groups 1..g-1 frozen,
so adding group g never changes what configurations 1..g-1 compute.

Why averaged per-group classifiers rather than one jointly trained classifier per k: a joint
classifier over groups 1..k learns within a few dozen steps to lean on the frozen, already
fitted groups, and the residual gradient that reaches the new group is too small to train it
(in our first training run, k = 2 did not improve on k = 1 over several epochs). Trained on its own, each group
becomes a full classifier and configuration k is an ensemble of k of them.

Work and weights grow linearly with k: every group has the same widths and classifier size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """Widths per group. The full network has ``groups`` times these channels.

    :param groups: number of channel groups G
    :param conv_channels: output channels per group of conv1..conv5
    :param conv_kernels: kernel size of conv1..conv5
    :param pool_after: indices (0-based) of convolutions followed by 2x2 max-pooling
    :param fc_hidden: width per group of the two fully connected hidden layers (fc6, fc7)
    :param dropout: dropout before fc6 and fc7 while training
    :param num_classes: output classes
    """

    groups: int = 4
    conv_channels: tuple[int, ...] = (32, 64, 128, 96, 64)
    conv_kernels: tuple[int, ...] = (5, 5, 3, 3, 3)
    pool_after: tuple[int, ...] = (0, 1, 4)
    fc_hidden: int = 256
    dropout: float = 0.1
    num_classes: int = 10
    image_size: int = 32

    @property
    def feature_size(self) -> int:
        """Spatial size of the last convolution's output after pooling."""
        return self.image_size // (2 ** len(self.pool_after))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class GroupTower(nn.Sequential):
    """One channel group: conv1..conv5 (conv-BN-ReLU, pooled where the architecture says), fc6, fc7."""

    def __init__(self, arch: Architecture) -> None:
        layers: list[nn.Module] = []
        c_in = 3
        for i, (c, k) in enumerate(zip(arch.conv_channels, arch.conv_kernels)):
            layers += [nn.Conv2d(c_in, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i in arch.pool_after:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        flat = c_in * arch.feature_size**2
        layers += [
            nn.Flatten(),
            nn.Dropout(arch.dropout),
            nn.Linear(flat, arch.fc_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(arch.dropout),
            nn.Linear(arch.fc_hidden, arch.fc_hidden),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)


class DynamicAlexNet(nn.Module):
    """AlexNet with ``arch.groups`` independently trainable channel groups.

    :param arch: the widths; the default is the shipped network
    """

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        self.arch = arch or Architecture()
        g = self.arch.groups
        self.towers = nn.ModuleList(GroupTower(self.arch) for _ in range(g))
        self.heads = nn.ModuleList(nn.Linear(self.arch.fc_hidden, self.arch.num_classes) for _ in range(g))
        self.active_groups = g
        self.trainable_stage: int | None = None

    @property
    def groups(self) -> int:
        return self.arch.groups

    def set_active_groups(self, k: int) -> None:
        """Run configuration ``k`` (groups 1..k) from now on."""
        self.active_groups = self._check_k(k)

    def begin_stage(self, k: int) -> list[nn.Parameter]:
        """Prepare incremental training stage ``k``: group k and its classifier train, all else frozen.

        Frozen groups get ``requires_grad=False`` and stay in eval mode (BatchNorm running
        statistics frozen, no dropout) even under ``model.train()``.

        :return: the parameters to optimise
        """
        k = self._check_k(k)
        self.trainable_stage = k
        self.active_groups = k
        for i, (tower, head) in enumerate(zip(self.towers, self.heads)):
            on = i == k - 1
            tower.requires_grad_(on)
            head.requires_grad_(on)
        self.train(self.training)
        return [*self.towers[k - 1].parameters(), *self.heads[k - 1].parameters()]

    def end_stage(self) -> None:
        """Leave training mode of a stage: every parameter frozen, model in eval mode."""
        self.trainable_stage = None
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> DynamicAlexNet:
        super().train(mode)
        if self.trainable_stage is not None:
            for i, tower in enumerate(self.towers):
                if i != self.trainable_stage - 1:
                    tower.eval()
        return self

    def group_logits(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """Logits of group ``g``'s own classifier (1-based ``g``)."""
        return self.heads[g - 1](self.towers[g - 1](x))

    def forward(self, x: torch.Tensor, groups: int | None = None) -> torch.Tensor:
        """Logits of configuration ``groups`` (default: the active one): the mean of groups 1..k's."""
        k = self.active_groups if groups is None else self._check_k(groups)
        total = self.group_logits(x, 1)
        for g in range(2, k + 1):
            total = total + self.group_logits(x, g)
        return total / k

    def config_parameters(self, k: int) -> list[nn.Parameter]:
        """The parameters configuration ``k`` uses."""
        k = self._check_k(k)
        return [p for t, h in zip(self.towers[:k], self.heads[:k]) for p in (*t.parameters(), *h.parameters())]

    def _check_k(self, k: int) -> int:
        if not isinstance(k, int) or not 1 <= k <= self.arch.groups:
            raise ValueError(f"groups must be an integer in 1..{self.arch.groups}, got {k!r}")
        return k


def trace_layers(model: DynamicAlexNet, k: int) -> list[tuple[nn.Module, torch.Tensor]]:
    """Every convolution and linear layer configuration ``k`` runs, with its output, for one
    (zero) image in evaluation mode; the model's mode is restored afterwards."""
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [
        m.register_forward_hook(lambda mod, _inp, out: seen.append((mod, out)))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            size = model.arch.image_size
            model(torch.zeros(1, 3, size, size), groups=k)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def count_macs(model: DynamicAlexNet, k: int) -> int:
    """Multiply-accumulates of one image through configuration ``k``, counted from the layers run."""
    macs = 0
    for m, out in trace_layers(model, k):
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            macs += out.shape[1] * out.shape[2] * out.shape[3] * (m.in_channels // m.groups) * kh * kw
        else:
            macs += m.in_features * m.out_features
    return macs


def count_params(model: DynamicAlexNet, k: int) -> int:
    """Parameters configuration ``k`` uses (BatchNorm running statistics not included)."""
    return sum(p.numel() for p in model.config_parameters(k))


def weight_bytes(model: DynamicAlexNet, k: int) -> int:
    """Bytes of weights and BatchNorm statistics configuration ``k`` needs at inference."""
    modules = [*model.towers[:k], *model.heads[:k]]
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    return sum(t.numel() * t.element_size() for t in tensors if t.is_floating_point())
