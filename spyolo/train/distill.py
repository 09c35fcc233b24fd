"""Distillation from a trained ANN twin: its head outputs pull SPYv4's at every timestep.

The teacher (a trained ANN twin, or any detector with the same heads) is frozen and runs in eval
mode, once per batch: it is not spiking, so its output is the same for every timestep. At every
timestep the student's (read-out) head outputs are pulled towards it, per anchor slot:

* objectness: the KL divergence between Bernoulli(sigmoid(teacher)) and Bernoulli(sigmoid(student)),
  i.e. BCE-with-logits against the teacher's probability minus the teacher's own entropy (the
  same gradient as the BCE, and zero at a perfect match);
* classes: the same per class, weighted by the teacher's objectness probability;
* box offsets ``tx, ty, tw, th``: squared error, weighted by the teacher's objectness probability
  (and by ``box_weight``).

The sum over slots is divided by the YOLO loss's normaliser (``max(1, positives)``), so the term
sits on the scale of the YOLO loss; ``train.distill_weight`` scales it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spyolo.checkpoint import load_model
from spyolo.errors import ConfigError

__all__ = ["HeadDistillation", "distillation_loss", "load_teacher"]


def distillation_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    num_classes: int,
    normaliser: torch.Tensor,
    box_weight: float = 1.0,
) -> torch.Tensor:
    """The distillation term of the module docstring for one timestep's head outputs (float32, 0-dim)."""
    per_slot = 5 + num_classes
    total = student[0].new_zeros((), dtype=torch.float32)
    for s_out, t_out in zip(student, teacher):
        b, _, h, w = s_out.shape
        s = s_out.float().reshape(b, -1, per_slot, h, w)
        t = t_out.float().reshape(b, -1, per_slot, h, w)
        t_prob = torch.sigmoid(t[:, :, 4:])
        t_obj = t_prob[:, :, 0]
        kl = (F.binary_cross_entropy_with_logits(s[:, :, 4:], t_prob, reduction="none")
              - F.binary_cross_entropy_with_logits(t[:, :, 4:], t_prob, reduction="none"))
        total = total + kl[:, :, 0].sum() + (kl[:, :, 1:].sum(dim=2) * t_obj).sum()
        if box_weight:
            total = total + box_weight * ((s[:, :, :4] - t[:, :, :4]).pow(2).sum(dim=2) * t_obj).sum()
    return total / normaliser.clamp(min=1).float()


def load_teacher(path: str | Path, student: nn.Module, device: torch.device) -> nn.Module:
    """The frozen teacher of ``path`` on ``device`` (eval mode, no gradients).

    Raises:
        ConfigError: its heads differ from the student's (classes, anchors or masks).
    """
    loaded = load_model(path)
    teacher = loaded.model
    for attr in ("num_classes", "masks"):
        if getattr(teacher, attr) != getattr(student, attr):
            raise ConfigError(
                f"train.distill_from={path}: the teacher's {attr} ({getattr(teacher, attr)}) differ from the "
                f"model's ({getattr(student, attr)}); distillation needs the same heads"
            )
    if not torch.equal(teacher.anchors, student.anchors.cpu()):
        raise ConfigError(f"train.distill_from={path}: the teacher's anchors differ from the model's")
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class HeadDistillation:
    """The teacher and the term of the module docstring, as the training step uses them.

    Args:
        teacher: the frozen teacher (see :func:`load_teacher`).
        weight: the term's weight in the loss (``train.distill_weight``).
        box_weight: the box part's weight inside the term (``train.distill_box_weight``).
        num_classes: classes of the heads.
    """

    def __init__(self, teacher: nn.Module, weight: float, box_weight: float, num_classes: int) -> None:
        self.teacher = teacher
        self.weight = float(weight)
        self.box_weight = float(box_weight)
        self.num_classes = int(num_classes)
        self._targets: tuple[torch.Tensor, ...] | None = None

    @torch.no_grad()
    def prepare(self, images: torch.Tensor, autocast) -> None:
        """Run the teacher on this batch (once: its output is the same at every timestep)."""
        with autocast:
            self._targets = tuple(o.detach() for o in self.teacher(images))

    def __call__(self, student: Sequence[torch.Tensor], normaliser: torch.Tensor) -> torch.Tensor:
        """The weighted term for one timestep's outputs (after :meth:`prepare` for this batch)."""
        if self._targets is None:
            raise RuntimeError("HeadDistillation: prepare(images) must run before the time loop")
        return self.weight * distillation_loss(student, self._targets, self.num_classes, normaliser, self.box_weight)
