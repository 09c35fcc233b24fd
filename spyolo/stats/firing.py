"""Firing-rate counters attached from outside the model (forward hooks), with no host sync.

Every LTC layer's spikes are summed into a device tensor at each forward; nothing is read
back to the host until :meth:`FiringRateMonitor.rates` or :meth:`mean_rate` is called, so a
training or evaluation loop can run its T timesteps without a GPU synchronisation.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FiringRateMonitor"]


class FiringRateMonitor:
    """Counts spikes and neuron-steps per LTC layer of ``model``.

    Use as a context manager or call :meth:`close` to remove the hooks. ``enabled`` can be
    switched off to make the hooks free (e.g. during evaluation of another metric).
    """

    def __init__(self, model: nn.Module) -> None:
        from spyolo.snn import ltc_layers  # local import: keeps stats importable without the model

        self.layers: list[tuple[str, nn.Module]] = ltc_layers(model)
        self.enabled = True
        self._spikes: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {name: 0 for name, _ in self.layers}
        self._samples: dict[str, int] = {name: 0 for name, _ in self.layers}
        self._handles = [m.register_forward_hook(self._make_hook(name)) for name, m in self.layers]

    def _make_hook(self, name: str):
        def hook(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
            if not self.enabled:
                return
            s = output.detach().sum(dtype=torch.float32)
            acc = self._spikes.get(name)
            self._spikes[name] = s if acc is None else acc + s
            self._counts[name] += output.numel()
            self._samples[name] += int(output.shape[0])

        return hook

    def reset(self) -> None:
        self._spikes.clear()
        self._counts = {name: 0 for name, _ in self.layers}
        self._samples = {name: 0 for name, _ in self.layers}

    def totals(self) -> dict[str, tuple[float, int, int]]:
        """Per layer ``(spikes, neuron_steps, image_steps)`` since the last reset; one host sync.

        ``neuron_steps`` is the number of neuron updates observed (neurons x batch x steps)
        and ``image_steps`` the number of (image, timestep) pairs, so ``neuron_steps /
        image_steps`` is the layer's neuron count per image.
        """
        names = [n for n, _ in self.layers if n in self._spikes]
        vals = torch.stack([self._spikes[n] for n in names]).cpu().tolist() if names else []
        spikes = dict(zip(names, vals))
        return {n: (float(spikes.get(n, 0.0)), self._counts[n], self._samples[n]) for n, _ in self.layers}

    def rates(self) -> dict[str, float]:
        """Per-layer firing rate (spikes per neuron per timestep); one host sync."""
        if not self._spikes:
            return {name: 0.0 for name, _ in self.layers}
        names = [n for n, _ in self.layers if n in self._spikes]
        vals = torch.stack([self._spikes[n] for n in names]).cpu().tolist()
        return {n: (v / self._counts[n] if self._counts[n] else 0.0) for n, v in zip(names, vals)}

    def mean_rate_tensor(self) -> torch.Tensor | None:
        """Mean rate over all neurons and steps as a device tensor (no sync), or None."""
        if not self._spikes:
            return None
        total = torch.stack(list(self._spikes.values())).sum()
        return total / max(1, sum(self._counts.values()))

    def mean_rate(self) -> float:
        t = self.mean_rate_tensor()
        return 0.0 if t is None else float(t)

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FiringRateMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
