"""Tests of the multi-Gaussian surrogate, the state helpers and the LTC layer."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from spyolo.snn import (
    LTCConv2d,
    detach_states,
    ltc_layers,
    ltc_update,
    multi_gaussian_grad,
    reset_states,
    spike_fn,
    stateful_modules,
)


def _identity_bn(bn: torch.nn.BatchNorm2d) -> None:
    """Make a BatchNorm2d the identity: eval mode, mean 0, var 1, eps 0, weight 1, bias 0."""
    bn.eval()
    bn.eps = 0.0
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        bn.weight.fill_(1.0)
        bn.bias.zero_()


def _hand_layer() -> LTCConv2d:
    """1->1 channel 1x1 LTC layer: I = 2 x; z = 0.5 (I + u_prev) - 0.25 on a single pixel.

    The tau conv is 3x3 with padding 1; on a 1x1 image only its centre tap sees data.
    """
    layer = LTCConv2d(1, 1, 1, bias=False)
    _identity_bn(layer.bn)
    _identity_bn(layer.tau_bn)
    with torch.no_grad():
        layer.conv.weight.fill_(2.0)
        layer.tau_conv.weight.zero_()
        layer.tau_conv.weight[0, 0, 1, 1] = 0.5
        layer.tau_conv.bias.fill_(-0.25)
    return layer


# ---------------------------------------------------------------- surrogate


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        # gamma [(1+h) N(v;0,s) - h N(v;s,6s) - h N(v;-s,6s)], s=0.3, h=0.15, gamma=0.5:
        # v=0:    0.5 [1.15 * 1.329808 - 0.15 * 2 * 0.218578]               = 0.731853
        (0.0, 0.7318527),
        # |v|=0.3: 0.5 [1.15 * 0.806569 - 0.15 (0.221635 + 0.209657)]      = 0.431430
        (0.3, 0.4314303),
        (-0.3, 0.4314303),
        # |v|=0.6: 0.5 [1.15 * 0.179970 - 0.15 (0.218578 + 0.195592)]      = 0.072420
        (0.6, 0.0724200),
        (-0.6, 0.0724200),
        # |v|=1:   0.5 [1.15 * 0.005141 - 0.15 (0.205493 + 0.170755)]      = -0.025263
        (1.0, -0.0252626),
        (-1.0, -0.0252626),
    ],
)
def test_surrogate_reference_values(v: float, expected: float) -> None:
    value = multi_gaussian_grad(torch.tensor([v], dtype=torch.float64)).item()
    assert value == pytest.approx(expected, abs=5e-7)
    assert round(value, 3) == round(expected, 3)


def test_spike_forward_is_heaviside_in_input_dtype() -> None:
    for dtype in (torch.float32, torch.bfloat16):
        v = torch.tensor([-1.0, -1e-3, 0.0, 1e-3, 2.0], dtype=dtype)
        out = spike_fn(v)
        assert out.dtype == dtype
        assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_spike_backward_matches_reference_derivative(dtype: torch.dtype) -> None:
    v = torch.linspace(-2.0, 2.0, 41, dtype=dtype).requires_grad_()
    upstream = torch.linspace(0.5, 1.5, 41, dtype=dtype)
    spike_fn(v).backward(upstream)
    assert v.grad is not None and v.grad.dtype == dtype
    expected = upstream * multi_gaussian_grad(v.detach())
    torch.testing.assert_close(v.grad, expected)
    # custom constants are forwarded to the derivative
    w = torch.tensor([0.1, -0.4], requires_grad=True)
    spike_fn(w, 0.5, 0.2, 1.0).sum().backward()
    torch.testing.assert_close(w.grad, multi_gaussian_grad(w.detach(), 0.5, 0.2, 1.0))


def test_ltc_update_compiles_fullgraph_and_matches_eager() -> None:
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(2, 3, 4, 4, generator=gen) for _ in range(3)]
    base[1] = base[1] * 2.0
    base[2] = base[2].abs()

    def run(fn):  # type: ignore[no-untyped-def]
        inputs = [t.clone().requires_grad_() for t in base]
        spikes, u_new = fn(*inputs, 1.0)
        (spikes * 3.0 + u_new).sum().backward()
        return spikes.detach(), u_new.detach(), [t.grad for t in inputs]

    compiled = torch.compile(ltc_update, backend="aot_eager", fullgraph=True)
    s_ref, u_ref, g_ref = run(ltc_update)
    s_c, u_c, g_c = run(compiled)
    assert 0 < s_ref.sum().item() < s_ref.numel()  # both branches are exercised
    torch.testing.assert_close(s_c, s_ref)
    torch.testing.assert_close(u_c, u_ref)
    for a, b in zip(g_c, g_ref):
        torch.testing.assert_close(a, b)


def test_ltc_update_hard_reset_stays_in_graph() -> None:
    # z = 0 -> tau = 0.5; I = 2, u_prev = 0 -> u' = 1.0 exactly, v = u' - 1 = 0 -> no spike.
    # d spikes / d I  = tau * sg(0)                     = 0.5 * 0.7318527 = 0.3659264
    # d u_new  / d I  = tau * [(1 - s) - u' * sg(0)]    = 0.5 * (1 - 0.7318527) = 0.1340736
    current = torch.tensor([2.0], requires_grad=True)
    spikes, u_new = ltc_update(torch.zeros(1), current, torch.zeros(1), 1.0)
    assert spikes.item() == 0.0 and u_new.item() == 1.0
    (grad_s,) = torch.autograd.grad(spikes.sum(), current, retain_graph=True)
    (grad_u,) = torch.autograd.grad(u_new.sum(), current)
    assert grad_s.item() == pytest.approx(0.3659264, abs=1e-6)
    assert grad_u.item() == pytest.approx(0.1340736, abs=1e-6)


# ---------------------------------------------------------------- LTC layer


def test_ltc_two_timesteps_by_hand() -> None:
    layer = _hand_layer()
    x = torch.full((1, 1, 1, 1), 0.6)
    # I = 2 * 0.6 = 1.2 (BN is the identity) at both steps.
    # step 1: u0 = 0; z = 0.5 (1.2 + 0) - 0.25 = 0.35; tau = sigmoid(0.35) = 0.5866176
    #         u' = 0 + 0.5866176 * 1.2 = 0.7039411 < 1 -> s = 0, u1 = 0.7039411
    s1 = layer(x)
    assert s1.item() == 0.0
    assert layer.v is not None and layer.v.item() == pytest.approx(0.7039411, abs=1e-6)
    # step 2: z = 0.5 (1.2 + 0.7039411) - 0.25 = 0.7019705; tau = sigmoid(z) = 0.6686245
    #         u' = 0.7039411 + 0.6686245 (1.2 - 0.7039411) = 1.0356182 > 1 -> s = 1, u2 = 0 (reset)
    s2 = layer(x)
    assert s2.item() == 1.0
    assert layer.v.item() == 0.0
    # step 3 starts again from u = 0, so it repeats step 1
    assert layer(x).item() == 0.0
    assert layer.v.item() == pytest.approx(0.7039411, abs=1e-6)


def test_ltc_intermediate_values_by_hand() -> None:
    # Same layer, u_prev stored by hand: checks the tau path, not only the outcome.
    layer = _hand_layer()
    x = torch.full((1, 1, 1, 1), 0.25)  # I = 0.5
    layer.v = torch.full((1, 1, 1, 1), 0.9)
    # z = 0.5 (0.5 + 0.9) - 0.25 = 0.45; tau = sigmoid(0.45) = 0.6106392
    # u' = 0.9 + 0.6106392 (0.5 - 0.9) = 0.6557443 -> no spike
    assert layer(x).item() == 0.0
    assert layer.v.item() == pytest.approx(0.6557443, abs=1e-6)


def test_ltc_shapes_upsample_and_repr() -> None:
    layer = LTCConv2d(4, 6, 3, stride=2, upsample=True, threshold=0.5)
    assert layer.conv.bias is not None and torch.all(layer.conv.bias == 0)
    assert torch.all(layer.tau_conv.bias == 0)
    assert tuple(layer.tau_conv.weight.shape) == (6, 6, 3, 3)
    assert "v=None" in repr(layer) and "threshold=0.5" in repr(layer)
    out = layer(torch.rand(2, 4, 8, 10))
    # stride 2 -> 4x5, then nearest x2 -> 8x10
    assert out.shape == (2, 6, 8, 10)
    assert layer.v is not None and layer.v.shape == (2, 6, 8, 10)
    assert "v=(2, 6, 8, 10)" in repr(layer)
    assert LTCConv2d(3, 5, 3, bias=False).conv.bias is None


def test_ltc_state_float32_under_cpu_bf16_autocast() -> None:
    torch.manual_seed(0)
    layer = LTCConv2d(3, 8, 3)
    x = torch.rand(2, 3, 8, 8) * 4.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [layer(x) for _ in range(3)]
    assert layer.v is not None and layer.v.dtype == torch.float32
    assert all(o.dtype == torch.bfloat16 for o in outs)
    spikes = torch.stack(outs)
    assert torch.all((spikes == 0) | (spikes == 1))
    assert spikes.sum().item() > 0


def test_reset_recreates_state_for_new_shapes() -> None:
    layer = LTCConv2d(3, 4, 3)
    layer(torch.rand(2, 3, 8, 8))
    with pytest.raises(RuntimeError, match="reset_states"):
        layer(torch.rand(1, 3, 8, 8))
    reset_states(layer)
    assert layer.v is None
    layer(torch.rand(1, 3, 16, 8))
    assert layer.v is not None and layer.v.shape == (1, 4, 16, 8)
    with pytest.raises(ValueError, match="uniform"):
        reset_states(layer, init="gaussian")


def test_uniform_init_reproducible_with_generator() -> None:
    layer = LTCConv2d(3, 4, 3)
    reset_states(layer, init="uniform", generator=torch.Generator().manual_seed(7))
    drawn = layer.new_memory((2, 4, 8, 8), torch.device("cpu"), torch.float32)
    torch.testing.assert_close(drawn, torch.rand((2, 4, 8, 8), generator=torch.Generator().manual_seed(7)))

    x = torch.rand(2, 3, 8, 8)
    states = []
    for seed in (7, 7, 8):
        reset_states(layer, init="uniform", generator=torch.Generator().manual_seed(seed))
        layer(x)
        states.append(layer.v.clone())
    torch.testing.assert_close(states[0], states[1], rtol=0, atol=0)
    assert not torch.equal(states[0], states[2])
    # zero init is back after a plain reset
    reset_states(layer)
    assert layer.memory_init == "zero"
    assert torch.all(layer.new_memory((3,), torch.device("cpu"), torch.float32) == 0)


def test_detach_truncates_graph_to_current_step() -> None:
    torch.manual_seed(0)
    layer = LTCConv2d(2, 3, 3)

    def two_steps(detach: bool) -> torch.Tensor | None:
        reset_states(layer)
        x1 = (torch.rand(1, 2, 6, 6) * 3).requires_grad_()
        x2 = (torch.rand(1, 2, 6, 6) * 3).requires_grad_()
        layer(x1)
        if detach:
            detach_states(layer)
        layer(x2).sum().backward()
        assert x2.grad is not None and x2.grad.abs().sum() > 0
        return x1.grad

    bptt_grad = two_steps(detach=False)
    assert bptt_grad is not None and bptt_grad.abs().sum() > 0
    assert two_steps(detach=True) is None


def test_deepcopy_mid_graph_drops_state() -> None:
    layer = LTCConv2d(2, 3, 3)
    layer(torch.rand(1, 2, 4, 4).requires_grad_())  # state is now a non-leaf tensor
    clone = copy.deepcopy(layer)
    assert clone.v is None and layer.v is not None
    assert clone.memory_names == ("v",)


def test_module_walkers() -> None:
    model = torch.nn.Sequential(LTCConv2d(3, 4, 3), torch.nn.ReLU(), LTCConv2d(4, 5, 1))
    assert [n for n, _ in ltc_layers(model)] == ["0", "2"]
    assert len(list(stateful_modules(model))) == 2
    model(torch.rand(1, 3, 4, 4))
    assert all(m.v is not None for m in stateful_modules(model))
    reset_states(model)
    assert all(m.v is None for m in stateful_modules(model))
    with pytest.raises(ValueError, match="already in use"):
        model[0].register_memory("v")


def test_state_follows_channels_last_layout() -> None:
    torch.manual_seed(0)
    layer = LTCConv2d(3, 8, 3)
    x = torch.rand(2, 3, 8, 8)
    reset_states(layer, init="uniform", generator=torch.Generator().manual_seed(3))
    reference = layer(x)
    reference_v = layer.v.clone()
    layer_cl = layer.to(memory_format=torch.channels_last)
    reset_states(layer_cl, init="uniform", generator=torch.Generator().manual_seed(3))
    out = layer_cl(x.contiguous(memory_format=torch.channels_last))
    assert layer_cl.v.is_contiguous(memory_format=torch.channels_last)
    # same logical initial state, hence the same result, whatever the layout
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(layer_cl.v, reference_v)


def test_surrogate_params_validation_and_model_plumbing() -> None:
    from spyolo.config import ConfigError, load_config
    from spyolo.models import build_model
    from spyolo.snn.ltc import ltc_layers
    from spyolo.snn.surrogate import DEFAULT_SURROGATE, SurrogateParams

    assert DEFAULT_SURROGATE.peak() == pytest.approx(0.732, abs=5e-4)
    assert SurrogateParams(1.0, 0.0, 1.0).peak() == pytest.approx(1 / math.sqrt(2 * math.pi))
    for bad in (dict(sigma=0.0), dict(height=-0.1), dict(gamma=0.0), dict(sigma=float("nan"))):
        with pytest.raises(ValueError, match="surrogate"):
            SurrogateParams(**bad)
    cfg = load_config(None, ["model.width=0.125", "model.surrogate_sigma=1.0", "model.surrogate_height=0",
                             "model.surrogate_gamma=1.0"])
    model = build_model(cfg.model, num_classes=3)
    assert {layer.surrogate for _, layer in ltc_layers(model)} == {SurrogateParams(1.0, 0.0, 1.0)}
    assert build_model(load_config(None, ["model.width=0.125"]).model, 3).surrogate == DEFAULT_SURROGATE
    with pytest.raises(ConfigError, match="surrogate_sigma > 0"):
        load_config(None, ["model.surrogate_sigma=0"])
    with pytest.raises(ConfigError, match="model.threshold must be > 0"):
        load_config(None, ["model.threshold=0"])


# --------------------------------------------------------------- held current of a still input


def _counting_layer() -> tuple[LTCConv2d, list[int]]:
    """A 3 -> 4 channel LTC layer that holds its current, and a list counting its convolution's runs."""
    torch.manual_seed(0)
    layer = LTCConv2d(3, 4, 3, stride=2, threshold=0.3)
    layer.hold_current = True
    runs: list[int] = []
    layer.conv.register_forward_hook(lambda m, i, o: runs.append(1))
    return layer, runs


