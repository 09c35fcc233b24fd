"""Convolutional liquid-time-constant (LTC) spiking neuron layer.

One :class:`LTCConv2d` call advances one timestep (reference section 1)::

    I     = BN(Conv_k,stride(x))                   [nearest x2 upsample of I if upsample]
    tau   = sigmoid(BN_tau(Conv3x3_tau(I + u_prev)))
    u'    = u_prev + tau * (I - u_prev)
    s     = H(u' - theta)                          multi-Gaussian surrogate gradient
    u     = u' * (1 - s)                           hard reset, kept in the graph

The membrane ``u`` is the layer's state ``v`` (see :mod:`spyolo.snn.state`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spyolo.snn.state import StatefulModule
from spyolo.snn.surrogate import spike_fn

__all__ = ["LTCConv2d", "ltc_layers", "ltc_update"]


def ltc_update(z: Tensor, current: Tensor, u_prev: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Elementwise part of one LTC step.

    This is the reference implementation that a fused (compiled or Triton)
    kernel must reproduce, forward and backward.

    Args:
        z: Pre-activation of the time constant, ``BN_tau(Conv_tau(I + u_prev))``.
        current: Synaptic current ``I``.
        u_prev: Membrane after the previous step's reset.
        threshold: Firing threshold ``theta``.

    Returns:
        ``(spikes, u_new)``: spikes ``H(u' - theta)`` (0/1, surrogate gradient)
        and the membrane after the hard reset ``u' * (1 - s)``. Both have the
        inputs' (promoted) dtype.
    """
    tau = torch.sigmoid(z)
    u_pre = u_prev + tau * (current - u_prev)
    spikes = spike_fn(u_pre - threshold)
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
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"LTCConv2d: kernel_size must be a positive odd integer, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.upsample = upsample
        self.threshold = float(threshold)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.tau_conv = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=True)
        self.tau_bn = nn.BatchNorm2d(out_channels)
        self.register_memory("v", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal weights and zero biases for both convolutions (as the release)."""
        for conv in (self.conv, self.tau_conv):
            nn.init.xavier_normal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Advance one timestep on input ``x`` (B, in_channels, H, W); return the spikes."""
        current = self.bn(self.conv(x))
        if self.upsample:
            current = F.interpolate(current, scale_factor=2.0, mode="nearest")
        state_dtype = torch.promote_types(current.dtype, torch.float32)
        u_prev = self.v
        if u_prev is None:
            # keep the state in the layout of the current (e.g. channels_last)
            channels_last = current.is_contiguous(memory_format=torch.channels_last) and not current.is_contiguous()
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            u_prev = self.new_memory(current.shape, current.device, state_dtype, memory_format)
        elif u_prev.shape != current.shape:
            raise RuntimeError(
                f"LTCConv2d: stored membrane has shape {tuple(u_prev.shape)} but this step's current has shape "
                f"{tuple(current.shape)}; call spyolo.snn.reset_states(model) before changing batch size or resolution"
            )
        z = self.tau_bn(self.tau_conv(current + u_prev))
        spikes, u_new = ltc_update(z.to(state_dtype), current.to(state_dtype), u_prev, self.threshold)
        self.v = u_new
        return spikes.to(current.dtype)

    def extra_repr(self) -> str:
        state = "None" if self.v is None else str(tuple(self.v.shape))
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"upsample={self.upsample}, threshold={self.threshold}, v={state}"
        )


def ltc_layers(model: nn.Module) -> list[tuple[str, LTCConv2d]]:
    """Return ``(qualified_name, layer)`` for every :class:`LTCConv2d` in ``model``.

    The order is ``named_modules()`` order, i.e. registration order; the models
    of :mod:`spyolo.models` register their layers in forward order.
    """
    return [(name, module) for name, module in model.named_modules() if isinstance(module, LTCConv2d)]
