"""Tiny random Gemma checkpoints, loaded and run exactly as a real checkpoint would be.

The checkpoints are built once per session into a temporary folder (nothing is committed) and
go through ``load_processor`` + ``load_model`` + ``apply_chat_template`` + ``generate`` +
``decode``: the path the gemma-local backend takes. Scripted checkpoints answer with a fixed
text (baked into ``generation_config.json``), so end-to-end results can be asserted exactly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

_PLUGIN_SRC = Path(__file__).resolve().parents[2] / "plugins" / "gemma"
try:
    from vlmkit_gemma import loading
except ModuleNotFoundError:  # vlmkit-gemma not installed: use the source tree
    sys.path.insert(0, str(_PLUGIN_SRC))
    from vlmkit_gemma import loading
from vlmkit_gemma.testing import build_tiny_gemma3, build_tiny_gemma4  # noqa: E402

JSON_SCRIPT = '```json\n[{"box_2d": [100, 200, 500, 600], "label": "person"}]\n```'
OCR_SCRIPT = 'The sign says:\n\n**猫に注意** (Neko ni chūi): "Beware of cats" 🐈 .'
THOUGHT = "<|channel>thought\nThe user wants people.<channel|>"
PROMPTS = ("detect person", "What does the sign say?", "describe this image in detail, please")
SIZES = ((640, 480), (256, 512), (1000, 800))  # (width, height)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-gemma")
    return {
        "g4": build_tiny_gemma4(root / "g4"),
        "g4-json": build_tiny_gemma4(root / "g4-json", script=JSON_SCRIPT),
        "g4-ocr": build_tiny_gemma4(root / "g4-ocr", script=OCR_SCRIPT),
        "g4-think": build_tiny_gemma4(
            root / "g4-think", script=THOUGHT + JSON_SCRIPT, thinking_prefill=True
        ),
        "g4-prefill": build_tiny_gemma4(
            root / "g4-prefill", script=JSON_SCRIPT, thinking_prefill=True
        ),
        "g3": build_tiny_gemma3(root / "g3"),
        "g3-json": build_tiny_gemma3(root / "g3-json", script=JSON_SCRIPT),
        "g3-ocr": build_tiny_gemma3(root / "g3-ocr", script=OCR_SCRIPT),
    }


@pytest.fixture(scope="session")
def loaded(tiny_dirs):
    """``loaded(name) -> (processor, model)``, each checkpoint loaded once per session."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            path = str(tiny_dirs[name])
            cache[name] = (loading.load_processor(path), loading.load_model(path))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def images():
    from PIL import Image

    rng = __import__("numpy").random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype="uint8"), "RGB") for w, h in SIZES
    ]


def _messages(image, prompt: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}],
        }
    ]


def _encode(processor, model, conversations, *, max_soft_tokens=None, **kwargs):
    family = loading.model_family(model)
    proc_kwargs = loading.processor_kwargs(family, max_soft_tokens=max_soft_tokens, **kwargs)
    if conversations and isinstance(conversations[0], list):
        proc_kwargs["padding"] = True
    return processor.apply_chat_template(
        conversations,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs=proc_kwargs,
    ).to(model.device)


def _generate(processor, model, enc, *, skip_special_tokens=True, **kwargs) -> list[str]:
    kwargs.setdefault("do_sample", False)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=160, **kwargs)
    new = out[:, enc["input_ids"].shape[1] :]
    return [processor.decode(row, skip_special_tokens=skip_special_tokens) for row in new]


# ---------------------------------------------------------------------------------------------
# the checkpoint folders


