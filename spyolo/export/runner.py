"""Run an exported ONNX model with onnxruntime: :class:`OnnxDetector`.

    from spyolo.export import OnnxDetector

    det = OnnxDetector("weights/model.onnx")          # reads model.json beside it
    preds = det.predict(["a.jpg", bgr_array])         # the same Prediction objects as Detector

Everything but the network is :class:`~spyolo.inference.detector.DetectorBase`, shared with
the PyTorch :class:`~spyolo.inference.Detector`: reading and resizing the images, decoding the
heads, NMS, mapping the boxes back, :meth:`predict` and :meth:`stream`. The network runs on
onnxruntime's CPU provider; each batch starts from zero states and runs ``T`` steps, feeding
every step's ``*_next`` outputs back as the next step's states.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spyolo.export.sidecar import ExportError, read_sidecar, require, sidecar_path
from spyolo.inference.detector import DetectorBase
from spyolo.models.heads import HeadSpec

__all__ = ["OnnxDetector"]


def _check_graph(path: Path, meta: dict, session) -> None:
    """The graph's static shapes against its sidecar: the image and state inputs, each head's grid
    (input size / stride) and channels (anchors per head x (5 + classes)).

    Raises:
        ExportError: naming the sidecar, the key and both values.
    """
    side = sidecar_path(path)

    def dims(shape) -> list:  # without the batch axis; a dynamic dimension (a name or None) matches anything
        return list(shape[1:])

    def same(graph: list, expected: list) -> bool:
        return len(graph) == len(expected) and all(not isinstance(g, int) or g == e for g, e in zip(graph, expected))

    inputs = {i.name: dims(i.shape) for i in session.get_inputs()}
    outputs = {o.name: dims(o.shape) for o in session.get_outputs()}
    image = meta["input"]
    if not same(inputs[image["name"]], image["shape"]):
        raise ExportError(f"{side}: sidecar key 'input.shape' is {image['shape']}, but the graph {path.name} takes "
                          f"{image['name']} of {inputs[image['name']]}")
    for i, state in enumerate(meta["states"]):
        if not same(inputs[state["input"]], state["shape"]):
            raise ExportError(f"{side}: sidecar key 'states[{i}].shape' is {state['shape']}, but the graph "
                              f"{path.name} takes {state['input']} of {inputs[state['input']]}")
    size = image["shape"][-1]
    heads = meta["heads"]
    classes = len(meta["class_names"])
    for name, stride, mask in zip(heads["outputs"], heads["strides"], heads["masks"]):
        channels, height, width = (outputs[name] + [None, None, None])[:3]
        if isinstance(channels, int) and channels != len(mask) * (5 + classes):
            found = (f"{channels // len(mask) - 5} classes" if channels % len(mask) == 0 and channels // len(mask) > 5
                     else "another layout")
            raise ExportError(
                f"{side}: sidecar key 'class_names' lists {classes} classes, but the graph's {name} has {channels} "
                f"channels = {len(mask)} anchors x (5 + classes), i.e. {found}")
        for cells in (height, width):
            if isinstance(cells, int) and cells * stride != size:
                raise ExportError(
                    f"{side}: sidecar key 'heads.strides' is {heads['strides']}, but the graph's {name} is a "
                    f"{height}x{width} grid at {size} px, i.e. stride {size / cells:g}")


class OnnxDetector(DetectorBase):
    """An exported model (``.onnx`` + its ``.json`` sidecar) ready to run on images.

    Args:
        path: the ``.onnx`` file written by :func:`spyolo.export.export_onnx`.
        timesteps: timesteps ``T`` per image (default: the sidecar's ``timesteps``).
        conf: confidence threshold (default: the sidecar's demo threshold).
        nms: NMS IoU threshold (default: the sidecar's demo threshold).
        max_det: cap on detections per image (default: the sidecar's).
        batch_size: images per batch in :meth:`predict`.
        threads: onnxruntime intra-op threads (0: onnxruntime's default, one per core).

    Raises:
        ExportError: onnxruntime is missing, or the model or its sidecar is missing, malformed
            or does not match the other (the message names the file).
    """

    def __init__(
        self,
        path: str | Path,
        timesteps: int | None = None,
        conf: float | None = None,
        nms: float | None = None,
        max_det: int | None = None,
        batch_size: int = 16,
        threads: int = 0,
    ) -> None:
        path = Path(path)
        ort = require("onnxruntime", path, "running an ONNX model")
        if not path.is_file():
            raise ExportError(f"{path}: ONNX model not found")
        meta = read_sidecar(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; re-raised with the file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{path}: onnxruntime cannot load this model ({first})") from None
        states = meta["states"]
        heads, thresholds = meta["heads"], meta["thresholds"]
        expected_inputs = [meta["input"]["name"]] + [s["input"] for s in states]
        expected_outputs = list(heads["outputs"]) + [s["output"] for s in states]
        found_inputs = [i.name for i in session.get_inputs()]
        found_outputs = [o.name for o in session.get_outputs()]
        if found_inputs != expected_inputs or found_outputs != expected_outputs:
            raise ExportError(
                f"{path}: the model's inputs/outputs {found_inputs} -> {found_outputs} are not those its sidecar "
                f"lists ({expected_inputs} -> {expected_outputs})"
            )
        names = meta["class_names"]
        _check_graph(path, meta, session)
        spec = HeadSpec(
            anchors_px=torch.tensor(heads["anchors"], dtype=torch.float32),
            masks=tuple(tuple(int(i) for i in m) for m in heads["masks"]),
            strides=tuple(int(s) for s in heads["strides"]),
            num_classes=len(names),
            scale_xy=float(heads.get("scale_xy", 1.0)),
        )
        super().__init__(
            names, int(meta["input"]["shape"][-1]), spec, bool(states),
            timesteps=int(meta["timesteps"]) if timesteps is None else timesteps,
            conf=float(thresholds["demo"]["conf"]) if conf is None else conf,
            nms=float(thresholds["demo"]["nms"]) if nms is None else nms,
            max_det=int(thresholds["max_det"]) if max_det is None else max_det,
            resize=meta["input"]["resize"], device="cpu", batch_size=batch_size,
            interpolation=str(meta["input"].get("interpolation", "cubic")),
        )
        self.path = path
        self.meta = meta
        self.session = session
        self._input_name = expected_inputs[0]
        self._outputs = expected_outputs
        self._state_specs = [(s["input"], tuple(int(d) for d in s["shape"])) for s in states]
        self._readout_states = [s["input"] for s in states if s["module"].startswith("mean_readout.")]
        self._states: dict[str, np.ndarray] | None = None

    # ---------------------------------------------------------------- building blocks

    def zero_states(self, batch: int) -> dict[str, np.ndarray]:
        """The initial states of ``batch`` images: zeros, by input name."""
        return {name: np.zeros((batch, *shape), np.float32) for name, shape in self._state_specs}

    def step(self, images: np.ndarray, states: dict[str, np.ndarray]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """One timestep: ``([head1, head2], new states)`` from a batch ``(B, 3, S, S)`` and the states."""
        outs = self.session.run(self._outputs, {self._input_name: images, **states})
        heads = len(self._outputs) - len(self._state_specs)
        return outs[:heads], {name: out for (name, _shape), out in zip(self._state_specs, outs[heads:])}

    def _reset(self) -> None:
        self._states = None

    def _run_steps(self, batch: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
        images = np.ascontiguousarray(batch.cpu().numpy(), dtype=np.float32)
        states = self.zero_states(images.shape[0]) if self._states is None else self._states
        heads: list[np.ndarray] = []
        for _ in range(steps if self.spiking else 1):
            heads, states = self.step(images, states)
        self._states = states
        return tuple(torch.from_numpy(h) for h in heads)

    def _restart_readout(self) -> None:
        if self._states is not None:
            for name in self._readout_states:
                self._states[name] = np.zeros_like(self._states[name])
