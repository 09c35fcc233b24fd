"""Fused elementwise LTC update: one kernel forward, one kernel backward.

The elementwise part of an LTC step (:func:`spyolo.snn.ltc.ltc_update`) is a dozen
tensor operations: in eager PyTorch each one is a kernel launch and a pass over
memory, and autograd keeps about six intermediate tensors per layer for the backward
pass. :class:`FusedLTCUpdate` replaces them by

* a forward that reads ``z``, ``I`` and ``u_prev`` once and writes the spikes and the
  new membrane once, and saves only its three inputs;
* a backward that recomputes ``tau``, ``u'`` and the surrogate from those three
  inputs (cheap elementwise arithmetic) and writes the input gradients in one pass.

The gradients are derived by hand from the reference (``s`` the spikes, ``sg`` the
multi-Gaussian surrogate at ``v = u' - theta``, ``g_s`` and ``g_u`` the incoming
gradients of the spikes and of the new membrane)::

    g_u'    = g_s * sg + g_u * ((1 - s) - u' * sg)      the reset stays in the graph
    g_I     = g_u' * tau
    g_z     = g_u' * (I - u_prev) * tau * (1 - tau)
    g_uprev = g_u' * (1 - tau)                          only when u_prev needs a gradient (BPTT)

Under FPTT the new membrane is detached before it is used again, so ``g_u`` is absent
and the backward skips that term.

The arithmetic is plain PyTorch (:func:`ltc_forward_math`, :func:`ltc_backward_math`)
and runs in one of three ways, chosen by ``kernels``:

``"inductor"``
    ``torch.compile`` of the math on flat views of the tensors (Triton kernels on
    CUDA, C++/OpenMP on CPU, which needs a C++ compiler). One compilation per dtype
    combination serves every layer shape (``dynamic=True``).
``"aot_eager"``
    the same compiled path through the ``aot_eager`` backend: no code generation,
    used by tests to exercise the tracing on any machine.
``"eager"``
    the math run op by op: no compiler needed; still saves three tensors instead of
    six.

Inside an enclosing ``torch.compile`` region (a compiled model), the math is traced
directly into the surrounding graph, so the compiler fuses it with its neighbours.

Precision follows the reference: the update runs in the membrane's dtype (float32,
or float64 for a float64 model), ``z`` and ``I`` may be in a lower precision (bf16
under autocast) and are upcast inside the kernel, the spikes are written in ``I``'s
dtype and the input gradients are returned in each input's dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# private but long-standing (PyTorch >= 1.13): the innermost active TorchDispatchMode, or None
from torch.utils._python_dispatch import _get_current_dispatch_mode

from spyolo.snn.surrogate import DEFAULT_SURROGATE, SurrogateParams, multi_gaussian_grad

__all__ = [
    "FUSED_KERNELS",
    "FusedLTCUpdate",
    "fused_ltc_update",
    "ltc_backward_math",
    "ltc_forward_math",
]

FUSED_KERNELS: tuple[str, ...] = ("inductor", "aot_eager", "eager")
"""Valid values of the ``kernels`` argument of :func:`fused_ltc_update`."""


def ltc_forward_math(
    z: Tensor, current: Tensor, u_prev: Tensor, threshold: float, spike_dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Forward arithmetic of the fused update (same operations as the reference).

    Args:
        z: Time-constant pre-activation, any float dtype.
        current: Synaptic current ``I``, any float dtype.
        u_prev: Previous membrane; its dtype is the compute dtype.
        threshold: Firing threshold ``theta``.
        spike_dtype: dtype of the returned spikes.

    Returns:
        ``(spikes, u_new)``: spikes in ``spike_dtype``, membrane in ``u_prev.dtype``.
    """
    compute = u_prev.dtype
    tau = torch.sigmoid(z.to(compute))
    u_pre = u_prev + tau * (current.to(compute) - u_prev)
    fired = ((u_pre - threshold) > 0).to(compute)
    u_new = u_pre * (1.0 - fired)
    return fired.to(spike_dtype), u_new


