"""Sample images to start a battle from, drawn here with PIL so they are ours to ship.

The PNGs live in arena/assets/samples/; regenerate them with `python -m arena.samples`.
Text uses Pillow's built-in font (ImageFont.load_default), so nothing outside Pillow is needed.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "samples"


@dataclass(frozen=True)
class Sample:
    file: str  # name under SAMPLES_DIR
    title: str
    prompt: str  # a question worth asking about it
    answer: str  # what the picture shows, for a person judging the answers
    draw: Callable[[], Image.Image] = field(repr=False, compare=False)


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


# Scenes ----------------------------------------------------------------------------------------


def landscape() -> Image.Image:
    img = Image.new("RGB", (480, 320))
    draw = ImageDraw.Draw(img)
    for y in range(320):  # sky: deeper blue at the top
        t = y / 320
        draw.line((0, y, 479, y), fill=(int(90 + 110 * t), int(160 + 70 * t), 235))
    for i in range(12):  # sun rays, then the sun, top right
        dx, dy = [(1, 0), (0.87, 0.5), (0.5, 0.87), (0, 1), (-0.5, 0.87), (-0.87, 0.5)][i % 6]
        sign = 1 if i < 6 else -1
        draw.line(
            (400, 60, 400 + sign * dx * 55, 60 + sign * dy * 55), fill=(255, 214, 70), width=4
        )
    draw.ellipse((370, 30, 430, 90), fill=(255, 200, 40))
    draw.ellipse((-120, 190, 300, 420), fill=(110, 170, 80))  # hills
    draw.ellipse((180, 200, 620, 440), fill=(90, 150, 65))
    draw.rectangle((0, 270, 479, 319), fill=(95, 155, 70))
    draw.rectangle((250, 120, 268, 160), fill=(120, 60, 50))  # chimney
    draw.rectangle((150, 170, 300, 280), fill=(245, 230, 200))  # house
    draw.polygon([(135, 172), (225, 105), (315, 172)], fill=(190, 50, 45))
    draw.rectangle((205, 215, 240, 280), fill=(40, 90, 200))  # blue door
    draw.ellipse((230, 246, 236, 252), fill=(250, 210, 60))
    for x in (165, 257):  # windows with crossed frames
        draw.rectangle(
            (x, 190, x + 30, 220), fill=(180, 220, 250), outline=(255, 255, 255), width=3
        )
        draw.line((x + 15, 190, x + 15, 220), fill=(255, 255, 255), width=2)
        draw.line((x, 205, x + 30, 205), fill=(255, 255, 255), width=2)
    draw.polygon([(205, 280), (240, 280), (260, 319), (185, 319)], fill=(200, 180, 140))  # path
    draw.rectangle((378, 200, 392, 285), fill=(110, 75, 40))  # tree
    for box in ((345, 140, 405, 200), (365, 120, 425, 180), (360, 165, 420, 225)):
        draw.ellipse(box, fill=(40, 120, 50))
    return img


def bar_chart() -> Image.Image:
    img = Image.new("RGB", (480, 340), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.text((240, 22), "Fruit sold on Saturday", fill=(30, 30, 30), font=_font(20), anchor="mm")
    left, bottom, top, scale = 70, 290, 60, 5.5  # pixels per box sold
    for value in range(0, 41, 10):  # grid lines and the value axis
        y = bottom - value * scale
        draw.line((left, y, 450, y), fill=(225, 225, 225))
        draw.text((left - 8, y), str(value), fill=(60, 60, 60), font=_font(13), anchor="rm")
    draw.line((left, top, left, bottom), fill=(40, 40, 40), width=2)
    draw.line((left, bottom, 450, bottom), fill=(40, 40, 40), width=2)
    label = Image.new("RGBA", (120, 20))
    ImageDraw.Draw(label).text(
        (60, 10), "Boxes sold", fill=(40, 40, 40), font=_font(14), anchor="mm"
    )
    img.paste(label.rotate(90, expand=True), (8, 115), label.rotate(90, expand=True))
    for i, (name, value, colour) in enumerate(FRUIT):
        x = left + 25 + i * 92
        draw.rectangle((x, bottom - value * scale, x + 60, bottom - 1), fill=colour)
        draw.text(
            (x + 30, bottom - value * scale - 10),
            str(value),
            fill=(30, 30, 30),
            font=_font(15),
            anchor="mm",
        )
        draw.text((x + 30, bottom + 16), name, fill=(40, 40, 40), font=_font(14), anchor="mm")
    return img


FRUIT = (
    ("Apples", 24, (220, 60, 60)),
    ("Bananas", 35, (240, 200, 50)),
    ("Cherries", 12, (150, 20, 60)),
    ("Grapes", 30, (120, 70, 170)),
)


def street_sign() -> Image.Image:
    img = Image.new("RGB", (400, 420))
    draw = ImageDraw.Draw(img)
    for y in range(420):
        t = y / 420
        draw.line((0, y, 399, y), fill=(int(150 + 80 * t), int(195 + 45 * t), 245))
    draw.rectangle((0, 380, 399, 419), fill=(170, 170, 165))  # pavement
    draw.rectangle((193, 60, 207, 395), fill=(120, 125, 130))  # pole
    draw.rounded_rectangle(
        (70, 60, 330, 120), radius=8, fill=(0, 110, 60), outline=(255, 255, 255), width=4
    )
    draw.text((200, 90), "MAPLE AVE", fill=(255, 255, 255), font=_font(34), anchor="mm")
    octagon = [(200 + 62 * dx, 240 + 62 * dy) for dx, dy in _OCTAGON]
    draw.polygon(octagon, fill=(200, 20, 30))
    inner = [(200 + 55 * dx, 240 + 55 * dy) for dx, dy in _OCTAGON]
    draw.polygon(inner, outline=(255, 255, 255), width=3)
    draw.text((200, 240), "STOP", fill=(255, 255, 255), font=_font(34), anchor="mm")
    return img


_OCTAGON = (
    (-0.41, -1),
    (0.41, -1),
    (1, -0.41),
    (1, 0.41),
    (0.41, 1),
    (-0.41, 1),
    (-1, 0.41),
    (-1, -0.41),
)


SHAPES = {  # name -> (colour, centres); the shapes sample's answer counts these
    "red circle": ((220, 40, 40), ((60, 60), (250, 50), (160, 200), (330, 230))),
    "yellow circle": ((245, 200, 40), ((150, 80), (60, 240))),
    "blue square": ((40, 90, 210), ((340, 70), (250, 150), (60, 150))),
    "green triangle": ((40, 160, 70), ((150, 135), (250, 260))),
}


def shapes() -> Image.Image:
    img = Image.new("RGB", (400, 300), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    for name, (colour, centres) in SHAPES.items():
        for x, y in centres:
            if name == "red circle":
                draw.ellipse((x - 28, y - 28, x + 28, y + 28), fill=colour)
            elif name == "yellow circle":
                draw.ellipse((x - 24, y - 24, x + 24, y + 24), fill=colour)
            elif name == "blue square":
                draw.rectangle((x - 25, y - 25, x + 25, y + 25), fill=colour)
            else:
                draw.polygon([(x, y - 28), (x + 30, y + 22), (x - 30, y + 22)], fill=colour)
    return img


ITEMS = (("2 x Coffee", 700), ("Croissant", 280), ("Orange juice", 420), ("Blueberry muffin", 300))
TAX_PERCENT = 8


def receipt_total() -> str:
    subtotal = sum(cents for _, cents in ITEMS)
    return _money(subtotal + _tax(subtotal))


def _tax(cents: int) -> int:
    return round(cents * TAX_PERCENT / 100)


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def receipt() -> Image.Image:
    img = Image.new("RGB", (320, 440), (200, 190, 175))
    draw = ImageDraw.Draw(img)
    paper = [(20, 0), (300, 0)] + [(300 - i * 14, 420 + 8 * (i % 2)) for i in range(21)]
    draw.polygon(paper, fill=(253, 252, 246))  # zigzag torn edge at the bottom
    ink, font = (35, 35, 40), _font(15)
    draw.text((160, 30), "CORNER CAFE", fill=ink, font=_font(24), anchor="mm")
    draw.text((160, 56), "12 Harbour Street", fill=ink, font=_font(13), anchor="mm")
    draw.text((160, 74), "2024-05-18  09:42", fill=ink, font=_font(13), anchor="mm")
    subtotal = sum(cents for _, cents in ITEMS)
    lines = [(name, _money(cents)) for name, cents in ITEMS]
    lines += [
        ("", ""),
        ("Subtotal", _money(subtotal)),
        (f"Tax {TAX_PERCENT}%", _money(_tax(subtotal))),
    ]
    y = 100
    for name, price in lines:
        draw.text((40, y), name, fill=ink, font=font)
        draw.text((280, y), price, fill=ink, font=font, anchor="ra")
        y += 28
    draw.line((40, y, 280, y), fill=ink, width=2)
    draw.text((40, y + 12), "TOTAL", fill=ink, font=_font(20))
    draw.text((280, y + 12), receipt_total(), fill=ink, font=_font(20), anchor="ra")
    draw.text((160, y + 70), "Thank you!", fill=ink, font=font, anchor="mm")
    return img


def smiley() -> Image.Image:
    img = Image.new("RGB", (320, 320), (225, 240, 250))
    draw = ImageDraw.Draw(img)
    draw.ellipse((30, 30, 290, 290), fill=(255, 205, 60), outline=(225, 160, 30), width=5)
    for x in (115, 205):
        draw.ellipse((x - 16, 105, x + 16, 150), fill=(70, 45, 30))
        draw.ellipse((x - 8, 112, x + 2, 124), fill=(255, 255, 255))
        draw.ellipse(
            (x - 38, 170, x - 8, 190) if x < 160 else (x + 8, 170, x + 38, 190),
            fill=(250, 150, 120),
        )
    draw.chord((90, 140, 230, 250), start=0, end=180, fill=(130, 40, 40))  # open smile
    draw.chord((120, 215, 200, 255), start=200, end=340, fill=(240, 110, 110))  # tongue
    draw.rectangle((110, 195, 210, 202), fill=(255, 205, 60))  # top of the mouth, flat
    draw.rectangle((118, 196, 202, 206), fill=(255, 255, 255))  # teeth
    return img


SAMPLES = (
    Sample(
        "landscape.png",
        "House on a hill",
        "Describe this scene. What colour is the door of the house?",
        "A blue door; a house with a red roof, a tree and the sun at the top right.",
        landscape,
    ),
    Sample(
        "bar_chart.png",
        "Bar chart",
        "Which fruit sold the most, and how many boxes?",
        "Bananas, 35 boxes (Apples 24, Cherries 12, Grapes 30).",
        bar_chart,
    ),
    Sample(
        "street_sign.png",
        "Street sign",
        "What does the green street sign say?",
        "MAPLE AVE, above a red STOP sign.",
        street_sign,
    ),
    Sample(
        "shapes.png",
        "Shapes to count",
        "How many red circles are there?",
        "4 red circles (also 2 yellow circles, 3 blue squares, 2 green triangles).",
        shapes,
    ),
    Sample(
        "receipt.png",
        "Cafe receipt",
        "What is the total on this receipt, and what was the most expensive item?",
        "Total 18.36; the most expensive line is 2 x Coffee at 7.00.",
        receipt,
    ),
    Sample(
        "smiley.png",
        "Smiley face",
        "What emotion does this face show?",
        "Happy: a yellow face with a big open smile and rosy cheeks.",
        smiley,
    ),
)


def sample_paths() -> list[Path]:
    """The shipped sample images, in SAMPLES order."""
    return [SAMPLES_DIR / s.file for s in SAMPLES]


@functools.cache
def sample_shas() -> frozenset[str]:
    """The sha256 of each shipped sample file, as a battle started from one stores its image
    (the page sends the file's bytes unchanged): how a stored battle is known to be on a sample."""
    return frozenset(hashlib.sha256(path.read_bytes()).hexdigest() for path in sample_paths())


def make_samples(out_dir: Path | str = SAMPLES_DIR) -> list[Path]:
    """Draw every sample into out_dir as PNG; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in SAMPLES:
        path = out / sample.file
        sample.draw().save(path, format="PNG", optimize=True)
        paths.append(path)
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES_DIR
    for written in make_samples(target):
        print(f"{written}  {written.stat().st_size / 1024:.1f} KB")
