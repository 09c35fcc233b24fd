"""Training: FPTT traces, the per-batch step (FPTT, BPTT, ANN), optimisers, the run's
components, its log and the loop (:class:`Trainer`)."""

from spyolo.train.fptt import FPTT
from spyolo.train.steps import StepSettings, TrainStep

__all__ = ["FPTT", "StepSettings", "TrainStep", "Trainer"]


def __getattr__(name: str):
    if name == "Trainer":  # the loop pulls in data, evaluation and statistics: imported on first use
        from spyolo.train.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'spyolo.train' has no attribute {name!r}")
