"""Fonts for drawn labels in any script: :func:`find_font` finds a TrueType/OpenType font that
really has the glyphs (checked by drawing them, not trusted by file name) in the system font
folders, Ultralytics' settings folder and pip-installed packages, and falls back to DejaVu Sans
(Latin, Greek, Cyrillic, Arabic, Hebrew; no CJK). Used by the ``annotate`` sink
(:mod:`vlmkit.sinks.annotate`, whose docstring lists the fonts it looks for).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import site
import sys
from pathlib import Path
from typing import Any

__all__ = ["find_font", "has_glyph", "needs_cjk", "split_cjk"]

# Hangul Jamo, CJK radicals .. CJK unified ideographs (kana, bopomofo, symbols included),
# Hangul syllables, compatibility ideographs, full-width forms, supplementary ideographs.
_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef\U00020000-\U0003134f]"
)
# Known CJK fonts by lower-case file name, best first; then any font whose name matches
# _CJK_NAME. Every candidate is checked for real glyphs before it is used.
_CJK_FONTS = (
    "notosanscjk-regular.ttc",
    "notosanscjksc-regular.otf",
    "notosanscjkjp-regular.otf",
    "notosanscjktc-regular.otf",
    "notosanscjkkr-regular.otf",
    "notosanscjk-regular.otf",
    "notoserifcjk-regular.ttc",
    "sourcehansans-regular.ttc",
    "sourcehansanssc-regular.otf",
    "sourcehansanscn-regular.otf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "droidsansfallbackfull.ttf",
    "droidsansfallback.ttf",
    "arial.unicode.ttf",
    "arial unicode.ttf",
    "arialuni.ttf",
    "uming.ttc",
    "pingfang.ttc",
    "hiragino sans gb.ttc",
    "msyh.ttc",
    "simhei.ttf",
    "yugothm.ttc",
    "msgothic.ttc",
    "malgun.ttf",
    "ipaexg.ttf",
    "ipag.ttf",
    "nanumgothic.ttf",
    "nanumbarungothic.ttf",
)
_CJK_NAME = re.compile(
    r"cjk|sourcehan|wqy|droidsansfallback|notosans(sc|tc|hk|jp|kr)|notoserif(sc|tc|jp|kr)|"
    r"ipaex|ipag|ipam|nanum|simhei|simsun|simfang|msyh|msgothic|yugoth|malgun|pingfang|"
    r"hiragino|arial.?unicode|arialuni|uming|ukai"
)
_FONT_SUFFIXES = (".ttf", ".ttc", ".otf")


def _ultralytics_dirs() -> tuple[str, ...]:
    """Where Ultralytics keeps ``Arial.Unicode.ttf`` (its settings folder, per platform)."""
    dirs = [
        os.environ.get("YOLO_CONFIG_DIR", ""),
        "~/.config/Ultralytics",
        "~/Library/Application Support/Ultralytics",
    ]
    if os.environ.get("APPDATA"):
        dirs.append(os.path.join(os.environ["APPDATA"], "Ultralytics"))
    return tuple(d for d in dirs if d)


_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/System/Library/Fonts",
    "/Library/Fonts",
    "~/Library/Fonts",
    "C:/Windows/Fonts",
    *_ultralytics_dirs(),
)


def split_cjk(word: str) -> list[str]:
    """Split a word at every CJK character (each may end a line), keeping other runs whole."""
    return [part for part in re.split(f"({_CJK.pattern})", word) if part]


def needs_cjk(text: str) -> bool:
    """Whether ``text`` has Chinese, Japanese or Korean characters."""
    return bool(_CJK.search(text))


def _site_dirs() -> tuple[str, ...]:
    """The folders pip installs packages into (site-packages of this environment and user)."""
    dirs: list[str] = list(getattr(site, "getsitepackages", list)())
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user:
        dirs.append(user)
    dirs.extend(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(dict.fromkeys(os.path.abspath(d) for d in dirs))


@functools.lru_cache(maxsize=8)
def _font_files(dirs: tuple[str, ...]) -> dict[str, str]:
    """Font files under ``dirs``, by lower-case file name (first found wins)."""
    found: dict[str, str] = {}
    for folder in dirs:
        root = os.path.expanduser(folder)
        if not os.path.isdir(root):
            continue
        for current, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.endswith(".dist-info")]
            for name in files:
                if name.lower().endswith(_FONT_SUFFIXES):
                    found.setdefault(name.lower(), os.path.join(current, name))
    return found


def _dejavu(files: dict[str, str]) -> str | None:
    if "dejavusans.ttf" in files:
        return files["dejavusans.ttf"]
    spec = importlib.util.find_spec("matplotlib")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if candidate.is_file():
            return str(candidate)
    return None


@functools.lru_cache(maxsize=16)
def _probe_font(path: str) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.truetype(path, 32)
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=64)
def _glyph_bitmap(path: str, char: str) -> bytes | None:
    """``char`` drawn with the font at ``path`` (None when the font cannot be loaded)."""
    from PIL import Image, ImageDraw

    font = _probe_font(path)
    if font is None:
        return None
    canvas = Image.new("L", (48, 48))
    ImageDraw.Draw(canvas).text((4, 4), char, font=font, fill=255)
    return canvas.tobytes()


@functools.lru_cache(maxsize=8192)
def has_glyph(path: str, char: str) -> bool:
    """Whether the font at ``path`` has a real glyph for ``char``: it draws differently from
    a code point no font has (which every font draws as its "missing" box, or not at all)."""
    drawn = _glyph_bitmap(path, char)
    return drawn is not None and drawn != _glyph_bitmap(path, "\U0010fffd") and any(drawn)


def find_font(
    *,
    cjk: bool = True,
    dirs: tuple[str, ...] | None = None,
    site_dirs: tuple[str, ...] | None = None,
    text: str | None = None,
) -> tuple[str | None, bool]:
    """A TrueType/OpenType font file for labels, and whether it has the CJK glyphs asked for.

    With ``cjk``, the known CJK fonts (then any font named like one) in ``dirs`` (default: the
    system font folders and Ultralytics' settings folder) and ``site_dirs`` (default: the
    site-packages folders pip installs into) are checked for real glyphs of the CJK characters of
    ``text`` (default: a common ideograph): the first font that has all of them wins, with
    ``True``. Otherwise the font covering most of them is returned with ``False``, or — when
    none covers any, or without ``cjk`` — DejaVu Sans with ``False``; ``(None, False)`` when
    there is no font at all.
    """
    files = _font_files(_FONT_DIRS if dirs is None else dirs)
    if cjk:
        everywhere = dict(_font_files(_site_dirs() if site_dirs is None else site_dirs))
        everywhere.update(files)  # a system font wins over a same-named packaged one
        wanted = sorted(set(_CJK.findall(text or ""))) or ["\u732b"]
        known = [everywhere[name] for name in _CJK_FONTS if name in everywhere]
        named = [path for name, path in sorted(everywhere.items()) if _CJK_NAME.search(name)]
        best: tuple[int, str | None] = (0, None)
        for path in dict.fromkeys([*known, *named]):
            covered = sum(has_glyph(path, char) for char in wanted)
            if covered == len(wanted):
                return path, True
            if covered > best[0]:
                best = (covered, path)
        if best[1] is not None:
            return best[1], False
    return _dejavu(files), False
