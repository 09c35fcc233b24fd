"""Run a :class:`~spyolo.inference.detector.Detector` over a video file or a camera.

Two modes:

* per-frame (default): every frame is an independent image, ``T`` timesteps from a fresh
  neuron state (what :meth:`Detector.predict` does);
* ``stream=True``: the online mode spiking hardware would run. The neuron state is kept
  from frame to frame; the first frame gets a warm-up of ``warmup`` timesteps, every
  later frame ``k`` timesteps (see :class:`~spyolo.inference.stream.StreamSession`).

Outputs: an annotated video (``mp4v`` in ``.mp4``; if OpenCV cannot open that writer, MJPG
in ``.avi``; both are written and read back by the ``opencv-python-headless`` wheels) and
a JSON-lines file with one :meth:`Prediction.to_dict` record per frame, plus ``frame`` and
``timesteps`` (the timesteps run for that frame). Both are written under temporary names and
moved into place when the video ends, so a failed or empty run leaves no partial files.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from spyolo.errors import VideoError
from spyolo.inference.detector import Detector
from spyolo.inference.draw import class_colors, draw_predictions
from spyolo.inference.prediction import Prediction
from spyolo.utils.io import atomic_write_text

__all__ = [
    "VIDEO_EXTENSIONS",
    "video_outputs",
    "VideoError",
    "VideoResult",
    "open_capture",
    "open_writer",
    "run_video",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
"""File suffixes treated as videos by the demo."""

_WRITERS = (("mp4v", ".mp4"), ("MJPG", ".avi"))
_DEFAULT_FPS = 30.0


def open_capture(source: str | Path | int) -> cv2.VideoCapture:
    """Open a video file (path) or a camera (integer index).

    Raises:
        VideoError: naming the source, when the file is missing or OpenCV cannot open it.
    """
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise VideoError(f"camera {source}: cannot open it (no such device, or no access)")
        return cap
    path = Path(source)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    # FFmpeg would print its own diagnosis of a file it cannot read ("moov atom not found") beside
    # the one-line error below; quiet unless the user asked for its messages.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: OpenCV cannot open this video (unsupported codec or container, or corrupt)")
    return cap


def video_outputs(stem: Path) -> list[Path]:
    """Every file :func:`run_video` may write for ``stem``: the video (either container) and the JSON lines."""
    return [stem.with_suffix(suffix) for _fourcc, suffix in _WRITERS] + [stem.with_suffix(".jsonl")]


def _temp_stem(stem: Path) -> Path:
    return stem.with_name(f".{stem.name}.{os.getpid()}.tmp")


def open_writer(stem: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """Open an annotated-video writer at ``stem`` + ``.mp4`` (mp4v), else ``.avi`` (MJPG).

    Args:
        stem: output path without suffix.
        fps: frames per second written into the container.
        size: ``(width, height)`` of the frames.

    Raises:
        VideoError: if neither writer can be opened.
    """
    for fourcc, suffix in _WRITERS:
        path = stem.with_suffix(suffix)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, path
        writer.release()
        if path.exists():
            path.unlink()
    raise VideoError(f"{stem}: OpenCV can open neither an mp4v (.mp4) nor an MJPG (.avi) video writer")


@dataclass(frozen=True)
class VideoResult:
    """Summary of one video run.

    Attributes:
        frames: frames processed.
        video_path: the annotated video.
        jsonl_path: the per-frame detections.
        seconds: wall time of the whole loop (decode, model, drawing, writing).
        model_seconds: wall time inside the detector (pre-processing, timesteps,
            post-processing, read-back), the part spiking hardware would replace.
        timesteps: total timesteps run.
        stream: whether the neuron state was kept across frames.
    """

    frames: int
    video_path: Path
    jsonl_path: Path
    seconds: float
    model_seconds: float
    timesteps: int
    stream: bool

    @property
    def fps(self) -> float:
        """End-to-end frames per second."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        """Frames per second of the detector alone."""
        return self.frames / self.model_seconds if self.model_seconds > 0 else 0.0


def _frame_record(pred: Prediction, index: int, timesteps: int, source: str) -> str:
    record = pred.to_dict()
    record["image"] = source
    record["frame"] = index
    record["timesteps"] = timesteps
    return json.dumps(record)


def run_video(
    detector: Detector,
    source: str | Path | int,
    out_stem: Path,
    stream: bool = False,
    steps_per_frame: int = 1,
    warmup: int = 8,
    max_frames: int = 0,
    progress: bool = True,
) -> VideoResult:
    """Detect on every frame of ``source``; write the annotated video and JSON lines.

    Args:
        detector: the detector (its ``conf``/``nms`` apply).
        source: a video file or a camera index.
        out_stem: output path without suffix; ``.mp4``/``.avi`` and ``.jsonl`` are added.
        stream: keep the neuron state across frames (online mode).
        steps_per_frame: ``k`` timesteps per frame in stream mode.
        warmup: timesteps on the first frame in stream mode.
        max_frames: stop after this many frames (0: until the source ends; a camera
            then runs until interrupted with Ctrl-C, which ends the run cleanly).
        progress: show a progress bar.

    Raises:
        VideoError: if the source cannot be opened, yields no frame, or the output
            cannot be written.
    """
    if max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    cap = open_capture(source)
    name = f"camera {source}" if isinstance(source, int) else str(source)
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    fps_in = cap.get(cv2.CAP_PROP_FPS)
    fps_out = fps_in if fps_in and math.isfinite(fps_in) and 0 < fps_in < 1000 else _DEFAULT_FPS
    count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # 0 when unknown (cameras, some streams)
    known = [n for n in (count, max_frames) if n > 0]
    total = min(known) if known else None
    session = detector.stream(steps_per_frame, warmup) if stream else None
    colours = class_colors(detector.num_classes)
    jsonl_path = out_stem.with_suffix(".jsonl")
    temp_stem = _temp_stem(out_stem)
    writer: cv2.VideoWriter | None = None
    temp_video: Path | None = None
    records: list[str] = []
    frames = timesteps = 0
    model_seconds = 0.0
    desc = name if isinstance(source, int) else Path(name).name
    bar = tqdm(total=total, desc=desc, unit="frame", disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    done = False
    try:
        try:
            while max_frames <= 0 or frames < max_frames:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                if writer is None:
                    writer, temp_video = open_writer(temp_stem, fps_out, (frame.shape[1], frame.shape[0]))
                t0 = time.perf_counter()
                if session is not None:
                    before = session.timesteps_run
                    pred = session.step(frame)
                    steps = session.timesteps_run - before
                else:
                    pred = detector.predict(frame)[0]
                    steps = detector.steps_per_image
                model_seconds += time.perf_counter() - t0
                annotated = draw_predictions(np.ascontiguousarray(frame[:, :, :3]), pred, colours)
                writer.write(annotated)
                records.append(_frame_record(pred, frames, steps, name))
                frames += 1
                timesteps += steps
                bar.update(1)
        except KeyboardInterrupt:
            pass  # a camera run ends here; the frames processed so far are written
        finally:
            seconds = time.perf_counter() - start
            bar.close()
            cap.release()
            if writer is not None:
                writer.release()
        if frames == 0 or temp_video is None:
            raise VideoError(f"{name}: no frame could be read")
        video_path = out_stem.with_suffix(temp_video.suffix)
        os.replace(temp_video, video_path)
        atomic_write_text(jsonl_path, "".join(r + "\n" for r in records))
        done = True
    finally:
        if not done and temp_video is not None and temp_video.exists():
            temp_video.unlink()
    return VideoResult(frames, video_path, jsonl_path, seconds, model_seconds, timesteps, stream)