def test_checkpoint_folders_have_the_hub_layout(tiny_dirs):
    expected = {
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    for path in tiny_dirs.values():
        assert {p.name for p in path.iterdir()} == expected

    proc_cfg = json.loads((tiny_dirs["g4"] / "processor_config.json").read_text())
    assert proc_cfg["processor_class"] == "Gemma4Processor"
    assert proc_cfg["image_processor"]["image_processor_type"] == "Gemma4ImageProcessor"
    assert proc_cfg["video_processor"]["video_processor_type"] == "Gemma4VideoProcessor"
    assert proc_cfg["feature_extractor"]["feature_extractor_type"] == "Gemma4AudioFeatureExtractor"
    assert {"image_seq_length", "audio_seq_length", "audio_ms_per_token"} <= proc_cfg.keys()

    config = json.loads((tiny_dirs["g4"] / "config.json").read_text())
    text = config["text_config"]
    assert text["num_kv_shared_layers"] > 0 and text["use_double_wide_mlp"]
    assert text["hidden_size_per_layer_input"] > 0 and text["final_logit_softcapping"] == 30.0
    assert config["vision_config"]["patch_size"] == 16
    assert config["vision_config"]["pooling_kernel_size"] == 3

    gen = json.loads((tiny_dirs["g4-json"] / "generation_config.json").read_text())
    assert gen["eos_token_id"][0] == 1 and gen["pad_token_id"] == 0 and gen["do_sample"] is False
    assert "sequence_bias" not in json.loads(
        (tiny_dirs["g4"] / "generation_config.json").read_text()
    )


def test_builds_are_deterministic(tiny_dirs, tmp_path):
    again = build_tiny_gemma4(tmp_path / "again")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "processor_config.json"):
        assert (again / name).read_bytes() == (tiny_dirs["g4"] / name).read_bytes(), name


def test_builder_rejects_scripts_it_cannot_reproduce(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        build_tiny_gemma4(tmp_path / "empty", script="")
    with pytest.raises(ValueError, match="round-trip"):  # "▁" decodes as a space
        build_tiny_gemma3(tmp_path / "meta", script="a▁b")


@pytest.mark.parametrize("name", ["g4", "g3"])
def test_tokenizer_covers_the_vocab_and_round_trips_unicode(loaded, name):
    processor, model = loaded(name)
    tok = processor.tokenizer
    assert model.config.get_text_config().vocab_size == len(tok)
    text = 'héllo wörld ```json\n[{"box_2d": [10, 20, 300, 400]}]\n``` 日本 🐈 a . b'
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    for token in (tok.image_token, tok.boi_token, tok.eoi_token):
        assert len(tok.encode(token, add_special_tokens=False)) == 1


# ---------------------------------------------------------------------------------------------
# scripted answers


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("g4-json", JSON_SCRIPT),
        pytest.param("g4-ocr", OCR_SCRIPT, marks=pytest.mark.slow),
        pytest.param("g3-json", JSON_SCRIPT, marks=pytest.mark.slow),
        ("g3-ocr", OCR_SCRIPT),
    ],
    ids=["g4-json", "g4-ocr", "g3-json", "g3-ocr"],
)
def test_scripted_answer_is_reproduced_exactly(loaded, images, name, script):
    processor, model = loaded(name)
    budget = 280 if name.startswith("g4") else None
    enc = _encode(processor, model, _messages(images[0], PROMPTS[0]), max_soft_tokens=budget)
    (text,) = _generate(processor, model, enc)
    assert text == script
    # sampling cannot escape the script either
    assert _generate(processor, model, enc, do_sample=True, temperature=1.5) == [script]
    if script == JSON_SCRIPT:
        fenced = re.search(r"```json\s*(.*?)\s*```", text, re.DOTALL)
        assert fenced is not None
        assert json.loads(fenced.group(1)) == [{"box_2d": [100, 200, 500, 600], "label": "person"}]


@pytest.mark.parametrize("name", ["g4-json", "g3-json"])
@pytest.mark.slow
def test_left_padded_batch_matches_one_at_a_time(loaded, images, name):
    processor, model = loaded(name)
    budget = 280 if name.startswith("g4") else None
    conversations = [_messages(img, p) for img, p in zip(images, PROMPTS, strict=True)]
    batch = _encode(processor, model, conversations, max_soft_tokens=budget)
    assert (batch["attention_mask"][:, 0] == 0).any()  # really left-padded
    single = [
        _generate(processor, model, _encode(processor, model, c, max_soft_tokens=budget))[0]
        for c in conversations
    ]
    assert _generate(processor, model, batch) == single == [JSON_SCRIPT] * 3
    assert _generate(processor, model, batch, do_sample=True) == [JSON_SCRIPT] * 3


