"""The state-dict layout of the authors' released SPYv4 (byin-cwi/sFPTT, ``fptt/yolo_demo_show``).

The release saves ``YoloBody(...).state_dict()``: its network lives under ``network.`` and each of its
19 LTC cells holds four parts, which are spyolo's :class:`~spyolo.snn.ltc.LTCConv2d` parts under
other names (the computation is the same, step for step):

=================  ===================
release            spyolo
=================  ===================
``conv1_x``        ``conv`` (synaptic convolution)
``BN``             ``bn``
``conv_tauM``      ``tau_conv``
``BN1``            ``tau_bn``
=================  ===================

The cells are ``conv1``, ``conv2``, ``block{1,2,3}.conv{1..4}`` (spyolo's ``block*.c{1..4}``),
``conv3``, ``conv_P5`` (``conv_p5``), ``conv_yolo_1`` (``neck1``), ``conv_up`` and ``conv_yolo_2``
(``neck2``); the heads are ``conv_P5_yolo_1`` (``head1``, stride 32) and ``conv_P5_yolo_2``
(``head2``, stride 16). Every cell is registered twice, as an attribute and as an entry of the
``network.network`` list (``network.network.0`` .. ``network.network.18``, in
:data:`~spyolo.utils.choices.LTC_LAYER_NAMES` order), so each of its tensors is in the file twice;
:func:`read_sfptt_state` checks that both copies are equal. Two scalars, ``network.yolo_tau1`` and
``network.yolo_tau2`` (time constants of a leaky read-out the forward pass never calls), have no
counterpart and are reported as unused. A ``module.`` prefix (a model saved inside
``nn.DataParallel``) is removed first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from spyolo.errors import TransferError
from spyolo.utils.choices import LTC_LAYER_NAMES

__all__ = ["SFPTT_UNUSED", "SfpttState", "is_sfptt_state", "read_sfptt_state", "sfptt_key"]

_CELLS = {
    "conv1": "conv1", "conv2": "conv2",
    **{f"block{b}.conv{i}": f"block{b}.c{i}" for b in (1, 2, 3) for i in (1, 2, 3, 4)},
    "conv3": "conv3", "conv_P5": "conv_p5", "conv_yolo_1": "neck1", "conv_up": "conv_up", "conv_yolo_2": "neck2",
}
_PARTS = {"conv1_x": "conv", "BN": "bn", "conv_tauM": "tau_conv", "BN1": "tau_bn"}
_HEADS = {"conv_P5_yolo_1": "head1", "conv_P5_yolo_2": "head2"}
SFPTT_UNUSED: tuple[str, ...] = ("network.yolo_tau1", "network.yolo_tau2")
"""The release's tensors with no counterpart: scalars its forward pass never reads."""

_CELL_KEY = re.compile(r"^network\.(?P<cell>.+?)\.(?P<part>conv1_x|BN1|BN|conv_tauM)\.(?P<rest>[a-z_]+)$")
_LIST_KEY = re.compile(r"^network\.network\.(?P<index>\d+)\.(?P<part>conv1_x|BN1|BN|conv_tauM)\.(?P<rest>[a-z_]+)$")
_HEAD_KEY = re.compile(r"^network\.(?P<head>conv_P5_yolo_[12])\.(?P<rest>weight|bias)$")


def _strip(key: str) -> str:
    return key.removeprefix("module.")


def sfptt_key(key: str) -> str | None:
    """The spyolo name of a key of the release's state dict (``None``: no counterpart)."""
    key = _strip(key)
    match = _LIST_KEY.match(key)
    if match:
        index = int(match["index"])
        if index >= len(LTC_LAYER_NAMES):
            return None
        return f"{LTC_LAYER_NAMES[index]}.{_PARTS[match['part']]}.{match['rest']}"
    match = _CELL_KEY.match(key)
    if match and match["cell"] in _CELLS:
        return f"{_CELLS[match['cell']]}.{_PARTS[match['part']]}.{match['rest']}"
    match = _HEAD_KEY.match(key)
    if match:
        return f"{_HEADS[match['head']]}.{match['rest']}"
    return None


def is_sfptt_state(keys: Mapping[str, object] | list[str]) -> bool:
    """Whether state-dict keys are the release's layout (its first cell's synaptic convolution and
    the LTC time-constant convolution under the release's names)."""
    names = {_strip(str(k)) for k in keys}
    return "network.conv1.conv1_x.weight" in names and "network.conv1.conv_tauM.weight" in names


@dataclass
class SfpttState:
    """The release's tensors under spyolo's names.

    Attributes:
        tensors: spyolo name -> tensor (one copy of each).
        checked_copies: how many tensors were in the file twice (cell and ``network.network`` entry)
            and found equal.
        unused: release keys with no counterpart (:data:`SFPTT_UNUSED`) -> their tensors.
        unknown: keys this layout does not know (another network; none in the release) -> their tensors.
    """

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    checked_copies: int = 0
    unused: dict[str, torch.Tensor] = field(default_factory=dict)
    unknown: dict[str, torch.Tensor] = field(default_factory=dict)


def read_sfptt_state(state: Mapping[str, object], where: str) -> SfpttState:
    """The release's tensors by spyolo name (see the module doc).

    Raises:
        TransferError: the two copies of a tensor differ (``where`` names the file).
    """
    out = SfpttState()
    origin: dict[str, str] = {}
    for raw_key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = _strip(str(raw_key))
        name = sfptt_key(key)
        if name is None:
            (out.unused if key in SFPTT_UNUSED else out.unknown)[key] = value
            continue
        if name in out.tensors:
            other = out.tensors[name]
            if other.shape != value.shape or not torch.equal(other, value):
                raise TransferError(f"{where}: {origin[name]} and {key} are the same tensor of the release's network "
                                    f"(spyolo's {name}) registered twice, but their values differ")
            out.checked_copies += 1
            continue
        out.tensors[name] = value
        origin[name] = key
    return out
