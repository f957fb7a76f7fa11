"""What a Grayscale Softcopy Presentation State (PS3.3 A.33.1) does to one referenced image.

Applied by ``app.codec.render.render_frame(presentation=...)`` (WADO-URI ``presentationUID``): the
Modality LUT of the presentation state (Rescale Slope/Intercept, which replaces the image's), its Softcopy
VOI LUT (window or LUT data), the Presentation LUT Shape (INVERSE), the Displayed Area Selection, and the
Spatial Transformation (flip, then rotation). Items that name images (Referenced Image Sequence) apply only
to those images (and frames); items without one apply to every image the presentation state references.
Where the presentation state has no VOI for the image, the image's own window or VOI LUT is used.
Not applied: graphic and text annotations, overlays, shutters, masks and Presentation Size Mode (the
displayed area is shown scaled to the requested size).
"""
from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"


class PresentationStateError(ValueError):
    """The object is not a GSPS, or does not reference the image."""


@dataclass(frozen=True)
class PresentationEffects:
    window: tuple[float, float, str] | None = None      # center, width, VOI LUT Function (lower case)
    voi_lut: Dataset | None = None                       # a VOI LUT Sequence item (LUTDescriptor, LUTData)
    rescale: tuple[float, float] | None = None           # slope, intercept replacing the image's
    inverse: bool = False                                # Presentation LUT Shape INVERSE
    displayed_area: tuple[int, int, int, int] | None = None  # TLHC column,row and BRHC column,row (1-based)
    rotation: int = 0                                    # clockwise degrees: 0, 90, 180, 270
    flip: bool = False                                   # horizontal flip, applied before the rotation


def references(gsps: Dataset, series_uid: str, sop_uid: str) -> bool:
    """Does the presentation state's Referenced Series Sequence list this image?"""
    for series in gsps.get("ReferencedSeriesSequence", None) or []:
        if str(series.get("SeriesInstanceUID", "")) != series_uid:
            continue
        for image in series.get("ReferencedImageSequence", None) or []:
            if str(image.get("ReferencedSOPInstanceUID", "")) == sop_uid:
                return True
    return False


def _applies(item: Dataset, sop_uid: str, frame: int | None) -> bool:
    images = item.get("ReferencedImageSequence", None)
    if not images:
        return True
    for image in images:
        if str(image.get("ReferencedSOPInstanceUID", "")) != sop_uid:
            continue
        frames = image.get("ReferencedFrameNumber", None)
        if frames is None or frame is None:
            return True
        if frame in _integers(frames):
            return True
    return False


def _integers(value) -> list[int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [int(value)]
    return [int(v) for v in value]


def _first(value):
    if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        return value[0] if len(value) else None
    return value


def effects_for(gsps: Dataset, sop_uid: str, frame: int | None = None) -> PresentationEffects:
    """The effects of ``gsps`` on image ``sop_uid`` (frame ``frame``). Raises PresentationStateError when
    it is not a Grayscale Softcopy Presentation State."""
    if str(gsps.get("SOPClassUID", "")) != GSPS_CLASS:
        raise PresentationStateError(f"object {gsps.get('SOPInstanceUID', '?')} is not a Grayscale Softcopy "
                                     f"Presentation State (SOP Class {gsps.get('SOPClassUID', '?')})")
    window = voi_lut = rescale = area = None
    if "RescaleSlope" in gsps or "RescaleIntercept" in gsps:
        rescale = (float(gsps.get("RescaleSlope", 1) or 1), float(gsps.get("RescaleIntercept", 0) or 0))
    for item in gsps.get("SoftcopyVOILUTSequence", None) or []:
        if not _applies(item, sop_uid, frame):
            continue
        if "WindowCenter" in item and "WindowWidth" in item:
            function = str(item.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
            window = (float(_first(item.WindowCenter)), float(_first(item.WindowWidth)), function)
        elif item.get("VOILUTSequence"):
            voi_lut = item.VOILUTSequence[0]
        break
    for item in gsps.get("DisplayedAreaSelectionSequence", None) or []:
        if not _applies(item, sop_uid, frame):
            continue
        tlhc = item.get("DisplayedAreaTopLeftHandCorner", None)
        brhc = item.get("DisplayedAreaBottomRightHandCorner", None)
        if tlhc is not None and brhc is not None and len(tlhc) == 2 and len(brhc) == 2:
            area = (int(tlhc[0]), int(tlhc[1]), int(brhc[0]), int(brhc[1]))
        break
    rotation = int(gsps.get("ImageRotation", 0) or 0) % 360
    if rotation not in (0, 90, 180, 270):
        rotation = 0
    flip = str(gsps.get("ImageHorizontalFlip", "N")).upper() == "Y"
    inverse = str(gsps.get("PresentationLUTShape", "IDENTITY")).upper() == "INVERSE"
    return PresentationEffects(window=window, voi_lut=voi_lut, rescale=rescale, inverse=inverse,
                               displayed_area=area, rotation=rotation, flip=flip)
