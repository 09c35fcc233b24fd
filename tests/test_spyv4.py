"""Tests of the SPYv4 network, its ANN twin and the model helpers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from spyolo.config import ModelConfig
from spyolo.models import (
    DEFAULT_ANCHORS,
    DEFAULT_MASKS,
    ConvBNAct,
    SPYv4,
    YOLOv4Tiny,
    build_model,
    run_timesteps,
    scaled_channels,
)
from spyolo.snn import LTCConv2d, detach_states, ltc_layers, reset_states

LAYER_NAMES = [
    "conv1", "conv2",
    "block1.c1", "block1.c2", "block1.c3", "block1.c4",
    "block2.c1", "block2.c2", "block2.c3", "block2.c4",
    "block3.c1", "block3.c2", "block3.c3", "block3.c4",
    "conv3", "conv_p5", "neck1", "conv_up", "neck2",
]  # fmt: skip


def _count(model: nn.Module, suffix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.endswith(suffix))


def test_parameter_count_matches_release() -> None:
    model = SPYv4(num_classes=20)
    assert _count(model) == 13_956_214
    # breakdown: synaptic weights, stand-alone conv biases, tau weights and biases, BN affine, heads
    ltc = ltc_layers(model)
    assert sum(layer.conv.weight.numel() for _, layer in ltc) == 5_854_048
    assert sum(layer.conv.bias.numel() for _, layer in ltc if layer.conv.bias is not None) == 1_760
    assert sum(layer.tau_conv.weight.numel() for _, layer in ltc) == 8_027_136
    assert sum(layer.tau_conv.bias.numel() for _, layer in ltc) == 3_104
    assert _count(model, "bn.weight") + _count(model, "bn.bias") == 12_416
    assert _count(model, "head1.weight") + _count(model, "head1.bias") == 38_475
    assert _count(model, "head2.weight") + _count(model, "head2.bias") == 19_275
    # the ANN twin is the standard YOLOv4-tiny at 20 classes: synaptic weights + BN (3,104 x 2) + heads
    assert _count(YOLOv4Tiny(num_classes=20)) == 5_854_048 + 6_208 + 57_750 == 5_918_006


def test_output_shapes_at_416() -> None:
    model = SPYv4(num_classes=20).eval()
    with torch.no_grad():
        out_s32, out_s16 = model(torch.rand(1, 3, 416, 416))
    assert out_s32.shape == (1, 75, 13, 13)
    assert out_s16.shape == (1, 75, 26, 26)
    assert [tuple(layer.v.shape[1:]) for _, layer in ltc_layers(model)] == [
        (32, 208, 208), (64, 104, 104),
        (64, 104, 104), (32, 104, 104), (32, 104, 104), (64, 104, 104),
        (128, 52, 52), (64, 52, 52), (64, 52, 52), (128, 52, 52),
        (256, 26, 26), (128, 26, 26), (128, 26, 26), (256, 26, 26),
        (512, 13, 13), (256, 13, 13), (512, 13, 13), (128, 26, 26), (256, 26, 26),
    ]  # fmt: skip


@pytest.mark.parametrize("size", [96, 128])
def test_output_shapes_width_quarter(size: int) -> None:
    model = SPYv4(num_classes=3, width=0.25)
    with torch.no_grad():
        out_s32, out_s16 = model(torch.rand(2, 3, size, size))
    assert out_s32.shape == (2, 3 * 8, size // 32, size // 32)
    assert out_s16.shape == (2, 3 * 8, size // 16, size // 16)
    # the channel layout reshapes as (B, anchors, 5 + C, H, W)
    assert out_s32.view(2, 3, 8, size // 32, size // 32).shape[2] == 8


@pytest.mark.parametrize(
    ("width", "channels"),
    [
        (1.0, [32, 64, 64, 32, 32, 64, 128, 64, 64, 128, 256, 128, 128, 256, 512, 256, 512, 128, 256]),
        (0.5, [16, 32, 32, 16, 16, 32, 64, 32, 32, 64, 128, 64, 64, 128, 256, 128, 256, 64, 128]),
        (0.25, [8, 16, 16, 8, 8, 16, 32, 16, 16, 32, 64, 32, 32, 64, 128, 64, 128, 32, 64]),
    ],
)
def test_width_channel_lists(width: float, channels: list[int]) -> None:
    model = SPYv4(width=width)
    assert [layer.out_channels for _, layer in ltc_layers(model)] == channels


def test_scaled_channels_rounding() -> None:
    assert scaled_channels(32, 0.25) == 8
    assert scaled_channels(32, 0.1) == 8  # minimum 8
    assert scaled_channels(64, 0.3) == 24  # 19.2 -> next multiple of 8
    assert scaled_channels(256, 0.75) == 192
    with pytest.raises(ValueError, match="positive"):
        scaled_channels(32, 0.0)


def test_ann_twin_shares_topology() -> None:
    snn, ann = SPYv4(width=0.25), YOLOv4Tiny(width=0.25)
    assert snn.is_spiking and not ann.is_spiking
    assert [n for n, _ in ltc_layers(snn)] == LAYER_NAMES
    assert [n for n, m in ann.named_modules() if isinstance(m, ConvBNAct)] == LAYER_NAMES
    ann_convs = [n for n, m in ann.named_modules() if isinstance(m, nn.Conv2d)]
    snn_synaptic = [n for n, m in snn.named_modules() if isinstance(m, nn.Conv2d) and not n.endswith("tau_conv")]
    assert ann_convs == snn_synaptic and len(ann_convs) == 21
    assert all(m.conv.bias is None for m in ann.modules() if isinstance(m, ConvBNAct))
    assert ann.conv_up.upsample and snn.conv_up.upsample
    with torch.no_grad():
        a13, a26 = ann(torch.rand(1, 3, 64, 64))
    assert a13.shape == (1, 75, 2, 2) and a26.shape == (1, 75, 4, 4)


def test_conv_bn_act_upsample_commutes() -> None:
    torch.manual_seed(0)
    layer = ConvBNAct(3, 4, 3, upsample=True).eval()
    x = torch.randn(1, 3, 5, 5)
    plain = nn.Sequential(layer.conv, layer.bn, layer.act)
    with torch.no_grad():
        expected = nn.functional.interpolate(plain(x), scale_factor=2.0, mode="nearest")
        torch.testing.assert_close(layer(x), expected)


def test_model_attributes() -> None:
    model = SPYv4(num_classes=5)
    assert model.num_classes == 5
    assert model.anchors.shape == (6, 2) and model.anchors.dtype == torch.float32
    assert model.anchors[3].tolist() == [81.0, 82.0]
    assert model.masks == DEFAULT_MASKS == ((3, 4, 5), (1, 2, 3))
    assert model.strides == (32, 16) and model.anchor_ref_size == 416
    assert "anchors" not in model.state_dict()
    assert len(DEFAULT_ANCHORS) == 6
    with pytest.raises(ValueError, match="out of range"):
        SPYv4(masks=((3, 4, 6), (1, 2, 3)))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 100, 96))


def test_state_reset_between_batch_sizes() -> None:
    model = SPYv4(num_classes=2, width=0.25)
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64))
        with pytest.raises(RuntimeError, match="reset_states"):
            model(torch.rand(1, 3, 64, 64))
        reset_states(model)
        assert all(layer.v is None for _, layer in ltc_layers(model))
        out_s32, _ = model(torch.rand(1, 3, 96, 64))
    assert out_s32.shape == (1, 21, 3, 2)
    assert model.conv1.v.shape == (1, 8, 48, 32)


def test_network_fires_in_every_layer() -> None:
    torch.manual_seed(0)
    model = SPYv4(width=0.25)  # train mode: BN uses batch statistics
    rates: dict[str, list[float]] = {}
    for name, layer in ltc_layers(model):
        layer.register_forward_hook(lambda _m, _i, out, name=name: rates.setdefault(name, []).append(out.mean().item()))
    with torch.no_grad():
        run_timesteps(model, torch.rand(2, 3, 64, 64), timesteps=4)
    assert list(rates) == LAYER_NAMES and all(len(r) == 4 for r in rates.values())
    # measured 4-10% at the busiest step of each layer; a silent or saturated layer fails
    for name, per_step in rates.items():
        assert 0.01 < max(per_step) < 0.5, (name, per_step)


def _conv1_output_reached(model: SPYv4, detach: bool) -> tuple[bool, torch.Tensor]:
    """Two steps; return whether loss_2's backward reaches step 1's conv1 spikes, and conv1's grad."""
    step_outputs: list[torch.Tensor] = []
    handle = model.conv1.register_forward_hook(lambda _m, _i, out: step_outputs.append(out))
    reached = []
    model.zero_grad()
    reset_states(model)
    x = torch.rand(2, 3, 64, 64)
    model(x)
    step_outputs[0].register_hook(lambda g: reached.append(True))
    if detach:
        detach_states(model)
    out_s32, out_s16 = model(x)
    (out_s32.square().mean() + out_s16.square().mean()).backward()
    handle.remove()
    return bool(reached), model.conv1.conv.weight.grad.clone()


