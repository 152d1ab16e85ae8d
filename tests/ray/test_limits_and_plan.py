"""The parts of vlmkit-ray that need no cluster: the limiter's arithmetic, the plan taken from
the backend's declarations, the engine's discovery and the lazy face's message."""

from __future__ import annotations

import itertools

import pytest

import vlmkit
import vlmkit.ray
from tests.ray.conftest import SKIP_REASON
from vlmkit.engines import build_engine

pytest.importorskip("ray", reason=SKIP_REASON)
pytest.importorskip("vlmkit_ray", reason=SKIP_REASON)
from vlmkit_ray import Limiter, RayEngine, plan


class _Backend:
    def __init__(self, concurrency=1, batch_size=1, device=None):
        self.concurrency = concurrency
        self.batch_size = batch_size
        if device is not None:
            self.device = device


def test_the_limiter_hands_out_one_slot_per_interval_across_all_callers():
    limiter = Limiter(requests_per_s=10)
    waits = [limiter.acquire() for _ in range(25)]
    # whoever asks, the n-th request waits about n/10 s: 10 per second in all
    assert waits[0] == pytest.approx(0.0, abs=0.05)
    assert waits[24] == pytest.approx(2.4, abs=0.05)
    assert all(b > a for a, b in itertools.pairwise(waits))


def test_the_limiters_budget_is_one_for_the_cluster_and_stops_everyone():
    limiter = Limiter(budget_usd=1.0)
    assert limiter.reserve(0.6) is None
    refused = limiter.reserve(0.6)
    assert refused is not None and "budget" in refused
    limiter.settle(0.6, 0.5)
    assert limiter.acquire() is None  # stopped: nobody sends anything new
    assert limiter.totals()["spent_usd"] == pytest.approx(0.5)


def test_no_limits_means_no_wait():
    limiter = Limiter()
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_the_plan_splits_the_runs_concurrency_over_the_workers():
    api = plan(_Backend(concurrency=16), concurrency=16, pending=500, cluster={"CPU": 4.0})
    assert (api.workers, api.threads, api.batch_size, api.num_gpus) == (4, 4, 16, 0.0)
    few = plan(_Backend(), concurrency=8, pending=1, cluster={"CPU": 4.0})
    assert few.workers == 1  # never more workers than items


def test_a_local_model_on_cuda_gets_one_gpu_per_worker_and_batches_of_its_size():
    gemma = _Backend(concurrency=8, batch_size=4, device="cuda")
    chosen = plan(gemma, concurrency=8, pending=100, cluster={"CPU": 16.0, "GPU": 2.0})
    assert (chosen.workers, chosen.num_gpus, chosen.batch_size) == (2, 1.0, 16)


def test_engines_are_discovered_through_the_plugin_layer():
    with vlmkit.Session(entrypoints=["vlmkit-ray"]) as session:
        assert "ray" in session.engines()
        engine = build_engine(session, "ray", {"workers": "3", "requests_per_s": "2.5"})
        assert isinstance(engine, RayEngine)
        assert (engine.workers, engine.requests_per_s) == (3, 2.5)
        with pytest.raises(vlmkit.ConfigError, match=r"no option.*colour"):
            build_engine(session, "ray", {"colour": "red"})


def test_vlmkit_label_refuses_an_unknown_engine_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from vlmkit.cli import app

    (tmp_path / "a.jpg").write_bytes(b"")
    done = CliRunner().invoke(
        app,
        ["label", str(tmp_path), "--backend", "gemini-api", "--config", "api_key=k",
         "--out", str(tmp_path / "out"), "--engine", "spark"],
    )  # fmt: skip
    assert done.exit_code != 0
    assert "no engine named 'spark'" in done.output and "installed: processes, ray" in done.output
    assert not (tmp_path / "out").exists()
