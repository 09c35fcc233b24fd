"""Training: FPTT traces, per-batch steps (FPTT, BPTT, ANN), optimisers, checkpoints, the loop."""

from spyolo.train.fptt import FPTT

__all__ = ["FPTT"]
