"""Build VOC datasets from a :class:`spyolo.config.DataConfig`.

Only attribute access is used on the config, so any object with the fields listed in
:func:`build_dataset` works.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spyolo.data.dataset import DetectionDataset, VOCSource, load_class_names, parse_sets
from spyolo.data.transforms import build_eval_transform, build_train_transform
from spyolo.errors import ConfigError

log = logging.getLogger(__name__)


def ensure_synthetic(cfg: Any) -> None:
    """Generate the synthetic VOC-style dataset when the config asks for one.

    When ``cfg.synthetic_train > 0``, the year folder of the first train set
    (``cfg.root/<year>``) must hold the synthetic set the config describes
    (``synthetic_train``, ``synthetic_test``, ``synthetic_seed`` and the generator settings
    ``synthetic_classes``, ``synthetic_min_side``, ``synthetic_max_side``,
    ``synthetic_spec``), completely generated. A missing set is generated; a set this
    generator wrote with other settings (its ``synthetic_spec.json`` differs), or whose
    generation was interrupted (no completion marker), is regenerated in place; a
    non-empty folder without that record is refused (it may be a user's data). One line is
    logged when something is generated. Otherwise nothing happens.

    Raises:
        FileExistsError: the folder holds data the generator did not write.
        ValueError: invalid generator settings.
    """
    if cfg.synthetic_train <= 0:
        return
    from spyolo.data.synthetic import generate_synthetic_voc, provenance_for, synthetic_settings

    first = parse_sets(cfg.train_sets, cfg.root)[0]
    if not isinstance(first, VOCSource):
        raise ConfigError("data.synthetic_train > 0 needs a VOC year folder as the first training set "
                         f"(the generator writes one), got {cfg.train_sets[0]!r}")
    year_dir = first.year_dir
    settings = synthetic_settings(cfg)
    wanted = provenance_for(cfg.synthetic_train, cfg.synthetic_test, cfg.synthetic_seed, **settings)
    if ensure_generated(year_dir, wanted, cfg.synthetic_train, lambda: generate_synthetic_voc(
            year_dir, cfg.synthetic_train, cfg.synthetic_test, cfg.synthetic_seed, overwrite=True, **settings)):
        log.info(
            "generated a synthetic VOC-style dataset in %s (%d train, %d test images, seed %d)",
            year_dir, cfg.synthetic_train, cfg.synthetic_test, cfg.synthetic_seed,
        )


def ensure_generated(folder: Path, wanted: dict, n_train: int, generate: Callable[[], Any]) -> bool:
    """Make ``folder`` hold the generated set whose provenance record is ``wanted``.

    Nothing happens when it does (complete); ``generate()`` runs when the folder is missing,
    empty, written by a generator with other settings, or left unfinished. Returns whether it ran.
    Processes that start on the same folder at once (two trainings launched together on a fresh
    clone) take turns: the first generates, the others wait for it and then find the set complete.

    Raises:
        FileExistsError: the folder holds other data (no provenance record): never replaced.
    """
    with _generation_lock(folder):
        return _ensure_generated(folder, wanted, n_train, generate)


@contextlib.contextmanager
def _generation_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<folder name>.lock`` beside ``folder`` (POSIX ``flock``).

    The lock file is created once and left in place (removing it would let a third process lock a
    new file while a second still holds the old one). Where ``fcntl`` is missing (Windows) there is
    no lock and concurrent first runs must be avoided by the user.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _ensure_generated(folder: Path, wanted: dict, n_train: int, generate: Callable[[], Any]) -> bool:
    from spyolo.data.synthetic import is_complete, read_provenance

    found = read_provenance(folder)
    if found == wanted and is_complete(folder):
        return False
    if folder.is_dir() and any(folder.iterdir()) and found is None:
        raise FileExistsError(
            f"{folder}: the config asks for a generated synthetic set here (data.synthetic_train="
            f"{n_train}) but the folder holds other data (no synthetic_spec.json); "
            f"point data.root elsewhere or set data.synthetic_train=0 to use the data as it is"
        )
    if found is not None:
        changed = sorted(k for k in set(wanted) | set(found) if wanted.get(k) != found.get(k))
        reason = (f"with other settings ({', '.join(changed)})" if changed
                  else "only in part (an earlier generation was interrupted)")
        log.info("%s was generated %s; regenerating it", folder, reason)
    generate()
    return True


def build_dataset(cfg: Any, train: bool) -> DetectionDataset:
    """The training (``train=True``) or test dataset described by ``cfg``.

    Uses ``cfg.root``, ``cfg.train_sets`` / ``cfg.test_sets`` (``"<year>:<split>"`` or
    ``"coco:<annotations>.json:<image folder>"`` entries), ``cfg.classes`` (a classes file or
    ``None``; else the first ``classes.txt`` or COCO categories of the train then test sets,
    else the 20 VOC classes, so that train and test always agree), ``cfg.img_size``, ``cfg.keep_difficult``,
    ``cfg.skip_bad``, ``cfg.verify_images``; for training the augmentation fields
    ``scale_min``, ``scale_max``, ``aspect_jitter``, ``hflip``, ``hue``,
    ``saturation``, ``value``, ``contrast``, ``brightness_shift`` and ``mosaic`` (a probability); for testing
    ``eval_resize`` (``"stretch"`` or ``"letterbox"``). Calls :func:`ensure_synthetic`
    first.
    """
    ensure_synthetic(cfg)
    train_sets = parse_sets(cfg.train_sets, cfg.root)
    test_sets = parse_sets(cfg.test_sets, cfg.root)
    class_names = load_class_names(cfg.classes, train_sets + test_sets)
    if train:
        transform = build_train_transform(
            cfg.img_size,
            scale=(cfg.scale_min, cfg.scale_max),
            aspect_jitter=cfg.aspect_jitter,
            hflip=cfg.hflip,
            hue=cfg.hue,
            saturation=cfg.saturation,
            value=cfg.value,
            contrast=cfg.contrast,
            brightness_shift=cfg.brightness_shift,
        )
    else:
        transform = build_eval_transform(cfg.img_size, cfg.eval_resize, interpolation=cfg.eval_interpolation)
    return DetectionDataset(
        train_sets if train else test_sets,
        class_names,
        transform=transform,
        keep_difficult=cfg.keep_difficult,
        skip_bad=cfg.skip_bad,
        verify_images=cfg.verify_images,
        mosaic_prob=cfg.mosaic if train else 0.0,
    )
