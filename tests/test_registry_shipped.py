"""The shipped models.yaml: valid, and every model an architecture the installed transformers runs.

The hub cannot be reached here, so each entry's model_type (from its config.json on the hub) is
written down below; the test checks that transformers maps it to an image-text-to-text model
class and a processor class that both exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.registry import TransformersSpec, load_registry

SHIPPED = Path(__file__).resolve().parent.parent / "models.yaml"

# hub id -> model_type in its config.json
EXPECTED_MODEL_TYPES = {
    "llava-hf/llava-interleave-qwen-0.5b-hf": "llava",
    "HuggingFaceTB/SmolVLM-256M-Instruct": "idefics3",
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct": "smolvlm",
    "Qwen/Qwen2-VL-2B-Instruct": "qwen2_vl",
    "llava-hf/llava-onevision-qwen2-0.5b-ov-hf": "llava_onevision",
}


@pytest.fixture(scope="module")
def registry():
    return load_registry(SHIPPED)


def test_shipped_registry_loads_with_enough_models(registry):
    assert len(registry.battle_pool) >= 4
    assert all(isinstance(spec, TransformersSpec) for spec in registry.specs)


def test_shipped_models_are_distinct_architectures(registry):
    types = [EXPECTED_MODEL_TYPES.get(spec.model) for spec in registry.specs]
    assert None not in types, "add each new hub model to EXPECTED_MODEL_TYPES"
    assert len(set(types)) >= 4


def test_shipped_entries_are_hub_ids_with_sane_settings(registry):
    for spec in registry.specs:
        assert spec.model in EXPECTED_MODEL_TYPES, spec.model
        assert spec.device == "auto" and spec.dtype == "auto"
        assert 16 <= spec.max_new_tokens <= 1024


@pytest.mark.parametrize("hub_id,model_type", sorted(EXPECTED_MODEL_TYPES.items()))
def test_architecture_is_supported_by_installed_transformers(hub_id, model_type):
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    model_class = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.get(model_type)
    assert model_class, f"{hub_id}: model_type {model_type!r} is not image-text-to-text here"
    assert isinstance(getattr(transformers, model_class, None), type), model_class
    processor_class = PROCESSOR_MAPPING_NAMES.get(model_type)
    assert processor_class, f"{hub_id}: no processor for model_type {model_type!r}"
    assert isinstance(getattr(transformers, processor_class, None), type), processor_class


def test_shipped_yaml_comments_name_each_architecture_class():
    """Each entry's comment names its architecture class (kept in step with EXPECTED_MODEL_TYPES)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    text = SHIPPED.read_text(encoding="utf-8")
    for model_type in set(EXPECTED_MODEL_TYPES.values()):
        assert MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[model_type] in text
