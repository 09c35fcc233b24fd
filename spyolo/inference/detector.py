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

Box convention (:attr:`Prediction.boxes` and the JSON): ``x1, y1, x2, y2`` in *continuous*
pixel coordinates of the original image: ``(0, 0)`` is the top-left corner of the top-left
pixel and ``(width, height)`` the bottom-right corner of the bottom-right pixel, so a box
covering pixel columns ``i..j`` has ``x1 = i`` and ``x2 = j + 1``. Boxes are clipped to
``[0, width] x [0, height]``. PASCAL VOC files use 1-based inclusive pixels, which is
``(x1 + 1, y1 + 1, x2, y2)``: see :meth:`Prediction.voc_boxes`.

Online (streaming) use: :meth:`Detector.stream` returns a :class:`StreamSession` that keeps
the neuron state from frame to frame and runs ``k`` timesteps per frame after a warm-up on
the first frame, the way spiking hardware would process a video.

EXIF orientation tags are ignored when reading files (as in the dataset), so boxes refer to
the pixel grid as stored in the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch
from torch import nn

from spyolo.data.transforms import build_eval_transform, unmap_boxes
from spyolo.inference.postprocess import HeadSpec, head_spec_for, postprocess
from spyolo.snn import reset_states

__all__ = [
    "BOX_FORMAT",
    "Detector",
    "ImageInput",
    "ImageReadError",
    "Prediction",
    "StreamSession",
    "read_image",
    "to_rgb_uint8",
]

BOX_FORMAT = "xyxy_continuous_pixels"
"""Name of the box convention written into every JSON record (see the module docstring)."""

ImageInput = Union[str, Path, np.ndarray, Any]
"""A path, a numpy image or a PIL image."""


class ImageReadError(ValueError):
    """An input image is missing, unreadable or has an unsupported shape or type."""


# ----------------------------------------------------------------------------- images


def to_rgb_uint8(image: np.ndarray, rgb: bool = False, where: str = "image") -> np.ndarray:
    """Convert a numpy image to a contiguous RGB uint8 ``(H, W, 3)`` array.

    Args:
        image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; uint8, uint16
            (scaled by ``1/257``), bool, float in ``[0, 1]`` (scaled by 255) or another
            integer type whose values lie in ``0..255``.
        rgb: the channels are in RGB(A) order; by default BGR(A), as OpenCV loads them.
        where: how to name the image in error messages (e.g. its path).

    Raises:
        ImageReadError: for an empty image, an unsupported shape or dtype.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageReadError(
            f"{where}: unsupported image shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{where}: empty image of shape {arr.shape}")
    arr = _to_uint8(arr, where)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    arr = arr[:, :, :3]  # drop alpha
    if not rgb:
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageReadError(f"{where}: float image contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ImageReadError(
                f"{where}: float image with values in [{lo:g}, {hi:g}]; float images must be in [0, 1] "
                "(convert 0..255 floats to uint8 first)"
            )
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ImageReadError(
                f"{where}: {arr.dtype} image with values in [{lo}, {hi}]; expected uint8, uint16, "
                "float in [0, 1], or integers in 0..255"
            )
        return arr.astype(np.uint8)
    raise ImageReadError(f"{where}: unsupported image dtype {arr.dtype}")


def _is_pil_image(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pillow is a dependency, but keep numpy/path inputs working without it
        return False
    return isinstance(obj, Image.Image)


def _pil_to_rgb_uint8(image: Any, where: str) -> np.ndarray:
    if image.mode.startswith("I;16"):
        return to_rgb_uint8(np.asarray(image, dtype=np.uint16), rgb=True, where=where)
    if image.mode in ("I", "F"):
        return to_rgb_uint8(np.asarray(image), rgb=True, where=where)
    return to_rgb_uint8(np.asarray(image.convert("RGB")), rgb=True, where=where)


def read_image(source: ImageInput, rgb: bool = False) -> np.ndarray:
    """Load one input (path, numpy array or PIL image) as RGB uint8 ``(H, W, 3)``.

    Files are decoded with OpenCV keeping their depth and channels (16-bit, alpha,
    greyscale), then converted by :func:`to_rgb_uint8`; ``rgb`` only concerns numpy inputs.

    Raises:
        ImageReadError: naming the file (or the input's type) and the problem.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageReadError(f"{path}: image file not found")
        try:
            data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths
        except OSError as exc:
            raise ImageReadError(f"{path}: cannot read file ({exc})") from exc
        image = (
            cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
        )
        if image is None:
            raise ImageReadError(f"{path}: cannot decode image (corrupt, truncated or not an image)")
        return to_rgb_uint8(image, rgb=False, where=str(path))
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source, rgb=rgb, where="numpy image")
    if _is_pil_image(source):
        return _pil_to_rgb_uint8(source, where="PIL image")
    raise ImageReadError(
        f"unsupported input of type {type(source).__name__}; expected a path, a numpy array or a PIL image"
    )


