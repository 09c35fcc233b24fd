"""Fused LTC update vs the pure-PyTorch reference; LTC backends; eagerly created states."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from spyolo.models import SPYv4
from spyolo.snn import LTCConv2d, detach_states, reset_states
from spyolo.snn.fused import fused_ltc_update
from spyolo.snn.ltc import LTC_BACKENDS, init_states, ltc_layers, ltc_update, set_ltc_backend, state_layouts


def _reference(z, current, u_prev, threshold):
    """What LTCConv2d does with the reference backend."""
    spikes, u_new = ltc_update(z.to(u_prev.dtype), current.to(u_prev.dtype), u_prev, threshold)
    return spikes.to(current.dtype), u_new


def _inputs(seed, low, state_dtype, channels_last, shape=(2, 5, 4, 6)):
    gen = torch.Generator().manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    z = (2.0 * torch.randn(shape, generator=gen, dtype=state_dtype)).contiguous(memory_format=fmt).to(low)
    cur = (1.5 * torch.randn(shape, generator=gen, dtype=state_dtype) + 0.5).contiguous(memory_format=fmt).to(low)
    u = (1.2 * torch.rand(shape, generator=gen, dtype=state_dtype)).contiguous(memory_format=fmt)
    grad_s = torch.randn(shape, generator=gen, dtype=state_dtype).to(low)
    grad_u = torch.randn(shape, generator=gen, dtype=state_dtype)
    return z, cur, u, grad_s, grad_u


def _run(fn, z, cur, u, grad_s, grad_u, bptt):
    zz, cc, uu = z.clone().requires_grad_(), cur.clone().requires_grad_(), u.clone().requires_grad_(bptt)
    spikes, u_new = fn(zz, cc, uu, 1.0)
    loss = (spikes * grad_s).sum()
    if bptt:
        loss = loss + (u_new * grad_u).sum()
    loss.backward()
    return spikes, u_new, zz.grad, cc.grad, uu.grad


def _compare(kernels, low, state_dtype, channels_last, bptt, seed=0):
    args = _inputs(seed, low, state_dtype, channels_last)
    ref = _run(_reference, *args, bptt)
    fused = _run(lambda *a: fused_ltc_update(*a, kernels=kernels), *args, bptt)
    names = ("spikes", "u_new", "grad_z", "grad_current", "grad_u_prev")
    # spikes and membrane: the same arithmetic in the same precision
    assert torch.equal(fused[0], ref[0])
    assert fused[0].dtype == low and fused[1].dtype == state_dtype
    assert fused[0].stride() == ref[0].stride() and fused[1].stride() == ref[1].stride()
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}
    for name, a, b in zip(names[1:], fused[1:], ref[1:]):
        if name == "grad_u_prev" and not bptt:
            assert a is None and b is None
            continue
        assert a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, rtol=tol[a.dtype], atol=tol[a.dtype], msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bptt", [False, True])
@pytest.mark.parametrize("low,state", [(torch.float64, torch.float64), (torch.bfloat16, torch.float32)])
def test_fused_eager_matches_reference(low, state, bptt, channels_last):
    _compare("eager", low, state, channels_last, bptt)


@pytest.mark.parametrize("bptt", [False, True])
@pytest.mark.parametrize("low,state", [(torch.float64, torch.float64), (torch.bfloat16, torch.float32)])
def test_compiled_kernels_match_reference_aot_eager(low, state, bptt):
    # the traced flat-view path of the compiled modes, without code generation
    _compare("aot_eager", low, state, True, bptt, seed=1)


def test_inductor_kernels_match_reference_on_cpu():
    # generated C++ kernels (Triton on CUDA: checked by tools/gpu_check.py), forward and full backward
    _compare("inductor", torch.float32, torch.float32, True, bptt=True, seed=2)


@pytest.mark.parametrize("kernels", ["eager", "aot_eager"])
def test_fused_hand_values(kernels):
    # Element 0: z=0 (tau=1/2), I=3, u_prev=0 -> u'=1.5, v=0.5 > 0: spike, u_new=0.
    # Element 1: z=ln 3 (tau=3/4), I=1, u_prev=0.6 -> u'=0.6+0.75*0.4=0.9, v=-0.1: no spike, u_new=0.9.
    # Surrogate gamma[(1+h)N(v;0,s) - hN(v;s,6s) - hN(v;-s,6s)]: sg(0.5)=0.1590849, sg(-0.1)=0.6905804.
    # Gradients with g_s=(1,1), g_u=(0,1):
    #   e0: g_u'=sg(.5)=0.1590849; g_I=g_u'*tau=0.0795424; g_z=g_u'*(I-u)*tau(1-tau)=0.1193137;
    #       g_u=g_u'(1-tau)=0.0795424
    #   e1: g_u'=sg + (1 - u'*sg) = 1.0690580; g_I=0.8017935; g_z=g_u'*0.4*0.1875=0.0801794; g_u=0.2672645
    z = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64, requires_grad=True)
    cur = torch.tensor([3.0, 1.0], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([0.0, 0.6], dtype=torch.float64, requires_grad=True)
    spikes, u_new = fused_ltc_update(z, cur, u, 1.0, kernels=kernels)
    assert spikes.tolist() == [1.0, 0.0]
    assert u_new.tolist() == pytest.approx([0.0, 0.9], abs=1e-15)
    (spikes.sum() + (u_new * torch.tensor([0.0, 1.0], dtype=torch.float64)).sum()).backward()
    assert cur.grad.tolist() == pytest.approx([0.0795424, 0.8017935], abs=1e-7)
    assert z.grad.tolist() == pytest.approx([0.1193137, 0.0801794], abs=1e-7)
    assert u.grad.tolist() == pytest.approx([0.0795424, 0.2672645], abs=1e-7)


def test_fused_input_checks():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same shape"):
        fused_ltc_update(z, torch.zeros(2, 4), torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match="float32 or float64"):
        fused_ltc_update(z, z, torch.zeros(2, 3, dtype=torch.bfloat16), 1.0)
    with pytest.raises(ValueError, match="unknown fused LTC kernels 'triton'"):
        fused_ltc_update(z, z, z, 1.0, kernels="triton")


def test_fused_under_dispatch_mode_runs_plain_math():
    # torch.compile refuses to run under a TorchDispatchMode such as FlopCounterMode
    z, cur, u, _, _ = _inputs(3, torch.float32, torch.float32, False)
    with FlopCounterMode(display=False):
        spikes, u_new = fused_ltc_update(z, cur, u, 1.0, kernels="aot_eager")
    ref = _reference(z, cur, u, 1.0)
    assert torch.equal(spikes, ref[0]) and torch.equal(u_new, ref[1])


def _tiny_model(backend: str) -> SPYv4:
    torch.manual_seed(0)
    model = SPYv4(num_classes=3, width=0.25).double()
    set_ltc_backend(model, backend)
    return model


def test_set_ltc_backend_sets_every_layer_and_validates():
    model = SPYv4(num_classes=3, width=0.25)
    assert {layer.ltc_backend for _, layer in ltc_layers(model)} == {"reference"}
    assert set_ltc_backend(model, "fused-eager") == 19
    assert {layer.ltc_backend for _, layer in ltc_layers(model)} == {"fused-eager"}
    assert "backend=fused-eager" in repr(model.conv1)
    with pytest.raises(ValueError, match="unknown LTC backend 'cuda'"):
        set_ltc_backend(model, "cuda")
    layer = LTCConv2d(2, 2, 3)
    layer.ltc_backend = "typo"
    with pytest.raises(ValueError, match="unknown ltc_backend 'typo'"):
        layer(torch.zeros(1, 2, 4, 4))
    assert LTC_BACKENDS == ("reference", "fused", "fused-eager")


@pytest.fixture
def fused_via_aot_eager(monkeypatch):
    """Route LTCConv2d's "fused" backend through the aot_eager kernels (traced, no code generation)."""
    import spyolo.snn.ltc as ltc_module

    monkeypatch.setattr(ltc_module, "_FUSED_KERNELS_OF_BACKEND", {"fused": "aot_eager", "fused-eager": "eager"})


