"""Convolutional liquid-time-constant (LTC) spiking neuron layer.

One :class:`LTCConv2d` call advances one timestep (reference section 1)::

    I     = BN(Conv_k,stride(x))                   [nearest x2 upsample of I if upsample]
    tau   = sigmoid(BN_tau(Conv3x3_tau(I + u_prev)))
    u'    = u_prev + tau * (I - u_prev)
    s     = H(u' - theta)                          multi-Gaussian surrogate gradient
    u     = u' * (1 - s)                           hard reset, kept in the graph

The membrane ``u`` is the layer's state ``v`` (see :mod:`spyolo.snn.state`).

The time constant's path is chosen per layer with ``tau_mode`` (:data:`TAU_MODES`); the rest
of the step is the same in every mode. Each mode is an entry of the table
:data:`~spyolo.utils.tau_modes.TAU_MODE_TABLE` (what its path reads, its convolution, its stride,
its operation counts), which the layer reads; the modes of the table today:

``"ltc"`` (the paper's, the default)
    ``tau = sigmoid(BN_tau(Conv3x3_tau(I + u_prev)))``: a dense 3x3 convolution over analog
    values, ``9 C`` multiply-accumulates per neuron and step whatever the firing rate.
``"spike"``
    ``tau = sigmoid(BN_tau(Conv3x3_tau(s_prev)))`` on the layer's own spikes of the previous
    step (state ``s``, zeros at the first step whatever the membrane's init): a binary input,
    so the convolution is accumulate-only and costs in proportion to the firing.
``"depthwise"``
    ``tau = sigmoid(BN_tau(DWConv3x3_tau(I + u_prev)))``: a depthwise 3x3 convolution (one
    filter per channel), 9 multiply-accumulates per neuron.
``"coarse"``
    ``tau = sigmoid(Up2(BN_tau(DWConv3x3s2_tau(I + u_prev))))``: the depthwise 3x3 convolution at
    stride 2, its output repeated over each 2x2 block of neurons (nearest upsampling, cropped to
    the layer's map): one time constant per 2x2 block, a quarter of ``depthwise``'s
    multiply-accumulates (9 per 4 neurons) with a wider spatial context.
``"affine"``
    ``tau = sigmoid(BN_tau(DWConv1x1_tau(I + u_prev)))``: the neuron's own ``I + u`` scaled and
    shifted per channel (a 1x1 depthwise convolution; with its batch norm folded,
    ``tau = sigmoid(a_c (I + u_prev) + b_c)``), one multiply-accumulate per neuron: the time
    constant still depends on the input, but on no neighbour.
``"channel"``
    ``tau = sigmoid(a_c)``: one learned time constant per channel (``tau_param``, initialised
    to 0, i.e. ``tau = 0.5``), no convolution; the same for every position and step.

A layer that reads a still input (SPYv4's first layer, which reads the image; ``hold_current``)
computes its synaptic current once per sequence in evaluation: when the same input tensor,
unmodified, arrives again through the same, unmodified convolution and BN (weights and running
statistics), without gradients and outside training, tracing and compilation, the current of its
first arrival is reused (the outputs are bit-identical; the convolution on the
pixels runs once instead of ``T`` times). A reset drops the held current.

The elementwise part of the step runs through one of :data:`LTC_BACKENDS`, chosen per
layer with :func:`set_ltc_backend`: the pure-PyTorch reference :func:`ltc_update`
(the default) or the fused kernels of :mod:`spyolo.snn.fused`.

States are created lazily at the first step after a reset. To create them before the
first step instead (so that a compiled model sees the same kind of input at every
step), read their layouts once with :func:`state_layouts` and recreate them with
:func:`init_states` at the start of every later sequence of the same input shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spyolo.snn.fused import fused_ltc_update
from spyolo.snn.state import StatefulModule, reset_states
from spyolo.snn.surrogate import DEFAULT_SURROGATE, SurrogateParams, spike_fn
from spyolo.utils.choices import LTC_BACKENDS, TAU_MODES
from spyolo.utils.runtime import is_channels_last
from spyolo.utils.tau_modes import DEFAULT_TAU_MODE, TauMode, tau_mode_entry

__all__ = [
    "LTC_BACKENDS",
    "LTCConv2d",
    "TAU_MODES",
    "StateLayout",
    "init_states",
    "ltc_layers",
    "ltc_update",
    "neutral_tau",
    "set_ltc_backend",
    "state_layouts",
    "truncated_states",
]

# LTC_BACKENDS (spyolo.utils.choices, re-exported here): the implementations of the elementwise
# LTC update, selectable per layer:
# * "reference": ltc_update, plain PyTorch with autograd (the default);
# * "fused": spyolo.snn.fused.fused_ltc_update with torch.compile'd kernels (Triton on CUDA;
#   C++ on CPU, which needs a compiler);
# * "fused-eager": the same fused autograd function run op by op (no compiler).

"""Paths of the time constant, selectable per layer (``model.tau_mode``); see the module docstring."""

_FUSED_KERNELS_OF_BACKEND = MappingProxyType({"fused": "inductor", "fused-eager": "eager"})
"""``fused_ltc_update`` kernel mode of each fused backend."""


def ltc_update(
    z: Tensor, current: Tensor, u_prev: Tensor, threshold: float, surrogate: SurrogateParams = DEFAULT_SURROGATE
) -> tuple[Tensor, Tensor]:
    """Elementwise part of one LTC step.

    This is the reference implementation that a fused (compiled or Triton)
    kernel must reproduce, forward and backward.

    Args:
        z: Pre-activation of the time constant, ``BN_tau(Conv_tau(I + u_prev))``.
        current: Synaptic current ``I``.
        u_prev: Membrane after the previous step's reset.
        threshold: Firing threshold ``theta``.
        surrogate: Constants of the multi-Gaussian surrogate gradient.

    Returns:
        ``(spikes, u_new)``: spikes ``H(u' - theta)`` (0/1, surrogate gradient)
        and the membrane after the hard reset ``u' * (1 - s)``. Both have the
        inputs' (promoted) dtype.
    """
    tau = torch.sigmoid(z)
    u_pre = u_prev + tau * (current - u_prev)
    spikes = spike_fn(u_pre - threshold, surrogate.sigma, surrogate.height, surrogate.gamma)
    u_new = u_pre * (1.0 - spikes)
    return spikes, u_new


class LTCConv2d(StatefulModule):
    """Convolution followed by a layer of LTC spiking neurons.

    Each ``forward`` call advances one timestep and returns that step's spikes.
    The membrane state ``v`` has the shape of the synaptic current ``I``
    (``(B, out_channels, H', W')``, doubled spatially if ``upsample``) and is
    created lazily at the first step after a reset (zeros, or ``U[0, 1)`` after
    ``reset_states(model, init="uniform")``).

    Precision: under ``torch.autocast`` (e.g. bf16) the convolutions run in the
    autocast dtype, but ``I`` and ``z`` are cast up and the membrane and the
    elementwise update stay in float32 (float64 if the layer itself is float64).
    The returned spikes are cast to the dtype of ``I`` (the autocast dtype under
    autocast); this is lossless because spikes are exactly 0 or 1.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (neurons per position).
        kernel_size: Synaptic kernel size; padding is ``kernel_size // 2``.
        stride: Synaptic convolution stride.
        bias: Whether the synaptic convolution has a bias.
        upsample: Apply nearest x2 upsampling to ``I`` before the neurons.
        threshold: Firing threshold ``theta``.
        surrogate: Constants of the multi-Gaussian surrogate gradient (default: the paper's).
        tau_mode: Path of the time constant, one of :data:`TAU_MODES` (default ``"ltc"``,
            the paper's), built from its entry of :data:`~spyolo.utils.tau_modes.TAU_MODE_TABLE`
            (``tau_spec``). A path that reads the previous spikes (``"spike"``) adds the state ``s``
            (the previous step's spikes, in the membrane's dtype); one without input
            (``"channel"``) has the parameter ``tau_param`` instead of ``tau_conv`` / ``tau_bn``.

    Every mode works with both elementwise backends: the fused update only sees the
    pre-activation ``z`` of the time constant, whose own path runs in plain autograd.

    Attributes:
        ltc_backend: Implementation of the elementwise update, one of
            :data:`LTC_BACKENDS` (``"reference"`` by default; see :func:`set_ltc_backend`).
        detach_state: Store the new membrane detached from the graph (default ``False``).
            Under one-step truncation (FPTT) the stored membrane is detached before it is
            used again anyway; detaching it at once frees its part of the graph right away
            and spares a compiled step a gradient output per layer (see
            :func:`truncated_states`).
        hold_current: Reuse the synaptic current while the same input tensor comes back
            (default ``False``; SPYv4 sets it on its first layer): only in evaluation
            (``not training``), without gradients, outside tracing, export and compilation,
            and only for an input that was not modified in place (its version counter is
            unchanged; inference-mode tensors, which have none, are not held) through a synaptic
            path whose weights and BN statistics were neither replaced nor modified in place
            since (e.g. per-timestep BN statistics). Bit-identical outputs; a reset drops the
            held current.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        upsample: bool = False,
        threshold: float = 1.0,
        surrogate: SurrogateParams | None = None,
        tau_mode: str = "ltc",
    ) -> None:
        super().__init__()
        try:
            spec = tau_mode_entry(tau_mode)
        except ValueError as exc:
            raise ValueError(f"LTCConv2d: {exc}") from None
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"LTCConv2d: kernel_size must be a positive odd integer, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.upsample = upsample
        self.threshold = float(threshold)
        self.surrogate: SurrogateParams = DEFAULT_SURROGATE if surrogate is None else surrogate
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.tau_mode = tau_mode
        self.tau_spec: TauMode = spec
        if spec.has_conv:
            self.tau_conv = nn.Conv2d(out_channels, out_channels, spec.kernel, spec.stride, spec.kernel // 2,
                                      groups=out_channels if spec.depthwise else 1, bias=True)
            self.tau_bn = nn.BatchNorm2d(out_channels)
        else:
            self.tau_param = nn.Parameter(torch.zeros(out_channels))
        self.ltc_backend: str = "reference"
        self.detach_state: bool = False
        self.hold_current: bool = False
        self._held: tuple[tuple[tuple[Tensor, int], ...], Tensor] | None = None
        self.register_memory("v", None)
        for name in spec.states:
            self.register_memory(name, None)
        self.reset_parameters()

    def __setstate__(self, state: dict) -> None:
        """Unpickling support: modules pickled before these attributes existed get their defaults."""
        state.setdefault("ltc_backend", "reference")
        state.setdefault("detach_state", False)
        state.setdefault("surrogate", DEFAULT_SURROGATE)
        state.setdefault("tau_mode", DEFAULT_TAU_MODE)
        state.setdefault("tau_spec", tau_mode_entry(state["tau_mode"]))
        state.setdefault("hold_current", False)
        state["_held"] = None
        super().__setstate__(state)

    def __getstate__(self) -> dict:
        """Pickling/copying support: the held current, like the states, is not copied."""
        state = super().__getstate__()
        state["_held"] = None
        return state

    def reset_memories(self, init: str = "zero", generator: torch.Generator | None = None) -> None:
        """Reset the states (:meth:`StatefulModule.reset_memories`) and drop the held current."""
        super().reset_memories(init=init, generator=generator)
        self._held = None

    def reset_parameters(self) -> None:
        """Xavier-normal weights and zero biases for both convolutions (as the release).

        A layer whose tau path has no convolution (``tau_mode="channel"``) has only the synaptic one;
        its ``tau_param`` starts at 0 (``tau = 0.5``).
        """
        has_conv = self.tau_spec.has_conv
        for conv in (self.conv, self.tau_conv) if has_conv else (self.conv,):
            nn.init.xavier_normal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        if not has_conv:
            nn.init.zeros_(self.tau_param)

    def _tau_preactivation(self, current: Tensor, u_prev: Tensor, state_dtype: torch.dtype) -> Tensor:
        """``z`` of this step for the layer's ``tau_mode`` (the shape of ``current``), as its ``tau_spec`` says."""
        spec = self.tau_spec
        if spec.input == "none":
            return self.tau_param.view(1, -1, 1, 1).expand_as(current)
        if spec.input == "spikes":
            source = self.s
            if source is None:
                # s_{-1} = 0, whatever the membrane's init; zeros_like keeps the layout
                source = torch.zeros_like(current, dtype=state_dtype)
        else:
            source = current + u_prev
        z = self.tau_bn(self.tau_conv(source))
        if spec.stride > 1:  # one time constant per stride x stride block of neurons, cropped to the map
            height, width = current.shape[-2:]
            z = F.interpolate(z, scale_factor=float(spec.stride), mode="nearest")[:, :, :height, :width]
        return z

    def _can_hold(self, x: Tensor) -> bool:
        """Whether this step may reuse (and keep) the current of ``x`` (see ``hold_current``)."""
        if not self.hold_current or self.training or torch.is_grad_enabled() or x.is_inference():
            return False
        return not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
                    or torch.compiler.is_compiling())

    def _synapse_key(self, x: Tensor) -> tuple[tuple[Tensor, int], ...]:
        """``x`` and every tensor of the synaptic path (convolution and BN), each with its version.

        A held current is valid only while all of them are the same objects, unmodified: loading
        other BN statistics or weights in place (``copy_``) moves a version on, replacing a tensor
        changes its identity (the key holds the tensors, so a replaced one cannot be mistaken for
        a new tensor at the same address).
        """
        tensors = [x, *self.conv.parameters(recurse=False), *self.bn.parameters(recurse=False),
                   *self.bn.buffers(recurse=False)]
        return tuple((t, t._version) for t in tensors)

    @staticmethod
    def _same_key(a: tuple[tuple[Tensor, int], ...], b: tuple[tuple[Tensor, int], ...]) -> bool:
        return len(a) == len(b) and all(ta is tb and va == vb for (ta, va), (tb, vb) in zip(a, b))

    def synaptic_current(self, x: Tensor) -> Tensor:
        """``I = BN(Conv(x))`` (nearest x2 upsampled if ``upsample``), or the held ``I`` of this same ``x``."""
        hold = self._can_hold(x)
        held = self._held
        key = self._synapse_key(x) if hold else ()
        if hold and held is not None and self._same_key(held[0], key):
            return held[1]
        current = self.bn(self.conv(x))
        if self.upsample:
            current = F.interpolate(current, scale_factor=2.0, mode="nearest")
        self._held = (key, current) if hold else None
        return current

    def forward(self, x: Tensor) -> Tensor:
        """Advance one timestep on input ``x`` (B, in_channels, H, W); return the spikes."""
        current = self.synaptic_current(x)
        state_dtype = torch.promote_types(current.dtype, torch.float32)
        u_prev = self.v
        if u_prev is None:
            # keep the state in the layout of the current (e.g. channels_last)
            memory_format = torch.channels_last if is_channels_last(current) else torch.contiguous_format
            u_prev = self.new_memory(current.shape, current.device, state_dtype, memory_format)
        elif u_prev.shape != current.shape:
            raise RuntimeError(
                f"LTCConv2d: stored membrane has shape {tuple(u_prev.shape)} but this step's current has shape "
                f"{tuple(current.shape)}; call spyolo.snn.reset_states(model) before changing batch size or resolution"
            )
        z = self._tau_preactivation(current, u_prev, state_dtype)
        keeps_spikes = "s" in self.tau_spec.states
        if self.ltc_backend == "reference":
            spikes, u_new = ltc_update(
                z.to(state_dtype), current.to(state_dtype), u_prev, self.threshold, self.surrogate
            )
            if keeps_spikes:
                self.s = spikes.detach() if self.detach_state else spikes
            spikes = spikes.to(current.dtype)
        else:
            kernels = _FUSED_KERNELS_OF_BACKEND.get(self.ltc_backend)
            if kernels is None:
                raise ValueError(
                    f"LTCConv2d: unknown ltc_backend {self.ltc_backend!r}; valid values are {list(LTC_BACKENDS)}"
                )
            spikes, u_new = fused_ltc_update(
                z, current, u_prev, self.threshold, kernels=kernels, surrogate=self.surrogate
            )
            if keeps_spikes:
                s_new = spikes.to(state_dtype)
                self.s = s_new.detach() if self.detach_state else s_new
        self.v = u_new.detach() if self.detach_state else u_new
        return spikes

    def extra_repr(self) -> str:
        state = "None" if self.v is None else str(tuple(self.v.shape))
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"upsample={self.upsample}, threshold={self.threshold}, {self.surrogate}, backend={self.ltc_backend}, "
            + (f"tau_mode={self.tau_mode}, " if self.tau_mode != DEFAULT_TAU_MODE else "")
            + f"v={state}"
        )


