"""Inference: post-processing, evaluation of a model on a dataset split."""

from spyolo.inference.postprocess import Detections, HeadSpec, decode_outputs, postprocess

__all__ = ["Detections", "HeadSpec", "decode_outputs", "postprocess"]
