"""Find bounding boxes in a model's answer and draw them on a copy of the image.

Three ways models write boxes, all turned into image pixels:

- JSON: `[x1, y1, x2, y2]` in pixels, or in 0-1 fractions when all four values lie in [0, 1];
  lists of them; objects with a `bbox_2d`, `bbox` or `box` key and an optional `label`
  (Qwen2.5-VL and other grounding models), bare or in a ```json fence inside prose.
- Qwen2-VL: `<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`
  on a 0-1000 grid; the label is optional and carries over to boxes that follow it directly.
- PaliGemma: `<locY1><locX1><locY2><locX2> label`, four 0-1023 tokens per detection (divide
  by 1024), detections separated by ` ; `.

find_boxes never raises on arbitrary text: what does not parse, or encloses no pixel, is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

MAX_BOXES = 50
MAX_TEXT = 100_000  # characters of an answer that are searched
MAX_LABEL = 40  # characters of a label that are drawn
JSON_BUDGET = 1_000_000  # characters the JSON decoder may read in attempts that fail
BOX_KEYS = ("bbox_2d", "bbox", "box")
LABEL_KEYS = ("label", "name", "class", "category")


@dataclass(frozen=True)
class Box:
    x1: int
    y1: int
    x2: int
    y2: int
    label: str | None = None


def find_boxes(text: str, width: int, height: int) -> list[Box]:
    """Boxes in `text`, in the order they appear, as pixels of a width x height image."""
    if not isinstance(text, str) or width < 1 or height < 1:
        return []
    text = text[:MAX_TEXT]
    found = [*_qwen2(text), *_paligemma(text), *_json(text)]
    found.sort(key=lambda item: item[0])
    boxes = []
    for item in found:
        box = _to_pixels(item, width, height)
        if box is not None and box not in boxes:
            boxes.append(box)
        if len(boxes) == MAX_BOXES:
            break
    return boxes


# Each parser yields (position in text, (x1, y1, x2, y2), label, unit).
FRACTION, PIXEL = "fraction", "pixel"
Found = tuple[int, tuple[float, float, float, float], str | None, str]

_NUM = r"\s*(\d{1,7}(?:\.\d{1,7})?)\s*"
_QWEN_TOKEN = re.compile(
    r"<\|object_ref_start\|>(?P<label>.{0,200}?)<\|object_ref_end\|>"
    rf"|<\|box_start\|>\s*\({_NUM},{_NUM}\)\s*,\s*\({_NUM},{_NUM}\)\s*<\|box_end\|>",
    re.DOTALL,
)
_QWEN_GAP = re.compile(r"[\s,;]*")  # between a label and its boxes, or between boxes


def _qwen2(text: str) -> Iterator[Found]:
    label, end = None, -1
    for match in _QWEN_TOKEN.finditer(text):
        if label is not None and not _QWEN_GAP.fullmatch(text, end, match.start()):
            label = None  # prose in between: the label belongs to earlier boxes only
        end = match.end()
        if match.group("label") is not None:
            label = match.group("label").strip() or None
            continue
        x1, y1, x2, y2 = (float(v) / 1000 for v in match.group(2, 3, 4, 5))
        yield match.start(), (x1, y1, x2, y2), label, FRACTION


_PALIGEMMA = re.compile(
    r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>(?P<label>[^;\n]*?)(?=;|<loc|\n|$)"
)
_SEG_TOKEN = re.compile(r"<seg\d+>")


def _paligemma(text: str) -> Iterator[Found]:
    for match in _PALIGEMMA.finditer(text):
        y1, x1, y2, x2 = (int(v) / 1024 for v in match.group(1, 2, 3, 4))
        label = _SEG_TOKEN.sub("", match.group("label")).strip() or None
        yield match.start(), (x1, y1, x2, y2), label, FRACTION


_DECODER = json.JSONDecoder()
_JSON_START = re.compile(r"[\[{]")


def _json(text: str) -> Iterator[Found]:
    """Decode JSON at every [ or { outside values already decoded; boxes from what decodes.

    Failed attempts draw on a budget of characters read, so text such as "[[[[..." costs
    milliseconds rather than a decode per bracket."""
    pos, budget = 0, JSON_BUDGET
    while budget > 0 and (match := _JSON_START.search(text, pos)):
        pos = match.start() + 1
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except json.JSONDecodeError as exc:
            budget -= max(100, exc.pos - match.start())  # the error itself costs O(len(text))
            continue
        except (ValueError, RecursionError):  # an integer too long, nesting too deep
            budget -= 10_000
            continue
        for coords, label in _walk(value):
            unit = FRACTION if all(0 <= v <= 1 for v in coords) else PIXEL
            yield match.start(), tuple(float(v) for v in coords), label, unit
        pos = end


def _walk(value: object, depth: int = 0) -> Iterator[tuple[list, str | None]]:
    """Every box in a decoded JSON value: number lists, and objects with a box key."""
    if depth > 8:
        return
    if _is_coords(value):
        yield value, None
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, depth + 1)
    elif isinstance(value, dict):
        key = next((k for k in BOX_KEYS if _is_coords(value.get(k))), None)
        if key is not None:
            yield value[key], _label(value)
        else:
            for item in value.values():
                yield from _walk(item, depth + 1)


def _is_coords(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(-1e9 < v < 1e9 for v in value)  # False for NaN and infinities too
    )


def _label(obj: dict) -> str | None:
    for key in LABEL_KEYS:
        value = obj.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value).strip() or None
    return None


def _to_pixels(found: Found, width: int, height: int) -> Box | None:
    _, (x1, y1, x2, y2), label, unit = found
    if unit == FRACTION:
        x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
    x1, x2 = sorted((_clamp(x1, width), _clamp(x2, width)))
    y1, y2 = sorted((_clamp(y1, height), _clamp(y2, height)))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return Box(x1, y1, x2, y2, label[:MAX_LABEL] if label else None)


def _clamp(value: float, limit: int) -> int:
    return min(max(round(value), 0), limit)


# Drawing ---------------------------------------------------------------------------------------

COLOURS = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
)


def draw_boxes(image: Image.Image, boxes: Iterable[Box]) -> Image.Image:
    """A copy of `image` with each box outlined and its label in a filled tag above it."""
    out = image.convert("RGBA" if image.mode == "RGBA" else "RGB")  # always a new image
    draw = ImageDraw.Draw(out)
    side = max(out.size)
    line = max(2, round(side / 250))
    font = ImageFont.load_default(size=max(12, round(side / 30)))
    for i, box in enumerate(boxes):
        colour = COLOURS[i % len(COLOURS)]
        draw.rectangle(_inclusive(box), outline=colour, width=line)
        if box.label:
            _draw_tag(draw, box, box.label, colour, font, out.size)
    return out


def _inclusive(box: Box) -> tuple[int, int, int, int]:
    """PIL rectangles include their last row and column; a Box ends just before x2, y2."""
    return box.x1, box.y1, max(box.x1, box.x2 - 1), max(box.y1, box.y2 - 1)


def _draw_tag(draw, box: Box, label: str, colour, font, size: tuple[int, int]) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    pad = max(2, (bottom - top) // 4)
    tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(box.x1, max(0, size[0] - tag_w))
    y = box.y1 - tag_h if box.y1 >= tag_h else box.y1  # no room above: inside the top edge
    draw.rectangle((x, y, x + tag_w - 1, y + tag_h - 1), fill=colour)
    draw.text((x + pad - left, y + pad - top), label, fill=_ink(colour), font=font)


def _ink(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black text on light tags, white on dark ones (ITU-R BT.601 luma)."""
    r, g, b = colour
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)
