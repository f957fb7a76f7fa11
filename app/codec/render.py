"""Render one frame as a consumer image (JPEG, PNG, GIF): PS3.18 8.3.5 rendered resources and WADO-URI.

A plain function with keyword arguments so WADO-RS /rendered, /thumbnail and WADO-URI share it:
Modality LUT (rescale), VOI window (from the ``window`` parameter, else the object's window or VOI LUT,
else the frame's range), MONOCHROME1 inversion, RGB / YBR / PALETTE COLOR through pydicom's pixel
handling, viewport cropping and scaling, JPEG quality, and burned-in annotation text.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}
WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")
ANNOTATIONS = ("patient", "technique")


class RenderError(ValueError):
    """A rendering parameter is malformed (the caller's 400) or the frame cannot be shown."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class Viewport:
    width: int
    height: int
    sx: int | None = None           # source region (PS3.18 8.3.5.1.3); negative sw/sh flip the image
    sy: int | None = None
    sw: int | None = None
    sh: int | None = None


def _numbers(text: str, name: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise RenderError(f"{name}={text!r}: expected comma-separated numbers") from None
    if not all(math.isfinite(value) for value in values):
        raise RenderError(f"{name}={text!r}: expected finite numbers")
    return values


def parse_window(text: str | None) -> Window | None:
    """``window=center,width[,function]`` (PS3.18 8.3.5.1.4)."""
    if not text:
        return None
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise RenderError(f"window={text!r}: expected center,width[,function]")
    center, width = _numbers(",".join(parts[:2]), "window")
    function = parts[2].strip().lower() if len(parts) == 3 else "linear"
    if function not in WINDOW_FUNCTIONS:
        raise RenderError(f"window function {function!r} is not one of {', '.join(WINDOW_FUNCTIONS)}")
    if width <= 0 or (function == "linear" and width < 1):
        raise RenderError(f"window width {width:g} is not valid for {function}")
    return Window(center, width, function)


def parse_viewport(text: str | None) -> Viewport | None:
    """``viewport=vw,vh[,sx,sy,sw,sh]`` (PS3.18 8.3.5.1.3)."""
    if not text:
        return None
    values = _numbers(text, "viewport")
    if len(values) not in (2, 6) or any(v != int(v) for v in values):
        raise RenderError(f"viewport={text!r}: expected vw,vh or vw,vh,sx,sy,sw,sh as integers")
    vw, vh = int(values[0]), int(values[1])
    if not (0 < vw <= 8192 and 0 < vh <= 8192):
        raise RenderError(f"viewport {vw}x{vh} is outside 1..8192")
    if len(values) == 6:
        sx, sy, sw, sh = (int(v) for v in values[2:])
        if sx < 0 or sy < 0 or sw == 0 or sh == 0:
            raise RenderError(f"viewport source region {sx},{sy},{sw},{sh} is not valid")
        return Viewport(vw, vh, sx, sy, sw, sh)
    return Viewport(vw, vh)


def parse_quality(text: str | None) -> int | None:
    """``quality=1..100`` (PS3.18 8.3.5.1.5)."""
    if text is None or text == "":
        return None
    try:
        quality = int(text)
    except ValueError:
        raise RenderError(f"quality={text!r}: expected an integer 1..100") from None
    if not 1 <= quality <= 100:
        raise RenderError(f"quality={quality} is outside 1..100")
    return quality


def parse_annotation(text: str | None) -> tuple[str, ...]:
    """``annotation=patient,technique`` (PS3.18 8.3.5.1.1)."""
    if not text:
        return ()
    items = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [item for item in items if item not in ANNOTATIONS]
    if unknown:
        raise RenderError(f"annotation {', '.join(unknown)} is not one of {', '.join(ANNOTATIONS)}")
    return items


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        high = low + 1
    scaled = (values.astype(np.float64) - low) / (high - low)
    return (np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8)


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    c, w = window.center, window.width
    if window.function == "linear-exact":
        out = (values - c) / w + 0.5
    elif window.function == "sigmoid":
        out = 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    else:   # PS3.3 C.11.2.1.2.1
        out = (values - (c - 0.5)) / (w - 1) + 0.5
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _grayscale(arr: np.ndarray, header: Dataset, window: Window | None) -> np.ndarray:
    values = apply_modality_lut(arr, header).astype(np.float64)
    if window is not None:
        gray = _apply_window(values, window)
    elif "WindowCenter" in header and "WindowWidth" in header:
        center, width = header.WindowCenter, header.WindowWidth
        center = float(center[0] if hasattr(center, "__len__") and not isinstance(center, str) else center)
        width = float(width[0] if hasattr(width, "__len__") and not isinstance(width, str) else width)
        function = str(header.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
        gray = _apply_window(values, Window(center, max(width, 1.0),
                                            function if function in WINDOW_FUNCTIONS else "linear"))
    elif "VOILUTSequence" in header:
        out = apply_voi_lut(arr, header).astype(np.float64)
        gray = _to_uint8(out, float(out.min()), float(out.max()))
    else:
        gray = _to_uint8(values, float(values.min()), float(values.max()))
    if str(header.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        gray = 255 - gray
    return gray


def _color(arr: np.ndarray, header: Dataset, photometric: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, header)
        top = 255 if rgb.dtype == np.uint8 else (1 << int(header.get("RedPaletteColorLookupTableDescriptor",
                                                                       [0, 0, 16])[2])) - 1
        return _to_uint8(rgb, 0, top)
    if photometric in ("YBR_FULL", "YBR_FULL_422") and arr.ndim == 3:
        arr = convert_color_space(arr, photometric, "RGB")
    if arr.dtype != np.uint8:
        bits = int(header.get("BitsStored", 8) or 8)
        return _to_uint8(arr, 0, (1 << bits) - 1)
    return arr


def _viewport(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    if viewport is None:
        return image
    if viewport.sx is not None:
        sx, sy, sw, sh = viewport.sx, viewport.sy, viewport.sw, viewport.sh
        box = (sx, sy, min(image.width, sx + abs(sw)), min(image.height, sy + abs(sh)))
        if box[0] >= box[2] or box[1] >= box[3]:
            raise RenderError("viewport source region lies outside the image")
        image = image.crop(box)
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def _annotate(image: Image.Image, lines: list[str]) -> Image.Image:
    if not lines:
        return image
    image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    fill = 255 if image.mode == "L" else (255, 255, 0)
    shadow = 0 if image.mode == "L" else (0, 0, 0)
    y = 2
    for line in lines:
        draw.text((3, y + 1), line, fill=shadow, font=font)
        draw.text((2, y), line, fill=fill, font=font)
        y += 12
    return image


def annotation_lines(header: Dataset, annotations: tuple[str, ...], frame: int | None = None,
                     window: Window | None = None) -> list[str]:
    lines: list[str] = []
    if "patient" in annotations:
        names = (header.get("PatientName", ""), header.get("PatientID", ""))
        lines.append(" ".join(str(x) for x in names if x))
        if header.get("StudyDate"):
            lines.append(f"Study {header.StudyDate} {header.get('StudyDescription', '')}".strip())
    if "technique" in annotations:
        text = [str(header.get("Modality", "")), f"Se {header.get('SeriesNumber', '')}",
                f"Im {header.get('InstanceNumber', '')}"]
        if frame is not None:
            text.append(f"Fr {frame}")
        if window is not None:
            text.append(f"W {window.width:g} C {window.center:g}")
        lines.append(" ".join(t for t in text if t.strip()))
    return [line for line in lines if line]


def render_frame(arr: np.ndarray, *, header: Dataset, media_type: str = "image/jpeg",
                 window: Window | None = None, viewport: Viewport | None = None, quality: int | None = None,
                 annotations: tuple[str, ...] = (), frame: int | None = None) -> bytes:
    """Encode one decoded frame ``arr`` (rows, columns[, samples]) as ``media_type``.

    ``header``: the object's attributes without Pixel Data (photometric interpretation, rescale, window,
    LUTs, and the annotation text).
    """
    if media_type not in FORMATS:
        raise RenderError(f"cannot render as {media_type}")
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("MONOCHROME") or (arr.ndim == 2 and photometric != "PALETTE COLOR"):
        pixels = _grayscale(arr if arr.ndim == 2 else arr[..., 0], header, window)
        image = Image.fromarray(pixels)
    else:
        pixels = _color(arr, header, photometric)
        image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    image = _viewport(image, viewport)
    image = _annotate(image, annotation_lines(header, annotations, frame, window))
    out = io.BytesIO()
    kind = FORMATS[media_type]
    if kind == "JPEG":
        image.save(out, "JPEG", quality=quality or 90)
    elif kind == "GIF":
        image.save(out, "GIF")
    else:
        image.save(out, "PNG", optimize=False)
    return out.getvalue()
