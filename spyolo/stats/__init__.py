"""Spike statistics measured from outside the model: firing rates, synaptic operations, energy."""

from spyolo.stats.energy import HOROWITZ_45NM, EnergyCosts
from spyolo.stats.firing import FiringRateMonitor
from spyolo.stats.report import (
    LayerStats,
    SpikeReport,
    TwinComparison,
    build_spike_report,
    format_per_timestep_table,
    plot_map_per_timestep,
)
from spyolo.stats.sops import (
    NEURON_UPDATE_OPS,
    ConvSite,
    DenseOps,
    OpTotals,
    SynOpCounter,
    ann_twin,
    axis_taps,
    conv_sites,
    count_dense_ops,
    count_macs,
)

__all__ = [
    "HOROWITZ_45NM",
    "NEURON_UPDATE_OPS",
    "ConvSite",
    "DenseOps",
    "EnergyCosts",
    "FiringRateMonitor",
    "LayerStats",
    "OpTotals",
    "SpikeReport",
    "SynOpCounter",
    "TwinComparison",
    "ann_twin",
    "axis_taps",
    "build_spike_report",
    "conv_sites",
    "count_dense_ops",
    "count_macs",
    "format_per_timestep_table",
    "plot_map_per_timestep",
]
