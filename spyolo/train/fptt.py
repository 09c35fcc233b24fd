"""Forward Propagation Through Time (FPTT): the dynamic regulariser and its two traces.

Kag & Saligrama (ICML 2021), as used by Yin, Corradi & Bohte (2023) for SPYv4.
At every timestep t the loss L_t is augmented by

    R(W) = -<W, lam> + (alpha_reg / 2) * ||W - W_bar||^2,    dR/dW = alpha_reg * (W - W_bar) - lam

and after the optimiser step the traces move as

    lam   <- lam - alpha * (W - W_bar)
    W_bar <- (1 - beta) * W_bar + beta * W - (beta / alpha) * lam      (with the new lam)

``W_bar`` starts as a copy of ``W`` and ``lam`` as zeros. The released code uses
``alpha_reg = 0.1`` in the regulariser and ``alpha = 0.5`` in the trace update; spyolo defaults
to one ``alpha`` for both (``alpha_reg=None``) and lets both be set for exact parity.

All arithmetic runs as ``torch._foreach_*`` kernels over the whole parameter list: no Python
arithmetic per parameter in the hot path. Memory: two parameter-sized buffers (``w_bar``,
``lam``) plus one transient difference buffer.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["FPTT"]


class FPTT:
    """Per-parameter FPTT traces for ``params`` (only those with ``requires_grad``)."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        alpha: float = 0.5,
        beta: float = 0.5,
        alpha_reg: float | None = None,
    ) -> None:
        if alpha <= 0:
            raise ValueError(f"FPTT alpha must be > 0 (it divides beta), got {alpha}")
        if not 0 < beta <= 1:
            raise ValueError(f"FPTT beta must be in (0, 1], got {beta}")
        self.params: list[torch.nn.Parameter] = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("FPTT needs at least one trainable parameter")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.alpha_reg = float(alpha if alpha_reg is None else alpha_reg)
        with torch.no_grad():
            self.w_bar: list[torch.Tensor] = [p.detach().clone() for p in self.params]
            self.lam: list[torch.Tensor] = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def add_regularizer_grad(self) -> None:
        """Add ``alpha_reg * (W - W_bar) - lam`` to every parameter's ``.grad``.

        A parameter without a gradient this step (unused) gets the regulariser's gradient alone.
        """
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in self.params]
        diff = torch._foreach_sub(self.params, self.w_bar)
        torch._foreach_mul_(diff, self.alpha_reg)
        torch._foreach_sub_(diff, self.lam)
        torch._foreach_add_(grads, diff)

    @torch.no_grad()
    def update_traces(self) -> None:
        """The two trace updates, to be called after the optimiser step."""
        diff = torch._foreach_sub(self.params, self.w_bar)
        torch._foreach_add_(self.lam, diff, alpha=-self.alpha)
        torch._foreach_mul_(self.w_bar, 1.0 - self.beta)
        torch._foreach_add_(self.w_bar, self.params, alpha=self.beta)
        torch._foreach_add_(self.w_bar, self.lam, alpha=-self.beta / self.alpha)

    @torch.no_grad()
    def reset_to_average(self) -> None:
        """Copy ``W_bar`` into the parameters (the release does this at the end of every epoch)."""
        torch._foreach_copy_(self.params, self.w_bar)

    def regularizer_value(self) -> torch.Tensor:
        """R(W) itself (for logging and tests; not used in training)."""
        with torch.no_grad():
            total = torch.zeros((), device=self.params[0].device, dtype=torch.float32)
            for p, wb, lam in zip(self.params, self.w_bar, self.lam):
                total += -(p.float() * lam.float()).sum() + 0.5 * self.alpha_reg * (p.float() - wb.float()).pow(2).sum()
            return total

    def state_dict(self) -> dict:
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "alpha_reg": self.alpha_reg,
            "w_bar": [t.clone() for t in self.w_bar],
            "lam": [t.clone() for t in self.lam],
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["w_bar"]) != len(self.params) or len(state["lam"]) != len(self.params):
            raise ValueError(
                f"FPTT state has {len(state['w_bar'])} traces, the model has {len(self.params)} parameters"
            )
        self.alpha, self.beta, self.alpha_reg = state["alpha"], state["beta"], state["alpha_reg"]
        with torch.no_grad():
            for dst, src in zip(self.w_bar, state["w_bar"]):
                dst.copy_(src)
            for dst, src in zip(self.lam, state["lam"]):
                dst.copy_(src)
