"""The dataset a full config describes: event sets here, image sets through :mod:`spyolo.data`.

:func:`build_dataset` is what training and evaluation call. For ``gen1:`` entries it needs more
than the data section (the bins are ``model.timesteps``, the Gen1 protocol is in ``eval``), so
it takes the whole :class:`spyolo.config.Config` (only attribute access is used).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from spyolo.data.build import build_dataset as build_image_dataset
from spyolo.data.build import ensure_generated
from spyolo.errors import ConfigError
from spyolo.events.arrays import SensorSize
from spyolo.events.dataset import EventDetectionDataset, EventSettings, event_class_names
from spyolo.events.protocol import Gen1Protocol
from spyolo.events.sets import parse_event_sets, uses_events

__all__ = ["build_dataset", "ensure_synthetic_events", "event_settings"]

log = logging.getLogger(__name__)


def event_settings(cfg: Any, train: bool) -> EventSettings:
    """How the config turns labelled time stamps into samples (window, bins = ``model.timesteps``,
    geometry, representation, the Gen1 protocol, mirroring for training)."""
    d, e = cfg.data, cfg.eval
    sensor = SensorSize(*d.event_sensor) if d.event_sensor else None
    protocol = Gen1Protocol(e.gen1_min_box_diag, e.gen1_min_box_side, int(round(e.gen1_skip_ms * 1000)))
    return EventSettings(window_us=int(round(d.event_window_ms * 1000)), bins=int(cfg.model.timesteps),
                         img_size=int(d.img_size), representation=d.event_representation, resize=d.event_resize,
                         sensor=sensor, protocol=protocol, hflip=float(d.hflip) if train else 0.0)


def ensure_synthetic_events(cfg: Any) -> None:
    """Generate the synthetic event set when ``data.synthetic_train > 0``: into the parent of the
    first training set's folder (``gen1:NAME/train`` -> ``NAME/``), which then holds ``train/`` and
    ``test/``. Same rules as :func:`spyolo.data.build.ensure_synthetic` (other data is refused)."""
    d = cfg.data
    if d.synthetic_train <= 0:
        return
    from spyolo.events.synthetic import event_provenance, event_synthetic_settings, generate_synthetic_events

    folder = parse_event_sets(d.train_sets[:1], d.root)[0].folder
    if folder.name != "train":
        raise ConfigError(f"data.synthetic_train > 0 with event sets writes NAME/train and NAME/test: the first "
                         f"training set must be 'gen1:NAME/train', got {d.train_sets[0]!r}")
    out: Path = folder.parent
    settings = event_synthetic_settings(d)
    wanted = event_provenance(d.synthetic_train, d.synthetic_test, d.synthetic_seed, **settings)
    if ensure_generated(out, wanted, d.synthetic_train, lambda: generate_synthetic_events(
            out, d.synthetic_train, d.synthetic_test, d.synthetic_seed, overwrite=True, **settings)):
        log.info("generated a synthetic event dataset in %s (%d train, %d test recordings, seed %d)",
                 out, d.synthetic_train, d.synthetic_test, d.synthetic_seed)


def build_dataset(cfg: Any, train: bool) -> Any:
    """The training (``train=True``) or test dataset of a full config.

    Event sets: an :class:`~spyolo.events.dataset.EventDetectionDataset` (the synthetic event set
    generated first when asked); image sets: :func:`spyolo.data.build.build_dataset` of
    ``cfg.data``.
    """
    if not uses_events(cfg.data):
        return build_image_dataset(cfg.data, train)
    d = cfg.data
    ensure_synthetic_events(cfg)
    train_sets = parse_event_sets(d.train_sets, d.root)
    test_sets = parse_event_sets(d.test_sets, d.root)
    names = event_class_names(d.classes, train_sets + test_sets)
    return EventDetectionDataset(train_sets if train else test_sets, names, event_settings(cfg, train), train,
                                 keep_difficult=d.keep_difficult, skip_bad=d.skip_bad, verify=d.verify_images)
