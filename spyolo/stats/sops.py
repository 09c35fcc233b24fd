"""Synaptic-operation counts of a detector, measured from outside the model (forward hooks).

Two kinds of operation are counted, per convolution ("site"):

* **AC** (accumulate only): a convolution whose input is binary spikes needs no
  multiplication: every input spike adds its weights to the outputs it reaches. The count
  is exact: an input spike at ``(c, y, x)`` reaches ``C_out / groups`` output channels at
  every (output position, kernel tap) pair that reads ``(y, x)``, so

      ACs = C_out / groups * sum_{c, y, x} s[c, y, x] * taps_y(y) * taps_x(x)

  where ``taps_y(y)`` counts the pairs ``(o, i)`` with ``0 <= o < H_out``, ``0 <= i < k``
  and ``o * stride + i * dilation - padding = y`` (likewise for ``x``). This is what a
  convolution of the spikes with an all-ones kernel summed over its output gives, with
  borders, stride and padding handled exactly; it is computed as one weighted sum per
  forward (a cached ``taps_y x taps_x`` map), in int64.
* **MAC** (multiply-accumulate): a convolution on analog input costs
  ``out.numel() * C_in / groups * k_h * k_w`` MACs per forward, whatever the values.

Which input is analog in SPYv4 (the decision, per LTC layer, see section 1 of the
reference): the synaptic convolution of the *first* LTC layer (``conv1``) reads the image
pixels: MACs. Every other synaptic convolution reads spikes (directly, through max-pool,
channel slices, concatenation or the nearest upsampling of ``conv_up``'s current, none of
which makes values non-binary): ACs. A ``tau_conv`` counts as its ``tau_mode``'s entry of
:data:`~spyolo.utils.tau_modes.TAU_MODE_TABLE` says (``TauMode.conv_ops``): one that reads
``I + u``, an analog sum (``"ltc"``, ``"depthwise"``, ``"coarse"`` at stride 2, ``"affine"``): MACs
(``9 C``, 9 or 1 per output of the tau convolution); one that reads the layer's previous spikes
(``"spike"``): ACs; ``"channel"`` has none. The two heads are 1x1 convolutions of the neck spikes:
ACs. In a non-spiking model (the ANN twin) every convolution is MACs.

**Elementwise work** (additions and multiplications that are not part of a convolution),
counted the same way in both networks:

* one addition per output of every convolution: its bias, or the shift of the batch norm
  folded into it (the scale goes into the weights);
* per LTC neuron and step, the membrane update of its ``tau_mode`` (its table entry's ``adds``
  and ``muls``; :data:`NEURON_UPDATE_OPS`);
* per output of a Conv-BN-LeakyReLU of the ANN twin, the activation ``max(y, 0.1 y)``: one
  multiplication and one comparison (counted as an addition);
* with the mean read-out, per head output and step, the running sum (one addition) and the
  mean (one multiplication by ``1/t``).

Not counted: max-pooling and concatenation of spikes (no arithmetic), nearest upsampling (a
copy), the reset ``u' (1 - s)`` (a select), memory traffic. The first layer's synaptic
current is the same at every timestep for a still image: SPYv4 computes it once per image in
evaluation (:class:`~spyolo.snn.ltc.LTCConv2d` ``hold_current``) and it is counted as often as
the convolution runs (once per image there; at every step in training and for event frames,
which differ from step to step). A synaptic site's image-steps are those of its LTC layer.

No host synchronisation happens inside the hooks: AC counts are accumulated as device
tensors and MAC counts as Python integers from tensor shapes; :meth:`SynOpCounter.totals`
reads everything back once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from spyolo.utils.tau_modes import DEFAULT_TAU_MODE, TAU_MODE_TABLE, tau_mode_entry

__all__ = [
    "NEURON_UPDATE_OPS",
    "ConvSite",
    "DenseOps",
    "OpTotals",
    "SynOpCounter",
    "ann_twin",
    "axis_taps",
    "conv_sites",
    "count_dense_ops",
    "count_macs",
    "tap_map",
]

class _NeuronUpdateOps(Mapping[str, tuple[int, int]]):
    """``{tau_mode: (adds, muls)}`` read from :data:`~spyolo.utils.tau_modes.TAU_MODE_TABLE` (a live view)."""

    def __getitem__(self, mode: str) -> tuple[int, int]:
        entry = TAU_MODE_TABLE[mode]
        return entry.adds, entry.muls

    def __iter__(self) -> Iterator[str]:
        return iter(TAU_MODE_TABLE)

    def __len__(self) -> int:
        return len(TAU_MODE_TABLE)

    def __repr__(self) -> str:
        return f"NEURON_UPDATE_OPS({dict(self)})"


NEURON_UPDATE_OPS: Mapping[str, tuple[int, int]] = _NeuronUpdateOps()
"""Elementwise operations (additions, multiplications) of one LTC neuron's update per step, per ``tau_mode``,
besides the convolutions' bias additions: the ``adds`` and ``muls`` of its entry of
:data:`~spyolo.utils.tau_modes.TAU_MODE_TABLE` (whose docstring counts them)."""

ACTIVATION_OPS: tuple[int, int] = (1, 1)
"""(additions, multiplications) of one LeakyReLU output of the ANN twin: a comparison and ``0.1 y``."""

READOUT_OPS: tuple[int, int] = (1, 1)
"""(additions, multiplications) per head output and step of the mean read-out: the sum and ``sum / t``."""


@dataclass(frozen=True)
class ConvSite:
    """One convolution whose operations are counted.

    Attributes:
        name: qualified module name of the ``nn.Conv2d`` (``"conv2.conv"``, ``"head1"``).
        layer: the report row it belongs to (the LTC layer ``"conv2"``, or ``"head1"``).
        role: ``"synaptic"`` (an LTC layer's input convolution), ``"tau"`` (its
            time-constant path), ``"head"`` (a detection head) or ``"conv"`` (a
            convolution of a non-spiking model).
        kind: ``"ac"`` (binary spike input) or ``"mac"`` (analog input).
    """

    name: str
    layer: str
    role: str
    kind: str


def conv_sites(model: nn.Module, analog_inputs: Iterable[str] | None = None) -> list[ConvSite]:
    """The counted convolutions of ``model``, in ``named_modules`` order.

    For a spiking model (``is_spiking`` true) the rules of the module docstring apply:
    ``tau_conv`` -> as its mode's ``TauMode.conv_ops`` (MAC on ``I + u``; AC for ``tau_mode="spike"``,
    which reads spikes); the synaptic
    convolution of the layers in ``analog_inputs``
    (default: the first LTC layer, which reads the image) -> MAC; every other convolution
    -> AC. For any other model every ``nn.Conv2d`` is a MAC site.

    Raises:
        ValueError: a name in ``analog_inputs`` is not an LTC layer of the model.
    """
    from spyolo.snn import ltc_layers

    core = model.module if hasattr(model, "module") else model
    if not getattr(core, "is_spiking", False):
        return [
            ConvSite(name, name.rsplit(".conv", 1)[0] if name.endswith(".conv") else name, "conv", "mac")
            for name, m in core.named_modules()
            if isinstance(m, nn.Conv2d)
        ]
    layers = ltc_layers(core)
    layer_names = [n for n, _ in layers]
    conv_ops = {n: tau_mode_entry(getattr(layer, "tau_mode", DEFAULT_TAU_MODE)).conv_ops for n, layer in layers}
    analog = set(layer_names[:1] if analog_inputs is None else analog_inputs)
    unknown = analog - set(layer_names)
    if unknown:
        raise ValueError(f"analog_inputs names unknown LTC layers: {sorted(unknown)}; layers are {layer_names}")
    owned: dict[str, ConvSite] = {}
    for lname, _layer in layers:
        owned[f"{lname}.conv"] = ConvSite(f"{lname}.conv", lname, "synaptic", "mac" if lname in analog else "ac")
        if conv_ops[lname] is not None:
            owned[f"{lname}.tau_conv"] = ConvSite(f"{lname}.tau_conv", lname, "tau", conv_ops[lname])
    sites = []
    for name, m in core.named_modules():
        if not isinstance(m, nn.Conv2d):
            continue
        sites.append(owned.get(name, ConvSite(name, name, "head", "ac")))
    return sites


def axis_taps(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> list[int]:
    """For each input coordinate along one axis, the number of (output, tap) pairs reading it.

    ``out = (size + 2 padding - dilation (kernel - 1) - 1) // stride + 1`` outputs; output
    ``o`` reads inputs ``o * stride + i * dilation - padding`` for taps ``i < kernel``.
    Example: size 4, kernel 3, stride 2, padding 1 -> ``[1, 2, 1, 2]``.
    """
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    taps = [0] * size
    for o in range(max(out, 0)):
        for i in range(kernel):
            y = o * stride + i * dilation - padding
            if 0 <= y < size:
                taps[y] += 1
    return taps


def tap_map(conv: nn.Conv2d, height: int, width: int) -> torch.Tensor:
    """``taps_y x taps_x`` of ``conv`` on a ``height x width`` input (int64, CPU): for every input
    position, the (output, kernel tap) pairs that read it (:func:`axis_taps` per axis).

    Raises:
        ValueError: string padding or a padding mode other than zeros.
    """
    if isinstance(conv.padding, str):
        raise ValueError(f"SynOpCounter: string padding {conv.padding!r} is not supported; use integer padding")
    if conv.padding_mode != "zeros":
        raise ValueError(f"SynOpCounter: padding_mode {conv.padding_mode!r} is not supported (only 'zeros')")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    ty = torch.tensor(axis_taps(height, kh, sh, ph, dh), dtype=torch.int64)
    tx = torch.tensor(axis_taps(width, kw, sw, pw, dw), dtype=torch.int64)
    return torch.outer(ty, tx)


@dataclass(frozen=True)
class OpTotals:
    """Operations of one site since the last reset.

    Attributes:
        acs: accumulate operations (spike-driven sites), exact.
        macs: multiply-accumulates (analog sites).
        image_steps: (image, timestep) pairs seen, i.e. the sum of batch sizes over forwards.
        outputs: output elements written (one bias addition each).
    """

    acs: int
    macs: int
    image_steps: int
    outputs: int = 0


class SynOpCounter:
    """Counts ACs and MACs per convolution of ``model`` with forward hooks.

    Use as a context manager or call :meth:`close`. ``enabled`` can be switched off to
    make the hooks free. Hooks run in float32/int64 outside autocast, so counts are exact
    under bf16 too.

    Args:
        model: a detector (SPYv4, the ANN twin, or a DDP wrapper of one).
        analog_inputs: see :func:`conv_sites`.
    """

    def __init__(self, model: nn.Module, analog_inputs: Iterable[str] | None = None) -> None:
        core = model.module if hasattr(model, "module") else model
        self.sites: list[ConvSite] = conv_sites(core, analog_inputs)
        modules = dict(core.named_modules())
        self.enabled = True
        self._acs: dict[str, torch.Tensor] = {}
        self._macs: dict[str, int] = {s.name: 0 for s in self.sites}
        self._samples: dict[str, int] = {s.name: 0 for s in self.sites}
        self._outputs: dict[str, int] = {s.name: 0 for s in self.sites}
        self._tap_maps: dict[tuple, torch.Tensor] = {}
        from spyolo.snn import ltc_layers

        layers = ltc_layers(core) if getattr(core, "is_spiking", False) else []
        self.tau_modes: dict[str, str] = {n: getattr(layer, "tau_mode", DEFAULT_TAU_MODE) for n, layer in layers}
        """``tau_mode`` of every LTC layer (which membrane update its neurons run)."""
        self.mean_readout: bool = getattr(core, "mean_readout", None) is not None
        """Whether the heads are read as a running mean (its elementwise work per head output)."""
        self._handles = [
            modules[s.name].register_forward_hook(self._make_hook(s)) for s in self.sites
        ]
        # a synaptic site's image-steps are its LTC layer's steps: a layer that holds its current
        # (LTCConv2d.hold_current) steps without running the convolution
        self._handles += [
            modules[s.layer].register_forward_hook(self._make_step_hook(s)) for s in self.sites if s.role == "synaptic"
        ]

    # ------------------------------------------------------------------------ hooks
    def _tap_map(self, conv: nn.Conv2d, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width, conv.kernel_size, conv.stride, conv.padding, conv.dilation, str(device))
        cached = self._tap_maps.get(key)
        if cached is None:
            cached = tap_map(conv, height, width).to(device)
            self._tap_maps[key] = cached
        return cached

    def _make_hook(self, site: ConvSite):
        def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not self.enabled:
                return
            x = inputs[0]
            if site.role != "synaptic":
                self._samples[site.name] += int(x.shape[0])
            self._outputs[site.name] += output.numel()
            if site.kind == "mac":
                per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
                self._macs[site.name] += output.numel() * per_output
                return
            with torch.autocast(device_type=x.device.type, enabled=False):
                # spike count per input position (exact in float32 below 2**24 per position)
                per_pos = x.detach().sum(dim=(0, 1), dtype=torch.float32).round().to(torch.int64)
                taps = self._tap_map(module, x.shape[-2], x.shape[-1], x.device)
                acs = (per_pos * taps).sum() * (module.out_channels // module.groups)
            acc = self._acs.get(site.name)
            self._acs[site.name] = acs if acc is None else acc + acs

        return hook

    def _make_step_hook(self, site: ConvSite):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self.enabled:
                self._samples[site.name] += int(inputs[0].shape[0])

        return hook

    # ----------------------------------------------------------------------- results
    def reset(self) -> None:
        """Zero every count."""
        self._acs.clear()
        self._macs = {s.name: 0 for s in self.sites}
        self._samples = {s.name: 0 for s in self.sites}
        self._outputs = {s.name: 0 for s in self.sites}

    def totals(self) -> dict[str, OpTotals]:
        """Per site, in site order: counts since the last reset (one host sync)."""
        names = [s.name for s in self.sites if s.name in self._acs]
        values = torch.stack([self._acs[n].cpu() for n in names]).tolist() if names else []
        acs = dict(zip(names, values))
        return {
            s.name: OpTotals(int(acs.get(s.name, 0)), self._macs[s.name], self._samples[s.name], self._outputs[s.name])
            for s in self.sites
        }

    def close(self) -> None:
        """Remove the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> SynOpCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -------------------------------------------------------------------- the ANN twin


