"""Start a detector from trained weights: :func:`transfer_weights` (ANN -> SNN weight transfer).

The paper's recipe starts SPYv4 from a trained YOLOv4-tiny: every convolution, every BatchNorm
(affine parameters *and* running statistics) and the two head convolutions are copied; the LTC
neurons' tau path (``*.tau_conv``, ``*.tau_bn``, or ``*.tau_param`` for ``model.tau_mode=channel``)
has no counterpart in an ANN and keeps its values, whatever the ``tau_mode`` (the report's notes
say so for a mode other than the paper's; a SPYv4 source's tau path of another shape, i.e. another
``tau_mode``, is skipped and reported). Sources:

* a spyolo checkpoint (a dict with ``"model"``), of the ANN twin or of SPYv4;
* a bare spyolo state dict (``conv1.conv.weight``, ``block1.c1.bn.running_mean``, ``head1.weight``, ...);
* a YOLOv4-tiny state dict in the widely shared naming of the public VOC and COCO weights:
  ``backbone.conv1``, ``backbone.conv2``, ``backbone.conv3``,
  ``backbone.resblock_body{1,2,3}.conv{1,2,3,4}``, ``conv_for_P5``, ``yolo_headP5.0``,
  ``upsample.upsample.0``, ``yolo_headP4.0`` (each ``<name>.conv.weight`` and
  ``<name>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}``) and the heads
  ``yolo_headP5.1`` / ``yolo_headP4.1`` (``.weight``, ``.bias``);
* the authors' released SPYv4 (byin-cwi/sFPTT), a state dict in its own naming
  (:mod:`spyolo.models.sfptt`; every tensor maps, the tau path included);
* a Darknet ``.weights`` file of YOLOv4-tiny, such as the original COCO ``yolov4-tiny.weights``
  (:mod:`spyolo.models.darknet`; the ``.cfg`` beside it, if any, is checked against the file, and
  the ``.names`` beside it, if any, names its classes).

Either may be a path (read with ``torch.load(..., weights_only=True)``, or the Darknet reader) or
a dict in memory. Heads trained on other classes (another number of classes, e.g. 80-class COCO
weights into a 20-class model, or, when the source names its classes, other names) are copied as
``heads`` (``model.init_heads``) says: ``"names"`` gives each anchor slot its class-agnostic part,
the box (``tx, ty, tw, th``) and objectness channels of the weight and the bias, and the class
channels of the classes both sides name (matched by name: :mod:`spyolo.utils.classnames`), the
other class channels keep their init; ``"boxes"`` copies the box and objectness channels only;
``"matching"`` skips such a head whole; ``"auto"``, the default, is ``"names"`` when the source
names its classes and shares one with the model, else ``"boxes"`` (all reported). The same classes
in another order are remapped by name whatever ``heads`` says. Any other shape mismatch, a
non-finite value, or a source with none of the expected keys, is a
:class:`~spyolo.errors.TransferError` naming the key and both shapes. A SPYv4 source also
brings its tau path (a SPYv4 model then continues from it as it was). An ANN twin of event frames
reads the ``T`` bins stacked (``2T`` input channels): into SPYv4, which reads one bin per
timestep, its first kernel goes as the sum of the ``T`` per-bin kernels (:func:`_first_layer`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spyolo.errors import TransferError
from spyolo.models.darknet import companion_names, is_darknet_weights, read_darknet_names, read_darknet_weights
from spyolo.models.sfptt import is_sfptt_state, read_sfptt_state
from spyolo.snn import ltc_layers
from spyolo.utils.choices import MODEL_INIT_HEADS
from spyolo.utils.classnames import ClassMatching, match_classes
from spyolo.utils.tau_modes import DEFAULT_TAU_MODE
from spyolo.utils.text import first_few
from spyolo.utils.torchfile import read_torch_file

__all__ = ["TransferReport", "read_state_source", "transfer_weights", "yolov4_tiny_key"]

_YOLOV4_TINY_LAYERS = {
    "backbone.conv1": "conv1",
    "backbone.conv2": "conv2",
    "backbone.conv3": "conv3",
    "conv_for_P5": "conv_p5",
    "yolo_headP5.0": "neck1",
    "upsample.upsample.0": "conv_up",
    "yolo_headP4.0": "neck2",
    "yolo_headP5.1": "head1",
    "yolo_headP4.1": "head2",
}
_RESBLOCK = re.compile(r"^backbone\.resblock_body([123])\.conv([1234])\.(.+)$")
_HEADS = ("head1.", "head2.")


def yolov4_tiny_key(key: str) -> str | None:
    """The spyolo name of a YOLOv4-tiny state-dict key (``None`` for a key with no counterpart)."""
    key = key.removeprefix("module.")
    match = _RESBLOCK.match(key)
    if match:
        return f"block{match.group(1)}.c{match.group(2)}.{match.group(3)}"
    for prefix, target in _YOLOV4_TINY_LAYERS.items():
        if key.startswith(prefix + "."):
            return target + key[len(prefix):]
    return None


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did.

    Attributes:
        source: where the weights came from (a path, or ``"<dict>"``).
        source_kind: ``"spyolo checkpoint"``, ``"spyolo state dict"`` or ``"YOLOv4-tiny state dict"``.
        loaded: model keys that received a tensor.
        skipped: ``(model key, reason)`` of source tensors not loaded (a head of another shape).
        partial: head keys of which only the box and objectness channels were loaded (also in ``loaded``).
        left_at_init: model keys that kept their values (no counterpart in the source).
        unused: source keys with no counterpart in the model.
        notes: what else a user should know (heads remapped by class name, another centre scale).
    """

    source: str
    source_kind: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines: counts, the skipped keys with their reasons, and what kept its init."""
        groups = sorted({".".join(k.split(".")[-2:]) for k in self.left_at_init})
        lines = [
            f"weights from {self.source} ({self.source_kind}): {len(self.loaded)} tensors loaded, "
            f"{len(self.skipped)} skipped, {len(self.left_at_init)} left at their initial values"
            + (f", {len(self.unused)} source tensors unused" if self.unused else ""),
        ]
        lines += [f"  skipped {key}: {reason}" for key, reason in self.skipped]
        lines += [f"  note: {note}" for note in self.notes]
        if self.left_at_init:
            lines.append(f"  left at init: {len(self.left_at_init)} tensors ({', '.join(groups)})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def read_state_source(
    source: str | Path | Mapping[str, Any], cfg: str | Path | None = None, width: float | None = None
) -> tuple[dict[str, torch.Tensor], str, str, list[str] | None, float | None]:
    """The tensors of a weights source by spyolo name, with where they came from.

    Returns ``(tensors, where, kind, class names or None, scale_xy or None)``; a YOLOv4-tiny state
    dict in the shared naming is renamed to spyolo's, a Darknet ``.weights`` file is read by
    :func:`spyolo.models.darknet.read_darknet_weights` (its ``cfg``, or the one beside it, checked).

    Raises:
        TransferError: unreadable or foreign file (names it and the problem).
    """
    names: list[str] | None = None
    scale_xy: float | None = None
    if isinstance(source, Mapping):
        raw, where = source, "<dict>"
    else:
        path = Path(source)
        if not path.is_file():
            raise TransferError(f"{path}: weights file not found")
        if is_darknet_weights(path):
            dark = read_darknet_weights(path, cfg=cfg, width=width)
            scale = dark.spec.scale_xy if dark.spec is not None else None
            names_file = companion_names(path)
            names = read_darknet_names(names_file, dark.num_classes) if names_file is not None else None
            return dict(dark.state), str(path), dark.describe(), names, scale
        raw = read_torch_file(path, TransferError, "weights file")
        if not isinstance(raw, Mapping):
            raise TransferError(f"{path}: expected a state dict or a checkpoint dict, got {type(raw).__name__}")
        where = str(path)
    if "model" in raw and isinstance(raw["model"], Mapping):
        state, kind = raw["model"], "spyolo checkpoint"
        if isinstance(raw.get("class_names"), (list, tuple)):
            names = [str(n) for n in raw["class_names"]]
        config = raw.get("config")
        if isinstance(config, Mapping) and isinstance(config.get("model"), Mapping):
            value = config["model"].get("scale_xy", 1.0)
            scale_xy = float(value) if isinstance(value, (int, float)) else None
    else:
        state, kind = raw, "spyolo state dict"
    if is_sfptt_state(state):
        release = read_sfptt_state(state, where)
        kind = (f"the sFPTT release's SPYv4 state dict ({release.checked_copies} tensors stored twice, the copies "
                f"equal)")
        return {**release.tensors, **release.unused, **release.unknown}, where, kind, names, 1.0
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors and not any("." in k and k.split(".")[0] in _SPYOLO_TOP for k in tensors) and any(
            yolov4_tiny_key(k) for k in tensors):
        kind = "YOLOv4-tiny state dict"
        tensors = {(yolov4_tiny_key(k) or f"<unmapped>{k}"): v for k, v in tensors.items()}
    return tensors, where, kind, names, scale_xy


_SPYOLO_TOP = {"conv1", "conv2", "block1", "block2", "block3", "conv3", "conv_p5", "neck1", "head1", "conv_up",
               "neck2", "head2"}


def _class_mapping(source: Sequence[str] | None, target: Sequence[str] | None) -> tuple[str, list[int] | None]:
    """How the heads' class channels carry over: ``("same" | "remap" | "differ" | "unknown", order)``.

    ``order[i]`` is the source class of target class ``i`` (for ``"remap"``).
    """
    if source is None or target is None:
        return "unknown", None
    if list(source) == list(target):
        return "same", None
    if len(source) == len(target) and len(set(source)) == len(source) and set(source) == set(target):
        return "remap", [list(source).index(name) for name in target]
    return "differ", None


def _remap_head(tensor: torch.Tensor, order: list[int]) -> torch.Tensor:
    """A head weight or bias with its class channels put in ``order`` (per anchor slot)."""
    per_slot = 5 + len(order)
    slots = tensor.shape[0] // per_slot
    index = torch.tensor([s * per_slot + c for s in range(slots) for c in [*range(5), *(5 + i for i in order)]])
    return tensor.index_select(0, index)


@torch.no_grad()
def transfer_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    class_names: Sequence[str] | None = None,
    cfg: str | Path | None = None,
    heads: str = "auto",
) -> TransferReport:
    """Copy the weights of ``source`` into ``model`` (SPYv4 or the ANN twin) by name; see the module doc.

    Tensors are copied in place (device, dtype and memory layout of the model are kept).

    Args:
        model: the model to fill.
        source: a spyolo checkpoint, a state dict (spyolo, YOLOv4-tiny or the sFPTT release's
            naming), a Darknet ``.weights`` file, or a dict in memory.
        class_names: the model's classes, in label order. When the source names its classes (a
            spyolo checkpoint does; a Darknet file through the ``.names`` beside it): the same list
            copies the heads, the same classes in another order copy them remapped by name, other
            classes are treated as ``heads`` says (reported).
        cfg: the Darknet ``.cfg`` of a ``.weights`` source (default: the one beside it, if any).
        heads: for heads of other classes: ``"names"`` (each anchor slot's box and objectness
            channels, and the class channels of the classes matched by name,
            :func:`spyolo.utils.classnames.match_classes`), ``"boxes"`` (the box and objectness
            channels only), ``"matching"`` (nothing) or ``"auto"`` (``"names"`` when the source
            names its classes and shares one with ``class_names``, else ``"boxes"``).

    Raises:
        TransferError: unreadable source, no expected key at all, a shape mismatch other
            than a head's (the message names the key and both shapes), or a non-finite value.
    """
    if heads not in MODEL_INIT_HEADS:
        raise ValueError(f"transfer_weights: heads must be one of {', '.join(MODEL_INIT_HEADS)}, got {heads!r}")
    tensors, where, kind, source_names, source_scale = read_state_source(
        source, cfg=cfg, width=getattr(model, "width", None))
    target = model.state_dict()
    report = TransferReport(source=where, source_kind=kind)
    matched = [k for k in tensors if k in target]
    if not matched:
        examples = ", ".join(list(tensors)[:3]) or "(no tensors)"
        raise TransferError(
            f"{where}: none of its keys is a weight of this model (found e.g. {examples}; expected spyolo names such "
            f"as conv1.conv.weight or YOLOv4-tiny names such as backbone.conv1.conv.weight)"
        )
    relation, order = _class_mapping(source_names, list(class_names) if class_names is not None else None)
    by_name = (match_classes(source_names, list(class_names))
               if source_names is not None and class_names is not None else None)
    if heads == "auto":
        heads = "names" if by_name is not None and by_name.pairs else "boxes"
    if heads == "names" and by_name is None:
        heads = "boxes"  # nothing to match: the source names no classes
        report.notes.append("model.init_heads=names: the source names no classes; its heads give the box and "
                            "objectness channels only (as model.init_heads=boxes)")
    for key in matched:
        src, dst = tensors[key], target[key]
        if src.is_floating_point() and not bool(torch.isfinite(src).all()):
            raise TransferError(f"{where}: {key} holds NaN or infinite values; these weights cannot start a model")
        if key.startswith(_HEADS):
            slots = _head_slots(model, key)
            other = relation == "differ" or src.shape != dst.shape
            classes = by_name.source_of_target() if heads == "names" and by_name is not None else None
            if heads in ("names", "boxes") and other and _copy_slot_channels(src, dst, slots, classes):
                report.loaded.append(key)
                if classes is None or None in classes:
                    report.partial.append(key)
                continue
            if relation == "differ":
                report.skipped.append((key, f"the source's classes ({_short(source_names)}) are not the model's "
                                            f"({_short(class_names)}): kept at its init"))
                continue
            if relation == "remap" and src.shape == dst.shape:
                src = _remap_head(src, order)
        if key == _FIRST_CONV and src.shape != dst.shape:
            src = _first_layer(src, dst, where, report)
        if src.shape != dst.shape and _is_tau_key(key):
            report.skipped.append((key, f"shape {tuple(src.shape)} in the source, {tuple(dst.shape)} in the model "
                                        f"(the tau path of another model.tau_mode): kept at its init"))
            continue
        if src.shape != dst.shape:
            if key.startswith(_HEADS):
                report.skipped.append((key, f"shape {tuple(src.shape)} in the source, {tuple(dst.shape)} in the model "
                                            f"(another number of classes or anchors): kept at its init"))
                continue
            raise TransferError(
                f"{where}: {key} has shape {tuple(src.shape)} in the source but {tuple(dst.shape)} in the model "
                f"(another model width or layout?)"
            )
        dst.copy_(src.to(dst.dtype))
        report.loaded.append(key)
    copied_heads = any(k.startswith(_HEADS) for k in report.loaded)
    by_name_heads = heads == "names" and by_name is not None and relation == "differ" and copied_heads
    if by_name_heads:
        report.notes.append(_names_note(by_name, report.partial))
    elif report.partial:
        report.notes.append(f"{', '.join(report.partial)}: the box and objectness channels of each anchor slot were "
                            f"copied (model.init_heads=boxes); the class channels keep their init")
    if relation == "remap" and copied_heads:
        report.notes.append(f"the source's classes are the model's in another order ({_short(source_names)}): "
                            f"the heads' class channels were remapped by name")
    model_scale = float(getattr(model, "scale_xy", 1.0))
    if copied_heads and source_scale is not None and source_scale != model_scale:
        report.notes.append(f"the source decodes box centres with scale_xy={source_scale:g}, the model with "
                            f"{model_scale:g} (model.scale_xy)")
    done = set(report.loaded) | {k for k, _ in report.skipped}
    report.left_at_init = [k for k in target if k not in done]
    other_modes = sorted({layer.tau_mode for _n, layer in ltc_layers(model)} - {DEFAULT_TAU_MODE})
    tau_mode = ", ".join(other_modes)
    if other_modes:
        kept = [k for k in target if _is_tau_key(k) and k not in report.loaded]
        loaded = [k for k in report.loaded if _is_tau_key(k)]
        if kept:
            report.notes.append(f"model.tau_mode={tau_mode}: its tau path ({len(kept)} tensors) has no counterpart in "
                                f"the source and stays at its initial values")
        if loaded:
            report.notes.append(f"model.tau_mode={tau_mode}: {len(loaded)} tau-path tensors of the same shape were "
                                f"loaded from the source; they mean the same only if the source has the same tau_mode")
    report.unused = [k for k in tensors if k not in target]
    return report


def _head_slots(model: nn.Module, key: str) -> int | None:
    """Anchor slots of the head that ``key`` belongs to (``head1``: the first mask), or ``None``."""
    masks = getattr(model, "masks", None)
    index = 0 if key.startswith("head1.") else 1
    if not isinstance(masks, Sequence) or len(masks) <= index:
        return None
    return len(masks[index])


def _copy_slot_channels(src: torch.Tensor, dst: torch.Tensor, slots: int | None,
                        classes: Sequence[int | None] | None = None) -> bool:
    """Copy each anchor slot's first 5 channels (``tx, ty, tw, th, tobj``) of a head weight or bias, and
    with ``classes`` (for each class of ``dst``, the class of ``src`` it copies, or ``None``) those
    class channels too.

    Both tensors hold ``slots`` slots of ``5 + classes`` channels along dim 0 (their class counts may
    differ) and the same input shape. Returns whether it copied (``False``: the layouts do not fit).
    """
    if not slots or src.ndim != dst.ndim or src.shape[1:] != dst.shape[1:]:
        return False
    if src.shape[0] % slots or dst.shape[0] % slots:
        return False
    per_src, per_dst = src.shape[0] // slots, dst.shape[0] // slots
    if per_src < 6 or per_dst < 6:  # 5 + at least one class
        return False
    if classes is not None and (len(classes) != per_dst - 5 or any(c is not None and c >= per_src - 5
                                                                    for c in classes)):
        return False
    pairs = [(c, i) for i, c in enumerate(classes or []) if c is not None]
    for slot in range(slots):
        s0, d0 = slot * per_src, slot * per_dst
        dst[d0: d0 + 5].copy_(src[s0: s0 + 5].to(dst.dtype))
        for c, i in pairs:
            dst[d0 + 5 + i].copy_(src[s0 + 5 + c].to(dst.dtype))
    return True


def _names_note(matching: ClassMatching, partial: Sequence[str]) -> str:
    """What ``model.init_heads=names`` copied, for the report."""
    pairs = len(matching.pairs)
    text = (f"the heads' box and objectness channels and the class channels of the {pairs} of the model's "
            f"{len(matching.target)} classes the source names too ({matching.describe_pairs(8)}) were copied, "
            f"matched by name (model.init_heads=names)")
    if partial:
        missing = matching.unmatched_target
        text += (f"; the class channels of {len(missing)} class{'es' if len(missing) != 1 else ''} keep their "
                 f"init ({_short(missing)})")
    return text


_FIRST_CONV = "conv1.conv.weight"
_TAU_PARTS = (".tau_conv.", ".tau_bn.")


def _is_tau_key(key: str) -> bool:
    """Whether ``key`` belongs to an LTC layer's time-constant path (no ANN counterpart)."""
    return any(part in key for part in _TAU_PARTS) or key.endswith(".tau_param")


