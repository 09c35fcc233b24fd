"""Inference: post-processing, the Detector API, drawing, video, evaluation on a split."""

from spyolo.inference.detector import (
    BOX_FORMAT,
    Detector,
    ImageReadError,
    Prediction,
    StreamSession,
    read_image,
    to_rgb_uint8,
)
from spyolo.inference.postprocess import Detections, HeadSpec, decode_outputs, head_spec_for, postprocess

__all__ = [
    "BOX_FORMAT",
    "Detections",
    "Detector",
    "HeadSpec",
    "ImageReadError",
    "Prediction",
    "StreamSession",
    "decode_outputs",
    "head_spec_for",
    "postprocess",
    "read_image",
    "to_rgb_uint8",
]
