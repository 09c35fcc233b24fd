"""Tests of the LTC time-constant variants (``model.tau_mode``): dynamics against hand-computed
values, fused gradients against autograd, operation counts against hand counts (and pinned), config
errors, weight transfer, training, the mean read-out, the ONNX export, and the modes as data (the
table ``TAU_MODE_TABLE``: a throw-away entry is a whole mode)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import calibrate_bn, save_tiny_checkpoint
from spyolo.config import Config, ConfigError, apply_overrides
from spyolo.models import SPYv4, YOLOv4Tiny, build_model, transfer_weights
from spyolo.models.spyv4 import ConvBNAct
from spyolo.snn import reset_states
from spyolo.snn.ltc import TAU_MODES, LTCConv2d, init_states, set_ltc_backend, state_layouts, truncated_states
from spyolo.stats import (
    NEURON_UPDATE_OPS,
    FiringRateMonitor,
    SynOpCounter,
    build_spike_report,
    conv_sites,
    count_dense_ops,
)
from spyolo.utils.tau_modes import DEFAULT_TAU_MODE, TAU_MODE_TABLE, TauMode, tau_mode_entry

THETA = 0.5


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _identity_bns(*bns: nn.BatchNorm2d) -> None:
    """Make batch norms the identity in evaluation: mean 0, variance 1, eps 0, scale 1, shift 0."""
    for bn in bns:
        bn.eps = 0.0
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        bn.weight.fill_(1.0)
        bn.bias.zero_()


def _layer(mode: str) -> LTCConv2d:
    """1 -> 2 channels, 1x1 synaptic conv, identity BNs (eval, eps 0), float64, known weights.

    The tau convolution (3x3) has only its centre tap set, so by hand it is a 2x2 channel mix
    (or, depthwise, one scale per channel) at every position; the affine mode's 1x1 depthwise
    convolution is one scale per channel by construction.
    """
    layer = LTCConv2d(1, 2, 1, bias=False, threshold=THETA, tau_mode=mode).double().eval()
    with torch.no_grad():
        layer.conv.weight.copy_(torch.tensor([1.2, 0.7], dtype=torch.float64).view(2, 1, 1, 1))
        bns = [layer.bn] + ([layer.tau_bn] if mode != "channel" else [])
        _identity_bns(*bns)
        if mode == "channel":
            layer.tau_param.copy_(torch.tensor([0.3, -1.1], dtype=torch.float64))
        else:
            layer.tau_conv.weight.zero_()
            if mode == "depthwise":
                layer.tau_conv.weight[:, 0, 1, 1] = torch.tensor([0.8, -0.4], dtype=torch.float64)
            elif mode == "affine":
                layer.tau_conv.weight[:, 0, 0, 0] = torch.tensor([0.8, -0.4], dtype=torch.float64)
            elif mode == "coarse":
                layer.tau_conv.weight[:, 0, 1, 1] = torch.tensor([0.8, -0.4], dtype=torch.float64)
            else:
                layer.tau_conv.weight[:, :, 1, 1] = torch.tensor([[0.5, -0.3], [0.2, 0.9]], dtype=torch.float64)
            layer.tau_conv.bias.copy_(torch.tensor([0.1, -0.2], dtype=torch.float64))
    return layer


def _hand_step(mode: str, x: list[float], u: list[list[float]], s: list[list[float]]):
    """One step by hand for the layer of :func:`_layer`: lists ``[channel][position]``."""
    w_syn = (1.2, 0.7)
    mix = ((0.5, -0.3), (0.2, 0.9))
    dw = (0.8, -0.4)
    bias = (0.1, -0.2)
    a = (0.3, -1.1)
    current = [[w_syn[c] * x[p] for p in range(4)] for c in range(2)]
    spikes, u_new = [[0.0] * 4 for _ in range(2)], [[0.0] * 4 for _ in range(2)]
    for c in range(2):
        for p in range(4):
            if mode == "ltc":
                z = sum(mix[c][k] * (current[k][p] + u[k][p]) for k in range(2)) + bias[c]
            elif mode == "spike":
                z = sum(mix[c][k] * s[k][p] for k in range(2)) + bias[c]
            elif mode == "depthwise" or mode == "affine":
                z = dw[c] * (current[c][p] + u[c][p]) + bias[c]
            elif mode == "coarse":
                # stride 2 on the 2x2 map: one output, whose centre tap reads position 0; its
                # value is repeated over the whole 2x2 block
                z = dw[c] * (current[c][0] + u[c][0]) + bias[c]
            else:
                z = a[c]
            tau = _sigmoid(z)
            pre = u[c][p] + tau * (current[c][p] - u[c][p])
            fired = 1.0 if pre - THETA > 0 else 0.0
            spikes[c][p] = fired
            u_new[c][p] = pre * (1.0 - fired)
    return spikes, u_new


@pytest.mark.parametrize("backend", ["reference", "fused-eager"])
@pytest.mark.parametrize("mode", TAU_MODES)
def test_dynamics_match_hand_computed_values(mode: str, backend: str) -> None:
    layer = _layer(mode)
    layer.ltc_backend = backend
    x_values = [0.9, 0.3, 1.0, 0.05]  # a 2x2 map
    x = torch.tensor(x_values, dtype=torch.float64).view(1, 1, 2, 2)
    u = [[0.0] * 4 for _ in range(2)]
    s = [[0.0] * 4 for _ in range(2)]  # s_{-1} = 0
    fired_any = 0.0
    with torch.no_grad():
        for _step in range(3):
            out = layer(x)
            s, u = _hand_step(mode, x_values, u, s)
            assert out.view(2, 4).tolist() == s
            torch.testing.assert_close(layer.v.view(2, 4), torch.tensor(u, dtype=torch.float64), rtol=0, atol=1e-12)
            if mode == "spike":
                assert layer.s.view(2, 4).tolist() == s
            fired_any += float(out.sum())
    assert fired_any > 0  # the case exercises the reset


def test_coarse_mode_shares_one_time_constant_per_2x2_block_by_hand() -> None:
    """On a 5x5 map (odd: the last block is cropped) the time constant of neuron (y, x) is the
    stride-2 depthwise convolution's output (y // 2, x // 2), computed here tap by tap."""
    torch.manual_seed(0)
    layer = LTCConv2d(1, 2, 1, bias=False, threshold=100.0, tau_mode="coarse").double().eval()
    with torch.no_grad():
        layer.conv.weight.copy_(torch.tensor([1.0, -0.5], dtype=torch.float64).view(2, 1, 1, 1))
        _identity_bns(layer.bn, layer.tau_bn)
        w = torch.randn(2, 1, 3, 3, dtype=torch.float64)
        layer.tau_conv.weight.copy_(w)
        layer.tau_conv.bias.copy_(torch.tensor([0.2, -0.1], dtype=torch.float64))
        x = torch.rand(1, 1, 5, 5, dtype=torch.float64)
        layer(x)  # from u = 0 and no spike (threshold 100): u_1 = tau * I
    current = [[[[1.0, -0.5][c] * float(x[0, 0, y, i]) for i in range(5)] for y in range(5)] for c in range(2)]
    for c in range(2):
        for y in range(5):
            for i in range(5):
                oy, ox = y // 2, i // 2
                z = [0.2, -0.1][c]
                for ky in range(3):
                    for kx in range(3):
                        yy, xx = 2 * oy + ky - 1, 2 * ox + kx - 1
                        if 0 <= yy < 5 and 0 <= xx < 5:
                            z += float(w[c, 0, ky, kx]) * current[c][yy][xx]  # u_0 = 0: I + u = I
                expected = _sigmoid(z) * current[c][y][i]
                assert float(layer.v[0, c, y, i]) == pytest.approx(expected, rel=0, abs=1e-12)


