"""Detector networks: SPYv4 (spiking) and its ANN twin YOLOv4-tiny, their heads' geometry and
read-out, and starting one from trained weights (:func:`transfer_weights`)."""

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
from spyolo.models.readout import READOUTS, MeanReadout, restart_readout
from spyolo.models.spyv4 import (
    MODEL_KINDS,
    ConvBNAct,
    SPYv4,
    YOLOv4Tiny,
    build_model,
    resolve_tau_modes,
    run_timesteps,
    scaled_channels,
    timestep_input,
)
from spyolo.models.transfer import TransferReport, transfer_weights

__all__ = [
    "ANCHOR_REF_SIZE",
    "DEFAULT_ANCHORS",
    "DEFAULT_MASKS",
    "MODEL_KINDS",
    "READOUTS",
    "STRIDES",
    "ConvBNAct",
    "DecodedHead",
    "HeadSpec",
    "MeanReadout",
    "SPYv4",
    "TransferReport",
    "YOLOv4Tiny",
    "build_model",
    "decode_head",
    "head_spec_for",
    "restart_readout",
    "resolve_tau_modes",
    "run_timesteps",
    "scale_anchors",
    "scaled_channels",
    "timestep_input",
    "transfer_weights",
]
