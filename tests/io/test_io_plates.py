"""Reading plates: formats, channel layouts, windows, multi-part EXR, colour conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from osvos_plugin.io import PlateError, read_plate, read_plate_info
from osvos_plugin.io.colour import ColourSettings, cineon_to_linear, soft_clip, to_display_srgb
from osvos_plugin.io.plates import pick_channels, read_source_rgb


def grey(value: float, w: int = 64, h: int = 48, c: int = 3) -> np.ndarray:
    return np.full((h, w, c), value, np.float32)


# ------------------------------------------------------------------------------------------------ colour


@pytest.mark.parametrize("fmt", ["half", "float"])
def test_linear_exr_mid_grey_becomes_srgb_046(tmp_path: Path, img, fmt: str) -> None:
    path = img.write(tmp_path / f"grey_{fmt}.exr", grey(0.18), fmt)
    plate = read_plate(path)
    assert plate.info.colorspace == "linear"
    assert plate.info.pixel_format == fmt
    assert plate.rgb.dtype == np.float32 and plate.rgb.shape == (48, 64, 3)
    np.testing.assert_allclose(plate.rgb, 0.4613, atol=0.002)


def test_linear_exr_follows_the_srgb_curve_below_the_knee(tmp_path: Path, img) -> None:
    ramp = np.linspace(0.0, 0.7, 64, dtype=np.float32)[None, :, None].repeat(48, 0).repeat(3, 2)
    plate = read_plate(img.write(tmp_path / "ramp.exr", ramp, "float"))
    expected = img.srgb(ramp)
    assert expected.max() < 0.9  # below the highlight knee
    np.testing.assert_allclose(plate.rgb, expected, atol=2e-3)


def test_highlights_stay_finite_and_below_one(tmp_path: Path, img) -> None:
    pixels = grey(0.18)
    pixels[:, :16] = 50.0
    pixels[:, 16:32] = 1.0
    pixels[0, 40] = np.inf
    pixels[1, 40] = -np.inf
    pixels[2, 40] = np.nan
    pixels[3, 40] = -3.0
    plate = read_plate(img.write(tmp_path / "hot.exr", pixels, "float"))
    rgb = plate.rgb
    assert np.isfinite(rgb).all()
    assert rgb.max() <= 1.0 and rgb.min() >= 0.0
    assert rgb[:, :16].min() > 0.99  # very bright, not wrapped or black
    assert 0.95 < rgb[0, 20, 0] < rgb[0, 0, 0]  # linear 1.0 rolled off, still below 50.0: gradation kept
    np.testing.assert_allclose(rgb[:, 48:], 0.4613, atol=0.002)  # mid-tones untouched
    assert rgb[2, 40].tolist() == [0.0, 0.0, 0.0] and rgb[1, 40].tolist() == [0.0, 0.0, 0.0]
    assert rgb[0, 40, 0] > 0.99


def test_soft_clip_is_smooth_and_bounded() -> None:
    x = np.linspace(0, 20, 2001, dtype=np.float32)
    y = soft_clip(x, 0.9)
    np.testing.assert_array_equal(y[x <= 0.9], x[x <= 0.9])
    assert np.all(np.diff(y) >= 0) and y.max() <= 1.0 and y[-1] > 0.999
    above = soft_clip(np.float32([0.9, 0.901]), 0.9)
    assert (above[1] - above[0]) / 0.001 == pytest.approx(1.0, abs=0.02)  # slope 1 at the knee: no kink


def test_explicit_colorspaces(tmp_path: Path, img) -> None:
    path = img.write(tmp_path / "g.exr", grey(0.18), "float")
    np.testing.assert_allclose(read_plate(path, colorspace="srgb").rgb, 0.18, atol=1e-6)
    np.testing.assert_allclose(read_plate(path, colorspace="raw").rgb, 0.18, atol=1e-6)
    np.testing.assert_allclose(read_plate(path, colorspace="lin_rec709_scene").rgb, 0.4613, atol=0.002)
    acescg = read_plate(path, colorspace="ACEScg")  # an OCIO name: neutral stays neutral
    assert acescg.info.colorspace == "ACEScg"
    np.testing.assert_allclose(acescg.rgb, 0.4613, atol=0.01)
    with pytest.raises(PlateError, match="not-a-space"):
        read_plate(path, colorspace="not-a-space")


def test_studio_config_from_ocio_env(tmp_path: Path, img, monkeypatch) -> None:
    """$OCIO is honoured: its scene_linear role (ACEScg here) is what 'linear' means."""
    import PyOpenColorIO as ocio

    config_path = tmp_path / "studio.ocio"
    config_path.write_text(ocio.Config.CreateFromFile("ocio://default").serialize())
    monkeypatch.setenv("OCIO", str(config_path))
    saturated = np.zeros((48, 64, 3), np.float32)
    saturated[..., 0] = 0.18
    path = img.write(tmp_path / "red.exr", saturated, "float")
    studio = read_plate(path).rgb[0, 0]
    monkeypatch.delenv("OCIO")
    builtin = read_plate(path).rgb[0, 0]
    np.testing.assert_allclose(builtin, [0.4613, 0, 0], atol=0.002)  # linear Rec.709
    # ACEScg red is more saturated than Rec.709 red: 0.18 of it is ~0.31 linear Rec.709 red, ~0.59 sRGB
    assert studio[0] == pytest.approx(0.59, abs=0.02)


def test_cineon_decode_reference_points() -> None:
    codes = np.array([95, 445, 685], np.float32) / 1023
    lin = cineon_to_linear(codes)
    np.testing.assert_allclose(lin, [0.0, 0.1494, 1.0], atol=2e-3)


def test_to_display_srgb_leaves_the_input_alone() -> None:
    rgb = np.full((4, 4, 3), 0.18, np.float32)
    to_display_srgb(rgb, "linear", ColourSettings())
    assert float(rgb[0, 0, 0]) == pytest.approx(0.18)


# ------------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize(
    ("name", "fmt", "tol"),
    [
        ("p8.png", "uint8", 1 / 255),
        ("p16.png", "uint16", 1e-4),
        ("t16.tif", "uint16", 1e-4),
        ("t8.tif", "uint8", 1 / 255),
        ("d.dpx", "uint16", 1e-4),
        ("j.jpg", "uint8", 0.04),
    ],
)
def test_display_referred_formats_are_read_as_is(
    tmp_path: Path, img, name: str, fmt: str, tol: float
) -> None:
    pixels = img.gradient()
    plate = read_plate(img.write(tmp_path / name, pixels, fmt))
    assert plate.info.colorspace == "srgb"
    assert plate.info.pixel_format == fmt
    assert plate.rgb.shape == (48, 64, 3) and plate.rgb.dtype == np.float32
    assert np.abs(plate.rgb - pixels).mean() < tol
    assert np.abs(plate.rgb - pixels).max() < max(4 * tol, 1 / 255 + 1e-6)


def test_float_tiff_is_scene_linear(tmp_path: Path, img) -> None:
    plate = read_plate(img.write(tmp_path / "f.tif", grey(0.18), "float"))
    assert plate.info.colorspace == "linear"
    np.testing.assert_allclose(plate.rgb, 0.4613, atol=0.002)


def test_log_dpx_is_decoded(tmp_path: Path, img) -> None:
    path = img.write(
        tmp_path / "log.dpx",
        grey(445 / 1023),
        "uint16",
        attrs={"dpx:Transfer": "Printing density", "oiio:BitsPerSample": 10},
    )
    plate = read_plate(path)
    assert plate.info.colorspace == "log"
    expected = img.srgb(cineon_to_linear(np.float32(445 / 1023)))
    np.testing.assert_allclose(plate.rgb, expected, atol=0.003)
    assert abs(float(expected) - 0.42) < 0.01


def test_greyscale_png_is_replicated_to_rgb(tmp_path: Path, img) -> None:
    pixels = img.gradient()[:, :, :1]
    plate = read_plate(img.write(tmp_path / "grey.png", pixels, "uint16"))
    assert plate.info.channels == ("Y",)
    np.testing.assert_allclose(plate.rgb, np.repeat(pixels, 3, axis=2), atol=1e-4)


def test_rgba_png_rgb_is_not_premultiplied(tmp_path: Path, img) -> None:
    pixels = np.concatenate([grey(0.8), grey(0.5, c=1)], axis=2)
    plate = read_plate(img.write(tmp_path / "rgba.png", pixels, "uint8", channels=("R", "G", "B", "A")))
    np.testing.assert_allclose(plate.rgb, 0.8, atol=1 / 255)


# ------------------------------------------------------------------------------------------------ layouts


def test_multichannel_exr_reads_rgb_not_alpha_or_depth(tmp_path: Path, img) -> None:
    pixels = np.zeros((48, 64, 5), np.float32)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 0.18, 0.05, 0.5
    pixels[..., 3], pixels[..., 4] = 0.5, 123.0
    path = img.write(tmp_path / "multi.exr", pixels, "half", channels=("R", "G", "B", "A", "Z"))
    plate = read_plate(path)
    assert plate.info.channels == ("R", "G", "B", "A", "Z")
    np.testing.assert_allclose(plate.rgb[0, 0], img.srgb(np.array([0.18, 0.05, 0.5])), atol=0.003)


def test_layered_channels_pick_the_beauty_layer() -> None:
    names = ("depth.Z", "diffuse.R", "diffuse.G", "diffuse.B", "rgba.R", "rgba.G", "rgba.B", "rgba.A")
    rgb, alpha, score = pick_channels(names)
    assert rgb == (4, 5, 6) and alpha == 7 and score == 2
    assert pick_channels(("B", "G", "R"))[0] == (2, 1, 0)
    assert pick_channels(("Y", "A"))[:2] == ((0, 0, 0), 1)


def test_multipart_exr_picks_the_part_with_rgb(tmp_path: Path) -> None:
    path = tmp_path / "parts.exr"
    depth = oiio.ImageSpec(64, 48, 1, "half")
    depth.channelnames = ("Z",)
    depth.attribute("name", "depth")
    beauty = oiio.ImageSpec(64, 48, 4, "half")
    beauty.channelnames = ("R", "G", "B", "A")
    beauty.attribute("name", "rgba")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), (depth, beauty)), out.geterror()
    assert out.write_image(np.full((48, 64, 1), 9.0, np.float32))
    assert out.open(str(path), beauty, "AppendSubimage")
    assert out.write_image(np.full((48, 64, 4), 0.18, np.float32))
    out.close()
    plate = read_plate(path)
    assert plate.info.subimage == 1 and plate.info.channels == ("R", "G", "B", "A")
    np.testing.assert_allclose(plate.rgb, 0.4613, atol=0.002)


def test_data_window_is_pasted_into_the_display_window(tmp_path: Path, img) -> None:
    data = np.zeros((20, 30, 3), np.float32)
    data[..., 0] = np.arange(30, dtype=np.float32)[None, :] / 100  # R encodes the data-window column
    data[..., 1] = np.arange(20, dtype=np.float32)[:, None] / 100  # G the row
    path = img.write(
        tmp_path / "win.exr",
        data,
        "float",
        origin=(10, 5),
        display=(0, 0, 64, 48),
        attrs={"FramesPerSecond": 24.0, "studio:shot": "ab_010"},
    )
    info = read_plate_info(path, frame=1001)
    assert (info.width, info.height) == (64, 48)
    assert info.data_window == (10, 5, 30, 20) and info.display_window == (0, 0, 64, 48)
    assert info.frame == 1001 and info.file_format == "openexr"
    assert info.metadata["FramesPerSecond"] == 24.0 and info.metadata["studio:shot"] == "ab_010"
    plate = read_plate(path, colorspace="raw")
    assert plate.rgb.shape == (48, 64, 3)
    # display pixel (x=10+7, y=5+3) is data pixel (7, 3)
    np.testing.assert_allclose(plate.rgb[5 + 3, 10 + 7, :2], [0.07, 0.03], atol=1e-6)
    assert plate.rgb[:5].max() == 0 and plate.rgb[:, :10].max() == 0 and plate.rgb[25:].max() == 0
    assert plate.rgb[:, 40:].max() == 0


def test_overscan_data_window_is_cropped(tmp_path: Path, img) -> None:
    data = np.full((58, 74, 3), 0.5, np.float32)
    path = img.write(tmp_path / "over.exr", data, "half", origin=(-5, -5), display=(0, 0, 64, 48))
    plate = read_plate(path, colorspace="raw")
    assert plate.rgb.shape == (48, 64, 3)
    np.testing.assert_allclose(plate.rgb, 0.5)


@pytest.mark.parametrize("max_size", [None, 32])
def test_a_plate_without_overscan_has_the_display_window_as_its_canvas(tmp_path: Path, img, max_size) -> None:
    """Data window inside the display window (the usual plate): reading its canvas changes nothing."""
    path = img.write(tmp_path / "in.exr", img.gradient(30, 20), "half", origin=(10, 5), display=(0, 0, 64, 48))
    info = read_plate_info(path)
    assert info.canvas_window == info.display_window == (0, 0, 64, 48)
    display = read_plate(path, max_size=max_size)
    canvas = read_plate(path, max_size=max_size, overscan=True)
    assert canvas.info == display.info
    np.testing.assert_array_equal(canvas.rgb, display.rgb)


def test_overscan_read_covers_the_whole_data_window(tmp_path: Path, img) -> None:
    """The canvas is the bounding box of both windows: overscan pixels are kept, the rest stays black."""
    data = np.zeros((50, 30, 3), np.float32)
    data[..., 0] = np.arange(30, dtype=np.float32)[None, :] / 100 + 0.01  # R: data-window column
    data[..., 1] = np.arange(50, dtype=np.float32)[:, None] / 100 + 0.01  # G: row
    path = img.write(tmp_path / "over.exr", data, "float", origin=(-5, 10), display=(0, 0, 64, 48))
    info = read_plate_info(path)
    assert info.canvas_window == (-5, 0, 69, 60)
    plate = read_plate(path, colorspace="raw", overscan=True)
    assert plate.rgb.shape == (60, 69, 3)
    np.testing.assert_array_equal(plate.rgb[10:60, 0:30], data)  # the data window, overscan included
    assert plate.rgb[:10].max() == 0 and plate.rgb[:, 30:].max() == 0  # display only: black
    np.testing.assert_array_equal(read_plate(path, colorspace="raw").rgb, plate.rgb[0:48, 5:69])  # as before
    shrunk = read_plate(path, colorspace="raw", overscan=True, max_size=23)
    assert shrunk.rgb.shape == (20, 23, 3)  # the canvas's long side fits max_size


def test_unreadable_plate_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"this is not an exr")
    with pytest.raises(PlateError, match=r"bad\.exr"):
        read_plate(bad)
    with pytest.raises(PlateError, match="does not exist"):
        read_plate_info(tmp_path / "missing.exr")


def test_read_plate_max_size_shrinks_in_linear_before_converting(tmp_path):
    """A linear EXR read at a smaller size: the long side fits, the plate's own size is kept in the info,
    and the picture matches the full-size read shrunk afterwards (up to the order of filter and transform)."""
    import cv2
    import OpenImageIO as oiio

    from osvos_plugin.io import read_plate

    h, w = 120, 200
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, np.full_like(xx, 0.18, dtype=float)], -1).astype(np.float32)
    path = tmp_path / "lin.1001.exr"
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), oiio.ImageSpec(w, h, 3, oiio.HALF))
    out.write_image(img)
    out.close()
    full = read_plate(path)
    small = read_plate(path, max_size=50)
    assert small.rgb.shape == (30, 50, 3) and (small.info.width, small.info.height) == (w, h)
    expected = cv2.resize(full.rgb, (50, 30), interpolation=cv2.INTER_AREA)
    assert np.abs(small.rgb - expected).mean() < 0.01
    assert read_plate(path, max_size=500).rgb.shape == (h, w, 3)  # never enlarged


@pytest.mark.parametrize("formats", [("half", "half", "half"), ("half", "float", "half")])
def test_half_channels_read_exactly(tmp_path: Path, img, formats) -> None:
    """Half channels take a faster widening path; the values must be the file's own, bit for bit."""
    rng = np.random.default_rng(3)
    pixels = (rng.random((48, 64, 3)) * 8.0 - 1.0).astype(np.float32)
    pixels[0, 0] = (65504.0, 1e-7, -2.5)  # half's largest, a subnormal, a negative
    spec = oiio.ImageSpec(64, 48, 3, formats[0])
    spec.channelnames = ("R", "G", "B")
    spec.channelformats = tuple(oiio.TypeDesc(f) for f in formats)
    path = tmp_path / "mixed.exr"
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(pixels), out.geterror()
    out.close()
    stored_spec, stored = img.read_raw(path)
    assert [str(f) for f in stored_spec.channelformats or [stored_spec.format] * 3] == list(formats)
    got = read_source_rgb(read_plate_info(path))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, stored)
    expected_r = pixels[:, :, 0].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got[:, :, 0], expected_r)