def test_spike_mode_previous_spikes_are_zero_at_every_reset_whatever_the_membrane_init() -> None:
    layer = _layer("spike")
    x = torch.full((1, 1, 2, 2), 0.9, dtype=torch.float64)
    with torch.no_grad():
        layer(x)
        layer(x)
        reset_states(layer, init="uniform", generator=torch.Generator().manual_seed(0))
        assert layer.s is None and layer.v is None
        seen = []
        handle = layer.tau_conv.register_forward_hook(lambda m, i, o: seen.append(i[0].clone()))
        layer(x)
        handle.remove()
    assert torch.equal(seen[0], torch.zeros_like(seen[0]))


@pytest.mark.parametrize("mode", TAU_MODES)
def test_fused_gradients_match_autograd_in_float64(mode: str) -> None:
    """The fused update's hand-written backward against plain autograd, through the tau path of
    every mode, under BPTT (membrane and previous spikes kept in the graph) and under FPTT."""

    def grads(backend: str, truncated: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        layer = LTCConv2d(3, 4, 3, threshold=0.3, tau_mode=mode).double()
        layer.ltc_backend = backend
        x = torch.rand(2, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
        with truncated_states(layer, enabled=truncated):
            loss = 0.0
            for t in range(3):
                out = layer(x * (1.0 + 0.2 * t))
                loss = loss + (out * torch.linspace(0.5, 1.5, out.numel(), dtype=torch.float64).view_as(out)).sum()
                loss = loss + (layer.v ** 2).sum() * 0.1
        loss.backward()
        return [x.grad] + [p.grad for p in layer.parameters()]

    for truncated in (False, True):
        ref, fused = grads("reference", truncated), grads("fused-eager", truncated)
        assert len(ref) == len(fused)
        for a, b in zip(ref, fused):
            assert a is not None and b is not None
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
        assert any(float(g.abs().sum()) > 0 for g in ref[1:])


@pytest.mark.parametrize("mode", ["spike", "depthwise", "coarse", "affine", "channel"])
def test_state_layouts_and_init_states_cover_every_mode(mode: str) -> None:
    torch.manual_seed(0)
    model = SPYv4(num_classes=2, width=0.25, tau_mode=mode).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reset_states(model)
        lazy = [model(x) for _ in range(2)]
        layouts = state_layouts(model)
        init_states(model, layouts, torch.device("cpu"))
        eager = [model(x) for _ in range(2)]
    for a, b in zip(lazy, eager):
        assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_parameters_of_each_mode() -> None:
    layer = {mode: LTCConv2d(4, 6, 3, tau_mode=mode) for mode in TAU_MODES}
    assert layer["ltc"].tau_conv.weight.shape == (6, 6, 3, 3) and layer["ltc"].memory_names == ("v",)
    assert layer["spike"].tau_conv.weight.shape == (6, 6, 3, 3) and layer["spike"].memory_names == ("v", "s")
    assert layer["depthwise"].tau_conv.weight.shape == (6, 1, 3, 3) and layer["depthwise"].tau_conv.groups == 6
    assert layer["affine"].tau_conv.weight.shape == (6, 1, 1, 1) and layer["affine"].tau_conv.groups == 6
    assert layer["affine"].tau_conv.padding == (0, 0)
    assert layer["coarse"].tau_conv.weight.shape == (6, 1, 3, 3) and layer["coarse"].tau_conv.stride == (2, 2)
    assert not hasattr(layer["channel"], "tau_conv") and layer["channel"].tau_param.shape == (6,)
    assert torch.equal(layer["channel"].tau_param, torch.zeros(6))
    # the paper's layer keeps its parameter names (checkpoints of the release load unchanged)
    assert sorted(k for k in layer["ltc"].state_dict() if k.startswith("tau")) == [
        "tau_bn.bias", "tau_bn.num_batches_tracked", "tau_bn.running_mean", "tau_bn.running_var",
        "tau_bn.weight", "tau_conv.bias", "tau_conv.weight"]
    with pytest.raises(ValueError, match="unknown tau_mode 'fast'"):
        LTCConv2d(4, 6, 3, tau_mode="fast")


# ------------------------------------------------------------------ config, builder


def test_config_key_and_choice_errors() -> None:
    assert Config().model.tau_mode == "ltc"
    for mode in TAU_MODES:
        cfg = apply_overrides(Config(), [f"model.tau_mode={mode}", "model.width=0.25"])
        model = build_model(cfg.model, num_classes=2)
        assert model.tau_mode == mode
        assert {layer.tau_mode for m in model.modules() if isinstance(layer := m, LTCConv2d)} == {mode}
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), ["model.tau_mode=dense"])
    message = str(err.value)
    assert "model.tau_mode must be one of ltc, spike, depthwise, coarse, affine, channel" in message
    assert "dense" in message
    assert "\n" not in message


