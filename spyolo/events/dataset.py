"""Event-camera detection datasets in the Gen1 layout: one sample per labelled time stamp.

A set entry ``gen1:FOLDER`` (relative to ``data.root`` or absolute) names a folder of
recordings ``NAME_td.dat`` with their labels ``NAME_bbox.npy`` (:mod:`spyolo.events.dat`,
:mod:`spyolo.events.boxes`), as the Gen1 automotive dataset's ``train/``, ``val/`` and
``test/`` folders hold them. Classes: ``classes.txt`` in FOLDER or its parent, else Gen1's
``car, pedestrian``.

Every distinct time stamp of a label file is one sample: the events of the ``window`` before
it cut into ``T`` bins (:func:`spyolo.events.frames.bin_events`), a ``(T, 2, S, S)`` float32
tensor, with that time stamp's boxes as targets. The Gen1 evaluation protocol
(:class:`~spyolo.events.protocol.Gen1Protocol`) decides what counts: boxes it ignores (too
small) are flagged ``difficult`` (dropped from training targets unless ``keep_difficult``,
ignored by the VOC metrics, removed from both sides by the Gen1 COCO metric), and for
evaluation the time stamps of a recording's first ``skip_us`` are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from spyolo.data.voc import VOCAnnotation, VOCObject, continuous_to_voc
from spyolo.errors import DatasetError, EventFileError
from spyolo.events.arrays import SensorSize
from spyolo.events.frames import FrameGeometry, bin_events, render_frame
from spyolo.events.protocol import Gen1Protocol
from spyolo.events.recording import EventRecording, labels_path, open_recording
from spyolo.events.sets import GEN1_CLASSES, Gen1Source

__all__ = ["GEN1_CLASSES", "EventDetectionDataset", "EventSettings", "Gen1Source", "event_settings"]

log = logging.getLogger(__name__)

_MAX_LISTED_SKIPS = 20


@dataclass(frozen=True)
class EventSettings:
    """How labelled time stamps become samples.

    Attributes:
        window_us: duration of the window before a time stamp.
        bins: ``T``, the bins (= timesteps) it is cut into.
        img_size: the square network input.
        representation: ``count`` or ``binary``.
        resize: ``pad`` or ``scale`` (:class:`~spyolo.events.frames.FrameGeometry`).
        sensor: the sensor size when the files' headers do not state it.
        protocol: which boxes and time stamps the Gen1 protocol ignores.
        hflip: probability of a left-right mirror per training sample.
    """

    window_us: int
    bins: int
    img_size: int
    representation: str = "count"
    resize: str = "pad"
    sensor: SensorSize | None = None
    protocol: Gen1Protocol = Gen1Protocol()
    hflip: float = 0.0


def event_settings(cfg: Any, train: bool) -> EventSettings:
    """How a full config turns labelled time stamps into samples (window, bins = ``model.timesteps``,
    geometry, representation, the Gen1 protocol of ``eval``, mirroring for training)."""
    d, e = cfg.data, cfg.eval
    sensor = SensorSize(*d.event_sensor) if d.event_sensor else None
    protocol = Gen1Protocol(e.gen1_min_box_diag, e.gen1_min_box_side, int(round(e.gen1_skip_ms * 1000)))
    return EventSettings(window_us=int(round(d.event_window_ms * 1000)), bins=int(cfg.model.timesteps),
                         img_size=int(d.img_size), representation=d.event_representation, resize=d.event_resize,
                         sensor=sensor, protocol=protocol, hflip=float(d.hflip) if train else 0.0)


class EventDetectionDataset(Dataset):  # type: ignore[type-arg]
    """Samples of one or more ``gen1:`` folders.

    Each item is ``(frames, target, meta)``: ``frames`` float32 ``(T, 2, S, S)``; ``target``
    float32 ``(N, 5)`` rows ``[class, cx, cy, w, h]`` normalised by ``S``; ``meta`` with
    ``index``, ``image_id`` (``NAME@T_US``), ``orig_size`` (the sensor's ``(height, width)``),
    ``letterbox`` (the geometry's ``(scale, 0, 0)``) and ``t_us``.

    Args:
        sets: the folders.
        class_names: the class list (a label's ``class_id`` indexes it).
        settings: windows, bins, geometry, protocol.
        train: training samples (mirroring with ``settings.hflip``; every time stamp) or test
            samples (no augmentation; the protocol's first ``skip_us`` left out).
        keep_difficult: keep the boxes the protocol ignores in the training targets.
        skip_bad: skip (and list in one warning) recordings whose files are bad instead of
            stopping at the first.
        verify: read every event file whole at start-up (time order; implied by ``skip_bad``).
        seed: seed of the augmentation stream.

    Raises:
        DatasetError: a missing folder, a folder without recordings, an event file without its
            labels, a class id outside the class list, a bad file (naming it) without ``skip_bad``.
    """

    def __init__(self, sets: Sequence[Gen1Source], class_names: Sequence[str], settings: EventSettings,
                 train: bool, keep_difficult: bool = False, skip_bad: bool = False, verify: bool = False,
                 seed: int | None = None) -> None:
        if not sets:
            raise DatasetError("EventDetectionDataset: no event sets given")
        self.class_names = list(class_names)
        self.settings = settings
        self.train = train
        self.keep_difficult = keep_difficult
        self.recordings: list[EventRecording] = []
        self.samples: list[tuple[int, int]] = []  # (recording, time stamp)
        self.annotations: list[VOCAnnotation] = []
        self.skipped: list[tuple[str, str]] = []
        self.coco = None  # no COCO file of its own (the evaluation converts the VOC form)
        self.protocol = settings.protocol  # the evaluation scores it under the Gen1 protocol too
        self.geometry: FrameGeometry | None = None
        self._rng = np.random.default_rng(seed)
        total = 0
        for source in sets:
            for dat in source.recordings():
                total += 1
                try:
                    self._add_recording(dat, verify or skip_bad)
                except (EventFileError, DatasetError) as exc:
                    if not skip_bad:
                        raise DatasetError(str(exc)) from None
                    self.skipped.append((str(dat), str(exc)))
        if self.skipped:
            names = "\n".join(f"  {p}" for _, p in self.skipped[:_MAX_LISTED_SKIPS])
            message = f"dataset skipped {len(self.skipped)} of {total} recordings (skip_bad=True):\n{names}"
            if not self.recordings:
                raise DatasetError(message + "\nno usable recordings left")
            log.warning(message)
        if not self.samples:
            raise DatasetError(f"{', '.join(str(s.folder) for s in sets)}: no labelled time stamps"
                               + (f" after the first {settings.protocol.skip_us} us of each recording"
                                  if not train else ""))

    # -- construction -------------------------------------------------------------------
    def _add_recording(self, dat: Path, verify: bool) -> None:
        s = self.settings
        rec = open_recording(dat, s.sensor)
        geometry = FrameGeometry(rec.sensor, s.img_size, s.resize)
        if self.geometry is None:
            self.geometry = geometry
        elif geometry != self.geometry:
            raise DatasetError(f"{dat}: sensor {rec.sensor}, but earlier recordings of this dataset are "
                               f"{self.geometry.sensor}; one dataset needs one sensor size")
        labels = rec.labels()
        if labels is None:
            raise DatasetError(f"{labels_path(dat)}: box label file not found (for {dat.name})")
        if len(labels.labels) and int(labels.labels.max()) >= len(self.class_names):
            i = int(np.argmax(labels.labels >= len(self.class_names)))
            raise DatasetError(f"{labels_path(dat)}: box {i} has class_id {int(labels.labels[i])}, but there are "
                               f"{len(self.class_names)} classes ({', '.join(self.class_names)})")
        if verify:
            rec.verify()
        if labels.clipped:
            log.debug("%s: %d boxes reach past the %s sensor and were clipped", labels_path(dat), labels.clipped,
                      rec.sensor)
        index = len(self.recordings)
        self.recordings.append(rec)
        name = dat.name[: -len("_td.dat")]
        keep_box = s.protocol.keeps(labels.boxes)
        for t in labels.times():
            if not self.train and not s.protocol.keeps_time(int(t)):
                continue
            lo, hi = np.searchsorted(labels.t, [t, t + 1])
            voc = continuous_to_voc(labels.boxes[lo:hi])
            objects = [VOCObject(self.class_names[int(c)], int(c), tuple(float(v) for v in b), not bool(k), False)
                       for b, c, k in zip(voc, labels.labels[lo:hi], keep_box[lo:hi])]
            self.samples.append((index, int(t)))
            self.annotations.append(VOCAnnotation(f"{name}@{int(t)}", dat.name, rec.sensor.width, rec.sensor.height,
                                                  2, objects))

    # -- access -------------------------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        """Re-seed the augmentation stream (called by the loaders, as for the image datasets)."""
        self._rng = np.random.default_rng(np.random.SeedSequence(seed))

    def __len__(self) -> int:
        return len(self.samples)

    def get_annotation(self, index: int) -> VOCAnnotation:
        """Sample ``index``'s boxes (VOC pixels of the sensor; ignored ones flagged difficult)."""
        return self.annotations[index]

    def events(self, index: int) -> np.ndarray:
        """The events of sample ``index``'s window."""
        rec, t = self.recordings[self.samples[index][0]], self.samples[index][1]
        try:
            return rec.window(t - self.settings.window_us, t)
        except EventFileError as exc:
            raise DatasetError(str(exc)) from None

    def frames(self, index: int, flip: bool = False) -> np.ndarray:
        """``(T, 2, S, S)`` frames of sample ``index``."""
        s = self.settings
        assert self.geometry is not None
        return bin_events(self.events(index), self.samples[index][1], s.window_us, s.bins, self.geometry,
                          s.representation, flip=flip)

    def load_image(self, index: int) -> np.ndarray:
        """An RGB picture of sample ``index``'s events at sensor size (for previews of predictions)."""
        assert self.geometry is not None
        ev = self.events(index)
        full = FrameGeometry(self.geometry.sensor, max(self.geometry.sensor.width, self.geometry.sensor.height), "pad")
        frames = bin_events(ev, self.samples[index][1], self.settings.window_us, 1, full)
        bgr = render_frame(frames, (full.sensor.width, full.sensor.height))
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _targets(self, index: int, flip: bool) -> np.ndarray:
        ann = self.annotations[index]
        assert self.geometry is not None
        boxes = ann.boxes().reshape(-1, 4).astype(np.float64)
        boxes[:, :2] -= 1.0  # VOC -> continuous
        labels = ann.labels()
        if not self.keep_difficult:
            keep = ~ann.difficult()
            boxes, labels = boxes[keep], labels[keep]
        if flip:
            boxes[:, [0, 2]] = self.geometry.sensor.width - boxes[:, [2, 0]]
        w, h = self.geometry.size
        sx, sy = w / self.geometry.sensor.width, h / self.geometry.sensor.height
        size = float(self.settings.img_size)
        target = np.zeros((len(labels), 5), dtype=np.float32)
        if len(labels):
            target[:, 0] = labels
            target[:, 1] = (boxes[:, 0] + boxes[:, 2]) * sx / (2 * size)
            target[:, 2] = (boxes[:, 1] + boxes[:, 3]) * sy / (2 * size)
            target[:, 3] = (boxes[:, 2] - boxes[:, 0]) * sx / size
            target[:, 4] = (boxes[:, 3] - boxes[:, 1]) * sy / size
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        flip = bool(self.train and self.settings.hflip > 0 and self._rng.random() < self.settings.hflip)
        frames = torch.from_numpy(self.frames(index, flip))
        target = torch.from_numpy(self._targets(index, flip))
        assert self.geometry is not None
        ann = self.annotations[index]
        meta = {"index": index, "image_id": ann.image_id, "orig_size": (ann.height, ann.width),
                "letterbox": self.geometry.letterbox, "t_us": self.samples[index][1]}
        return frames, target, meta
