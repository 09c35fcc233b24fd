"""The JSON file written beside an exported ONNX model (``model.onnx`` -> ``model.json``).

The ONNX graph holds the network only; everything else a runner needs lives in the sidecar:
class names, the input size, layout and resize mode, ``T``, the heads' geometry (anchors in
input pixels and at their reference size, masks, strides), the demo and evaluation thresholds,
and the neuron states (their ONNX input and output names, per-image shapes and initial value).
Its keys (``FORMAT_VERSION`` 1)::

    format, format_version, spyolo_version, exported_from, onnx_file, opset
    model:      kind, spiking, width, readout
    class_names
    input:      name, shape [3, S, S], dtype, layout, channels, scale, resize, interpolation
    timesteps
    heads:      outputs [head1, head2], strides, masks, anchors (input pixels),
                anchors_ref (pixels at anchor_ref_size), anchor_ref_size,
                scale_xy (centre scale of the decoding; 1 when absent)
    thresholds: demo {conf, nms}, eval {conf, nms}, max_det
    state_init: "zero" (every state starts at 0)
    states:     [{input, output, module, shape (without the batch axis)}, ...]

:func:`read_sidecar` checks that these keys are present and consistent (:func:`check_sidecar`:
anchors against ``anchors_ref`` x the input size / ``anchor_ref_size``, masks in range, the
resize and interpolation among the valid values, ``scale_xy`` in [1, 2], ...) and names the file
and the key otherwise; :class:`~spyolo.export.OnnxDetector` checks the graph against it (input
and state shapes, the heads' grid sizes against ``strides``, their channels against the number
of classes).
"""

from __future__ import annotations

import importlib
import math
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

from spyolo.errors import SpyoloError
from spyolo.utils.jsonfile import read_json
from spyolo.utils.text import short_repr

__all__ = ["EXTRA_HINT", "FORMAT", "FORMAT_VERSION", "ExportError", "check_sidecar", "read_sidecar", "require",
           "sidecar_path"]

FORMAT = "spyolo-onnx"
FORMAT_VERSION = 1
EXTRA_HINT = "install the export extra: pip install 'spyolo[export]'"
"""The end of the message when onnx or onnxruntime is missing."""

_MISSING = object()
_REQUIRED = {
    "class_names": list, "input": dict, "timesteps": int, "heads": dict, "thresholds": dict,
    "state_init": str, "states": list, "model": dict,
}


class ExportError(SpyoloError, RuntimeError):
    """A model cannot be exported, or an exported model cannot be loaded (names the file)."""