def test_cli_rejects_an_unknown_tau_mode_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "tools" / "train.py"), "--config",
                           str(root / "configs" / "bench_synthetic_cpu.yaml"), "model.tau_mode=dense",
                           f"train.out_dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "model.tau_mode must be one of" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------- operation counts


class _OneLayer(nn.Module):
    """A spiking 'model' of one LTC layer: 1 -> 2 channels, 3x3, on a 2x2 map."""

    is_spiking = True

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.layer = LTCConv2d(1, 2, 3, threshold=0.2, tau_mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


@pytest.mark.parametrize("mode", TAU_MODES)
def test_operation_counts_by_hand_on_one_layer(mode: str) -> None:
    torch.manual_seed(0)
    model = _OneLayer(mode).eval()
    steps, spikes_per_step = 3, []
    x = torch.rand(1, 1, 2, 2) * 3.0
    with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter, torch.no_grad():
        reset_states(model)
        for _ in range(steps):
            spikes_per_step.append(int(model(x).sum()))
        report = build_spike_report(monitor, counter, steps, 32, ann_macs=1000.0, ann_adds=10.0, ann_muls=5.0)
        totals = counter.totals()
    (row,) = report.layers
    neurons = 2 * 2 * 2  # 2 channels on the 2x2 map
    assert row.neurons == neurons and row.tau_mode == mode
    # synaptic conv on analog input (the first layer): 8 outputs x (1 channel x 9 taps)
    synaptic_macs = steps * neurons * 9
    tau_macs = {"ltc": steps * neurons * 2 * 9, "depthwise": steps * neurons * 9,
                "coarse": steps * (neurons // 4) * 9, "affine": steps * neurons * 1}.get(mode, 0)
    assert row.macs == synaptic_macs + tau_macs
    if mode == "spike":
        # 3x3, padding 1 on a 2x2 map: every input position is read by all 4 outputs, for each of
        # the 2 output channels; the first step reads s_{-1} = 0
        assert row.acs == sum(spikes_per_step[:-1]) * 4 * 2
        assert totals["layer.tau_conv"].macs == 0
    else:
        assert row.acs == 0
    assert sum(spikes_per_step) > 0
    convs = 1 if mode == "channel" else 2  # one bias addition per output of each convolution
    adds, muls = {"ltc": (5, 2), "depthwise": (5, 2), "coarse": (5, 2), "affine": (5, 2), "spike": (4, 2),
                  "channel": (3, 1)}[mode]
    assert NEURON_UPDATE_OPS[mode] == (adds, muls)
    if mode == "coarse":  # the tau convolution's bias: one addition per output, a quarter of the neurons
        assert row.ew_adds == steps * (neurons * (1 + adds) + neurons // 4)
    else:
        assert row.ew_adds == steps * neurons * (convs + adds)
    assert row.ew_muls == steps * neurons * muls
    expected_pj = 0.9 * row.acs + 4.6 * row.macs + 0.9 * row.ew_adds + 3.7 * row.ew_muls
    assert report.energy_j == pytest.approx(expected_pj * 1e-12)
    assert report.synaptic_energy_j == pytest.approx((0.9 * row.acs + 4.6 * row.macs) * 1e-12)
    assert report.ann_energy_j == pytest.approx((4.6 * 1000 + 0.9 * 10 + 3.7 * 5) * 1e-12)
    assert report.energy_ratio == pytest.approx(report.energy_j / report.ann_energy_j)
    table = report.format_table()
    assert "elem/img" in table and "energy SNN / ANN" in table and f"tau_mode {mode}" in table


class _TinyAnn(nn.Module):
    in_channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.layer = ConvBNAct(1, 2, 3)
        self.head = nn.Conv2d(2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(x))


def test_dense_ops_by_hand() -> None:
    ops = count_dense_ops(_TinyAnn(), 32)
    outputs, head_outputs = 32 * 32 * 2, 32 * 32 * 3
    assert ops.macs == outputs * 9 + head_outputs * 2
    # bias / BN shift per output of both convolutions, plus the LeakyReLU's comparison; its slope
    assert ops.adds == outputs + outputs + head_outputs
    assert ops.muls == outputs


def test_sites_per_mode() -> None:
    for mode, tau_kind in (("ltc", "mac"), ("spike", "ac"), ("depthwise", "mac"), ("coarse", "mac"), ("affine", "mac"),
                           ("channel", None)):
        sites = {s.name: s for s in conv_sites(SPYv4(num_classes=2, width=0.25, tau_mode=mode))}
        assert (sites.get("conv2.tau_conv", None) is None if tau_kind is None
                else sites["conv2.tau_conv"].kind == tau_kind)
        assert sites["conv1.conv"].kind == "mac" and sites["conv2.conv"].kind == "ac"


def test_mean_readout_elementwise_work_is_counted() -> None:
    torch.manual_seed(0)
    reports = {}
    for readout in ("last", "mean"):
        model = SPYv4(num_classes=2, width=0.25, readout=readout, tau_mode="channel").eval()
        with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter, torch.no_grad():
            model.run(torch.rand(1, 3, 64, 64), 2)
            reports[readout] = build_spike_report(monitor, counter, 2, 64, 1.0)
    head_last = {r.name: r for r in reports["last"].layers}["head1"]
    head_mean = {r.name: r for r in reports["mean"].layers}["head1"]
    outputs = 2 * 2 * 3 * (5 + 2) * 2  # 2x2 grid, 3 anchors x 7, 2 steps
    assert head_last.ew_adds == outputs and head_last.ew_muls == 0
    assert head_mean.ew_adds == 2 * outputs and head_mean.ew_muls == outputs


# ------------------------------------------------------------------ transfer, training


def test_transfer_leaves_each_tau_path_at_init_and_says_so() -> None:
    torch.manual_seed(0)
    ann = YOLOv4Tiny(num_classes=2, width=0.25)
    paper = SPYv4(num_classes=2, width=0.25)
    for mode in ("spike", "depthwise", "coarse", "affine", "channel"):
        model = SPYv4(num_classes=2, width=0.25, tau_mode=mode)
        tau_before = {k: v.clone() for k, v in model.state_dict().items() if "tau" in k}
        report = transfer_weights(model, ann.state_dict())
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in tau_before.items())
        assert any(f"model.tau_mode={mode}" in note and "initial values" in note for note in report.notes)
        assert set(tau_before) <= set(report.left_at_init)
        assert model.conv2.conv.weight.equal(ann.conv2.conv.weight)
    # a SPYv4 source of the paper's mode: a depthwise tau path of another shape is skipped
    model = SPYv4(num_classes=2, width=0.25, tau_mode="depthwise")
    report = transfer_weights(model, paper.state_dict())
    skipped = dict(report.skipped)
    assert "conv1.tau_conv.weight" in skipped and "another model.tau_mode" in skipped["conv1.tau_conv.weight"]
    assert model.conv1.tau_bn.running_var.equal(paper.conv1.tau_bn.running_var)  # same shape: loaded


@pytest.mark.parametrize("method", ["fptt", "bptt"])
@pytest.mark.parametrize("mode", ["spike", "depthwise", "coarse", "affine", "channel"])
def test_each_mode_trains_with_fptt_and_bptt(make_tiny_config, tmp_path: Path, mode: str, method: str) -> None:
    from spyolo.train.trainer import Trainer

    cfg = make_tiny_config({"model.tau_mode": mode, "train.method": method, "train.epochs": 1,
                            "train.max_iters_per_epoch": 2, "eval.max_images": 2})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        tau = [p for n, p in trainer.core.named_parameters() if "tau" in n]
        before = [p.detach().clone() for p in tau]
        row = trainer.fit()
    finally:
        trainer.close()
    assert math.isfinite(row["loss"])
    assert sum(not torch.equal(a, b) for a, b in zip(before, tau)) > 0, "the tau path was not trained"


# ------------------------------------------------------------------------- ONNX export


def _export_matches_pytorch(ckpt: Path, onnx_path: Path, spike_layers: tuple[int, ...] = (),
                           readout_states: bool = False) -> float:
    """Export ``ckpt``; its states are the membranes, the previous spikes of the ``spike_layers`` (those whose
    time constant reads them) and, with ``readout_states``, the mean read-out's running sums; three steps of the
    graph match PyTorch's (heads and membranes within 1e-4, spikes equal). Returns the spikes seen."""
    from spyolo.checkpoint import load_model
    from spyolo.export import OnnxDetector, export_onnx, read_sidecar
    from spyolo.snn.ltc import ltc_layers

    export_onnx(ckpt, onnx_path)
    names = [s["input"] for s in read_sidecar(onnx_path)["states"]]
    layer_states = [n for n in names if not n.startswith("readout")]
    assert layer_states == [f"v_{i}" for i in range(19)] + [f"s_{i}" for i in spike_layers]
    assert (len(layer_states) < len(names)) == readout_states, names
    model = load_model(ckpt).model.eval()
    layers = [layer for _n, layer in ltc_layers(model)]
    det = OnnxDetector(onnx_path, threads=1)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    states = det.zero_states(2)
    reset_states(model)
    fired = 0.0
    with torch.no_grad():
        for _t in range(3):
            want = model(images)
            heads, states = det.step(images.numpy(), states)
            for got, ref in zip(heads, want):
                assert np.abs(got - ref.numpy()).max() <= 1e-4
            for i, layer in enumerate(layers):
                assert np.abs(states[f"v_{i}"] - layer.v.numpy()).max() <= 1e-4
                if i in spike_layers:
                    assert np.array_equal(states[f"s_{i}"], layer.s.numpy())
                    fired += float(layer.s.sum())
    return fired


@pytest.mark.parametrize("mode", ["spike", "depthwise", "coarse", "affine", "channel"])
def test_onnx_export_of_each_mode_matches_pytorch(mode: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.25
    cfg.model.timesteps = 3
    cfg.model.tau_mode = mode
    ckpt = save_tiny_checkpoint(tmp_path / "m.pt", cfg, ["a", "b"])
    fired = _export_matches_pytorch(ckpt, tmp_path / "m.onnx", tuple(range(19)) if mode == "spike" else ())
    if mode == "spike":
        assert fired > 0


def test_streaming_detector_runs_every_mode(tmp_path: Path) -> None:
    from spyolo.inference import Detector

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
    for mode in ("spike", "depthwise", "coarse", "affine", "channel"):
        cfg = Config()
        cfg.data.img_size = 64
        cfg.model.width = 0.25
        cfg.model.timesteps = 2
        cfg.model.tau_mode = mode
        det = Detector.from_checkpoint(save_tiny_checkpoint(tmp_path / f"{mode}.pt", cfg, ["a"]), device="cpu",
                                       conf=0.05)
        stream = det.stream(1, warmup=1)
        first, second = stream.step(frame), stream.step(frame)
        assert first.image_size == second.image_size == (80, 100)
        set_ltc_backend(det.model, "fused-eager")
        again = det.predict([frame])[0]
        assert again.image_size == (80, 100)


@pytest.mark.parametrize("mode", ["spike", "channel"])
def test_recipe_transfer_distillation_and_mean_readout(make_tiny_config, tmp_path: Path, mode: str) -> None:
    """The training recipe (start from the ANN twin, distil from it, mean read-out) with another tau path."""
    from spyolo.checkpoint import save_checkpoint
    from spyolo.config import config_to_dict
    from spyolo.train.trainer import Trainer

    ann_cfg = make_tiny_config({"model.kind": "ann"})
    torch.manual_seed(5)
    teacher = build_model(ann_cfg.model, num_classes=8)
    source = tmp_path / "teacher.pt"
    save_checkpoint({"model": teacher.state_dict(), "config": config_to_dict(ann_cfg),
                     "class_names": ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]},
                    source)
    cfg = make_tiny_config({"model.tau_mode": mode, "model.init_from": str(source), "train.distill_from": str(source),
                            "model.readout": "mean", "train.epochs": 1, "train.max_iters_per_epoch": 2,
                            "eval.max_images": 2})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        assert trainer.core.conv2.conv.weight.shape == teacher.conv2.conv.weight.shape
        row = trainer.fit()
    finally:
        trainer.close()
    assert row["distill"] > 0 and math.isfinite(row["loss"])
    transfer = (tmp_path / "run" / "transfer.txt").read_text()
    assert f"model.tau_mode={mode}" in transfer and "initial values" in transfer


# ------------------------------------------------------------------ per-layer modes (tau_mode_layers)

HYBRID = {"block1": "coarse", "conv1": "coarse", "block1.c4": "depthwise", "neck2": "spike"}


def test_tau_mode_layers_sets_layers_and_blocks_and_a_layers_own_entry_wins() -> None:
    from spyolo.models import resolve_tau_modes
    from spyolo.snn.ltc import ltc_layers
    from spyolo.utils.choices import LTC_LAYER_NAMES

    modes = resolve_tau_modes("channel", HYBRID)
    assert tuple(modes) == LTC_LAYER_NAMES
    assert modes["conv1"] == modes["block1.c1"] == modes["block1.c3"] == "coarse"
    assert modes["block1.c4"] == "depthwise" and modes["neck2"] == "spike"
    assert {modes[n] for n in LTC_LAYER_NAMES if not n.startswith(("conv1", "block1", "neck2"))} == {"channel"}
    cfg = apply_overrides(Config(), ["model.tau_mode=channel", "model.width=0.25",
                                     "model.tau_mode_layers={block1: coarse, conv1: coarse, block1.c4: depthwise, "
                                     "neck2: spike}"])
    assert cfg.model.tau_mode_layers == HYBRID
    model = build_model(cfg.model, num_classes=2)
    assert [n for n, _ in ltc_layers(model)] == list(LTC_LAYER_NAMES)
    assert {n: layer.tau_mode for n, layer in ltc_layers(model)} == modes
    assert model.block1.c2.tau_conv.stride == (2, 2) and model.block1.c4.tau_conv.stride == (1, 1)
    assert model.tau_mode_layers == HYBRID
    assert "s" in model.neck2.memory_names and "s" not in model.conv2.memory_names
    assert all(not hasattr(layer, "tau_conv") for n, layer in ltc_layers(model) if modes[n] == "channel")
    # the paper's model is untouched by an empty map
    paper = build_model(apply_overrides(Config(), ["model.width=0.25"]).model, num_classes=2)
    assert {layer.tau_mode for _n, layer in ltc_layers(paper)} == {"ltc"}


def test_tau_mode_layers_errors_are_one_line_naming_the_entry(tmp_path: Path) -> None:
    from spyolo.models import resolve_tau_modes

    for override, words in (("model.tau_mode_layers={block4: coarse}", ["'block4'", "not an LTC layer", "block1"]),
                            ("model.tau_mode_layers={conv2: dense}", ["tau_mode_layers.conv2", "dense", "coarse"]),
                            ("model.tau_mode_layers=coarse", ["tau_mode_layers", "mapping"])):
        with pytest.raises(ConfigError) as err:
            apply_overrides(Config(), [override])
        message = str(err.value)
        assert all(w in message for w in words), message
        assert "\n" not in message
    with pytest.raises(ValueError, match="head1"):
        resolve_tau_modes("ltc", {"head1": "coarse"})
    with pytest.raises(ValueError, match="dense"):
        SPYv4(num_classes=2, width=0.25, tau_mode_layers={"conv1": "dense"})


def test_per_layer_modes_are_counted_per_layer() -> None:
    torch.manual_seed(0)
    model = SPYv4(num_classes=2, width=0.25, tau_mode="depthwise", tau_mode_layers=HYBRID).eval()
    sites = {s.name: s for s in conv_sites(model)}
    assert sites["neck2.tau_conv"].kind == "ac" and sites["conv2.tau_conv"].kind == "mac"
    steps = 2
    with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter, torch.no_grad():
        x = torch.rand(1, 3, 64, 64)
        reset_states(model)
        for _ in range(steps):
            model(x)
        report = build_spike_report(monitor, counter, steps, 64, 1.0)
        totals = counter.totals()
    rows = {r.name: r for r in report.layers}
    assert rows["block1.c2"].tau_mode == "coarse" and rows["block1.c4"].tau_mode == "depthwise"
    # block1.c2: 8 channels at 16x16 (64 px / 4); coarse: a 3x3 depthwise filter at stride 2 -> 8x8 outputs
    assert totals["block1.c2.tau_conv"].macs == steps * 8 * 8 * 8 * 9
    assert totals["block1.c4.tau_conv"].macs == steps * 16 * 16 * 16 * 9
    for name in ("block1.c2", "neck2", "conv2"):
        adds, muls = NEURON_UPDATE_OPS[rows[name].tau_mode]
        assert rows[name].ew_muls == rows[name].neurons * steps * muls


def test_transfer_says_which_modes_keep_their_tau_path_at_init() -> None:
    torch.manual_seed(0)
    ann = YOLOv4Tiny(num_classes=2, width=0.25)
    model = SPYv4(num_classes=2, width=0.25, tau_mode="ltc", tau_mode_layers={"block2": "channel"})
    report = transfer_weights(model, ann.state_dict())
    assert any("model.tau_mode=channel" in note and "initial values" in note for note in report.notes)
    assert "block2.c1.tau_param" in report.left_at_init


def test_a_per_layer_model_trains_checkpoints_and_exports(make_tiny_config, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from spyolo.checkpoint import load_model
    from spyolo.export import OnnxDetector, export_onnx, read_sidecar
    from spyolo.snn.ltc import ltc_layers
    from spyolo.train.trainer import Trainer

    cfg = make_tiny_config({"model.tau_mode": "depthwise", "model.tau_mode_layers": HYBRID, "train.epochs": 1,
                            "train.max_iters_per_epoch": 2, "eval.max_images": 2})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        row = trainer.fit()
    finally:
        trainer.close()
    assert math.isfinite(row["loss"])
    ckpt = tmp_path / "run" / "weights" / "last.pt"
    model = load_model(ckpt).model.eval()
    assert {n: layer.tau_mode for n, layer in ltc_layers(model)}["block1.c1"] == "coarse"
    onnx_path = export_onnx(ckpt, tmp_path / "m.onnx")
    assert [s["input"] for s in read_sidecar(onnx_path)["states"]][19:] == ["s_18"]  # neck2, the 19th layer
    det = OnnxDetector(onnx_path, threads=1)
    size = cfg.data.img_size
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    states = det.zero_states(1)
    reset_states(model)
    with torch.no_grad():
        for _t in range(2):
            want = model(images)
            heads, states = det.step(images.numpy(), states)
            for got, ref in zip(heads, want):
                assert np.abs(got - ref.numpy()).max() <= 1e-4


# ------------------------------------------------------- counts pinned before the modes became data

PINNED_COUNTS = {
    # (ACs, MACs, elementwise adds, elementwise muls, ACs of the tau convolutions, MACs of the tau convolutions,
    # spikes), per image over 3 steps, of the float64 SPYv4 of _pinned_counts: measured with the string-branch
    # implementation of the modes, before they became the table spyolo.utils.tau_modes.TAU_MODE_TABLE
    "ltc": (2876722, 23224320, 752492, 219648, 0, 23003136, 17562),
    "spike": (4623190, 221184, 642668, 219648, 1829552, 0, 17301),
    "depthwise": (2790629, 1209600, 752492, 219648, 0, 988416, 17536),
    "coarse": (2721901, 468288, 670124, 219648, 0, 247104, 17126),
    "affine": (2154322, 331008, 752492, 219648, 0, 109824, 14071),
    "channel": (2941673, 221184, 423020, 109824, 0, 0, 18165),
    "hybrid": (2904849, 850176, 712556, 219648, 115584, 628992, 17283),  # depthwise with HYBRID's layers
}


def _pinned_counts(mode: str, layers: dict[str, str] | None = None) -> tuple[int, ...]:
    """Counts of a tiny float64 SPYv4 (width 0.25, 64 px, threshold 0.5, T = 3) whose BN statistics come
    from two train-mode steps on a seeded batch: float64, so that no spike sits within rounding of the threshold."""
    torch.manual_seed(0)
    model = SPYv4(num_classes=2, width=0.25, tau_mode=mode, tau_mode_layers=layers, threshold=0.5).double()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None
    generator = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        reset_states(model)
        x = torch.rand(2, 3, 64, 64, generator=generator, dtype=torch.float64)
        for _ in range(2):
            model(x)
    model.eval()
    x = torch.rand(1, 3, 64, 64, generator=generator, dtype=torch.float64)
    with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter, torch.no_grad():
        model.run(x, 3)
        report = build_spike_report(monitor, counter, 3, 64, 1.0)
        totals = counter.totals()
    tau = [t for name, t in totals.items() if name.endswith(".tau_conv")]
    return (int(report.total_acs), int(report.total_macs), int(report.total_ew_adds), int(report.total_ew_muls),
            sum(t.acs for t in tau), sum(t.macs for t in tau), int(report.total_spikes))


@pytest.mark.parametrize("mode", list(PINNED_COUNTS))
def test_counts_and_spikes_of_every_mode_are_the_pinned_ones(mode: str) -> None:
    """Every mode runs and counts as it did before the modes became data (the same spikes, ACs, MACs and
    elementwise work on the same model), and every mode of the table is pinned here."""
    assert set(PINNED_COUNTS) == {*TAU_MODES, "hybrid"}
    got = _pinned_counts("depthwise", HYBRID) if mode == "hybrid" else _pinned_counts(mode)
    assert got == PINNED_COUNTS[mode]


# --------------------------------------------------------------------- the modes as data (TAU_MODE_TABLE)

# A mode no entry has: the previous spikes through a 1x1 depthwise convolution at stride 2 (one time constant
# per 2x2 block, accumulate-only). Registered only inside the tests below (monkeypatch restores the table).
THROWAWAY = "spike_coarse_test"
THROWAWAY_ENTRY = TauMode(input="spikes", adds=4, muls=2, kernel=1, depthwise=True, stride=2)


@pytest.fixture
def throwaway_mode(monkeypatch):
    monkeypatch.setitem(TAU_MODE_TABLE, THROWAWAY, THROWAWAY_ENTRY)
    yield THROWAWAY
    assert THROWAWAY in TAU_MODES  # still registered until monkeypatch's teardown


def test_the_table_is_what_the_layers_build_and_the_counters_read() -> None:
    from spyolo.utils import choices

    assert choices.TAU_MODES is TAU_MODES and list(TAU_MODES) == list(TAU_MODE_TABLE)
    assert list(TAU_MODES)[0] == DEFAULT_TAU_MODE == "ltc"
    for mode, entry in TAU_MODE_TABLE.items():
        layer = LTCConv2d(4, 6, 3, tau_mode=mode)
        assert layer.tau_spec is entry
        assert layer.memory_names == ("v", *entry.states)
        assert NEURON_UPDATE_OPS[mode] == (entry.adds, entry.muls)
        if entry.has_conv:
            assert layer.tau_conv.kernel_size == (entry.kernel, entry.kernel)
            assert layer.tau_conv.stride == (entry.stride, entry.stride)
            assert layer.tau_conv.groups == (6 if entry.depthwise else 1)
            assert not hasattr(layer, "tau_param")
        else:
            assert not hasattr(layer, "tau_conv") and not hasattr(layer, "tau_bn")
    assert dict(NEURON_UPDATE_OPS) == {m: (e.adds, e.muls) for m, e in TAU_MODE_TABLE.items()}
    assert [TAU_MODE_TABLE[m].conv_ops for m in ("ltc", "spike", "channel")] == ["mac", "ac", None]


def test_a_table_entry_is_checked_and_an_unknown_name_is_one_line() -> None:
    for bad, words in (({"input": "image"}, "input must be one of"), ({"kernel": 2}, "positive odd"),
                       ({"stride": 0}, "stride must be >= 1"), ({"adds": -1}, "adds and muls")):
        with pytest.raises(ValueError, match=words):
            TauMode(**{"input": "sum", "adds": 5, "muls": 2, **bad})
    with pytest.raises(ValueError) as err:
        tau_mode_entry("dense")
    assert str(err.value) == ("unknown tau_mode 'dense'; valid values are "
                              "['ltc', 'spike', 'depthwise', 'coarse', 'affine', 'channel']")


def test_a_layer_pickled_without_its_spec_gets_it_from_the_table() -> None:
    import pickle

    layer = LTCConv2d(2, 3, 3, tau_mode="coarse")
    state = layer.__getstate__()
    del state["tau_spec"], state["tau_mode"]  # as pickled before the attributes existed
    old = LTCConv2d.__new__(LTCConv2d)
    old.__setstate__(state)
    assert old.tau_mode == "ltc" and old.tau_spec is TAU_MODE_TABLE["ltc"]
    again = pickle.loads(pickle.dumps(layer))
    assert again.tau_spec == TAU_MODE_TABLE["coarse"]


def test_a_throwaway_mode_runs_by_hand(throwaway_mode: str) -> None:
    """The registered entry's dynamics on a 3x3 map: the time constant of neuron (y, x) is the 1x1 depthwise
    convolution of the previous spikes at (2 (y // 2), 2 (x // 2)), its batch norm the identity."""
    layer = LTCConv2d(1, 2, 1, bias=False, threshold=THETA, tau_mode=throwaway_mode).double().eval()
    assert layer.memory_names == ("v", "s") and layer.tau_conv.weight.shape == (2, 1, 1, 1)
    weights, biases, w_syn = (0.8, -1.5), (0.3, 0.6), (1.2, 0.7)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.tensor(w_syn, dtype=torch.float64).view(2, 1, 1, 1))
        _identity_bns(layer.bn, layer.tau_bn)
        layer.tau_conv.weight.copy_(torch.tensor(weights, dtype=torch.float64).view(2, 1, 1, 1))
        layer.tau_conv.bias.copy_(torch.tensor(biases, dtype=torch.float64))
    x = torch.tensor([[0.9, 0.3, 1.0], [0.05, 0.7, 0.45], [0.6, 0.2, 0.8]], dtype=torch.float64)
    u = torch.zeros(2, 3, 3, dtype=torch.float64)
    s = torch.zeros(2, 3, 3, dtype=torch.float64)
    fired = 0.0
    with torch.no_grad():
        for _step in range(4):
            out = layer(x.view(1, 1, 3, 3))
            new_s, new_u = torch.zeros_like(s), torch.zeros_like(u)
            for c in range(2):
                for y in range(3):
                    for i in range(3):
                        tau = _sigmoid(weights[c] * float(s[c, 2 * (y // 2), 2 * (i // 2)]) + biases[c])
                        current = w_syn[c] * float(x[y, i])
                        pre = float(u[c, y, i]) + tau * (current - float(u[c, y, i]))
                        new_s[c, y, i] = 1.0 if pre > THETA else 0.0
                        new_u[c, y, i] = pre * (1.0 - float(new_s[c, y, i]))
            s, u = new_s, new_u
            assert torch.equal(out[0], s) and torch.equal(layer.s[0], s)
            torch.testing.assert_close(layer.v[0], u, rtol=0, atol=1e-12)
            fired += float(s.sum())
    assert 0 < fired < 4 * 18  # some neurons fire, not all: the spikes reach the time constant


def test_a_throwaway_mode_builds_runs_counts_and_exports(throwaway_mode: str, tmp_path: Path) -> None:
    """One table entry is a whole mode: the config accepts it, SPYv4 builds and runs it (both backends, the
    same spikes), the counters count it as its entry says, and the ONNX export keeps its state."""
    cfg = apply_overrides(Config(), [f"model.tau_mode={throwaway_mode}", "model.width=0.25", "data.img_size=64",
                                     "model.timesteps=3"])
    torch.manual_seed(0)
    model = calibrate_bn(build_model(cfg.model, num_classes=2), 3, 64).eval()
    assert all(layer.tau_mode == throwaway_mode and "s" in layer.memory_names
               for m in model.modules() if isinstance(layer := m, LTCConv2d))
    assert model.conv2.tau_conv.stride == (2, 2) and model.conv2.tau_conv.weight.shape[1:] == (1, 1, 1)
    per_layer = apply_overrides(Config(), ["model.width=0.25", f"model.tau_mode_layers={{neck2: {throwaway_mode}}}"])
    assert build_model(per_layer.model, num_classes=2).neck2.tau_spec is THROWAWAY_ENTRY
    sites = {s.name: s for s in conv_sites(model)}
    assert sites["conv2.tau_conv"].kind == "ac" and sites["conv1.tau_conv"].kind == "ac"
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter, torch.no_grad():
        reset_states(model)
        outs, spikes_in = [], {}
        taps = {name: m.register_forward_hook(lambda mod, i, o, name=name: spikes_in.setdefault(name, []).append(
            i[0].clone())) for name, m in model.named_modules() if name.endswith(".tau_conv")}
        for _ in range(3):
            outs.append(model(x))
        for handle in taps.values():
            handle.remove()
        report = build_spike_report(monitor, counter, 3, 64, 1.0)
        totals = counter.totals()
    # each tau convolution reads the previous spikes (zeros at the first step) at every other row and column
    for name, inputs in spikes_in.items():
        assert torch.equal(inputs[0], torch.zeros_like(inputs[0]))
        expected = sum(int(s[:, :, ::2, ::2].sum()) for s in inputs)
        assert totals[name].acs == expected and totals[name].macs == 0, name
    assert sum(totals[n].acs for n in spikes_in) > 0
    rows = {r.name: r for r in report.layers}
    conv2 = rows["conv2"]  # 16 channels at 16x16: tau outputs 16 x 8 x 8 per step
    outputs = totals["conv2.conv"].outputs + totals["conv2.tau_conv"].outputs
    assert totals["conv2.tau_conv"].outputs == 3 * 16 * 8 * 8 and conv2.neurons == 16 * 16 * 16
    assert conv2.ew_adds == outputs + 3 * conv2.neurons * THROWAWAY_ENTRY.adds
    assert conv2.ew_muls == 3 * conv2.neurons * THROWAWAY_ENTRY.muls
    assert f"tau_mode {throwaway_mode}" in report.format_table()
    # the fused update gives the same spikes
    set_ltc_backend(model, "fused-eager")
    with torch.no_grad():
        fused = model.run(x, 3, return_all=True)
    set_ltc_backend(model, "reference")
    for (a1, a2), (b1, b2) in zip(outs, fused):
        torch.testing.assert_close(b1, a1, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b2, a2, rtol=1e-5, atol=1e-5)
    test_fused_gradients_match_autograd_in_float64(throwaway_mode)  # and its backward, under BPTT and FPTT
    # a checkpoint of the mode loads; its export keeps the previous spikes as states and matches PyTorch
    ckpt = save_tiny_checkpoint(tmp_path / "m.pt", cfg, ["a", "b"])
    from spyolo.checkpoint import load_model

    loaded = load_model(ckpt).model.eval()
    assert loaded.conv2.tau_spec is THROWAWAY_ENTRY
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return
    assert _export_matches_pytorch(ckpt, tmp_path / "m.onnx", tuple(range(19))) > 0


def test_the_throwaway_mode_is_gone_after_its_tests() -> None:
    assert THROWAWAY not in TAU_MODES and THROWAWAY not in NEURON_UPDATE_OPS
    with pytest.raises(ConfigError, match="model.tau_mode must be one of"):
        apply_overrides(Config(), [f"model.tau_mode={THROWAWAY}"])


@pytest.mark.parametrize("mode", [*TAU_MODES, THROWAWAY])
def test_neutral_tau_gives_one_half_in_every_mode_and_stays_learnable(mode: str, monkeypatch) -> None:
    from spyolo.snn.ltc import neutral_tau

    monkeypatch.setitem(TAU_MODE_TABLE, THROWAWAY, THROWAWAY_ENTRY)
    torch.manual_seed(0)
    layer = LTCConv2d(2, 3, 3, threshold=0.4, tau_mode=mode).double().eval()
    neutral_tau(layer)
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    current = layer.bn(layer.conv(x)).detach()
    u = torch.zeros_like(current)
    loss = 0.0
    for _ in range(3):
        out = layer(x)
        pre = u + 0.5 * (current - u)  # tau = 0.5 for every neuron, whatever the path computes
        spikes = (pre > 0.4).double()
        u = pre * (1.0 - spikes)
        assert torch.equal(out.detach(), spikes)
        torch.testing.assert_close(layer.v.detach(), u, rtol=0, atol=1e-12)
        loss = loss + (out * torch.arange(out.numel(), dtype=torch.float64).view_as(out)).sum() + layer.v.sum()
    assert 0 < float(u.numel() - (u == 0).sum()) and float(spikes.sum()) > 0
    loss.backward()
    neutral = [layer.tau_param] if not layer.tau_spec.has_conv else [layer.tau_bn.weight, layer.tau_bn.bias]
    assert all(float(p.detach().abs().sum()) == 0 for p in neutral)
    assert sum(float(p.grad.abs().sum()) for p in neutral) > 0  # the gradient moves tau off 0.5


def test_onnx_export_of_the_lowpower_preset_matches_pytorch(tmp_path: Path) -> None:
    """The named low-power recipe (configs/real_recipe_lowpower.yaml: depthwise time constants, a
    spike-driven one in the first layer) exports to ONNX like the others, at a test-sized width."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from spyolo.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "real_recipe_lowpower.yaml",
                      ["data.img_size=64", "model.width=0.25", "model.timesteps=3"])
    assert cfg.model.tau_mode == "depthwise" and cfg.model.tau_mode_layers == {"conv1": "spike"}
    ckpt = save_tiny_checkpoint(tmp_path / "lowpower.pt", cfg, ["a", "b"])
    fired = _export_matches_pytorch(ckpt, tmp_path / "lowpower.onnx", spike_layers=(0,), readout_states=True)
    assert fired > 0
