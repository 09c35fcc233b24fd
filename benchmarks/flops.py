"""Floating-point operations of one forward timestep, counted by PyTorch's ``FlopCounterMode``.

Convention: ``torch.utils.flop_counter`` counts matrix products and convolutions only, a
multiply-add as 2 FLOPs; elementwise work (BN, the LTC update, activations, pooling) is not
counted. For SPYv4 at 416x416, width 1 and 20 classes this gives 17.18 GFLOP per image and
timestep (reference section 2). Training throughput is reported as ``3 x`` the forward
FLOPs (forward + backward, the backward costing about two forwards).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spyolo.snn import reset_states

__all__ = ["forward_flops_per_image"]


def forward_flops_per_image(
    model: nn.Module, img_size: int, device: torch.device | str, channels_last: bool = False
) -> int:
    """FLOPs of one forward timestep of ``model`` on one ``img_size`` x ``img_size`` image.

    The model runs one step on a random image without gradients and in eval mode (so the
    BN running statistics are not touched); its states are reset before and after, and its
    training mode is restored.

    Args:
        model: A detector (spiking or not); an uncompiled module.
        img_size: Input side in pixels.
        device: Where to run the counting step.
        channels_last: Feed a channels-last image (as the benchmark does).

    Returns:
        The FLOP count (multiply-add = 2) of the convolutions and matrix products.
    """
    channels = getattr(model, "in_channels", 3) * getattr(model, "input_frames", 1)
    image = torch.rand(1, channels, img_size, img_size, device=device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    reset_states(model)
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(image)
        return int(counter.get_total_flops())
    finally:
        reset_states(model)
        model.train(was_training)
