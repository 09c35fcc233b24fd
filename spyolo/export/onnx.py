"""ONNX export of one timestep, with the neuron states as explicit inputs and outputs.

SPYv4 keeps its membranes inside its modules; an ONNX graph cannot. :class:`OneStep` wraps
the model so that one call takes the states as tensors, puts them into the layers, runs one
timestep and returns the heads and the new states. The exported graph therefore computes::

    head1, head2, v_0_next .. v_18_next = step(images, v_0 .. v_18)

``v_i`` is the membrane of the i-th LTC layer in :func:`~spyolo.snn.ltc.ltc_layers` order,
``(B, C_i, H_i, W_i)``. A layer whose time constant reads its previous spikes (``model.tau_mode=spike``:
an entry of :data:`~spyolo.utils.tau_modes.TAU_MODE_TABLE` with ``input="spikes"``) also keeps them:
those states ``s_i`` (``i`` the layer's index, the membrane's shape) follow the membranes,
in layer order, zeros at the first step too. With ``model.readout=mean`` three more states follow: the heads' running
sums ``readout_sum_s32`` and ``readout_sum_s16`` and the step count ``readout_steps`` ``(B, 1)``, and
``head1``/``head2`` are the running means. A runner feeds zeros at the first step (exactly what
the PyTorch model's lazily created states hold) and each step's ``*_next`` outputs to the next
step. The ANN twin has no state and exports as ``head1, head2 = net(images)``.

The batch axis is dynamic; the image size is the checkpoint's ``data.img_size``. The graph is
float32, in eval mode (BatchNorm with running statistics, no dropout), traced with
``torch.onnx.export(..., dynamo=False)`` (the TorchScript-based exporter, which needs no
package beyond torch; the ``onnx`` package checks the result). The JSON sidecar
(:mod:`spyolo.export.sidecar`) carries what the graph does not.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import spyolo
from spyolo.checkpoint import load_model
from spyolo.datasets.kinds import reads_events
from spyolo.export.sidecar import FORMAT, FORMAT_VERSION, ExportError, require, sidecar_path
from spyolo.hub import resolve_weights
from spyolo.models.heads import head_spec_for
from spyolo.snn.ltc import ltc_layers, set_ltc_backend
from spyolo.snn.state import reset_states
from spyolo.utils.io import atomic_write_files, json_bytes

__all__ = ["HEAD_OUTPUTS", "IMAGES", "MIN_OPSET", "OPSET", "OneStep", "export_onnx", "state_specs"]

log = logging.getLogger(__name__)

OPSET = 17
"""Default ONNX opset of :func:`export_onnx`."""
MIN_OPSET = 17
IMAGES = "images"
HEAD_OUTPUTS = ("head1", "head2")
READOUT_STATES = ("readout_sum_s32", "readout_sum_s16", "readout_steps")
NEXT = "_next"
"""Suffix of a state's output name: input ``v_3``, output ``v_3_next``."""


