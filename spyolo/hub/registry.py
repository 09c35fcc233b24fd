"""The named weights: what ``--weights NAME``, ``model.init_from=NAME`` and ``train.distill_from=NAME``
resolve (:func:`spyolo.hub.resolve_weights`), in one table, :data:`REGISTRY`.

Each entry names the files to download (their URL, checksum and size) and what to make of them:
``"sfptt"`` converts the authors' released SPYv4 state dict (:func:`spyolo.hub.convert.convert_sfptt`),
``"darknet"`` a Darknet ``.weights`` with its ``.cfg`` and ``.names``
(:func:`spyolo.hub.convert.convert_darknet`), ``"local"`` is a checkpoint that ships with the
repository (no download). A checksum is ``"<kind>:<hex digest>"`` with kind ``git-sha1`` (git's blob
hash, SHA-1 over ``b"blob <size>\\0"`` and the bytes: what a repository's history records), ``md5``
or ``sha256``; a downloaded file is used only when it matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["CHECKSUM_KINDS", "REGISTRY", "NamedWeights", "RemoteFile"]

CHECKSUM_KINDS: tuple[str, ...] = ("git-sha1", "md5", "sha256")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a named entry: where it comes from and how it is checked."""

    filename: str
    url: str
    checksum: str  # "<kind>:<hex digest>", kind in CHECKSUM_KINDS
    size: int | None = None  # bytes, when known (a file of another size is refused before hashing)

    @property
    def checksum_kind(self) -> str:
        return self.checksum.split(":", 1)[0]

    @property
    def digest(self) -> str:
        return self.checksum.split(":", 1)[1]

    def describe_checksum(self) -> str:
        """``git blob SHA-1 ab8277...``, ``MD5 8911bf...``, ``SHA-256 6cbf5e...``."""
        label = {"git-sha1": "git blob SHA-1", "md5": "MD5", "sha256": "SHA-256"}[self.checksum_kind]
        return f"{label} {self.digest}"


@dataclass(frozen=True)
class NamedWeights:
    """A named, pretrained detector.

    Attributes:
        name: what the user types (``sfptt-voc``).
        kind: ``"sfptt"``, ``"darknet"`` or ``"local"`` (see the module doc).
        summary: one line: the network, its training data and its classes.
        source: where the files come from (a repository and a path or release).
        licence: the licence the files are published under.
        size: download size for the listing (``"~56 MB"``: the exact size where the source states it).
        files: the files to download, the main one first.
        local: for ``"local"``: the checkpoint's path relative to the repository's root.
    """

    name: str
    kind: str
    summary: str
    source: str
    licence: str
    size: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)
    local: str | None = None


_SFPTT = "https://github.com/byin-cwi/sFPTT/raw/v1.0.0/fptt/yolo_demo_show/model/trained_weight_8step.pth"
_DARKNET_RELEASE = "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.weights"
_DARKNET_RAW = "https://raw.githubusercontent.com/AlexeyAB/darknet/master"

REGISTRY = MappingProxyType({entry.name: entry for entry in (
    NamedWeights(
        name="sfptt-voc",
        kind="sfptt",
        summary="the authors' SPYv4 (LTC, FPTT), trained on VOC07+12 trainval, T=8, 416 px, the 20 VOC classes",
        source="github.com/byin-cwi/sFPTT, tag v1.0.0, fptt/yolo_demo_show/model/trained_weight_8step.pth",
        licence="MIT (byin-cwi/sFPTT)",
        size="~56 MB",  # 13.96 M float32 parameters and BN statistics; the repository states no size
        files=(RemoteFile("trained_weight_8step.pth", _SFPTT, "git-sha1:ab827729380fbda06eea34e4dada7580be79408a"),),
    ),
    NamedWeights(
        name="yolov4-tiny-coco",
        kind="darknet",
        summary="the original Darknet YOLOv4-tiny (the ANN twin at width 1), trained on COCO, 416 px, 80 classes",
        source="github.com/AlexeyAB/darknet: release darknet_yolo_v4_pre (weights), cfg/ and data/ (cfg, names)",
        licence="YOLO licence (public domain; AlexeyAB/darknet)",
        size="24.3 MB",
        files=(
            RemoteFile("yolov4-tiny.weights", _DARKNET_RELEASE, "md5:8911bf808aed305d6854c4ea48fcc731", 24_251_276),
            RemoteFile("yolov4-tiny.cfg", f"{_DARKNET_RAW}/cfg/yolov4-tiny.cfg",
                       "sha256:6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e", 3_027),
            RemoteFile("yolov4-tiny.names", f"{_DARKNET_RAW}/data/coco.names",
                       "sha256:634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84", 625),
        ),
    ),
    NamedWeights(
        name="spyv4-synthetic",
        kind="local",
        summary="SPYv4 (LTC, FPTT) trained on spyolo's synthetic shapes, width 0.25, T=4, 160 px, 8 classes",
        source="this repository: weights/spyv4_synthetic.pt (weights/README.md)",
        licence="MIT (spyolo)",
        size="3.5 MiB",
        local="weights/spyv4_synthetic.pt",
    ),
)})
"""Every named entry by name, in the order ``spyolo weights`` lists them."""
