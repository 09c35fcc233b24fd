"""Online detection over an event recording: one bin per timestep, the neuron state kept throughout.

:func:`run_event_stream` reads a Gen1 ``.dat`` or a Prophesee ``.raw`` (EVT 2.0 / 3.0) and cuts it
into consecutive bins of the duration the model was trained with (``data.event_window_ms /
model.timesteps``); each timestep's input is ``bins_per_step`` of them merged into one frame
(counts add; binary frames are OR-ed). The neuron state starts at zero and is never reset, the
way event hardware runs: this is where FPTT's trained networks meet their use, unbounded in
time. The ANN twin instead reads, at every step, the last ``T`` bins stacked.

Predictions are read at regular time stamps (every ``every_us``, from ``every_us`` on), at
the labelled time stamps of a Gen1 recording (its ``_bbox.npy``), each at the end of the step
that reaches it, and after the last step; with ``model.readout=mean`` a prediction is the mean of the heads over the
steps since the previous one. Outputs, written as :mod:`spyolo.inference.video` writes them
(under temporary names, moved into place at the end): an annotated video of the event frames
(one video frame per step, the latest prediction drawn) and a JSON-lines file with one record
per prediction (:meth:`Prediction.to_dict` plus ``t_us``, ``step``, ``timesteps`` and
``labelled``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spyolo.errors import ConfigError, VideoError
from spyolo.events.arrays import SensorSize
from spyolo.events.frames import FrameGeometry, bin_events, render_frame
from spyolo.events.recording import open_recording
from spyolo.inference.detector import Detector
from spyolo.inference.draw import class_colors, draw_predictions
from spyolo.inference.prediction import Prediction
from spyolo.inference.video import _temp_stem, open_writer
from spyolo.utils.io import atomic_write_text

__all__ = ["EventStreamResult", "run_event_stream"]

_MIN_VIDEO_SIDE = 480


@dataclass(frozen=True)
class EventStreamResult:
    """Summary of one stream: steps run, predictions written, the files, wall times."""

    steps: int
    predictions: int
    video_path: Path
    jsonl_path: Path
    seconds: float
    model_seconds: float
    step_us: int

    @property
    def realtime_factor(self) -> float:
        """Recording time processed per second of wall time in the detector."""
        return self.steps * self.step_us * 1e-6 / self.model_seconds if self.model_seconds > 0 else 0.0


def run_event_stream(
    detector: Detector,
    source: str | Path,
    out_stem: Path,
    *,
    window_us: int,
    representation: str = "count",
    resize: str = "pad",
    sensor: SensorSize | None = None,
    bins_per_step: int = 1,
    every_us: int | None = None,
    max_steps: int = 0,
    time_rule: str = "prophesee",
    progress: bool = True,
) -> EventStreamResult:
    """Run ``detector`` online over the recording ``source``; write the video and the JSON lines.

    Args:
        detector: a detector of an event model (``model.input=events``).
        source: a ``.dat`` or ``.raw`` recording.
        out_stem: output path without suffix (``.mp4``/``.avi`` and ``.jsonl`` are added).
        window_us, representation, resize: the training data's settings (a bin lasts
            ``window_us / detector.timesteps``).
        sensor: the sensor size when the file's header states none.
        bins_per_step: bins merged into one timestep's input (>= 1).
        every_us: time between regular predictions (default: ``window_us``).
        max_steps: stop after this many steps (0: the whole recording).
        time_rule: EVT 3.0's time rule (:mod:`spyolo.events.raw`).
        progress: show a progress bar.

    Raises:
        ConfigError: the detector's model does not read event frames, or bad settings.
        EventFileError: a bad recording.
        VideoError: no step could run, or the video cannot be written.
    """
    model = detector.model
    channels = getattr(model, "in_channels", 3)
    if channels != 2:
        raise ConfigError(f"the model reads {channels}-channel images, not event frames "
                          f"(train it with model.input=events)")
    if bins_per_step < 1 or max_steps < 0 or window_us <= 0:
        raise ConfigError("need bins_per_step >= 1, max_steps >= 0 and a positive window")
    rec = open_recording(source, sensor, time_rule=time_rule)
    geometry = FrameGeometry(rec.sensor, detector.img_size, resize)
    full = FrameGeometry(rec.sensor, max(rec.sensor.width, rec.sensor.height))  # the pictures: every sensor pixel
    bins = detector.timesteps
    bin_us = max(1, window_us // bins)
    step_us = bin_us * bins_per_step
    every = int(every_us) if every_us else int(window_us)
    origin = (rec.start_us // bin_us) * bin_us
    n_steps = max(0, -(-(rec.end_us + 1 - origin) // step_us))
    if max_steps:
        n_steps = min(n_steps, max_steps)
    if n_steps == 0:
        raise VideoError(f"{source}: no events, nothing to run")
    labels = rec.labels()
    labelled = set(int(t) for t in labels.times()) if labels is not None else set()
    report_at: dict[int, bool] = {}  # step index -> labelled?
    for t in range(origin + every, origin + n_steps * step_us + 1, every):
        report_at[(t - origin + step_us - 1) // step_us - 1] = False
    for t in labelled:
        k = (t - origin + step_us - 1) // step_us - 1
        if 0 <= k < n_steps:
            report_at[k] = True
    report_at.setdefault(n_steps - 1, False)  # and at the end

    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    up = max(1, -(-_MIN_VIDEO_SIDE // max(rec.sensor.width, rec.sensor.height)))
    sensor_hw = (rec.sensor.height, rec.sensor.width)
    colours = class_colors(detector.num_classes)
    temp_video: Path | None = None
    writer = None
    records: list[str] = []
    last_pred: Prediction | None = None
    history: deque[torch.Tensor] = deque(maxlen=bins)
    model_seconds = 0.0
    start = time.perf_counter()
    done = False
    detector.start_state()
    name = str(source)
    try:
        writer, temp_video = open_writer(_temp_stem(out_stem), 1e6 / step_us, (rec.sensor.width * up,
                                                                             rec.sensor.height * up))
        for k in tqdm(range(n_steps), desc=Path(name).name, unit="step", disable=not progress, dynamic_ncols=True):
            t_end = origin + (k + 1) * step_us
            events = rec.window(t_end - step_us, t_end)
            frame = bin_events(events, t_end, step_us, 1, geometry, representation)[0]
            t0 = time.perf_counter()
            x = torch.from_numpy(frame).unsqueeze(0).to(detector.device)
            with torch.no_grad():
                if detector.spiking:
                    outs = model(x)
                else:
                    history.append(x)
                    while len(history) < bins:
                        history.appendleft(torch.zeros_like(x))
                    outs = model(torch.stack(list(history), dim=1))
            picture = render_frame(bin_events(events, t_end, step_us, 1, full, representation)[0],
                                   (rec.sensor.width, rec.sensor.height))
            if k in report_at:
                with torch.no_grad():
                    pred = detector.decode(outs, [np.ascontiguousarray(picture[:, :, ::-1])], [geometry.letterbox],
                                            [name])[0]
                detector.restart_readout()
                record = pred.to_dict()
                record.update(t_us=int(t_end), step=k + 1, timesteps=k + 1, labelled=bool(report_at[k]))
                records.append(json.dumps(record))
                last_pred = pred
            model_seconds += time.perf_counter() - t0
            image = np.repeat(np.repeat(picture, up, axis=0), up, axis=1)
            if last_pred is not None and len(last_pred):
                scaled = dataclasses.replace(last_pred, boxes=last_pred.boxes * up,
                                             image_size=(sensor_hw[0] * up, sensor_hw[1] * up), image=None)
                image = draw_predictions(image, scaled, colours)
            writer.write(image)
        writer.release()
        writer = None
        video_path = out_stem.with_suffix(temp_video.suffix)
        os.replace(temp_video, video_path)
        jsonl_path = atomic_write_text(out_stem.with_suffix(".jsonl"), "".join(r + "\n" for r in records))
        done = True
    finally:
        if writer is not None:
            writer.release()
        if not done and temp_video is not None and temp_video.exists():
            temp_video.unlink()
    return EventStreamResult(n_steps, len(records), video_path, jsonl_path, time.perf_counter() - start,
                             model_seconds, step_us)
