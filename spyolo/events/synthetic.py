"""Synthetic event-camera recordings in the Gen1 layout ("spyolo synthetic events").

Gen1 cannot be shipped, so spyolo simulates what an event camera sees and writes it exactly as
Gen1 is stored (``train/`` and ``test/`` folders of ``NAME_td.dat`` + ``NAME_bbox.npy``,
:mod:`spyolo.events.dat`, :mod:`spyolo.events.boxes`): the reader, the binning, the training
and the Gen1 protocol that run on it are the ones a Gen1 user runs.

A recording (``EventSpec``; every recording has its own generator from ``(seed, index)``):

1. **Scene**, rendered in grey levels every ``frame_us`` (1 ms): a textured background (the
   image generator's smooth colour field, gradient, noise and lines, in grey) that drifts as a
   panning camera would (``pan_speed`` px/s), ``objects`` shapes of the chosen classes (the
   outlines of :mod:`spyolo.data.synthetic`) with their own uniform grey level (at least
   ``min_contrast`` from the background under them), size log-uniform in ``size``, aspect in
   ``aspect``, moving at ``speed`` px/s in a random direction and turning at ``spin`` deg/s,
   bouncing off the sensor's edges; and ``distractors`` irregular blobs that move the same way
   but are no class. Shapes are drawn anti-aliased at 1/16 pixel, so sub-pixel motion changes
   the intensity smoothly.
2. **Events**, as an event pixel fires: each pixel keeps a reference log intensity
   ``log(I/255 + 0.02)``; when the current one differs by ``n >= 1`` contrast thresholds
   (``threshold``, per pixel ``N(threshold, threshold_sigma)``), ``n`` events of that sign
   are emitted at times interpolated linearly inside the frame interval and the reference
   moves by ``n`` thresholds; an event within ``refractory_us`` of the pixel's previous one
   is dropped (its crossing still moves the reference). Background noise: Poisson events at
   ``noise_hz`` per pixel, random polarity. All of this is array arithmetic per frame: no
   Python loop over pixels or events.
3. **Labels** every ``label_every_us`` (from ``label_every_us`` on): each object's box, the
   extent of its full outline at that instant clipped to the sensor (objects partly off the
   sensor keep the visible part; wholly off-sensor objects get no box), ``class_id`` its
   class, ``track_id`` the object.

Deterministic for a seed; ``synthetic_spec.json`` records the settings (as the image
generator's does), and regeneration replaces only a folder this generator wrote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from spyolo.data.synthetic import (
    SyntheticSpec,
    _background,
    checked_classes,
    claim_folder,
    mark_complete,
    shape_polygons,
    spec_and_classes,
)
from spyolo.errors import ConfigError
from spyolo.events.arrays import SensorSize, make_events
from spyolo.events.boxes import write_boxes
from spyolo.events.dat import write_dat
from spyolo.utils.io import atomic_write_text

__all__ = ["EVENT_SPLITS", "EventSpec", "SimulatedRecording", "event_provenance", "event_synthetic_settings",
           "generate_synthetic_events", "simulate_recording", "split_summary"]

EVENT_SPLITS = ("train", "test")
_SUBPIXEL_BITS = 4
_LOG_EPS = 0.02


@dataclass(frozen=True)
class EventSpec:
    """Knobs of the simulated recordings (ranges are inclusive ``(low, high)`` pairs)."""

    width: int = 128
    height: int = 96
    duration_us: int = 1_500_000
    frame_us: int = 1000
    label_every_us: int = 100_000
    objects: tuple[int, int] = (1, 3)
    distractors: tuple[int, int] = (0, 1)
    size: tuple[float, float] = (18.0, 44.0)
    aspect: tuple[float, float] = (0.7, 1.4)
    speed: tuple[float, float] = (40.0, 140.0)
    spin: tuple[float, float] = (-120.0, 120.0)
    pan_speed: tuple[float, float] = (0.0, 12.0)
    min_contrast: float = 50.0
    threshold: float = 0.2
    threshold_sigma: float = 0.03
    refractory_us: int = 200
    noise_hz: float = 0.2

    def __post_init__(self) -> None:
        for name in ("objects", "distractors", "size", "aspect", "speed", "spin", "pan_speed"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"EventSpec.{name} must be a (low, high) pair with low <= high, got {(low, high)}")
        if self.width < 16 or self.height < 16:
            raise ConfigError(f"EventSpec: the sensor must be at least 16x16, got {self.width}x{self.height}")
        if self.objects[0] < 1 or self.distractors[0] < 0 or self.size[0] < 4 or self.aspect[0] <= 0:
            raise ConfigError("EventSpec: need objects >= 1, distractors >= 0, size >= 4 px and aspect > 0")
        if not 0 < self.frame_us <= self.label_every_us <= self.duration_us:
            raise ConfigError("EventSpec: need 0 < frame_us <= label_every_us <= duration_us")
        if self.threshold <= 0 or self.threshold_sigma < 0 or self.refractory_us < 0 or self.noise_hz < 0:
            raise ConfigError("EventSpec: need threshold > 0 and threshold_sigma, refractory_us, noise_hz >= 0")

    @property
    def sensor(self) -> SensorSize:
        return SensorSize(self.width, self.height)


@dataclass
class _Mover:
    """A shape moving over the sensor: class (or -1 for a distractor), geometry, grey level."""

    label: int
    outline: tuple[list[np.ndarray], list[np.ndarray]] | None  # distractor contour (unit scale) or None
    name: str
    w: float
    h: float
    x: float
    y: float
    vx: float
    vy: float
    angle: float
    spin: float
    level: float

    def polygons(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self.outline is None:
            return shape_polygons(self.name, self.w, self.h, self.angle, (self.x, self.y))
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        return [p * np.array([self.w, self.h]) @ rot.T + (self.x, self.y) for p in self.outline[0]], []

    def advance(self, dt: float, sensor: SensorSize) -> None:
        self.x += self.vx * dt
        self.y += self.vy * dt
        self.angle += self.spin * dt
        if (self.x < 0 and self.vx < 0) or (self.x > sensor.width and self.vx > 0):
            self.vx = -self.vx
        if (self.y < 0 and self.vy < 0) or (self.y > sensor.height and self.vy > 0):
            self.vy = -self.vy


def _blob(rng: np.random.Generator) -> list[np.ndarray]:
    """An irregular star-convex blob in a unit box (a distractor: no class looks like it)."""
    n = int(rng.integers(7, 13))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = rng.uniform(0.25, 0.5, n)
    pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return [pts / (2 * np.abs(pts).max(axis=0))]


def _fill(canvas: np.ndarray, polygons: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    scale = float(1 << _SUBPIXEL_BITS)
    filled, holes = polygons
    cv2.fillPoly(canvas, [np.round(p * scale).astype(np.int32).reshape(-1, 1, 2) for p in filled], 255,
                 cv2.LINE_AA, _SUBPIXEL_BITS)
    for hole in holes:
        cv2.fillPoly(canvas, [np.round(hole * scale).astype(np.int32).reshape(-1, 1, 2)], 0, cv2.LINE_AA,
                     _SUBPIXEL_BITS)


@dataclass(frozen=True)
class SimulatedRecording:
    """The output of :func:`simulate_recording`: events and labels (times in us)."""

    events: np.ndarray
    label_t: np.ndarray
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2, continuous sensor pixels
    labels: np.ndarray
    tracks: np.ndarray


def simulate_recording(
    seed: int, index: int, classes: Sequence[str], spec: EventSpec = EventSpec()
) -> SimulatedRecording:
    """Simulate recording ``index`` of the set with ``seed`` (see the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    sensor = spec.sensor
    w, h = spec.width, spec.height
    margin = int(math.ceil(spec.pan_speed[1] * spec.duration_us * 1e-6)) + 2
    grey = SyntheticSpec(background_lines=(2, 8))
    bg = _background(rng, h + 2 * margin, w + 2 * margin, grey)
    bg = cv2.cvtColor(bg.astype(np.float32), cv2.COLOR_RGB2GRAY)
    pan_dir = rng.uniform(0, 2 * math.pi)
    pan = rng.uniform(*spec.pan_speed)
    pan_v = (pan * math.cos(pan_dir), pan * math.sin(pan_dir))

    movers: list[_Mover] = []
    n_obj = int(rng.integers(spec.objects[0], spec.objects[1] + 1))
    n_dis = int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))
    for k in range(n_obj + n_dis):
        is_obj = k < n_obj
        label = int(rng.integers(len(classes))) if is_obj else -1
        size = math.exp(rng.uniform(math.log(spec.size[0]), math.log(spec.size[1])))
        aspect = math.exp(rng.uniform(math.log(spec.aspect[0]), math.log(spec.aspect[1])))
        x, y = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
        direction, speed = rng.uniform(0, 2 * math.pi), rng.uniform(*spec.speed)
        under = float(bg[int(y) + margin, int(x) + margin])
        levels = np.array([v for v in np.linspace(10, 245, 48) if abs(v - under) >= spec.min_contrast])
        level = float(rng.choice(levels)) if levels.size else (245.0 if under < 128 else 10.0)
        movers.append(_Mover(label, None if is_obj else (_blob(rng), []), classes[label] if is_obj else "",
                             size * math.sqrt(aspect), size / math.sqrt(aspect), x, y,
                             speed * math.cos(direction), speed * math.sin(direction),
                             rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(*spec.spin)), level))
    order = rng.permutation(len(movers))  # z-order

    threshold = np.maximum(rng.normal(spec.threshold, spec.threshold_sigma, (h, w)), 0.05 * spec.threshold)
    last_event = np.full((h, w), -10 ** 9, dtype=np.int64)
    canvas = np.zeros((h, w), np.uint8)
    chunks: list[np.ndarray] = []
    label_t, boxes, labels, tracks = [], [], [], []
    reference = None
    dt = spec.frame_us * 1e-6
    for frame in range(spec.duration_us // spec.frame_us + 1):
        t = frame * spec.frame_us
        ox, oy = margin + pan_v[0] * t * 1e-6, margin + pan_v[1] * t * 1e-6
        shift = np.float32([[1, 0, -ox], [0, 1, -oy]])
        image = cv2.warpAffine(bg, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for j in order:
            m = movers[j]
            canvas[:] = 0
            _fill(canvas, m.polygons())
            alpha = canvas.astype(np.float32) * (1.0 / 255.0)
            image = image * (1.0 - alpha) + m.level * alpha
        if t and t % spec.label_every_us == 0:
            for j, m in enumerate(movers):
                if m.label < 0:
                    continue
                pts = np.concatenate(m.polygons()[0], axis=0)
                x1, y1 = np.clip(pts.min(axis=0), 0, (w, h))
                x2, y2 = np.clip(pts.max(axis=0), 0, (w, h))
                if x2 - x1 >= 1 and y2 - y1 >= 1:
                    label_t.append(t)
                    boxes.append((x1, y1, x2, y2))
                    labels.append(m.label)
                    tracks.append(j)
        log_i = np.log(image * (1.0 / 255.0) + _LOG_EPS)
        if reference is None:
            reference = log_i.copy()
        else:
            diff = log_i - reference
            n = np.floor(np.abs(diff) / threshold).astype(np.int64)
            ys, xs = np.nonzero(n)
            if ys.size:
                counts = n[ys, xs]
                d = diff[ys, xs]
                thr = threshold[ys, xs]
                reference[ys, xs] += np.sign(d) * counts * thr
                # crossing k (1..n) of a pixel at base + k * spacing (linear inside the frame); the
                # refractory period keeps the first one at least refractory_us after the pixel's last
                # event, then every stride-th one
                spacing = spec.frame_us * thr / np.abs(d)
                base = float(t - spec.frame_us)
                last = last_event[ys, xs].astype(np.float64)
                refr = float(spec.refractory_us)
                k0 = np.maximum(1, np.ceil((last + refr - base) / spacing)).astype(np.int64)
                stride = np.maximum(1, np.ceil(refr / spacing)).astype(np.int64) if refr else np.ones_like(k0)
                kept = np.where(k0 <= counts, 1 + (counts - k0) // stride, 0)
                pix = np.repeat(np.arange(ys.size), kept)
                if pix.size:
                    j = np.arange(pix.size) - np.repeat(np.cumsum(kept) - kept, kept)
                    k = k0[pix] + j * stride[pix]
                    te = np.minimum(base + k * spacing[pix], float(t)).astype(np.int64)
                    got = kept > 0
                    last_event[ys[got], xs[got]] = np.minimum(
                        base + (k0[got] + (kept[got] - 1) * stride[got]) * spacing[got], float(t)).astype(np.int64)
                    chunks.append(make_events(te, xs[pix].astype(np.int16), ys[pix].astype(np.int16),
                                              (d[pix] > 0).astype(np.uint8)))
        for m in movers:
            m.advance(dt, sensor)
    noise_n = int(rng.poisson(spec.noise_hz * w * h * spec.duration_us * 1e-6))
    if noise_n:
        chunks.append(make_events(rng.integers(0, spec.duration_us, noise_n), rng.integers(0, w, noise_n),
                                  rng.integers(0, h, noise_n), rng.integers(0, 2, noise_n)))
    events = np.concatenate(chunks) if chunks else make_events(*(np.zeros(0, np.int64),) * 4)
    events = events[np.argsort(events["t"], kind="stable")]
    return SimulatedRecording(events, np.asarray(label_t, np.int64), np.asarray(boxes, np.float32).reshape(-1, 4),
                              np.asarray(labels, np.int64), np.asarray(tracks, np.int64))


def event_synthetic_settings(cfg: Any) -> dict[str, Any]:
    """Generator arguments (``classes``, ``spec``) of a data config's ``synthetic_classes`` and
    ``synthetic_spec`` (:class:`EventSpec` field names; lists become pairs).

    Raises:
        ValueError: naming the offending key or value.
    """
    spec, classes = spec_and_classes(cfg, EventSpec)
    return {"classes": list(classes), "spec": spec}


def event_provenance(n_train: int, n_test: int, seed: int, *, classes: Sequence[str],
                     spec: EventSpec) -> dict[str, Any]:
    """The provenance record :func:`generate_synthetic_events` writes for these arguments."""
    import json

    return json.loads(json.dumps({"generator": "spyolo.events.synthetic", "seed": seed, "n_train": n_train,
                                  "n_test": n_test, "classes": list(classes), "spec": asdict(spec)}))


def generate_synthetic_events(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, *,
                              classes: Sequence[str] | None = None, spec: EventSpec | None = None,
                              overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``n_train`` + ``n_test`` simulated recordings in the Gen1 layout at ``out_dir``.

    ``out_dir/train/`` and ``out_dir/test/`` receive ``recNNNNNN_td.dat`` and
    ``recNNNNNN_bbox.npy`` (training recordings first, test ones after them in the numbering),
    ``out_dir/classes.txt`` the classes, ``out_dir/synthetic_spec.json`` the settings. Folder
    rules as for the image generator (:func:`spyolo.data.synthetic.claim_folder`): a folder of
    other data is never touched; ``overwrite`` regenerates this generator's own.
    """
    chosen = checked_classes(classes)
    spec = EventSpec() if spec is None else spec
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ConfigError(f"need n_train >= 0, n_test >= 0 and at least one recording, got {n_train}, {n_test}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out_dir)
    claim_folder(out, [*EVENT_SPLITS, "classes.txt"], event_provenance(n_train, n_test, seed, classes=chosen,
                                                                       spec=spec), overwrite)
    sensor = spec.sensor
    total = n_train + n_test
    for index in tqdm(range(total), desc="synthetic events", unit="rec", disable=not progress):
        split = "train" if index < n_train else "test"
        rec = simulate_recording(seed, index, chosen, spec)
        name = f"rec{index + 1:06d}"
        write_dat(out / split / f"{name}_td.dat", rec.events, sensor, comment=f"spyolo synthetic events seed {seed}")
        write_boxes(out / split / f"{name}_bbox.npy", rec.label_t, rec.boxes, rec.labels, rec.tracks)
    for split in EVENT_SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "classes.txt", "".join(f"{c}\n" for c in chosen))
    mark_complete(out)
    return out


def split_summary(folder: str | Path) -> tuple[int, int, int, int]:
    """``(recordings, labelled time stamps, boxes, events)`` of a folder of Gen1 recordings."""
    from spyolo.events.boxes import read_boxes
    from spyolo.events.dat import DatFile
    from spyolo.events.recording import labels_path

    n = stamps = boxes = events = 0
    for dat in sorted(Path(folder).glob("*_td.dat")):
        f = DatFile(dat)
        labels = read_boxes(labels_path(dat), f.sensor or EventSpec().sensor)
        n += 1
        stamps += len(labels.times())
        boxes += len(labels.t)
        events += len(f)
    return n, stamps, boxes, events
