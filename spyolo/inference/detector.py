"""The user-facing inference API: :class:`Detector` and its per-image :class:`Prediction`.

    from spyolo import Detector

    det = Detector.from_checkpoint("runs/synthetic/weights/best.pt")
    for pred in det.predict(["a.jpg", "b.png"]):
        print(pred.to_json())

Inputs are image paths, numpy arrays (BGR as OpenCV loads them, or RGB with ``rgb=True``)
or PIL images, alone or in a list. Any size works; greyscale (2-D or one channel) becomes
three equal channels, an alpha channel is dropped, 16-bit images are scaled to 8 bits
(``round(v / 257)``) and float images are read as values in ``[0, 1]``. Each image is
resized exactly as the evaluation does (``data.eval_resize`` of the checkpoint: stretch by
default, or letterbox), the model runs ``T`` timesteps per batch from a fresh neuron state
and the last step's heads are decoded.

Boxes are in continuous pixel coordinates of the original image (see
:mod:`spyolo.inference.prediction`).

Online (streaming) use: :meth:`Detector.stream` returns a
:class:`~spyolo.inference.stream.StreamSession` that keeps
the neuron state from frame to frame and runs ``k`` timesteps per frame after a warm-up on
the first frame, the way spiking hardware would process a video.

EXIF orientation tags are ignored when reading files (as in the dataset), so boxes refer to
the pixel grid as stored in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spyolo.data.images import ImageInput, read_image
from spyolo.data.transforms import build_eval_transform, unmap_boxes
from spyolo.errors import ConfigError
from spyolo.inference.postprocess import postprocess
from spyolo.inference.prediction import Prediction
from spyolo.inference.stream import StreamSession
from spyolo.models.heads import HeadSpec, head_spec_for
from spyolo.models.readout import restart_readout
from spyolo.snn import reset_states
from spyolo.utils.runtime import resolve_device

__all__ = ["Detector", "DetectorBase"]


def _check_img_size(img_size: int) -> None:
    if img_size <= 0 or img_size % 32:
        raise ConfigError(f"img_size must be a positive multiple of 32, got {img_size}")


class DetectorBase:
    """What every detector shares: input checks, the evaluation resize, post-processing and
    box mapping, the :meth:`predict` loop and :meth:`stream`.

    A subclass runs the network: :meth:`_reset` (a fresh neuron state), :meth:`_run_steps`
    (``steps`` timesteps on a pre-processed batch, returning the heads of the last one) and
    :meth:`_restart_readout` (clear a mean read-out's sums, keep the membranes).
    :class:`Detector` runs a PyTorch model; ``spyolo.export.OnnxDetector`` an ONNX model.

    Online use (a stream of frames or event bins, :class:`~spyolo.inference.stream.StreamSession`)
    drives the neuron state through the public building blocks: :meth:`start_state`,
    :meth:`holds_state`, :meth:`release_state`, :meth:`run_steps`, :meth:`restart_readout` and
    :meth:`decode`. One owner at a time holds the state; :meth:`predict` takes it from any.

    Args:
        class_names: one name per class, in label order.
        img_size: square network input size (a multiple of 32).
        spec: the heads' geometry at ``img_size`` (anchors in input pixels, masks, strides).
        spiking: whether the network has neuron state (``timesteps`` steps per image).
        timesteps: timesteps ``T`` per image (ignored for a non-spiking model).
        conf: confidence threshold on objectness x class probability.
        nms: IoU threshold of the per-class NMS.
        max_det: cap on detections per image (0: no cap).
        resize: ``"stretch"`` or ``"letterbox"``, the evaluation resize.
        interpolation: ``"cubic"`` or ``"linear"``, the evaluation resize's interpolation.
        device: ``None``/``"auto"`` (CUDA when available), or a torch device: where the
            pre-processed batch and the post-processing live.
        batch_size: images per forward pass in :meth:`predict`.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        img_size: int,
        spec: HeadSpec,
        spiking: bool,
        timesteps: int = 8,
        conf: float = 0.25,
        nms: float = 0.45,
        max_det: int = 300,
        resize: str = "stretch",
        device: str | torch.device | None = None,
        batch_size: int = 16,
        interpolation: str = "cubic",
    ) -> None:
        _check_img_size(img_size)
        if timesteps < 1:
            raise ConfigError(f"timesteps must be >= 1, got {timesteps}")
        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"conf must be in [0, 1], got {conf}")
        if not 0.0 < nms <= 1.0:
            raise ConfigError(f"nms IoU threshold must be in (0, 1], got {nms}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if spec.num_classes != len(class_names):
            raise ValueError(f"the model has {spec.num_classes} classes but {len(class_names)} class names were given")
        self.device = resolve_device(device)
        self.class_names: tuple[str, ...] = tuple(str(n) for n in class_names)
        self.img_size = int(img_size)
        self.timesteps = int(timesteps)
        self.conf = float(conf)
        self.nms = float(nms)
        self.max_det = int(max_det)
        self.resize = resize
        self.batch_size = int(batch_size)
        self.spiking = bool(spiking)
        self.spec: HeadSpec = spec
        self.interpolation = interpolation
        self._transform = build_eval_transform(self.img_size, resize, interpolation=interpolation)  # validates both
        # Which StreamSession (if any) the neuron state currently belongs to.
        self._state_owner: object | None = None
        # The training config of a detector built from a checkpoint (its data settings: event windows).
        self.config: Any = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def steps_per_image(self) -> int:
        """Forward passes per image: ``timesteps`` for a spiking model, else 1."""
        return self.timesteps if self.spiking else 1

    # ---------------------------------------------------------------- building blocks

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Any]]:
        """RGB uint8 images -> network batch ``(B, 3, S, S)`` on the device, and letterbox params."""
        tensors, letterboxes = [], []
        empty = np.zeros((0, 4), np.float32)
        for image in images:
            out = self._transform(image=image, bboxes=empty, labels=np.zeros((0,), np.int64))
            tensors.append(torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1))
            letterboxes.append(out["letterbox"])
        batch = torch.stack(tensors).to(self.device, non_blocking=True).float().div_(255.0)
        return batch, letterboxes

    def _reset(self) -> None:
        """Give the network a fresh neuron state (a subclass's job)."""
        raise NotImplementedError

    def _run_steps(self, batch: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
        """Run ``steps`` timesteps (one for a non-spiking model) on ``batch``; the last step's heads."""
        raise NotImplementedError

    def _restart_readout(self) -> None:
        """Clear a mean read-out's sums, keeping the membranes (a subclass's job)."""
        raise NotImplementedError

    # ------------------------------------------------------- the neuron state, online

    def start_state(self, owner: object | None = None) -> None:
        """Give the network a fresh neuron state, held from now on by ``owner`` (e.g. a stream)."""
        self._reset()
        self._state_owner = owner

    def holds_state(self, owner: object) -> bool:
        """Whether the neuron state is the one ``owner`` started (nobody ran anything else since)."""
        return self._state_owner is owner

    def release_state(self, owner: object) -> None:
        """``owner`` gives the state up (its next use starts a fresh one)."""
        if self._state_owner is owner:
            self._state_owner = None

    def run_steps(self, batch: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
        """Advance the current state ``steps`` timesteps on a pre-processed ``batch`` (see
        :meth:`preprocess`; one forward pass for a non-spiking model); the last step's heads."""
        return self._run_steps(batch, steps)

    def restart_readout(self) -> None:
        """Clear a mean read-out's running sums, keeping the membranes (nothing for ``readout=last``)."""
        self._restart_readout()

    def decode(
        self,
        outs: tuple[torch.Tensor, ...],
        images: Sequence[np.ndarray],
        letterboxes: Sequence[Any],
        sources: Sequence[str | None],
    ) -> list[Prediction]:
        """Head outputs of a batch -> one :class:`Prediction` per image, boxes in the pixels of
        ``images`` (the originals, RGB) through their ``letterboxes`` (from :meth:`preprocess`)."""
        dets = postprocess(outs, self.spec, self.conf, self.nms, self.max_det)
        results = []
        for det, image, letterbox, source in zip(dets, images, letterboxes, sources):
            size = (int(image.shape[0]), int(image.shape[1]))
            boxes = unmap_boxes(det.boxes.float().cpu().numpy(), size, self.img_size, letterbox)
            results.append(
                Prediction(
                    boxes=boxes.astype(np.float32),
                    scores=det.scores.float().cpu().numpy().astype(np.float32),
                    labels=det.labels.cpu().numpy().astype(np.int64),
                    class_names=self.class_names,
                    image_size=size,
                    source=source,
                    image=image,
                )
            )
        return results

    # --------------------------------------------------------------------------- API

    @torch.no_grad()
    def predict(self, inputs: ImageInput | Sequence[ImageInput], rgb: bool = False) -> list[Prediction]:
        """Detect objects in one image or a list of images.

        Args:
            inputs: a path, a numpy image, a PIL image, or a list/tuple of these.
            rgb: numpy inputs are RGB(A); by default BGR(A) as from ``cv2.imread``.

        Returns:
            One :class:`Prediction` per input image, in input order (a list even for a
            single image). Each batch of ``batch_size`` images starts from a fresh neuron
            state and runs ``timesteps`` steps; the last step's outputs are decoded.

        Raises:
            ImageReadError: for a missing, unreadable or unsupported input (names it).
        """
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        results: list[Prediction] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            images = [read_image(item, rgb=rgb) for item in chunk]
            sources = [str(item) if isinstance(item, (str, Path)) else None for item in chunk]
            batch, letterboxes = self.preprocess(images)
            self.start_state()
            outs = self.run_steps(batch, self.steps_per_image)
            results.extend(self.decode(outs, images, letterboxes, sources))
        return results

    def stream(self, steps_per_frame: int = 1, warmup: int = 8) -> StreamSession:
        """An online session over a sequence of frames (see :class:`~spyolo.inference.stream.StreamSession`)."""
        return StreamSession(self, steps_per_frame=steps_per_frame, warmup=warmup)


class Detector(DetectorBase):
    """A trained PyTorch detector (SPYv4 or its ANN twin) ready to run on images.

    Args:
        model: the network (its weights loaded); it is moved to ``device`` and put in
            eval mode.
        class_names: one name per class, in label order.
        img_size: square network input size (a multiple of 32).
        timesteps: timesteps ``T`` per image (ignored for a non-spiking model).
        conf: confidence threshold on objectness x class probability.
        nms: IoU threshold of the per-class NMS.
        max_det: cap on detections per image (0: no cap).
        resize: ``"stretch"`` or ``"letterbox"``, the evaluation resize.
        device: ``None``/``"auto"`` (CUDA when available), or a torch device.
        state_init: initial membrane, ``"zero"`` or ``"uniform"``.
        state_seed: seed of the uniform initial membrane, re-applied at every call.
        batch_size: images per forward pass in :meth:`predict`.
        interpolation: ``"cubic"`` or ``"linear"``, the evaluation resize's interpolation.
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        img_size: int,
        timesteps: int = 8,
        conf: float = 0.25,
        nms: float = 0.45,
        max_det: int = 300,
        resize: str = "stretch",
        device: str | torch.device | None = None,
        state_init: str = "zero",
        state_seed: int = 0,
        batch_size: int = 16,
        interpolation: str = "cubic",
    ) -> None:
        if state_init not in ("zero", "uniform"):
            raise ConfigError(f"state_init must be 'zero' or 'uniform', got {state_init!r}")
        _check_img_size(img_size)  # before the anchors are scaled to it
        super().__init__(
            class_names, img_size, head_spec_for(model, img_size), bool(getattr(model, "is_spiking", False)),
            timesteps=timesteps, conf=conf, nms=nms, max_det=max_det, resize=resize, device=device,
            batch_size=batch_size, interpolation=interpolation,
        )
        self.model = model.to(self.device).eval()
        self.state_init = state_init
        self.state_seed = int(state_seed)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        timesteps: int | None = None,
        conf: float | None = None,
        nms: float | None = None,
        max_det: int | None = None,
        batch_size: int = 16,
    ) -> Detector:
        """Build a detector from a training checkpoint (``weights/best.pt`` or ``last.pt``), or from
        pretrained weights by name (``"sfptt-voc"``: :mod:`spyolo.hub`, fetched on first use).

        The model, input size, resize mode, anchors and initial-state mode come from the
        checkpoint's config. ``timesteps`` defaults to ``model.timesteps``; ``conf`` and
        ``nms`` default to the config's demo thresholds (``eval.demo_conf``,
        ``eval.demo_nms``: 0.25 and 0.45); ``max_det`` to ``eval.max_det``.

        Raises:
            spyolo.errors.CheckpointError: missing, unreadable or foreign file, or weights
                that do not fit the model its config describes.
        """
        from spyolo.checkpoint import load_model
        from spyolo.hub import resolve_weights

        loaded = load_model(resolve_weights(path))
        cfg = loaded.config
        det = cls(
            loaded.model,
            loaded.class_names,
            img_size=cfg.data.img_size,
            timesteps=cfg.model.timesteps if timesteps is None else timesteps,
            conf=cfg.eval.demo_conf if conf is None else conf,
            nms=cfg.eval.demo_nms if nms is None else nms,
            max_det=cfg.eval.max_det if max_det is None else max_det,
            resize=cfg.data.eval_resize,
            interpolation=cfg.data.eval_interpolation,
            device=device,
            state_init=cfg.model.state_init,
            state_seed=cfg.model.state_seed,
            batch_size=batch_size,
        )
        det.config = cfg
        return det

    # ---------------------------------------------------------------- building blocks

    def _reset(self) -> None:
        if not self.spiking:
            return
        generator = None
        if self.state_init == "uniform":
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.state_seed)
        reset_states(self.model, init=self.state_init, generator=generator)

    def _run_steps(self, batch: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
        outs: tuple[torch.Tensor, ...] = ()
        for _ in range(steps if self.spiking else 1):
            outs = self.model(batch)
        return outs

    def _restart_readout(self) -> None:
        restart_readout(self.model)
