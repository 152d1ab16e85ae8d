"""Batched generation: many requests through one left-padded ``generate``, same answers.

The Session routes concurrent calls through its MicroBatcher when the backend's
``batch_size > 1``; ``generate_batch`` groups requests whose knobs agree and splits the rest.
The unscripted tiny model is used where possible: its gibberish differs per image and prompt, so
"batched equals sequential" is a real check of padding and masking, not of a script.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import vlmkit
from tests.gemma.conftest import DETECT_SCRIPT, NEW_TOKENS, SHORT_SCRIPT, noise_image

torch = pytest.importorskip("torch")

SIZES = ((640, 480), (256, 512), (1000, 800), (300, 300), (64, 48), (480, 640), (800, 200))
PROMPTS = ("Describe it.", "What is shown in this image?", "Caption it in five words, please.")


def _requests(count: int = 16) -> list[tuple[object, str]]:
    return [
        (noise_image(*SIZES[i % len(SIZES)], seed=10 + i), PROMPTS[i % len(PROMPTS)])
        for i in range(count)
    ]


def _describe_all(session: vlmkit.Session, items) -> list[vlmkit.Description]:
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(
            pool.map(lambda item: session.describe(item[0], item[1], max_new_tokens=6), items)
        )


def _request(image, prompt: str = "hi", **options) -> vlmkit.Request:
    from vlmkit.media import load_image

    loaded = load_image(image)
    sent = vlmkit.SentImage(image=loaded.image, original=loaded, transform=loaded.transform)
    return vlmkit.Request(task="describe", prompt=prompt, images=(sent,), options=options)


@pytest.mark.slow
def test_sixteen_threads_batched_equal_one_at_a_time(open_session, monkeypatch):
    items = _requests(16)
    sequential = open_session("g4", max_soft_tokens=70, batch_size=1)
    batched = open_session("g4", max_soft_tokens=70, batch_size=4)
    rows: dict[str, list[int]] = {"sequential": [], "batched": []}
    for name, session in (("sequential", sequential), ("batched", batched)):
        session.describe(items[0][0], "warm up", max_new_tokens=1)  # loads the model
        model = session.backend.torch_model
        monkeypatch.setattr(model, "generate", _counting(model.generate, rows[name]))

    one_at_a_time = _describe_all(sequential, items)
    together = _describe_all(batched, items)

    def key(result: vlmkit.Description) -> tuple:
        usage = result.provenance.usage
        return result.provenance.raw_text, usage.prompt_tokens, usage.output_tokens

    assert [key(r) for r in together] == [key(r) for r in one_at_a_time]
    assert rows["sequential"] == [1] * 16
    assert sum(rows["batched"]) == 16 and 1 < max(rows["batched"]) <= 4
    batcher = getattr(batched, "_batcher", None)  # the Session's MicroBatcher (not public)
    if batcher is not None:
        assert batcher.batches[1:] == rows["batched"]  # after the warm-up call


def _counting(generate, rows: list[int]):
    def spy(**kwargs):
        rows.append(int(kwargs["input_ids"].shape[0]))
        return generate(**kwargs)

    return spy


@pytest.mark.slow
def test_scripted_detections_are_the_same_batched(open_session):
    items = _requests(6)
    session = open_session("g4-detect", max_soft_tokens=70, batch_size=3)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(
                lambda item: session.detect(item[0], "person", max_new_tokens=NEW_TOKENS), items
            )
        )
    for (image, _), detections in zip(items, results, strict=True):
        width, height = image.size
        assert detections.provenance.raw_text == DETECT_SCRIPT
        assert detections.image_size == (width, height)
        assert detections.xyxy[0].tolist() == pytest.approx(
            [0.2 * width, 0.1 * height, 0.6 * width, 0.5 * height]
        )


@pytest.mark.slow
def test_generate_batch_groups_compatible_requests(open_session, photo, monkeypatch):
    session = open_session("g4-short", batch_size=8)
    backend = session.backend
    requests = [
        _request(photo, max_soft_tokens=70, max_new_tokens=NEW_TOKENS),
        _request(photo, max_soft_tokens=140, max_new_tokens=NEW_TOKENS),
        _request(
            noise_image(300, 500, seed=1), "other", max_soft_tokens=70, max_new_tokens=NEW_TOKENS
        ),
        _request(photo, pan_and_scan=True),  # a Gemma 3 knob on Gemma 4: refused alone
        _request(photo, max_soft_tokens=70, max_new_tokens=10),
        _request(photo, max_soft_tokens=70, max_new_tokens=NEW_TOKENS, thinking=True),
    ]
    backend.generate(_request(photo, max_soft_tokens=70, max_new_tokens=2))  # load the model
    batch_rows: list[int] = []
    model = backend.torch_model
    monkeypatch.setattr(model, "generate", _counting(model.generate, batch_rows))
    results = backend.generate_batch(requests)

    assert [type(r).__name__ for r in results] == [
        "Generation",
        "Generation",
        "Generation",
        "ConfigError",
        "Generation",
        "Generation",
    ]
    assert [results[i].text for i in (0, 1, 2, 5)] == [SHORT_SCRIPT] * 4
    assert results[4].finish is vlmkit.FinishReason.MAX_TOKENS
    assert results[4].text == SHORT_SCRIPT[:10]
    assert sorted(batch_rows) == [1, 1, 1, 2]  # 0 and 2 agree; the others differ in a knob
    single = [backend.generate(requests[i]) for i in (0, 1, 2, 4, 5)]
    assert [g.text for g in single] == [results[i].text for i in (0, 1, 2, 4, 5)]
    assert [g.usage.prompt_tokens for g in single] == [
        results[i].usage.prompt_tokens for i in (0, 1, 2, 4, 5)
    ]


@pytest.mark.slow
def test_out_of_memory_splits_the_batch_then_explains(open_session, photo, monkeypatch):
    session = open_session("g4-short", batch_size=4, max_soft_tokens=70)
    backend = session.backend
    request = _request(photo, max_new_tokens=NEW_TOKENS)
    backend.generate(request)  # load the model
    real_generate = backend.torch_model.generate
    rows: list[int] = []

    def tight_memory(**kwargs):
        rows.append(int(kwargs["input_ids"].shape[0]))
        if kwargs["input_ids"].shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(**kwargs)

    monkeypatch.setattr(backend.torch_model, "generate", tight_memory)
    results = backend.generate_batch([request] * 3)
    assert [r.text for r in results] == [SHORT_SCRIPT] * 3
    assert rows == [3, 1, 2, 1, 1]  # 3 → 1 + 2 → 1 + 1 + 1

    def no_memory(**kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(backend.torch_model, "generate", no_memory)
    with pytest.raises(vlmkit.BackendError, match=r"out of memory.*max_soft_tokens"):
        backend.generate(request)


def test_a_load_failure_reaches_every_request_of_the_batch(tmp_path, photo):
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model"}')
    with vlmkit.Session(backend="gemma-local", model=str(tmp_path), device="cpu") as session:
        results = session.backend.generate_batch([_request(photo), _request(photo)])
    assert [type(r) for r in results] == [vlmkit.ConfigError, vlmkit.ConfigError]
    assert "does not know the checkpoint's model type" in str(results[0])
