"""Multi-Gaussian surrogate gradient for the Heaviside spike function.

The forward pass is the exact step function ``H(v) = 1 if v > 0 else 0``; the
backward pass replaces the (zero almost everywhere) derivative of ``H`` by

    dS/dv = gamma * [ (1 + h) N(v; 0, s) - h N(v; s, 6 s) - h N(v; -s, 6 s) ]

where ``N(v; mu, sd)`` is the Gaussian probability density. With the defaults
``s = 0.3``, ``h = 0.15`` and ``gamma = 0.5`` the surrogate is about 0.732 at
``v = 0``, 0.431 at ``|v| = 0.3``, 0.072 at ``|v| = 0.6`` and slightly negative
(about -0.025) at ``|v| = 1``.

The three constants are the model's ``surrogate`` setting (:class:`SurrogateParams`,
``model.surrogate_sigma`` / ``surrogate_height`` / ``surrogate_gamma`` in the config). The
defaults are the paper's; ``h = 0`` gives a plain Gaussian of width ``s`` and area ``gamma``.

Everything here is branch-free tensor arithmetic, so it traces under
``torch.compile`` without graph breaks, and it accepts float32, float16 and
bfloat16 inputs (the derivative is evaluated in at least float32 precision and
returned in the input's dtype).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_HEIGHT",
    "DEFAULT_SIGMA",
    "DEFAULT_SURROGATE",
    "MultiGaussianSpike",
    "SurrogateParams",
    "multi_gaussian_grad",
    "spike_fn",
]

DEFAULT_SIGMA: float = 0.3
"""Standard deviation ``s`` of the central Gaussian."""

DEFAULT_HEIGHT: float = 0.15
"""Relative height ``h`` of the two negative side lobes."""

DEFAULT_GAMMA: float = 0.5
"""Overall scale ``gamma`` of the surrogate."""



@dataclass(frozen=True)
class SurrogateParams:
    """Constants ``(s, h, gamma)`` of the multi-Gaussian surrogate of one model.

    Args:
        sigma: Width ``s`` of the central Gaussian (> 0).
        height: Relative height ``h`` of the negative side lobes (>= 0; 0: a plain Gaussian).
        gamma: Overall scale (> 0).

    Raises:
        ValueError: for a value outside those ranges.
    """

    sigma: float = DEFAULT_SIGMA
    height: float = DEFAULT_HEIGHT
    gamma: float = DEFAULT_GAMMA

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"surrogate sigma must be a positive number, got {self.sigma!r}")
        if not (math.isfinite(self.height) and self.height >= 0):
            raise ValueError(f"surrogate height must be >= 0, got {self.height!r}")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"surrogate gamma must be a positive number, got {self.gamma!r}")

    def peak(self) -> float:
        """The surrogate's value at ``v = 0``."""
        return float(multi_gaussian_grad(torch.zeros(1, dtype=torch.float64), self.sigma, self.height, self.gamma))


DEFAULT_SURROGATE = SurrogateParams()
"""The paper's surrogate: ``s = 0.3``, ``h = 0.15``, ``gamma = 0.5``."""

_INV_SQRT_2PI: float = 1.0 / math.sqrt(2.0 * math.pi)


def _gaussian_pdf(v: Tensor, mean: float, std: float) -> Tensor:
    """Gaussian probability density ``N(v; mean, std)`` evaluated elementwise."""
    z = (v - mean) / std
    return torch.exp(-0.5 * z * z) * (_INV_SQRT_2PI / std)


def multi_gaussian_grad(
    v: Tensor,
    s: float = DEFAULT_SIGMA,
    h: float = DEFAULT_HEIGHT,
    gamma: float = DEFAULT_GAMMA,
) -> Tensor:
    """Return the multi-Gaussian surrogate derivative ``dS/dv`` at ``v``.

    This is the pure-torch reference of the function used in the backward pass of
    :class:`MultiGaussianSpike`; tests and fused kernels compare against it.

    Args:
        v: Distance of the membrane from the threshold (``u' - theta``).
        s: Standard deviation of the central Gaussian; the side lobes are
            centred at ``+-s`` with standard deviation ``6 s``.
        h: Relative height of the side lobes.
        gamma: Overall scale.

    Returns:
        A tensor of ``v``'s shape and dtype. Low-precision inputs (bf16, fp16) are
        evaluated in float32 and cast back.
    """
    compute_dtype = torch.promote_types(v.dtype, torch.float32)
    x = v.to(compute_dtype)
    centre = _gaussian_pdf(x, 0.0, s)
    side = _gaussian_pdf(x, s, 6.0 * s) + _gaussian_pdf(x, -s, 6.0 * s)
    return (gamma * ((1.0 + h) * centre - h * side)).to(v.dtype)


class MultiGaussianSpike(torch.autograd.Function):
    """Heaviside step ``(v > 0)`` with the multi-Gaussian surrogate gradient.

    Call it as ``MultiGaussianSpike.apply(v, s, h, gamma)``; prefer
    :func:`spike_fn`, which supplies the default constants. The output has
    ``v``'s dtype and is exactly 0 or 1. No gradient is returned for the three
    constants.
    """

    @staticmethod
    def forward(v: Tensor, s: float, h: float, gamma: float) -> Tensor:  # type: ignore[override]
        """Return ``1`` where ``v > 0`` and ``0`` elsewhere, in ``v``'s dtype."""
        return (v > 0).to(v.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        """Save ``v`` and the surrogate constants for the backward pass."""
        v, s, h, gamma = inputs
        ctx.save_for_backward(v)
        ctx.s = s
        ctx.h = h
        ctx.gamma = gamma

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        """Multiply the incoming gradient by the surrogate derivative at ``v``."""
        (v,) = ctx.saved_tensors
        surrogate = multi_gaussian_grad(v, ctx.s, ctx.h, ctx.gamma)
        return grad_output * surrogate, None, None, None


def spike_fn(
    v: Tensor,
    s: float = DEFAULT_SIGMA,
    h: float = DEFAULT_HEIGHT,
    gamma: float = DEFAULT_GAMMA,
) -> Tensor:
    """Emit spikes ``H(v)`` with the multi-Gaussian surrogate gradient.

    Args:
        v: Membrane minus threshold; any shape, float dtype.
        s: Surrogate width (see :func:`multi_gaussian_grad`).
        h: Side-lobe height.
        gamma: Overall scale.

    Returns:
        Spikes (0 or 1) with ``v``'s shape and dtype.
    """
    return MultiGaussianSpike.apply(v, s, h, gamma)
