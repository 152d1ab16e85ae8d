"""Checking an upright JPEG without keeping its decoded pixels.

:func:`vlmkit.load_image` checks every image it loads by decoding it, so that a corrupt or
truncated file is refused when it is loaded, not by the model. For an upright RGB or grayscale
JPEG — most photos and datasets — the full-size pixels are often never needed: an API backend
sends the file's own bytes and maps its answer with the size from the header. With
``decode="on_use"`` (what a Session asks for when its backend declares ``sends_image_files``)
the check decodes at one eighth of the size (libjpeg's DCT scaling: every byte of the
entropy-coded data is still read, so a damaged file fails as a full decode fails — 2,700 random
damages, 4,096 sampling-factor patches and sizes of 1-19 pixels agreed; 12 MP: 10.5 against
44 ms of CPU, and 0.6 instead of 36 MB), and the image handed over decodes its full pixels the
first time something uses them: once, under a lock, so that threads that use the same image at
once all get them (a lazily opened Pillow image alone is not safe so). A JPEG the check cannot
decode — a damaged one, or a lossless one, which libjpeg decodes only at full scale — is left
to the full decode, which refuses the first and reads the second.

Where such a JPEG is to be sent smaller — a backend's :class:`~vlmkit.ResizePolicy` halves it
or more — :func:`resized_jpeg` decodes a separate copy at 1/2, 1/4 or 1/8 scale, the most that
still leaves at least the target size, and resizes that (Pillow's ``draft``, as its
``thumbnail`` does); the image's full pixels are never decoded (a 12 MP photo loaded, resized
to 1536 px and encoded: 2.0-2.2x less CPU, to 768 px 3.2x; docs/benchmarks.md).
"""

from __future__ import annotations

import io
import threading
from typing import Any, cast

from PIL import Image, JpegImagePlugin

from vlmkit.errors import MediaError

__all__ = ["checked_upright_jpeg", "reducible", "resized_jpeg"]

_ORIENTATION_TAG = 0x0112
_SCALE = 8


class _JpegDecodedOnUse(JpegImagePlugin.JpegImageFile):
    """A JPEG whose pixels are decoded on first use, by one thread while the others wait; a
    decode that fails then (out of memory) is a :class:`~vlmkit.errors.MediaError`."""

    source = "<image>"
    _decode_lock: threading.Lock

    @classmethod
    def adopt(cls, opened: JpegImagePlugin.JpegImageFile, source: str) -> _JpegDecodedOnUse:
        """``opened`` (not loaded) turned into one, as Pillow turns a JPEG it opened into an
        MPO (``MpoImageFile.adopt``): its header is not parsed again (about 23 µs of CPU per
        image, in the GIL every request of a run shares; issue 16)."""
        opened.__class__ = cls
        image = cast("_JpegDecodedOnUse", opened)
        image._decode_lock = threading.Lock()
        image.source = source
        return image

    def load(self) -> Any:
        if not self.tile:  # decoded already, or closed (Pillow says so)
            return super().load()
        with self._decode_lock:
            try:
                return super().load()
            except (OSError, MemoryError, SyntaxError) as err:
                raise MediaError(
                    f"{self.source}: cannot decode the image's pixels ({type(err).__name__}: "
                    f"{err}); check it with vlmkit.load_image({self.source!r})",
                    source=self.source,
                ) from err


def checked_upright_jpeg(opened: Image.Image, data: bytes, source: str) -> Image.Image | None:
    """``opened`` (``data``, named ``source``, opened by Pillow and not loaded) made an image
    whose pixels are decoded on first use — the same object, so the caller must not close it —
    once it is found to be an upright RGB or L JPEG and ``data`` decodes whole at 1/8 scale;
    None for any other image, and for a JPEG that does not decode so (the caller's full decode
    then refuses it, or reads a lossless one); ``opened`` is then left as it is."""
    if type(opened) is not JpegImagePlugin.JpegImageFile or opened.mode not in ("RGB", "L"):
        return None
    if opened.getexif().get(_ORIENTATION_TAG, 1) in range(2, 9):
        return None  # turned upright from its full pixels
    width, height = opened.size
    try:
        with JpegImagePlugin.JpegImageFile(io.BytesIO(data)) as check:
            check.draft(opened.mode, (max(1, width // _SCALE), max(1, height // _SCALE)))
            check.load()
    except Exception:  # the full decode says what is wrong, as before
        return None
    return _JpegDecodedOnUse.adopt(opened, source)


def reducible(original: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether a JPEG of ``original`` size is resized to ``size`` from a decode at reduced
    scale: ``size`` is at most half of it in both directions, and not tiny (libjpeg's 1/8
    scale makes each pixel of a few-pixel result from a whole 8×8 block)."""
    return 2 * size[0] <= original[0] and 2 * size[1] <= original[1] and min(size) >= 16


def resized_jpeg(
    image: Image.Image, data: bytes | None, size: tuple[int, int]
) -> Image.Image | None:
    """``image`` resized to ``size`` from a decode of ``data`` (its file) at reduced scale, when
    ``image`` came from :func:`checked_upright_jpeg` and is :func:`reducible` to ``size``; None
    otherwise (resize the full pixels then). The region resized is the exact extent of the
    original in the reduced decode (its last row and column of pixels can cover part of a
    block), so the result lines up with the full path's. A copy is decoded: ``image`` is left
    as it is and decodes in full if something uses it, and whether it did first does not
    change the result."""
    if not isinstance(image, _JpegDecodedOnUse) or data is None or not reducible(image.size, size):
        return None
    try:
        with JpegImagePlugin.JpegImageFile(io.BytesIO(data)) as reduced:
            drafted = reduced.draft(image.mode, size)
            if drafted is None:
                return None
            return reduced.resize(size, Image.Resampling.LANCZOS, box=drafted[1], reducing_gap=3.0)
    except Exception:  # the full pixels then, whose decode says what is wrong
        return None
