"""The energy term: SPYv4's spike-driven energy as a differentiable part of the training loss.

spyolo counts SPYv4's energy in code (:mod:`spyolo.stats.sops`): a convolution that reads binary
spikes costs one accumulate (AC, 0.9 pJ) per spike, per output channel, per (output, kernel tap)
pair that reads the spike's position,

    ACs = C_out / groups * sum_{c, y, x} s[c, y, x] * taps(y, x),

a weighted sum of the spikes. The spikes carry the surrogate gradient, so the same count is
differentiable: with ``train.energy_weight`` = w > 0, every timestep's loss gains

    w * (AC energy of this step's spike-driven convolutions per image) / (the ANN twin's energy per image)

i.e. this step's share of the "x the twin's energy" that ``spyolo eval --spikes --twin`` reports,
read from the same sites (:func:`~spyolo.stats.sops.conv_sites`: every synaptic convolution but
the first layer's, the heads, a ``tau_mode=spike`` path) with the same tap maps
(:func:`~spyolo.stats.sops.tap_map`) and the same costs (:data:`~spyolo.stats.energy.HOROWITZ_45NM`).
The rest of SPYv4's energy (the first layer's and the analog time-constant paths' MACs, the
neurons' updates, the biases) does not depend on the firing and carries no gradient; it is not
in the term. The twin's energy per image is counted once, at the training input size, as
``spyolo eval`` counts it (:func:`~spyolo.stats.sops.count_dense_ops`).

Hooks record the spike-driven convolutions' inputs only while armed and while gradients are on
(never in evaluation); nothing is read back to the host inside the time loop.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from spyolo.stats.energy import HOROWITZ_45NM, EnergyCosts
from spyolo.stats.sops import ann_twin, conv_sites, count_dense_ops, tap_map

log = logging.getLogger(__name__)

__all__ = ["EnergyTerm", "twin_energy_pj"]


def twin_energy_pj(model: nn.Module, img_size: int, costs: EnergyCosts = HOROWITZ_45NM) -> float:
    """The energy in picojoules of one pass of ``model``'s ANN twin on one ``img_size`` image."""
    dense = count_dense_ops(ann_twin(model), img_size)
    return costs.energy_j(acs=0.0, macs=dense.macs, adds=dense.adds, muls=dense.muls) * 1e12


class EnergyTerm:
    """The weighted energy term of the module docstring for one timestep.

    Args:
        model: the SPYv4 being trained (hooks go on its spike-driven convolutions).
        img_size: the training input size (the twin's energy is counted there).
        weight: ``train.energy_weight`` (> 0).
        costs: energy per operation.

    Raises:
        ValueError: ``model`` is not spiking, or ``weight`` <= 0.
    """

    def __init__(self, model: nn.Module, img_size: int, weight: float, costs: EnergyCosts = HOROWITZ_45NM) -> None:
        core = model.module if hasattr(model, "module") else model
        if not getattr(core, "is_spiking", False):
            raise ValueError("EnergyTerm: the model does not spike (an ANN's energy does not depend on its activity)")
        if weight <= 0:
            raise ValueError(f"EnergyTerm: weight must be > 0, got {weight}")
        self.weight = float(weight)
        self.ac_pj = float(costs.ac_pj)
        self.twin_pj = twin_energy_pj(core, img_size, costs)
        self.armed = False
        self._recorded: list[torch.Tensor] = []
        self._taps: dict[tuple, torch.Tensor] = {}
        modules = dict(core.named_modules())
        self.sites = [s for s in conv_sites(core) if s.kind == "ac"]
        self._handles = [modules[s.name].register_forward_hook(self._hook) for s in self.sites]

    def _tap_map(self, conv: nn.Conv2d, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width, conv.kernel_size, conv.stride, conv.padding, conv.dilation, str(device))
        taps = self._taps.get(key)
        if taps is None:
            taps = tap_map(conv, height, width).to(device=device, dtype=torch.float32)
            self._taps[key] = taps
        return taps

    def _hook(self, module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        if not (self.armed and torch.is_grad_enabled()):
            return
        x = inputs[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            per_pos = x.float().sum(dim=1)  # (B, H, W): spikes per position, with their graph
            taps = self._tap_map(module, x.shape[-2], x.shape[-1], x.device)
            acs = (per_pos * taps).sum() * (module.out_channels // module.groups)
        self._recorded.append(acs / x.shape[0])

    def take_ratio(self) -> torch.Tensor | None:
        """The spike-driven energy per image of the forwards since the last call, over the twin's
        energy per image (a 0-dim float32 tensor with its graph), or None if nothing was recorded."""
        recorded, self._recorded = self._recorded, []
        if not recorded:
            return None
        return torch.stack(recorded).sum() * (self.ac_pj / self.twin_pj)

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._recorded = []
