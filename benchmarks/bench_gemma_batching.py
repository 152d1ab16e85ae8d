"""Benchmark: 16 gemma-local requests batched vs one at a time, on tiny random checkpoints.

What a runner labeling a folder does: 16 ``Session.describe`` calls in flight from threads. With
``batch_size=1`` (the baseline) the backend runs them one after another; with ``batch_size=B``
the Session's MicroBatcher hands them to ``generate_batch`` in left-padded batches of up to B.
Both go through the whole user path (entry point, processor without torchvision, chat template,
``generate``, decoding, the core's parsing). The answers must be identical, and are asserted to
be.

The checkpoints are tiny random Gemma 4 (E2B-shaped, real patch size and pooling, so image
preprocessing and image-token counts are the real ones) and Gemma 3 models built at run time
by ``vlmkit_gemma.testing``. Unscripted, they never end their turn under greedy decoding,
so every request generates exactly ``--new-tokens`` tokens: equal work per request. Images have
six different sizes and the prompts three lengths, so batches really are padded.

Rounds interleave the modes so background load spreads over all of them; the table gives the
median wall time for the 16 requests. A tiny model on a CPU spends most of its time outside the
matrix multiplies batching speeds up, so the ratio here is a floor; on a GPU with the real
model (decode-bound) see ``benchmarks/gpu_gemma_e2b.py``.

Run from the repository root: ``python benchmarks/bench_gemma_batching.py`` (about a minute);
``--write`` also replaces the results block in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import vlmkit  # noqa: E402

SIZES = ((640, 480), (256, 512), (1000, 800), (300, 300), (480, 640), (800, 200))
PROMPTS = ("Describe it.", "What is shown in this image?", "Caption it in five words, please.")
MARK_BEGIN, MARK_END = "<!-- bench_gemma_batching:begin -->", "<!-- bench_gemma_batching:end -->"


def images_and_prompts(count: int) -> list[tuple[Image.Image, str]]:
    items = []
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        pixels = np.random.default_rng(index).integers(0, 256, (height, width, 3), np.uint8)
        items.append((Image.fromarray(pixels, "RGB"), PROMPTS[index % len(PROMPTS)]))
    return items


class Mode:
    """One Session configuration, kept open across rounds (the model loads once)."""

    def __init__(self, folder: Path, batch_size: int, options: dict[str, object]) -> None:
        self.batch_size = batch_size
        self.options = options
        self.session = vlmkit.Session(
            backend="gemma-local", model=str(folder), device="cpu", batch_size=batch_size
        )
        self.times: list[float] = []
        self.rows: list[int] = []
        self.answers: list[str | None] = []

    def warm_up(self, image: Image.Image) -> None:
        self.session.describe(image, "warm up", **{**self.options, "max_new_tokens": 1})
        model = self.session.backend.torch_model
        generate = model.generate

        def counting(**kwargs):
            self.rows.append(int(kwargs["input_ids"].shape[0]))
            return generate(**kwargs)

        model.generate = counting

    def run(self, items: list[tuple[Image.Image, str]]) -> None:
        def one(item):
            return self.session.describe(item[0], item[1], **self.options)

        self.rows.clear()
        started = time.perf_counter()
        if self.batch_size == 1:
            results = [one(item) for item in items]  # the baseline: one after another
        else:
            with ThreadPoolExecutor(max_workers=len(items)) as pool:
                results = list(pool.map(one, items))
        self.times.append(time.perf_counter() - started)
        self.answers = [result.provenance.raw_text for result in results]

    def close(self) -> None:
        self.session.close()


def bench_family(family: str, args: argparse.Namespace, tmp: Path) -> list[str]:
    from vlmkit_gemma.testing import build_tiny_gemma3, build_tiny_gemma4

    if family == "gemma4":
        folder = build_tiny_gemma4(tmp / "gemma4")
        options: dict[str, object] = {"max_soft_tokens": args.budget}
        label = f"Gemma 4 tiny, budget {args.budget}"
    else:
        folder = build_tiny_gemma3(tmp / "gemma3")
        options = {}
        label = "Gemma 3 tiny (16 tokens per image)"
    options["max_new_tokens"] = args.new_tokens
    items = images_and_prompts(args.requests)
    modes = [Mode(folder, size, options) for size in (1, *args.batch_sizes)]
    try:
        for mode in modes:
            mode.warm_up(items[0][0])
        for _ in range(args.rounds):
            for mode in modes:
                mode.run(items)
                if mode.answers != modes[0].answers:
                    raise AssertionError(
                        f"{label}: batch_size={mode.batch_size} answered differently"
                    )
    finally:
        for mode in modes:
            mode.close()

    baseline = statistics.median(modes[0].times)
    lines = []
    for mode in modes:
        wall = statistics.median(mode.times)
        name = "one at a time" if mode.batch_size == 1 else f"batched, batch_size={mode.batch_size}"
        calls = f"{len(mode.rows)} × ({', '.join(str(r) for r in sorted(set(mode.rows)))})"
        lines.append(
            f"| {label} | {name} | {calls} | {wall:.2f} s | {wall / len(items) * 1e3:.0f} ms "
            f"| {baseline / wall:.2f}× |"
        )
    return lines


def machine() -> str:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            found = re.search(r"model name\s*:\s*(.+)", handle.read())
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}"
    )


def report(args: argparse.Namespace, rows: list[str]) -> str:
    return "\n".join(
        [
            f"Machine: {machine()}. {args.requests} describe requests per measurement, "
            f"{args.new_tokens} new tokens each (greedy), images of {len(SIZES)} sizes from "
            f"256×512 to 1000×800, prompts of {len(PROMPTS)} lengths; median of "
            f"{args.rounds} interleaved rounds. Batched answers were asserted identical to "
            "one-at-a-time answers.",
            "",
            "| model | mode | `generate` calls × (rows) | wall time, 16 requests | per request "
            "| speedup |",
            "|---|---|---|---:|---:|---:|",
            *rows,
        ]
    )


def write(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    content = path.read_text(encoding="utf-8")
    if MARK_BEGIN not in content or MARK_END not in content:
        raise SystemExit(f"{path} has no {MARK_BEGIN} … {MARK_END} block to replace")
    start = content.index(MARK_BEGIN) + len(MARK_BEGIN)
    end = content.index(MARK_END)
    path.write_text(content[:start] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--budget", type=int, default=280, help="Gemma 4 max_soft_tokens")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--family", choices=["gemma4", "gemma3", "both"], default="both")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    families = ["gemma4", "gemma3"] if args.family == "both" else [args.family]
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-gemma-") as tmp:
        for family in families:
            rows += bench_family(family, args, Path(tmp))
    text = report(args, rows)
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
