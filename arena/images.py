"""Accept, check and normalise one uploaded image (and check prompts).

Every rejection is an InputError with one line that says what to do. Nothing here
touches the database: the caller stores only what passed.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from arena.errors import InputError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif", "bmp")
MB = 1024 * 1024  # ARENA_MAX_UPLOAD_MB counts these


@dataclass(frozen=True)
class CheckedImage:
    data: bytes  # the file as uploaded; stored once, keyed by sha256
    sha256: str
    format: str
    width: int  # of the uploaded file
    height: int
    image: Image.Image  # RGB, EXIF-rotated, downscaled: what the models see


def check_image(
    data: bytes, settings, filename: str = "image", *, upload: bool = True
) -> CheckedImage:
    """`upload=False` for the shipped sample images: not uploads, so ARENA_MAX_UPLOAD_MB does
    not apply to them; the pixel and side limits do."""
    if not data:
        raise InputError(
            f"{filename} is empty (0 bytes): upload a PNG, JPEG, WebP, GIF or BMP image."
        )
    if upload and len(data) > settings.max_upload_mb * MB:  # floats: no int() to overflow
        raise InputError(
            f"{filename} is {_size(len(data))}, over the {settings.max_upload_mb:g} MB limit: "
            "upload a smaller image (ARENA_MAX_UPLOAD_MB raises the limit)."
        )
    img = _open(data, filename, settings.max_pixels)
    width, height = img.size
    fmt = img.format
    try:
        img.seek(0)  # GIF and other multi-frame files: the first frame
        img.load()
        rgb = to_rgb(ImageOps.exif_transpose(img))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"{filename} is damaged or truncated ({exc}): upload the complete file."
        ) from None
    rgb = downscale(rgb, settings.max_image_side)
    return CheckedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=width,
        height=height,
        image=rgb,
    )


def _size(n_bytes: int) -> str:
    """In the limit's own unit (MB = 1024 x 1024 bytes), with KB for small files."""
    return f"{n_bytes / MB:.1f} MB" if n_bytes >= MB else f"{n_bytes / 1024:.1f} KB"


def _open(data: bytes, filename: str, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise InputError(
                f"{filename} is over the {max_pixels / 1e6:g} megapixel limit: upload a smaller image (ARENA_MAX_PIXELS)."
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            img = None
    if img is None or img.format not in FORMATS:
        raise InputError(
            f"{filename} is not a supported image: upload a PNG, JPEG, WebP, GIF or BMP file."
        )
    w, h = img.size
    if w * h > max_pixels:
        raise InputError(
            f"{filename} is {w}x{h} = {w * h / 1e6:.3g} megapixels, over the "
            f"{max_pixels / 1e6:g} megapixel limit: upload a smaller image (ARENA_MAX_PIXELS)."
        )
    if w == 0 or h == 0:
        raise InputError(f"{filename} has no pixels: upload a real image.")
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """CMYK, palette, grey, 16-bit and alpha images to 8-bit RGB (alpha over white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def downscale(img: Image.Image, max_side: int) -> Image.Image:
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def check_prompt(prompt: str | None, settings) -> str:
    text = (prompt or "").strip()
    if not text:
        raise InputError("The prompt is empty: type a question about the image.")
    if len(text) > settings.max_prompt_chars:
        raise InputError(
            f"The prompt is {len(text)} characters, over the {settings.max_prompt_chars} limit: "
            "shorten it (ARENA_MAX_PROMPT_CHARS raises the limit)."
        )
    return text