def _steps(layer: LTCConv2d, x: torch.Tensor, steps: int = 4) -> list[torch.Tensor]:
    reset_states(layer)
    return [layer(x) for _ in range(steps)]


def test_held_current_is_computed_once_per_sequence_and_gives_identical_outputs() -> None:
    layer, runs = _counting_layer()
    layer.eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        held = _steps(layer, x)
        assert len(runs) == 1
        layer.hold_current = False
        plain = _steps(layer, x)
        assert len(runs) == 1 + 4
    assert all(torch.equal(a, b) for a, b in zip(held, plain))
    assert layer._held is None  # a layer that does not hold keeps no reference to its input
    assert sum(float(s.sum()) for s in held) > 0  # the layer fires: the comparison is not between zeros


def test_held_current_is_dropped_at_reset_and_never_used_for_another_or_modified_input() -> None:
    layer, runs = _counting_layer()
    layer.eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        _steps(layer, x, 2)
        assert len(runs) == 1 and layer._held is not None
        reset_states(layer)
        assert layer._held is None
        layer(x)
        assert len(runs) == 2  # recomputed after the reset
        layer(x.clone())  # equal values, another tensor: recomputed
        assert len(runs) == 3
        y = x.clone()
        layer(y)
        layer(y)
        assert len(runs) == 4
        y.mul_(0.5)  # changed in place: its version moved on, the held current is stale
        reference = LTCConv2d(3, 4, 3, stride=2, threshold=0.3)
        reference.load_state_dict(layer.state_dict())
        reference.eval()
        reference.v = layer.v.clone()
        assert torch.equal(layer(y), reference(y))
        assert len(runs) == 5


