"""The shipped models' real hub files, with random weights, through the real loading path.

`../shared/data/hub-configs/` holds the configs, processor configs, tokenizers and chat templates
the hub publishes for the models of models.yaml (no weights). Each complete set is built here as
a random-weight model with the real widths (hidden sizes, vocabulary, vision tower, patch and
image sizes) but 2 text layers and 1 vision layer, saved with `save_pretrained` beside copies of
the real files, then loaded with `load_model` from that directory (the real AutoProcessor, the
no-torchvision fallback for the video-capable ones), asked about a real-size image with the
fields of its models.yaml entry, and made to battle through `arena.battle` into SQLite.

llava-interleave's files are checked with the processor only: its config is the 7B's, and even
with one layer per tower the model is 1.49 B parameters (measured: 66 s to build, 3 GB on disk,
9.2 GB resident to answer), too much for CI on 2 cores.

Whole file: 70-110 s on the shared 2-core build machine (2026-12-01), 3.3 GB peak resident in
the test process (the battle's two worker processes come on top); most of it is the Qwen2-VL
vocabulary (152k x 1536), SmolVLM's 13 image tiles and starting the battle's workers.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image
from sqlalchemy import text

from arena import battle as flow
from arena.backends import Backends, hf
from arena.backends.base import chat_messages
from arena.config import Settings
from arena.images import check_image
from arena.kinds import Mode, Outcome, Requester
from arena.registry import load_registry
from arena.samples import SAMPLES_DIR
from arena.store import Store
from tests.conftest import SHARED_DATA, skip_or_fail

pytestmark = pytest.mark.slow

HUB_CONFIGS = SHARED_DATA / "hub-configs"
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models.yaml"
PROMPT = "What is in this image?"
TEXT_LAYERS, VISION_LAYERS = 2, 1
INIT_STD = 0.2  # as arena/demo.py: the default 0.02 makes greedy decoding repeat one token
SEED = 0
MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class HubSet:
    folder: str  # under HUB_CONFIGS
    entry: str  # the models.yaml id it stands for
    buildable: bool  # False: checked with the processor only
    tokenizer_from: str | None = None  # a folder whose tokenizer files stand in for missing ones
    video_capable: bool = False  # its processor has a video sub-processor (needs torchvision)
    # measured with this transformers (5.24): image tokens for 1536x1152 / 640x480, and the
    # number of image tiles the processor cuts (1 = no splitting)
    image_tokens: tuple[int, int] = (0, 0)
    tiles: int = 1


SETS = {
    # Idefics3 processor: resizes the longest edge to size.longest_edge (2048, so it *enlarges*
    # a 640x480 image too), then cuts 512-px tiles (max_image_size) plus one global view, 64
    # tokens each: a 4:3 image is always 4x3 + 1 = 13 tiles, 832 image tokens, 876 prompt tokens.
    "smolvlm": HubSet(
        "SmolVLM-256M-Instruct",
        "smolvlm-256m-instruct",
        buildable=True,
        image_tokens=(832, 832),
        tiles=13,
    ),
    # min_pixels 3136, max_pixels 12845056 (12.8 MP): one token per 28x28 pixels, so 2255
    # tokens for 1536x1152 (2282 in the prompt), 391 for 640x480 (418).
    "qwen2_vl": HubSet(
        "Qwen2-VL-2B-Instruct",
        "qwen2-vl-2b-instruct",
        buildable=True,
        video_capable=True,
        image_tokens=(2255, 391),
    ),
    # as SmolVLM but size.longest_edge 1024 in these files: 2x2 + 1 = 5 tiles, 320 tokens (347).
    "smolvlm2": HubSet(
        "SmolVLM2-256M-Video-Instruct",
        "smolvlm2-256m-video-instruct",
        buildable=True,
        tokenizer_from="SmolVLM-256M-Instruct",
        video_capable=True,
        image_tokens=(320, 320),
        tiles=5,
    ),
    # SigLIP 384 px, patch 14, "full" features: always 729 image tokens (744 in the prompt).
    "llava_interleave": HubSet(
        "llava-interleave-qwen-7b-hf",
        "llava-interleave-qwen-0.5b",
        buildable=False,
        image_tokens=(729, 729),
    ),
}
BUILDABLE = [name for name, s in SETS.items() if s.buildable]


@pytest.fixture(autouse=True)
def _restore_hub_settings(monkeypatch):
    """load_model sets the hub's timeouts in os.environ and huggingface_hub.constants: undo it."""
    import huggingface_hub.constants as constants

    for name, default in (
        ("HF_HUB_ETAG_TIMEOUT", "10"),
        ("HF_HUB_DOWNLOAD_TIMEOUT", "10"),
        ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ):
        monkeypatch.setenv(name, os.environ.get(name, default))
        monkeypatch.setattr(constants, name, getattr(constants, name))


