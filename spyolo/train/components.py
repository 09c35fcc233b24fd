"""Everything one training run is made of, built from its config: model, loss, optimiser,
learning-rate schedule, FPTT traces and the per-batch training step.

:func:`build_training` is what :class:`~spyolo.train.trainer.Trainer` calls; the pieces are
plain objects, so a custom loop can build them the same way and drive
:class:`~spyolo.train.steps.TrainStep` itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from spyolo.config import Config
from spyolo.errors import DownloadError, TransferError
from spyolo.hub import resolve_weights
from spyolo.loss import YOLOLoss
from spyolo.models import HeadSpec, TransferReport, build_model, head_spec_for, transfer_weights
from spyolo.snn.ltc import ltc_layers, neutral_tau, set_ltc_backend
from spyolo.train.distill import HeadDistillation, load_teacher
from spyolo.train.distributed import DistInfo, wrap_ddp
from spyolo.train.energy import EnergyTerm
from spyolo.train.fptt import FPTT
from spyolo.train.optim import LRSchedule, build_optimizer, build_scheduler
from spyolo.train.steps import StepSettings, TrainStep
from spyolo.utils.runtime import Runtime

__all__ = ["TrainingParts", "build_training", "prepare_model"]

log = logging.getLogger(__name__)


@dataclass
class TrainingParts:
    """The built components of a run.

    Attributes:
        core: the model itself (what checkpoints hold).
        model: what runs each step: ``core``, wrapped in DDP and/or ``torch.compile`` if asked.
        method: ``"fptt"``, ``"bptt"`` or ``"ann"`` (the ANN twin has no timesteps).
        spec: the heads' geometry at the training input size.
        loss_fn, optimizer, schedule, scheduler: as named; the scheduler steps once per batch.
        fptt: the FPTT traces (``None`` unless ``method == "fptt"``).
        step: the per-batch training step.
        state_generator: generator of the uniform initial membranes (``model.state_init=uniform``).
        transfer: what ``model.init_from`` loaded (``None`` without it, or on resume).
        distill: the distillation teacher and term (``train.distill_from``), or ``None``.
        energy: the energy term (``train.energy_weight`` > 0 on a spiking model), or ``None``.
    """

    core: nn.Module
    model: nn.Module
    method: str
    spec: HeadSpec
    loss_fn: YOLOLoss
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scheduler: torch.optim.lr_scheduler.LRScheduler
    fptt: FPTT | None
    step: TrainStep
    state_generator: torch.Generator | None
    transfer: TransferReport | None = None
    distill: HeadDistillation | None = None
    energy: EnergyTerm | None = None

    @property
    def spiking(self) -> bool:
        return self.method != "ann"


def prepare_model(cfg: Config, num_classes: int, runtime: Runtime) -> nn.Module:
    """The config's model on the runtime's device and memory layout, with its LTC backend set."""
    model = build_model(cfg.model, num_classes=num_classes).to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if getattr(model, "is_spiking", False):
        set_ltc_backend(model, cfg.train.ltc_backend)
    return model


def build_training(
    cfg: Config, num_classes: int, runtime: Runtime, dist: DistInfo, iters_per_epoch: int, resume: bool = False,
    class_names: list[str] | None = None,
) -> TrainingParts:
    """Build the components of a run (``iters_per_epoch`` sizes the learning-rate schedule).

    ``model.init_from`` loads its weights into the model before the FPTT traces are made (so they
    start at the transferred weights: ``W_bar = W``, ``lambda = 0``); not when ``resume`` (the
    checkpoint brings the weights). ``train.distill_from`` loads the frozen teacher. ``class_names``
    (the dataset's) let both compare the source's classes with the model's.
    """
    tc = cfg.train
    core = prepare_model(cfg, num_classes, runtime)
    transfer = None
    if cfg.model.init_from and not resume:
        try:
            source = resolve_weights(cfg.model.init_from)
        except DownloadError as exc:
            raise DownloadError(f"model.init_from: {exc}") from None
        try:
            transfer = transfer_weights(core, source, class_names=class_names, heads=cfg.model.init_heads)
        except TransferError as exc:
            raise TransferError(f"model.init_from: {exc}") from None
        if cfg.model.init_tau == "neutral":
            layers = [(name, layer) for name, layer in ltc_layers(core)
                      if not any(k.startswith(f"{name}.tau_") for k in transfer.loaded)]
            for _name, layer in layers:
                neutral_tau(layer)
            if layers:
                transfer.notes.append(f"model.init_tau=neutral: tau = 0.5 in the {len(layers)} LTC layers whose tau "
                                      f"path the source does not bring (tau batch norm scale and shift set to 0)")
    spiking = bool(getattr(core, "is_spiking", False))
    method = tc.method if spiking else "ann"
    spec = head_spec_for(core, cfg.data.img_size)
    loss_fn = YOLOLoss.from_spec(spec, tc.ignore_thresh, tc.label_smoothing).to(runtime.device)
    optimizer = build_optimizer(core, tc.optimizer, tc.lr, tc.momentum, tc.weight_decay, tc.tau_lr_scale)
    schedule = LRSchedule(
        total_iters=iters_per_epoch * tc.epochs, warmup_iters=int(round(tc.warmup_epochs * iters_per_epoch)),
        kind=tc.scheduler, min_ratio=tc.min_lr_ratio, milestones=tuple(tc.step_milestones), gamma=tc.step_gamma,
    )
    scheduler = build_scheduler(optimizer, schedule)
    fptt = (
        FPTT(core.parameters(), alpha=tc.fptt_alpha, beta=tc.fptt_beta, alpha_reg=tc.fptt_alpha_reg)
        if method == "fptt" else None
    )
    model = wrap_ddp(core, runtime, dist)
    if tc.compile:
        model = torch.compile(model)
    state_generator = torch.Generator(device=runtime.device) if cfg.model.state_init == "uniform" else None
    distill = None
    if tc.distill_from:
        try:
            teacher_path = resolve_weights(tc.distill_from)
        except DownloadError as exc:
            raise DownloadError(f"train.distill_from: {exc}") from None
        teacher = load_teacher(teacher_path, core, runtime.device, class_names=class_names,
                               img_size=cfg.data.img_size)
        if runtime.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        distill = HeadDistillation(teacher, tc.distill_weight, tc.distill_box_weight, num_classes, student=core,
                                   feature_weight=tc.distill_feature_weight, timesteps=cfg.model.timesteps)
    energy = None
    if tc.energy_weight > 0:
        if spiking:
            energy = EnergyTerm(core, cfg.data.img_size, tc.energy_weight)
        else:
            log.info("train.energy_weight=%g is ignored: the model does not spike (model.kind=%s)",
                     tc.energy_weight, cfg.model.kind)
    step = TrainStep(
        model, loss_fn, optimizer,
        StepSettings(method, cfg.model.timesteps, tc.step_weighting, tc.update_every, tc.clip_norm,
                     cfg.model.state_init),
        runtime, fptt=fptt, state_generator=state_generator, distill=distill, energy=energy,
    )
    return TrainingParts(core, model, method, spec, loss_fn, optimizer, schedule, scheduler, fptt, step,
                         state_generator, transfer, distill, energy)
