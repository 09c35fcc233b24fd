"""Every dataset kind spyolo reads, in one table: the only place that tells the kinds apart.

An entry of ``data.train_sets`` / ``data.test_sets`` is one set of one kind, chosen by its prefix:

=========  =============================  ===========================  =======  ===========================
kind       entry                          reader (its source type)     input    evaluation extras
=========  =============================  ===========================  =======  ===========================
``voc``    ``YEAR_FOLDER:SPLIT``          :mod:`spyolo.data.voc`       image    difficult objects ignored
``coco``   ``coco:FILE.json:IMAGE_DIR``   :mod:`spyolo.data.coco`      image    COCO mAP with the file's ids
``yolo``   ``yolo:DATA_FILE:SPLIT``       :mod:`spyolo.data.yolo`      image    (none)
``gen1``   ``gen1:FOLDER``                :mod:`spyolo.events.dataset`  events   the Gen1 protocol
=========  =============================  ===========================  =======  ===========================

(paths relative to ``data.root``, or absolute). A :class:`DatasetKind` says how to parse its
entry into a source, how to put another split into it (``spyolo eval --split``), which model
input reads it and which dataset reader serves it (one run reads one input: image kinds mix
freely, event sets only with event sets), its default classes when no set names any, and how to
write the synthetic set into it (``data.synthetic_train > 0``; :mod:`spyolo.datasets.synthetic`).
A source lists its samples and names its classes itself (:mod:`spyolo.data.samples`).

Config validation, dataset building, evaluation and the demo ask this table; no other module
tests prefixes (the architecture test checks it). Adding a kind is one table entry and its
reader module.

Everything here is light to import (the configuration uses it); readers load on use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from spyolo.errors import ConfigError, DatasetError

__all__ = ["KINDS", "DatasetKind", "Entry", "check_data_config", "class_names", "entry_files", "kind_of",
           "parse_entries", "parse_entry", "reader_kind", "reads_events", "with_split"]

PathLike = str | Path


@dataclass(frozen=True)
class DatasetKind:
    """One kind of dataset (see the module docstring).

    Attributes:
        name: short name (``voc``, ``coco``, ``yolo``, ``gen1``).
        title: how messages name its data (``VOC-style``, ``YOLO-layout``, ...).
        prefix: what its entries start with (``""``: the VOC year folder, the kind without one).
        form: its entry's form, for messages and documentation.
        example: an entry of this kind.
        input: the ``model.input`` that reads it (``image`` or ``events``).
        parse: ``parse(text after the prefix, data.root) -> source``; raises ``ValueError`` for a
            malformed entry (the message says what is wrong).
        with_split: ``with_split(text after the prefix, split) -> text with that split``.
        reader: ``reader(config, sources, class names, train) -> dataset``; kinds with the same
            reader mix in one run.
        default_classes: the classes when neither ``data.classes`` nor a set names them.
        synthesize: ``synthesize(data config, source)`` makes the folder of this first training
            source hold the synthetic set the config describes and returns whether it wrote it
            (:func:`spyolo.data.synthetic.ensure_generated`), or ``None`` (no generator).
        synthetic_settings: ``synthetic_settings(data config)`` checks the generator's settings
            (raises ``ValueError``).
    """

    name: str
    title: str
    prefix: str
    form: str
    example: str
    input: str
    parse: Callable[[str, Path], Any]
    with_split: Callable[[str, str], str]
    reader: Callable[[Any, list[Any], list[str], bool], Any]
    default_classes: Callable[[], list[str]]
    synthesize: Callable[[Any, Any], bool] | None = None
    synthetic_settings: Callable[[Any], Any] | None = None


class Entry(NamedTuple):
    """A parsed set entry: its text, kind and source."""

    text: str
    kind: DatasetKind
    source: Any


def _under(root: Path, text: str) -> Path:
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else root / path


def _split_last(text: str, what: str) -> tuple[str, str]:
    """``"PATH:SPLIT"`` -> ``(PATH, SPLIT)`` (the last colon splits: PATH may hold colons)."""
    path, sep, split = text.rpartition(":")
    if not sep or not path.strip() or not split.strip():
        raise ValueError(f"expected '{what}'")
    return path.strip(), split.strip()


# ---------------------------------------------------------------------- VOC year folders

def _parse_voc(text: str, root: Path) -> Any:
    from spyolo.data.voc import VOCSource

    year, split = _split_last(text, "YEAR_FOLDER:SPLIT")
    return VOCSource(_under(root, year), split)


def _voc_with_split(text: str, split: str) -> str:
    return f"{_split_last(text, 'YEAR_FOLDER:SPLIT')[0]}:{split}"


def _voc_classes() -> list[str]:
    from spyolo.data.voc import VOC_CLASSES

    return list(VOC_CLASSES)


def _image_settings(data: Any) -> Any:
    from spyolo.data.synthetic import synthetic_settings  # lazy: needs OpenCV

    return synthetic_settings(data)


def _synthesize_voc(data: Any, source: Any) -> bool:
    from spyolo.data.synthetic import ensure_generated, generate_synthetic_voc, provenance_for

    settings = _image_settings(data)
    wanted = provenance_for(data.synthetic_train, data.synthetic_test, data.synthetic_seed, **settings)
    return ensure_generated(source.year_dir, wanted, data.synthetic_train, lambda: generate_synthetic_voc(
        source.year_dir, data.synthetic_train, data.synthetic_test, data.synthetic_seed, overwrite=True,
        **settings))


# ---------------------------------------------------------------------- COCO files

def _parse_coco(text: str, root: Path) -> Any:
    from spyolo.data.coco import COCOSource

    annotations, sep, image_dir = text.partition(".json:")
    if not sep or not annotations.strip() or not image_dir.strip():
        raise ValueError("expected 'coco:ANNOTATIONS.json:IMAGE_DIR', e.g. "
                         "'coco:annotations/instances_val.json:images/val'")
    return COCOSource(_under(root, annotations + ".json"), _under(root, image_dir))


def _coco_with_split(text: str, split: str) -> str:
    raise ConfigError(f"a COCO entry names one annotation file (coco:{text}); a split cannot be put into it: "
                      f"name the file in data.test_sets instead")


# ---------------------------------------------------------------------- YOLO data files

def _parse_yolo(text: str, root: Path) -> Any:
    from spyolo.data.yolo import YOLOSource

    data_file, split = _split_last(text, "yolo:DATA_FILE:SPLIT', e.g. 'yolo:pets/data.yaml:train")
    return YOLOSource(_under(root, data_file), split)


def _yolo_with_split(text: str, split: str) -> str:
    return f"{_split_last(text, 'yolo:DATA_FILE:SPLIT')[0]}:{split}"


def _synthesize_yolo(data: Any, source: Any) -> bool:
    from spyolo.data.synthetic import ensure_generated, generate_synthetic_voc, provenance_for

    if source.data_file.name != "data.yaml":
        raise ConfigError(f"data.synthetic_train > 0 with a YOLO set writes FOLDER/data.yaml: the first training "
                          f"set must name a data.yaml, got {source.data_file}")
    folder = source.data_file.parent
    settings = _image_settings(data)
    wanted = provenance_for(data.synthetic_train, data.synthetic_test, data.synthetic_seed, layout="yolo",
                            **settings)
    return ensure_generated(folder, wanted, data.synthetic_train, lambda: generate_synthetic_voc(
        folder, data.synthetic_train, data.synthetic_test, data.synthetic_seed, overwrite=True, layout="yolo",
        **settings))


# ---------------------------------------------------------------------- image reader

def _image_reader(cfg: Any, sources: list[Any], names: list[str], train: bool) -> Any:
    from spyolo.data.dataset import DetectionDataset
    from spyolo.data.transforms import build_eval_transform, build_train_transform

    d = cfg.data
    if train:
        transform = build_train_transform(
            d.img_size, scale=(d.scale_min, d.scale_max), aspect_jitter=d.aspect_jitter, hflip=d.hflip, hue=d.hue,
            saturation=d.saturation, value=d.value, contrast=d.contrast, brightness_shift=d.brightness_shift,
        )
    else:
        transform = build_eval_transform(d.img_size, d.eval_resize, interpolation=d.eval_interpolation)
    return DetectionDataset(sources, names, transform=transform, keep_difficult=d.keep_difficult,
                            skip_bad=d.skip_bad, verify_images=d.verify_images, mosaic_prob=d.mosaic if train else 0.0)


# ---------------------------------------------------------------------- Gen1 event recordings

def _parse_gen1(text: str, root: Path) -> Any:
    from spyolo.events.sets import Gen1Source

    if not text.strip():
        raise ValueError("expected 'gen1:FOLDER', e.g. 'gen1:train'")
    return Gen1Source(_under(root, text))


def _gen1_with_split(text: str, split: str) -> str:
    parent = text.strip().rstrip("/").rpartition("/")[0]
    return f"{parent + '/' if parent else ''}{split}"


def _gen1_classes() -> list[str]:
    from spyolo.events.sets import GEN1_CLASSES

    return list(GEN1_CLASSES)


def _event_reader(cfg: Any, sources: list[Any], names: list[str], train: bool) -> Any:
    from spyolo.events.dataset import EventDetectionDataset, event_settings

    d = cfg.data
    return EventDetectionDataset(sources, names, event_settings(cfg, train), train, keep_difficult=d.keep_difficult,
                                 skip_bad=d.skip_bad, verify=d.verify_images)


def _event_settings(data: Any) -> Any:
    from spyolo.events.synthetic import event_synthetic_settings  # lazy: needs OpenCV

    return event_synthetic_settings(data)


def _synthesize_gen1(data: Any, source: Any) -> bool:
    from spyolo.data.synthetic import ensure_generated
    from spyolo.events.synthetic import event_provenance, generate_synthetic_events

    if source.folder.name != "train":
        raise ConfigError(f"data.synthetic_train > 0 with event sets writes NAME/train and NAME/test: the first "
                          f"training set must be 'gen1:NAME/train', got {source.folder}")
    out: Path = source.folder.parent
    settings = _event_settings(data)
    wanted = event_provenance(data.synthetic_train, data.synthetic_test, data.synthetic_seed, **settings)
    return ensure_generated(out, wanted, data.synthetic_train, lambda: generate_synthetic_events(
        out, data.synthetic_train, data.synthetic_test, data.synthetic_seed, overwrite=True, **settings))


# ---------------------------------------------------------------------- the table

KINDS: tuple[DatasetKind, ...] = (
    DatasetKind(name="coco", title="COCO", prefix="coco:", form="coco:ANNOTATIONS.json:IMAGE_DIR",
                example="coco:annotations/instances_val.json:images/val", input="image", parse=_parse_coco,
                with_split=_coco_with_split, reader=_image_reader, default_classes=_voc_classes),
    DatasetKind(name="yolo", title="YOLO-layout", prefix="yolo:", form="yolo:DATA_FILE:SPLIT",
                example="yolo:pets/data.yaml:train", input="image", parse=_parse_yolo, with_split=_yolo_with_split,
                reader=_image_reader, default_classes=_voc_classes, synthesize=_synthesize_yolo,
                synthetic_settings=_image_settings),
    DatasetKind(name="gen1", title="event", prefix="gen1:", form="gen1:FOLDER", example="gen1:train", input="events",
                parse=_parse_gen1, with_split=_gen1_with_split, reader=_event_reader, default_classes=_gen1_classes,
                synthesize=_synthesize_gen1, synthetic_settings=_event_settings),
    DatasetKind(name="voc", title="VOC-style", prefix="", form="YEAR_FOLDER:SPLIT", example="VOC2007:trainval",
                input="image", parse=_parse_voc, with_split=_voc_with_split, reader=_image_reader,
                default_classes=_voc_classes, synthesize=_synthesize_voc, synthetic_settings=_image_settings),
)
"""The kinds, those with a prefix first; the VOC year folder (no prefix) takes every other entry."""


def kind_of(entry: str) -> DatasetKind:
    """The kind of a set entry (by its prefix)."""
    text = str(entry).strip()
    return next(k for k in KINDS if text.startswith(k.prefix))


def _forms() -> str:
    return ", ".join(f"'{k.form}'" for k in KINDS)


def parse_entry(entry: str, root: PathLike) -> Entry:
    """One set entry as its kind and source.

    Raises:
        DatasetError: a malformed entry (naming it and the forms of every kind).
    """
    text = str(entry).strip()
    kind = kind_of(text)
    try:
        source = kind.parse(text[len(kind.prefix):], Path(root))
    except ValueError as exc:
        raise DatasetError(f"bad set entry {text!r}: {exc} (the entries are {_forms()})") from None
    return Entry(text, kind, source)


def parse_entries(entries: Sequence[str] | str, root: PathLike) -> list[Entry]:
    """Set entries (a list, or one comma-separated string) as kinds and sources, in order.

    Raises:
        DatasetError: no entry, or a malformed one.
    """
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    items = [str(s).strip() for s in items if str(s).strip()]
    if not items:
        raise DatasetError(f"no sets given (expected entries like 'VOC2007:trainval', got {entries!r})")
    return [parse_entry(s, root) for s in items]


def reader_kind(entries: Sequence[Entry]) -> DatasetKind:
    """The kind whose reader serves ``entries`` (the first's), checking that they all share it.

    Raises:
        ConfigError: entries of kinds with different readers (image sets with event sets).
    """
    first = entries[0].kind
    for entry in entries[1:]:
        if entry.kind.reader is not first.reader:
            raise ConfigError(f"data.train_sets and data.test_sets mix sets of model.input={first.input} "
                              f"({entries[0].text}) with sets of model.input={entry.kind.input} ({entry.text}); "
                              f"one run reads one kind of input")
    return first


def class_names(classes_file: PathLike | None, entries: Sequence[Entry]) -> list[str]:
    """The class list of a run: ``classes_file`` (one name a line; it must exist), else the first
    set that names classes (a VOC or Gen1 ``classes.txt``, a COCO file's categories, a YOLO data
    file's names), else the first set's kind's defaults (VOC's 20, Gen1's 2)."""
    from spyolo.data.voc import read_class_file

    if classes_file is not None:
        path = Path(classes_file)
        if not path.is_file():
            raise DatasetError(f"{path}: classes file not found")
        return read_class_file(path)
    for entry in entries:
        names = entry.source.declared_classes()
        if names is not None:
            return names
    return entries[0].kind.default_classes()


def with_split(entries: Sequence[str], split: str) -> list[str]:
    """The entries with ``split`` in place of their own: ``VOC2007:test`` -> ``VOC2007:val``,
    ``yolo:d/data.yaml:test`` -> ``yolo:d/data.yaml:val``, ``gen1:ROOT/test`` -> ``gen1:ROOT/val``.

    Raises:
        ConfigError: an entry without a split (a COCO file) or a malformed one.
    """
    out = []
    for entry in entries:
        text = str(entry).strip()
        kind = kind_of(text)
        try:
            out.append(kind.prefix + kind.with_split(text[len(kind.prefix):], split))
        except ValueError:
            raise ConfigError(f"data.test_sets entry {text!r} is not of the form {kind.form}") from None
    return out


def reads_events(cfg: Any) -> bool:
    """Whether the config's model reads event frames (``model.input`` of the event kinds)."""
    return any(k.input == cfg.model.input for k in KINDS if k.reader is _event_reader)


def check_data_config(cfg: Any, where: str) -> None:
    """The configuration's checks of its sets (:func:`spyolo.config.validate`): every entry parses,
    one run reads one input, ``model.input`` is the sets' input, and the synthetic generator's
    settings are valid for the first training set's kind.

    Raises:
        ConfigError: naming ``where`` and the key.
    """
    d = cfg.data
    try:
        train = parse_entries(d.train_sets, d.root)
        test = parse_entries(d.test_sets, d.root)
        kind = reader_kind(train + test)
    except (DatasetError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if cfg.model.input != kind.input:
        raise ConfigError(f"{where}: model.input={cfg.model.input} but the data sets are {kind.input} sets "
                          f"({train[0].text}): set model.input={kind.input}")
    first = train[0].kind
    if d.synthetic_train > 0 and first.synthesize is None:
        generated = ", ".join(k.form for k in KINDS if k.synthesize is not None)
        raise ConfigError(f"{where}: data.synthetic_train > 0 writes the synthetic set into the first training set, "
                          f"which must be one of {generated}; got {train[0].text}")
    if first.synthetic_settings is not None and (d.synthetic_train > 0 or d.synthetic_spec or d.synthetic_classes):
        try:
            first.synthetic_settings(d)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


def entry_files(entry: str, root: PathLike) -> tuple[str, list[Path]]:
    """The input kind (``image`` or ``events``) and files of a set entry: its images in order, or its
    event recordings (for the demo).

    Raises:
        DatasetError: a malformed entry, or a set that cannot be listed.
    """
    parsed = parse_entry(entry, root)
    source = parsed.source
    if parsed.kind.reader is _event_reader:
        return parsed.kind.input, source.recordings()
    names = source.declared_classes() or []
    return parsed.kind.input, [sample.image for sample in source.list_samples(names).samples]
