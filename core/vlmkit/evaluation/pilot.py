"""The pilot: run a few settings on the same seeded sample of labeled images, score each run,
rank them, and say which ``vlmkit label`` command labels the rest with the best one.

Every setting runs as an ordinary :meth:`vlmkit.Session.run` into its own run folder under
``OUT/runs/`` — resumable (its ledger), through the answer cache, within the backend's
concurrency — and is then scored by :func:`~vlmkit.evaluation.evaluate`, which reads only
that folder. A setting is written like the options of ``vlmkit label``::

    --backend gemini-api --model gemini-3.6-flash --option thinking_level=minimal --label car
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit.errors import ConfigError, VlmkitError
from vlmkit.evaluation.evaluate import Evaluation, IouType, evaluate
from vlmkit.evaluation.groundtruth import GtImage, load_ground_truth
from vlmkit.evaluation.matching import match_images
from vlmkit.evaluation.ocr import is_text_ground_truth, load_text_ground_truth

if TYPE_CHECKING:
    from vlmkit.session import Session

__all__ = ["PilotReport", "PilotRow", "Setting", "pilot", "rank"]

log = logging.getLogger(__name__)

DEFAULT_BACKEND = "gemini-api"
#: rank keys where lower is better; every other key ranks higher-is-better
LOWER_IS_BETTER = frozenset({"cost_per_image", "latency_p50_s", "latency_p95_s", "cer", "wer"})
RANK_KEYS = (
    "map50",
    "map",
    "map75",
    "f1",
    "precision",
    "recall",
    "cer",
    "wer",
    "cost_per_image",
    "latency_p50_s",
)
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _pairs(values: Iterable[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key.strip():
            # The text is not echoed: it may be a bare secret.
            raise ConfigError(f"a --try setting's {flag} is not KEY=VALUE (e.g. {flag} k=v)")
        out[key.strip()] = item
    return out


@attrs.frozen(kw_only=True)
class Setting:
    """One combination to try: backend, model, task, what to find, per-call options and
    backend settings — the options ``vlmkit label`` takes. Build it with :meth:`parse`."""

    backend: str = DEFAULT_BACKEND
    model: str | None = None
    task: str = "detect"
    prompt: str | None = None
    labels: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    options: Mapping[str, str] = attrs.field(factory=dict)
    config: Mapping[str, str] = attrs.field(factory=dict)
    name: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_backend: str | None = None) -> Setting:
        """``"--backend gemini-api --model gemini-3.6-flash --option k=v --label car"``
        (shell quoting; also ``-b``/``-m``/``-p``/``-l``, ``--task``, ``--config k=v``, and
        ``--name`` for the report)."""
        import click

        command = click.Command(
            "--try",
            params=[
                click.Option(["--backend", "-b"], default=default_backend or DEFAULT_BACKEND),
                click.Option(["--model", "-m"]),
                click.Option(
                    ["--task"], type=click.Choice(["detect", "segment", "ocr"]), default="detect"
                ),
                click.Option(["--prompt", "-p"]),
                click.Option(["--label", "-l"], multiple=True),
                click.Option(["--option"], multiple=True),
                click.Option(["--config"], multiple=True),
                click.Option(["--name"]),
            ],
        )
        try:
            args = shlex.split(text)
            with command.make_context("--try", args) as context:
                params = context.params
        # Errors do not echo the setting: it may hold a secret (--config api_key=...).
        except ValueError as err:  # unbalanced quotes
            raise ConfigError(
                f"a --try setting cannot be split like a shell would: {err}"
            ) from None
        except click.ClickException as err:
            raise ConfigError(
                f"a --try setting: {err.format_message()}; a setting takes the options of "
                "`vlmkit label`: --backend, --model, --task, --prompt or --label, --option, "
                "--config (and --name)"
            ) from None
        if params["prompt"] is not None and params["label"]:
            raise ConfigError("a --try setting: give either --prompt or --label, not both")
        return cls(
            backend=params["backend"],
            model=params["model"],
            task=params["task"],
            prompt=params["prompt"],
            labels=params["label"],
            options=_pairs(params["option"], "--option"),
            config=_pairs(params["config"], "--config"),
            name=params["name"],
        )

    @property
    def title(self) -> str:
        """How the setting is shown: its ``--name``, else model (or backend) and options."""
        if self.name:
            return self.name
        parts = [self.model or self.backend]
        parts += [f"{k}={v}" for k, v in self.options.items()]
        if self.prompt is not None:
            parts.append(f"prompt={self.prompt[:24]!r}")
        return " ".join(parts)

    @property
    def slug(self) -> str:
        """The setting's run folder name: readable, file-system safe and unique per setting."""
        digest = hashlib.sha256(repr(self.label_args(labels=())).encode()).hexdigest()[:8]
        readable = _UNSAFE.sub("-", self.title).strip("-.")[:48] or "setting"
        return f"{readable}-{digest}"

    def label_args(self, *, labels: Sequence[str] = (), mask: bool = False) -> list[str]:
        """The ``vlmkit label`` options for this setting (``labels`` stand in for a missing
        prompt); ``mask`` hides secret-looking ``--config`` values."""
        args = ["--task", self.task, "--backend", self.backend]
        if self.model:
            args += ["--model", self.model]
        if self.prompt is not None:
            args += ["--prompt", self.prompt]
        for label in self.labels or labels:
            args += ["--label", label]
        for key, value in self.options.items():
            args += ["--option", f"{key}={value}"]
        for key, value in self.config.items():
            secret = mask and any(word in key.lower() for word in _SECRET_WORDS)
            args += ["--config", f"{key}={'***' if secret else value}"]
        return args