def ltc_layers(model: nn.Module) -> list[tuple[str, LTCConv2d]]:
    """Return ``(qualified_name, layer)`` for every :class:`LTCConv2d` in ``model``.

    The order is ``named_modules()`` order, i.e. registration order; the models
    of :mod:`spyolo.models` register their layers in forward order.
    """
    return [(name, module) for name, module in model.named_modules() if isinstance(module, LTCConv2d)]


@torch.no_grad()
def neutral_tau(layer: LTCConv2d) -> None:
    """Make ``layer``'s time constant 0.5 for every neuron, input and step, while keeping it learnable.

    The tau path's batch norm gets scale 0 and shift 0, so ``z = 0`` and ``tau = sigmoid(0) = 0.5``
    whatever its convolution computes; the scale's gradient is not zero, so training grows the path
    from there (the zero-scale start of a residual branch). A path without convolution
    (``tau_mode="channel"``): ``tau_param = 0``.
    """
    if not layer.tau_spec.has_conv:
        layer.tau_param.zero_()
        return
    layer.tau_bn.weight.zero_()
    layer.tau_bn.bias.zero_()


def set_ltc_backend(model: nn.Module, backend: str) -> int:
    """Choose the implementation of the elementwise update for every LTC layer of ``model``.

    Args:
        model: Any module (wrappers such as DDP or ``torch.compile`` included: their
            submodules are the wrapped model's).
        backend: One of :data:`LTC_BACKENDS`.

    Returns:
        The number of layers set.

    Raises:
        ValueError: for an unknown backend.
    """
    if backend not in LTC_BACKENDS:
        raise ValueError(f"unknown LTC backend {backend!r}; valid values are {list(LTC_BACKENDS)}")
    layers = ltc_layers(model)
    for _name, layer in layers:
        layer.ltc_backend = backend
    return len(layers)