def hub_folder(folder: str) -> Path:
    path = HUB_CONFIGS / folder
    if not (path / "config.json").is_file():
        skip_or_fail(f"the real hub files are missing: {path} (see {HUB_CONFIGS}/README.md)")
    return path


def copy_hub_files(hub_set: HubSet, target: Path) -> None:
    """The real files (but config.json, which the model writes), plus stand-ins for missing ones.

    Qwen2-VL's vocab.json + merges.txt + tokenizer_config.json load as they are. llava needs a
    tokenizer.json: transformers maps model_type llava to the tokenizers backend, which cannot
    build one from vocab + merges, so Qwen2Tokenizer writes it (the hub repository has one).
    """
    files = {}
    if hub_set.tokenizer_from:
        files.update({f.name: f for f in hub_folder(hub_set.tokenizer_from).iterdir()})
    files.update({f.name: f for f in hub_folder(hub_set.folder).iterdir()})
    target.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        if name != "config.json":
            shutil.copy(path, target / name)
    if not (target / "tokenizer.json").exists() and hub_set.folder.startswith("llava"):
        from transformers import Qwen2Tokenizer

        Qwen2Tokenizer.from_pretrained(target).backend_tokenizer.save(
            str(target / "tokenizer.json")
        )


def shrink(config, layers: int) -> None:
    """Keep the widths, cut the depth; per-layer lists (layer_types) follow the new depth."""
    name = "depth" if hasattr(config, "depth") else "num_hidden_layers"
    old = getattr(config, name)
    setattr(config, name, layers)
    for key, value in vars(config).items():
        if isinstance(value, list) and len(value) == old:
            setattr(config, key, value[:layers])


def build(hub_set: HubSet, target: Path) -> Path:
    """A random-weight model with the real widths, saved beside the real files."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(hub_folder(hub_set.folder))
    shrink(config.text_config, TEXT_LAYERS)
    shrink(config.vision_config, VISION_LAYERS)
    torch.manual_seed(SEED)
    model = AutoModelForImageTextToText.from_config(config)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, INIT_STD)
    model.save_pretrained(target)
    copy_hub_files(hub_set, target)  # the real generation_config.json replaces the saved one
    return target


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> directory of the built model, built on first use and kept for the module."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = build(SETS[name], tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def loaded(built, tmp_path_factory):
    """name -> (its spec from the shipped entry, the LoadedModel), loaded once for the module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            path = write_registry(
                tmp_path_factory.mktemp("registry") / "models.yaml", {name: built(name)}
            )
            spec = load_registry(path).get(SETS[name].entry)
            cache[name] = (spec, hf.load_model(spec, Settings()))
        return cache[name]

    yield get
    for _, model in cache.values():
        model.close()


def shipped_entry(entry_id: str) -> dict:
    entries = yaml.safe_load(SHIPPED_MODELS.read_text(encoding="utf-8"))["models"]
    return next(e for e in entries if e["id"] == entry_id)


def write_registry(path: Path, models: dict[str, Path]) -> Path:
    """A models.yaml of the shipped entries, pointed at the built directories."""
    entries = [
        {**shipped_entry(SETS[name].entry), "model": str(folder), "max_new_tokens": MAX_NEW_TOKENS}
        for name, folder in models.items()
    ]
    path.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    return path


def picture(width: int, height: int) -> Image.Image:
    """A real picture (the shipped landscape sample) at the given size."""
    return Image.open(SAMPLES_DIR / "landscape.png").convert("RGB").resize((width, height))


def image_token_id(config) -> int:
    return getattr(config, "image_token_id", None) or config.image_token_index


def processor_inputs(processor, messages: list[dict], image: Image.Image) -> dict:
    """What the image-text-to-text pipeline feeds the model for these messages."""
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[prompt], images=[[image]], return_tensors="pt")


# --------------------------------------------------------------------------- processors