@attrs.frozen(kw_only=True)
class PilotRow:
    """One setting's outcome: its evaluation, or the error that stopped its run."""

    setting: Setting
    run_dir: Path
    evaluation: Evaluation | None = None
    error: str | None = None

    def value(self, key: str) -> float | None:
        return self.evaluation.quality(key) if self.evaluation is not None else None


@attrs.frozen(kw_only=True)
class PilotReport:
    """The ranked settings (best first), the report folder and the winner's label command."""

    rows: tuple[PilotRow, ...]
    rank_by: str
    sample: tuple[str, ...]
    out_dir: Path
    label_command: tuple[str, ...] | None

    @property
    def winner(self) -> PilotRow | None:
        return self.rows[0] if self.rows and self.rows[0].evaluation is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank_by": self.rank_by,
            "sample": list(self.sample),
            "out_dir": str(self.out_dir),
            "label_command": shlex.join(self.label_command) if self.label_command else None,
            "settings": [
                {
                    "rank": index + 1,
                    "setting": row.setting.title,
                    "args": row.setting.label_args(mask=True),
                    "run_dir": str(row.run_dir),
                    "error": row.error,
                    "evaluation": row.evaluation.to_dict() if row.evaluation else None,
                }
                for index, row in enumerate(self.rows)
            ],
        }


def rank(rows: Iterable[PilotRow], key: str) -> list[PilotRow]:
    """Best first by ``key`` (lower first for cost, latency and error rates); rows without a
    value last; ties go to the cheaper setting."""
    if key not in RANK_KEYS:
        raise ConfigError(f"cannot rank by {key!r}; choose one of {', '.join(RANK_KEYS)}")
    sign = 1.0 if key in LOWER_IS_BETTER else -1.0

    def order(row: PilotRow) -> tuple[int, float, float]:
        value = row.value(key)
        cost = row.value("cost_per_image")
        return (
            value is None,
            sign * value if value is not None else 0.0,
            cost if cost is not None else float("inf"),
        )

    return sorted(rows, key=order)


def _check_settings(
    settings: Sequence[Setting], gt: str | os.PathLike[str], *, text: bool, masks: bool,
    iou_type: IouType | None,
) -> None:  # fmt: skip
    """Refuse, before any model call, a setting whose run the ground truth cannot score."""
    for setting in settings:
        if text != (setting.task == "ocr"):
            kind = "text ground truth" if text else "COCO / YOLO ground truth"
            raise ConfigError(
                f"setting {setting.title!r} runs the {setting.task} task, which {kind} ({gt}) "
                "cannot score: text ground truth scores ocr, COCO / YOLO scores detect and segment"
            )
        segm = (iou_type or ("segm" if setting.task == "segment" else "bbox")) == "segm"
        if segm and not masks:
            raise ConfigError(
                f"setting {setting.title!r} would be scored by mask mAP, but {gt} has no "
                "segmentation; use --iou-type bbox"
            )
        if segm and setting.task != "segment":
            raise ConfigError(
                f"setting {setting.title!r} runs {setting.task}, which gives no masks for "
                "--iou-type segm; use --task segment in the setting"
            )