@pytest.mark.parametrize("backend", ["fused-eager", "fused"])
def test_model_backends_match_reference_over_bptt_steps(backend, fused_via_aot_eager):
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 4
    grads, outs = [], []
    for b in ("reference", backend):
        model = _tiny_model(b)
        reset_states(model)
        total = 0
        for _ in range(3):
            o13, o26 = model(x)
            outs.append((o13.detach(), o26.detach()))
            total = total + o13.square().mean() + o26.square().mean()
        total.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    n = len(outs) // 2
    for (a13, a26), (b13, b26) in zip(outs[:n], outs[n:]):
        torch.testing.assert_close(a13, b13, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a26, b26, rtol=1e-12, atol=1e-12)
    rates = [float(layer.v.ne(0).double().mean()) for _, layer in ltc_layers(model)]
    assert max(rates) > 0  # the test drives real (non-zero) membranes
    for ga, gb in zip(*grads):
        torch.testing.assert_close(gb, ga, rtol=1e-9, atol=1e-12)


def test_state_layouts_and_init_states_reproduce_lazy_uniform_draws():
    model = _tiny_model("reference")
    x = torch.rand(2, 3, 64, 96, dtype=torch.float64)
    reset_states(model)
    assert state_layouts(model) is None
    model(x)
    layouts = state_layouts(model)
    assert len(layouts) == 19
    assert layouts[0].shape == (2, 8, 32, 48) and layouts[0].dtype == torch.float64
    assert not layouts[0].channels_last
    # lazy creation (uniform, seeded) vs creation before the first step: same draws, same step
    reset_states(model, init="uniform", generator=torch.Generator().manual_seed(7))
    lazy = model(x)
    lazy_states = [layer.v.clone() for _, layer in ltc_layers(model)]
    init_states(model, layouts, x.device, init="uniform", generator=torch.Generator().manual_seed(7))
    first = [layer.v.clone() for _, layer in ltc_layers(model)]
    assert all(0 <= float(v.min()) and float(v.max()) < 1 for v in first)
    eager = model(x)
    torch.testing.assert_close(eager[0], lazy[0], rtol=0, atol=0)
    torch.testing.assert_close(eager[1], lazy[1], rtol=0, atol=0)
    for a, b in zip(lazy_states, (layer.v for _, layer in ltc_layers(model))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="got 18 state layouts for 19 LTC layers"):
        init_states(model, layouts[:-1], x.device)


