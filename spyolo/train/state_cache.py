"""Neuron-state layouts remembered per input, so that a compiled model sees a state at every step.

A model's LTC membranes are created lazily at the first step after a reset, in the shape,
dtype and memory layout of that step's input current. A ``torch.compile`` wrapper would
then need one graph for the first step (no state) and one for the others. The
:class:`StateLayoutCache` records the layouts after the first (uncompiled) step of the first
batch of each input kind and, for later batches of that kind, creates the states before the
first step (:func:`spyolo.snn.ltc.init_states`), with the same values as lazy creation.
"""

from __future__ import annotations

import torch
from torch import nn

from spyolo.snn import reset_states
from spyolo.snn.ltc import StateLayout, init_states, state_layouts
from spyolo.utils.runtime import is_channels_last

__all__ = ["StateLayoutCache"]

# shape, dtype, device, channels-last, autocast dtype, parameter dtype
LayoutKey = tuple[tuple[int, ...], torch.dtype, torch.device, bool, torch.dtype | None, torch.dtype]


class StateLayoutCache:
    """Resets a model's neuron states, creating them up front once their layouts are known.

    Args:
        model: The model the steps run (plain, compiled or DDP).
        eager_model: The uncompiled module (``model._orig_mod`` for a compiled one).
        amp_dtype: The autocast dtype (part of the key: it sets the membranes' dtype).
        init: Initial membrane, ``"zero"`` or ``"uniform"``.
        generator: Generator for uniform initial membranes.
        enabled: ``False``: every reset is lazy (no state is created before the first step).
    """

    def __init__(
        self,
        model: nn.Module,
        eager_model: nn.Module,
        amp_dtype: torch.dtype | None,
        init: str = "zero",
        generator: torch.Generator | None = None,
        enabled: bool = True,
    ) -> None:
        self.model = model
        self.eager_model = eager_model
        self.amp_dtype = amp_dtype
        self.init = init
        self.generator = generator
        self.enabled = enabled
        self._layouts: dict[LayoutKey, tuple[StateLayout, ...]] = {}
        self._record_key: LayoutKey | None = None

    def key(self, images: torch.Tensor) -> LayoutKey:
        """What the membranes' layouts depend on, for a batch ``images``."""
        first = next(iter(self.eager_model.parameters()), None)
        param_dtype = first.dtype if first is not None else torch.float32
        return (tuple(images.shape), images.dtype, images.device, is_channels_last(images), self.amp_dtype, param_dtype)

    def reset(self, images: torch.Tensor) -> bool:
        """Reset the states for a new batch ``images``; create them now if their layouts are known.

        Returns:
            ``True`` when the states were left to lazy creation (the batch's first step must
            run uncompiled and be followed by :meth:`record`).
        """
        key = self.key(images)
        layouts = self._layouts.get(key) if self.enabled else None
        if layouts is None:
            reset_states(self.model, init=self.init, generator=self.generator)
            self._record_key = key if self.enabled else None
        else:
            init_states(self.eager_model, layouts, images.device, init=self.init, generator=self.generator)
            self._record_key = None
        return self._record_key is not None

    def record(self) -> None:
        """After a step with lazily created states: remember their layouts for this input kind."""
        if self._record_key is not None:
            layouts = state_layouts(self.eager_model)
            if layouts is not None:
                self._layouts[self._record_key] = layouts
            self._record_key = None
