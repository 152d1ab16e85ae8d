"""A run's pixel budget: how many decoded pixels its workers may hold at once.

Every worker decodes its image in full (and the encoder makes a resized copy), so a folder of
huge-but-legal images at full concurrency can take gigabytes. A run therefore reads each
image's size from its header first and lets a worker start an item only while the pixels of
the items in flight stay under the budget; an image larger than the whole budget runs alone.
Images beyond Pillow's decompression-bomb *warning* limit are named in vlmkit's own warning.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from vlmkit.runtime import RequestWithdrawn

__all__ = ["DEFAULT_PIXEL_BUDGET", "PixelBudget", "image_pixels"]

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
    def hold(self, pixels: int, stop: threading.Event) -> Iterator[None]:
        """Wait until ``pixels`` fit, hold them for the block; raise
        :class:`~vlmkit.runtime.RequestWithdrawn` if the run stops meanwhile."""
        pixels = min(max(int(pixels), 0), self.limit)  # a larger image runs alone
        with self._cond:
            while self.in_flight and self.in_flight + pixels > self.limit:
                if stop.is_set():
                    raise RequestWithdrawn("the run is stopping: this item was not started")
                self._cond.wait(0.1)
            self.in_flight += pixels
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= pixels
                self._cond.notify_all()


def image_pixels(paths: Iterable[Path]) -> dict[Path, int]:
    """Width × height of each image, from its header (nothing is decoded); unreadable files
    count 0 (loading them fails with its own reason). Call it from one thread: it catches
    Pillow's ``DecompressionBombWarning`` to say which files are that large, in vlmkit's words.
    """
    from PIL import Image

    sizes: dict[Path, int] = {}
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            try:
                with Image.open(path) as opened:
                    width, height = opened.size
            except Exception:  # unreadable, a bomb beyond the error limit: loading says why
                sizes[path] = 0
                continue
        sizes[path] = width * height
        if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
            log.warning(
                "%s: %d × %d pixels is beyond Pillow's decompression-bomb warning limit (%s "
                "pixels); vlmkit decodes it as a trusted input, within the run's pixel budget",
                path,
                width,
                height,
                f"{Image.MAX_IMAGE_PIXELS:,}" if Image.MAX_IMAGE_PIXELS else "no",
            )
    return sizes
