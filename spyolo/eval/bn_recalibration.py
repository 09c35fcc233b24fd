"""Re-estimate the BatchNorm statistics of a trained model: shared, or one set per timestep.

A diagnostic of learning quality. Two things can make the running statistics that a model
was trained with a poor fit at evaluation:

* FPTT resets the weights to their running average ``W_bar`` at the end of each epoch, but
  the BN running statistics were accumulated with the instantaneous weights ``W``;
* a spiking model's BN layers see different inputs at each timestep (the membrane starts at
  zero), while one running average serves all timesteps.

:func:`estimate_bn_stats` measures fresh statistics with the final weights over a number of
training batches, either one set for all timesteps (``per_timestep=False``, as SWA's
``update_bn``) or one set per timestep; :class:`TimestepBNStats` runs the model with set ``t``
loaded before its ``t``-th step after each state reset. ``tools/eval.py --recalibrate-bn N
[--bn-per-timestep]`` evaluates a checkpoint that way; docs/learning_quality.md has the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from spyolo.models import timestep_input
from spyolo.snn import reset_states
from spyolo.snn.state import StatefulModule

__all__ = ["BNStats", "TimestepBNStats", "batch_norms", "estimate_bn_stats", "load_bn_stats"]


@dataclass
class BNStats:
    """Running means and variances, one pair per BN layer in :func:`batch_norms` order."""

    means: list[Tensor]
    variances: list[Tensor]


def batch_norms(model: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer of ``model`` that tracks running statistics, in module order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def load_bn_stats(model: nn.Module, stats: BNStats) -> None:
    """Copy ``stats`` into the running statistics of ``model``'s BN layers."""
    bns = batch_norms(model)
    if len(bns) != len(stats.means):
        raise ValueError(f"load_bn_stats: the model has {len(bns)} BN layers, the statistics {len(stats.means)}")
    with torch.no_grad():
        for bn, mean, var in zip(bns, stats.means, stats.variances):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


@torch.no_grad()
def estimate_bn_stats(
    model: nn.Module,
    batches: Iterable[Tensor],
    timesteps: int,
    per_timestep: bool,
    device: torch.device | str = "cpu",
) -> list[BNStats]:
    """Fresh BN statistics of ``model`` over ``batches`` of images.

    Each batch runs ``timesteps`` steps from a reset state (one step for a non-spiking
    model). Every step's batch statistics (BatchNorm's own: mean and unbiased variance) are
    averaged with equal weight over the batches, into one set per timestep or one shared set.
    The model's weights, running statistics and train/eval mode are left as they were.

    Returns:
        ``timesteps`` sets if ``per_timestep`` (and the model is spiking), else one.
    """
    if timesteps < 1:
        raise ValueError(f"estimate_bn_stats: timesteps must be >= 1, got {timesteps}")
    spiking = bool(getattr(model, "is_spiking", False))
    steps = timesteps if spiking else 1
    n_sets = steps if per_timestep else 1
    bns = batch_norms(model)
    if not bns:
        raise ValueError("estimate_bn_stats: the model has no BatchNorm layer with running statistics")
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone(), bn.momentum)
             for bn in bns]
    sums = [BNStats([torch.zeros_like(b.running_mean) for b in bns], [torch.zeros_like(b.running_var) for b in bns])
            for _ in range(n_sets)]
    counts = [0] * n_sets
    was_training = model.training
    model.train()
    try:
        for bn in bns:
            bn.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        for images in batches:
            images = images.to(device)
            if spiking:
                reset_states(model)
            for t in range(steps):
                for bn in bns:
                    bn.reset_running_stats()
                model(timestep_input(images, t) if spiking else images)
                k = t if per_timestep else 0
                for j, bn in enumerate(bns):
                    sums[k].means[j] += bn.running_mean
                    sums[k].variances[j] += bn.running_var
                counts[k] += 1
    finally:
        for bn, (mean, var, tracked, momentum) in zip(bns, saved):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(tracked)
            bn.momentum = momentum
        model.train(was_training)
        if spiking:
            reset_states(model)
    if counts[0] == 0:
        raise ValueError("estimate_bn_stats: no batches")
    return [BNStats([m / c for m in s.means], [v / c for v in s.variances]) for s, c in zip(sums, counts)]


class TimestepBNStats(StatefulModule):
    """Run ``model`` with BN statistics set ``t`` loaded before its ``t``-th step.

    The step counter is a state of this wrapper, so :func:`spyolo.snn.reset_states` (which
    the evaluation calls before every batch) starts it again at 0; steps beyond the last set
    use the last set. Attributes the evaluation reads (``is_spiking``) are the model's.
    """

    def __init__(self, model: nn.Module, sets: list[BNStats]) -> None:
        super().__init__()
        if not sets:
            raise ValueError("TimestepBNStats: need at least one set of statistics")
        self.model = model
        self.sets = sets
        self.is_spiking = bool(getattr(model, "is_spiking", False))
        self.register_memory("step", None)

    def forward(self, x: Tensor):
        t = 0 if self.step is None else int(self.step)
        load_bn_stats(self.model, self.sets[min(t, len(self.sets) - 1)])
        self.step = torch.tensor(t + 1)
        return self.model(x)
