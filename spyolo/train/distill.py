"""Distillation from a trained teacher: its head outputs pull SPYv4's at every timestep.

The teacher is frozen and runs in eval mode, once per batch, before the student's time loop:

* a trained ANN twin (or any non-spiking detector with the same heads) in one pass: its output
  is the same for every timestep;
* a trained SPYv4 (e.g. the paper's LTC model teaching a cheaper ``tau_mode``) over the student's
  T timesteps on the same input, from reset states: step t of the student is pulled towards
  step t of the teacher (its heads as it reads them out, its layers' synaptic currents).

At every timestep the student's (read-out) head outputs are pulled towards the teacher's, per
anchor slot:

* objectness: the KL divergence between Bernoulli(sigmoid(teacher)) and Bernoulli(sigmoid(student)),
  i.e. BCE-with-logits against the teacher's probability minus the teacher's own entropy (the
  same gradient as the BCE, and zero at a perfect match);
* classes: the same per class, weighted by the teacher's objectness probability;
* box offsets ``tx, ty, tw, th``: squared error, weighted by the teacher's objectness probability
  (and by ``box_weight``).

The sum over slots is divided by the YOLO loss's normaliser (``max(1, positives)``), so the term
sits on the scale of the YOLO loss; ``train.distill_weight`` scales it.

Feature distillation (``train.distill_feature_weight`` > 0) adds a term per layer: the synaptic
current ``I = BN(Conv(s))`` of each of SPYv4's LTC layers is pulled towards the pre-activation
``BN(Conv(a))`` of the twin's layer of the same name (before its LeakyReLU; both before
``conv_up``'s upsampling), at every timestep; from a SPYv4 teacher, towards the synaptic current
of its layer of the same name at the same step (a layer that holds its current over the steps in
evaluation, :class:`~spyolo.snn.ltc.LTCConv2d` ``hold_current``, gives its first step's). Each
layer's squared error is divided by the teacher's sum of squares on the batch (a relative error,
the same scale for every layer), and the mean over the layers is the term. From a twin whose
weights start the model (``model.init_from``), the target asks each layer to give, from binary
spikes, the current its ANN counterpart gives from analog activations: a local target for every
layer instead of one at the heads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spyolo.checkpoint import load_model
from spyolo.errors import CheckpointError, ConfigError
from spyolo.hub.convert import is_sfptt_file
from spyolo.models.darknet import companion_names, darknet_model, is_darknet_weights, read_darknet_names
from spyolo.models.spyv4 import timestep_input
from spyolo.snn import reset_states

log = logging.getLogger(__name__)

__all__ = ["FeatureTaps", "HeadDistillation", "distillation_loss", "feature_distillation_loss", "load_teacher"]


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


def feature_distillation_loss(
    student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor], eps: float = 1e-6
) -> torch.Tensor:
    """The mean over the layers of ``student`` of ``sum((I - z)^2) / sum(z^2)`` (float32, 0-dim).

    ``student`` maps layer names to this step's synaptic currents, ``teacher`` the same names to the
    teacher's pre-activations (same shapes).
    """
    names = list(student)
    if not names:
        raise ValueError("feature distillation: no layer outputs were recorded in this step")
    total = None
    for name in names:
        s = student[name].float()
        t = teacher[name].float()
        term = (s - t).pow(2).sum() / (t.pow(2).sum() + eps)
        total = term if total is None else total + term
    return total / len(names)


class FeatureTaps:
    """Forward hooks that record the outputs of the synaptic BatchNorm of named layers.

    ``layers`` maps a name to a module with a ``bn`` attribute (an :class:`~spyolo.snn.ltc.LTCConv2d`
    or a :class:`~spyolo.models.spyv4.ConvBNAct`). While :attr:`armed`, each hook keeps its module's
    latest output (with its graph); :meth:`take` hands them over and forgets them. Disarmed (the
    default, and whenever gradients are off), nothing is kept.
    """

    def __init__(self, layers: Mapping[str, nn.Module], keep_without_grad: bool = False) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.armed = False
        self.keep_without_grad = keep_without_grad
        self._handles = [layer.bn.register_forward_hook(self._hook(name)) for name, layer in layers.items()]

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if self.armed and (self.keep_without_grad or torch.is_grad_enabled()):
                self.outputs[name] = output
        return record

    def take(self) -> dict[str, torch.Tensor]:
        """The recorded outputs since the last call (then forgotten)."""
        out, self.outputs = self.outputs, {}
        return out

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.outputs = {}


def feature_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers of ``model`` that feature distillation taps, by qualified name: SPYv4's LTC layers or
    the ANN twin's Conv-BN-LeakyReLU layers (``conv1``, ``block1.c1``, ...)."""
    from spyolo.models.spyv4 import ConvBNAct
    from spyolo.snn.ltc import LTCConv2d

    return {name: m for name, m in model.named_modules() if isinstance(m, (LTCConv2d, ConvBNAct))}


