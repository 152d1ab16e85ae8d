"""What the SDK's request conversion costs per call, counted rather than timed.

google-genai turns each request into its wire form with ``_common.get_value_by_path``, which
asks ``key in obj`` before ``getattr(obj, key)`` for every setting it reads. A pydantic model
has no ``__contains__``, so Python's ``in`` walks all of the model's ``(name, value)`` pairs,
and never finds a name among them: 94 walks, about 2,500 pairs, per detection request (0.2 ms
of the SDK's 1.8 ms of CPU per call), paid again on every call. vlmkit-gemini sends types
that answer ``in`` at once (:mod:`vlmkit_gemini.sdktypes`). What reaches the wire is the same:
these tests compare it with what the SDK's own types send; tests/gemini/test_backend_wire.py
pins it field by field.
"""

from __future__ import annotations

import pytest

genai = pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

import pydantic  # noqa: E402
from google.genai import types  # noqa: E402

from tests.gemini.conftest import photo  # noqa: E402


def png_mask_url() -> str:
    """A 64×64 PNG ellipse as a data URL, as Gemini 2.5 writes a mask."""
    import base64
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(image).ellipse((4, 4, 59, 59), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class of each model whose fields are walked (``iter(model)``) from now on."""
    seen: list[str] = []
    walk = pydantic.BaseModel.__iter__

    def counted(self):  # type: ignore[no-untyped-def]
        seen.append(type(self).__name__)
        return walk(self)

    monkeypatch.setattr(pydantic.BaseModel, "__iter__", counted)
    return seen


def test_a_detection_request_walks_no_model_fields_to_test_membership(
    fake_gemini, gemini_session, walks
):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    session.detect(photo(), "cats")  # the first call builds what later calls reuse
    walks.clear()
    session.detect(photo(seed=1), ["cat", "dog"], temperature=0.2)
    # Before: 94 walks for this call, 2,500 pairs (the config's 45 fields 50 times, each part's
    # 17). Left: those of the SDK's own parameter model and the nested schema (8 here).
    assert len(walks) <= 12, f"{len(walks)} model walks for one request: {sorted(set(walks))}"
    assert not {"GenerateContentConfig", "Content", "Part"} & set(walks), walks


def _plain(value):
    """``value`` rebuilt from the SDK's own classes (what a bare SDK script would send)."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, pydantic.BaseModel):
        plain = getattr(types, type(value).__name__)
        return plain.model_validate(
            {name: _plain(getattr(value, name)) for name in value.model_fields_set}
        )
    return value


OPTIONS = [
    {},
    {"temperature": 0.0, "seed": 3, "top_p": 0.5, "top_k": 4},
    {"thinking_budget": 1024, "max_output_tokens": 900, "media_resolution": "low"},
    {"safety": "block_none", "timeout_s": 30.0},
    {"service_tier": "flex"},
]


@pytest.mark.parametrize("prompt", ["cats", ["cat", "dog"]], ids=["prompt", "labels"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_what_is_sent_is_what_the_sdk_types_send(
    fake_gemini, gemini_session, monkeypatch, options, prompt
):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    models = session.backend._client.models
    calls: list[dict] = []
    send = models.generate_content

    def spy(**call):  # type: ignore[no-untyped-def]
        calls.append(call)
        return send(**call)

    monkeypatch.setattr(models, "generate_content", spy)
    session.detect(photo(), prompt, **options)
    (call,) = calls
    sent = fake_gemini.requests_of()[-1]
    assert type(call["config"]) is not types.GenerateContentConfig  # the quick kind was sent
    assert isinstance(call["config"], types.GenerateContentConfig)
    # the same call through the public SDK, with its own classes
    send(model=call["model"], contents=_plain(call["contents"]), config=_plain(call["config"]))
    again = fake_gemini.requests_of()[-1]
    assert (again.path, again.body) == (sent.path, sent.body)


def test_the_quick_types_answer_in_as_the_sdk_types_and_pickle():
    import pickle

    from vlmkit_gemini.sdktypes import sdk_types

    quick = sdk_types()
    config = quick.GenerateContentConfig(temperature=0.5, max_output_tokens=10)
    plain = types.GenerateContentConfig(temperature=0.5, max_output_tokens=10)
    for key in ("temperature", "max_output_tokens", "nothing", ("temperature", 0.5), 3):
        assert (key in config) == (key in plain), key
    assert ("temperature", 0.5) in config and "temperature" not in config
    assert quick.Part.__doc__ == types.Part.__doc__  # help() reads as the SDK's
    part = quick.Part.from_bytes(data=b"123", mime_type="image/png")
    assert type(part) is quick.Part and repr(part) == repr(
        types.Part.from_bytes(data=b"123", mime_type="image/png")
    )
    for value in (config, part, quick.Content(role="user", parts=[part])):
        again = pickle.loads(pickle.dumps(value))
        assert type(again) is type(value) and again == value


FIRST_CALL = """
import sys

import pydantic
from google.genai import types

import vlmkit


def built() -> set[str]:
    return {
        name
        for name, cls in vars(types).items()
        if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)
        and cls.__pydantic_complete__
    }


base_url, model, image = sys.argv[1:]
with vlmkit.Session(
    backend="gemini-api", model=model, api_key="test", base_url=base_url, cache=False
) as session:
    before = built()
    session.detect(image, "cats")
    print(",".join(sorted(built() - before)))
"""


def test_the_backend_builds_the_sdk_models_a_call_needs_when_it_is_made(fake_gemini, tmp_path):
    # pydantic builds a model's validator on its first use; those a call needs are built when
    # the backend is made, not by the first wave of a run's requests (13 ms here, under the GIL)
    import subprocess
    import sys

    fake_gemini.add_rule(text=BOXES)
    image = tmp_path / "photo.jpg"
    photo().save(image)
    command = [sys.executable, "-c", FIRST_CALL, fake_gemini.base_url, "gemini-2.5-flash", image]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", (
        f"google-genai {genai.__version__}: the first call built {done.stdout.strip()}; add "
        "them to the warm-up in vlmkit_gemini/request.py (sdk_constants)"
    )


MANY_FIRST_CALLS = """
import threading

from vlmkit_gemini.sdktypes import sdk_types

barrier = threading.Barrier(8)
made = []


def first_call() -> None:
    barrier.wait()
    made.append(sdk_types())


threads = [threading.Thread(target=first_call) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len({id(types.Part) for types in made}))
"""


def test_threads_making_the_first_call_at_once_share_one_set_of_classes():
    # one set per process: a Part of another set would neither pickle nor pass isinstance
    import subprocess
    import sys

    for _ in range(3):
        command = [sys.executable, "-c", MANY_FIRST_CALLS]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1"


def _configs_sent(monkeypatch: pytest.MonkeyPatch, session) -> list:  # type: ignore[no-untyped-def]
    models = session.backend._client.models
    configs: list = []
    send = models.generate_content

    def spy(**call):  # type: ignore[no-untyped-def]
        configs.append(call["config"])
        return send(**call)

    monkeypatch.setattr(models, "generate_content", spy)
    return configs


def test_calls_with_the_same_settings_share_one_config(fake_gemini, gemini_session, monkeypatch):
    # Building and validating a GenerateContentConfig cost 0.1 ms of the GIL per call, for an
    # object that is the same for every image of a run (the SDK copies it per call and never
    # changes it); a change of task, labels or any option makes a new one.
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    configs = _configs_sent(monkeypatch, session)
    for seed in range(3):
        session.detect(photo(seed=seed), "cats")
    assert len({id(config) for config in configs}) == 1
    unchanged = configs[0].model_dump()
    session.detect(photo(), ["cat", "dog"])
    session.detect(photo(), "cats", temperature=0.3)
    session.describe(photo())
    assert len({id(config) for config in configs}) == 4
    assert configs[0].model_dump() == unchanged  # sent 3 times, changed by nothing
    assert configs[-2].temperature == 0.3 and configs[-1].response_schema is None
    sent = [request.body["generationConfig"] for request in fake_gemini.requests_of()]
    assert [config.get("temperature") for config in sent] == [None, None, None, None, 0.3, None]
    assert sent[0] == sent[1] == sent[2]


A_RUN = """
import sys

import vlmkit

base_url, folder, out, task, *sinks = sys.argv[1:]
with vlmkit.Session(
    backend="gemini-api", api_key="test", base_url=base_url, cache=False
) as session:
    run = session.run(task, [folder], "cats", out_dir=out, sinks=sinks)
    before = set(sys.modules)
    assert [outcome.status for outcome in run] == ["done"] * 3
    print(",".join(sorted(set(sys.modules) - before)))
"""

#: Gemini 3.x segmentation: polygons over the whole image, 0-1000 (one with a hole's worth of
#: parts, so the YOLO sink bridges them).
POLYGONS = {
    "boxes": [
        {"box_2d": [100, 100, 600, 600], "label": "cat",
         "mask": [[100, 100], [600, 100], [600, 600], [100, 600]]},
        {"box_2d": [650, 650, 900, 900], "label": "cat",
         "mask": [[[650, 650], [700, 650], [700, 700]], [[800, 800], [900, 800], [900, 900]]]},
    ]
}  # fmt: skip


#: Gemini 2.5 segmentation: a box-local PNG per mask (resampled into its box with OpenCV).
PNG_MASKS = [{"box_2d": [100, 100, 600, 600], "label": "cat", "mask": png_mask_url()}]


@pytest.mark.parametrize(
    ("task", "sinks"),
    [("detect", ["coco", "yolo"]), ("segment", ["coco", "yolo", "annotate"]), ("segment", [])],
)
def test_a_run_imports_nothing_once_it_is_made(fake_gemini, tmp_path, task, sinks):
    # A module imported during a run is imported by its first wave of requests, each waiting
    # on the import lock and the GIL meanwhile: Pillow's format plugins (18 ms), the idna codec
    # of the first connection, PyYAML for the YOLO sink's commit. They are imported when the
    # session, the backend and the run are made.
    import subprocess
    import sys

    # A segmentation run's sinks import supervision (YOLO polygons, previews): 0.4 s alone,
    # 3.8 s in a run at 32 in flight. Sink.warm_up imports it when the run is made.
    fake_gemini.add_rule(text=BOXES if task == "detect" else POLYGONS if sinks else PNG_MASKS)
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(3):
        photo(seed=seed).save(folder / f"{seed}.jpg")
    command = [sys.executable, "-c", A_RUN, fake_gemini.base_url, folder, tmp_path / "out", task]
    command += sinks
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", (
        f"imported during the run: {done.stdout.strip()}; import it with the run's set-up "
        "instead (the dispatcher, the backend's warm-up in vlmkit_gemini/request.py, or the "
        "sink's warm_up)"
    )
