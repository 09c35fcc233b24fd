"""Reports of inference statistics: the per-layer spike/operation table and anytime accuracy.

:func:`build_spike_report` combines a :class:`~spyolo.stats.firing.FiringRateMonitor` and a
:class:`~spyolo.stats.sops.SynOpCounter` that watched the same evaluation into a
:class:`SpikeReport`: one row per LTC layer and per head, with figures *per image over all
T timesteps* (neurons are per timestep), totals, and the energy of the spiking network
beside its ANN twin. It prints as a table and writes JSON and CSV.

:class:`TwinComparison` is the report's last line, SPYv4's mAP and energy against its ANN twin's:
``SPYv4 X% of the twin's mAP at Y x its energy``.

:func:`format_per_timestep_table` and :func:`plot_map_per_timestep` present the mAP read
at every timestep ``t = 1..T`` of one evaluation pass (anytime accuracy).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spyolo.stats.energy import HOROWITZ_45NM, EnergyCosts
from spyolo.stats.firing import FiringRateMonitor
from spyolo.stats.sops import NEURON_UPDATE_OPS, READOUT_OPS, SynOpCounter
from spyolo.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text
from spyolo.utils.tau_modes import DEFAULT_TAU_MODE

__all__ = [
    "LayerStats",
    "SpikeReport",
    "TwinComparison",
    "build_spike_report",
    "format_per_timestep_table",
    "plot_map_per_timestep",
    "plot_map_per_timestep_figure",
]

CSV_COLUMNS = (
    "layer", "kind", "neurons", "firing_rate", "spikes_per_image", "acs_per_image", "macs_per_image",
    "elementwise_adds_per_image", "elementwise_muls_per_image", "energy_uj_per_image",
)


@dataclass(frozen=True)
class LayerStats:
    """One row of the spike report.

    Attributes:
        name: LTC layer (``"block2.c3"``) or head (``"head1"``) name.
        kind: ``"ltc"`` or ``"head"``.
        neurons: neurons per image (one timestep); 0 for a head.
        firing_rate: spikes per neuron per timestep, ``None`` for a head.
        spikes: spikes per image over all timesteps.
        acs: accumulates per image over all timesteps (spike-driven synaptic convolution).
        macs: multiply-accumulates per image over all timesteps (analog tau path; also the
            synaptic convolution of the layer that reads pixels).
        ew_adds: elementwise additions per image over all timesteps (bias additions, the
            neurons' membrane update, the mean read-out; :mod:`spyolo.stats.sops`).
        ew_muls: elementwise multiplications per image over all timesteps.
        tau_mode: the LTC layer's ``tau_mode`` (``None`` for a head).
    """

    name: str
    kind: str
    neurons: int
    firing_rate: float | None
    spikes: float
    acs: float
    macs: float
    ew_adds: float = 0.0
    ew_muls: float = 0.0
    tau_mode: str | None = None

    @property
    def elementwise(self) -> float:
        """Elementwise operations (additions + multiplications) per image."""
        return self.ew_adds + self.ew_muls


@dataclass(frozen=True)
class SpikeReport:
    """Per-layer spike statistics, operation counts and energy of one evaluation."""

    layers: tuple[LayerStats, ...]
    timesteps: int
    num_images: int
    img_size: int
    ann_macs: float  # per image, one forward pass of the ANN twin
    costs: EnergyCosts = HOROWITZ_45NM
    ann_adds: float = 0.0  # elementwise additions of that pass (bias / BN shift, activation comparisons)
    ann_muls: float = 0.0  # elementwise multiplications of that pass (activation slopes)

    # ---------------------------------------------------------------------- totals
    @property
    def total_neurons(self) -> int:
        return sum(r.neurons for r in self.layers)

    @property
    def total_spikes(self) -> float:
        return sum(r.spikes for r in self.layers)

    @property
    def mean_firing_rate(self) -> float:
        """All spikes / all neuron updates (a neuron-weighted mean over layers)."""
        steps = self.total_neurons * self.timesteps
        return self.total_spikes / steps if steps else 0.0

    @property
    def total_acs(self) -> float:
        return sum(r.acs for r in self.layers)

    @property
    def total_macs(self) -> float:
        return sum(r.macs for r in self.layers)

    @property
    def total_ew_adds(self) -> float:
        return sum(r.ew_adds for r in self.layers)

    @property
    def total_ew_muls(self) -> float:
        return sum(r.ew_muls for r in self.layers)

    @property
    def total_elementwise(self) -> float:
        return self.total_ew_adds + self.total_ew_muls

    def layer_energy_j(self, row: LayerStats) -> float:
        """Energy per image of one row (its ACs, MACs and elementwise work), joules."""
        return self.costs.energy_j(row.acs, row.macs, row.ew_adds, row.ew_muls)

    @property
    def synaptic_energy_j(self) -> float:
        """Energy per image of the convolutions alone (ACs and MACs, no elementwise work), joules."""
        return self.costs.energy_j(self.total_acs, self.total_macs)

    @property
    def elementwise_energy_j(self) -> float:
        """Energy per image of the elementwise work alone, joules."""
        return self.costs.energy_j(0.0, 0.0, self.total_ew_adds, self.total_ew_muls)

    @property
    def energy_j(self) -> float:
        """Energy per image (all timesteps) of the spiking network, joules: ACs, MACs and elementwise work."""
        return self.synaptic_energy_j + self.elementwise_energy_j

    @property
    def ann_synaptic_energy_j(self) -> float:
        """Energy per image of the ANN twin's convolutions alone (all MACs), joules."""
        return self.costs.energy_j(0.0, self.ann_macs)

    @property
    def ann_energy_j(self) -> float:
        """Energy per image of the ANN twin (one forward pass: MACs and elementwise work), joules."""
        return self.costs.energy_j(0.0, self.ann_macs, self.ann_adds, self.ann_muls)

    @property
    def energy_ratio(self) -> float:
        """SNN / ANN energy per image (``nan`` without an ANN figure)."""
        return self.energy_j / self.ann_energy_j if self.ann_energy_j > 0 else float("nan")

    # ---------------------------------------------------------------------- output
    def format_table(self) -> str:
        """The per-layer table, totals and the energy comparison as text."""
        width = max(len("layer"), *(len(r.name) for r in self.layers))
        header = (
            f"{'layer':<{width}}  {'neurons':>9}  {'rate %':>7}  {'spikes/img':>10}  "
            f"{'ACs/img':>9}  {'MACs/img':>9}  {'elem/img':>9}  {'energy/img':>10}"
        )
        lines = [
            f"Spike statistics: {self.num_images} images at {self.img_size}x{self.img_size}, T={self.timesteps}; "
            "counts per image over all T timesteps (neurons per timestep)",
            header,
            "-" * len(header),
        ]
        for r in self.layers:
            rate = "-" if r.firing_rate is None else f"{100 * r.firing_rate:.2f}"
            neurons = "-" if r.kind == "head" else f"{r.neurons:d}"
            spikes = "-" if r.kind == "head" else _si(r.spikes)
            lines.append(
                f"{r.name:<{width}}  {neurons:>9}  {rate:>7}  {spikes:>10}  {_si(r.acs):>9}  "
                f"{_si(r.macs):>9}  {_si(r.elementwise):>9}  {_joules(self.layer_energy_j(r)):>10}"
            )
        lines.append("-" * len(header))
        lines.append(
            f"{'total':<{width}}  {self.total_neurons:>9d}  {100 * self.mean_firing_rate:>7.2f}  "
            f"{_si(self.total_spikes):>10}  {_si(self.total_acs):>9}  {_si(self.total_macs):>9}  "
            f"{_si(self.total_elementwise):>9}  {_joules(self.energy_j):>10}"
        )
        ratio = self.energy_ratio
        modes = sorted({r.tau_mode for r in self.layers if r.tau_mode is not None})
        lines += [
            f"mean firing rate {100 * self.mean_firing_rate:.2f}% (spikes per neuron per timestep)"
            + (f"; tau_mode {', '.join(modes)}" if modes else ""),
            f"SNN, T={self.timesteps}: {_si(self.total_acs)} ACs + {_si(self.total_macs)} MACs + "
            f"{_si(self.total_ew_adds)} adds + {_si(self.total_ew_muls)} muls (elementwise) per image "
            f"-> {_joules(self.energy_j)} per image ({_joules(self.synaptic_energy_j)} in convolutions)",
            f"ANN twin (YOLOv4-tiny, same width), 1 pass: {_si(self.ann_macs)} MACs + {_si(self.ann_adds)} adds + "
            f"{_si(self.ann_muls)} muls per image -> {_joules(self.ann_energy_j)} per image "
            f"({_joules(self.ann_synaptic_energy_j)} in convolutions)",
            f"energy SNN / ANN: {ratio:.3f}",
            f"costs: {self.costs.ac_pj:g} pJ per AC, {self.costs.mac_pj:g} pJ per MAC, {self.costs.add_pj:g} pJ per "
            f"add, {self.costs.mul_pj:g} pJ per mul ({self.costs.source})",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report, JSON-ready (per-image figures, joules)."""
        return {
            "timesteps": self.timesteps,
            "num_images": self.num_images,
            "img_size": self.img_size,
            "units": "per image over all timesteps; neurons per timestep; energy in joules",
            "layers": [asdict(r) | {"energy_j": self.layer_energy_j(r)} for r in self.layers],
            "totals": {
                "neurons": self.total_neurons,
                "spikes": self.total_spikes,
                "mean_firing_rate": self.mean_firing_rate,
                "acs": self.total_acs,
                "macs": self.total_macs,
                "ew_adds": self.total_ew_adds,
                "ew_muls": self.total_ew_muls,
                "energy_j": self.energy_j,
                "synaptic_energy_j": self.synaptic_energy_j,
                "elementwise_energy_j": self.elementwise_energy_j,
            },
            "ann_twin": {
                "macs": self.ann_macs, "ew_adds": self.ann_adds, "ew_muls": self.ann_muls,
                "energy_j": self.ann_energy_j, "synaptic_energy_j": self.ann_synaptic_energy_j,
            },
            "energy_ratio_snn_over_ann": self.energy_j / self.ann_energy_j if self.ann_energy_j > 0 else None,
            "tau_modes": sorted({r.tau_mode for r in self.layers if r.tau_mode is not None}),
            "costs": {"ac_pj": self.costs.ac_pj, "mac_pj": self.costs.mac_pj, "add_pj": self.costs.add_pj,
                      "mul_pj": self.costs.mul_pj, "source": self.costs.source},
        }

    def write_json(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """:meth:`to_dict` as JSON (atomically), with the fields of ``extra`` (e.g. :meth:`TwinComparison.to_dict`)."""
        return atomic_write_json(path, self.to_dict() | dict(extra or {}))

    def write_csv(self, path: str | Path) -> Path:
        """One row per layer and a ``total`` row; columns :data:`CSV_COLUMNS` (atomically)."""
        fh = io.StringIO()
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in self.layers:
            writer.writerow([
                r.name, r.kind, r.neurons, "" if r.firing_rate is None else f"{r.firing_rate:.6g}",
                f"{r.spikes:.6g}", r.acs, r.macs, r.ew_adds, r.ew_muls, f"{self.layer_energy_j(r) * 1e6:.6g}",
            ])
        writer.writerow([
            "total", "", self.total_neurons, f"{self.mean_firing_rate:.6g}", f"{self.total_spikes:.6g}",
            self.total_acs, self.total_macs, self.total_ew_adds, self.total_ew_muls, f"{self.energy_j * 1e6:.6g}",
        ])
        return atomic_write_text(path, fh.getvalue())

    def plot_firing_rates(self, path: str | Path, title: str = "") -> Path:
        """A bar chart of the firing rate of every LTC layer (in forward order), as PNG."""
        from matplotlib.figure import Figure

        rows = [r for r in self.layers if r.firing_rate is not None]
        if not rows:
            raise ValueError("the report has no LTC layer: nothing to plot")
        fig = Figure(figsize=(max(6.0, 0.45 * len(rows) + 2.0), 4.0))
        ax = fig.add_subplot(1, 1, 1)
        rates = [100 * r.firing_rate for r in rows]
        ax.bar(range(len(rows)), rates, color="tab:blue")
        ax.axhline(100 * self.mean_firing_rate, color="tab:red", linestyle="--",
                   label=f"mean {100 * self.mean_firing_rate:.2f}%")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.name for r in rows], rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("firing rate (% of neurons per timestep)")
        ax.set_ylim(0.0, max(1.0, 1.15 * max(rates)))
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper left")
        ax.set_title(title or f"firing rate per layer (T={self.timesteps}, {self.num_images} images)")
        fig.tight_layout()
        return atomic_save_figure(fig, path)


@dataclass(frozen=True)
class TwinComparison:
    """SPYv4's VOC2007 mAP and energy per image against its ANN twin's, on the same split.

    Attributes:
        map_voc07: SPYv4's VOC2007 11-point mAP (a fraction).
        energy_ratio: SPYv4's energy per image over the twin's (:attr:`SpikeReport.energy_ratio`).
        twin_map_voc07: the twin's mAP on the same split with the same settings, ``None`` without a twin.
        twin_weights: the twin's checkpoint.
        twin_source: where it came from (``"--twin"``, ``"train.distill_from"``).
        note: why there is no twin (printed in the line), e.g. that ``train.distill_from`` is not one.
    """

    map_voc07: float
    energy_ratio: float
    twin_map_voc07: float | None = None
    twin_weights: str | None = None
    twin_source: str | None = None
    note: str = ""

    @property
    def map_ratio(self) -> float | None:
        """SPYv4's mAP over the twin's (``None`` without a twin, or when the twin's mAP is 0)."""
        if self.twin_map_voc07 is None or self.twin_map_voc07 <= 0:
            return None
        return self.map_voc07 / self.twin_map_voc07

    def format_line(self) -> str:
        """``SPYv4 X% of the twin's mAP at Y x its energy (...)``; without a twin, the energy ratio and how to get
        the other."""
        energy = f"{self.energy_ratio:.3f} x"
        if self.twin_map_voc07 is None:
            why = f" ({self.note})" if self.note else ""
            return (f"SPYv4 at {energy} the twin's energy; for its mAP against the twin's, give the twin's "
                    f"checkpoint (a trained ANN twin of the same classes) with --twin PATH{why}")
        ratio = self.map_ratio
        share = "n/a" if ratio is None else f"{100 * ratio:.1f}%"
        return (f"SPYv4 {share} of the twin's mAP at {energy} its energy (mAP {100 * self.map_voc07:.2f}% against "
                f"{100 * self.twin_map_voc07:.2f}%; twin {self.twin_weights}, from {self.twin_source})")

    def to_dict(self) -> dict[str, Any]:
        """The fields that ``spike_stats.json`` carries (mAPs and ratios as fractions), and the line itself."""
        return {
            "map_voc07": self.map_voc07,
            "twin_map_voc07": self.twin_map_voc07,
            "map_ratio_to_twin": self.map_ratio,
            "energy_ratio_to_twin": self.energy_ratio if math.isfinite(self.energy_ratio) else None,
            "twin_weights": self.twin_weights,
            "twin_source": self.twin_source,
            "twin_comparison": self.format_line(),
        }


def _si(value: float) -> str:
    """``1234567 -> '1.235M'``: three decimals with k/M/G/T prefixes."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3f}{prefix}"
    return f"{value:.1f}" if value != int(value) else f"{int(value)}"


def _joules(value: float) -> str:
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if abs(value) >= factor:
            return f"{value / factor:.3f} {unit}"
    return f"{value / 1e-12:.3f} pJ"


def build_spike_report(
    monitor: FiringRateMonitor,
    counter: SynOpCounter,
    timesteps: int,
    img_size: int,
    ann_macs: float,
    costs: EnergyCosts = HOROWITZ_45NM,
    ann_adds: float = 0.0,
    ann_muls: float = 0.0,
) -> SpikeReport:
    """Combine the counts of a monitor and a counter that saw the same forward passes.

    Per-image figures are the totals divided by the (image, timestep) pairs each layer saw,
    times ``timesteps``. One host sync per source. The elementwise work of each row is one
    addition per convolution output plus, for an LTC layer, its neurons' membrane update
    (:data:`~spyolo.stats.sops.NEURON_UPDATE_OPS` of its ``tau_mode``) and, for a head read as
    a running mean, :data:`~spyolo.stats.sops.READOUT_OPS` per output. ``ann_macs``,
    ``ann_adds`` and ``ann_muls`` are one pass of the ANN twin
    (:func:`~spyolo.stats.sops.count_dense_ops`).

    Raises:
        ValueError: if nothing was counted, or the layers saw different numbers of
            image-steps (the two were not attached for the same passes).
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    firing = monitor.totals()
    ops = counter.totals()
    seen = {t.image_steps for t in ops.values()} | {f[2] for f in firing.values()}
    if seen == {0}:
        raise ValueError("no forward pass was counted (attach the monitor and counter before running the model)")
    if len(seen) != 1:
        raise ValueError(f"layers saw different numbers of image-steps {sorted(seen)}; attach both before the run")
    image_steps = seen.pop()
    scale = timesteps / image_steps  # totals -> per image over T steps
    rows: list[LayerStats] = []
    for site in counter.sites:
        if any(r.name == site.layer for r in rows):
            continue
        acs = sum(ops[s.name].acs for s in counter.sites if s.layer == site.layer)
        macs = sum(ops[s.name].macs for s in counter.sites if s.layer == site.layer)
        outputs = sum(ops[s.name].outputs for s in counter.sites if s.layer == site.layer)
        if site.layer in firing:
            spikes, neuron_steps, _ = firing[site.layer]
            mode = counter.tau_modes.get(site.layer, DEFAULT_TAU_MODE)
            update_adds, update_muls = NEURON_UPDATE_OPS[mode]
            rows.append(LayerStats(
                name=site.layer,
                kind="ltc",
                neurons=int(round(neuron_steps / image_steps)),
                firing_rate=spikes / neuron_steps if neuron_steps else 0.0,
                spikes=spikes * scale,
                acs=acs * scale,
                macs=macs * scale,
                ew_adds=(outputs + neuron_steps * update_adds) * scale,
                ew_muls=neuron_steps * update_muls * scale,
                tau_mode=mode,
            ))
        else:
            readout_adds, readout_muls = READOUT_OPS if counter.mean_readout else (0, 0)
            rows.append(LayerStats(
                site.layer, "head", 0, None, 0.0, acs * scale, macs * scale,
                ew_adds=outputs * (1 + readout_adds) * scale, ew_muls=outputs * readout_muls * scale,
            ))
    return SpikeReport(
        layers=tuple(rows),
        timesteps=int(timesteps),
        num_images=int(round(image_steps / timesteps)),
        img_size=int(img_size),
        ann_macs=float(ann_macs),
        costs=costs,
        ann_adds=float(ann_adds),
        ann_muls=float(ann_muls),
    )


# --------------------------------------------------------------- anytime accuracy


def format_per_timestep_table(per_timestep: Sequence[Mapping[str, Any]]) -> str:
    """mAP at every timestep (``evaluate_model(..., per_timestep=True)["per_timestep"]``)."""
    lines = ["Anytime accuracy: mAP read at timestep t (one pass, same neuron states)",
             f"{'t':>3}  {'mAP VOC2007 11-pt %':>19}  {'mAP area (VOC2010+) %':>21}"]
    for row in per_timestep:
        lines.append(f"{int(row['t']):>3}  {100 * row['map_voc07']:>19.2f}  {100 * row['map_area']:>21.2f}")
    return "\n".join(lines)


def plot_map_per_timestep_figure(per_timestep: Sequence[Mapping[str, Any]], title: str = "") -> Any:
    """A matplotlib figure of mAP (both VOC metrics, %) against the timestep ``t``."""
    from matplotlib.figure import Figure

    if not per_timestep:
        raise ValueError("per_timestep is empty: nothing to plot")
    ts = [int(r["t"]) for r in per_timestep]
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(ts, [100 * r["map_voc07"] for r in per_timestep], "o-", label="VOC2007 11-point")
    ax.plot(ts, [100 * r["map_area"] for r in per_timestep], "s--", label="area (VOC2010+)")
    ax.set_xlabel("timestep t")
    ax.set_ylabel("mAP (%)")
    ax.set_xticks(ts)
    top = max(max(100 * r["map_voc07"] for r in per_timestep), max(100 * r["map_area"] for r in per_timestep))
    ax.set_ylim(0.0, max(1.0, 1.1 * top))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "mAP against timestep (anytime accuracy)")
    fig.tight_layout()
    return fig


def plot_map_per_timestep(per_timestep: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Write :func:`plot_map_per_timestep_figure` as a PNG."""
    fig = plot_map_per_timestep_figure(per_timestep, title)
    return atomic_save_figure(fig, path)