def ann_twin(model: nn.Module) -> nn.Module:
    """A freshly initialised YOLOv4-tiny with the same classes, width, anchors and masks as ``model``."""
    from spyolo.models import YOLOv4Tiny

    core = model.module if hasattr(model, "module") else model
    return YOLOv4Tiny(
        num_classes=core.num_classes,
        width=core.width,
        anchors=core.anchors.tolist(),
        masks=core.masks,
        anchor_ref_size=core.anchor_ref_size,
        in_channels=getattr(core, "in_channels", 3),
    )


def count_macs(model: nn.Module, img_size: int) -> dict[str, int]:
    """MACs per convolution for one forward pass of one ``img_size x img_size`` image.

    Every convolution is counted as dense (MACs), as for an ANN; the pass runs on the
    ``meta`` device (shapes only, no arithmetic), on a copy of ``model``.
    """
    import copy

    if img_size <= 0 or img_size % 32:
        raise ValueError(f"img_size must be a positive multiple of 32, got {img_size}")
    core = model.module if hasattr(model, "module") else model
    twin = copy.deepcopy(core).to("meta").eval()
    sites = [ConvSite(n, n, "conv", "mac") for n, m in twin.named_modules() if isinstance(m, nn.Conv2d)]
    counts = {s.name: 0 for s in sites}
    modules = dict(twin.named_modules())

    def make_hook(name: str):
        def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
            counts[name] += output.numel() * (module.in_channels // module.groups) * (
                module.kernel_size[0] * module.kernel_size[1]
            )

        return hook

    handles = [modules[s.name].register_forward_hook(make_hook(s.name)) for s in sites]
    try:
        if getattr(twin, "is_spiking", False):
            from spyolo.snn import reset_states

            reset_states(twin)
        with torch.no_grad():
            channels = getattr(twin, "in_channels", 3) * getattr(twin, "input_frames", 1)
            twin(torch.zeros(1, channels, img_size, img_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return counts


@dataclass(frozen=True)
class DenseOps:
    """Operations of one forward pass of a non-spiking network (:func:`count_dense_ops`).

    Attributes:
        macs: multiply-accumulates of every convolution.
        adds: elementwise additions (bias / folded BN shift per conv output, activation comparisons).
        muls: elementwise multiplications (the activation's slope).
    """

    macs: int
    adds: int
    muls: int


def count_dense_ops(model: nn.Module, img_size: int) -> DenseOps:
    """MACs and elementwise operations of one pass of ``model`` on one ``img_size`` image, as an ANN.

    The MACs are :func:`count_macs`'s; the elementwise part follows the module docstring: one
    addition per output of every convolution (its bias or folded BN shift) and
    :data:`ACTIVATION_OPS` per output of every Conv-BN-LeakyReLU (``ConvBNAct``). Shapes only
    (a ``meta`` pass on a copy of the model).
    """
    import copy

    from spyolo.models.spyv4 import ConvBNAct

    if img_size <= 0 or img_size % 32:
        raise ValueError(f"img_size must be a positive multiple of 32, got {img_size}")
    core = model.module if hasattr(model, "module") else model
    twin = copy.deepcopy(core).to("meta").eval()
    activated = {f"{name}.conv" for name, m in twin.named_modules() if isinstance(m, ConvBNAct)}
    counts = {"macs": 0, "adds": 0, "muls": 0}

    def make_hook(name: str):
        def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
            n = output.numel()
            counts["macs"] += n * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            counts["adds"] += n
            if name in activated:
                counts["adds"] += n * ACTIVATION_OPS[0]
                counts["muls"] += n * ACTIVATION_OPS[1]

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in twin.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        if getattr(twin, "is_spiking", False):
            from spyolo.snn import reset_states

            reset_states(twin)
        with torch.no_grad():
            channels = getattr(twin, "in_channels", 3) * getattr(twin, "input_frames", 1)
            twin(torch.zeros(1, channels, img_size, img_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return DenseOps(counts["macs"], counts["adds"], counts["muls"])
