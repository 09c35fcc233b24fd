"""The Gen1 evaluation protocol: which boxes and time stamps count.

As in Prophesee's evaluation of the Gen1 automotive dataset: a box whose diagonal is under
``min_diag`` (30 px) or one of whose sides is under ``min_side`` (10 px) is ignored (removed
from the ground truth and from the detections), the labelled time stamps of a recording's
first ``skip_us`` (0.5 s, time stamps up to it included) are not evaluated, and COCO mAP
(pycocotools) is computed over the remaining time stamps, each an image
(:func:`spyolo.eval.loop.evaluate_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Gen1Protocol"]


@dataclass(frozen=True)
class Gen1Protocol:
    """The protocol's thresholds (pixels of the sensor, microseconds)."""

    min_diag: float = 30.0
    min_side: float = 10.0
    skip_us: int = 500_000

    def keeps(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Which continuous ``x1, y1, x2, y2`` boxes count (bool per box)."""
        b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        return (np.hypot(w, h) >= self.min_diag) & (np.minimum(w, h) >= self.min_side)

    def keeps_time(self, t_us: int) -> bool:
        """Whether a labelled time stamp is evaluated: ``t_us > skip_us`` (Gen1's recordings start
        at time 0, and Prophesee's evaluation compares the time stamps themselves)."""
        return int(t_us) > self.skip_us