def require(package: str, path: str | Path, purpose: str) -> ModuleType:
    """Import ``package`` (``"onnx"`` or ``"onnxruntime"``) or raise one clear :class:`ExportError`.

    Args:
        package: the module to import.
        path: the file being exported or loaded (named in the message).
        purpose: what needs the package, e.g. ``"ONNX export"``.
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ExportError(
            f"{path}: {purpose} needs the {package} package, which is not installed; {EXTRA_HINT}"
        ) from None


def sidecar_path(onnx_path: str | Path) -> Path:
    """The sidecar of ``onnx_path``: the same name with ``.json``."""
    return Path(onnx_path).with_suffix(".json")


def read_sidecar(onnx_path: str | Path) -> dict[str, Any]:
    """Read and check the sidecar of ``onnx_path``.

    Raises:
        ExportError: the sidecar is missing, not JSON, of another format, or lacks a key.
    """
    path = sidecar_path(onnx_path)
    if not path.is_file():
        raise ExportError(f"{path}: sidecar not found (spyolo export writes it beside {Path(onnx_path).name})")
    meta = read_json(path, ExportError, "sidecar")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ExportError(f"{path}: not a spyolo ONNX sidecar (expected \"format\": \"{FORMAT}\")")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"{path}: sidecar format_version {meta.get('format_version')!r}; this spyolo reads version {FORMAT_VERSION}"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise ExportError(f"{path}: sidecar key {key!r} is missing or not a {kind.__name__}")
    check_sidecar(meta, path)
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_list(value: Any, length: int | None = None) -> bool:
    return (isinstance(value, list) and all(_is_int(v) and v > 0 for v in value)
            and (length is None or len(value) == length))


def check_sidecar(meta: dict[str, Any], path: str | Path) -> None:
    """Check that the sidecar's fields are consistent with each other (the graph is checked against
    them when it is loaded, :class:`~spyolo.export.OnnxDetector`).

    Raises:
        ExportError: naming the sidecar file, the key and the problem.
    """
    from spyolo.data.transforms import EVAL_INTERPOLATIONS, EvalMode

    def bad(key: str, problem: str, value: Any = _MISSING) -> ExportError:
        shown = "" if value is _MISSING else f", got {short_repr(value)}"
        return ExportError(f"{path}: sidecar key {key!r} {problem}{shown}")

    names = meta["class_names"]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise bad("class_names", "must list the class names (non-empty strings)", names)
    inp = meta["input"]
    shape = inp.get("shape")
    if not (_int_list(shape, 3) and shape[0] == 3 and shape[1] == shape[2] and shape[1] % 32 == 0):
        raise bad("input.shape", "must be [3, S, S] with S a multiple of 32", shape)
    if not isinstance(inp.get("name"), str):
        raise bad("input.name", "must be the graph's image input name", inp.get("name"))
    resizes = typing.get_args(EvalMode)
    if inp.get("resize") not in resizes:
        raise bad("input.resize", f"must be one of {', '.join(resizes)}", inp.get("resize"))
    if inp.get("interpolation", "cubic") not in EVAL_INTERPOLATIONS:
        raise bad("input.interpolation", f"must be one of {', '.join(EVAL_INTERPOLATIONS)}", inp.get("interpolation"))
    if not _is_int(meta["timesteps"]) or meta["timesteps"] < 1:
        raise bad("timesteps", "must be an integer >= 1", meta["timesteps"])
    if meta["state_init"] != "zero":
        raise bad("state_init", "must be \"zero\" (the runner starts from zero states)", meta["state_init"])

    heads = meta["heads"]
    outputs = heads.get("outputs")
    if not (isinstance(outputs, list) and len(outputs) == 2 and all(isinstance(o, str) for o in outputs)):
        raise bad("heads.outputs", "must name the graph's two head outputs", outputs)
    if not _int_list(heads.get("strides"), 2):
        raise bad("heads.strides", "must be two positive integers (input pixels per grid cell of each head)",
                  heads.get("strides"))
    anchors = heads.get("anchors", _MISSING)
    if anchors is _MISSING:
        raise bad("heads.anchors", "is missing")
    if not (isinstance(anchors, list) and anchors and all(
            isinstance(a, list) and len(a) == 2 and all(_is_number(v) and v > 0 for v in a) for a in anchors)):
        raise bad("heads.anchors", "must be a list of [w, h] pairs of positive numbers", anchors)
    masks = heads.get("masks")
    if not (isinstance(masks, list) and len(masks) == 2 and all(isinstance(m, list) and m for m in masks)
            and all(_is_int(i) and 0 <= i < len(anchors) for m in masks for i in m)):
        raise bad("heads.masks", f"must be two lists of anchor indices in 0..{len(anchors) - 1}", masks)
    ref, ref_size = heads.get("anchors_ref"), heads.get("anchor_ref_size")
    if ref is not None or ref_size is not None:
        size = shape[1]
        if not (_is_int(ref_size) and ref_size > 0 and isinstance(ref, list) and len(ref) == len(anchors) and all(
                isinstance(a, list) and len(a) == 2 and all(_is_number(v) for v in a) for a in ref)):
            raise bad("heads.anchors_ref", "must be one [w, h] pair per anchor, with a positive anchor_ref_size", ref)
        for got, want in zip(anchors, ref):
            if any(not math.isclose(g, w * size / ref_size, rel_tol=1e-4, abs_tol=1e-4) for g, w in zip(got, want)):
                raise bad("heads.anchors", f"must be anchors_ref x input size / anchor_ref_size ({size} / {ref_size}); "
                          f"they disagree", anchors)
    scale = heads.get("scale_xy", 1.0)
    if not (_is_number(scale) and 1.0 <= scale <= 2.0):
        raise bad("heads.scale_xy", "must be a number in [1, 2]", scale)

    thresholds = meta["thresholds"]
    for group in ("demo", "eval"):
        values = thresholds.get(group)
        if not (isinstance(values, dict) and _is_number(values.get("conf")) and 0 <= values["conf"] <= 1
                and _is_number(values.get("nms")) and 0 < values["nms"] <= 1):
            raise bad(f"thresholds.{group}", "must be {conf in [0, 1], nms in (0, 1]}", values)
    if not _is_int(thresholds.get("max_det")) or thresholds["max_det"] < 0:
        raise bad("thresholds.max_det", "must be an integer >= 0", thresholds.get("max_det"))

    for i, state in enumerate(meta["states"]):
        if not (isinstance(state, dict) and all(isinstance(state.get(k), str) for k in ("input", "output", "module"))
                and _int_list(state.get("shape")) and state["shape"]):
            raise bad(f"states[{i}]", "must hold input, output and module names and a shape of positive integers",
                      state)
