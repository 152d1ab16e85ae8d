"""Resolving one gemma-local request against the backend's defaults, and grouping the results.

A :class:`Plan` is a request made concrete: its chat messages (video sampled into frames) and
the knobs — image budget, pan-and-scan, ``max_new_tokens``, sampling, seed, thinking — that
decide which requests may generate together in one left-padded batch (:func:`batches`).
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from vlmkit import ConfigError, MediaError, Request
from vlmkit_gemma import loading
from vlmkit_gemma.messages import build_messages
from vlmkit_gemma.settings import (
    DEFAULT_IMAGE_BUDGET,
    DEFAULT_MAX_NEW_TOKENS,
    GREEDY_TASKS,
    check_sampling,
    positive_int,
)

__all__ = ["Plan", "Planner", "batches"]


@attrs.frozen(kw_only=True, eq=False)
class Plan:
    """One request, resolved: messages plus the knobs that decide which batch it may join."""

    messages: list[dict[str, Any]]
    max_soft_tokens: int | None
    pan_and_scan: bool | None
    max_new_tokens: int
    sampling: tuple[tuple[str, Any], ...]
    seed: int | None
    thinking: bool
    prepare_s: float = 0.0

    @property
    def key(self) -> tuple[Any, ...]:
        return (
            self.max_soft_tokens,
            self.pan_and_scan,
            self.max_new_tokens,
            self.sampling,
            self.seed,
            self.thinking,
        )


@attrs.frozen(kw_only=True)
class Planner:
    """The backend's validated defaults; :meth:`plan` applies a request's options over them."""

    model: str
    max_new_tokens: int | None
    max_soft_tokens: int | None
    video_budget: int | None
    pan_and_scan: bool | None
    thinking: bool
    temperature: float | None
    top_p: float | None
    top_k: int | None
    video_fps: float
    video_frames: int

    def sampling(self, task: str, options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        temperature = options.get("temperature")
        top_p = options.get("top_p", self.top_p)
        top_k = options.get("top_k", self.top_k)
        check_sampling(temperature, top_p, top_k)
        do_sample = options.get("do_sample")
        if do_sample is None:
            if temperature is not None:
                do_sample = temperature > 0
            else:
                do_sample = task not in GREEDY_TASKS and bool(self.temperature)
        if not do_sample:
            return (("do_sample", False),)
        if temperature is None:
            temperature = self.temperature
        if temperature is not None and temperature <= 0:
            raise ConfigError("do_sample=True needs a temperature above 0")
        settings: dict[str, Any] = {"do_sample": True}
        for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
            if value is not None:  # else the checkpoint's generation_config decides
                settings[name] = value
        return tuple(sorted(settings.items()))

    def plan(self, request: Request, family: loading.Family) -> Plan:
        started = time.perf_counter()
        options = request.options
        thinking = bool(options.get("thinking", self.thinking))
        if thinking and family != "gemma4":
            raise ConfigError(f"thinking is a Gemma 4 option; {self.model} is a {family} model")
        max_new_tokens = options.get("max_new_tokens")
        if max_new_tokens is None:
            max_new_tokens = self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS.get(request.task, 1024)
        max_new_tokens = positive_int("max_new_tokens", max_new_tokens)
        frames = None
        if request.video is not None:
            frames = self.sample_video(request, options)
            default_budget = self.video_budget
        else:
            if not request.images:
                raise ConfigError(f"gemma-local needs at least one image for {request.task}")
            default_budget = self.max_soft_tokens or DEFAULT_IMAGE_BUDGET
        budget = options.get("max_soft_tokens")
        if budget is None and family == "gemma4":
            budget = default_budget
        if budget is None and family != "gemma4" and self.max_soft_tokens is not None:
            budget = self.max_soft_tokens  # set explicitly on a model without budgets: refuse
        pan_and_scan = options.get("pan_and_scan", self.pan_and_scan)
        loading.processor_kwargs(family, max_soft_tokens=budget, pan_and_scan=pan_and_scan)
        sampling = self.sampling(request.task, options)
        seed = options.get("seed") if dict(sampling)["do_sample"] else None
        return Plan(
            messages=build_messages(request, frames),
            max_soft_tokens=budget,
            pan_and_scan=pan_and_scan,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            seed=seed,
            thinking=thinking,
            prepare_s=time.perf_counter() - started,
        )

    def sample_video(self, request: Request, options: dict[str, Any]) -> list[Any]:
        from vlmkit import sample_frames

        video = request.video
        assert video is not None
        if "://" in video.source:
            raise MediaError(
                f"gemma-local samples frames from local video files; download {video.source} "
                "first and pass its path",
                source=video.source,
            )
        max_frames = options.get("frames")
        if max_frames is None:
            max_frames = video.max_frames or self.video_frames
        max_frames = positive_int("frames", max_frames)
        frames = sample_frames(
            video.source,
            fps=video.fps or self.video_fps,
            max_frames=max_frames,
            start_s=video.start_s,
            end_s=video.end_s,
        )
        if not frames:
            raise MediaError(
                f"{video.source}: no frames in the requested range", source=video.source
            )
        return frames


def batches(plans: dict[int, Plan], size: int) -> list[list[tuple[int, Plan]]]:
    """Plans (by request index) grouped by their knobs, each group cut into batches of ``size``."""
    by_key: dict[tuple[Any, ...], list[tuple[int, Plan]]] = {}
    for index, plan in plans.items():
        by_key.setdefault(plan.key, []).append((index, plan))
    return [
        members[start : start + size]
        for members in by_key.values()
        for start in range(0, len(members), size)
    ]