def ltc_backward_math(
    z: Tensor,
    current: Tensor,
    u_prev: Tensor,
    grad_spikes: Tensor | None,
    grad_u_new: Tensor | None,
    threshold: float,
    need_u_prev_grad: bool,
    sigma: float = DEFAULT_SURROGATE.sigma,
    height: float = DEFAULT_SURROGATE.height,
    gamma: float = DEFAULT_SURROGATE.gamma,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Backward arithmetic of the fused update, recomputing the forward values.

    ``sigma``, ``height`` and ``gamma`` are the surrogate's constants
    (:class:`spyolo.snn.surrogate.SurrogateParams`).

    Returns:
        ``(grad_z, grad_current, grad_u_prev)`` in the dtypes of ``z``, ``current`` and
        ``u_prev``; ``grad_u_prev`` is ``None`` unless ``need_u_prev_grad``.
    """
    compute = u_prev.dtype
    tau = torch.sigmoid(z.to(compute))
    diff = current.to(compute) - u_prev
    u_pre = u_prev + tau * diff
    v = u_pre - threshold
    surrogate = multi_gaussian_grad(v, sigma, height, gamma)
    if grad_spikes is not None:
        grad_pre = grad_spikes.to(compute) * surrogate
        if grad_u_new is not None:
            fired = (v > 0).to(compute)
            grad_pre = grad_pre + grad_u_new.to(compute) * ((1.0 - fired) - u_pre * surrogate)
    elif grad_u_new is not None:
        fired = (v > 0).to(compute)
        grad_pre = grad_u_new.to(compute) * ((1.0 - fired) - u_pre * surrogate)
    else:
        grad_pre = torch.zeros_like(u_pre)
    grad_current = (grad_pre * tau).to(current.dtype)
    grad_z = (grad_pre * diff * tau * (1.0 - tau)).to(z.dtype)
    grad_u_prev = grad_pre * (1.0 - tau) if need_u_prev_grad else None
    return grad_z, grad_current, grad_u_prev


def _backward_fptt(
    z: Tensor, current: Tensor, u_prev: Tensor, grad_spikes: Tensor, threshold: float,
    sigma: float, height: float, gamma: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Backward variant: spike gradient only, no state gradient (FPTT)."""
    return ltc_backward_math(z, current, u_prev, grad_spikes, None, threshold, False, sigma, height, gamma)


def _backward_last(
    z: Tensor, current: Tensor, u_prev: Tensor, grad_spikes: Tensor, threshold: float,
    sigma: float, height: float, gamma: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Backward variant: spike gradient only, state gradient wanted (BPTT, last step)."""
    return ltc_backward_math(z, current, u_prev, grad_spikes, None, threshold, True, sigma, height, gamma)


def _backward_first(
    z: Tensor, current: Tensor, u_prev: Tensor, grad_spikes: Tensor, grad_u_new: Tensor, threshold: float,
    sigma: float, height: float, gamma: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Backward variant: spike and membrane gradients, no state gradient (BPTT, first step)."""
    return ltc_backward_math(z, current, u_prev, grad_spikes, grad_u_new, threshold, False, sigma, height, gamma)


def _backward_full(
    z: Tensor, current: Tensor, u_prev: Tensor, grad_spikes: Tensor, grad_u_new: Tensor, threshold: float,
    sigma: float, height: float, gamma: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Backward variant: spike and membrane gradients, state gradient wanted (BPTT)."""
    return ltc_backward_math(z, current, u_prev, grad_spikes, grad_u_new, threshold, True, sigma, height, gamma)


@dataclass(frozen=True)
class _Kernels:
    """The forward and the four backward variants, compiled for one ``kernels`` mode.

    Each variant is a separate function, so that the compiler's per-function graph cache
    only ever holds dtype variants (a few), never every combination of present gradients.
    """

    forward: Callable[..., tuple[Tensor, Tensor]]
    backward: dict[tuple[bool, bool], Callable[..., tuple[Tensor, Tensor, Tensor | None]]]


@functools.cache
def _kernels(mode: str) -> _Kernels:
    """Compiled kernels of one mode, built once per process (``torch.compile`` compiles lazily).

    Called only outside compiled regions and only for the compiled modes; they run on flat
    1-D views, so one compilation per dtype combination (``dynamic=True``) serves every
    layer shape. Keys of ``backward``: ``(membrane gradient present, state gradient wanted)``.
    """
    if mode not in ("inductor", "aot_eager"):
        raise ValueError(f"no compiled fused LTC kernels for mode {mode!r}; compiled modes: inductor, aot_eager")

    def build(fn: Callable) -> Callable:
        return torch.compile(fn, backend=mode, dynamic=True, fullgraph=True)

    backward = {
        (False, False): build(_backward_fptt),
        (False, True): build(_backward_last),
        (True, False): build(_backward_first),
        (True, True): build(_backward_full),
    }
    return _Kernels(build(ltc_forward_math), backward)


def _memory_format(t: Tensor) -> torch.memory_format | None:
    """``contiguous_format`` or ``channels_last`` if ``t`` is dense in that layout, else ``None``."""
    if t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


def _alias(t: Tensor, size: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """A tensor over ``t``'s memory with the given size and stride that is not an autograd view.

    Plain views would make the compiler guard on (and specialise for) the shape of their
    base tensor, i.e. recompile per layer shape; a fresh tensor sharing the storage does not.
    """
    out = t.new_empty(0)
    out.set_(t.untyped_storage(), t.storage_offset(), size, stride)
    return out


def _flat(t: Tensor, like: Tensor, fmt: torch.memory_format) -> Tensor:
    """1-D tensor over ``t``'s elements in the memory order of ``like`` (copied into that layout if needed)."""
    if t.stride() != like.stride():
        t = t.contiguous(memory_format=fmt)
    return _alias(t, (t.numel(),), (1,))


def _unflat(flat: Tensor, like: Tensor) -> Tensor:
    """A fresh 1-D kernel output seen with the shape and strides of ``like``."""
    return _alias(flat, tuple(like.shape), tuple(like.stride()))


def _use_plain_math(kernels: str, *tensors: Tensor) -> bool:
    """Whether to run the math op by op instead of the compiled kernels.

    True in ``"eager"`` mode, inside an enclosing compiled region (the compiler then fuses
    the math itself), on meta tensors, and under a ``TorchDispatchMode`` such as
    ``FlopCounterMode`` (``torch.compile`` refuses to run under one).
    """
    return (
        kernels == "eager"
        or torch.compiler.is_compiling()
        or _get_current_dispatch_mode() is not None
        or any(t.is_meta for t in tensors)
    )


class FusedLTCUpdate(torch.autograd.Function):
    """Autograd function of the fused LTC update; prefer :func:`fused_ltc_update`.

    ``FusedLTCUpdate.apply(z, current, u_prev, threshold, kernels, sigma, height, gamma)`` returns
    ``(spikes, u_new)``. Only ``z``, ``current`` and ``u_prev`` are saved for the
    backward pass.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, z: Tensor, current: Tensor, u_prev: Tensor, threshold: float, kernels: str,
        sigma: float = DEFAULT_SURROGATE.sigma, height: float = DEFAULT_SURROGATE.height,
        gamma: float = DEFAULT_SURROGATE.gamma,
    ) -> tuple[Tensor, Tensor]:
        """Compute ``(spikes, u_new)``; see :func:`ltc_forward_math`."""
        ctx.save_for_backward(z, current, u_prev)
        ctx.threshold = threshold
        ctx.kernels = kernels
        ctx.surrogate = (sigma, height, gamma)
        if not torch.compiler.is_compiling():  # traced, the gradients arrive materialised anyway
            ctx.set_materialize_grads(False)
        if _use_plain_math(kernels, z, current, u_prev):
            return ltc_forward_math(z, current, u_prev, threshold, current.dtype)
        impl = _kernels(kernels)
        fmt = _memory_format(current)
        if fmt is None:
            current = current.contiguous()
            fmt = torch.contiguous_format
        spikes, u_new = impl.forward(
            _flat(z, current, fmt), _flat(current, current, fmt), _flat(u_prev, current, fmt), threshold, current.dtype
        )
        return _unflat(spikes, current), _unflat(u_new, current)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_spikes: Tensor | None, grad_u_new: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None, None, None, None]:
        """Recompute the forward values and return the gradients of ``z``, ``current``, ``u_prev``."""
        z, current, u_prev = ctx.saved_tensors
        need_u_prev = bool(ctx.needs_input_grad[2])
        if grad_spikes is None and grad_u_new is None:
            return None, None, None, None, None, None, None, None
        if _use_plain_math(ctx.kernels, z, current, u_prev):
            grad_z, grad_current, grad_u_prev = ltc_backward_math(
                z, current, u_prev, grad_spikes, grad_u_new, ctx.threshold, need_u_prev, *ctx.surrogate
            )
            return grad_z, grad_current, grad_u_prev, None, None, None, None, None
        impl = _kernels(ctx.kernels)
        fmt = _memory_format(current)
        if fmt is None:
            current = current.contiguous()
            fmt = torch.contiguous_format
        if grad_spikes is None:  # only the membrane feeds the loss: rare, materialise the spike gradient
            grad_spikes = torch.zeros_like(current)
        flat = [_flat(t, current, fmt) for t in (z, current, u_prev, grad_spikes)]
        if grad_u_new is not None:
            flat.append(_flat(grad_u_new, current, fmt))
        kernel = impl.backward[(grad_u_new is not None, need_u_prev)]
        grad_z, grad_current, grad_u_prev = kernel(*flat, ctx.threshold, *ctx.surrogate)
        return (
            _unflat(grad_z, current),
            _unflat(grad_current, current),
            None if grad_u_prev is None else _unflat(grad_u_prev, current),
            None,
            None,
            None,
            None,
            None,
        )


def fused_ltc_update(
    z: Tensor, current: Tensor, u_prev: Tensor, threshold: float, kernels: str = "inductor",
    surrogate: SurrogateParams = DEFAULT_SURROGATE,
) -> tuple[Tensor, Tensor]:
    """Fused LTC update with a recomputing backward.

    Computes what :func:`spyolo.snn.ltc.ltc_update` computes on ``z`` and ``current``
    cast to ``u_prev``'s dtype, followed by casting the spikes to ``current``'s dtype,
    but in one forward and one backward kernel.

    Args:
        z: Time-constant pre-activation ``BN_tau(Conv_tau(I + u_prev))``.
        current: Synaptic current ``I`` (same shape as ``u_prev``).
        u_prev: Previous membrane; float32 or float64 (the compute dtype).
        threshold: Firing threshold ``theta``.
        kernels: ``"inductor"``, ``"aot_eager"`` or ``"eager"`` (see the module docstring).
        surrogate: Constants of the multi-Gaussian surrogate gradient.

    Returns:
        ``(spikes, u_new)``: spikes (0/1, multi-Gaussian surrogate gradient) in
        ``current``'s dtype and the membrane after the hard reset in ``u_prev``'s dtype.

    Raises:
        ValueError: for an unknown ``kernels`` mode, or tensors of different shapes,
            or a low-precision ``u_prev``.
    """
    if kernels not in FUSED_KERNELS:
        raise ValueError(f"unknown fused LTC kernels {kernels!r}; valid values are {list(FUSED_KERNELS)}")
    if not (z.shape == current.shape == u_prev.shape):
        raise ValueError(
            f"fused_ltc_update: z {tuple(z.shape)}, current {tuple(current.shape)} and u_prev "
            f"{tuple(u_prev.shape)} must have the same shape"
        )
    if u_prev.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"fused_ltc_update: the membrane must be float32 or float64, got {u_prev.dtype}")
    spikes, u_new = FusedLTCUpdate.apply(
        z, current, u_prev, float(threshold), kernels,
        float(surrogate.sigma), float(surrogate.height), float(surrogate.gamma),
    )
    return spikes, u_new
