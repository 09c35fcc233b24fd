"""SPYv4 (spiking YOLOv4-tiny with LTC neurons) and its ANN twin.

Both networks are built by one topology class from a *layer factory*: SPYv4 uses
:class:`~spyolo.snn.ltc.LTCConv2d` (one LTC neuron layer per Conv-BN-LeakyReLU of
YOLOv4-tiny), the ANN twin uses :class:`ConvBNAct`. The topology is section 2 of
the reference; at ``width=1`` and a 416x416 input:

==========  ============================================  ============
name        op                                            output
==========  ============================================  ============
conv1       3->32, 3x3, stride 2                          208x208x32
conv2       32->64, 3x3, stride 2                         104x104x64
block1      CSP block, c=64 (then 2x2 max-pool)           52x52x128
block2      CSP block, c=128                              26x26x256
block3      CSP block, c=256; feat1 = its c4 output       13x13x512
conv3       512->512, 3x3                                 13x13x512
conv_p5     512->256, 1x1 (P5)                            13x13x256
neck1       256->512, 3x3                                 13x13x512
head1       plain 1x1 conv 512->A*(5+C), with bias        13x13x75
conv_up     256->128, 1x1, nearest x2 upsample            26x26x128
neck2       cat[conv_up, feat1] 384->256, 3x3             26x26x256
head2       plain 1x1 conv 256->A*(5+C), with bias        26x26x75
==========  ============================================  ============

A CSP block with ``c`` channels: ``c1`` 3x3 c->c (= route); the second half of
its channels goes through ``c2`` 3x3 c/2->c/2 (= route1) and ``c3`` 3x3
c/2->c/2; ``c4`` 1x1 c->c maps ``cat[c3, route1]`` to ``feat``; the block
returns ``maxpool2x2(cat[route, feat])`` (2c channels) and ``feat``.

The module names above are stable: checkpoints, firing-rate tables and SOP
counts rely on them. Modules are registered in forward order.

Width multiplier: every channel count is multiplied by ``width`` and rounded up
to a multiple of 8 (minimum 8), which keeps CSP halves integral. The channel
lists ``(conv1, conv2, block1, block2, block3 c, conv3, conv_p5, neck1, conv_up, neck2)``:

* width 1.0:  32, 64, 64, 128, 256, 512, 256, 512, 128, 256
* width 0.5:  16, 32, 32, 64, 128, 256, 128, 256, 64, 128
* width 0.25: 8, 16, 16, 32, 64, 128, 64, 128, 32, 64

Head output layout: ``(B, A*(5+C), H/s, W/s)`` reshapes to ``(B, A, 5+C, H/s, W/s)``
with channels ``[tx, ty, tw, th, tobj, cls_0..cls_{C-1}]`` per anchor slot; slot
``j`` of head ``k`` uses anchor ``masks[k][j]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spyolo.models.heads import ANCHOR_REF_SIZE, DEFAULT_ANCHORS, DEFAULT_MASKS, STRIDES
from spyolo.models.readout import READOUTS, MeanReadout
from spyolo.snn.ltc import TAU_MODES, LTCConv2d
from spyolo.snn.state import reset_states
from spyolo.snn.surrogate import DEFAULT_SURROGATE, SurrogateParams
from spyolo.utils.choices import (
    LTC_LAYER_GROUPS,
    LTC_LAYER_NAMES,
    MODEL_INPUT_CHANNELS,
    MODEL_INPUT_PER_TIMESTEP,
    MODEL_KINDS,
)

__all__ = [
    "MODEL_KINDS",
    "ConvBNAct",
    "SPYv4",
    "YOLOv4Tiny",
    "build_model",
    "resolve_tau_modes",
    "run_timesteps",
    "scaled_channels",
    "timestep_input",
]

# MODEL_KINDS (spyolo.utils.choices, re-exported here): the valid ``ModelConfig.kind`` values.

LayerFactory = Callable[..., nn.Module]
"""``factory(in_channels, out_channels, kernel_size, stride=..., bias=..., upsample=..., name=...)``; ``name``
is the layer's qualified module name (``"conv1"``, ``"block2.c3"``)."""


