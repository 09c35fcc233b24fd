"""Start a detector from trained weights: :func:`transfer_weights` (ANN -> SNN weight transfer).

The paper's recipe starts SPYv4 from a trained YOLOv4-tiny: every convolution, every BatchNorm
(affine parameters *and* running statistics) and the two head convolutions are copied; the LTC
neurons' tau path (``*.tau_conv``, ``*.tau_bn``) has no counterpart in an ANN and keeps its
values. Sources:

* a spyolo checkpoint (a dict with ``"model"``), of the ANN twin or of SPYv4;
* a bare spyolo state dict (``conv1.conv.weight``, ``block1.c1.bn.running_mean``, ``head1.weight``, ...);
* a YOLOv4-tiny state dict in the widely shared naming of the public VOC and COCO weights:
  ``backbone.conv1``, ``backbone.conv2``, ``backbone.conv3``,
  ``backbone.resblock_body{1,2,3}.conv{1,2,3,4}``, ``conv_for_P5``, ``yolo_headP5.0``,
  ``upsample.upsample.0``, ``yolo_headP4.0`` (each ``<name>.conv.weight`` and
  ``<name>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}``) and the heads
  ``yolo_headP5.1`` / ``yolo_headP4.1`` (``.weight``, ``.bias``).

Either may be a path (read with ``torch.load(..., weights_only=True)``) or a dict in memory. A
head whose shape differs (another number of classes, e.g. 80-class COCO weights into a
20-class model) is skipped and reported; any other shape mismatch, or a source with none of the
expected keys, is a :class:`~spyolo.errors.TransferError` naming the key and both shapes. A
SPYv4 source also brings its tau path (a SPYv4 model then continues from it as it was).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spyolo.errors import TransferError

__all__ = ["TransferReport", "transfer_weights", "yolov4_tiny_key"]

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
        left_at_init: model keys that kept their values (no counterpart in the source).
        unused: source keys with no counterpart in the model.
    """

    source: str
    source_kind: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines: counts, the skipped keys with their reasons, and what kept its init."""
        groups = sorted({".".join(k.split(".")[-2:]) for k in self.left_at_init})
        lines = [
            f"weights from {self.source} ({self.source_kind}): {len(self.loaded)} tensors loaded, "
            f"{len(self.skipped)} skipped, {len(self.left_at_init)} left at their initial values"
            + (f", {len(self.unused)} source tensors unused" if self.unused else ""),
        ]
        lines += [f"  skipped {key}: {reason}" for key, reason in self.skipped]
        if self.left_at_init:
            lines.append(f"  left at init: {len(self.left_at_init)} tensors ({', '.join(groups)})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _read_source(source: str | Path | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    if isinstance(source, Mapping):
        return source, "<dict>"
    path = Path(source)
    if not path.is_file():
        raise TransferError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise TransferError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, Mapping):
        raise TransferError(f"{path}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    return obj, str(path)


@torch.no_grad()
def transfer_weights(model: nn.Module, source: str | Path | Mapping[str, Any]) -> TransferReport:
    """Copy the weights of ``source`` into ``model`` (SPYv4 or the ANN twin) by name; see the module doc.

    Tensors are copied in place (device, dtype and memory layout of the model are kept).

    Raises:
        TransferError: unreadable source, no expected key at all, or a shape mismatch other
            than a head's (the message names the key and both shapes).
    """
    raw, where = _read_source(source)
    if "model" in raw and isinstance(raw["model"], Mapping):
        state, kind = raw["model"], "spyolo checkpoint"
    else:
        state, kind = raw, "spyolo state dict"
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    target = model.state_dict()
    if not any(k in target for k in tensors) and any(yolov4_tiny_key(k) for k in tensors):
        kind = "YOLOv4-tiny state dict"
        mapped = {}
        for k, v in tensors.items():
            name = yolov4_tiny_key(k)
            mapped[name if name is not None else f"<unmapped>{k}"] = v
        tensors = mapped
    report = TransferReport(source=where, source_kind=kind)
    matched = [k for k in tensors if k in target]
    if not matched:
        examples = ", ".join(list(tensors)[:3]) or "(no tensors)"
        raise TransferError(
            f"{where}: none of its keys is a weight of this model (found e.g. {examples}; expected spyolo names such "
            f"as conv1.conv.weight or YOLOv4-tiny names such as backbone.conv1.conv.weight)"
        )
    for key in matched:
        src, dst = tensors[key], target[key]
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
    done = set(report.loaded) | {k for k, _ in report.skipped}
    report.left_at_init = [k for k in target if k not in done]
    report.unused = [k for k in tensors if k not in target]
    return report
