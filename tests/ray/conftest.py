"""A local Ray cluster for the package's tests (``ray.init(num_cpus=2)``, shut down after) and
the loopback fake Gemini. Each test module skips itself, with the reason, when vlmkit-ray (and
so Ray) is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.catfake import ANSWER, MODEL, cat_fake, make_images  # noqa: F401  (the ray tests import them from here)

# A one-machine cluster on the loopback address: Ray otherwise finds this machine's outward
# address (192.0.2.x here), which the test network guard refuses in Ray's own agents. Set
# before Ray is imported (it reads them at import) and inherited by the processes it starts.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

SKIP_REASON = "vlmkit-ray is not installed (pip install -e plugins/ray)"


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[Any]:
    """One local cluster for all the Ray tests (starting one costs 5-15 s here)."""
    ray = pytest.importorskip("ray", reason=SKIP_REASON)
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported before this module
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def fake() -> Iterator[Any]:
    """The fake Gemini, answering every image with one cat."""
    yield from cat_fake()
