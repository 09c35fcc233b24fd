"""Detector networks: SPYv4 (spiking) and its ANN twin YOLOv4-tiny."""

from spyolo.models.spyv4 import (
    DEFAULT_ANCHORS,
    DEFAULT_MASKS,
    MODEL_KINDS,
    ConvBNAct,
    SPYv4,
    YOLOv4Tiny,
    build_model,
    run_timesteps,
    scaled_channels,
)

__all__ = [
    "DEFAULT_ANCHORS",
    "DEFAULT_MASKS",
    "MODEL_KINDS",
    "ConvBNAct",
    "SPYv4",
    "YOLOv4Tiny",
    "build_model",
    "run_timesteps",
    "scaled_channels",
]