@pytest.mark.parametrize("name", list(SETS))
def test_real_processor_image_tokens_and_context(name, tmp_path):
    from transformers import AutoConfig
    from transformers.utils import is_torchvision_available

    hub_set = SETS[name]
    copy_hub_files(hub_set, tmp_path)
    shutil.copy(hub_folder(hub_set.folder) / "config.json", tmp_path / "config.json")
    config = AutoConfig.from_pretrained(tmp_path)
    processor, without_video = hf.load_processor(str(tmp_path), config, local_files_only=True)
    assert without_video is (hub_set.video_capable and not is_torchvision_available())
    context = config.text_config.max_position_embeddings
    max_new_tokens = shipped_entry(hub_set.entry)["max_new_tokens"]

    counts = []
    for size in ((1536, 1152), (640, 480)):
        image = picture(*size)
        inputs = processor_inputs(processor, chat_messages(image, [PROMPT]), image)
        ids = inputs["input_ids"][0]
        counts.append(int((ids == image_token_id(config)).sum()))
        if "pixel_values" in inputs and "image_grid_thw" not in inputs:
            tiles = inputs["pixel_values"].shape[1] if inputs["pixel_values"].dim() == 5 else 1
            assert tiles == hub_set.tiles, size
        assert len(ids) + max_new_tokens < context
    assert tuple(counts) == hub_set.image_tokens

    # A whole conversation (system prompt, follow-up) still holds the image exactly once.
    image = picture(640, 480)
    messages = chat_messages(
        image, [PROMPT, "And the colours?"], ["A house."], system_prompt="Answer briefly."
    )
    ids = processor_inputs(processor, messages, image)["input_ids"][0]
    assert int((ids == image_token_id(config)).sum()) == hub_set.image_tokens[1]


# --------------------------------------------------------------------------- one model


@pytest.mark.parametrize("name", BUILDABLE)
def test_real_configuration_streams_an_answer(name, loaded):
    from transformers.utils import is_torchvision_available

    spec, model = loaded(name)
    assert model.processor_without_video is (
        SETS[name].video_capable and not is_torchvision_available()
    )
    stream = model.stream(chat_messages(picture(1024, 768), [PROMPT]), spec)
    pieces = list(stream)
    assert "".join(pieces).strip(), pieces
    assert stream.finished and 0 < stream.tokens <= MAX_NEW_TOKENS


def test_sampling_follows_models_yaml_not_the_hub_top_k(loaded):
    """Qwen2-VL-2B-Instruct's generation_config.json has top_k=1: it must not make sampling greedy."""
    spec, model = loaded("qwen2_vl")
    assert model.model.generation_config.top_k == 1  # the real file's value
    sampled = spec.model_copy(update={"temperature": 1.0})
    messages = chat_messages(Image.open(SAMPLES_DIR / "landscape.png").convert("RGB"), [PROMPT])
    answers = {"".join(model.stream(messages, sampled)) for _ in range(3)}
    assert len(answers) > 1, answers


# --------------------------------------------------------------------------- a battle


def test_battle_of_two_real_configurations_is_stored(built, tmp_path):
    path = write_registry(
        tmp_path / "models.yaml", {"smolvlm": built("smolvlm"), "qwen2_vl": built("qwen2_vl")}
    )
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'arena.db'}", models=str(path))
    registry = load_registry(path)
    buffer = io.BytesIO()
    picture(640, 480).save(buffer, "PNG")
    image = check_image(buffer.getvalue(), settings)
    a, b = flow.pick_models(registry, Mode.NAMED, ("smolvlm-256m-instruct", "qwen2-vl-2b-instruct"))
    battle = flow.Battle(mode=Mode.NAMED, spec_a=a, spec_b=b, image=image)
    me = Requester(session_id="s", voter_id="v")
    store = Store.open(settings)
    backends = Backends(registry, settings)
    try:
        flow.start(store, battle, me)
        events = list(flow.ask(backends, battle, PROMPT))
        for side, result in zip("ab", battle.results[-1], strict=True):
            assert result.ok, result.error
            assert result.answer == "".join(e.text for e in events if e.side == side)
            assert 0 < result.tokens <= MAX_NEW_TOKENS and 0 < result.ttft <= result.total
        flow.save_turn(store, battle)
        flow.cast_vote(store, battle, Outcome.TIE, me)
        with store.engine.connect() as conn:
            row = conn.execute(
                text("SELECT model_a, model_b, outcome FROM votes WHERE battle_id = :id"),
                {"id": battle.battle_id},
            ).one()
    finally:
        backends.close()
        store.engine.dispose()
    assert tuple(row) == ("smolvlm-256m-instruct", "qwen2-vl-2b-instruct", "tie")