class OneStep(nn.Module):
    """One timestep of a SPYv4 model with its states passed in and returned.

    ``forward(images, *states)`` takes the membranes in :func:`ltc_layers` order (then the
    previous spikes of the layers that keep them (``tau_mode="spike"``), in the same order, then the mean
    read-out's ``sum_s32``, ``sum_s16`` and ``steps`` ``(B, 1)`` if the model has one) and
    returns ``(head1, head2, *new_states)`` in the same order. The model itself is unchanged;
    its layers hold the given states during the call and the new ones after it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._layers = [layer for _name, layer in ltc_layers(model)]
        self._spike_layers = [layer for layer in self._layers if "s" in layer.memory_names]
        self._readout = getattr(model, "mean_readout", None)

    @property
    def num_states(self) -> int:
        layers = len(self._layers) + len(self._spike_layers)
        return layers + (len(READOUT_STATES) if self._readout is not None else 0)

    def forward(self, images: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        if len(states) != self.num_states:
            raise ValueError(f"OneStep: got {len(states)} states, the model has {self.num_states}")
        n_v, n_s = len(self._layers), len(self._spike_layers)
        for layer, v in zip(self._layers, states[:n_v]):
            layer.v = v
        for layer, s_prev in zip(self._spike_layers, states[n_v : n_v + n_s]):
            layer.s = s_prev
        readout = self._readout
        if readout is not None:
            sum_s32, sum_s16, steps = states[n_v + n_s :]
            # a (B, 1, 1, 1) count broadcasts against the heads in MeanReadout's division
            readout.sum_s32, readout.sum_s16, readout.steps = sum_s32, sum_s16, steps.reshape(-1, 1, 1, 1)
        head1, head2 = self.model(images)
        new_states = [layer.v for layer in self._layers] + [layer.s for layer in self._spike_layers]
        if readout is not None:
            new_states += [readout.sum_s32, readout.sum_s16, readout.steps.reshape(-1, 1)]
        return (head1, head2, *new_states)


def state_specs(model: nn.Module, img_size: int) -> list[dict[str, Any]]:
    """The states of ``model`` at input size ``img_size``, in :class:`OneStep` order.

    Each entry: ``input`` and ``output`` (the ONNX names), ``module`` (where the state lives)
    and ``shape`` (per image, without the batch axis). Found by running one step on a blank
    image; the model's states are reset afterwards. Empty for the ANN twin.
    """
    layers = ltc_layers(model)
    if not layers:
        return []
    with torch.no_grad():
        reset_states(model)
        model(torch.zeros(1, 3, img_size, img_size))
    specs = [
        {"input": f"v_{i}", "module": name, "shape": list(layer.v.shape[1:])} for i, (name, layer) in enumerate(layers)
    ]
    specs += [
        {"input": f"s_{i}", "module": f"{name}.s", "shape": list(layer.s.shape[1:])}
        for i, (name, layer) in enumerate(layers)
        if "s" in layer.memory_names
    ]
    readout = getattr(model, "mean_readout", None)
    if readout is not None:
        shapes = (list(readout.sum_s32.shape[1:]), list(readout.sum_s16.shape[1:]), [1])
        for name, attribute, shape in zip(READOUT_STATES, ("sum_s32", "sum_s16", "steps"), shapes):
            specs.append({"input": name, "module": f"mean_readout.{attribute}", "shape": shape})
    reset_states(model)
    for spec in specs:
        spec["output"] = spec["input"] + NEXT
    return [{key: spec[key] for key in ("input", "output", "module", "shape")} for spec in specs]


def _trace_to_onnx(
    net: nn.Module, args: tuple[Tensor, ...], inputs: list[str], outputs: list[str], opset: int
) -> bytes:
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in inputs + outputs}
    with warnings.catch_warnings():
        # The shape checks in the model's forward (input size, stored membrane shape) become
        # constants of the trace: right for the fixed image size of the export.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"spyolo\.")
        warnings.filterwarnings(
            "ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            net, args, buffer, dynamo=False, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
            opset_version=opset, do_constant_folding=True,
        )
    return buffer.getvalue()


def export_onnx(
    weights_path: str | Path,
    out_path: str | Path,
    *,
    opset: int = OPSET,
    allow_zero_init: bool = False,
) -> Path:
    """Export a checkpoint's model to ``out_path`` (``.onnx``) and write its sidecar (``.json``).

    A spiking model becomes one timestep with explicit states (see the module docstring), the
    ANN twin a plain ``images -> head1, head2`` graph. Both files are written atomically, and
    together: a failure leaves both as they were.

    Args:
        weights_path: a training or inference checkpoint (``spyolo export --format pt``).
        out_path: the ONNX file; its sidecar is ``out_path`` with ``.json`` (:func:`sidecar_path`).
        opset: ONNX opset (>= 17).
        allow_zero_init: export a model trained with ``model.state_init=uniform`` anyway. The
            runner starts from zero membranes, so its results differ from the PyTorch
            ``Detector``'s, which draws the uniform state.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: ``onnx`` is missing, ``out_path`` does not end in ``.onnx``, the opset is
            too old, the model reads event frames, or it starts from a uniform state without
            ``allow_zero_init``.
        CheckpointError: the checkpoint cannot be read.
    """
    weights_path, out_path = Path(weights_path), Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise ExportError(f"{out_path}: an ONNX export must end in .onnx (its sidecar gets .json)")
    if opset < MIN_OPSET:
        raise ExportError(f"{out_path}: opset {opset} is too old; use {MIN_OPSET} or later")
    onnx = require("onnx", out_path, "ONNX export")
    loaded = load_model(resolve_weights(weights_path))
    cfg, model = loaded.config, loaded.model.float().eval()
    if reads_events(cfg):
        raise ExportError(f"{weights_path}: a model of event frames (model.input={cfg.model.input}); the ONNX export "
                          f"and its runner take RGB images (model.input=image)")
    spiking = bool(getattr(model, "is_spiking", False))
    trained_init = cfg.model.state_init if spiking else "zero"
    if trained_init != "zero":
        if not allow_zero_init:
            raise ExportError(
                f"{weights_path}: model.state_init={trained_init}: the ONNX runner starts from zero membranes and "
                f"cannot reproduce the uniform draw; pass --zero-init (allow_zero_init=True) to export it with "
                f"zero initial states anyway"
            )
        log.warning("%s: trained with model.state_init=%s; the ONNX runner starts from zero membranes, so its "
                    "detections differ from the PyTorch Detector's", weights_path, trained_init)
    size = int(cfg.data.img_size)
    images = torch.rand(2, 3, size, size)  # batch 2: nothing may be specialised to one image
    if spiking:
        set_ltc_backend(model, "reference")
        states = state_specs(model, size)
        net: nn.Module = OneStep(model).eval()
        args = (images, *[torch.zeros(2, *s["shape"]) for s in states])
    else:
        states, net, args = [], model, (images,)
    inputs = [IMAGES] + [s["input"] for s in states]
    outputs = list(HEAD_OUTPUTS) + [s["output"] for s in states]
    try:
        data = _trace_to_onnx(net, args, inputs, outputs, opset)
    finally:
        reset_states(model)
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    onnx.helper.set_model_props(proto, {"spyolo_version": spyolo.__version__, "sidecar": sidecar_path(out_path).name})

    spec = head_spec_for(model, size)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spyolo_version": spyolo.__version__,
        "exported_from": str(weights_path),
        "onnx_file": out_path.name,
        "opset": int(opset),
        "model": {
            "kind": cfg.model.kind, "spiking": spiking, "width": float(cfg.model.width),
            "readout": getattr(model, "readout", "last"),
        },
        "class_names": list(loaded.class_names),
        "input": {
            "name": IMAGES, "shape": [3, size, size], "dtype": "float32", "layout": "NCHW", "channels": "RGB",
            "scale": "pixel / 255", "resize": cfg.data.eval_resize,
            "interpolation": cfg.data.eval_interpolation,
        },
        "timesteps": int(cfg.model.timesteps),
        "heads": {
            "outputs": list(HEAD_OUTPUTS),
            "strides": list(spec.strides),
            "masks": [list(m) for m in spec.masks],
            "anchors": spec.anchors_px.tolist(),
            "anchors_ref": model.anchors.tolist(),
            "anchor_ref_size": int(model.anchor_ref_size),
            "scale_xy": float(spec.scale_xy),
        },
        "thresholds": {
            "demo": {"conf": float(cfg.eval.demo_conf), "nms": float(cfg.eval.demo_nms)},
            "eval": {"conf": float(cfg.eval.conf_thresh), "nms": float(cfg.eval.nms_iou)},
            "max_det": int(cfg.eval.max_det),
        },
        "state_init": "zero",
        "trained_state_init": trained_init,
        "states": states,
    }
    # both files or neither (a full disk, or a folder where one should go, leaves both as they were)
    atomic_write_files([(out_path, proto.SerializeToString()), (sidecar_path(out_path), json_bytes(meta))])
    log.info("wrote %s and %s (%d states)", out_path, sidecar_path(out_path), len(states))
    return out_path
