"""Inference: post-processing, the :class:`Detector` API, predictions, streams, drawing, video."""

from spyolo.inference.detector import Detector
from spyolo.inference.postprocess import Detections, decode_outputs, postprocess
from spyolo.inference.prediction import BOX_FORMAT, Prediction
from spyolo.inference.stream import StreamSession

__all__ = [
    "BOX_FORMAT",
    "Detections",
    "Detector",
    "Prediction",
    "StreamSession",
    "decode_outputs",
    "postprocess",
]
