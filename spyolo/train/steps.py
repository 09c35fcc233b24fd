"""One training iteration (one batch) for each method: FPTT, BPTT, and the ANN twin.

FPTT (section 4 of the reference), for t = 1..T on the same images (or, for a sequence
``(B, T, C, H, W)`` of event bins, on bin t at timestep t; the ANN twin reads it stacked):
detach states -> forward one step -> L_t (weighted 1 or t/T) -> backward through this step
only -> (every K steps) add the FPTT regulariser gradient, clip the global norm, optimiser
step, trace update. Memory holds one step's graph, whatever T is.

BPTT: the same per-step losses summed over T, one backward through all steps, one update.

A call is two phases, also available separately (:meth:`TrainStep.prepare`,
:meth:`TrainStep.time_loop`):

* ``prepare`` builds the targets once per batch (the only place that reads values back to
  the host, to size tensors), runs the distillation teacher if there is one (once per batch:
  it does not depend on the timestep), clears the gradients and resets the neuron states;
* ``time_loop`` runs the T timesteps and the updates without any host-device
  synchronisation: the returned :class:`LossParts` are device tensors
  (:meth:`LossParts.to_host` reads them back in one copy).

States are created before the first step (:func:`spyolo.snn.ltc.init_states`) once their
layouts for an input shape are known (:class:`~spyolo.train.state_cache.StateLayoutCache`):
the first batch of each new input shape runs its first step (BPTT: all its steps) with lazily
created states through the uncompiled model and records the layouts. A compiled model
therefore sees a state tensor at every step it runs and needs one graph per input shape
(BPTT: two, the first step's state needing no gradient), whatever T is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Generic, TypeVar

import torch
from torch import nn

from spyolo.loss import YOLOLoss
from spyolo.loss.yolo import YOLOTargets
from spyolo.models import timestep_input
from spyolo.snn import detach_states
from spyolo.snn.ltc import truncated_states
from spyolo.train.distill import HeadDistillation
from spyolo.train.energy import EnergyTerm
from spyolo.train.fptt import FPTT
from spyolo.train.state_cache import StateLayoutCache
from spyolo.utils.choices import STEP_WEIGHTINGS, TRAIN_METHODS
from spyolo.utils.runtime import Runtime

__all__ = ["LossParts", "StepSettings", "TrainStep"]

V = TypeVar("V", torch.Tensor, float)


@dataclass(frozen=True)
class LossParts(Generic[V]):
    """The loss terms of one batch, each the mean over its timesteps.

    On the device (0-d tensors) as the training step returns them, or as Python floats
    after :meth:`to_host`.

    Attributes:
        loss: The YOLO loss (unweighted by the step weighting; without the distillation term).
        box: Its box-regression part.
        obj: Its objectness part.
        cls: Its classification part.
        num_pos: Positive anchors per step.
        distill: The (weighted) distillation term added to the loss in training (0 without a teacher).
        energy: The spike-driven energy per image and step over the ANN twin's energy per image
            (:mod:`spyolo.train.energy`; unweighted; 0 without ``train.energy_weight``).
    """

    loss: V
    box: V
    obj: V
    cls: V
    num_pos: V
    distill: V
    energy: V

    @classmethod
    def from_stacked(cls, values: torch.Tensor) -> LossParts[torch.Tensor]:
        """From a device tensor of the fields in declaration order (views; no copy, no sync)."""
        return cls(*values.unbind(0))

    def stacked(self) -> torch.Tensor:
        """The fields as one float32 device tensor, in declaration order."""
        return torch.stack([getattr(self, f.name).float() for f in fields(self)])

    def __add__(self, other: LossParts[torch.Tensor]) -> LossParts[torch.Tensor]:
        return LossParts.from_stacked(self.stacked() + other.stacked())

    def __truediv__(self, n: float) -> LossParts[torch.Tensor]:
        return LossParts.from_stacked(self.stacked() / n)

    def to_host(self) -> LossParts[float]:
        """The same parts as Python floats: one device-to-host copy (one synchronisation)."""
        return LossParts(*self.stacked().tolist())


@dataclass
class StepSettings:
    """What one :class:`TrainStep` call does.

    Attributes:
        method: ``"fptt"``, ``"bptt"`` or ``"ann"``.
        timesteps: ``T`` (ignored for ``"ann"``).
        step_weighting: ``"uniform"`` (every step 1, the release) or ``"linear"`` (step t by t/T).
        update_every: FPTT: optimiser update every K steps (and at the last step).
        clip_norm: Global gradient-norm clip (0 disables).
        state_init: Initial membrane, ``"zero"`` or ``"uniform"``.
        eager_states: Create the states before the first step once their layouts are known
            (same values as lazy creation; keeps a compiled model to one graph).
    """

    method: str  # "fptt" | "bptt" | "ann"
    timesteps: int
    step_weighting: str = "uniform"  # "uniform" | "linear"
    update_every: int = 1
    clip_norm: float = 1.0
    state_init: str = "zero"
    eager_states: bool = True


class TrainStep:
    """Callable running one batch; returns its :class:`LossParts` as device tensors.

    ``model`` may be the plain model, a ``torch.compile`` wrapper of it, or DDP (compiled or
    not); the wrapper's ``_orig_mod`` is used for the uncompiled first steps described in the
    module docstring.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: YOLOLoss,
        optimizer: torch.optim.Optimizer,
        settings: StepSettings,
        runtime: Runtime,
        fptt: FPTT | None = None,
        state_generator: torch.Generator | None = None,
        distill: HeadDistillation | None = None,
        energy: EnergyTerm | None = None,
    ) -> None:
        if settings.method == "fptt" and fptt is None:
            raise ValueError("method 'fptt' needs an FPTT instance")
        if settings.method not in (*TRAIN_METHODS, "ann"):
            raise ValueError(f"unknown training method '{settings.method}'; valid: {', '.join(TRAIN_METHODS)}, ann")
        if settings.method != "ann" and settings.timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {settings.timesteps}")
        self.model = model
        self.eager_model: nn.Module = getattr(model, "_orig_mod", model)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.settings = settings
        self.runtime = runtime
        self.fptt = fptt
        self.state_generator = state_generator
        self.distill = distill
        self.energy = energy
        self.params = [p for p in model.parameters() if p.requires_grad]
        steps = settings.timesteps if settings.method != "ann" else 1
        if settings.step_weighting not in STEP_WEIGHTINGS:
            raise ValueError(f"unknown step weighting '{settings.step_weighting}'; valid: {', '.join(STEP_WEIGHTINGS)}")
        if settings.step_weighting == "linear":
            self.weights = [(t + 1) / steps for t in range(steps)]
        else:
            self.weights = [1.0] * steps
        self.states = StateLayoutCache(model, self.eager_model, runtime.amp_dtype, init=settings.state_init,
                                       generator=state_generator, enabled=settings.eager_states)
        self._lazy_batch = False

    # -- helpers -------------------------------------------------------------------------
    def _forward_loss(
        self, model: nn.Module, images: torch.Tensor, built: YOLOTargets
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """One step: ``(training loss, YOLO loss, parts)``; the first adds the distillation and energy terms."""
        energy = self.energy
        if energy is not None:
            energy.armed = True
        try:
            with self.runtime.autocast():
                outs = model(images)
        finally:
            if energy is not None:
                energy.armed = False
        loss, parts = self.loss_fn(outs, built)
        total = loss
        zero = torch.zeros((), device=loss.device)
        parts["distill"] = zero
        if self.distill is not None:
            term = self.distill(outs, built.num_pos)
            parts["distill"] = term.detach()
            total = total + term
        parts["energy"] = zero
        if energy is not None:
            ratio = energy.take_ratio()
            if ratio is not None:
                parts["energy"] = ratio.detach()
                total = total + energy.weight * ratio
        return total, loss, parts

    def _update(self) -> None:
        if self.fptt is not None and self.settings.method == "fptt":
            self.fptt.add_regularizer_grad()
        if self.settings.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.settings.clip_norm, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.fptt is not None and self.settings.method == "fptt":
            self.fptt.update_traces()

    @staticmethod
    def _stack(loss: torch.Tensor, parts: dict) -> torch.Tensor:
        """One step's parts as a device tensor in :class:`LossParts` field order."""
        return torch.stack(
            [loss.detach().float(), parts["box"].float(), parts["obj"].float(), parts["cls"].float(),
             parts["num_pos"].float(), parts["distill"].float(), parts["energy"].float()]
        )

    def _step_model(self, t: int) -> nn.Module:
        """The model for step ``t``: uncompiled for a first step with lazily created states.

        BPTT runs the whole of such a batch uncompiled: one backward pass must not span
        uncompiled and compiled BatchNorm steps (the compiled ones update the running
        statistics with in-place copies, which invalidates what the uncompiled ones saved).
        """
        if self._lazy_batch and (t == 0 or self.settings.method == "bptt"):
            return self.eager_model
        return self.model

    # -- the step ------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor, targets: torch.Tensor) -> YOLOTargets:
        """Per-batch set-up before the time loop: build targets, clear gradients, reset states.

        Building the targets reads a few values back to the host (to size tensors); nothing
        after this does.
        """
        h, w = images.shape[-2:]
        built = self.loss_fn.build_targets(targets, images.shape[0], self.loss_fn.grid_sizes((h, w)), (h, w))
        if self.distill is not None:
            self.distill.prepare(images, self.runtime.autocast())
        self.optimizer.zero_grad(set_to_none=True)
        if self.settings.method != "ann":
            self._lazy_batch = self.states.reset(images)
        return built

    def time_loop(self, images: torch.Tensor, built: YOLOTargets) -> LossParts[torch.Tensor]:
        """Run the timesteps and updates of one batch after :meth:`prepare`; no host sync.

        Returns:
            The loss parts as device tensors, each the mean over the timesteps.
        """
        s = self.settings
        if s.method == "ann":
            total, loss, parts = self._forward_loss(self.model, images, built)
            total.backward()
            self._update()
            return LossParts.from_stacked(self._stack(loss, parts))
        acc = torch.zeros(len(fields(LossParts)), device=images.device)
        if s.method == "fptt":
            # Each step's graph ends at the spikes: the membranes are stored detached
            # (detach_states keeps this true for any other stateful module).
            with truncated_states(self.eager_model):
                for t in range(s.timesteps):
                    detach_states(self.eager_model)
                    total, loss, parts = self._forward_loss(self._step_model(t), timestep_input(images, t), built)
                    self.states.record()
                    weight = self.weights[t]
                    (total if weight == 1.0 else total * weight).backward()
                    if (t + 1) % s.update_every == 0 or t == s.timesteps - 1:
                        self._update()
                    acc += self._stack(loss, parts)
        else:  # bptt
            summed = None
            for t in range(s.timesteps):
                total, loss, parts = self._forward_loss(self._step_model(t), timestep_input(images, t), built)
                self.states.record()
                summed = total * self.weights[t] if summed is None else summed + total * self.weights[t]
                acc += self._stack(loss, parts)
            summed.backward()
            self._update()
        acc /= s.timesteps
        return LossParts.from_stacked(acc)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> LossParts[torch.Tensor]:
        built = self.prepare(images, targets)
        return self.time_loop(images, built)
