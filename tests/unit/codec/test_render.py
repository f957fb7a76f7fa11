"""app.codec.render: the keyword arguments WADO-URI adds (region, size, presentation) next to the WADO-RS
ones, on small arrays whose every output pixel is known."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from app.codec import presentation_state as ps
from app.codec import render


def header(**attributes) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored, ds.PixelRepresentation = 16, 0
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def shown(arr, **options) -> np.ndarray:
    data = render.render_frame(arr, header=options.pop("header", header()), media_type="image/png", **options)
    return np.asarray(Image.open(io.BytesIO(data))).astype(int)


RAMP = np.arange(24, dtype=np.uint16).reshape(4, 6) * 10        # 4 rows x 6 columns, 0..230


def test_without_new_arguments_nothing_changes():
    full = shown(RAMP)
    assert full.shape == (4, 6) and full[0, 0] == 0 and full[3, 5] == 255
    assert np.array_equal(full, shown(RAMP, region=None, size=None, presentation=None))


def test_region_is_normalised_and_at_least_one_pixel():
    full = shown(RAMP)
    assert np.array_equal(shown(RAMP, region=(0.5, 0.5, 1.0, 1.0)), full[2:, 3:])
    assert shown(RAMP, region=(0.0, 0.0, 0.01, 0.01)).shape == (1, 1)


@pytest.mark.parametrize("size,expected", [((2, None), (3, 2)), ((None, 3), (3, 2)), ((8, 12), (12, 8)),
                                           ((100, 12), (12, 8)), ((2, 100), (3, 2))])
def test_size_fits_within_keeping_the_aspect(size, expected):
    data = render.render_frame(RAMP, header=header(), media_type="image/jpeg", size=size)
    assert Image.open(io.BytesIO(data)).size == expected


def test_presentation_window_rescale_and_inverse():
    effects = ps.PresentationEffects(window=(100.0, 50.0, "linear"), rescale=(2.0, -20.0), inverse=True)
    values = RAMP.astype(float) * 2 - 20
    expected = 255 - np.clip((values - 99.5) / 49 + 0.5, 0, 1) * 255
    assert np.abs(shown(RAMP, presentation=effects) - expected).max() <= 1
    # The request's window wins over the presentation state's.
    request = render.Window(115.0, 230.0)
    with_request = shown(RAMP, presentation=effects, window=request)
    assert np.abs(with_request - (255 - np.clip((values - 114.5) / 229 + 0.5, 0, 1) * 255)).max() <= 1


def test_presentation_voi_lut():
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    lut.LUTData = [0] * 100 + [255] * 156
    lut["LUTData"].VR = "US"
    out = shown(RAMP, presentation=ps.PresentationEffects(voi_lut=lut))
    assert np.array_equal(out, np.where(RAMP >= 100, 255, 0))


def test_presentation_geometry_area_flip_rotation():
    full = shown(RAMP)
    area = ps.PresentationEffects(displayed_area=(2, 1, 4, 3))
    assert np.array_equal(shown(RAMP, presentation=area), full[0:3, 1:4])
    outside = shown(RAMP, presentation=ps.PresentationEffects(displayed_area=(5, 3, 8, 6)))
    assert outside.shape == (4, 4) and np.array_equal(outside[:2, :2], full[2:4, 4:6]) and outside[3, 3] == 0
    assert np.array_equal(shown(RAMP, presentation=ps.PresentationEffects(flip=True)), full[:, ::-1])
    for degrees in (90, 180, 270):
        out = shown(RAMP, presentation=ps.PresentationEffects(rotation=degrees))
        assert np.array_equal(out, np.rot90(full, -degrees // 90))
    both = shown(RAMP, presentation=ps.PresentationEffects(flip=True, rotation=90))
    assert np.array_equal(both, np.rot90(full[:, ::-1], -1))           # flip first, then rotate


def test_monochrome1_and_presentation_lut():
    m1 = header(PhotometricInterpretation="MONOCHROME1")
    assert np.array_equal(shown(RAMP, header=m1), 255 - shown(RAMP))
    # With a presentation state its Presentation LUT Shape decides (IDENTITY: no inversion).
    assert np.array_equal(shown(RAMP, header=m1, presentation=ps.PresentationEffects()), shown(RAMP))


def gsps(**attributes) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = ps.GSPS_CLASS
    ds.SOPInstanceUID = "1.2.3.9"
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def item(images=None, **attributes) -> Dataset:
    ds = Dataset()
    for key, value in attributes.items():
        setattr(ds, key, value)
    if images is not None:
        refs = []
        for sop, frames in images:
            ref = Dataset()
            ref.ReferencedSOPInstanceUID = sop
            if frames:
                ref.ReferencedFrameNumber = frames
            refs.append(ref)
        ds.ReferencedImageSequence = refs
    return ds


def test_effects_pick_the_items_that_name_the_image_and_frame():
    state = gsps(SoftcopyVOILUTSequence=[item([("1.2.1", None)], WindowCenter=10, WindowWidth=20),
                                         item([("1.2.2", [2, 3])], WindowCenter=30, WindowWidth=40),
                                         item(None, WindowCenter=50, WindowWidth=60)],
                 DisplayedAreaSelectionSequence=[item(None, DisplayedAreaTopLeftHandCorner=[1, 2],
                                                      DisplayedAreaBottomRightHandCorner=[3, 4])],
                 ImageRotation=270, ImageHorizontalFlip="Y", PresentationLUTShape="INVERSE")
    assert ps.effects_for(state, "1.2.1").window == (10.0, 20.0, "linear")
    assert ps.effects_for(state, "1.2.2", 3).window == (30.0, 40.0, "linear")
    assert ps.effects_for(state, "1.2.2", 1).window == (50.0, 60.0, "linear")
    effects = ps.effects_for(state, "1.2.9")
    assert effects.window == (50.0, 60.0, "linear") and effects.displayed_area == (1, 2, 3, 4)
    assert effects.rotation == 270 and effects.flip and effects.inverse and effects.rescale is None


def test_effects_refuse_other_objects_and_references_are_checked():
    with pytest.raises(ps.PresentationStateError):
        ps.effects_for(gsps(SOPClassUID="1.2.840.10008.5.1.4.1.1.2"), "1.2.1")
    series = Dataset()
    series.SeriesInstanceUID = "1.2"
    series.ReferencedImageSequence = [item(None, ReferencedSOPInstanceUID="1.2.1")]
    state = gsps(ReferencedSeriesSequence=[series])
    assert ps.references(state, "1.2", "1.2.1")
    assert not ps.references(state, "1.2", "1.2.2") and not ps.references(state, "1.3", "1.2.1")


@pytest.mark.parametrize("dtype, slope, intercept, window", [
    ("uint16", 1.0, -1024.0, (40.0, 400.0)),
    ("int16", 2.5, 10.0, (0.0, 2000.0)),
    ("uint16", -1.0, 4095.0, None),
    ("int16", 1.0, 0.0, None),
    ("uint8", 1.0, 0.0, (128.0, 50.0)),
])
def test_table_lookup_equals_per_pixel_arithmetic(dtype, slope, intercept, window):
    """The per-value table is an optimisation only: its output must equal the per-pixel computation."""
    import numpy as np
    from pydicom.dataset import Dataset

    from app.codec import render
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    arr = rng.integers(max(info.min, -3000), min(info.max, 4095), size=(128, 96)).astype(dtype)
    header = Dataset()
    header.RescaleSlope, header.RescaleIntercept = slope, intercept
    header.PhotometricInterpretation = "MONOCHROME2"
    chosen = render.Window(window[0], window[1], "linear") if window else None
    fast = render._windowed_by_table(arr, header, chosen, None)
    values = render._modality_values(arr, header, None)
    slow = render._apply_window(values, chosen) if chosen else render._to_uint8(values, values.min(), values.max())
    assert fast is not None
    assert np.array_equal(fast, slow)
