"""The tiny demo models, loaded and run through the real path (registry -> backends.hf -> pipeline).

Every demo architecture is built once per session, loaded once per module, and streamed with a
small generated image. Whole file: ~10 s on 2 CPU cores (mostly importing transformers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from arena import demo
from arena.backends import hf
from arena.backends.base import chat_messages
from arena.config import Settings
from arena.errors import ModelError
from arena.registry import TransformersSpec, load_registry
from tests.conftest import skip_or_fail

PROMPT = "What is in this image?"


@pytest.fixture(autouse=True)
def _restore_hub_settings(monkeypatch):
    """load_model sets the hub's timeouts in os.environ and huggingface_hub.constants: undo it."""
    import huggingface_hub.constants as constants

    defaults = {
        "HF_HUB_ETAG_TIMEOUT": "10",
        "HF_HUB_DOWNLOAD_TIMEOUT": "10",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name, default in defaults.items():
        monkeypatch.setenv(name, os.environ.get(name, default))  # restored (or removed) afterwards
        monkeypatch.setattr(constants, name, getattr(constants, name))


@pytest.fixture(scope="module")
def demo_registry(demo_models_dir):
    return load_registry(demo_models_dir / "models.yaml")


@pytest.fixture(scope="module")
def loaded(demo_registry):
    """arch -> LoadedModel, loaded on first use and kept for the module."""
    cache: dict[str, hf.LoadedModel] = {}

    def get(arch: str) -> hf.LoadedModel:
        if arch not in cache:
            cache[arch] = hf.load_model(spec_for(demo_registry, arch), Settings())
        return cache[arch]

    return get


def spec_for(registry, arch: str) -> TransformersSpec:
    return registry.get(f"tiny-{arch.replace('_', '-')}")


def test_image(width: int = 64, height: int = 48) -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [((x * 4) % 256, (y * 5) % 256, (x * y) % 256) for y in range(height) for x in range(width)]
    )
    return image


test_image.__test__ = False  # a helper, not a test


def require(arch: str) -> None:
    why = demo.missing_requirements(arch)
    if why:
        skip_or_fail(why)  # requirements.txt has every package: CI fails instead


def printable(text: str) -> bool:
    return all(ch.isprintable() or ch in "\n\t" for ch in text)


# --------------------------------------------------------------------------- building


def test_builds_at_least_four_architectures(demo_registry, demo_models_dir):
    ids = [spec.id for spec in demo_registry.specs]
    assert len(ids) >= 4
    assert len(set(ids)) == len(ids)
    assert {"llava", "idefics3", "qwen2_vl", "paligemma"} <= set(demo.available_architectures())
    for spec in demo_registry.specs:
        assert spec.backend == "transformers"
        assert Path(spec.model).is_dir() and Path(spec.model).parent == demo_models_dir.resolve()
        assert spec.device == "cpu" and spec.dtype == "float32" and spec.temperature == 0
        assert spec.max_new_tokens <= 32


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_build_is_fast_and_deterministic(tmp_path):
    started = time.perf_counter()
    demo.build_demo_models(tmp_path / "a", seed=3)
    assert time.perf_counter() - started < 10
    demo.build_demo_models(tmp_path / "b", seed=3)
    demo.build_demo_models(tmp_path / "c", seed=4, architectures=("llava",))
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a["llava/model.safetensors"] != c["llava/model.safetensors"]


def test_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown demo architecture"):
        demo.build_demo_models(tmp_path, architectures=("gpt2",))


# --------------------------------------------------------------------------- generation


@pytest.mark.parametrize("arch", demo.ARCHITECTURES)
def test_streams_a_deterministic_answer(arch, loaded, demo_registry):
    require(arch)
    spec = spec_for(demo_registry, arch)
    model = loaded(arch)
    assert type(model.model).__name__ == demo.ARCHITECTURE_CLASSES[arch]
    messages = chat_messages(test_image(), [PROMPT])

    stream = model.stream(messages, spec)
    pieces = list(stream)
    text = "".join(pieces)
    assert len(pieces) > 1, pieces
    assert text.strip(), pieces
    assert printable(text), repr(text)
    assert stream.finished and 0 < stream.tokens <= spec.max_new_tokens

    again = "".join(model.stream(messages, spec))
    assert again == text


