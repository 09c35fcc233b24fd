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

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spyolo.checkpoint import load_model
from spyolo.errors import CheckpointError, ConfigError
from spyolo.models.darknet import companion_names, darknet_model, is_darknet_weights, read_darknet_names

log = logging.getLogger(__name__)

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


def load_teacher(
    path: str | Path,
    student: nn.Module,
    device: torch.device,
    class_names: Sequence[str] | None = None,
    img_size: int | None = None,
) -> nn.Module:
    """The frozen teacher of ``path`` on ``device`` (eval mode, no gradients).

    ``path`` is an ANN-twin checkpoint (``model.kind=ann``) or a Darknet YOLOv4-tiny ``.weights``
    file (its ``.cfg`` and ``.names`` beside it, with the same stem, are used when present).
    ``class_names`` and ``img_size`` are the dataset's and the training input size: the teacher's
    classes must be the same list; another training size is a warning.

    Raises:
        CheckpointError: the checkpoint cannot be read (the message starts with the key).
        ConfigError: a spiking teacher, or heads that differ from the student's (classes, their
            names and order, anchors, masks, centre scale).
    """
    key = f"train.distill_from={path}"
    if is_darknet_weights(path):
        teacher, dark = darknet_model(path)
        names_file = companion_names(path)
        teacher_names = read_darknet_names(names_file, dark.num_classes) if names_file else None
        if teacher_names is None and class_names is not None and dark.num_classes == len(class_names):
            log.warning("%s: a Darknet file carries no class names (no %s beside it): its %d classes are taken to "
                        "be the dataset's, in order", key, Path(path).with_suffix(".names").name, dark.num_classes)
    else:
        try:
            loaded = load_model(path)
        except CheckpointError as exc:
            raise CheckpointError(f"train.distill_from: {exc}") from None
        teacher, teacher_names = loaded.model, loaded.class_names
        if getattr(teacher, "is_spiking", False):
            raise ConfigError(f"{key}: a SPYv4 checkpoint; the teacher must be a trained ANN twin (model.kind=ann), "
                              f"which gives its outputs in one step")
        teacher_size = loaded.config.data.img_size
        if img_size is not None and teacher_size != img_size:
            log.warning("%s: the teacher was trained at %d px, the model trains at %d px (data.img_size): its "
                        "outputs at this size may be a weaker target", key, teacher_size, img_size)
    student_frames = int(getattr(student, "in_channels", 3))
    if int(getattr(teacher, "in_channels", 3)) != student_frames:
        raise ConfigError(f"{key}: the teacher reads {getattr(teacher, 'in_channels', 3)}-channel inputs, the model "
                          f"{student_frames}-channel ones (model.input): distillation needs the same kind of input")
    for attr in ("num_classes", "masks"):
        if getattr(teacher, attr) != getattr(student, attr):
            raise ConfigError(
                f"{key}: the teacher's {attr} ({getattr(teacher, attr)}) differ from the "
                f"model's ({getattr(student, attr)}); distillation needs the same heads"
            )
    if teacher_names is not None and class_names is not None and list(teacher_names) != list(class_names):
        order = "the same classes in another order" if sorted(teacher_names) == sorted(class_names) else "other classes"
        raise ConfigError(f"{key}: the teacher was trained on {order} ({', '.join(list(teacher_names)[:5])}) than "
                          f"the dataset's ({', '.join(list(class_names)[:5])}); distillation needs the same class list")
    if not torch.equal(teacher.anchors, student.anchors.cpu()):
        raise ConfigError(f"{key}: the teacher's anchors differ from the model's")
    if float(teacher.scale_xy) != float(getattr(student, "scale_xy", 1.0)):
        raise ConfigError(f"{key}: the teacher decodes box centres with scale_xy={teacher.scale_xy:g}, the model with "
                          f"{getattr(student, 'scale_xy', 1.0):g}; set model.scale_xy={teacher.scale_xy:g}")
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
