"""Spiking building blocks: surrogate gradient, stateful modules and LTC neurons."""

from spyolo.snn.ltc import LTCConv2d, ltc_layers, ltc_update
from spyolo.snn.state import STATE_INITS, StatefulModule, detach_states, reset_states, stateful_modules
from spyolo.snn.surrogate import MultiGaussianSpike, multi_gaussian_grad, spike_fn

__all__ = [
    "LTCConv2d",
    "MultiGaussianSpike",
    "STATE_INITS",
    "StatefulModule",
    "detach_states",
    "ltc_layers",
    "ltc_update",
    "multi_gaussian_grad",
    "reset_states",
    "spike_fn",
    "stateful_modules",
]
