"""Darknet YOLOv4-tiny files: the ``.cfg`` network description and the ``.weights`` parameters.

The original YOLOv4-tiny (``yolov4-tiny.cfg`` + ``yolov4-tiny.weights``, trained on COCO) is the
same network as spyolo's ANN twin (:class:`~spyolo.models.spyv4.YOLOv4Tiny`) at width 1. This
module reads both files into a spyolo state dict, checking them against the model first:

* :func:`read_darknet_cfg` parses a ``.cfg`` and checks, section by section, that it describes
  YOLOv4-tiny (the 38 layers of its topology: filters, kernel sizes, strides, routes, pools,
  activations); it returns a :class:`DarknetSpec` (width multiplier, classes, anchors, masks,
  ``scale_x_y``, input size). Another network (full YOLOv4, YOLOv3-tiny, ...) is an error naming
  the first layer that differs.
* :func:`read_darknet_weights` reads a ``.weights`` file: a header of three int32 (major, minor,
  revision) and a "seen" count (int64 from format 0.2 on, int32 before), then float32 values
  layer by layer in ``.cfg`` order. A convolution with batch norm stores BN beta, gamma, running
  mean, running variance, then the kernel ``(out, in, k, k)``; one without (the two heads) stores
  its bias, then the kernel. The layers in file order are :data:`DARKNET_ORDER`. The file must
  hold exactly the values the network needs; a truncated file, trailing bytes, a text file or a
  file of another network is one :class:`~spyolo.errors.TransferError` that says how many values
  it holds against how many are needed.

Without a ``.cfg`` the class count is the only free quantity (the topology is fixed), and it is
read off the number of values; a count no class number explains is an error. A ``.cfg`` lying
beside the weights with the same stem (``yolov4-tiny.weights`` -> ``yolov4-tiny.cfg``) is found
and checked automatically (:func:`companion_cfg`).

Darknet decodes box centres as ``sigmoid(t) * scale_x_y - (scale_x_y - 1) / 2 + cell``;
yolov4-tiny's ``[yolo]`` layers use ``scale_x_y = 1.05``. spyolo's heads carry the same setting
(``model.scale_xy``, :func:`spyolo.models.heads.decode_head`); a converted model keeps the cfg's
value, so that it reproduces Darknet's detections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spyolo.errors import TransferError
from spyolo.utils.torchfile import looks_like_text

__all__ = [
    "DARKNET_ORDER",
    "DarknetSpec",
    "DarknetWeights",
    "DARKNET_SCALE_XY",
    "companion_cfg",
    "companion_names",
    "darknet_layers",
    "darknet_model",
    "is_darknet_weights",
    "read_darknet_cfg",
    "read_darknet_names",
    "read_darknet_weights",
]

DARKNET_ORDER: tuple[str, ...] = (
    "conv1", "conv2",
    "block1.c1", "block1.c2", "block1.c3", "block1.c4",
    "block2.c1", "block2.c2", "block2.c3", "block2.c4",
    "block3.c1", "block3.c2", "block3.c3", "block3.c4",
    "conv3", "conv_p5", "neck1", "head1", "conv_up", "neck2", "head2",
)
"""spyolo names of YOLOv4-tiny's 21 convolutions, in the order of the ``.cfg`` and ``.weights``."""