def _candidates(
    images: Sequence[str | os.PathLike[str]],
    gt: str | os.PathLike[str],
    out_dir: Path,
    settings: Sequence[Setting],
    iou_type: IouType | None,
) -> tuple[dict[str, Path], list[str]]:
    """Input images that have ground truth (key → path), and the ground-truth class names."""
    from vlmkit.runner import collect_inputs

    text = is_text_ground_truth(gt)
    if text:
        names = list(load_text_ground_truth(gt))
        truth_images = [GtImage(id=i, file_name=n, width=0, height=0) for i, n in enumerate(names)]
        classes: list[str] = []
        masks = False
    else:
        truth = load_ground_truth(gt)
        truth_images = list(truth.images)
        classes = [truth.categories[k] for k in sorted(truth.categories)]
        masks = truth.has_masks
    _check_settings(settings, gt, text=text, masks=masks, iou_type=iou_type)
    items, _skipped = collect_inputs(images, exclude=out_dir)
    if not items:
        raise ConfigError("no images among the pilot's inputs; give image files, folders or globs")
    paths = {item.key: item.path for item in items}
    matched = match_images(paths, truth_images, strict=False)
    if not matched:
        raise ConfigError(
            f"none of the {len(items)} input image(s) has ground truth in {gt}; images are "
            "matched by path relative to the inputs' folder, then by file name"
        )
    return {key: paths[key] for key in matched}, classes


def _default_factory(cache: bool | str | Path | None) -> Callable[[Setting], Session]:
    def make(setting: Setting) -> Session:
        from vlmkit.session import Session

        config: dict[str, Any] = dict(setting.config)
        return Session(setting.backend, model=setting.model, cache=cache, **config)

    return make


def pilot(
    images: Sequence[str | os.PathLike[str]],
    gt: str | os.PathLike[str],
    settings: Sequence[Setting | str],
    *,
    out_dir: str | os.PathLike[str],
    sample: int | None = None,
    seed: int = 0,
    rank_by: str = "map50",
    mapping: Mapping[str, str] | Iterable[str] | None = None,
    iou_type: IouType | None = None,
    cache: bool | str | Path | None = True,
    session_factory: Callable[[Setting], Session] | None = None,
    concurrency: int | None = None,
    progress: bool | Any = False,
) -> PilotReport:
    """Run every setting on the same seeded sample of ``sample`` labeled images (all of them
    when ``None``), score each run against ``gt``, and rank them by ``rank_by``.

    Settings are :class:`Setting` objects or strings in ``vlmkit label`` syntax. A setting
    without ``--prompt``/``--label`` looks for the ground truth's classes. One setting failing
    as a whole (a wrong option, no credentials) is reported in its row; the others still run.
    Writes ``out_dir/report.md``, ``out_dir/report.json`` and ``out_dir/chart.png``.
    """
    from vlmkit.evaluation.report import write_pilot_report

    parsed = [s if isinstance(s, Setting) else Setting.parse(s) for s in settings]
    if not parsed:
        raise ConfigError("give at least one setting to try (--try)")
    titles = [s.slug for s in parsed]
    if len(set(titles)) != len(titles):
        raise ConfigError("two --try settings are the same; give each setting once")
    rank([], rank_by)  # check the key before any model call
    if sample is not None and sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {sample}")
    candidates, classes = _candidates(images, gt, Path(out_dir), parsed, iou_type)
    keys = sorted(candidates)
    chosen = sorted(random.Random(seed).sample(keys, min(sample, len(keys)))) if sample else keys
    paths = [candidates[key] for key in chosen]
    root = Path(out_dir)
    factory = session_factory or _default_factory(cache)
    rows: list[PilotRow] = []
    for setting in parsed:
        run_dir = root / "runs" / setting.slug
        prompt: str | list[str] | None = setting.prompt
        if prompt is None and setting.task != "ocr":
            prompt = list(setting.labels or classes)
        log.info("pilot: %s on %d image(s) into %s", setting.title, len(paths), run_dir)
        try:
            with factory(setting) as session:
                run = session.run(
                    setting.task,
                    paths,
                    prompt,
                    out_dir=run_dir,
                    options=dict(setting.options),
                    concurrency=concurrency,
                    progress=progress,
                )
                for _ in run:
                    pass
            evaluation = evaluate(run_dir, gt, mapping=mapping, iou_type=iou_type)
        except VlmkitError as err:
            log.warning("pilot: setting %s failed: %s", setting.title, err)
            rows.append(PilotRow(setting=setting, run_dir=run_dir, error=str(err)))
            continue
        rows.append(PilotRow(setting=setting, run_dir=run_dir, evaluation=evaluation))
    ranked = rank(rows, rank_by)
    command = None
    if ranked and ranked[0].evaluation is not None:
        best = ranked[0].setting
        command = (
            "vlmkit",
            "label",
            *(os.fspath(i) for i in images),
            "--out",
            "labels",
            *best.label_args(labels=classes if best.task != "ocr" else (), mask=True),
            "--sink",
            "coco",
        )
    report = PilotReport(
        rows=tuple(ranked),
        rank_by=rank_by,
        sample=tuple(chosen),
        out_dir=root,
        label_command=command,
    )
    write_pilot_report(report)
    return report
