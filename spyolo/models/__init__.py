"""Detector networks: SPYv4 (spiking) and its ANN twin YOLOv4-tiny, and their heads' geometry."""

from spyolo.models.heads import (
    ANCHOR_REF_SIZE,
    DEFAULT_ANCHORS,
    DEFAULT_MASKS,
    STRIDES,
    DecodedHead,
    HeadSpec,
    decode_head,
    head_spec_for,
    scale_anchors,
)
from spyolo.models.spyv4 import (
    MODEL_KINDS,
    ConvBNAct,
    SPYv4,
    YOLOv4Tiny,
    build_model,
    run_timesteps,
    scaled_channels,
)

__all__ = [
    "ANCHOR_REF_SIZE",
    "DEFAULT_ANCHORS",
    "DEFAULT_MASKS",
    "MODEL_KINDS",
    "STRIDES",
    "ConvBNAct",
    "DecodedHead",
    "HeadSpec",
    "SPYv4",
    "YOLOv4Tiny",
    "build_model",
    "decode_head",
    "head_spec_for",
    "run_timesteps",
    "scale_anchors",
    "scaled_channels",
]