# ------------------------------------------------------------------------ predictions


@dataclass(frozen=True, eq=False)
class Prediction:
    """Detections of one image, in original-image pixels.

    Attributes:
        boxes: float32 ``(N, 4)``, ``x1, y1, x2, y2`` in continuous pixel coordinates
            (see the module docstring), sorted by descending score.
        scores: float32 ``(N,)``, objectness x class probability.
        labels: int64 ``(N,)`` class indices.
        class_names: all class names of the model (``labels`` index into them).
        image_size: ``(height, width)`` of the original image.
        source: the file the image came from, when it was given as a path.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    source: str | None = field(default=None)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def names(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[int(i)] for i in self.labels]

    def voc_boxes(self) -> np.ndarray:
        """The boxes in PASCAL VOC convention (1-based inclusive pixels): ``(x1+1, y1+1, x2, y2)``."""
        out = self.boxes.astype(np.float32).copy()
        out[:, :2] += 1.0
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: image size, box convention and one record per detection."""
        height, width = self.image_size
        return {
            "image": self.source,
            "width": int(width),
            "height": int(height),
            "box_format": BOX_FORMAT,
            "detections": [
                {
                    "label": int(label),
                    "name": self.class_names[int(label)],
                    "score": round(float(score), 6),
                    "box": [round(float(v), 3) for v in box],
                }
                for box, score, label in zip(self.boxes, self.scores, self.labels)
            ],
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)


# --------------------------------------------------------------------------- detector


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!s} was requested but CUDA is not available on this machine")
    return dev


