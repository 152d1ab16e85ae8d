"""The Session's batch entry point, :meth:`~vlmkit.Session.run` — a resumable run over many
images (:class:`~vlmkit.runner.Run`), or the backend's batch service with ``mode="batch"``:
defined here, a method of :class:`~vlmkit.Session`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmkit.errors import ConfigError, UnsupportedTask

if TYPE_CHECKING:
    from vlmkit.runner import Run
    from vlmkit.session import Session

__all__ = ["run"]


def run(
    self: Session,
    task: str,
    inputs: Iterable[str | Path] | str | Path,
    prompt: str | Sequence[str] | None = None,
    *,
    out_dir: str | Path,
    sinks: Iterable[str] = (),
    sink_options: Mapping[str, Mapping[str, Any]] | None = None,
    concurrency: int | None = None,
    batch_size: int | None = None,
    retry_failed: bool = False,
    budget_usd: float | None = None,
    progress: bool | Any = False,
    options: Mapping[str, Any] | None = None,
    pixel_budget: int | None = None,
    mode: str = "sync",
) -> Run:
    """Label many images, resumably; iterate over the returned :class:`~vlmkit.runner.Run`
    to process them, getting an :class:`~vlmkit.runner.ItemOutcome` per finished item.

    ``inputs`` are files, folders (recursive) and globs; each file's key depends only on the
    argument that yielded it (:mod:`vlmkit.inputs`). Results go to
    ``out_dir/results.jsonl`` as they finish; re-running resumes; one run at a time holds
    ``out_dir`` (:mod:`vlmkit.runlock`). ``sinks`` (``"coco"``, ``"yolo"``,
    ``"annotate"``) are written at the end from the whole ledger, once some image has an
    answer. ``budget_usd`` is a hard cap: each request's worst case is reserved before it
    is sent (:mod:`vlmkit.budget`), refused where the backend knows no price.
    ``pixel_budget`` bounds the decoded pixels of the images in flight (default 200
    megapixels, :mod:`vlmkit.pixels`): huge images are taken a few at a time.

    For long runs in a process of your own, call :func:`gc.freeze` once the session is set
    up (``vlmkit label`` does): what was imported and loaded then stays out of the garbage
    collector's full passes, which otherwise pause every request thread.

    ``mode="batch"`` hands the items to the backend's batch service (the Gemini Batch API)
    instead of calling the model once per item: same run folder, ledger, resume and sinks.
    The backend provides it as ``batch_run(session, task, inputs, **run_arguments)``.
    """
    from vlmkit.pixels import DEFAULT_PIXEL_BUDGET
    from vlmkit.runner import Run

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if batch_size is not None:
        self.set_batch_size(batch_size)
    if mode not in ("sync", "batch"):
        raise ConfigError(f"mode must be 'sync' or 'batch', got {mode!r}")
    factory: Any = Run
    if mode == "batch":
        batch_run = getattr(self.backend, "batch_run", None)
        if batch_run is None:
            raise UnsupportedTask(
                f"backend {self.backend_info.name!r} has no batch mode; use mode='sync' "
                "(or backend='gemini-api', whose Batch API answers at half the price)",
                task=task,
            )

        def factory(session: Any, task: str, inputs: Any, **kwargs: Any) -> Run:
            return batch_run(session, task, inputs, **kwargs)  # type: ignore[no-any-return]

    return factory(
        self,
        task,
        inputs,
        prompt=prompt,
        out_dir=out_dir,
        sinks=sinks,
        sink_options=sink_options,
        concurrency=concurrency,
        retry_failed=retry_failed,
        budget_usd=budget_usd,
        progress=progress,
        options=options,
        pixel_budget=DEFAULT_PIXEL_BUDGET if pixel_budget is None else pixel_budget,
    )
