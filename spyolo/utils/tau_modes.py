"""The paths of the LTC neuron's time constant (``model.tau_mode``) as data: one :class:`TauMode` per mode.

Every mode computes ``tau = sigmoid(z)`` and runs the same membrane update
(``u' = u + tau (I - u)``, ``s = H(u' - theta)``, ``u <- u' (1 - s)``); a mode is only the path of
the pre-activation ``z``, which :data:`TAU_MODE_TABLE` declares with a few fields:

* ``input``: what the path reads: ``"sum"`` (``I + u_prev``, the synaptic current plus the previous
  membrane), ``"spikes"`` (the layer's own spikes of the previous step) or ``"none"`` (nothing:
  ``z = a_c``, one learned value per channel);
* ``kernel``, ``depthwise``, ``stride``: the tau convolution (``tau_conv``, padding ``kernel // 2``,
  bias, followed by the batch norm ``tau_bn``); at a ``stride`` above 1 its output is repeated over
  each ``stride x stride`` block of neurons (nearest upsampling, cropped to the layer's map): one
  time constant per block;
* ``adds``, ``muls``: the elementwise operations of one neuron's update per step, besides the
  convolutions' bias additions (:mod:`spyolo.stats.sops`): ``I - u``, ``u + ...`` and the threshold
  comparison (3 additions) and ``tau * (I - u)`` (1 multiplication) in every mode; the sum ``I + u``
  (1 addition) for ``input="sum"``; the sigmoid (1 addition + 1 multiplication, one segment of a
  piecewise-linear evaluation) unless tau is a constant per channel (``input="none"``).

What follows from the fields (:class:`TauMode`'s properties), the same for every entry:

* the modules: ``tau_conv`` (an ``nn.Conv2d`` of the layer's channels, ``groups`` = channels if
  ``depthwise``) and ``tau_bn`` (an ``nn.BatchNorm2d``); for ``input="none"`` the parameter
  ``tau_param`` (one per channel, initialised to 0: ``tau = 0.5``) instead. These names are the
  state-dict keys of the checkpoints;
* the extra state: ``input="spikes"`` keeps the previous spikes as the state ``s`` (zeros at the
  first step after a reset, whatever the membrane's init), exported to ONNX as ``s_i``;
* how the time constant is made neutral (``tau = 0.5`` for every neuron, input and step, still
  learnable; :func:`spyolo.snn.ltc.neutral_tau`): the batch norm's scale and shift set to 0, or
  ``tau_param`` set to 0;
* how the tau convolution is counted (:mod:`spyolo.stats.sops`): multiply-accumulates (MACs) on the
  analog ``I + u``, accumulates (ACs) on binary spikes.

Adding a mode is one entry of :data:`TAU_MODE_TABLE` (plus its tests): the LTC layer
(:mod:`spyolo.snn.ltc`), the config's check of ``model.tau_mode`` and ``model.tau_mode_layers``, the
operation counts and energy (:mod:`spyolo.stats`), the fused update and the ONNX export read it.
A path outside these fields (another input, another module) needs code in ``LTCConv2d`` too.

Torch-free, so that :mod:`spyolo.config` checks the names without importing torch.
"""

from __future__ import annotations

from collections.abc import KeysView
from dataclasses import dataclass

__all__ = ["DEFAULT_TAU_MODE", "TAU_INPUTS", "TAU_MODES", "TAU_MODE_TABLE", "TauMode", "tau_mode_entry"]

TAU_INPUTS: tuple[str, ...] = ("sum", "spikes", "none")
"""What a tau path reads: ``I + u_prev``, the layer's previous spikes, or nothing (one value per channel)."""


@dataclass(frozen=True, kw_only=True)
class TauMode:
    """One path of the time constant's pre-activation ``z`` (see the module docstring).

    Attributes:
        input: ``"sum"`` (``I + u_prev``), ``"spikes"`` (the previous spikes, kept as state ``s``)
            or ``"none"`` (``z = tau_param``, one learned value per channel).
        adds: elementwise additions of one neuron's update per step (convolutions' biases apart).
        muls: elementwise multiplications of one neuron's update per step.
        kernel: the tau convolution's kernel size (odd; padding ``kernel // 2``); unused for ``"none"``.
        depthwise: one filter per channel (``groups`` = channels) instead of a dense convolution.
        stride: the tau convolution's stride; above 1 its output is repeated over each
            ``stride x stride`` block of neurons (nearest upsampling, cropped to the map).
    """

    input: str
    adds: int
    muls: int
    kernel: int = 3
    depthwise: bool = False
    stride: int = 1

    def __post_init__(self) -> None:
        if self.input not in TAU_INPUTS:
            raise ValueError(f"TauMode: input must be one of {list(TAU_INPUTS)}, got {self.input!r}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"TauMode: kernel must be a positive odd integer, got {self.kernel}")
        if self.stride < 1:
            raise ValueError(f"TauMode: stride must be >= 1, got {self.stride}")
        if self.adds < 0 or self.muls < 0:
            raise ValueError(f"TauMode: adds and muls must be >= 0, got {self.adds} and {self.muls}")

    @property
    def has_conv(self) -> bool:
        """Whether the path has the modules ``tau_conv`` and ``tau_bn`` (else the parameter ``tau_param``)."""
        return self.input != "none"

    @property
    def states(self) -> tuple[str, ...]:
        """The layer's states besides its membrane ``v``: ``("s",)`` for a path that reads the previous spikes."""
        return ("s",) if self.input == "spikes" else ()

    @property
    def conv_ops(self) -> str | None:
        """How the tau convolution is counted: ``"ac"`` (binary input), ``"mac"`` (analog input), ``None`` (none)."""
        return {"sum": "mac", "spikes": "ac"}.get(self.input)


TAU_MODE_TABLE: dict[str, TauMode] = {
    # the paper's (the release's network, unchanged): a dense 3x3 convolution over analog values, 9 C MACs per neuron
    "ltc": TauMode(input="sum", adds=5, muls=2),
    # the same convolution on the layer's own spikes of the previous step: accumulate-only
    "spike": TauMode(input="spikes", adds=4, muls=2),
    # one 3x3 filter per channel: 9 MACs per neuron
    "depthwise": TauMode(input="sum", adds=5, muls=2, depthwise=True),
    # the depthwise filter at stride 2, one time constant per 2x2 block: 9 MACs per 4 neurons
    "coarse": TauMode(input="sum", adds=5, muls=2, depthwise=True, stride=2),
    # the neuron's own I + u scaled and shifted per channel: 1 MAC per neuron
    "affine": TauMode(input="sum", adds=5, muls=2, kernel=1, depthwise=True),
    # one learned time constant per channel, computed once: no convolution, no sigmoid per neuron
    "channel": TauMode(input="none", adds=3, muls=1),
}
"""The modes of ``model.tau_mode`` in the order the config lists them; the first is the paper's."""

TAU_MODES: KeysView[str] = TAU_MODE_TABLE.keys()
"""The names of :data:`TAU_MODE_TABLE` (a live view: a mode added to the table is a valid ``model.tau_mode``)."""

DEFAULT_TAU_MODE = "ltc"
"""The paper's mode, the default of ``model.tau_mode``."""


def tau_mode_entry(name: str) -> TauMode:
    """The table's entry of mode ``name``.

    Raises:
        ValueError: ``name`` is not a mode of :data:`TAU_MODE_TABLE`.
    """
    entry = TAU_MODE_TABLE.get(name)
    if entry is None:
        raise ValueError(f"unknown tau_mode {name!r}; valid values are {list(TAU_MODES)}")
    return entry