def test_channels_last_states_follow_the_input_layout():
    model = _tiny_model("fused-eager").to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    reset_states(model)
    model(x)
    layouts = state_layouts(model)
    assert layouts[0].channels_last and layouts[0].memory_format == torch.channels_last
    init_states(model, layouts, x.device)
    assert model.conv1.v.is_contiguous(memory_format=torch.channels_last)


def test_compiled_model_with_fused_update_needs_one_graph(fused_via_aot_eager):
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = _tiny_model("fused")
    compiled = torch.compile(model, backend=counting_backend, fullgraph=True)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    reset_states(model)
    model(x)  # first step with lazily created states, uncompiled (as TrainStep does)
    layouts = state_layouts(model)
    reference = _tiny_model("reference")
    for steps in (2, 1):  # two batches: steps 0-1, then step 0 again
        init_states(model, layouts, x.device)
        reset_states(reference)
        for _ in range(steps):
            detach_states(model)
            out = compiled(x)
            (out[0].sum() + out[1].sum()).backward()
            ref = reference(x)
            torch.testing.assert_close(out[0], ref[0], rtol=1e-12, atol=1e-12)
    assert len(graphs) == 1


@pytest.mark.parametrize("kernels", ["eager", "aot_eager"])
@pytest.mark.parametrize("bptt", [False, True])
def test_fused_matches_reference_with_configured_surrogate(kernels: str, bptt: bool) -> None:
    """A non-default surrogate (wide plain Gaussian) reaches both backends identically."""
    from spyolo.snn.surrogate import SurrogateParams, multi_gaussian_grad

    surrogate = SurrogateParams(sigma=1.0, height=0.0, gamma=1.0)
    args = _inputs(3, torch.float64, torch.float64, False)

    def ref(z, c, u, threshold):
        return ltc_update(z, c, u, threshold, surrogate)

    def fused(z, c, u, threshold):
        return fused_ltc_update(z, c, u, threshold, kernels=kernels, surrogate=surrogate)

    a, b = _run(fused, *args, bptt), _run(ref, *args, bptt)
    default = _run(lambda z, c, u, t: ltc_update(z, c, u, t), *args, bptt)
    for x, y in zip(a[2:], b[2:]):
        if x is None:
            assert y is None
            continue
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a[3], default[3])  # the constants do change the gradient
    # FPTT-style check by hand: d spikes / d current = surrogate(u' - 1) * tau
    z, cur, u, grad_s, _ = args
    tau = torch.sigmoid(z)
    v = u + tau * (cur - u) - 1.0
    if not bptt:
        torch.testing.assert_close(a[3], grad_s * multi_gaussian_grad(v, 1.0, 0.0, 1.0) * tau, rtol=1e-12, atol=1e-12)