@pytest.mark.parametrize("name", ["g4", "g3"])
def test_left_padding_does_not_change_the_logits(loaded, images, name):
    """The unscripted model: padded rows see the same next-token distribution as single rows."""
    processor, model = loaded(name)
    budget = 280 if name == "g4" else None
    conversations = [_messages(img, p) for img, p in zip(images, PROMPTS, strict=True)]
    batch = _encode(processor, model, conversations, max_soft_tokens=budget)
    with torch.inference_mode():
        batch_logits = model(**batch).logits[:, -1]
        for i, conv in enumerate(conversations):
            single = model(**_encode(processor, model, conv, max_soft_tokens=budget)).logits[:, -1]
            torch.testing.assert_close(batch_logits[i], single[0], atol=1e-4, rtol=1e-4)


def test_unscripted_checkpoints_produce_some_text(loaded, images):
    for name in ("g4", "g3"):
        processor, model = loaded(name)
        enc = _encode(processor, model, _messages(images[1], PROMPTS[1]))
        (text,) = _generate(processor, model, enc)
        assert isinstance(text, str)  # deterministic gibberish; never assert its content


# ---------------------------------------------------------------------------------------------
# token budgets


@pytest.mark.parametrize(("budget", "tokens"), [(70, 63), (280, 266)])
def test_image_tokens_follow_max_soft_tokens(loaded, images, budget, tokens):
    processor, model = loaded("g4")
    enc = _encode(processor, model, _messages(images[0], "x"), max_soft_tokens=budget)  # 640x480
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == tokens
    assert tuple(enc["pixel_values"].shape) == (1, budget * 9, 768)  # padded to budget x 3 x 3


def test_invalid_budget_is_rejected(loaded, images):
    with pytest.raises(ValueError, match=r"70, 140, 280, 560, 1120"):
        loading.processor_kwargs("gemma4", max_soft_tokens=100)
    processor, _ = loaded("g4")
    with pytest.raises(ValueError, match="max_soft_tokens"):  # transformers checks it too
        processor.apply_chat_template(
            _messages(images[0], "x"),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            processor_kwargs={"images_kwargs": {"max_soft_tokens": 100}},
        )


def test_processor_kwargs_per_family():
    assert loading.processor_kwargs("gemma4", 70) == {"images_kwargs": {"max_soft_tokens": 70}}
    assert loading.processor_kwargs("gemma3", pan_and_scan=True) == {
        "images_kwargs": {"do_pan_and_scan": True}
    }
    assert loading.processor_kwargs("gemma4") == {} == loading.processor_kwargs("other")
    first = loading.processor_kwargs("gemma4", 140)
    first["images_kwargs"]["max_soft_tokens"] = 1120  # what transformers may do to it (P7)
    assert loading.processor_kwargs("gemma4", 140) == {"images_kwargs": {"max_soft_tokens": 140}}
    with pytest.raises(ValueError, match="Gemma 4 option"):
        loading.processor_kwargs("gemma3", max_soft_tokens=280)
    with pytest.raises(ValueError, match="Gemma 3 option"):
        loading.processor_kwargs("gemma4", pan_and_scan=True)
    with pytest.raises(ValueError, match="one of"):
        loading.processor_kwargs("gemma4", max_soft_tokens=True)
    with pytest.raises(ValueError, match="unknown model family"):
        loading.processor_kwargs("gemma5")


def test_gemma3_pan_and_scan_adds_crops(loaded):
    from PIL import Image

    processor, model = loaded("g3")
    tall = _messages(Image.new("RGB", (600, 1500), (10, 20, 30)), "x")
    plain = _encode(processor, model, tall)
    crops = _encode(processor, model, tall, pan_and_scan=True)
    image_id = model.config.image_token_id
    assert int((plain["input_ids"] == image_id).sum()) == 16
    assert int((crops["input_ids"] == image_id).sum()) == 64  # the image plus 3 crops


