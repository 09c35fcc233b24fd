"""Online detection on a frame sequence, with the neuron state kept from frame to frame."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from spyolo.data.images import ImageInput, read_image
from spyolo.inference.prediction import Prediction

if TYPE_CHECKING:  # pragma: no cover - for annotations only: the detector builds its streams
    from spyolo.inference.detector import DetectorBase

__all__ = ["StreamSession"]


class StreamSession:
    """Online detection on a frame sequence with the neuron state kept across frames.

    The first frame runs ``max(warmup, steps_per_frame)`` timesteps from a fresh state;
    every later frame runs ``steps_per_frame`` timesteps continuing from the state the
    previous frame left; each frame's prediction is read from its last step (with
    ``model.readout=mean``: the mean of its own steps' heads; the membranes carry over, the
    read-out restarts). For a non-spiking model every frame is one forward pass. Only one
    session per :class:`Detector` holds the state at a time: calling :meth:`Detector.predict` or
    the :meth:`step` of another stream in between makes this stream start over with a
    warm-up at its next frame.

    Args:
        detector: the detector to run.
        steps_per_frame: ``k``, timesteps per frame after the first (>= 1).
        warmup: timesteps on the first frame (>= 0).
    """

    def __init__(self, detector: DetectorBase, steps_per_frame: int = 1, warmup: int = 8) -> None:
        if steps_per_frame < 1:
            raise ValueError(f"steps_per_frame must be >= 1, got {steps_per_frame}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.detector = detector
        self.steps_per_frame = int(steps_per_frame)
        self.warmup = int(warmup)
        self.frames = 0  # frames processed since the last (re)start
        self.timesteps_run = 0  # timesteps run since the last (re)start

    def reset(self) -> None:
        """Start over: the next frame gets a fresh state and the warm-up."""
        self.frames = 0
        self.timesteps_run = 0
        self.detector.release_state(self)

    @torch.no_grad()
    def step(self, frame: ImageInput, rgb: bool = False) -> Prediction:
        """Process the next frame (BGR numpy by default, as from ``cv2.VideoCapture``)."""
        det = self.detector
        if not det.holds_state(self):
            self.frames = 0
            self.timesteps_run = 0
        image = read_image(frame, rgb=rgb)
        batch, letterboxes = det.preprocess([image])
        if self.frames == 0:
            det.start_state(owner=self)
            steps = max(self.warmup, self.steps_per_frame)
        else:
            steps = self.steps_per_frame
            det.restart_readout()  # a mean read-out averages this frame's steps only
        outs = det.run_steps(batch, steps)
        self.frames += 1
        self.timesteps_run += steps if det.spiking else 1
        source = str(frame) if isinstance(frame, (str, Path)) else None
        return det.decode(outs, [image], letterboxes, [source])[0]

    __call__ = step