@pytest.mark.parametrize("arch", demo.ARCHITECTURES)
def test_streamed_answer_is_the_pipelines_own_answer(arch, loaded, demo_registry):
    require(arch)
    spec = spec_for(demo_registry, arch).model_copy(update={"max_new_tokens": 60})
    model = loaded(arch)
    messages = chat_messages(test_image(), [PROMPT])
    stream = model.stream(messages, spec)
    pieces = list(stream)
    (whole,) = model.pipe(
        text=messages, generate_kwargs=model.generation_kwargs(spec), return_full_text=False
    )
    assert "".join(pieces) == whole["generated_text"] and stream.tokens == 60
    assert len(pieces) > 1  # streamed, not all at the end


@pytest.mark.parametrize("arch", demo.ARCHITECTURES)
def test_follow_up_conversation(arch, loaded, demo_registry):
    require(arch)
    spec = spec_for(demo_registry, arch)
    model = loaded(arch)
    first = "".join(model.stream(chat_messages(test_image(), [PROMPT]), spec))
    messages = chat_messages(
        test_image(), [PROMPT, "Why do you say that?"], [first], system_prompt="Answer briefly."
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    pieces = list(model.stream(messages, spec))
    text = "".join(pieces)
    assert len(pieces) > 1 and text.strip() and printable(text)
    assert "".join(model.stream(messages, spec)) == text


def test_sampling_and_token_limit(loaded, demo_registry):
    spec = spec_for(demo_registry, "llava").model_copy(
        update={"temperature": 0.8, "top_p": 0.9, "max_new_tokens": 5}
    )
    model = loaded("llava")
    stream = model.stream(chat_messages(test_image(), [PROMPT]), spec)
    assert "".join(stream).strip()
    seven = spec.model_copy(update={"max_new_tokens": 7})
    longer = model.stream(chat_messages(test_image(), [PROMPT]), seven)
    assert "".join(longer).strip()
    assert (stream.tokens, longer.tokens) == (5, 7)  # each stream keeps its own count


def test_video_capable_processors_load_without_torchvision(loaded):
    from transformers.utils import is_torchvision_available

    for arch in ("qwen2_vl", "smolvlm"):
        if demo.missing_requirements(arch):
            continue
        model = loaded(arch)
        assert model.processor_without_video is (not is_torchvision_available())
        assert (
            "video_processor" not in type(model.processor).get_attributes()
            or is_torchvision_available()
        )
    assert loaded("llava").processor_without_video is False


def test_closing_the_stream_stops_generation(loaded, demo_registry):
    spec = spec_for(demo_registry, "llava").model_copy(update={"max_new_tokens": 400})
    model = loaded("llava")
    stream = model.stream(chat_messages(test_image(), [PROMPT]), spec)
    assert next(stream)
    stream.close()
    assert not stream.finished and stream.tokens is None
    assert "generate-tiny-llava" not in [t.name for t in threading.enumerate()]
    usual = spec_for(demo_registry, "llava")
    after = model.stream(chat_messages(test_image(), [PROMPT]), usual)
    assert "".join(after).strip() and after.tokens == usual.max_new_tokens


def test_generation_error_reaches_the_consumer(loaded, demo_registry):
    broken = dataclasses.replace(loaded("llava"))

    def explode(*args, **kwargs):
        raise RuntimeError("kaboom in the generation thread")

    broken.pipe = explode
    started = time.perf_counter()
    with pytest.raises(ModelError, match="kaboom") as info:
        list(broken.stream(chat_messages(test_image(), [PROMPT]), spec_for(demo_registry, "llava")))
    assert info.value.model_id == "tiny-llava"
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------- load errors


def test_missing_local_directory_names_the_model(tmp_path):
    spec = TransformersSpec(
        id="ghost", backend="transformers", model=str(tmp_path / "nope"), device="cpu"
    )
    with pytest.raises(ModelError) as info:
        hf.load_model(spec, Settings())
    assert info.value.model_id == "ghost"
    assert "not found" in info.value.cause and "nope" in info.value.cause
    assert "ghost" in str(info.value)


def test_registry_relative_path_that_is_missing(tmp_path):
    (tmp_path / "models.yaml").write_text(
        "models:\n  - {id: lost, backend: transformers, model: ./lost, device: cpu}\n",
        encoding="utf-8",
    )
    spec = load_registry(tmp_path / "models.yaml").get("lost")
    with pytest.raises(ModelError, match="'lost' failed: local model directory .* not found"):
        hf.load_model(spec, Settings())


def test_hub_id_fails_fast_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = TransformersSpec(
        id="remote",
        backend="transformers",
        model="llava-hf/llava-interleave-qwen-0.5b-hf",
        device="cpu",
    )
    started = time.perf_counter()
    with pytest.raises(ModelError) as info:
        hf.load_model(spec, Settings(hub_timeout_s=2))
    assert time.perf_counter() - started < 10
    assert info.value.model_id == "remote"
    assert "llava-hf/llava-interleave-qwen-0.5b-hf" in info.value.cause
    assert "download it first or point 'model' at a local directory" in info.value.cause


def test_hub_id_without_network_fails_fast(monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def no_network(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", no_network)
    spec = TransformersSpec(
        id="remote", backend="transformers", model="org/not-cached-model", device="cpu"
    )
    started = time.perf_counter()
    with pytest.raises(ModelError) as info:
        hf.load_model(spec, Settings(hub_timeout_s=2))
    assert time.perf_counter() - started < 10
    assert (
        "cannot download 'org/not-cached-model' from the Hugging Face hub (no network?)"
        in info.value.cause
    )
    assert huggingface_hub.constants.HF_HUB_ETAG_TIMEOUT == 2


def test_not_a_hub_id_nor_directory():
    spec = TransformersSpec(id="odd", backend="transformers", model="a/b/c", device="cpu")
    with pytest.raises(ModelError, match="neither a local directory nor a Hugging Face hub id"):
        hf.load_model(spec, Settings())


def test_text_only_model_is_refused(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(tmp_path)
    spec = TransformersSpec(
        id="text-only", backend="transformers", model=str(tmp_path), device="cpu"
    )
    with pytest.raises(ModelError, match="not an image-text-to-text model"):
        hf.load_model(spec, Settings())


def test_unavailable_cuda_is_a_model_error(demo_registry):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    spec = spec_for(demo_registry, "llava").model_copy(update={"device": "cuda:0"})
    with pytest.raises(ModelError, match="CUDA is not available"):
        hf.load_model(spec, Settings())


def test_device_and_dtype_resolution():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert hf.resolve_device("auto") == expected
    assert hf.resolve_device("cpu") == "cpu"
    assert hf.resolve_dtype("auto", "cpu") is torch.float32
    assert hf.resolve_dtype("auto", "cuda:1") is torch.bfloat16
    assert hf.resolve_dtype("float16", "cpu") is torch.float16


# --------------------------------------------------------------------------- the no-torchvision processors


@pytest.mark.parametrize(
    "name",
    ["Qwen2VLProcessor", "Qwen2_5_VLProcessor", "SmolVLMProcessor", "LlavaOnevisionProcessor"],
)
def test_processor_without_video(name):
    import transformers

    cls = getattr(transformers, name)
    sub = hf.processor_without_video(cls)
    assert sub is not cls and issubclass(sub, cls) and sub.__name__ == cls.__name__
    assert sub.get_attributes() == [a for a in cls.get_attributes() if a != "video_processor"]
    init_args = sub.__init__.__code__.co_varnames[: sub.__init__.__code__.co_argcount]
    parent_args = cls.__init__.__code__.co_varnames[: cls.__init__.__code__.co_argcount]
    assert list(init_args) == [a for a in parent_args if a != "video_processor"]


def test_processor_without_video_leaves_image_only_processors_alone():
    from transformers import LlavaProcessor

    assert hf.processor_without_video(LlavaProcessor) is LlavaProcessor
