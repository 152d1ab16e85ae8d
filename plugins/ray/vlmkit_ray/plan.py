"""How a run is spread over the cluster: workers, threads per worker, batch size, resources.

Taken from the backend's declarations, as a local run takes its concurrency from them: the
run's ``concurrency`` (default ``max(backend.concurrency, 2 * backend.batch_size)``) is the
requests in flight across the whole cluster, split over the workers; a local model on a GPU
(``backend.device`` is ``cuda...``) gets one GPU per worker; a batch keeps a worker's threads
(four requests per thread: Ray's cost per batch is spread over more items, and a killed
worker's batch is small) or its model's batches twice over.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from vlmkit import ConfigError

__all__ = ["Plan", "plan"]


@attrs.frozen(kw_only=True)
class Plan:
    """``workers`` actors, each with ``threads`` requests in flight on ``batch_size`` items at
    a time, reserving ``num_cpus`` / ``num_gpus`` each."""

    workers: int
    threads: int
    batch_size: int
    num_cpus: float
    num_gpus: float


def plan(
    backend: Any,
    *,
    concurrency: int,
    pending: int,
    cluster: dict[str, float],
    workers: int | None = None,
    gpus_per_worker: float | None = None,
) -> Plan:
    """The plan for ``pending`` items on a cluster with ``cluster`` resources
    (``ray.cluster_resources()``)."""
    device = str(getattr(backend, "device", "") or "")
    gpus = float(gpus_per_worker) if gpus_per_worker is not None else 0.0
    if gpus_per_worker is None and device.startswith("cuda"):
        gpus = 1.0
    if gpus < 0:
        raise ConfigError(f"gpus_per_worker must be at least 0, got {gpus_per_worker}")
    local_model = int(getattr(backend, "batch_size", 1)) > 1 or gpus > 0
    if workers is None:
        if gpus > 0:
            workers = max(int(cluster.get("GPU", 0) // gpus), 1)
        else:
            workers = max(int(cluster.get("CPU", 1)), 1)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    model_batch = int(getattr(backend, "batch_size", 1))

    def shape(workers: int) -> tuple[int, int]:
        threads = max(math.ceil(concurrency / workers), 1)
        return threads, max(4 * threads, 2 * model_batch)

    threads, batch_size = shape(workers)
    batches = math.ceil(pending / batch_size)
    if batches < workers:  # fewer batches than workers: the extra ones would idle
        workers = max(batches, 1)
        threads, batch_size = shape(workers)
    # a local model computes on its worker's CPU; an API worker mostly waits on the network
    num_cpus = 1.0 if local_model and gpus == 0 else 0.5
    return Plan(
        workers=workers, threads=threads, batch_size=batch_size, num_cpus=num_cpus, num_gpus=gpus
    )
