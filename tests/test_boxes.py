"""arena.boxes: every box format parses to image pixels; drawing marks the boxes and only them."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from arena.boxes import MAX_BOXES, Box, draw_boxes, find_boxes

W, H = 400, 300  # the image every case below is parsed for

QWEN2_CAT = "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(100,200),(500,800)<|box_end|>"
QWEN25 = """Here are the objects I found:
```json
[
\t{"bbox_2d": [10, 20, 110, 220], "label": "cat"},
\t{"bbox_2d": [200, 50, 390, 290], "label": "dog"}
]
```"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a. JSON: pixels, fractions, fenced, in prose, objects with several key names
        ("[10, 20, 110, 220]", [Box(10, 20, 110, 220)]),
        ("[0.1, 0.2, 0.5, 0.6]", [Box(40, 60, 200, 180)]),
        ("The cat is at [0.25, 0.5, 0.75, 1.0].", [Box(100, 150, 300, 300)]),
        ("[[10, 20, 30, 40], [50, 60, 70, 80]]", [Box(10, 20, 30, 40), Box(50, 60, 70, 80)]),
        (QWEN25, [Box(10, 20, 110, 220, "cat"), Box(200, 50, 390, 290, "dog")]),
        ('{"box": [1, 2, 30, 40], "label": "sun"}', [Box(1, 2, 30, 40, "sun")]),
        ('[{"bbox": [0, 0, 0.5, 0.5], "name": "sky"}]', [Box(0, 0, 200, 150, "sky")]),
        ('{"objects": [{"bbox_2d": [5, 5, 50, 50]}]}', [Box(5, 5, 50, 50)]),
        ("```json\n[5, 6, 7.4, 8.6]\n```", [Box(5, 6, 7, 9)]),
        # b. Qwen2-VL, 0-1000 grid, label optional, a label carries to the boxes right after it
        (QWEN2_CAT, [Box(40, 60, 200, 240, "cat")]),
        ("<|box_start|>(0,0),(1000,1000)<|box_end|>", [Box(0, 0, 400, 300)]),
        (
            "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(0,0),(500,500)<|box_end|>"
            "<|box_start|>(500,500),(1000,1000)<|box_end|> and also "
            "<|box_start|>(100,100),(200,200)<|box_end|>",
            [Box(0, 0, 200, 150, "dog"), Box(200, 150, 400, 300, "dog"), Box(40, 30, 80, 60)],
        ),
        (
            "A <|object_ref_start|>sun<|object_ref_end|><|box_start|>( 250 , 0 ),( 500 , 250 )"
            "<|box_end|> over a <|object_ref_start|>house<|object_ref_end|>"
            "<|box_start|>(0,500),(250,1000)<|box_end|>.",
            [Box(100, 0, 200, 75, "sun"), Box(0, 150, 100, 300, "house")],
        ),
        # c. PaliGemma: y1 x1 y2 x2 on a 0-1023 grid, / 1024, detections split by " ; "
        ("<loc0256><loc0512><loc0768><loc1023> cat", [Box(200, 75, 400, 225, "cat")]),
        ("<loc0000><loc0000><loc0512><loc0512>", [Box(0, 0, 200, 150)]),
        (
            "<loc0000><loc0000><loc0512><loc0512> red circle ; "
            "<loc0512><loc0512><loc1023><loc1023> blue square",
            [Box(0, 0, 200, 150, "red circle"), Box(200, 150, 400, 300, "blue square")],
        ),
        ("<loc0000><loc0000><loc0512><loc0512><seg012><seg099> cat", [Box(0, 0, 200, 150, "cat")]),
    ],
)
def test_formats_parse_to_pixels(text, expected):
    assert find_boxes(text, W, H) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[-50, -10, 1000, 1000]", [Box(0, 0, W, H)]),  # clamped to the image
        ("[300, 200, 100, 50]", [Box(100, 50, 300, 200)]),  # corners swapped back into order
        ("<|box_start|>(900,900),(100,100)<|box_end|>", [Box(40, 30, 360, 270)]),
        ("[10, 10, 10, 50]", []),  # zero width
        ("[500, 500, 600, 600]", []),  # wholly outside: nothing left after clamping
        ("[1, 2, 3]", []),  # three numbers
        ('[1, 2, "3", 4]', []),
        ("[true, false, true, true]", []),
        ("[NaN, 0, 10, 10]", []),
        ("[1e400, 0, 10, 10]", []),
        ("[10, 20, 110, 220", []),  # unclosed
        ("<|box_start|>(1,2),(3)<|box_end|>", []),
        ("<loc0001><loc0002><loc0003> cat", []),  # three loc tokens
        ("[10, 20, 110, 220] and again [10, 20, 110, 220]", [Box(10, 20, 110, 220)]),
    ],
)
def test_malformed_and_degenerate_boxes(text, expected):
    assert find_boxes(text, W, H) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "There is one cat on the sofa.",
        "Counts: [1, 2] and {'a': 1}",
        '{"answer": "three", "confidence": 0.9}',
        "```python\nprint([1, 2, 3])\n```",
        "<|object_ref_start|>cat<|object_ref_end|> is not boxed",
        "<loc12><loc34> short tokens",
    ],
)
def test_text_without_boxes(text):
    assert find_boxes(text, W, H) == []


