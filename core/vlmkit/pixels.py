"""A run's pixel budget: how many decoded pixels its workers may hold at once.

Every worker may decode its image in full (and the encoder makes a resized copy), so a folder of
huge-but-legal images at full concurrency can take gigabytes. A run's worker therefore reads
its item's size from the image's header (:func:`header_pixels`, nothing decoded) and starts it
only while the pixels of the items in flight stay under the budget; an image larger than the
whole budget runs alone. The headers are read as the items are taken, not all before the first
request: a million-image run neither waits for a million header reads nor holds their sizes.
Images beyond Pillow's decompression-bomb *warning* limit are named in vlmkit's own warning.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from vlmkit.imagefile import header_size
from vlmkit.runtime import RequestWithdrawn

__all__ = [
    "DEFAULT_PIXEL_BUDGET",
    "Held",
    "PixelBudget",
    "header_pixels",
    "image_pixels",
    "size_pixels",
]

log = logging.getLogger(__name__)

#: 200 megapixels: about 600 MB of decoded RGB in flight, whatever the concurrency
DEFAULT_PIXEL_BUDGET = 200_000_000


class PixelBudget:
    """Admits items while the pixels in flight stay under ``limit`` (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.in_flight = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int, stop: threading.Event) -> Iterator[Held]:
        """Wait until ``pixels`` fit, hold them for the block (or until :meth:`Held.release`);
        raise :class:`~vlmkit.runtime.RequestWithdrawn` if the run stops meanwhile."""
        pixels = min(max(int(pixels), 0), self.limit)  # a larger image runs alone
        with self._cond:
            while self.in_flight and self.in_flight + pixels > self.limit:
                if stop.is_set():
                    raise RequestWithdrawn("the run is stopping: this item was not started")
                self._cond.wait(0.1)
            self.in_flight += pixels
            self.peak = max(self.peak, self.in_flight)
        held = Held(self, pixels)
        try:
            yield held
        finally:
            held.release()

    def _give_back(self, pixels: int) -> None:
        with self._cond:
            self.in_flight -= pixels
            self._cond.notify_all()


class Held:
    """Pixels held in a :class:`PixelBudget`; :meth:`release` gives them back (once)."""

    def __init__(self, budget: PixelBudget, pixels: int) -> None:
        self._budget = budget
        self._pixels = pixels
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            pixels, self._pixels = self._pixels, 0
        if pixels:
            self._budget._give_back(pixels)


def header_pixels(path: str | Path) -> int:
    """Width × height of an image, from its header (nothing is decoded); 0 for an unreadable
    file (loading it fails with its own reason). See :func:`size_pixels` for the warning."""
    return size_pixels(header_size(path), path)


def size_pixels(size: tuple[int, int] | None, name: str | Path) -> int:
    """Width × height of a header's ``size`` (0 when unknown). An image beyond Pillow's
    decompression-bomb warning limit is named in vlmkit's words. Safe from any thread: no
    warning filter is touched (Pillow's own warning goes where the process sends warnings;
    ``vlmkit label`` ignores it)."""
    from PIL import Image

    if not size:
        return 0
    width, height = size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:  # where Pillow warns
        log.warning(
            "%s: %d × %d pixels is beyond Pillow's decompression-bomb warning limit (%s "
            "pixels); vlmkit decodes it as a trusted input, within the run's pixel budget",
            name,
            width,
            height,
            f"{limit:,}",
        )
    return int(width * height)


def image_pixels(paths: Iterable[Path]) -> dict[Path, int]:
    """:func:`header_pixels` of each image, with Pillow's ``DecompressionBombWarning`` held
    back (vlmkit's own says which files are that large). Call it from one thread: warning
    filters belong to the whole process."""
    from PIL import Image

    sizes: dict[Path, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for path in paths:
            sizes[path] = header_pixels(path)
    return sizes
