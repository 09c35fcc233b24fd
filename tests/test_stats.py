"""Tests of the spike statistics: exact AC counts, MAC counts, firing rates, energy, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import calibrate_bn
from spyolo.models import SPYv4, YOLOv4Tiny
from spyolo.snn import reset_states
from spyolo.stats import (
    HOROWITZ_45NM,
    EnergyCosts,
    FiringRateMonitor,
    SynOpCounter,
    ann_twin,
    axis_taps,
    build_spike_report,
    conv_sites,
    count_macs,
    format_per_timestep_table,
    plot_map_per_timestep,
)

T = 2



def calibrated_spyv4(num_classes: int = 3, seed: int = 0) -> SPYv4:
    """A tiny SPYv4 (width 0.25) whose BN statistics come from random images, in eval mode."""
    torch.manual_seed(seed)
    return calibrate_bn(SPYv4(num_classes=num_classes, width=0.25), T).eval()


def run(model: nn.Module, batches: int = 2, batch: int = 3, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(batches):
            x = torch.rand(batch, 3, 64, 64, generator=gen)
            reset_states(model)
            for _ in range(T):
                model(x)


class _SpikeConv(nn.Module):
    """A stand-in spiking model: one convolution fed with spikes (an AC site)."""

    is_spiking = True

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# --------------------------------------------------------------------- exact ACs


def test_axis_taps_by_hand() -> None:
    assert axis_taps(4, 3, 1, 1) == [2, 3, 3, 2]
    assert axis_taps(4, 3, 2, 1) == [1, 2, 1, 1]  # outputs 0, 1 read inputs {-1,0,1} and {1,2,3}
    assert axis_taps(5, 3, 2, 0) == [1, 1, 2, 1, 1]
    assert axis_taps(5, 1, 1, 0) == [1, 1, 1, 1, 1]
    assert axis_taps(6, 3, 1, 2, dilation=2) == [2, 2, 3, 3, 2, 2]


def test_ac_count_of_single_spikes_by_hand() -> None:
    def acs(stride: int, positions: list[tuple[int, int]]) -> int:
        model = _SpikeConv(nn.Conv2d(1, 2, 3, stride, 1, bias=False))
        x = torch.zeros(1, 1, 4, 4)
        for y, xx in positions:
            x[0, 0, y, xx] = 1.0
        with SynOpCounter(model) as counter:
            model(x)
            return counter.totals()["conv"].acs

    # stride 1: a corner spike reaches 2x2 (output, tap) pairs, a centre spike 3x3; x 2 output channels
    assert acs(1, [(0, 0)]) == 8
    assert acs(1, [(1, 1)]) == 18
    assert acs(1, [(0, 0), (1, 1)]) == 26
    # stride 2 (taps per axis [1, 2, 1, 1]): (0,0) -> 1 pair, (1,1) -> 4, (3,3) -> 1, (1,3) -> 2
    assert acs(2, [(0, 0)]) == 2
    assert acs(2, [(1, 1)]) == 8
    assert acs(2, [(3, 3), (1, 3)]) == 2 + 4


# all-ones input on 9x11: C_out * C_in * (pairs along y) * (pairs along x); pairs for k=3, padding 1:
# stride 1: 3*9 - 2 = 25 and 3*11 - 2 = 31; stride 2 (5 x 6 outputs): 2+3+3+3+2 = 13 and 2+3*4+2 = 16.
@pytest.mark.parametrize(
    "stride,kernel,cin,cout,all_ones",
    [(1, 3, 4, 5, 5 * 4 * 25 * 31), (2, 3, 3, 8, 8 * 3 * 13 * 16), (1, 1, 6, 7, 7 * 6 * 9 * 11)],
)
def test_ac_count_equals_a_ones_kernel_convolution(stride: int, kernel: int, cin: int, cout: int,
                                                   all_ones: int) -> None:
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2)
    model = _SpikeConv(conv)
    gen = torch.Generator().manual_seed(stride * 10 + kernel)
    spikes = [(torch.rand(3, cin, 9, 11, generator=gen) < 0.3).float() for _ in range(2)]
    with SynOpCounter(model) as counter:
        for s in spikes:
            model(s)
        got = counter.totals()["conv"]
    ones = torch.ones(1, cin, kernel, kernel)
    expected = sum(int(F.conv2d(s, ones, stride=stride, padding=kernel // 2).sum()) * cout for s in spikes)
    assert got.acs == expected and got.macs == 0 and got.image_steps == 6
    # every input spiking: padding taps are not operations, so ACs < dense MACs unless k = 1
    with SynOpCounter(model) as counter:
        out = model(torch.ones(1, cin, 9, 11))
        assert counter.totals()["conv"].acs == all_ones
    assert (all_ones == out.numel() * cin * kernel * kernel) == (kernel == 1)


def test_counts_are_exact_under_bf16_autocast() -> None:
    model = calibrated_spyv4()
    modules = dict(model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {"block3.c1.conv": [], "neck2.conv": []}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen[n].append(i[0].clone())) for n in seen]
    with SynOpCounter(model) as counter, torch.autocast("cpu", dtype=torch.bfloat16):
        run(model, batches=1)
        got = counter.totals()
    for h in handles:
        h.remove()
    for name, inputs in seen.items():
        conv = modules[name]
        assert inputs[0].dtype == torch.bfloat16  # spikes travel in bf16 under autocast
        ones = torch.ones(1, conv.in_channels, 3, 3)
        expected = sum(int(F.conv2d(x.float(), ones, padding=1).sum()) * conv.out_channels for x in inputs)
        assert got[name].acs == expected > 256  # beyond bf16's exact integers: counted in int64
    # conv1 reads the same image at every step: its current is computed once per image
    assert got["conv1.conv"].macs == 3 * 32 * 32 * 8 * 27 and got["conv1.conv"].image_steps == T * 3


# ------------------------------------------------------------- sites on SPYv4


def test_sites_of_spyv4_and_the_ann_twin() -> None:
    model = SPYv4(num_classes=3, width=0.25)
    sites = {s.name: s for s in conv_sites(model)}
    assert len(sites) == 2 * 19 + 2
    assert (sites["conv1.conv"].kind, sites["conv1.tau_conv"].kind) == ("mac", "mac")  # pixels, I + u
    assert (sites["conv2.conv"].kind, sites["conv2.tau_conv"].kind) == ("ac", "mac")
    assert sites["block2.c3.conv"].layer == "block2.c3" and sites["block2.c3.conv"].role == "synaptic"
    assert sites["head1"].kind == sites["head2"].kind == "ac" and sites["head1"].role == "head"
    assert sum(s.kind == "ac" for s in sites.values()) == 18 + 2
    twin = conv_sites(ann_twin(model))
    assert len(twin) == 19 + 2 and {s.kind for s in twin} == {"mac"}
    with pytest.raises(ValueError, match="unknown LTC layers"):
        conv_sites(model, analog_inputs=["nope"])


def test_spike_driven_sites_really_read_binary_inputs() -> None:
    model = calibrated_spyv4()
    modules = dict(model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {}
    handles = [
        modules[s.name].register_forward_hook(lambda m, i, o, n=s.name: seen.setdefault(n, []).append(i[0].clone()))
        for s in conv_sites(model) if s.kind == "ac"
    ]
    with SynOpCounter(model) as counter:
        run(model, batches=1)
        totals = counter.totals()
    for h in handles:
        h.remove()
    assert len(seen) == 20
    for name, inputs in seen.items():
        conv = modules[name]
        assert all(bool(((x == 0) | (x == 1)).all()) for x in inputs), name
        ones = torch.ones(1, conv.in_channels, *conv.kernel_size)
        expected = sum(
            int(F.conv2d(x, ones, stride=conv.stride, padding=conv.padding).sum()) * conv.out_channels for x in inputs
        )
        assert totals[name].acs == expected, name
    assert sum(t.acs for t in totals.values()) > 0  # the calibrated network fires


def test_mac_counts_by_hand() -> None:
    model = calibrated_spyv4()
    with SynOpCounter(model) as counter:
        run(model, batches=2, batch=3)
        totals = counter.totals()
    steps = 2 * 3 * T  # image-steps
    # conv1: 3 -> 8 channels, 3x3, stride 2 on 64x64 -> 32x32x8 outputs, 27 MACs each, once per image
    # (a still image: the layer holds its current over the T steps)
    assert totals["conv1.conv"].macs == 2 * 3 * 32 * 32 * 8 * 27
    # its tau path: 8 -> 8 channels, 3x3, at 32x32
    assert totals["conv1.tau_conv"].macs == steps * 32 * 32 * 8 * 72
    # conv_up's tau path runs at the upsampled 4x4 resolution (P5 is 2x2 at 64 px), 32 channels
    assert totals["conv_up.tau_conv"].macs == steps * 4 * 4 * 32 * 32 * 9
    assert totals["conv2.conv"].macs == 0 and totals["head1"].macs == 0
    assert {t.image_steps for t in totals.values()} == {steps}


def test_first_layer_counted_at_every_step_when_it_computes_its_current_every_step() -> None:
    model = calibrated_spyv4()
    model.conv1.hold_current = False  # as in training, or for event frames
    with SynOpCounter(model) as counter:
        run(model, batches=2, batch=3)
        totals = counter.totals()
    assert totals["conv1.conv"].macs == 2 * 3 * T * 32 * 32 * 8 * 27
    assert totals["conv1.conv"].outputs == 2 * 3 * T * 32 * 32 * 8
    # a fresh tensor at every step (the frames of an event sequence) is never held either
    model.conv1.hold_current = True
    with SynOpCounter(model) as counter, torch.no_grad():
        x = torch.rand(3, 3, 64, 64)
        reset_states(model)
        for _ in range(T):
            model(x.clone())
        assert counter.totals()["conv1.conv"].macs == 3 * T * 32 * 32 * 8 * 27


def test_dense_count_matches_the_reference_and_flop_counter() -> None:
    # Reference section 2: one SPYv4 timestep at 416 px, C=20 costs 17.18 GFLOP (MAC = 2 FLOP).
    dense = sum(count_macs(SPYv4(num_classes=20, width=1.0), 416).values())
    assert round(2 * dense / 1e9, 2) == 17.18
    # The ANN twin agrees exactly with torch's FLOP counter (convolutions only, 2 FLOP per MAC).
    twin = YOLOv4Tiny(num_classes=3, width=0.25).eval()
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        twin(torch.zeros(1, 3, 64, 64))
    assert 2 * sum(count_macs(twin, 64).values()) == flops.get_total_flops()


def test_hooks_do_not_read_back_to_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    model = calibrated_spyv4()
    monitor, counter = FiringRateMonitor(model), SynOpCounter(model)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("host read-back inside the time loop")

    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "cpu", "__float__", "__int__", "__bool__"):
            patch.setattr(torch.Tensor, name, forbidden)
        run(model, batches=1)
    assert counter.totals()["conv2.conv"].acs > 0 and monitor.mean_rate() > 0
    monitor.close()
    counter.close()


# ---------------------------------------------------------------- report, energy


def test_energy_costs() -> None:
    assert HOROWITZ_45NM.ac_pj == 0.9 and HOROWITZ_45NM.mac_pj == 4.6
    assert "Horowitz" in HOROWITZ_45NM.source and "ISSCC 2014" in HOROWITZ_45NM.source
    assert HOROWITZ_45NM.energy_j(1e6, 0) == pytest.approx(0.9e-6)
    assert HOROWITZ_45NM.energy_j(0, 1e6) == pytest.approx(4.6e-6)
    assert EnergyCosts(ac_pj=1.0, mac_pj=2.0).energy_j(3, 4) == pytest.approx(11e-12)
    with pytest.raises(ValueError):
        EnergyCosts(ac_pj=-1.0)


def test_spike_report(tmp_path: Path) -> None:
    model = calibrated_spyv4()
    monitor, counter = FiringRateMonitor(model), SynOpCounter(model)
    run(model, batches=2, batch=3)
    ann = sum(count_macs(ann_twin(model), 64).values())
    report = build_spike_report(monitor, counter, T, 64, ann)
    rates = monitor.rates()
    firing = monitor.totals()
    monitor.close()
    counter.close()

    assert report.num_images == 6 and report.timesteps == T
    names = [r.name for r in report.layers]
    assert names[:3] == ["conv1", "conv2", "block1.c1"] and names[-3:] == ["head1", "conv_up", "neck2", "head2"][1:]
    assert len(names) == 21 and names.index("head1") == names.index("neck1") + 1
    rows = {r.name: r for r in report.layers}
    assert rows["conv1"].neurons == 32 * 32 * 8 and rows["conv_up"].neurons == 4 * 4 * 32
    assert report.total_neurons == sum(n for _, n, _ in firing.values()) // (6 * T)
    for name, rate in rates.items():
        assert rows[name].firing_rate == pytest.approx(rate)
        assert rows[name].spikes == pytest.approx(firing[name][0] / 6)
    # conv1 MACs per image over T steps: synaptic 32*32*8*27 once (the held current of the still image)
    # + tau 32*32*8*72 at each step
    assert rows["conv1"].macs == 32 * 32 * 8 * (27 + T * 72) and rows["conv1"].acs == 0
    # a 1x1 head reads every spike of its neck once per output channel: 3 anchors x (5 + 3)
    assert rows["head1"].acs == pytest.approx(rows["neck1"].spikes * 24)
    assert rows["head2"].acs == pytest.approx(rows["neck2"].spikes * 24)
    assert report.mean_firing_rate == pytest.approx(report.total_spikes / (report.total_neurons * T))
    assert report.synaptic_energy_j == pytest.approx(report.total_acs * 0.9e-12 + report.total_macs * 4.6e-12)
    # elementwise work of conv1 by hand: a bias addition per output of its synaptic convolution (once)
    # and of its tau convolution and the paper's membrane update (5 additions, 2 multiplications) per
    # neuron, at each of the T steps
    assert rows["conv1"].ew_adds == 32 * 32 * 8 * (1 + T * (1 + 5)) and rows["conv1"].ew_muls == T * 32 * 32 * 8 * 2
    assert rows["head1"].ew_adds == T * 2 * 2 * 24 and rows["head1"].ew_muls == 0  # head bias, 2x2 grid
    assert report.energy_j == pytest.approx(
        report.synaptic_energy_j + report.total_ew_adds * 0.9e-12 + report.total_ew_muls * 3.7e-12)
    assert report.ann_energy_j == pytest.approx(ann * 4.6e-12)

    table = report.format_table()
    assert "conv1" in table and "head2" in table and "energy SNN / ANN" in table and "Horowitz" in table
    data = json.loads(report.write_json(tmp_path / "s.json").read_text())
    assert data["totals"]["acs"] == pytest.approx(report.total_acs)
    assert data["ann_twin"]["macs"] == ann and len(data["layers"]) == 21
    with open(report.write_csv(tmp_path / "s.csv"), newline="") as fh:
        table_rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in table_rows] == names + ["total"]
    assert float(table_rows[-1]["acs_per_image"]) == pytest.approx(report.total_acs)
    assert float(table_rows[0]["macs_per_image"]) == rows["conv1"].macs


def test_report_needs_counts() -> None:
    model = calibrated_spyv4()
    with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter:
        with pytest.raises(ValueError, match="no forward pass was counted"):
            build_spike_report(monitor, counter, T, 64, 1.0)


def test_per_timestep_table_and_plot(tmp_path: Path) -> None:
    rows = [{"t": 1, "map_voc07": 0.1234, "map_area": 0.2}, {"t": 2, "map_voc07": 0.5, "map_area": 0.5556}]
    lines = format_per_timestep_table(rows).splitlines()
    assert lines[2].split() == ["1", "12.34", "20.00"]
    assert lines[3].split() == ["2", "50.00", "55.56"]
    png = plot_map_per_timestep(rows, tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        plot_map_per_timestep([], tmp_path / "n.png")
