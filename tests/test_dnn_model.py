import pytest
import torch

from dnn.model import Architecture, DynamicAlexNet, count_macs, count_params

TINY = Architecture(conv_channels=(4, 6, 8, 8, 4), fc_hidden=16)


def test_shapes_for_every_configuration() -> None:
    model = DynamicAlexNet(TINY).eval()
    x = torch.randn(3, 3, 32, 32)
    for k in range(1, 5):
        assert model(x, groups=k).shape == (3, 10)
    with pytest.raises(ValueError, match="groups must be an integer in 1..4"):
        model(x, groups=5)


def test_macs_grow_linearly_with_groups() -> None:
    model = DynamicAlexNet()  # the shipped widths
    full = count_macs(model, 4)
    for k in range(1, 5):
        assert abs(count_macs(model, k) / full - k / 4) <= 0.05 * k / 4
        assert count_params(model, k) < count_params(model, 4) or k == 4


@pytest.mark.parametrize("stage", [2, 3, 4])
def test_training_stage_leaves_earlier_configurations_bit_identical(stage: int) -> None:
    torch.manual_seed(0)
    model = DynamicAlexNet(TINY)
    x = torch.randn(16, 3, 32, 32)
    model.eval()
    before = {k: model(x, groups=k).clone() for k in range(1, stage)}
    frozen = {
        n: p.clone() for n, p in model.named_parameters() if not n.startswith((f"towers.{stage - 1}.", f"heads.{stage - 1}."))
    }
    trained = {n: p.clone() for n, p in model.named_parameters() if n.startswith(f"towers.{stage - 1}.")}
    buffers = {n: b.clone() for n, b in model.named_buffers() if not n.startswith(f"towers.{stage - 1}.")}

    params = model.begin_stage(stage)
    opt = torch.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=1e-3)
    model.train()
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(x, groups=stage), torch.randint(0, 10, (16,)))
        opt.zero_grad()
        loss.backward()
        opt.step()

    assert all(p.grad is None for n, p in model.named_parameters() if n in frozen)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    for n, b in model.named_buffers():
        if n in buffers:
            assert torch.equal(b, buffers[n]), n  # BN statistics of frozen groups untouched
    model.end_stage()
    for k, out in before.items():
        assert torch.equal(model(x, groups=k), out)
    now = dict(model.named_parameters())
    assert any(not torch.equal(now[n], p) for n, p in trained.items())  # the stage did train group k