@contextmanager
def truncated_states(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, every LTC layer of ``model`` stores its new membrane detached.

    For one-step truncated training (FPTT), where the membranes are detached before every
    step anyway: the results are unchanged, but each step's graph ends at the spikes. The
    layers' previous ``detach_state`` values are restored on exit.

    Args:
        model: The model (wrappers included).
        enabled: ``False`` makes the block a no-op (convenient for BPTT).
    """
    layers = [layer for _name, layer in ltc_layers(model)] if enabled else []
    previous = [layer.detach_state for layer in layers]
    for layer in layers:
        layer.detach_state = True
    try:
        yield
    finally:
        for layer, value in zip(layers, previous):
            layer.detach_state = value


@dataclass(frozen=True)
class StateLayout:
    """Shape, dtype and memory layout of one LTC layer's membrane."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        """``torch.channels_last`` or ``torch.contiguous_format``."""
        return torch.channels_last if self.channels_last else torch.contiguous_format


def state_layouts(model: nn.Module) -> tuple[StateLayout, ...] | None:
    """Layouts of the current membranes of ``model``'s LTC layers, in :func:`ltc_layers` order.

    Returns ``None`` if some layer has no membrane yet (no step since the last reset),
    and an empty tuple for a model without LTC layers.
    """
    layouts = []
    for _name, layer in ltc_layers(model):
        v = layer.v
        if v is None:
            return None
        layouts.append(StateLayout(tuple(v.shape), v.dtype, is_channels_last(v)))
    return tuple(layouts)


def init_states(
    model: nn.Module,
    layouts: tuple[StateLayout, ...],
    device: torch.device,
    init: str = "zero",
    generator: torch.Generator | None = None,
) -> None:
    """Reset ``model`` and create every LTC membrane now instead of at the first step.

    Equivalent to ``reset_states(model, init, generator)`` followed by a first step
    whose layers find states of the given layouts: the first step then runs exactly
    like every later one (no ``None`` state), which keeps a compiled model to one graph.
    Uniform draws are consumed in :func:`ltc_layers` order, which for the models of
    :mod:`spyolo.models` is the forward order, so the initial states equal those of
    the lazy path for the same generator state.

    Args:
        model: The model (wrappers included).
        layouts: From :func:`state_layouts` after a step on inputs of the same shape.
        device: Device of the states.
        init: ``"zero"`` or ``"uniform"``.
        generator: Generator of the uniform draws.

    Raises:
        ValueError: if ``layouts`` does not have one entry per LTC layer.
    """
    layers = ltc_layers(model)
    if len(layouts) != len(layers):
        raise ValueError(f"init_states: got {len(layouts)} state layouts for {len(layers)} LTC layers")
    reset_states(model, init=init, generator=generator)
    for (_name, layer), layout in zip(layers, layouts):
        layer.v = layer.new_memory(layout.shape, device, layout.dtype, layout.memory_format)
        for name in layer.tau_spec.states:  # the previous spikes (tau_mode="spike"): none before the first step
            setattr(layer, name, torch.zeros(layout.shape, device=device, dtype=layout.dtype).contiguous(
                memory_format=layout.memory_format))