def test_held_current_is_recomputed_when_the_weights_or_bn_statistics_change() -> None:
    layer, runs = _counting_layer()
    layer.eval()
    x = torch.rand(2, 3, 16, 16)
    reference = LTCConv2d(3, 4, 3, stride=2, threshold=0.3).eval()
    with torch.no_grad():
        _steps(layer, x, 2)
        assert len(runs) == 1
        changes = [
            lambda: layer.bn.running_mean.copy_(torch.rand(4)),  # per-timestep BN statistics load this way
            lambda: layer.bn.running_var.add_(0.5),
            lambda: layer.conv.weight.mul_(0.9),
            lambda: layer.bn.weight.fill_(2.0),
            lambda: setattr(layer.bn, "running_mean", torch.zeros(4)),  # replaced, not modified
        ]
        for count, change in enumerate(changes, start=2):
            change()
            reference.load_state_dict(layer.state_dict())
            reference.v = layer.v.clone()
            assert torch.equal(layer(x), reference(x))
            assert len(runs) == count
            layer(x)
            assert len(runs) == count  # unchanged since: held again


def test_current_is_computed_every_step_in_training_with_gradients_and_in_inference_mode() -> None:
    layer, runs = _counting_layer()
    x = torch.rand(2, 3, 16, 16)
    layer.train()
    with torch.no_grad():
        _steps(layer, x)
    assert len(runs) == 4  # training (batch norm in batch mode)
    layer.eval()
    _steps(layer, x)
    assert len(runs) == 8  # gradients enabled: each step's graph needs its own current
    with torch.inference_mode():
        _steps(layer, torch.rand(2, 3, 16, 16))
    assert len(runs) == 12  # inference tensors have no version counter to check


def test_copies_and_pickles_drop_the_held_current() -> None:
    import pickle

    layer = LTCConv2d(3, 4, 3, stride=2, threshold=0.3)
    layer.hold_current = True
    layer.eval()
    with torch.no_grad():
        _steps(layer, torch.rand(1, 3, 8, 8), 2)
    assert layer._held is not None
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert other._held is None and other.hold_current


def test_spyv4_holds_the_first_layers_current_only() -> None:
    from spyolo.models import SPYv4, run_timesteps

    torch.manual_seed(0)
    model = SPYv4(num_classes=2, width=0.25).eval()
    assert [n for n, layer in ltc_layers(model) if layer.hold_current] == ["conv1"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        held = run_timesteps(model, x, 3, return_all=True)
        model.conv1.hold_current = False
        plain = run_timesteps(model, x, 3, return_all=True)
    assert all(torch.equal(a, b) for step_a, step_b in zip(held, plain) for a, b in zip(step_a, step_b))
