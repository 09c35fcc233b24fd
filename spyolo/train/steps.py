"""One training iteration (one batch) for each method: FPTT, BPTT, and the ANN twin.

FPTT (section 4 of the reference), for t = 1..T on the same images:
detach states -> forward one step -> L_t (weighted 1 or t/T) -> backward through this step
only -> (every K steps) add the FPTT regulariser gradient, clip the global norm, optimiser
step, trace update. Memory holds one step's graph, whatever T is.

BPTT: the same per-step losses summed over T, one backward through all steps, one update.

The targets are built once per batch and reused at every timestep. Nothing here reads a
value back to the host: the returned loss parts are device tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spyolo.loss import YOLOLoss
from spyolo.snn import detach_states, reset_states
from spyolo.train.fptt import FPTT
from spyolo.utils.runtime import Runtime

__all__ = ["StepSettings", "TrainStep"]


@dataclass
class StepSettings:
    method: str  # "fptt" | "bptt" | "ann"
    timesteps: int
    step_weighting: str = "uniform"  # "uniform" | "linear"
    update_every: int = 1
    clip_norm: float = 1.0
    state_init: str = "zero"


class TrainStep:
    """Callable running one batch; returns device tensors ``{"loss","box","obj","cls","num_pos"}``.

    ``loss`` is the mean over timesteps of the (unweighted) per-step YOLO loss, for logging.
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
    ) -> None:
        if settings.method == "fptt" and fptt is None:
            raise ValueError("method 'fptt' needs an FPTT instance")
        if settings.method not in ("fptt", "bptt", "ann"):
            raise ValueError(f"unknown training method '{settings.method}'; valid: fptt, bptt, ann")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.settings = settings
        self.runtime = runtime
        self.fptt = fptt
        self.state_generator = state_generator
        self.params = [p for p in model.parameters() if p.requires_grad]
        steps = settings.timesteps if settings.method != "ann" else 1
        if settings.step_weighting == "linear":
            self.weights = [(t + 1) / steps for t in range(steps)]
        elif settings.step_weighting == "uniform":
            self.weights = [1.0] * steps
        else:
            raise ValueError(f"unknown step weighting '{settings.step_weighting}'; valid: uniform, linear")

    # -- helpers -------------------------------------------------------------------------
    def _forward_loss(self, images: torch.Tensor, built) -> tuple[torch.Tensor, dict]:
        with self.runtime.autocast():
            outs = self.model(images)
        return self.loss_fn(outs, built)

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
        return torch.stack(
            [loss.detach().float(), parts["box"].float(), parts["obj"].float(), parts["cls"].float(), parts["num_pos"].float()]
        )

    # -- the step ------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.settings
        h, w = images.shape[-2:]
        built = self.loss_fn.build_targets(targets, images.shape[0], [(h // 32, w // 32), (h // 16, w // 16)], (h, w))
        self.optimizer.zero_grad(set_to_none=True)
        if s.method == "ann":
            loss, parts = self._forward_loss(images, built)
            loss.backward()
            self._update()
            acc = self._stack(loss, parts)
        else:
            reset_states(self.model, init=s.state_init, generator=self.state_generator)
            acc = torch.zeros(5, device=images.device)
            if s.method == "fptt":
                for t in range(s.timesteps):
                    detach_states(self.model)
                    loss, parts = self._forward_loss(images, built)
                    (loss * self.weights[t]).backward()
                    if (t + 1) % s.update_every == 0 or t == s.timesteps - 1:
                        self._update()
                    acc += self._stack(loss, parts)
            else:  # bptt
                total = None
                for t in range(s.timesteps):
                    loss, parts = self._forward_loss(images, built)
                    total = loss * self.weights[t] if total is None else total + loss * self.weights[t]
                    acc += self._stack(loss, parts)
                total.backward()
                self._update()
            acc /= s.timesteps
        return {"loss": acc[0], "box": acc[1], "obj": acc[2], "cls": acc[3], "num_pos": acc[4]}
