"""Optimisers (Adam, AdamW, SGD) with no weight decay on BN and biases, and LR schedules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from spyolo.utils.choices import OPTIMIZERS, SCHEDULERS

__all__ = ["OPTIMIZERS", "SCHEDULERS", "build_optimizer", "build_scheduler", "LRSchedule"]


def _param_groups(model: nn.Module, weight_decay: float, lr: float, tau_lr_scale: float = 1.0) -> list[dict]:
    decay, no_decay, tau_decay, tau_no_decay = [], [], [], []
    split = tau_lr_scale != 1.0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        tau = split and (".tau_" in name or name.startswith("tau_"))
        # Conv/linear weights decay; BN affine parameters and biases (1-D) do not.
        if p.ndim > 1:
            (tau_decay if tau else decay).append(p)
        else:
            (tau_no_decay if tau else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
    ]
    if split:  # the LTC time constants' path (tau_conv, tau_bn, tau_param) at its own step size
        groups += [
            {"params": tau_decay, "weight_decay": weight_decay, "lr": lr * tau_lr_scale},
            {"params": tau_no_decay, "weight_decay": 0.0, "lr": lr * tau_lr_scale},
        ]
    return groups


def build_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float, tau_lr_scale: float = 1.0
) -> torch.optim.Optimizer:
    """``name`` in adam | adamw | sgd. Uses the fused CUDA kernels when the model is on CUDA.

    ``tau_lr_scale`` != 1 gives the parameters of the LTC time constants' path (``*.tau_conv``,
    ``*.tau_bn``, ``*.tau_param``) that multiple of ``lr`` (the schedule scales both alike).
    """
    groups = _param_groups(model, weight_decay, lr, tau_lr_scale)
    on_cuda = next(model.parameters()).is_cuda
    impl = {"fused": True} if on_cuda else {"foreach": True}
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999), **impl)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), **impl)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True, **impl)
    raise ValueError(f"unknown optimizer '{name}'; valid: {', '.join(OPTIMIZERS)}")


@dataclass
class LRSchedule:
    """LR multiplier per iteration: linear warm-up, then cosine, step or constant."""

    total_iters: int
    warmup_iters: int
    kind: str = "cosine"
    min_ratio: float = 0.01
    milestones: tuple[float, ...] = (0.7, 0.9)
    gamma: float = 0.1

    def __call__(self, it: int) -> float:
        if self.warmup_iters > 0 and it < self.warmup_iters:
            return 0.01 + 0.99 * it / self.warmup_iters
        if self.kind == "constant":
            return 1.0
        span = max(1, self.total_iters - self.warmup_iters)
        progress = min(1.0, max(0.0, (it - self.warmup_iters) / span))
        if self.kind == "cosine":
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "step":
            passed = sum(1 for m in self.milestones if it >= m * self.total_iters)
            return self.gamma**passed
        raise ValueError(f"unknown scheduler '{self.kind}'; valid: {', '.join(SCHEDULERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: LRSchedule) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per *batch* (not per FPTT optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