def test_formats_mixed_come_back_in_text_order():
    text = (
        "PaliGemma says <loc0000><loc0000><loc0512><loc0512> a ; then JSON [0, 0, 10, 10] "
        "then Qwen2 <|box_start|>(0,0),(100,100)<|box_end|>"
    )
    assert find_boxes(text, W, H) == [
        Box(0, 0, 200, 150, "a"),
        Box(0, 0, 10, 10),
        Box(0, 0, 40, 30),
    ]


def test_labels_are_cut_to_a_drawable_length():
    (box,) = find_boxes('{"box": [0, 0, 10, 10], "label": "' + "x" * 500 + '"}', W, H)
    assert len(box.label) == 40


def test_at_most_max_boxes():
    text = ", ".join(f"[{i}, 0, {i + 5}, 5]" for i in range(200))
    assert len(find_boxes(text, 1000, 1000)) == MAX_BOXES


@pytest.mark.parametrize(("width", "height"), [(0, 100), (100, 0), (-5, -5)])
def test_empty_image_size_gives_no_boxes(width, height):
    assert find_boxes("[0, 0, 10, 10]", width, height) == []


def _assert_inside(boxes, width, height):
    for b in boxes:
        assert 0 <= b.x1 < b.x2 <= width and 0 <= b.y1 < b.y2 <= height


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list('[]{}(),.;:<>|-0123456789 "abcloxy_\n')), max_size=300)
)
def test_never_raises_on_box_like_noise(text):
    _assert_inside(find_boxes(text, W, H), W, H)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500), st.integers(1, 5000), st.integers(1, 5000))
def test_never_raises_on_any_text(text, width, height):
    _assert_inside(find_boxes(text, width, height), width, height)


def test_never_raises_on_random_token_soup():
    rng = random.Random(0)
    pieces = [
        "<|box_start|>",
        "<|box_end|>",
        "<|object_ref_start|>",
        "<|object_ref_end|>",
        "(10,20)",
        ",",
        "<loc0100>",
        " ; ",
        "[",
        "]",
        "{",
        "}",
        '"bbox":',
        "7",
        "0.5",
        "\n",
    ]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        _assert_inside(find_boxes(text, W, H), W, H)


@pytest.mark.parametrize(
    "text",
    ["[" * 50_000, "[1," * 30_000, "{" * 50_000, "[1,1 " * 20_000, "<|object_ref_start|>" * 5_000],
    ids=["brackets", "nested-lists", "braces", "unclosed-lists", "qwen-refs"],
)
def test_pathological_text_is_handled_quickly(text):
    start = time.perf_counter()
    assert find_boxes(text, W, H) == []
    assert time.perf_counter() - start < 2


