"""Render one frame as a consumer image (JPEG, PNG, GIF): PS3.18 8.3.5 rendered resources and WADO-URI.

A plain function with keyword arguments so WADO-RS /rendered, /thumbnail and WADO-URI share it:
Modality LUT (rescale), VOI window (from the ``window`` parameter, else the object's window or VOI LUT,
else the frame's range), MONOCHROME1 inversion, RGB / YBR / PALETTE COLOR through pydicom's pixel
handling, viewport cropping and scaling, JPEG quality, and burned-in annotation text. WADO-URI adds
keyword arguments: ``presentation`` (the effects of a Grayscale Softcopy Presentation State, from
app.codec.presentation_state), ``region`` (a normalised crop) and ``size`` (rows/columns to fit within).

Order: Modality LUT -> VOI (window) -> Presentation LUT / MONOCHROME1 inversion -> displayed area ->
flip and rotation -> region -> size or viewport -> annotation.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space

from app.codec.presentation_state import PresentationEffects

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


def _window_of(header: Dataset) -> Window | None:
    if "WindowCenter" not in header or "WindowWidth" not in header:
        return None
    center, width = header.WindowCenter, header.WindowWidth
    center = float(center[0] if hasattr(center, "__len__") and not isinstance(center, str) else center)
    width = float(width[0] if hasattr(width, "__len__") and not isinstance(width, str) else width)
    function = str(header.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
    return Window(center, max(width, 1.0), function if function in WINDOW_FUNCTIONS else "linear")


def _presentation_window(presentation: PresentationEffects | None) -> Window | None:
    if presentation is None or presentation.window is None:
        return None
    center, width, function = presentation.window
    return Window(center, max(width, 1.0), function if function in WINDOW_FUNCTIONS else "linear")


def effective_window(header: Dataset, window: Window | None,
                     presentation: PresentationEffects | None = None) -> Window | None:
    """The window applied: the request's, else the presentation state's (a VOI LUT of the presentation
    state comes next: None), else the object's first one."""
    if window is not None:
        return window
    if presentation is not None and (presentation.window is not None or presentation.voi_lut is not None):
        return _presentation_window(presentation)
    return _window_of(header)


def _modality_values(arr: np.ndarray, header: Dataset,
                     presentation: PresentationEffects | None) -> np.ndarray:
    if presentation is not None and presentation.rescale is not None:
        slope, intercept = presentation.rescale
        return arr.astype(np.float64) * slope + intercept
    return apply_modality_lut(arr, header).astype(np.float64)


def _windowed_by_table(arr: np.ndarray, header: Dataset, window: Window | None,
                       presentation: PresentationEffects | None, inverted: bool = False) -> np.ndarray | None:
    """The same Modality LUT + window (+ inversion) computed once per stored value, then looked up per
    pixel.

    An integer image has at most a few thousand distinct values; mapping those instead of every pixel
    gives identical output at a fraction of the floating-point work. Without a window the full range is
    shown, which needs the image's extremes: the table gives them only when the Modality LUT is a linear
    rescale (monotonic). None when the table does not apply or would not pay off.
    """
    if arr.dtype.kind not in "iu" or arr.size < 4096:
        return None
    if window is None and ("ModalityLUTSequence" in header or "VOILUTSequence" in header or (
            presentation is not None and presentation.voi_lut is not None)):
        return None
    low, high = int(arr.min()), int(arr.max())
    if high - low >= min(arr.size, 1 << 20):
        return None
    values = _modality_values(np.arange(low, high + 1, dtype=arr.dtype), header, presentation)
    if window is not None:
        table = _apply_window(values, window)
    else:
        table = _to_uint8(values, float(values.min()), float(values.max()))
    if inverted:
        table = 255 - table
    # take() is the same lookup as table[indices], about twice as fast (no general fancy-indexing path).
    return table.take(np.subtract(arr, low, dtype=np.int32))


def _inverted(header: Dataset, presentation: PresentationEffects | None) -> bool:
    if presentation is not None:
        return presentation.inverse        # the presentation state's Presentation LUT decides
    return str(header.get("PhotometricInterpretation", "")) == "MONOCHROME1"


def _grayscale(arr: np.ndarray, header: Dataset, window: Window | None,
               presentation: PresentationEffects | None = None) -> np.ndarray:
    chosen = effective_window(header, window, presentation)
    inverted = _inverted(header, presentation)
    gray = _windowed_by_table(arr, header, chosen, presentation, inverted)
    if gray is not None:
        return gray
    if presentation is not None and presentation.rescale is not None:
        slope, intercept = presentation.rescale
        values = arr.astype(np.float64) * slope + intercept
    else:
        values = apply_modality_lut(arr, header).astype(np.float64)
    if chosen is not None:
        gray = _apply_window(values, chosen)
    elif presentation is not None and presentation.voi_lut is not None:
        holder = Dataset()
        holder.VOILUTSequence = [presentation.voi_lut]
        out = apply_voi_lut(np.rint(values).astype(np.int64), holder).astype(np.float64)
        gray = _to_uint8(out, float(out.min()), float(out.max()))
    elif "VOILUTSequence" in header:
        out = apply_voi_lut(arr, header).astype(np.float64)
        gray = _to_uint8(out, float(out.min()), float(out.max()))
    else:
        gray = _to_uint8(values, float(values.min()), float(values.max()))
    if inverted:
        gray = 255 - gray
    return gray