def _first_layer(src: torch.Tensor, dst: torch.Tensor, where: str, report: TransferReport) -> torch.Tensor:
    """The first convolution of an ANN twin that reads ``k`` stacked frames (``k * C`` input channels),
    for a model that reads one frame per timestep (``C``): the sum of the ``k`` per-frame kernels.

    The twin's pre-activation is ``sum_k W_k * x_k``; a spiking layer that integrates ``W * x_t``
    over the timesteps reaches it when ``W = sum_k W_k`` (each frame then weighs as in the twin).
    Other shapes are returned unchanged (and refused by the caller).
    """
    if src.ndim != 4 or src.shape[0] != dst.shape[0] or src.shape[2:] != dst.shape[2:]:
        return src
    frames, rest = divmod(src.shape[1], dst.shape[1])
    if rest or frames < 2:
        return src
    report.notes.append(f"{_FIRST_CONV}: the source reads {frames} stacked frames of {dst.shape[1]} channels; the "
                        f"model one frame per timestep: its kernel is the sum of the {frames} per-frame kernels")
    return src.reshape(src.shape[0], frames, dst.shape[1], *src.shape[2:]).sum(dim=1)


def _short(names: Sequence[str] | None, limit: int = 5) -> str:
    if names is None:
        return "unknown"
    return first_few(names, limit, "classes")
