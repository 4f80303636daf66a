"""models.yaml validation: each broken file gives one line naming file, entry and field."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from arena.errors import RegistryError
from arena.registry import load_registry

GOOD = """
models:
  - id: left
    name: Left model
    backend: transformers
    model: org/left
    weight: 3
  - id: right
    backend: transformers
    model: org/right
  - id: served
    backend: openai
    base_url: http://127.0.0.1:8000/v1
    model: served-name
    api_key_env: SERVED_KEY
  - id: named-only
    backend: transformers
    model: org/named
    weight: 0
  - id: disabled-one
    backend: transformers
    model: org/off
    enabled: false
"""


def write(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_good_registry(tmp_path):
    reg = load_registry(write(tmp_path, GOOD))
    assert [s.id for s in reg.specs] == ["left", "right", "served", "named-only", "disabled-one"]
    assert reg.get("left").display_name == "Left model" and reg.get("right").display_name == "right"
    assert [s.id for s in reg.battle_pool] == ["left", "right", "served"]
    assert reg.get("served").api_key_env == "SERVED_KEY"
    assert reg.get("left").device == "auto" and reg.get("left").dtype == "auto"


def test_pairs_are_drawn_by_weight_in_random_order(tmp_path):
    reg = load_registry(write(tmp_path, GOOD))
    rng = random.Random(0)
    pairs = [reg.draw_pair(rng) for _ in range(3000)]
    assert all(a.id != b.id for a, b in pairs)
    seen = Counter(s.id for pair in pairs for s in pair)
    assert set(seen) == {"left", "right", "served"}  # weight 0 and disabled never drawn
    assert seen["left"] > seen["right"]
    left_first = Counter(a.id for a, _ in pairs)
    assert 0.4 < left_first["left"] / seen["left"] < 0.6  # left/right at random


@pytest.mark.parametrize(
    "text,message",
    [
        ("models: [\n  - id: a\n", r"YAML error at line \d+"),
        ("models:\n  - id: a\n    model: x\n  bad indent: [\n", r"YAML error at line"),
        ("models: []\n", r"'models:' list"),
        ("just text\n", r"'models:' list"),
        (
            "models:\n  - id: a\n    backend: tensorflow\n    model: x\n",
            r"entry 1 \(id 'a'\): field 'backend': unknown backend 'tensorflow'",
        ),
        (
            "models:\n  - id: a\n    backend: transformers\n",
            r"entry 1 \(id 'a'\): field 'model': is required",
        ),
        (
            "models:\n  - id: a\n    model: x\n  - id: a\n    model: y\n",
            r"entry 2: field 'id': duplicate id 'a'",
        ),
        (
            "models:\n  - id: a\n    model: x\n    weight: -1\n",
            r"field 'weight': .*greater than or equal to 0",
        ),
        (
            "models:\n  - id: a\n    model: x\n    wieght: 2\n",
            r"field 'wieght': is not a known field",
        ),
        ("models:\n  - id: a\n    model: x\n    temperature: hot\n", r"field 'temperature'"),
        ("models:\n  - id: a\n    model: x\n    device: tpu\n", r"field 'device'"),
        ("models:\n  - model: x\n", r"entry 1: field 'id': is required"),
        (
            "models:\n  - id: s\n    backend: openai\n    model: x\n",
            r"field 'base_url': is required",
        ),
        (
            "models:\n  - id: s\n    backend: openai\n    model: x\n    base_url: ftp://x\n",
            r"field 'base_url'",
        ),
        (
            "models:\n  - id: s\n    backend: openai\n    model: x\n    base_url: http://x\n    api_key: sk-123\n",
            r"field 'api_key': is not a known field",
        ),
        ("models:\n  - 42\n", r"entry 1: expected a mapping"),
        (
            "models:\n  - id: off\n    model: x\n",
            r"field 'id': YAML read False, not text: put the value in quotes",
        ),
        (
            "models:\n  - id: a\n    model: x\n    aliases: SmolVLM\n",
            r"field 'aliases': expected a list, e\.g\. \[SmolVLM, SmolVLM-256M\]",
        ),
        (
            "models:\n  - id: a\n    model: x\n    aliases: [SmolVLM, 256]\n",
            r"field 'aliases' item 2: YAML read 256, not text: put the value in quotes",
        ),
        (
            "models:\n  - id: a\n    model: x\n    aliases: [[SmolVLM]]\n",
            r"field 'aliases' item 1: expected text, got a list",
        ),
        (
            "models:\n  - id: a\n    model: x\n    aliases: [{SmolVLM: 1}]\n",
            r"field 'aliases' item 1: expected text, got a mapping",
        ),
        (
            "models:\n  - id: a\n    model: x\n    aliases: [SmolVLM, '  ']\n",
            r"field 'aliases' item 2: must not be empty",
        ),
        (
            "models:\n  - id: a\n    model: x\n    vendor: ''\n",
            r"field 'vendor': must not be empty",
        ),
        (
            "models:\n  - id: a\n    model: x\n    vendor: [OpenAI]\n",
            r"field 'vendor': expected text, got a list",
        ),
        (
            "models:\n  - id: a\n    model: x\n    vendor: yes\n",
            r"field 'vendor': YAML read True, not text: put the value in quotes",
        ),
        (
            "models:\n  - id: a\n    model: x\n    vendors: OpenAI\n",
            r"field 'vendors': is not a known field",
        ),
    ],
)
def test_broken_registries(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RegistryError, match=message) as info:
        load_registry(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "fields,aliases,vendor",
    [
        ("", (), None),
        (
            "    aliases: [SmolVLM, ' Smol VLM ']\n    vendor: Hugging Face\n",
            ("SmolVLM", "Smol VLM"),
            "Hugging Face",
        ),
        ("    aliases:\n    vendor: '01.AI'\n", (), "01.AI"),  # an empty aliases: is none
        ("    aliases:\n      - GPT-4o\n      - '4o'\n", ("GPT-4o", "4o"), None),
    ],
)
def test_aliases_and_vendor_are_optional_names(tmp_path, fields, aliases, vendor):
    reg = load_registry(write(tmp_path, "models:\n  - id: a\n    model: x\n" + fields))
    assert reg.get("a").aliases == aliases and reg.get("a").vendor == vendor


def test_missing_file(tmp_path):
    with pytest.raises(RegistryError, match="ARENA_MODELS"):
        load_registry(tmp_path / "nope.yaml")


def test_anonymous_battles_need_two_models(tmp_path):
    reg = load_registry(write(tmp_path, "models:\n  - id: a\n    model: x\n"))
    with pytest.raises(RegistryError, match="at least two"):
        reg.draw_pair()
    with pytest.raises(RegistryError, match="no model with id 'zz'"):
        reg.get("zz")


def test_local_directories_resolve_next_to_the_registry(tmp_path):
    (tmp_path / "tiny").mkdir()
    reg = load_registry(
        write(
            tmp_path,
            "models:\n  - id: a\n    model: ./tiny\n  - id: b\n    model: tiny\n  - id: c\n    model: org/hub\n",
        )
    )
    assert reg.get("a").model == str(tmp_path / "tiny") == reg.get("b").model
    assert reg.get("c").model == "org/hub"
