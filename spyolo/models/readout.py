"""How the heads' outputs are read over the timesteps: the last step's (the release), or their mean.

SPYv4's heads are 1x1 convolutions on the *binary* spikes of the current timestep. The released
model reads only the last step's heads. Because the heads are linear, the mean of their outputs
over the steps run so far equals the heads applied to the neurons' firing rates: a rate-coded
read-out (the released code defines a leaky read-out neuron for this and leaves it unused).
``model.readout=mean`` makes every step's output that running mean; training (each step's loss),
evaluation, the :class:`~spyolo.inference.Detector` and export all see it, with nothing else
changed. Under FPTT the mean of the earlier steps is a detached constant at step ``t`` (the
states are truncated to one step), so step ``t``'s gradient reaches its own outputs with weight
``1 / t``.

The running sum and the step count are neuron-like state (:class:`~spyolo.snn.StatefulModule`):
``reset_states`` clears them, ``detach_states`` truncates them. :func:`restart_readout` clears
only them, keeping the membranes (a video stream does this at every frame).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spyolo.snn.state import StatefulModule
from spyolo.utils.choices import READOUTS

__all__ = ["READOUTS", "MeanReadout", "restart_readout"]

# READOUTS (spyolo.utils.choices, re-exported here): the valid ``model.readout`` values.


class MeanReadout(StatefulModule):
    """Running mean of the two heads' outputs over the steps since the last reset."""

    def __init__(self) -> None:
        super().__init__()
        self.register_memory("sum_s32", None)  # sum of the stride-32 head's outputs
        self.register_memory("sum_s16", None)  # sum of the stride-16 head's outputs
        self.register_memory("steps", None)  # 0-dim tensor: steps summed

    def reset_memories(self, init: str = "zero", generator: torch.Generator | None = None) -> None:
        """Clear the sums (``init`` concerns membranes only; sums always restart from zero)."""
        super().reset_memories("zero", None)

    def forward(self, out_s32: Tensor, out_s16: Tensor) -> tuple[Tensor, Tensor]:
        """Add this step's outputs to the sums; return the means over the steps so far."""
        if self.steps is None:
            self.sum_s32, self.sum_s16 = out_s32, out_s16
            self.steps = torch.ones((), device=out_s32.device, dtype=torch.float32)
        else:
            self.sum_s32, self.sum_s16, self.steps = self.sum_s32 + out_s32, self.sum_s16 + out_s16, self.steps + 1
        return self.sum_s32 / self.steps, self.sum_s16 / self.steps


def restart_readout(model: nn.Module) -> None:
    """Clear every :class:`MeanReadout` of ``model`` (the membranes keep their state)."""
    for module in model.modules():
        if isinstance(module, MeanReadout):
            module.reset_memories()
