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

:func:`read_sidecar` checks that these keys are present and names the file otherwise.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from spyolo.errors import SpyoloError
from spyolo.utils.jsonfile import read_json

__all__ = ["EXTRA_HINT", "FORMAT", "FORMAT_VERSION", "ExportError", "read_sidecar", "require", "sidecar_path"]

FORMAT = "spyolo-onnx"
FORMAT_VERSION = 1
EXTRA_HINT = "install the export extra: pip install 'spyolo[export]'"
"""The end of the message when onnx or onnxruntime is missing."""

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
        raise ExportError(f"{path}: {purpose} needs the {package} package, which is not installed; {EXTRA_HINT}") from None


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
    return meta