def scaled_channels(channels: int, width: float) -> int:
    """Return ``channels * width`` rounded up to a multiple of 8, at least 8."""
    if not width > 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    # The small epsilon keeps products such as 64 * 0.3 = 19.2000000001 from
    # rounding up one step too far because of float error.
    return max(8, 8 * math.ceil(channels * width / 8 - 1e-9))


class ConvBNAct(nn.Module):
    """Conv-BN-LeakyReLU(0.1), the stateless ANN counterpart of :class:`LTCConv2d`.

    With ``upsample=True`` the nearest x2 upsampling is applied after BN and
    before the activation, the position it has in the LTC layer (where it acts on
    the current ``I``); nearest upsampling commutes with the elementwise
    activation, so this equals upsampling the activated output.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size (odd); padding is ``kernel_size // 2``.
        stride: Convolution stride.
        bias: Whether the convolution has a bias.
        upsample: Nearest x2 upsampling of the output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = False,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"ConvBNAct: kernel_size must be a positive odd integer, got {kernel_size}")
        self.upsample = upsample
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply conv, BN, optional upsampling and LeakyReLU."""
        y = self.bn(self.conv(x))
        if self.upsample:
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        return self.act(y)

    def extra_repr(self) -> str:
        return f"upsample={self.upsample}"


class _CSPBlock(nn.Module):
    """YOLOv4-tiny CSP block; ``forward`` returns ``(pooled 2c output, feat)``."""

    def __init__(self, layer: LayerFactory, in_channels: int, channels: int, name: str) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"CSP block needs an even channel count, got {channels}")
        half = channels // 2
        self.half = half
        self.c1 = layer(in_channels, channels, 3, stride=1, bias=False, upsample=False, name=f"{name}.c1")
        self.c2 = layer(half, half, 3, stride=1, bias=False, upsample=False, name=f"{name}.c2")
        self.c3 = layer(half, half, 3, stride=1, bias=False, upsample=False, name=f"{name}.c3")
        self.c4 = layer(channels, channels, 1, stride=1, bias=False, upsample=False, name=f"{name}.c4")
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        route = self.c1(x)
        route1 = self.c2(route[:, self.half :])
        y = self.c3(route1)
        feat = self.c4(torch.cat([y, route1], dim=1))
        return self.pool(torch.cat([route, feat], dim=1)), feat