_BASE_CHANNELS = (32, 64, 64, 128, 256, 512, 256, 512, 128, 256)
_HEADER_BYTES_NEW = 20  # major, minor, revision (int32) + seen (int64)
_HEADER_BYTES_OLD = 16  # seen as int32 (formats before 0.2)


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of YOLOv4-tiny as Darknet stores it."""

    name: str  # spyolo module name (DARKNET_ORDER)
    in_channels: int
    out_channels: int
    size: int
    stride: int
    batch_norm: bool

    @property
    def num_values(self) -> int:
        kernel = self.out_channels * self.in_channels * self.size * self.size
        return kernel + (4 if self.batch_norm else 1) * self.out_channels


def darknet_layers(width: float, num_classes: int, anchors_per_head: Sequence[int] = (3, 3)) -> list[ConvLayer]:
    """YOLOv4-tiny's convolutions at a width multiplier and class count, in Darknet file order."""
    from spyolo.models.spyv4 import scaled_channels

    c1, c2, b1, b2, b3, c3, p5, n1, up, n2 = (scaled_channels(c, width) for c in _BASE_CHANNELS)
    out = (5 + num_classes)
    layers = [ConvLayer("conv1", 3, c1, 3, 2, True), ConvLayer("conv2", c1, c2, 3, 2, True)]
    block_in = c2
    for index, c in enumerate((b1, b2, b3), start=1):
        half = c // 2
        layers += [
            ConvLayer(f"block{index}.c1", block_in, c, 3, 1, True),
            ConvLayer(f"block{index}.c2", half, half, 3, 1, True),
            ConvLayer(f"block{index}.c3", half, half, 3, 1, True),
            ConvLayer(f"block{index}.c4", c, c, 1, 1, True),
        ]
        block_in = 2 * c
    layers += [
        ConvLayer("conv3", 2 * b3, c3, 3, 1, True),
        ConvLayer("conv_p5", c3, p5, 1, 1, True),
        ConvLayer("neck1", p5, n1, 3, 1, True),
        ConvLayer("head1", n1, anchors_per_head[0] * out, 1, 1, False),
        ConvLayer("conv_up", p5, up, 1, 1, True),
        ConvLayer("neck2", up + b3, n2, 3, 1, True),
        ConvLayer("head2", n2, anchors_per_head[1] * out, 1, 1, False),
    ]
    return layers


def _count(width: float, num_classes: int, anchors_per_head: Sequence[int] = (3, 3)) -> int:
    return sum(layer.num_values for layer in darknet_layers(width, num_classes, anchors_per_head))


# --------------------------------------------------------------------------------------- cfg


@dataclass(frozen=True)
class DarknetSpec:
    """What a YOLOv4-tiny ``.cfg`` says about the network.

    Attributes:
        path: the ``.cfg`` file.
        width: channel multiplier (``conv1`` filters / 32; 1.0 for the released network).
        num_classes: ``classes`` of the ``[yolo]`` layers.
        anchors: the ``(w, h)`` anchor pairs in pixels at the input size.
        masks: anchor indices of the stride-32 head and of the stride-16 head.
        scale_xy: ``scale_x_y`` of the ``[yolo]`` layers (1.0 when absent).
        input_size: ``(height, width)`` of ``[net]``.
    """

    path: str
    width: float
    num_classes: int
    anchors: tuple[tuple[float, float], ...]
    masks: tuple[tuple[int, ...], tuple[int, ...]]
    scale_xy: float
    input_size: tuple[int, int]


def _parse_sections(path: Path) -> list[tuple[str, dict[str, str], int]]:
    """``(section, {key: value}, line number)`` of every ``[section]`` of a Darknet cfg, in order."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TransferError(f"{path}: cannot read the Darknet cfg ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TransferError(
            f"{path}: not a Darknet cfg (not UTF-8 text: byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    sections: list[tuple[str, dict[str, str], int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise TransferError(f"{path}: line {number}: malformed section header {line[:40]!r}")
            sections.append((line[1:-1].strip().lower(), {}, number))
            continue
        if "=" not in line or not sections:
            raise TransferError(f"{path}: line {number}: expected key=value inside a [section], got {line[:40]!r}")
        key, value = line.split("=", 1)
        sections[-1][1][key.strip().lower()] = value.strip()
    if not sections:
        raise TransferError(f"{path}: not a Darknet cfg (no [section] found)")
    return sections


def _template(width: float, num_classes: int) -> list[tuple[str, dict[str, str]]]:
    """YOLOv4-tiny's layers (after ``[net]``) as ``(section, the keys that define it)``."""
    convs = {layer.name: layer for layer in darknet_layers(width, num_classes)}

    def conv(name: str) -> tuple[str, dict[str, str]]:
        layer = convs[name]
        keys = {"filters": str(layer.out_channels), "size": str(layer.size), "stride": str(layer.stride)}
        if layer.batch_norm:
            keys.update(batch_normalize="1", activation="leaky")
        else:
            keys.update(batch_normalize="0", activation="linear")
        return "convolutional", keys

    out: list[tuple[str, dict[str, str]]] = [conv("conv1"), conv("conv2")]
    for index in (1, 2, 3):
        b = f"block{index}"
        out += [
            conv(f"{b}.c1"), ("route", {"layers": "-1", "groups": "2", "group_id": "1"}),
            conv(f"{b}.c2"), conv(f"{b}.c3"), ("route", {"layers": "-1,-2"}),
            conv(f"{b}.c4"), ("route", {"layers": "-6,-1"}), ("maxpool", {"size": "2", "stride": "2"}),
        ]
    out += [conv("conv3"), conv("conv_p5"), conv("neck1"), conv("head1"), ("yolo", {}),
            ("route", {"layers": "-4"}), conv("conv_up"), ("upsample", {"stride": "2"}),
            ("route", {"layers": "-1,23"}), conv("neck2"), conv("head2"), ("yolo", {})]
    return out


