"""Spike statistics measured from outside the model: firing rates, synaptic operations, energy."""

from spyolo.stats.firing import FiringRateMonitor

__all__ = ["FiringRateMonitor"]
