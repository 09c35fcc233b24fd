"""Training losses."""

from spyolo.loss.yolo import HeadTargets, YOLOLoss, YOLOTargets

__all__ = ["HeadTargets", "YOLOLoss", "YOLOTargets"]
