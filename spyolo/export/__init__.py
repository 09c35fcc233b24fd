"""Deployment: ONNX export of one timestep with explicit neuron states, and an onnxruntime runner.

:func:`export_onnx` writes ``model.onnx`` and its sidecar ``model.json``;
:class:`OnnxDetector` runs them with the same pre- and post-processing as
:class:`spyolo.inference.Detector`. The ``onnx`` and ``onnxruntime`` packages (the ``export``
extra) are imported only when a model is exported or loaded.
"""

from spyolo.export.onnx import OPSET, OneStep, export_onnx, state_specs
from spyolo.export.runner import OnnxDetector
from spyolo.export.sidecar import ExportError, read_sidecar, sidecar_path

__all__ = [
    "OPSET", "ExportError", "OneStep", "OnnxDetector", "export_onnx", "read_sidecar", "sidecar_path", "state_specs"
]
