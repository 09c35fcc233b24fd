"""Reading images: files, numpy arrays and PIL images, all to RGB uint8 ``(H, W, 3)``.

One reader and one policy for training, evaluation and inference: a missing, unreadable,
corrupt or truncated file is an :class:`~spyolo.errors.ImageReadError` naming the file
(datasets turn it into a skipped sample under ``data.skip_bad``). Greyscale (2-D or one
channel) becomes three equal channels, an alpha channel is dropped, 16-bit images are scaled
to 8 bits (``round(v / 257)``) and float images are read as values in ``[0, 1]``.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np

from spyolo.errors import ImageReadError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "ImageInput",
    "ImageReadError",
    "check_image_file",
    "read_image",
    "read_image_file",
    "to_rgb_uint8",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File suffixes treated as images (by the demo's folder mode)."""

MAX_IMAGE_PIXELS = 2**27
"""The largest image (width x height, 134 megapixels) :func:`read_image_file` decodes; a
100-megapixel camera's photo passes. A larger file, or one that is a decompression bomb (a small
PNG whose header claims 20000x20000 pixels), is refused before decoding: OpenCV would first take
about 11 bytes per pixel (4.4 GB for 20000x20000)."""

ImageInput = str | Path | np.ndarray | Any
"""A path, a numpy image or a PIL image."""


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


_PADDING = b"\x00\r\n\t "  # what some writers add after an image's last byte
_JPEG_END = b"\xff\xd9"  # the end-of-image marker
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: a PNG's last 8 bytes


def _is_jpeg(head: bytes) -> bool:
    return head[:2] == b"\xff\xd8"  # start-of-image


def _is_png(head: bytes) -> bool:
    return head[:8] == b"\x89PNG\r\n\x1a\n"


def _missing_end(head: bytes, tail: bytes) -> str | None:
    """What is missing at the end of a JPEG or PNG file (its first and last bytes), or None.

    Some decoders fill the missing part of a truncated file with grey and only print a warning;
    training on such an image would be silently wrong. Zero bytes and whitespace after the end
    (padding some writers add) are allowed.
    """
    tail = tail.rstrip(_PADDING)
    if _is_jpeg(head) and not tail.endswith(_JPEG_END):
        return "truncated JPEG (the end-of-image marker is missing)"
    if _is_png(head) and not tail.endswith(_PNG_END):
        return "truncated PNG (the IEND chunk is missing)"
    return None


def _check_complete(data: np.ndarray, path: Path) -> None:
    """Refuse a JPEG or PNG without its end (a truncated file)."""
    problem = _missing_end(bytes(data[:8]), bytes(data[-65536:]))
    if problem is not None:
        raise ImageReadError(f"{path}: {problem}")


def _header_size(stream: IO[bytes]) -> tuple[int, int] | None:
    """``(width, height)`` from an image file's header (``stream`` at its start), without decoding
    its pixels; None when the header is not one Pillow reads (OpenCV's decoder then decides).
    ``(0, 0)``: Pillow's own decompression-bomb check refused it (more than twice its
    ``MAX_IMAGE_PIXELS``)."""
    head = stream.read(24)
    if _is_png(head) and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    from PIL import Image

    stream.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as image:  # reads the header only
                return image.size
        except Image.DecompressionBombError:
            return 0, 0
        except Exception:  # not a format Pillow knows, or a damaged header
            return None


def _check_dimensions(size: tuple[int, int], path: Path) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS or width * height == 0:
        what = f"{width}x{height} pixels" if width * height else "a decompression bomb (Pillow's check)"
        raise ImageReadError(f"{path}: the image is {what}, more than the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                             f"spyolo decodes (MAX_IMAGE_PIXELS); downscale it first")


def _not_a_file(path: Path) -> ImageReadError:
    return ImageReadError(f"{path}: image file not found" if not path.exists() else f"{path}: not a file")


def read_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 ``(H, W, 3)``: the one image reader of spyolo.

    Used by the datasets (training and evaluation), the :class:`~spyolo.inference.Detector`
    and the demo. The file is decoded with OpenCV keeping its depth and channels (16-bit,
    alpha, greyscale), then converted by :func:`to_rgb_uint8`. EXIF orientation is ignored,
    so pixels match annotations made on the stored pixel grid.

    Raises:
        ImageReadError: naming the file, when it is missing, unreadable, not an image,
            corrupt or truncated, or larger than :data:`MAX_IMAGE_PIXELS` (checked on the header,
            before decoding).
    """
    path = Path(path)
    if not path.is_file():
        raise _not_a_file(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes), not an image")
    _check_complete(data, path)
    size = _header_size(io.BytesIO(data.tobytes()))
    if size is not None:
        _check_dimensions(size, path)
    import cv2  # here: reading annotations and headers needs no OpenCV

    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ImageReadError(f"{path}: cannot decode image (corrupt, truncated or not an image)")
    return to_rgb_uint8(image, rgb=False, where=str(path))


_TAIL = 4096  # bytes read from a file's end to find its end marker (up to 64 KiB when all padding)


def check_image_file(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, checked without decoding its pixels.

    The cheap form of :func:`read_image_file`'s checks, for a dataset's start-up: the file exists
    and is not empty, a JPEG ends with its end-of-image marker and a PNG with its ``IEND`` chunk,
    the header gives a size within :data:`MAX_IMAGE_PIXELS`. It reads the header and the last few
    KiB. A file whose header Pillow cannot read is decoded whole with OpenCV (the reader's own
    fallback); one neither reads is refused. The size is that of the stored pixel grid (EXIF
    orientation ignored, as the reader does). A file damaged in the middle of its compressed data
    passes (only a full decode finds that: ``data.verify_images``).

    Raises:
        ImageReadError: naming the file and the problem, with :func:`read_image_file`'s messages.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ImageReadError(f"{path}: empty file (0 bytes), not an image")
            head = f.read(32)
            tail = b""
            for span in (_TAIL, 65536):
                f.seek(max(0, size - span))
                tail = f.read()
                if tail.rstrip(_PADDING) or span >= size:
                    break
            problem = _missing_end(head, tail)
            if problem is not None:
                raise ImageReadError(f"{path}: {problem}")
            f.seek(0)
            dimensions = _header_size(f)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise _not_a_file(path) from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if dimensions is None:  # not a header Pillow reads: OpenCV decides, as when reading
        height, width = read_image_file(path).shape[:2]
        return width, height
    _check_dimensions(dimensions, path)
    return dimensions


def read_image(source: ImageInput, rgb: bool = False) -> np.ndarray:
    """Load one input (path, numpy array or PIL image) as RGB uint8 ``(H, W, 3)``.

    Paths go through :func:`read_image_file`; ``rgb`` only concerns numpy inputs (BGR by
    default, as OpenCV gives them).

    Raises:
        ImageReadError: naming the file (or the input's type) and the problem.
    """
    if isinstance(source, (str, Path)):
        return read_image_file(source)
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source, rgb=rgb, where="numpy image")
    if _is_pil_image(source):
        return _pil_to_rgb_uint8(source, where="PIL image")
    raise ImageReadError(
        f"unsupported input of type {type(source).__name__}; expected a path, a numpy array or a PIL image"
    )
