"""The energy term of the loss (train.energy_weight): the same count as spyolo eval's, differentiable."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import calibrate_bn
from spyolo.config import Config, apply_overrides
from spyolo.errors import ConfigError
from spyolo.models import SPYv4
from spyolo.snn import reset_states
from spyolo.stats.energy import HOROWITZ_45NM
from spyolo.stats.sops import SynOpCounter, ann_twin, count_dense_ops
from spyolo.train.energy import EnergyTerm, twin_energy_pj


@pytest.mark.parametrize("tau_mode", ["ltc", "spike"])
def test_energy_term_is_the_spike_counters_ac_energy_over_the_twins(tau_mode: str) -> None:
    torch.manual_seed(0)
    model = calibrate_bn(SPYv4(num_classes=3, width=0.25, threshold=0.5, tau_mode=tau_mode))
    model.train()
    term = EnergyTerm(model, 64, weight=2.0)
    images = torch.rand(3, 3, 64, 64)
    with SynOpCounter(model) as counter:
        reset_states(model)
        ratios = []
        for _ in range(2):
            term.armed = True
            model(images)
            term.armed = False
            ratios.append(term.take_ratio())
        totals = counter.totals()
    acs_per_image = sum(t.acs for t in totals.values()) / images.shape[0]
    assert acs_per_image > 0
    dense = count_dense_ops(ann_twin(model), 64)
    twin_pj = (dense.macs * 4.6 + dense.adds * 0.9 + dense.muls * 3.7)
    assert term.twin_pj == pytest.approx(twin_pj, rel=1e-9) and twin_energy_pj(model, 64) == term.twin_pj
    # summed over the steps: the counter's exact ACs of the spike-driven sites, priced at 0.9 pJ, per image
    total = float(sum(r.detach() for r in ratios))
    assert total == pytest.approx(acs_per_image * HOROWITZ_45NM.ac_pj / twin_pj, rel=1e-5)
    if tau_mode == "spike":  # the spike-driven time-constant paths are counted too
        assert any(s.role == "tau" for s in term.sites)
    else:
        assert not any(s.role == "tau" for s in term.sites)
    assert all(s.name != "conv1.conv" for s in term.sites)  # the first layer reads pixels: MACs, no gradient


def test_energy_term_carries_the_gradient_to_the_layers_that_fire() -> None:
    torch.manual_seed(0)
    model = calibrate_bn(SPYv4(num_classes=3, width=0.25, threshold=0.5))
    model.train()
    term = EnergyTerm(model, 64, weight=1.0)
    reset_states(model)
    term.armed = True
    model(torch.rand(2, 3, 64, 64))
    term.armed = False
    ratio = term.take_ratio()
    ratio.backward()
    grad = model.conv1.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert term.take_ratio() is None  # handed over and forgotten


def test_energy_term_records_nothing_disarmed_or_without_gradients() -> None:
    model = calibrate_bn(SPYv4(num_classes=3, width=0.25, threshold=0.5))
    term = EnergyTerm(model, 64, weight=1.0)
    reset_states(model)
    model(torch.rand(1, 3, 64, 64))
    assert term.take_ratio() is None
    term.armed = True
    with torch.no_grad():
        reset_states(model)
        model(torch.rand(1, 3, 64, 64))
    assert term.take_ratio() is None
    term.remove()
    reset_states(model)
    model(torch.rand(1, 3, 64, 64))
    assert term.take_ratio() is None


def test_energy_term_refuses_a_model_that_does_not_spike() -> None:
    with pytest.raises(ValueError, match="does not spike"):
        EnergyTerm(ann_twin(SPYv4(num_classes=3, width=0.25)), 64, weight=1.0)
    with pytest.raises(ValueError, match="weight"):
        EnergyTerm(SPYv4(num_classes=3, width=0.25), 64, weight=0.0)


def test_energy_weight_is_checked_in_the_config() -> None:
    for bad in ("-1", "nan"):
        with pytest.raises(ConfigError, match="train.energy_weight"):
            apply_overrides(Config(), [f"train.energy_weight={bad}"])


def test_training_with_the_energy_term_fires_less_and_logs_its_value(make_tiny_config, tmp_path) -> None:
    from spyolo.train.trainer import Trainer

    rows = {}
    for weight in (0.0, 30.0):
        cfg = make_tiny_config({"train.energy_weight": weight, "train.lr": 1e-2, "train.epochs": 3,
                                "eval.train_images": 0})
        tr = Trainer(cfg, tmp_path / f"run{weight}", progress=False)
        try:
            assert (tr.parts.energy is not None) == (weight > 0)
            rows[weight] = tr.fit()
        finally:
            tr.close()
    assert math.isnan(rows[0.0]["spike_energy"])
    assert rows[30.0]["spike_energy"] > 0
    # same seed, same batches: the term alone lowers the firing (0.043 -> 0.031 when written)
    assert rows[30.0]["firing_rate"] < 0.85 * rows[0.0]["firing_rate"]
    header = (tmp_path / "run30.0" / "results.csv").read_text().splitlines()[0].split(",")
    assert "spike_energy" in header


def test_the_twin_trained_from_the_same_file_ignores_the_energy_weight(make_tiny_config, tmp_path) -> None:
    from spyolo.train.trainer import Trainer

    cfg = make_tiny_config({"model.kind": "ann", "train.energy_weight": 1.0, "train.epochs": 1,
                            "eval.train_images": 0})
    tr = Trainer(cfg, tmp_path / "twin", progress=False)
    try:
        assert tr.parts.energy is None
        row = tr.fit()
    finally:
        tr.close()
    assert math.isnan(row["spike_energy"])