def test_gradients_bptt_and_after_detach() -> None:
    torch.manual_seed(0)
    model = SPYv4(num_classes=2, width=0.25)
    reached, grad_bptt = _conv1_output_reached(model, detach=False)
    assert reached and grad_bptt.abs().sum() > 0
    reached, grad_fptt = _conv1_output_reached(model, detach=True)
    assert not reached and grad_fptt.abs().sum() > 0
    assert not torch.allclose(grad_bptt, grad_fptt)


def test_whole_model_state_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    model = SPYv4(num_classes=2, width=0.25)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_s32, out_s16 = run_timesteps(model, torch.rand(2, 3, 64, 64), timesteps=2)
    assert out_s32.dtype == torch.bfloat16 and out_s16.shape == (2, 21, 4, 4)
    assert all(layer.v.dtype == torch.float32 for _, layer in ltc_layers(model))


def test_run_timesteps() -> None:
    torch.manual_seed(0)
    # train mode (BN batch statistics): with fresh running statistics an eval-mode
    # untrained network stays silent and its output would not depend on the state
    model = SPYv4(num_classes=2, width=0.25)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        steps = run_timesteps(model, x, 3, return_all=True)
        last = model.run(x, 3)
        uniform_a = run_timesteps(model, x, 2, init="uniform", generator=torch.Generator().manual_seed(1))
        uniform_b = model.run(x, 2, init="uniform", generator=torch.Generator().manual_seed(1))
    assert len(steps) == 3
    # the state is reset first, so a second run reproduces the first one exactly
    for a, b in zip(steps[-1], last):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(steps[0][0], steps[2][0])  # the state evolves over time
    for a, b in zip(uniform_a, uniform_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(uniform_a[0], last[0])  # a different initial state changes the output
    with pytest.raises(ValueError, match="timesteps"):
        run_timesteps(model, x, 0)

    ann = YOLOv4Tiny(num_classes=2, width=0.25).eval()
    calls: list[int] = []
    ann.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        all_ann = run_timesteps(ann, x, 4, return_all=True)
    assert len(all_ann) == 1 and len(calls) == 1


def test_build_model() -> None:
    model = build_model(ModelConfig(), num_classes=20)
    assert isinstance(model, SPYv4) and model.num_classes == 20
    assert _count(model) == 13_956_214
    cfg = ModelConfig(
        kind="ann", width=0.25, anchors=[[10, 14], [20, 30], [40, 50]], masks=[[1, 2], [0]], threshold=0.7
    )
    ann = build_model(cfg, num_classes=4)
    assert isinstance(ann, YOLOv4Tiny) and not ann.is_spiking
    assert ann.anchors.tolist() == [[10.0, 14.0], [20.0, 30.0], [40.0, 50.0]]
    assert ann.masks == ((1, 2), (0,))
    assert ann.head1.out_channels == 2 * 9 and ann.head2.out_channels == 9
    spiking = build_model(dataclasses.replace(cfg, kind="spyv4"), num_classes=4)
    assert all(layer.threshold == 0.7 for _, layer in ltc_layers(spiking))
    assert isinstance(spiking.conv1, LTCConv2d)
    with pytest.raises(ValueError, match="'spyv4', 'ann'"):
        build_model(dataclasses.replace(cfg, kind="resnet"), num_classes=4)


def test_built_model_uses_the_configs_head_prior() -> None:
    """The builder reads the typed config: its default head prior (0.01), not a fallback of its own."""
    cfg = ModelConfig(width=0.25)
    assert cfg.head_prior == 0.01
    logit = math.log(0.01 / 0.99)
    for kind in ("spyv4", "ann"):
        model = build_model(dataclasses.replace(cfg, kind=kind), num_classes=3)
        for head in (model.head1, model.head2):
            bias = head.bias.detach().view(-1, 5 + 3)
            torch.testing.assert_close(bias[:, 4:], torch.full_like(bias[:, 4:], logit))
    released = build_model(dataclasses.replace(cfg, head_prior=0.0), num_classes=3)
    assert not torch.allclose(released.head1.bias.detach().view(-1, 8)[:, 4:], torch.tensor(logit))
