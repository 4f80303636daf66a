"""arena.samples: the shipped sample images exist, are small, match the generator, and show
what their answers say."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from arena.samples import (
    FRUIT,
    SAMPLES,
    SAMPLES_DIR,
    SHAPES,
    make_samples,
    receipt_total,
    sample_paths,
    shapes,
)

MAX_TOTAL_BYTES = 500 * 1024


def test_five_or_more_samples_with_unique_files_and_titles():
    assert len(SAMPLES) >= 5
    assert len({s.file for s in SAMPLES}) == len(SAMPLES)
    assert len({s.title for s in SAMPLES}) == len(SAMPLES)
    assert all(s.prompt.strip() and s.answer.strip() for s in SAMPLES)


def test_sample_paths_lists_every_sample_in_order():
    assert [p.name for p in sample_paths()] == [s.file for s in SAMPLES]
    assert all(p.parent == SAMPLES_DIR for p in sample_paths())


@pytest.mark.parametrize("path", sample_paths(), ids=lambda p: p.name)
def test_shipped_sample_opens_as_a_small_png(path):
    assert path.is_file(), f"{path} is missing: run python -m arena.samples"
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.mode == "RGB"
        assert 300 <= img.width <= 500 and 300 <= img.height <= 500
        img.load()  # decodes the whole file: not truncated
    assert path.stat().st_size < 100 * 1024


def test_samples_together_stay_small():
    assert sum(p.stat().st_size for p in sample_paths()) < MAX_TOTAL_BYTES


def test_generator_is_deterministic(tmp_path):
    first = make_samples(tmp_path / "a")
    second = make_samples(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.file)
def test_shipped_file_matches_the_generator(sample):
    """Catches an edit to the drawing code without a `python -m arena.samples`. Pixels, not
    bytes, and a little slack: another Pillow or FreeType may smooth text edges differently."""
    with Image.open(SAMPLES_DIR / sample.file) as shipped:
        stored = np.asarray(shipped.convert("RGB"), dtype=np.int16)
    drawn = np.asarray(sample.draw(), dtype=np.int16)
    assert stored.shape == drawn.shape
    differing = (np.abs(stored - drawn).max(axis=2) > 8).mean()
    assert differing < 0.01, f"{sample.file}: {differing:.1%} of pixels differ"


def test_make_samples_writes_into_the_given_folder(tmp_path):
    written = make_samples(tmp_path / "new" / "dir")
    assert [p.name for p in written] == [s.file for s in SAMPLES]
    assert all(p.parent == tmp_path / "new" / "dir" and p.stat().st_size > 0 for p in written)


# The answers describe the pictures -----------------------------------------------------------


@pytest.mark.parametrize("name", list(SHAPES))
def test_shapes_sample_shows_the_counted_shapes(name):
    colour, centres = SHAPES[name]
    pixels = np.asarray(shapes())
    mask = np.all(pixels == colour, axis=2)
    _, count = ndimage.label(mask)
    assert count == len(centres)


def test_shapes_answer_gives_the_counts():
    answer = next(s.answer for s in SAMPLES if s.file == "shapes.png")
    for name, (_, centres) in SHAPES.items():
        assert f"{len(centres)} {name}" in answer


def test_bar_chart_answer_names_the_tallest_bar():
    answer = next(s.answer for s in SAMPLES if s.file == "bar_chart.png")
    name, value, _ = max(FRUIT, key=lambda fruit: fruit[1])
    assert answer.startswith(f"{name}, {value} ")


def test_receipt_answer_gives_the_printed_total():
    answer = next(s.answer for s in SAMPLES if s.file == "receipt.png")
    assert receipt_total() == "18.36"
    assert f"Total {receipt_total()}" in answer
