"""Image and prompt checks over bad files the tests generate."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from arena.config import Settings
from arena.errors import InputError
from arena.images import check_image, check_prompt

SETTINGS = Settings(max_upload_mb=1, max_pixels=4_000_000, max_image_side=256, max_prompt_chars=50)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming a huge size, with no real pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


RGB = Image.new("RGB", (40, 30), (10, 200, 30))
NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_accepted_formats(fmt):
    checked = check_image(encode(RGB, fmt), SETTINGS, "x")
    assert checked.format == fmt and checked.image.mode == "RGB" and checked.image.size == (40, 30)
    assert (checked.width, checked.height) == (40, 30) and len(checked.sha256) == 64


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"hello, I am text", "not a supported image"),
        (b"%PDF-1.4 fake", "not a supported image"),
        (encode(RGB, "PNG")[:60], "damaged or truncated|not a supported image"),
        (encode(NOISE, "JPEG")[:2000], "damaged or truncated"),
        (png_header_only(30000, 30000), "megapixel limit"),
        (png_header_only(3000, 3000), "megapixel limit"),
        (b"\x00" * (1024 * 1024 + 1), "over the 1 MB limit"),
        (encode(RGB, "TIFF"), "not a supported image"),
    ],
    ids=[
        "zero-bytes",
        "text",
        "pdf",
        "truncated-png",
        "truncated-jpeg",
        "decompression-bomb",
        "over-pixel-setting",
        "too-large-file",
        "tiff",
    ],
)
def test_bad_files(data, message):
    with pytest.raises(InputError, match=message) as info:
        check_image(data, SETTINGS, "upload.bin")
    assert "\n" not in str(info.value)


def test_gif_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    img = check_image(buf.getvalue(), SETTINGS).image
    r, g, b = img.getpixel((10, 10))
    assert r > 200 and b < 50


def test_exif_rotation_applied():
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    checked = check_image(encode(img, "JPEG", exif=exif), SETTINGS)
    assert checked.image.size == (20, 60)


@pytest.mark.parametrize(
    "img",
    [
        Image.new("CMYK", (16, 16), (0, 255, 255, 0)),
        Image.new("P", (16, 16), 3),
        Image.new("L", (16, 16), 128),
        Image.new("RGBA", (16, 16), (255, 0, 0, 0)),
        Image.new("LA", (16, 16), (0, 255)),
        Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16)),
    ],
    ids=["cmyk", "palette", "grey", "rgba", "la", "16-bit"],
)
def test_modes_converted_to_rgb(img):
    fmt = "JPEG" if img.mode == "CMYK" else "PNG"
    out = check_image(encode(img, fmt), SETTINGS).image
    assert out.mode == "RGB"
    if img.mode == "RGBA":
        assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent over white
    if img.mode.startswith("I"):
        assert out.getpixel((0, 0)) == (255, 255, 255)  # 16-bit white stays white


def test_downscaled_to_max_side():
    checked = check_image(encode(Image.new("RGB", (1000, 500)), "PNG"), SETTINGS)
    assert checked.image.size == (256, 128)
    assert (checked.width, checked.height) == (1000, 500)  # the stored file keeps its size


@pytest.mark.parametrize(
    "prompt,message",
    [("", "empty"), ("   \n ", "empty"), (None, "empty"), ("x" * 51, "over the 50 limit")],
)
def test_bad_prompts(prompt, message):
    with pytest.raises(InputError, match=message):
        check_prompt(prompt, SETTINGS)


def test_prompt_trimmed():
    assert check_prompt("  what is this?  ", SETTINGS) == "what is this?"


def test_a_tiny_upload_limit_counts_kilobytes_and_spares_the_shipped_samples():
    from arena.samples import SAMPLES, SAMPLES_DIR

    tiny = Settings(max_upload_mb=0.001)  # 1 KB: valid, if odd
    data = encode(NOISE, "PNG")
    with pytest.raises(InputError, match=r"^x.png is \d+\.\d KB, over the 0.001 MB limit: "):
        check_image(data, tiny, "x.png")
    assert check_image(data, tiny, "x.png", upload=False).image.size == (200, 200)
    for sample in SAMPLES:  # a sample is not an upload: only the pixel and side limits apply
        checked = check_image(
            (SAMPLES_DIR / sample.file).read_bytes(), tiny, sample.file, upload=False
        )
        assert checked.image.size == (checked.width, checked.height)
    lowest = Settings(max_pixels=4096, max_image_side=64)  # the lowest values allowed
    with pytest.raises(InputError, match="megapixel limit"):
        check_image(
            (SAMPLES_DIR / SAMPLES[0].file).read_bytes(), lowest, SAMPLES[0].file, upload=False
        )
    assert max(check_image(encode(RGB.resize((64, 64)), "PNG"), lowest, "x").image.size) == 64