class _YOLOv4TinyTopology(nn.Module):
    """Shared YOLOv4-tiny topology; subclasses choose the layer factory.

    Args:
        layer: Factory called as ``layer(in, out, k, stride=, bias=, upsample=, name=)``.
        standalone_bias: Conv bias of the layers outside the CSP blocks.
        num_classes: Number of object classes ``C``.
        width: Channel multiplier (see the module docstring).
        anchors: Anchor ``(w, h)`` pairs in pixels at ``anchor_ref_size``.
        masks: Anchor indices per head: ``masks[0]`` for stride 32, ``masks[1]``
            for stride 16.
        anchor_ref_size: Input size at which ``anchors`` are given.
        input_dropout: Probability of ``Dropout2d`` on the input image in training (the
            release uses 0.1 for SPYv4; 0 adds nothing).
        scale_xy: Centre scale of the heads' decoding (Darknet's ``scale_x_y``; 1 for SPYv4,
            1.05 for the original Darknet YOLOv4-tiny; :func:`spyolo.models.heads.decode_head`).
    """

    is_spiking: ClassVar[bool] = False
    strides: tuple[int, int] = STRIDES

    def __init__(
        self,
        layer: LayerFactory,
        standalone_bias: bool,
        num_classes: int,
        width: float,
        anchors: Sequence[Sequence[float]],
        masks: Sequence[Sequence[int]],
        anchor_ref_size: int,
        input_dropout: float = 0.0,
        scale_xy: float = 1.0,
        in_channels: int = 3,
        input_frames: int = 1,
    ) -> None:
        super().__init__()
        if in_channels < 1 or input_frames < 1:
            raise ValueError(f"in_channels and input_frames must be >= 1, got {in_channels} and {input_frames}")
        self.in_channels = int(in_channels)
        self.input_frames = int(input_frames)
        if not 1.0 <= scale_xy <= 2.0:
            raise ValueError(f"scale_xy must be in [1, 2], got {scale_xy}")
        self.scale_xy = float(scale_xy)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        anchor_tensor = torch.tensor([[float(a) for a in pair] for pair in anchors], dtype=torch.float32)
        if anchor_tensor.ndim != 2 or anchor_tensor.shape[1] != 2 or anchor_tensor.shape[0] == 0:
            raise ValueError(f"anchors must be a non-empty list of (w, h) pairs, got {anchors!r}")
        if len(masks) != 2 or any(len(m) == 0 for m in masks):
            raise ValueError(
                f"masks must hold two non-empty lists of anchor indices (stride 32, stride 16), got {masks!r}"
            )
        for head_mask in masks:
            for index in head_mask:
                if not 0 <= int(index) < anchor_tensor.shape[0]:
                    raise ValueError(f"mask index {index} out of range for {anchor_tensor.shape[0]} anchors")
        self.num_classes = int(num_classes)
        self.width = float(width)
        self.masks: tuple[tuple[int, ...], ...] = tuple(tuple(int(i) for i in m) for m in masks)
        self.anchor_ref_size = int(anchor_ref_size)
        self.register_buffer("anchors", anchor_tensor, persistent=False)
        self.input_dropout = nn.Dropout2d(input_dropout) if input_dropout > 0 else nn.Identity()

        ch = [scaled_channels(c, width) for c in (32, 64, 64, 128, 256, 512, 256, 512, 128, 256)]
        c_conv1, c_conv2, c_b1, c_b2, c_b3, c_conv3, c_p5, c_neck1, c_up, c_neck2 = ch
        b = standalone_bias
        outputs_per_slot = 5 + self.num_classes

        self.conv1 = layer(self.in_channels * self.input_frames, c_conv1, 3, stride=2, bias=b, upsample=False,
                           name="conv1")
        self.conv2 = layer(c_conv1, c_conv2, 3, stride=2, bias=b, upsample=False, name="conv2")
        self.block1 = _CSPBlock(layer, c_conv2, c_b1, "block1")
        self.block2 = _CSPBlock(layer, 2 * c_b1, c_b2, "block2")
        self.block3 = _CSPBlock(layer, 2 * c_b2, c_b3, "block3")
        self.conv3 = layer(2 * c_b3, c_conv3, 3, stride=1, bias=b, upsample=False, name="conv3")
        self.conv_p5 = layer(c_conv3, c_p5, 1, stride=1, bias=b, upsample=False, name="conv_p5")
        self.neck1 = layer(c_p5, c_neck1, 3, stride=1, bias=b, upsample=False, name="neck1")
        self.head1 = nn.Conv2d(c_neck1, len(self.masks[0]) * outputs_per_slot, 1, bias=True)
        self.conv_up = layer(c_p5, c_up, 1, stride=1, bias=b, upsample=True, name="conv_up")
        self.neck2 = layer(c_up + c_b3, c_neck2, 3, stride=1, bias=b, upsample=False, name="neck2")
        self.head2 = nn.Conv2d(c_neck2, len(self.masks[1]) * outputs_per_slot, 1, bias=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the network (one timestep for the spiking model).

        Args:
            x: Images ``(B, C, H, W)`` (``C = in_channels``: 3 for images) with ``H`` and ``W``
                multiples of 32. A model of ``input_frames = T > 1`` frames (the ANN twin of event
                data) takes the sequence ``(B, T, C, H, W)`` and reads it stacked as ``T*C``
                channels.

        Returns:
            ``(out_s32, out_s16)`` of shapes ``(B, A0*(5+C), H/32, W/32)`` and
            ``(B, A1*(5+C), H/16, W/16)``.
        """
        if x.ndim == 5 and self.input_frames > 1:
            x = x.flatten(1, 2)
        channels = self.in_channels * self.input_frames
        if x.ndim != 4 or x.shape[1] != channels or x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(
                f"{type(self).__name__} expects inputs (B, {channels}, H, W) with H and W multiples of 32, "
                f"got shape {tuple(x.shape)}"
                + (" (a sequence: feed timestep t's frame, spyolo.models.timestep_input(x, t))" if x.ndim == 5 else "")
            )
        y = self.conv2(self.conv1(self.input_dropout(x)))
        y, _ = self.block1(y)
        y, _ = self.block2(y)
        y, feat1 = self.block3(y)
        p5 = self.conv_p5(self.conv3(y))
        out_s32 = self.head1(self.neck1(p5))
        up = self.conv_up(p5)
        out_s16 = self.head2(self.neck2(torch.cat([up, feat1], dim=1)))
        return self.read(out_s32, out_s16)

    def read(self, out_s32: Tensor, out_s16: Tensor) -> tuple[Tensor, Tensor]:
        """The outputs of this step as read out (see :mod:`spyolo.models.readout`); the heads' own here."""
        return out_s32, out_s16

    @torch.no_grad()
    def init_head_priors(self, prior: float = 0.01) -> None:
        """Set the heads' objectness and class biases to ``logit(prior)``.

        The usual prior-probability initialisation of detection heads (Lin et al., RetinaNet):
        at the start every slot predicts "no object" with probability ``1 - prior`` instead of
        0.5, so the thousands of negative slots do not swamp the first updates. The released
        SPYv4 keeps PyTorch's default head init (``model.head_prior=0`` reproduces that).
        """
        if not 0.0 < prior < 1.0:
            raise ValueError(f"head prior must be in (0, 1), got {prior}")
        logit = math.log(prior / (1.0 - prior))
        per_slot = 5 + self.num_classes
        for head in (self.head1, self.head2):
            bias = head.bias.view(-1, per_slot)
            bias[:, 4:].fill_(logit)

    def run(
        self,
        x: Tensor,
        timesteps: int,
        return_all: bool = False,
        init: str = "zero",
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]:
        """Shortcut for :func:`run_timesteps` ``(self, x, timesteps, ...)``."""
        return run_timesteps(self, x, timesteps, return_all=return_all, init=init, generator=generator)


class SPYv4(_YOLOv4TinyTopology):
    """Spiking YOLOv4-tiny with LTC neurons (19 LTC layers, analog 1x1 heads).

    Each ``forward`` call advances every neuron one timestep; use
    :func:`run_timesteps` (or :meth:`run`) to reset the state and run ``T`` steps.
    At ``num_classes=20`` and ``width=1`` it has 13,956,214 parameters.

    Args:
        num_classes: Number of object classes.
        width: Channel multiplier.
        anchors: Anchor ``(w, h)`` pairs in pixels at ``anchor_ref_size``.
        masks: Anchor indices of the stride-32 and stride-16 heads.
        threshold: Firing threshold of every LTC neuron.
        anchor_ref_size: Input size at which ``anchors`` are given.
        surrogate: Constants of the surrogate gradient of every LTC neuron (default: the paper's).
        readout: ``"last"`` (each step's heads, as the release) or ``"mean"`` (the running mean of
            the heads over the steps since the reset; :mod:`spyolo.models.readout`).
        input_dropout: ``Dropout2d`` probability on the input image in training (release: 0.1).
        scale_xy: Centre scale of the heads' decoding (1: the release).
        tau_mode: Path of every LTC layer's time constant, one of
            :data:`spyolo.snn.ltc.TAU_MODES` (``"ltc"``: the paper's).
        tau_mode_layers: Another ``tau_mode`` for some layers: ``{name: mode}`` with ``name`` an LTC
            layer (``"conv1"``, ``"block2.c3"``) or a CSP block (``"block1"``: its four layers; a
            layer's own entry wins over its block's); :data:`~spyolo.utils.choices.LTC_LAYER_NAMES`.

    The first layer reads the image: it holds its synaptic current over the timesteps of a still
    input in evaluation (:class:`~spyolo.snn.ltc.LTCConv2d` ``hold_current``).
    """

    is_spiking: ClassVar[bool] = True

    def __init__(
        self,
        num_classes: int = 20,
        width: float = 1.0,
        anchors: Sequence[Sequence[float]] = DEFAULT_ANCHORS,
        masks: Sequence[Sequence[int]] = DEFAULT_MASKS,
        threshold: float = 1.0,
        anchor_ref_size: int = ANCHOR_REF_SIZE,
        surrogate: SurrogateParams | None = None,
        readout: str = "last",
        input_dropout: float = 0.0,
        scale_xy: float = 1.0,
        in_channels: int = 3,
        tau_mode: str = "ltc",
        tau_mode_layers: Mapping[str, str] | None = None,
    ) -> None:
        layer_modes = resolve_tau_modes(tau_mode, tau_mode_layers)

        def ltc(
            in_channels: int, out_channels: int, kernel_size: int, *, stride: int, bias: bool, upsample: bool,
            name: str,
        ) -> nn.Module:
            return LTCConv2d(
                in_channels, out_channels, kernel_size, stride=stride, bias=bias, upsample=upsample,
                threshold=threshold, surrogate=surrogate, tau_mode=layer_modes[name],
            )

        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; valid values are {list(READOUTS)}")
        super().__init__(ltc, True, num_classes, width, anchors, masks, anchor_ref_size, input_dropout, scale_xy,
                         in_channels)
        self.threshold = float(threshold)
        self.surrogate = DEFAULT_SURROGATE if surrogate is None else surrogate
        self.readout = readout
        self.tau_mode = tau_mode
        self.tau_mode_layers: dict[str, str] = dict(tau_mode_layers or {})
        self.conv1.hold_current = True  # it reads the image, the same at every step of a still input
        # registered last: the LTC layers keep their forward order among the stateful modules
        self.mean_readout = MeanReadout() if readout == "mean" else None

    def read(self, out_s32: Tensor, out_s16: Tensor) -> tuple[Tensor, Tensor]:
        """This step's heads (``readout="last"``) or their running mean (``"mean"``)."""
        if self.mean_readout is None:
            return out_s32, out_s16
        return self.mean_readout(out_s32, out_s16)


class YOLOv4Tiny(_YOLOv4TinyTopology):
    """The ANN twin of :class:`SPYv4`: same topology with Conv-BN-LeakyReLU layers.

    All Conv-BN layers are bias-free, as in YOLOv4-tiny. ``threshold`` is
    accepted for signature compatibility and ignored.
    """

    is_spiking: ClassVar[bool] = False

    def __init__(
        self,
        num_classes: int = 20,
        width: float = 1.0,
        anchors: Sequence[Sequence[float]] = DEFAULT_ANCHORS,
        masks: Sequence[Sequence[int]] = DEFAULT_MASKS,
        threshold: float = 1.0,
        anchor_ref_size: int = ANCHOR_REF_SIZE,
        input_dropout: float = 0.0,
        scale_xy: float = 1.0,
        in_channels: int = 3,
        input_frames: int = 1,
    ) -> None:
        def conv_bn_act(*args: Any, name: str, **kwargs: Any) -> nn.Module:
            return ConvBNAct(*args, **kwargs)

        super().__init__(conv_bn_act, False, num_classes, width, anchors, masks, anchor_ref_size, input_dropout,
                         scale_xy, in_channels, input_frames)


def resolve_tau_modes(tau_mode: str, tau_mode_layers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``tau_mode`` of each of SPYv4's LTC layers: ``tau_mode`` for all, but where ``tau_mode_layers``
    names the layer (or its CSP block; the layer's own entry wins).

    Raises:
        ValueError: an unknown mode, or a name that is neither an LTC layer nor a CSP block.
    """
    overrides = dict(tau_mode_layers or {})
    for mode in (tau_mode, *overrides.values()):
        if mode not in TAU_MODES:
            raise ValueError(f"unknown tau_mode {mode!r}; valid values are {list(TAU_MODES)}")
    unknown = [n for n in overrides if n not in LTC_LAYER_NAMES and n not in LTC_LAYER_GROUPS]
    if unknown:
        raise ValueError(f"tau_mode_layers: {unknown[0]!r} is not an LTC layer of SPYv4; valid names are "
                         f"{', '.join(LTC_LAYER_GROUPS)} or one of {', '.join(LTC_LAYER_NAMES)}")
    return {name: overrides.get(name, overrides.get(name.split(".")[0], tau_mode)) for name in LTC_LAYER_NAMES}


INPUT_CHANNELS = MODEL_INPUT_CHANNELS
"""``model.input`` -> channels of one timestep's input per ``ModelConfig.input``: RGB, or an
event bin's OFF/ON frames."""


def timestep_input(x: Tensor, t: int) -> Tensor:
    """What a spiking model sees at timestep ``t``: frame ``t`` of a sequence ``(B, T, C, H, W)``
    (event bins), else ``x`` itself (the same image at every timestep)."""
    return x[:, t] if x.ndim == 5 else x


def run_timesteps(
    model: nn.Module,
    x: Tensor,
    timesteps: int,
    return_all: bool = False,
    init: str = "zero",
    generator: torch.Generator | None = None,
) -> Any:
    """Reset the model's states and run it for ``timesteps`` steps on the same input.

    Args:
        model: A detector; if it has ``is_spiking`` False it is run once whatever
            ``timesteps`` is.
        x: Input batch, fed unchanged at every step, or a sequence ``(B, T, C, H, W)`` of which
            step ``t`` gets frame ``t`` (:func:`timestep_input`).
        timesteps: Number of steps ``T`` (>= 1).
        return_all: Return the list of every step's outputs instead of the last.
        init: Initial state, ``"zero"`` or ``"uniform"`` (see :func:`spyolo.snn.reset_states`).
        generator: Generator for the uniform initial state.

    Returns:
        The last step's outputs, or a list with one entry per step run.
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    reset_states(model, init=init, generator=generator)
    steps = timesteps if getattr(model, "is_spiking", True) else 1
    frame = timestep_input if getattr(model, "is_spiking", True) else (lambda v, t: v)
    if return_all:
        return [model(frame(x, t)) for t in range(steps)]
    for t in range(steps - 1):
        model(frame(x, t))
    return model(frame(x, steps - 1))


def build_model(cfg: Any, num_classes: int) -> nn.Module:
    """Build the detector described by a validated ``spyolo.config.ModelConfig``.

    ``cfg.kind`` ``"spyv4"`` builds :class:`SPYv4`, ``"ann"`` the twin :class:`YOLOv4Tiny`;
    ``cfg.input`` ``image`` reads 3 channels per timestep, ``events`` 2 (the twin reading the
    ``cfg.timesteps`` bins stacked); ``cfg.tau_mode`` picks the LTC time constant's path (and
    ``cfg.tau_mode_layers`` another one for some layers). The
    config's validation checks every value; this reads them.
    """
    kwargs: dict[str, Any] = dict(
        num_classes=num_classes,
        width=cfg.width,
        anchors=[tuple(a) for a in cfg.anchors],
        masks=[tuple(m) for m in cfg.masks],
        threshold=cfg.threshold,
        anchor_ref_size=cfg.anchor_ref_size,
        input_dropout=float(cfg.input_dropout),
        scale_xy=float(cfg.scale_xy),
        in_channels=INPUT_CHANNELS[cfg.input],
    )
    if cfg.kind == "spyv4":
        surrogate = SurrogateParams(float(cfg.surrogate_sigma), float(cfg.surrogate_height), float(cfg.surrogate_gamma))
        model: nn.Module = SPYv4(**kwargs, surrogate=surrogate, readout=cfg.readout, tau_mode=cfg.tau_mode,
                                 tau_mode_layers=cfg.tau_mode_layers)
    elif cfg.kind == "ann":
        frames = int(cfg.timesteps) if MODEL_INPUT_PER_TIMESTEP[cfg.input] else 1  # the twin reads the T bins stacked
        model = YOLOv4Tiny(**kwargs, input_frames=frames)
    else:  # not a validated ModelConfig
        raise ValueError(f"unknown model kind {cfg.kind!r}; valid kinds are {list(MODEL_KINDS)}")
    prior = float(cfg.head_prior)
    if prior > 0:
        model.init_head_priors(prior)
    return model
