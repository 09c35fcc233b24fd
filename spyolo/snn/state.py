"""Hidden state kept inside modules, and helpers to reset or truncate it.

Spiking layers advance one timestep per ``forward`` call and keep their state
(e.g. the membrane potential) as attributes of the module, so a network is
driven exactly like a stateless one: ``out = model(x)`` once per step. A module
declares its state variables with :meth:`StatefulModule.register_memory`; the
functions :func:`reset_states` and :func:`detach_states` then act on every
stateful module of a model.

A reset sets each state to ``None``; the layer creates it lazily at its next
``forward`` with the shape and device of that step's tensors (so batch size and
resolution may change between resets), filled with zeros or with ``U[0, 1)``
draws according to the ``init`` mode given to the reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from spyolo.utils.choices import STATE_INITS

__all__ = [
    "STATE_INITS",
    "StatefulModule",
    "detach_states",
    "reset_states",
    "stateful_modules",
]

# STATE_INITS (spyolo.utils.choices): the valid values of the ``init`` argument of reset_states.


def _check_init(init: str) -> None:
    if init not in STATE_INITS:
        raise ValueError(f"unknown state init {init!r}; valid values are {list(STATE_INITS)}")


class StatefulModule(nn.Module):
    """Base class for modules that keep hidden state between ``forward`` calls.

    Subclasses call :meth:`register_memory` in ``__init__`` for each state
    variable, read it as a plain attribute (``self.v``), create it with
    :meth:`new_memory` when it is ``None``, and assign the updated tensor back
    (``self.v = v_new``). States are not parameters or buffers: they are not in
    ``state_dict`` and not moved by ``.to()``; a reset recreates them on the
    device of the input.

    Copying or pickling a module (``copy.deepcopy``, ``pickle``, ``torch.save``
    of the whole module) drops the states (the copy starts as if just reset)
    but keeps the init mode and generator; this also makes copies of a model
    possible in the middle of a training step, when the states are non-leaf
    tensors of an autograd graph.
    """

    def __init__(self) -> None:
        super().__init__()
        self._memory_names: list[str] = []
        self._memory_init: str = "zero"
        self._memory_generator: torch.Generator | None = None

    def register_memory(self, name: str, value: Tensor | None = None) -> None:
        """Declare a state variable ``name`` with initial value ``value``.

        Raises:
            ValueError: if ``name`` is already an attribute, parameter, buffer,
                submodule or state of this module.
            TypeError: if ``value`` is neither a tensor nor ``None``.
        """
        if name in self._memory_names or hasattr(self, name):
            raise ValueError(f"{type(self).__name__}: cannot register state {name!r}: the name is already in use")
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(
                f"{type(self).__name__}: state {name!r} must be a Tensor or None, got {type(value).__name__}"
            )
        self._memory_names.append(name)
        object.__setattr__(self, name, value)

    @property
    def memory_names(self) -> tuple[str, ...]:
        """Names of the registered state variables, in registration order."""
        return tuple(self._memory_names)

    @property
    def memory_init(self) -> str:
        """How states are created after the last reset: ``"zero"`` or ``"uniform"``."""
        return self._memory_init

    def memories(self) -> Iterator[tuple[str, Tensor | None]]:
        """Yield ``(name, value)`` for every state variable."""
        for name in self._memory_names:
            yield name, getattr(self, name)

    def reset_memories(self, init: str = "zero", generator: torch.Generator | None = None) -> None:
        """Set every state to ``None`` and choose how it will be recreated.

        Args:
            init: ``"zero"`` (zeros) or ``"uniform"`` (independent ``U[0, 1)``
                draws per element).
            generator: Random generator for the uniform draws; ``None`` uses
                torch's global generator. Ignored for ``"zero"``.
        """
        _check_init(init)
        for name in self._memory_names:
            object.__setattr__(self, name, None)
        self._memory_init = init
        self._memory_generator = generator

    def detach_memories(self) -> None:
        """Replace every state tensor by its detached version (cuts the graph)."""
        for name in self._memory_names:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value.detach())

    def new_memory(
        self,
        shape: torch.Size | tuple[int, ...],
        device: torch.device,
        dtype: torch.dtype,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> Tensor:
        """Create a fresh state tensor according to the current init mode.

        For ``"uniform"`` the values are drawn in logical (row-major) order and
        then laid out in ``memory_format``, so they do not depend on the layout.
        With a generator they are drawn on the generator's device (a CPU
        generator cannot draw CUDA tensors and vice versa) and then moved to
        ``device``; the draws therefore depend only on the generator's state, not
        on where the model runs.
        """
        if self._memory_init == "zero":
            values = torch.zeros(shape, device=device, dtype=dtype)
        elif self._memory_generator is None:
            values = torch.rand(shape, device=device, dtype=dtype)
        else:
            generator = self._memory_generator
            values = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        if memory_format != torch.contiguous_format:
            values = values.contiguous(memory_format=memory_format)
        return values

    def __getstate__(self) -> dict[str, Any]:
        """Pickling/copying support: the states themselves are not copied."""
        state = self.__dict__.copy()
        for name in self._memory_names:
            state[name] = None
        return state


def stateful_modules(model: nn.Module) -> Iterator[StatefulModule]:
    """Yield every :class:`StatefulModule` in ``model`` (including itself), in ``modules()`` order."""
    for module in model.modules():
        if isinstance(module, StatefulModule):
            yield module


def reset_states(model: nn.Module, init: str = "zero", generator: torch.Generator | None = None) -> None:
    """Reset the state of every stateful module of ``model``.

    Each state becomes ``None`` and is recreated at the module's next
    ``forward`` with the shape, device and dtype that step needs.

    Args:
        model: Any module; non-stateful submodules are left alone.
        init: ``"zero"`` or ``"uniform"`` (``U[0, 1)`` per element).
        generator: Generator for the uniform draws, shared by all modules and
            consumed in forward order, so a generator seeded identically gives
            identical initial states. If its device differs from the input's,
            the draws are made on the generator's device and moved.

    Raises:
        ValueError: for an unknown ``init``.
    """
    _check_init(init)
    for module in stateful_modules(model):
        module.reset_memories(init=init, generator=generator)


def detach_states(model: nn.Module) -> None:
    """Detach the state of every stateful module of ``model`` from its graph.

    Gradients of later steps then stop at the current state values: this is the
    one-step truncation used by FPTT. Values are unchanged.
    """
    for module in stateful_modules(model):
        module.detach_memories()