def test_box_found_after_much_bracketed_prose():
    text = "see [a] and {b}, " * 1_000 + "the cat: [10, 20, 30, 40]"
    assert find_boxes(text, W, H) == [Box(10, 20, 30, 40)]


# Drawing ---------------------------------------------------------------------------------------

GREY = (128, 128, 128)


@pytest.fixture
def grey():
    return Image.new("RGB", (W, H), GREY)


def test_draw_marks_box_edges_and_nothing_far_away(grey):
    out = draw_boxes(grey, [Box(100, 100, 200, 200)])
    assert out.getpixel((100, 150)) != GREY  # left edge
    assert out.getpixel((199, 150)) != GREY  # right edge, the last column inside the box
    assert out.getpixel((150, 100)) != GREY  # top edge
    assert out.getpixel((150, 199)) != GREY  # bottom edge
    assert out.getpixel((150, 150)) == GREY  # inside, away from the outline
    assert out.getpixel((350, 20)) == GREY  # far from the box
    assert out.getpixel((202, 150)) == GREY  # just outside the right edge


def test_draw_leaves_the_original_unchanged(grey):
    before = grey.tobytes()
    out = draw_boxes(grey, [Box(10, 10, 100, 100, "cat")])
    assert out is not grey and out.size == grey.size
    assert grey.tobytes() == before


def test_boxes_get_distinct_colours(grey):
    out = draw_boxes(grey, [Box(10, 10, 100, 100), Box(200, 10, 300, 100), Box(10, 150, 100, 250)])
    colours = {out.getpixel((10, 50)), out.getpixel((200, 50)), out.getpixel((10, 200))}
    assert len(colours) == 3


def _tag_region(out, box):
    """The pixels of the band above a box, where its tag goes."""
    band = out.crop((box.x1, max(0, box.y1 - 30), box.x2, box.y1))
    return list(band.getdata())


def test_label_drawn_in_a_filled_tag_above_the_box(grey):
    box = Box(100, 100, 300, 250, "cat")
    out = draw_boxes(grey, [box])
    unlabelled = draw_boxes(grey, [Box(100, 100, 300, 250)])
    tag = _tag_region(out, box)
    outline = out.getpixel((100, 200))
    assert tag.count(outline) > 100  # the filled tag, in the box's colour
    assert len(set(tag) - {GREY, outline}) > 0  # and text on it in another colour
    assert set(_tag_region(unlabelled, box)) == {GREY}


def test_tag_moves_inside_when_the_box_touches_the_top(grey):
    box = Box(10, 0, 200, 100, "sky")
    labelled = draw_boxes(grey, [box]).crop((10, 0, 200, 100))
    plain = draw_boxes(grey, [Box(10, 0, 200, 100)]).crop((10, 0, 200, 100))
    changed = [p != q for p, q in zip(labelled.getdata(), plain.getdata(), strict=True)]
    assert sum(changed) > 100  # the tag, drawn just below the top edge


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "1"])
def test_draw_accepts_any_image_mode(mode):
    img = Image.new("RGB", (64, 48), GREY).convert(mode)
    out = draw_boxes(img, [Box(5, 5, 40, 40, "x")])
    assert out.mode in ("RGB", "RGBA") and out.size == (64, 48)


def test_line_width_and_font_grow_with_the_image():
    small = draw_boxes(Image.new("RGB", (200, 200), GREY), [Box(50, 50, 150, 150)])
    large = draw_boxes(Image.new("RGB", (2000, 2000), GREY), [Box(500, 500, 1500, 1500)])

    def thickness(img, y):
        return sum(1 for x in range(img.width) if img.getpixel((x, y)) != GREY) // 2

    assert thickness(large, 1000) > thickness(small, 100)