# ---------------------------------------------------------------------------------------------
# thinking text (pitfall P9)


def test_thinking_prefill_lives_in_the_prompt(loaded, images):
    processor, model = loaded("g4-prefill")
    enc = _encode(processor, model, _messages(images[0], "x"), max_soft_tokens=70)
    prompt = processor.decode(enc["input_ids"][0])
    assert prompt.endswith("<|turn>model\n<|channel>thought\n<channel|>")
    assert _generate(processor, model, enc) == [JSON_SCRIPT]  # the pre-fill is not decoded


def test_thinking_text_survives_skip_special_tokens(loaded, images):
    """A model that thinks: the decoded answer starts with "thought"; the backend must strip it."""
    processor, model = loaded("g4-think")
    enc = _encode(processor, model, _messages(images[0], "x"), max_soft_tokens=70)
    (text,) = _generate(processor, model, enc)
    assert text.startswith("thought\n")
    assert text.endswith(JSON_SCRIPT) and text != JSON_SCRIPT
    (raw,) = _generate(processor, model, enc, skip_special_tokens=False)
    stripped = re.sub(r"<\|channel>.*?<channel\|>", "", raw, flags=re.DOTALL)
    assert stripped.removesuffix("<turn|>") == JSON_SCRIPT


# ---------------------------------------------------------------------------------------------
# loading


def test_gemma4_processor_loads_without_torchvision(loaded, images):
    from transformers.utils import is_torchvision_available

    processor, _ = loaded("g4")
    assert type(processor).__name__ in ("Gemma4Processor", "Gemma4ProcessorNoTorchvision")
    if is_torchvision_available():
        pytest.skip("torchvision is installed: the fallback is not used")
    assert type(processor).__name__ == "Gemma4ProcessorNoTorchvision"
    assert processor.image_processor.max_soft_tokens == 280
    frames = [images[0], images[0]]
    with pytest.raises(RuntimeError, match="sampled frames"):
        processor(text=["<|video|>"], videos=[frames])


def test_load_model_keeps_the_checkpoint_dtype_on_cpu(tiny_dirs):
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    model = loading.load_model(str(tiny_dirs["g3"]))
    assert model.dtype == torch.float32 and not model.training
    assert str(model.device) == "cpu"
    bf16 = loading.load_model(str(tiny_dirs["g3"]), dtype="bf16", attn_implementation="eager")
    assert bf16.dtype == torch.bfloat16


def test_select_device_and_dtype():
    if not torch.cuda.is_available():
        expected = {("cpu", None), ("mps", torch.bfloat16), ("mps", torch.float16)}
        assert loading.select_device_and_dtype() in expected
        with pytest.raises(ValueError, match="CUDA is not available"):
            loading.select_device_and_dtype("cuda")
    else:
        assert loading.select_device_and_dtype() == ("cuda", torch.bfloat16)
    assert loading.select_device_and_dtype("cpu") == ("cpu", None)
    assert loading.select_device_and_dtype("cpu", "fp32") == ("cpu", torch.float32)
    assert loading.select_device_and_dtype("cpu", torch.bfloat16) == ("cpu", torch.bfloat16)
    assert loading.select_device_and_dtype("cpu", "auto") == ("cpu", None)
    with pytest.raises(ValueError, match="invalid device"):
        loading.select_device_and_dtype("gpu")
    with pytest.raises(ValueError, match="invalid dtype"):
        loading.select_device_and_dtype("cpu", "int8")


def test_model_family(loaded):
    assert loading.model_family(loaded("g4")[1]) == "gemma4"
    assert loading.model_family(loaded("g3")[1].config) == "gemma3"
    assert loading.model_family({"model_type": "gemma3n"}) == "other"
    assert loading.model_family(object()) == "other"


def test_importing_loading_is_cheap():
    code = (
        "import sys; import vlmkit_gemma.loading; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    env_path = [str(_PLUGIN_SRC), *sys.path]
    subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = {env_path!r}; {code}"],
        check=True,
        timeout=60,
    )