_DEFAULTS = {"batch_normalize": "0", "stride": "1", "groups": "1", "group_id": "0", "activation": "logistic"}


def _normalise(section: str, key: str, value: str, index: int) -> str:
    """A cfg value in the form the template uses (route layers as absolute indices)."""
    value = value.replace(" ", "")
    if section == "route" and key == "layers":
        try:
            return ",".join(str(int(v) if int(v) >= 0 else index + int(v)) for v in value.split(",") if v)
        except ValueError:
            return value
    return value


def read_darknet_cfg(path: str | Path) -> DarknetSpec:
    """Parse a Darknet ``.cfg`` and check that it is YOLOv4-tiny's (see the module doc).

    Raises:
        TransferError: unreadable file, not a cfg, or another network (names the first layer that
            differs and what YOLOv4-tiny has there).
    """
    path = Path(path)
    sections = _parse_sections(path)
    if sections[0][0] not in ("net", "network"):
        raise TransferError(f"{path}: not a Darknet cfg (the first section is [{sections[0][0]}], expected [net])")
    net, layers = sections[0][1], sections[1:]
    yolos = [keys for name, keys, _ in layers if name == "yolo"]
    convs = [keys for name, keys, _ in layers if name == "convolutional"]
    try:
        width = int(convs[0]["filters"]) / 32 if convs else 1.0
        num_classes = int(yolos[0].get("classes", "80")) if yolos else 80
    except (KeyError, ValueError):
        width, num_classes = 1.0, 80
    template = _template(width if width > 0 else 1.0, max(num_classes, 1))
    prefix = f"{path}: not a YOLOv4-tiny cfg"
    for index, (name, keys, line) in enumerate(layers):
        if index >= len(template):
            raise TransferError(f"{prefix}: {len(layers)} layers after [net], YOLOv4-tiny has {len(template)} "
                                f"(line {line}: an extra [{name}])")
        want_name, want = template[index]
        if name != want_name:
            raise TransferError(
                f"{prefix}: layer {index} (line {line}) is [{name}], YOLOv4-tiny has [{want_name}] there "
                f"({len(layers)} layers after [net], YOLOv4-tiny has {len(template)})"
            )
        if name == "convolutional" and keys.get("pad", "0").strip() != "1":
            if keys.get("padding", "0").strip() != str(int(want["size"]) // 2):
                raise TransferError(f"{prefix}: layer {index} (line {line}) [convolutional] has no 'same' padding "
                                    f"(pad=1), as YOLOv4-tiny has")
        for key, value in want.items():
            got = _normalise(name, key, keys.get(key, _DEFAULTS.get(key, "")), index)
            if got != _normalise(name, key, value, index):
                raise TransferError(
                    f"{prefix}: layer {index} (line {line}) [{name}] has {key}={got or '(unset)'}, "
                    f"YOLOv4-tiny has {key}={value} there"
                )
    if len(layers) < len(template):
        raise TransferError(f"{prefix}: {len(layers)} layers after [net], YOLOv4-tiny has {len(template)}")
    if width * 32 != int(width * 32) or width <= 0:
        raise TransferError(f"{path}: conv1 has {convs[0].get('filters')} filters; expected 32 x a width multiplier")
    anchors, masks, scales = _yolo_geometry(path, yolos, num_classes)
    try:
        size = (int(net.get("height", "416")), int(net.get("width", "416")))
        channels = int(net.get("channels", "3"))
    except ValueError:
        raise TransferError(f"{path}: [net] width, height and channels must be integers") from None
    if channels != 3 or size[0] <= 0 or size[0] % 32 or size[1] <= 0 or size[1] % 32:
        raise TransferError(f"{path}: [net] must give 3 channels and a width and height that are positive "
                            f"multiples of 32, got channels={channels}, width={size[1]}, height={size[0]}")
    return DarknetSpec(str(path), float(width), num_classes, anchors, masks, scales, size)


def _yolo_geometry(path: Path, yolos: list[dict[str, str]], num_classes: int):
    results = []
    for index, keys in enumerate(yolos):
        where = f"{path}: [yolo] layer {index + 1}"
        try:
            values = [float(v) for v in keys.get("anchors", "").replace(" ", "").split(",") if v]
            mask = tuple(int(v) for v in keys.get("mask", "").replace(" ", "").split(",") if v)
            classes = int(keys.get("classes", "80"))
            scale = float(keys.get("scale_x_y", "1"))
            num = int(keys.get("num", str(len(values) // 2)))
        except ValueError:
            raise TransferError(f"{where}: anchors, mask, classes, num and scale_x_y must be numbers") from None
        if len(values) < 2 or len(values) % 2 or num != len(values) // 2:
            raise TransferError(f"{where}: {len(values)} anchor values for num={num} anchors")
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise TransferError(f"{where}: anchors must be positive numbers")
        if len(mask) != 3 or any(not 0 <= m < num for m in mask):
            raise TransferError(f"{where}: mask {keys.get('mask')!r} must be three anchor indices in 0..{num - 1}")
        if classes != num_classes:
            raise TransferError(f"{where}: classes={classes}, but the first [yolo] layer has {num_classes}")
        if not (math.isfinite(scale) and 1.0 <= scale <= 2.0):
            raise TransferError(f"{where}: scale_x_y={scale} must be in [1, 2]")
        anchors = tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))
        results.append((anchors, mask, scale))
    (a0, m0, s0), (a1, m1, s1) = results
    if a0 != a1:
        raise TransferError(f"{path}: the two [yolo] layers list different anchors; spyolo's heads share one list")
    if s0 != s1:
        raise TransferError(f"{path}: the two [yolo] layers use different scale_x_y ({s0}, {s1})")
    return a0, (m0, m1), s0


def companion_cfg(weights: str | Path) -> Path | None:
    """The ``.cfg`` beside a ``.weights`` file with the same stem, if there is one."""
    candidate = Path(weights).with_suffix(".cfg")
    return candidate if candidate.is_file() else None


def is_darknet_weights(path: str | Path) -> bool:
    """Whether ``path`` names a Darknet weights file (by its ``.weights`` suffix)."""
    return Path(path).suffix.lower() == ".weights"


# ----------------------------------------------------------------------------------- weights


@dataclass
class DarknetWeights:
    """A Darknet weights file read into spyolo's ANN-twin naming.

    Attributes:
        state: ``conv1.conv.weight``, ``conv1.bn.{weight,bias,running_mean,running_var}``, ...,
            ``head1.weight``, ``head1.bias``, ... (float32 tensors).
        path: the ``.weights`` file.
        version: the header's ``(major, minor, revision)``.
        seen: images seen in training (from the header).
        width: width multiplier of the network.
        num_classes: classes of the heads.
        spec: the checked ``.cfg`` (``None`` without one).
    """

    state: dict[str, torch.Tensor]
    path: str
    version: tuple[int, int, int]
    seen: int
    width: float
    num_classes: int
    spec: DarknetSpec | None

    def describe(self) -> str:
        cfg = f", cfg {Path(self.spec.path).name} checked" if self.spec else ", no cfg"
        return (f"Darknet weights v{'.'.join(map(str, self.version))}, YOLOv4-tiny width {self.width:g}, "
                f"{self.num_classes} classes{cfg}")


def _infer_classes(path: Path, available: int, widths: Sequence[float]) -> tuple[float, int]:
    """Width and class count whose YOLOv4-tiny holds exactly ``available`` values (no cfg)."""
    for width in widths:
        base = _count(width, 0)
        per_class = _count(width, 1) - base
        extra = available - base
        if extra > 0 and extra % per_class == 0:
            return width, extra // per_class
    needs = ", ".join(f"{_count(w, 80):,} (width {w:g}, 80 classes)" for w in widths[:2])
    raise TransferError(
        f"{path}: holds {available:,} float32 values after its header, which no YOLOv4-tiny explains "
        f"(it needs e.g. {needs}): a truncated file, trailing bytes or another network; give its .cfg to check it"
    )


def read_darknet_weights(
    path: str | Path,
    cfg: str | Path | None = None,
    num_classes: int | None = None,
    width: float | None = None,
) -> DarknetWeights:
    """Read a YOLOv4-tiny ``.weights`` file (see the module doc).

    Args:
        path: the ``.weights`` file.
        cfg: its ``.cfg``; ``None`` looks for one beside the weights (:func:`companion_cfg`).
        num_classes: the class count the caller needs, if it needs one; a file of another count is
            an error (heads of another count are the caller's to skip: leave this ``None``).
        width: the width multiplier of the model the weights go into, if known; tried first when
            there is no cfg, and a file of another width is an error.

    Raises:
        TransferError: the problems of the module doc, each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise TransferError(f"{path}: weights file not found")
    cfg_path = Path(cfg) if cfg is not None else companion_cfg(path)
    spec = read_darknet_cfg(cfg_path) if cfg_path is not None else None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TransferError(f"{path}: cannot read the weights ({exc.strerror or exc})") from None
    if looks_like_text(data):
        raise TransferError(f"{path}: a text file, not Darknet weights "
                            f"(they are binary: a header, then float32 values)")
    if len(data) < 12:
        raise TransferError(f"{path}: {len(data)} bytes, shorter than a Darknet weights header (16 or 20 bytes)")
    major, minor, revision = (int(v) for v in np.frombuffer(data[:12], dtype="<i4"))
    if not (0 <= major < 1000 and 0 <= minor < 1000 and 0 <= revision < 100000):
        raise TransferError(f"{path}: not a Darknet weights file (its header reads version {major}.{minor}.{revision})")
    header = _HEADER_BYTES_NEW if major * 10 + minor >= 2 else _HEADER_BYTES_OLD
    if len(data) < header:
        raise TransferError(f"{path}: {len(data)} bytes, shorter than its {header}-byte Darknet header")
    seen = int(np.frombuffer(data[12:header], dtype="<i8" if header == _HEADER_BYTES_NEW else "<i4")[0])
    body = len(data) - header
    if body % 4:
        raise TransferError(f"{path}: {body:,} bytes after its {header}-byte header, not a whole number of "
                            f"float32 values (truncated or trailing bytes)")
    available = body // 4
    if spec is not None:
        net_width, classes = spec.width, spec.num_classes
        where = f"the cfg {Path(spec.path).name}"
    else:
        widths = [w for w in dict.fromkeys([width, 1.0, 0.5, 0.25]) if w is not None]
        net_width, classes = _infer_classes(path, available, widths)
        where = "its size"
    if width is not None and abs(net_width - width) > 1e-9:
        raise TransferError(f"{path}: YOLOv4-tiny at width {net_width:g} (from {where}), but the model has width "
                            f"{width:g}; pretrained Darknet weights need model.width={net_width:g}")
    if num_classes is not None and classes != num_classes:
        raise TransferError(f"{path}: weights for {classes} classes (from {where}), but {num_classes} are needed")
    layers = darknet_layers(net_width, classes)
    needed = sum(layer.num_values for layer in layers)
    if available != needed:
        raise TransferError(
            f"{path}: holds {available:,} float32 values after its {header}-byte header, but YOLOv4-tiny at width "
            f"{net_width:g} with {classes} classes ({where}) needs {needed:,}"
            + (" (truncated)" if available < needed else " (trailing bytes, or another network)")
        )
    values = np.frombuffer(data, dtype="<f4", offset=header)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise TransferError(f"{path}: {bad:,} of its {available:,} values are NaN or infinite")
    state: dict[str, torch.Tensor] = {}
    offset = 0

    def take(count: int, shape: tuple[int, ...]) -> torch.Tensor:
        nonlocal offset
        chunk = values[offset: offset + count]
        offset += count
        return torch.from_numpy(chunk.astype(np.float32).reshape(shape))

    for layer in layers:
        n = layer.out_channels
        kernel = (n, layer.in_channels, layer.size, layer.size)
        if layer.batch_norm:
            state[f"{layer.name}.bn.bias"] = take(n, (n,))
            state[f"{layer.name}.bn.weight"] = take(n, (n,))
            state[f"{layer.name}.bn.running_mean"] = take(n, (n,))
            state[f"{layer.name}.bn.running_var"] = take(n, (n,))
            state[f"{layer.name}.conv.weight"] = take(math.prod(kernel), kernel)
        else:
            state[f"{layer.name}.bias"] = take(n, (n,))
            state[f"{layer.name}.weight"] = take(math.prod(kernel), kernel)
    bad_var = [layer.name for layer in layers if layer.batch_norm and (state[f"{layer.name}.bn.running_var"] < 0).any()]
    if bad_var:
        raise TransferError(f"{path}: negative BN running variance in {bad_var[0]}: not YOLOv4-tiny weights in "
                            f"Darknet order")
    return DarknetWeights(state, str(path), (major, minor, revision), seen, net_width, classes, spec)


def read_darknet_names(path: str | Path, num_classes: int | None = None) -> list[str]:
    """Class names from a Darknet ``.names`` file (one per line; blank lines ignored).

    Raises:
        TransferError: unreadable or not UTF-8, no names, duplicates, or not ``num_classes`` of them.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise TransferError(f"{path}: cannot read the class names ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise TransferError(f"{path}: not a text file of class names (not UTF-8 at offset {exc.start})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise TransferError(f"{path}: no class names in it (one per line)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TransferError(f"{path}: class name {duplicates[0]!r} appears more than once")
    if num_classes is not None and len(names) != num_classes:
        raise TransferError(f"{path}: {len(names)} class names, but the weights have {num_classes} classes")
    return names


def companion_names(weights: str | Path) -> Path | None:
    """The ``.names`` file beside a ``.weights`` file with the same stem, if there is one."""
    candidate = Path(weights).with_suffix(".names")
    return candidate if candidate.is_file() else None


def darknet_model(weights: str | Path, cfg: str | Path | None = None):
    """The ANN twin (:class:`~spyolo.models.spyv4.YOLOv4Tiny`) holding a Darknet YOLOv4-tiny.

    Anchors, masks and ``scale_xy`` come from the cfg (``cfg``, or the one beside the weights);
    without one, YOLOv4-tiny's defaults (and ``scale_xy`` 1.05, the original cfg's). The model is in
    eval mode on the CPU.

    Returns:
        ``(model, DarknetWeights)``.
    """
    from spyolo.models.heads import DEFAULT_ANCHORS, DEFAULT_MASKS
    from spyolo.models.spyv4 import YOLOv4Tiny

    dark = read_darknet_weights(weights, cfg=cfg)
    spec = dark.spec
    model = YOLOv4Tiny(
        num_classes=dark.num_classes, width=dark.width,
        anchors=spec.anchors if spec else DEFAULT_ANCHORS, masks=spec.masks if spec else DEFAULT_MASKS,
        anchor_ref_size=spec.input_size[1] if spec else 416,
        scale_xy=spec.scale_xy if spec else DARKNET_SCALE_XY,
    )
    missing, unexpected = model.load_state_dict(dark.state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # pragma: no cover - the layout is derived from the same topology
        raise TransferError(f"{weights}: internal layout mismatch ({(missing or unexpected)[:3]})")
    return model.eval(), dark


DARKNET_SCALE_XY = 1.05
"""``scale_x_y`` of the original yolov4-tiny.cfg, assumed for a ``.weights`` file without its cfg."""