def load_teacher(
    path: str | Path,
    student: nn.Module,
    device: torch.device,
    class_names: Sequence[str] | None = None,
    img_size: int | None = None,
) -> nn.Module:
    """The frozen teacher of ``path`` on ``device`` (eval mode, no gradients).

    ``path`` is an ANN-twin checkpoint (``model.kind=ann``), a SPYv4 checkpoint (a spiking
    teacher, run over the student's timesteps) or a Darknet YOLOv4-tiny ``.weights`` file (its
    ``.cfg`` and ``.names`` beside it, with the same stem, are used when present).
    ``class_names`` and ``img_size`` are the dataset's and the training input size: the teacher's
    classes must be the same list; another training size is a warning.

    Raises:
        CheckpointError: the checkpoint cannot be read (the message starts with the key).
        ConfigError: the sFPTT release's raw state dict (convert it first), or heads that differ
            from the student's (classes, their names and order, anchors, masks, centre scale).
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
            if is_sfptt_file(path):
                raise ConfigError(f"{key}: the sFPTT release's raw state dict, which holds no model settings; convert "
                                  f"it first (spyolo convert {path} --out sfptt.pt) and give the converted checkpoint, "
                                  f"or the name sfptt-voc") from None
            raise CheckpointError(f"train.distill_from: {exc}") from None
        teacher, teacher_names = loaded.model, loaded.class_names
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
    """The teacher and the terms of the module docstring, as the training step uses them.

    Args:
        teacher: the frozen teacher (see :func:`load_teacher`).
        weight: the head term's weight in the loss (``train.distill_weight``).
        box_weight: the box part's weight inside the head term (``train.distill_box_weight``).
        num_classes: classes of the heads.
        student: the model being trained; needed for feature distillation.
        feature_weight: the feature term's weight (``train.distill_feature_weight``; 0: no feature term).
        timesteps: the student's T: a spiking teacher runs that many steps per batch (an ANN one).

    Raises:
        ConfigError: feature distillation between models whose layers do not correspond (an event
            model's teacher reads all bins at once; another width).
    """

    def __init__(self, teacher: nn.Module, weight: float, box_weight: float, num_classes: int,
                 student: nn.Module | None = None, feature_weight: float = 0.0, timesteps: int = 1) -> None:
        self.teacher = teacher
        self.spiking_teacher = bool(getattr(teacher, "is_spiking", False))
        self.timesteps = int(timesteps) if self.spiking_teacher else 1
        if self.timesteps < 1:
            raise ValueError(f"HeadDistillation: timesteps must be >= 1, got {timesteps}")
        self.weight = float(weight)
        self.box_weight = float(box_weight)
        self.num_classes = int(num_classes)
        self.feature_weight = float(feature_weight)
        self._targets: list[tuple[torch.Tensor, ...]] = []
        self._features: list[dict[str, torch.Tensor]] = []
        self._step = 0
        self.teacher_taps: FeatureTaps | None = None
        self.student_taps: FeatureTaps | None = None
        if self.feature_weight > 0:
            if student is None:
                raise ValueError("HeadDistillation: feature distillation needs the student model")
            if int(getattr(teacher, "input_frames", 1)) != 1:
                raise ConfigError("train.distill_feature_weight: the teacher reads all event bins at once, SPYv4 one "
                                  "bin per timestep: their layers do not correspond (use the head term alone)")
            t_layers, s_layers = feature_layers(teacher), feature_layers(student)
            if set(t_layers) != set(s_layers):
                raise ConfigError("train.distill_feature_weight: the teacher's layers differ from the model's")
            for name, layer in s_layers.items():
                if layer.bn.num_features != t_layers[name].bn.num_features:
                    raise ConfigError(f"train.distill_feature_weight: layer {name} has {layer.bn.num_features} "
                                      f"channels in the model and {t_layers[name].bn.num_features} in the teacher "
                                      f"(another model.width)")
            self.teacher_taps = FeatureTaps(t_layers, keep_without_grad=True)
            self.student_taps = FeatureTaps(s_layers)

    @torch.no_grad()
    def prepare(self, images: torch.Tensor, autocast) -> None:
        """Run the teacher on this batch: once (an ANN), or over the T steps from reset states (SPYv4)."""
        taps = self.teacher_taps
        self._targets, self._features, self._step = [], [], 0
        if self.spiking_teacher:
            reset_states(self.teacher)
        features: dict[str, torch.Tensor] = {}
        for t in range(self.timesteps):
            if taps is not None:
                taps.armed = True
            try:
                with autocast:
                    inputs = timestep_input(images, t) if self.spiking_teacher else images
                    self._targets.append(tuple(o.detach() for o in self.teacher(inputs)))
            finally:
                if taps is not None:
                    taps.armed = False
            if taps is not None:
                # a layer that held its current this step (hold_current) keeps the last one recorded
                features = {**features, **{k: v.detach() for k, v in taps.take().items()}}
                self._features.append(features)
        if taps is not None:
            self.student_taps.take()  # drop anything recorded outside a step
            self.student_taps.armed = True

    def __call__(self, student: Sequence[torch.Tensor], normaliser: torch.Tensor) -> torch.Tensor:
        """The weighted terms for the next timestep's outputs (after :meth:`prepare` for this batch):
        the teacher's step of the same index (a student running more steps than prepared gets the last)."""
        if not self._targets:
            raise RuntimeError("HeadDistillation: prepare(images) must run before the time loop")
        index = min(self._step, len(self._targets) - 1)
        self._step += 1
        term = self.weight * distillation_loss(student, self._targets[index], self.num_classes, normaliser,
                                               self.box_weight)
        if self.student_taps is not None:
            recorded = self.student_taps.take()
            if recorded:
                term = term + self.feature_weight * feature_distillation_loss(recorded, self._features[index])
        return term