class Detector:
    """A trained detector (SPYv4 or its ANN twin) ready to run on images.

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
        anchor_ref_size: input size at which the model's anchors are given.
        device: ``None``/``"auto"`` (CUDA when available), or a torch device.
        state_init: initial membrane, ``"zero"`` or ``"uniform"``.
        state_seed: seed of the uniform initial membrane, re-applied at every call.
        batch_size: images per forward pass in :meth:`predict`.
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
        anchor_ref_size: int = 416,
        device: str | torch.device | None = None,
        state_init: str = "zero",
        state_seed: int = 0,
        batch_size: int = 16,
    ) -> None:
        if img_size <= 0 or img_size % 32:
            raise ValueError(f"img_size must be a positive multiple of 32, got {img_size}")
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"conf must be in [0, 1], got {conf}")
        if not 0.0 < nms <= 1.0:
            raise ValueError(f"nms IoU threshold must be in (0, 1], got {nms}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if state_init not in ("zero", "uniform"):
            raise ValueError(f"state_init must be 'zero' or 'uniform', got {state_init!r}")
        num_classes = int(getattr(model, "num_classes", len(class_names)))
        if num_classes != len(class_names):
            raise ValueError(f"the model has {num_classes} classes but {len(class_names)} class names were given")
        self.device = _resolve_device(device)
        self.model = model.to(self.device).eval()
        self.class_names: tuple[str, ...] = tuple(str(n) for n in class_names)
        self.img_size = int(img_size)
        self.timesteps = int(timesteps)
        self.conf = float(conf)
        self.nms = float(nms)
        self.max_det = int(max_det)
        self.resize = resize
        self.state_init = state_init
        self.state_seed = int(state_seed)
        self.batch_size = int(batch_size)
        self.spiking = bool(getattr(model, "is_spiking", False))
        self.spec: HeadSpec = head_spec_for(model, self.img_size, anchor_ref_size)
        self._transform = build_eval_transform(self.img_size, resize)  # validates ``resize``
        # Which StreamSession (if any) the neuron state in the model currently belongs to.
        self._state_owner: object | None = None

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
    ) -> "Detector":
        """Build a detector from a training checkpoint (``weights/best.pt`` or ``last.pt``).

        The model, input size, resize mode, anchors and initial-state mode come from the
        checkpoint's config. ``timesteps`` defaults to ``model.timesteps``; ``conf`` and
        ``nms`` default to the config's demo thresholds (``eval.demo_conf``,
        ``eval.demo_nms``: 0.25 and 0.45); ``max_det`` to ``eval.max_det``.

        Raises:
            spyolo.train.checkpoint.CheckpointError: missing, unreadable or foreign file.
            spyolo.config.ConfigError: the stored config is invalid.
        """
        from spyolo.config import config_from_dict
        from spyolo.models import build_model
        from spyolo.train.checkpoint import CheckpointError, load_checkpoint

        ckpt = load_checkpoint(path, map_location="cpu")
        cfg = config_from_dict(ckpt["config"], str(path))
        names = ckpt.get("class_names")
        if not names:
            raise CheckpointError(f"{path}: the checkpoint has no 'class_names'")
        model = build_model(cfg.model, num_classes=len(names))
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the model described by its config ({exc})") from exc
        return cls(
            model,
            names,
            img_size=cfg.data.img_size,
            timesteps=cfg.model.timesteps if timesteps is None else timesteps,
            conf=cfg.eval.demo_conf if conf is None else conf,
            nms=cfg.eval.demo_nms if nms is None else nms,
            max_det=cfg.eval.max_det if max_det is None else max_det,
            resize=cfg.data.eval_resize,
            anchor_ref_size=cfg.model.anchor_ref_size,
            device=device,
            state_init=cfg.model.state_init,
            state_seed=cfg.model.state_seed,
            batch_size=batch_size,
        )

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

    def _finish(
        self,
        outs: tuple[torch.Tensor, ...],
        images: Sequence[np.ndarray],
        letterboxes: Sequence[Any],
        sources: Sequence[str | None],
    ) -> list[Prediction]:
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
            self._reset()
            self._state_owner = None
            outs = self._run_steps(batch, self.steps_per_image)
            results.extend(self._finish(outs, images, letterboxes, sources))
        return results

    def stream(self, steps_per_frame: int = 1, warmup: int = 8) -> "StreamSession":
        """An online session over a sequence of frames (see :class:`StreamSession`)."""
        return StreamSession(self, steps_per_frame=steps_per_frame, warmup=warmup)


class StreamSession:
    """Online detection on a frame sequence with the neuron state kept across frames.

    The first frame runs ``max(warmup, steps_per_frame)`` timesteps from a fresh state;
    every later frame runs ``steps_per_frame`` timesteps continuing from the state the
    previous frame left; each frame's prediction is read from its last step. For a
    non-spiking model every frame is one forward pass. Only one session per
    :class:`Detector` holds the state at a time: calling :meth:`Detector.predict` or
    another session's :meth:`step` in between makes this session start over with a
    warm-up at its next frame.

    Args:
        detector: the detector to run.
        steps_per_frame: ``k``, timesteps per frame after the first (>= 1).
        warmup: timesteps on the first frame (>= 0).
    """

    def __init__(self, detector: Detector, steps_per_frame: int = 1, warmup: int = 8) -> None:
        if steps_per_frame < 1:
            raise ValueError(f"steps_per_frame must be >= 1, got {steps_per_frame}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.detector = detector
        self.steps_per_frame = int(steps_per_frame)
        self.warmup = int(warmup)
        self.frames = 0  # frames processed since the last (re)start
        self.timesteps_run = 0  # timesteps run since the last (re)start

    def reset(self) -> None:
        """Start over: the next frame gets a fresh state and the warm-up."""
        self.frames = 0
        self.timesteps_run = 0
        if self.detector._state_owner is self:
            self.detector._state_owner = None

    @torch.no_grad()
    def step(self, frame: ImageInput, rgb: bool = False) -> Prediction:
        """Process the next frame (BGR numpy by default, as from ``cv2.VideoCapture``)."""
        det = self.detector
        if det._state_owner is not self:
            self.frames = 0
            self.timesteps_run = 0
        image = read_image(frame, rgb=rgb)
        batch, letterboxes = det.preprocess([image])
        if self.frames == 0:
            det._reset()
            det._state_owner = self
            steps = max(self.warmup, self.steps_per_frame)
        else:
            steps = self.steps_per_frame
        outs = det._run_steps(batch, steps)
        self.frames += 1
        self.timesteps_run += steps if det.spiking else 1
        source = str(frame) if isinstance(frame, (str, Path)) else None
        return det._finish(outs, [image], letterboxes, [source])[0]

    __call__ = step