def _color(arr: np.ndarray, header: Dataset, photometric: str) -> np.ndarray:
    """8-bit RGB of a colour frame; ``photometric``: the colour space of ``arr`` (converted when YBR)."""
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


def _presentation_geometry(image: Image.Image, presentation: PresentationEffects | None) -> Image.Image:
    """Displayed area (in the image's own pixel coordinates, 1-based; outside the image is black), then
    horizontal flip, then clockwise rotation (PS3.3 C.10.4, C.10.6)."""
    if presentation is None:
        return image
    if presentation.displayed_area is not None:
        x1, y1, x2, y2 = presentation.displayed_area
        left, right = sorted((x1, x2))
        top, bottom = sorted((y1, y2))
        if right - left > 16384 or bottom - top > 16384:
            raise RenderError("the displayed area of the presentation state is too large")
        image = image.crop((left - 1, top - 1, right, bottom))
    if presentation.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    turn = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
    if presentation.rotation in turn:
        image = image.transpose(turn[presentation.rotation])
    return image


def _region(image: Image.Image, region: tuple[float, float, float, float] | None) -> Image.Image:
    """Crop to a normalised region x1,y1,x2,y2 (0..1, top left to bottom right; at least one pixel)."""
    if region is None:
        return image
    x1, y1, x2, y2 = region
    left, top = int(math.floor(x1 * image.width)), int(math.floor(y1 * image.height))
    right = max(left + 1, int(math.ceil(x2 * image.width)))
    bottom = max(top + 1, int(math.ceil(y2 * image.height)))
    return image.crop((left, top, min(right, image.width), min(bottom, image.height)))


def _fit(image: Image.Image, size: tuple[int | None, int | None] | None) -> Image.Image:
    """Scale to rows (height) and/or columns (width), keeping the aspect ratio: within both when both are
    given."""
    if size is None or (size[0] is None and size[1] is None):
        return image
    rows, columns = size
    scales = []
    if rows is not None:
        scales.append(rows / image.height)
    if columns is not None:
        scales.append(columns / image.width)
    scale = min(scales)
    new = (max(1, min(columns or 1 << 30, round(image.width * scale))),
           max(1, min(rows or 1 << 30, round(image.height * scale))))
    if new == image.size:
        return image
    return image.resize(new, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


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
                 annotations: tuple[str, ...] = (), frame: int | None = None,
                 presentation: PresentationEffects | None = None,
                 region: tuple[float, float, float, float] | None = None,
                 size: tuple[int | None, int | None] | None = None, color_space: str | None = None) -> bytes:
    """Encode one decoded frame ``arr`` (rows, columns[, samples]) as ``media_type``.

    ``header``: the object's attributes without Pixel Data (photometric interpretation, rescale, window,
    LUTs, and the annotation text). ``presentation``: GSPS effects (its window applies unless ``window``
    is given); ``region``: normalised x1,y1,x2,y2 crop; ``size``: (rows, columns) to fit within.
    ``color_space``: the Photometric Interpretation of ``arr`` itself when it is not the header's: a
    decoder hands back RGB for compressed YBR_FULL / YBR_FULL_422 (``app.codec.transcode.decode_frame``
    says so), which must not be converted from YBR a second time.
    """
    if media_type not in FORMATS:
        raise RenderError(f"cannot render as {media_type}")
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("MONOCHROME") or (arr.ndim == 2 and photometric != "PALETTE COLOR"):
        pixels = _grayscale(arr if arr.ndim == 2 else arr[..., 0], header, window, presentation)
        image = Image.fromarray(pixels)
    else:
        pixels = _color(arr, header, color_space or photometric)
        image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    image = _presentation_geometry(image, presentation)
    image = _region(image, region)
    image = _fit(image, size)
    image = _viewport(image, viewport)
    shown = window if window is not None else (_presentation_window(presentation) if presentation else None)
    image = _annotate(image, annotation_lines(header, annotations, frame, shown))
    out = io.BytesIO()
    kind = FORMATS[media_type]
    if kind == "JPEG":
        image.save(out, "JPEG", quality=quality or 90)
    elif kind == "GIF":
        image.save(out, "GIF")
    else:
        image.save(out, "PNG", optimize=False)
    return out.getvalue()


def animated_gif(frames: list[bytes], frame_time_ms: float | None = None) -> bytes:
    """One animated GIF (looping) of single-frame GIFs rendered by ``render_frame``; each frame shown for
    ``frame_time_ms`` (Frame Time, default 100 ms)."""
    if not frames:
        raise RenderError("no frames to animate")
    images = [Image.open(io.BytesIO(frame)) for frame in frames]
    duration = int(round(frame_time_ms)) if frame_time_ms and frame_time_ms > 0 else 100
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return out.getvalue()
