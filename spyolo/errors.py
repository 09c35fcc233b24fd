"""The exceptions spyolo raises for problems a user can fix.

Every one derives from :class:`SpyoloError`, so a program (or the ``spyolo`` command) can
catch the whole family in one place and print its one-line message. Each also derives from
the built-in exception that describes its kind (``ValueError`` for bad input,
``RuntimeError`` for a failed run), so ``except ValueError`` keeps working.

Messages name the file, key or value at fault and say what would be right.
"""

from __future__ import annotations

__all__ = [
    "SpyoloError",
    "ConfigError",
    "DatasetError",
    "ImageReadError",
    "CheckpointError",
    "TransferError",
    "DownloadError",
    "TextFormatError",
    "VideoError",
    "EventFileError",
    "TrainingDiverged",
    "RunFolderError",
    "FileWriteError",
]


class SpyoloError(Exception):
    """Base class of every error spyolo raises on purpose (bad input, a failed run)."""


class ConfigError(SpyoloError, ValueError):
    """A configuration file or ``section.key=value`` override is invalid."""


class DatasetError(SpyoloError, ValueError):
    """A problem with a dataset on disk; the message names the file or folder."""


class ImageReadError(SpyoloError, ValueError):
    """An image is missing, unreadable, corrupt, truncated, or of an unsupported shape or type."""


class CheckpointError(SpyoloError, RuntimeError):
    """A checkpoint file is missing, unreadable, not a spyolo checkpoint, or does not fit its model."""


class TransferError(SpyoloError, ValueError):
    """Weights cannot be transferred from a source into a model (names the key and both shapes)."""


class DownloadError(SpyoloError, RuntimeError):
    """Named weights cannot be fetched: the download failed or was cut short, or a file does not match
    its checksum (names the URL, the expected checksum and where to put the file by hand)."""


class TextFormatError(SpyoloError, ValueError):
    """A detection or ground-truth text file has a malformed line (names the file and line)."""


class VideoError(SpyoloError, RuntimeError):
    """A video source cannot be opened or an output video cannot be written."""


class EventFileError(SpyoloError, ValueError):
    """An event-camera file (Gen1 ``.dat`` or ``_bbox.npy``, Prophesee EVT 2.0/3.0 ``.raw``) is
    missing, has a wrong header, is truncated, has events out of time order or boxes off the sensor."""


class TrainingDiverged(SpyoloError, RuntimeError):
    """The training loss or the weights became NaN or infinite."""


class RunFolderError(SpyoloError, RuntimeError):
    """A run folder cannot be created or written, or would overwrite an earlier run."""


class FileWriteError(SpyoloError, OSError):
    """A file cannot be written (a full disk, no permission, a folder in its place).

    ``FileWriteError(errno, reason, filename, consequence)``: ``filename`` is the destination,
    ``strerror`` the reason (the operating system's), ``consequence`` what it left (the previous
    file unchanged, or nothing written).
    """

    def __init__(self, errno: int | None, strerror: str, filename: str | None = None,
                 consequence: str = "the previous file is unchanged") -> None:
        super().__init__(errno, strerror, filename)
        self.consequence = consequence

    def __str__(self) -> str:
        return f"{self.filename}: cannot write this file ({self.strerror}); {self.consequence}"
