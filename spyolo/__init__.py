"""spyolo: spiking object detection (SPYv4, LTC neurons, FPTT training).

The public API, each name imported on first access so that ``import spyolo`` itself stays
light (no torch import):

* :class:`~spyolo.inference.detector.Detector` and its
  :class:`~spyolo.inference.prediction.Prediction`: inference on images, video, cameras;
* :func:`~spyolo.config.load_config`: a YAML config plus ``section.key=value`` overrides;
* :class:`~spyolo.train.trainer.Trainer`: training from a config;
* :func:`~spyolo.eval.evaluate.evaluate_checkpoint`: the VOC (and COCO) evaluation of a checkpoint;
* :func:`~spyolo.export.onnx.export_onnx`: ONNX export (needs the ``export`` extra);
* :func:`~spyolo.models.transfer.transfer_weights`: weight transfer between SPYv4 and its twin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spyolo.utils.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["Detector", "Prediction", "Trainer", "__version__", "evaluate_checkpoint", "export_onnx", "load_config",
           "transfer_weights"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from spyolo.config import load_config
    from spyolo.eval.evaluate import evaluate_checkpoint
    from spyolo.export.onnx import export_onnx
    from spyolo.inference.detector import Detector
    from spyolo.inference.prediction import Prediction
    from spyolo.models.transfer import transfer_weights
    from spyolo.train.trainer import Trainer

_LAZY = {
    "Detector": "spyolo.inference.detector",
    "Prediction": "spyolo.inference.prediction",
    "load_config": "spyolo.config",
    "Trainer": "spyolo.train.trainer",
    "evaluate_checkpoint": "spyolo.eval.evaluate",
    "export_onnx": "spyolo.export.onnx",
    "transfer_weights": "spyolo.models.transfer",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
