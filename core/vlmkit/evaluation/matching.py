"""Pairing a run with its ground truth: images by file name, classes by name.

Images match by relative path first, then by base name (a run over ``photos/`` has keys like
``a.jpg`` while COCO may say ``val2017/a.jpg``). Classes match by name, case-insensitively,
with an explicit mapping for synonyms (``automobile=car``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from vlmkit.errors import ConfigError
from vlmkit.evaluation.groundtruth import GtImage

__all__ = ["ClassMatcher", "match_images", "parse_mapping"]

_SHOWN = 10


def _posix(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _base(name: str) -> str:
    return _posix(name).rsplit("/", 1)[-1]


def match_images(
    keys: Iterable[str], images: Sequence[GtImage], *, strict: bool = True
) -> dict[str, GtImage]:
    """``run key → ground-truth image``, by relative path, then by base name.

    Raises :class:`~vlmkit.ConfigError` listing the run's images that have no ground truth (or
    whose base name is shared by several ground-truth images); with ``strict=False`` those
    images are left out instead (the pilot samples only images that have ground truth)."""
    by_path = {_posix(image.file_name): image for image in images}
    base_counts = Counter(_base(image.file_name) for image in images)
    by_base = {_base(image.file_name): image for image in images}
    matched: dict[str, GtImage] = {}
    missing: list[str] = []
    ambiguous: list[str] = []
    for key in keys:
        path = _posix(key)
        if path in by_path:
            matched[key] = by_path[path]
            continue
        base = _base(path)
        if base_counts.get(base, 0) == 1:
            matched[key] = by_base[base]
        elif base_counts.get(base, 0) > 1:
            ambiguous.append(key)
        else:
            missing.append(key)
    problems = []
    if not strict:
        missing, ambiguous = [], []
    if missing:
        problems.append(f"{len(missing)} run image(s) have no ground truth: {_listing(missing)}")
    if ambiguous:
        problems.append(
            f"{len(ambiguous)} run image(s) match several ground-truth images by base name "
            f"(give the ground truth paths relative to the run's input folder): "
            f"{_listing(ambiguous)}"
        )
    if problems:
        raise ConfigError(
            "; ".join(problems)
            + ". Images are matched by path relative to the run's input folder, then by file "
            "name; evaluate against ground truth that covers every image of the run."
        )
    seen = Counter(image.id for image in matched.values())
    doubled = sorted(k for k, image in matched.items() if seen[image.id] > 1)
    if doubled:
        raise ConfigError(
            f"{len(doubled)} run images match the same ground-truth image by base name: "
            f"{_listing(doubled)}; give the ground truth paths relative to the run's input folder"
        )
    return matched


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["automobile=car", ...]`` → ``{"automobile": "car"}`` (predicted name → GT name)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        predicted, sep, truth = pair.partition("=")
        if not sep or not predicted.strip() or not truth.strip():
            raise ConfigError(
                f"--map {pair!r} is not PREDICTED=GROUND_TRUTH, e.g. --map automobile=car"
            )
        mapping[predicted.strip()] = truth.strip()
    return mapping


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


class ClassMatcher:
    """Predicted label → ground-truth category id; remembers the labels it could not map."""

    def __init__(self, categories: Mapping[int, str], mapping: Mapping[str, str] | None = None):
        self._by_name: dict[str, int] = {}
        for cat_id, name in categories.items():
            self._by_name.setdefault(_fold(name), cat_id)
        self._mapping: dict[str, int] = {}
        for predicted, truth in (mapping or {}).items():
            if _fold(truth) not in self._by_name:
                raise ConfigError(
                    f"--map {predicted}={truth}: {truth!r} is not a ground-truth class; the "
                    f"classes are {sorted(categories.values())}"
                )
            self._mapping[_fold(predicted)] = self._by_name[_fold(truth)]
        self.unmapped: Counter[str] = Counter()

    def __call__(self, label: str) -> int | None:
        folded = _fold(label)
        cat_id = self._mapping.get(folded, self._by_name.get(folded))
        if cat_id is None:
            self.unmapped[label] += 1
        return cat_id
