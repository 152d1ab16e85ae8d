"""Measure the real google/gemma-4-E2B-it through gemma-local on a GPU (not run in CI).

Everything goes through the user path — ``vlmkit.Session(backend="gemma-local", ...)`` — so the
numbers include vlmkit's preprocessing, decoding and parsing, not just ``model.generate``:

1. **load**: config + processor + weights onto the GPU (``GemmaLocalBackend.load()``), and the
   first request after it (CUDA kernels warm up);
2. **latency per request** at image budgets ``max_soft_tokens`` 70 / 280 / 560, one request at
   a time: median wall time, prompt and output tokens, and boxes found;
3. **batched throughput** at batch sizes 1 / 4 / 8: ``--requests`` requests in flight from
   threads, the Session's MicroBatcher feeding ``generate_batch``: requests/s, output tokens/s,
   and whether the answers equal the one-at-a-time answers (bf16 kernels may differ slightly for
   different batch shapes, so a few answers can legitimately change);
4. **peak GPU memory** of each phase (``torch.cuda.max_memory_allocated``).

Requirements: a CUDA GPU with about 12 GiB free (E2B in bf16 is ~9.5 GiB of weights), vlmkit
and vlmkit-gemma installed with a CUDA build of torch, and the checkpoint in the Hugging Face
cache (accept the licence on https://huggingface.co/google/gemma-4-E2B-it, ``hf auth login``,
``hf download google/gemma-4-E2B-it``) or a local folder passed with ``--model``.

Run from the repository root::

    python benchmarks/gpu_gemma_e2b.py                         # E2B, detect on samples/*.jpg
    python benchmarks/gpu_gemma_e2b.py --model google/gemma-4-E4B-it --json e4b.json
    python benchmarks/gpu_gemma_e2b.py --task describe --max-new-tokens 128

A CPU smoke test of the script itself (tiny checkpoint, seconds)::

    python benchmarks/gpu_gemma_e2b.py --model PATH/TO/TINY --device cpu --allow-cpu \\
        --budgets 70 --batch-sizes 1 2 --requests 4 --latency-requests 2 --max-new-tokens 8

It prints a Markdown report (paste it into ``docs/benchmarks.md`` under "Gemma local backend")
and, with ``--json``, writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def image_paths(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            paths.append(path)
    if not paths:
        raise SystemExit(f"no images found in {inputs}")
    return paths


class Memory:
    """Peak memory of a phase: GPU bytes allocated by torch on CUDA, else the process's RSS."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda") and torch.cuda.is_available()

    def reset(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
            return self.torch.cuda.max_memory_allocated() / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB

    @property
    def label(self) -> str:
        return "peak GPU memory" if self.cuda else "peak RSS (CPU)"


def call(session: Any, task: str, image: Any, prompt: str, **options: Any) -> Any:
    if task == "detect":
        return session.detect(image, prompt, **options)
    if task == "ocr":
        return session.ocr(image, **options)
    return session.describe(image, prompt, **options)


def summary(result: Any) -> dict[str, Any]:
    provenance = result.provenance
    found = len(result) if hasattr(result, "xyxy") else None
    return {
        "prompt_tokens": provenance.usage.prompt_tokens,
        "output_tokens": provenance.usage.output_tokens,
        "finish": str(provenance.finish),
        "found": found,
        "raw_text": provenance.raw_text,
    }


def run_many(session: Any, args: argparse.Namespace, images: list[Any], budget: int) -> list[Any]:
    def one(image: Any) -> Any:
        try:
            return call(
                session,
                args.task,
                image,
                args.prompt,
                max_soft_tokens=budget,
                max_new_tokens=args.max_new_tokens,
            )
        except Exception as err:  # a ParseError is a result too, for a benchmark
            return err

    with ThreadPoolExecutor(max_workers=len(images)) as pool:
        return list(pool.map(one, images))


def set_batch_size(session: Any, size: int) -> None:
    if hasattr(session, "set_batch_size"):
        session.set_batch_size(size)
    else:  # an older core: reopen is the only way
        raise SystemExit("this vlmkit has no Session.set_batch_size; update vlmkit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="google/gemma-4-E2B-it")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--attn", default=None, help="attn_implementation (default: sdpa)")
    parser.add_argument("--task", choices=["detect", "describe", "ocr"], default="detect")
    parser.add_argument("--prompt", default="person, car, cat, dog, cup, rocket")
    parser.add_argument("--images", nargs="+", default=[str(ROOT / "samples")])
    parser.add_argument("--budgets", type=int, nargs="+", default=[70, 280, 560])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batch-budget", type=int, default=280)
    parser.add_argument("--requests", type=int, default=16, help="requests per throughput run")
    parser.add_argument("--latency-requests", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke-test on CPU")
    args = parser.parse_args()

    import torch
    import transformers

    import vlmkit
    from vlmkit.media import load_image

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch; this benchmark is for GPUs (--allow-cpu)")
    if not args.device.startswith("cuda") and not args.allow_cpu:
        raise SystemExit("pass --allow-cpu to run on a CPU (a smoke test, not a measurement)")

    paths = image_paths(args.images)
    images = [load_image(path) for path in paths]
    memory = Memory(args.device)
    gpu = torch.cuda.get_device_name(0) if memory.cuda else platform.processor() or "CPU"
    record: dict[str, Any] = {
        "model": args.model,
        "device": args.device,
        "gpu": gpu,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "vlmkit": vlmkit.__version__,
        "task": args.task,
        "prompt": args.prompt,
        "images": [
            f"{p.name} {img.size[0]}×{img.size[1]}" for p, img in zip(paths, images, strict=True)
        ],
        "max_new_tokens": args.max_new_tokens,
    }
    options: dict[str, Any] = {"device": args.device, "dtype": args.dtype, "batch_size": 1}
    if args.attn:
        options["attn_implementation"] = args.attn

    with vlmkit.Session(backend="gemma-local", model=args.model, **options) as session:
        backend = session.backend
        # 1. load
        memory.reset()
        started = time.perf_counter()
        backend.load()
        load_s = time.perf_counter() - started
        load_peak = memory.peak_gib()
        started = time.perf_counter()
        call(session, args.task, images[0], args.prompt, max_new_tokens=8)
        first_s = time.perf_counter() - started
        record["load"] = {
            "load_s": load_s,
            "first_request_s": first_s,
            "peak_gib": load_peak,
            "dtype": str(backend.torch_model.dtype),
            "attn": getattr(backend.torch_model.config, "_attn_implementation", None),
        }

        # 2. latency per request at each budget, one at a time
        record["latency"] = []
        for budget in args.budgets:
            memory.reset()
            rows = []
            for index in range(args.latency_requests):
                image = images[index % len(images)]
                started = time.perf_counter()
                try:
                    result = call(
                        session,
                        args.task,
                        image,
                        args.prompt,
                        max_soft_tokens=budget,
                        max_new_tokens=args.max_new_tokens,
                    )
                    row = summary(result)
                except vlmkit.ParseError as err:
                    row = {"error": f"ParseError: {err}", "raw_text": err.raw_text}
                row["wall_s"] = time.perf_counter() - started
                rows.append(row)
            record["latency"].append(
                {"budget": budget, "peak_gib": memory.peak_gib(), "requests": rows}
            )

        # 3. throughput at each batch size (the same requests every time)
        batch_images = [images[i % len(images)] for i in range(args.requests)]
        record["throughput"] = []
        reference: list[Any] | None = None
        for size in args.batch_sizes:
            set_batch_size(session, size)
            run_many(session, args, batch_images[: max(1, size)], args.batch_budget)  # warm up
            memory.reset()
            started = time.perf_counter()
            results = run_many(session, args, batch_images, args.batch_budget)
            wall = time.perf_counter() - started
            texts = [
                r.raw_text if isinstance(r, vlmkit.ParseError) else r.provenance.raw_text
                for r in results
            ]
            output_tokens = sum(
                r.provenance.usage.output_tokens for r in results if hasattr(r, "provenance")
            )
            if reference is None:
                reference = texts
            record["throughput"].append(
                {
                    "batch_size": size,
                    "wall_s": wall,
                    "requests_per_s": len(results) / wall,
                    "output_tokens_per_s": output_tokens / wall,
                    "output_tokens": output_tokens,
                    "same_as_batch_1": sum(a == b for a, b in zip(texts, reference, strict=True)),
                    "errors": sum(isinstance(r, Exception) for r in results),
                    "peak_gib": memory.peak_gib(),
                }
            )

    print(markdown(record, memory.label, args))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")


def markdown(record: dict[str, Any], memory_label: str, args: argparse.Namespace) -> str:
    load = record["load"]
    lines = [
        f"Model `{record['model']}` on {record['gpu']} ({load['dtype']}, attention "
        f"{load['attn']}), torch {record['torch']}, transformers {record['transformers']}; "
        f"task `{record['task']}` with prompt {record['prompt']!r} on "
        f"{len(record['images'])} images ({', '.join(record['images'])}), greedy, "
        f"max_new_tokens {record['max_new_tokens']}.",
        "",
        f"Load: {load['load_s']:.1f} s (config, processor, weights), first request after it "
        f"{load['first_request_s']:.2f} s; {memory_label} after loading "
        f"{load['peak_gib']:.2f} GiB.",
        "",
        f"| max_soft_tokens | median latency | prompt tokens | output tokens | found | "
        f"{memory_label} |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in record["latency"]:
        rows = entry["requests"]
        ok = [r for r in rows if "error" not in r]

        def med(key: str, rows: list[dict[str, Any]] = ok) -> str:
            values = [r[key] for r in rows if r.get(key) is not None]
            return f"{statistics.median(values):.0f}" if values else "–"

        latency = statistics.median(r["wall_s"] for r in rows)
        errors = len(rows) - len(ok)
        note = f" ({errors} unparsable)" if errors else ""
        lines.append(
            f"| {entry['budget']} | {latency:.2f} s{note} | {med('prompt_tokens')} | "
            f"{med('output_tokens')} | {med('found')} | {entry['peak_gib']:.2f} GiB |"
        )
    lines += [
        "",
        f"Throughput, {args.requests} requests in flight at budget {args.batch_budget}:",
        "",
        f"| batch_size | wall time | requests/s | output tokens/s | same answers as batch 1 | "
        f"{memory_label} |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in record["throughput"]:
        lines.append(
            f"| {entry['batch_size']} | {entry['wall_s']:.2f} s | {entry['requests_per_s']:.2f} "
            f"| {entry['output_tokens_per_s']:.0f} | {entry['same_as_batch_1']}/{args.requests} "
            f"| {entry['peak_gib']:.2f} GiB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
