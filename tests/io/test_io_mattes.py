"""write_matte: mattes that line up with the plate, in every format, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from osvos_plugin.io import OutputError, read_mask, read_plate, read_plate_info, write_matte
from osvos_plugin.io import mattes as mattes_module


def coded_matte(w: int = 64, h: int = 48) -> np.ndarray:
    """A matte whose value encodes its pixel position, so any misalignment shows."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return ((xx + 64 * yy) / (64 * 48)).astype(np.float32)


@pytest.fixture
def windowed_plate(tmp_path: Path, img) -> Path:
    """An EXR whose data window (30x20 at 10,5) is smaller than its display window (64x48)."""
    data = np.full((20, 30, 3), 0.18, np.float32)
    data[0, 0] = 3.5  # a hot pixel: must survive the 'rgba' output as is
    return img.write(
        tmp_path / "plate.1001.exr",
        data,
        "half",
        origin=(10, 5),
        display=(0, 0, 64, 48),
        attrs={"FramesPerSecond": 24.0, "studio:shot": "ab_010", "Copyright": "studio"},
    )


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_exr_matte_keeps_windows_metadata_and_alignment(tmp_path: Path, img, windowed_plate: Path) -> None:
    info = read_plate_info(windowed_plate, 1001)
    matte = coded_matte()
    out = write_matte(tmp_path / "out" / "matte.1001.exr", matte, info)
    assert out == tmp_path / "out" / "matte.1001.exr"
    spec, pixels = img.read_raw(out)
    assert spec.channelnames == ("A",) and str(spec.format) == "half"
    assert spec.get_string_attribute("compression") == "zip"
    assert (spec.x, spec.y, spec.width, spec.height) == (10, 5, 30, 20)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 64, 48)
    assert spec.get_float_attribute("FramesPerSecond") == 24.0
    assert spec.get_string_attribute("studio:shot") == "ab_010"
    assert spec.get_string_attribute("Copyright") == "studio"
    # file pixel (i, j) of the data window is display pixel (10 + i, 5 + j)
    for x, y in [(10, 5), (25, 12), (39, 24)]:
        assert pixels[y - 5, x - 10, 0] == pytest.approx(matte[y, x], abs=2e-3)
    # read back as a mask: the matte inside the data window, zero outside
    back = read_mask(out, expected_size=(64, 48), allow_empty=True)
    np.testing.assert_allclose(back[5:25, 10:40], matte[5:25, 10:40], atol=2e-3)
    assert back[:5].max() == 0 and back[:, 40:].max() == 0
    assert listing(tmp_path / "out") == ["matte.1001.exr"]


def test_exr_matte_of_an_overscan_plate(tmp_path: Path, img) -> None:
    plate = img.write(
        tmp_path / "over.exr",
        np.zeros((58, 74, 3), np.float32),
        "half",
        origin=(-5, -5),
        display=(0, 0, 64, 48),
    )
    out = write_matte(tmp_path / "m.exr", np.ones((48, 64), np.float32), read_plate_info(plate))
    spec, pixels = img.read_raw(out)
    assert (spec.x, spec.y, spec.width, spec.height) == (-5, -5, 74, 58)
    assert pixels[5:53, 5:69].min() == 1.0 and pixels[:5].max() == 0.0  # no matte outside the display


@pytest.mark.parametrize("fmt", ["exr", "png16", "rgba"])
def test_a_canvas_size_matte_covers_the_overscan(tmp_path: Path, img, fmt: str) -> None:
    """A matte at the canvas size (display window grown to hold the data window): formats with windows keep
    the whole data window, overscan included; PNG gets the display window cut from it."""
    plate = img.write(tmp_path / "over.exr", np.full((58, 74, 3), 0.25, np.float32), "half", origin=(-5, -5),
                      display=(0, 0, 64, 48))
    info = read_plate_info(plate)
    assert info.canvas_window == (-5, -5, 74, 58)
    matte = coded_matte(74, 58) * (64 * 48) / (74 * 58)  # in [0, 1): each pixel its own value
    out = write_matte(tmp_path / ("m.png" if fmt == "png16" else "m.exr"), matte, info, fmt)
    spec, pixels = img.read_raw(out)
    if fmt == "png16":
        assert (spec.width, spec.height) == (64, 48)
        np.testing.assert_allclose(pixels[:, :, 0], matte[5:53, 5:69], atol=1e-4)
        return
    assert (spec.x, spec.y, spec.width, spec.height) == (-5, -5, 74, 58)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 64, 48)
    np.testing.assert_allclose(pixels[:, :, -1], matte, atol=1e-3)  # half


def test_a_matte_of_neither_size_names_both(tmp_path: Path, img) -> None:
    plate = img.write(tmp_path / "over.exr", np.zeros((58, 74, 3), np.float32), "half", origin=(-5, -5),
                      display=(0, 0, 64, 48))
    with pytest.raises(OutputError, match="display-window size or its canvas size 74x58"):
        write_matte(tmp_path / "m.exr", np.zeros((48, 74), np.float32), read_plate_info(plate))


@pytest.mark.parametrize(("fmt", "dtype", "tol"), [("png8", "uint8", 0.5 / 255), ("png16", "uint16", 1e-4)])
def test_png_mattes(tmp_path: Path, img, windowed_plate: Path, fmt: str, dtype: str, tol: float) -> None:
    matte = coded_matte()
    out = write_matte(tmp_path / "m.png", matte, read_plate_info(windowed_plate), fmt)
    spec, pixels = img.read_raw(out)
    assert str(spec.format) == dtype and spec.nchannels == 1 and (spec.width, spec.height) == (64, 48)
    np.testing.assert_allclose(pixels[:, :, 0], matte, atol=tol)


def test_rgba_exr_holds_the_original_plate_premultiplied_by_the_matte(
    tmp_path: Path, img, windowed_plate: Path
) -> None:
    """OpenEXR is premultiplied: RGB is the plate's own linear values times the matte."""
    info = read_plate_info(windowed_plate)
    matte = coded_matte() + 0.5  # no zeros, so the plate's values can be recovered below
    matte /= matte.max()
    out = write_matte(tmp_path / "rgba.exr", matte, info, "rgba")
    spec, pixels = img.read_raw(out)
    assert spec.channelnames == ("R", "G", "B", "A") and str(spec.format) == "half"
    assert (spec.x, spec.y, spec.width, spec.height) == (10, 5, 30, 20)
    alpha = matte[5:25, 10:40]
    np.testing.assert_allclose(pixels[:, :, 3], alpha, atol=2e-3)
    unpremultiplied = pixels[:, :, :3] / alpha[:, :, None]
    np.testing.assert_allclose(unpremultiplied[0, 0], 3.5, rtol=2e-3)  # original linear value, not sRGB
    np.testing.assert_allclose(unpremultiplied[5, 5], 0.18, rtol=2e-3)


def test_rgba_png_from_a_plate_object(tmp_path: Path, img) -> None:
    """The pipeline hands the Plate itself: its rgb is sRGB-converted, so the source is re-read."""
    source = img.gradient()
    plate_path = img.write(tmp_path / "plate.png", source, "uint8")
    plate = read_plate(plate_path, colorspace="raw")
    plate.rgb[:] = 0.0  # whatever the network saw must not end up in the file
    matte = np.zeros((48, 64), np.float32)
    matte[10:30, 10:30] = 0.5
    out = write_matte(tmp_path / "rgba.png", matte, plate.info, "rgba", plate)
    spec, pixels = img.read_raw(out)
    assert spec.nchannels == 4 and str(spec.format) == "uint8"
    np.testing.assert_allclose(pixels[:, :, :3], source, atol=0.5 / 255 + 1e-6)  # un-premultiplied
    np.testing.assert_allclose(pixels[:, :, 3], matte, atol=0.5 / 255)


def test_rgba_with_explicit_rgb(tmp_path: Path, img, windowed_plate: Path) -> None:
    info = read_plate_info(windowed_plate)
    rgb = np.full((48, 64, 3), 0.25, np.float32)  # display-window size
    out = write_matte(tmp_path / "rgba.tif", np.zeros((48, 64), np.float32), info, "rgba", rgb)
    _, pixels = img.read_raw(out)
    np.testing.assert_allclose(pixels[..., :3], 0.25, atol=1e-3)
    with pytest.raises(OutputError, match="matches neither"):
        write_matte(tmp_path / "bad.exr", np.zeros((48, 64), np.float32), info, "rgba", np.zeros((5, 5, 3)))


def test_bad_requests_are_refused_clearly(tmp_path: Path, windowed_plate: Path) -> None:
    info = read_plate_info(windowed_plate)
    matte = np.zeros((48, 64), np.float32)
    with pytest.raises(OutputError, match=r"extension '\.png' but the format is 'exr'"):
        write_matte(tmp_path / "m.png", matte, info, "exr")
    with pytest.raises(OutputError, match="no alpha channel"):
        write_matte(tmp_path / "m.jpg", matte, info, "rgba")
    with pytest.raises(OutputError, match="display-window size"):
        write_matte(tmp_path / "m.exr", np.zeros((24, 32), np.float32), info)
    with pytest.raises(OutputError, match="NaN"):
        write_matte(tmp_path / "m.exr", np.full((48, 64), np.nan, np.float32), info)
    with pytest.raises(OutputError, match="unknown matte format"):
        write_matte(tmp_path / "m.exr", matte, info, "tiff")  # type: ignore[arg-type]
    assert listing(tmp_path) == ["plate.1001.exr"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(
    tmp_path: Path, windowed_plate: Path, monkeypatch, failure: BaseException
) -> None:
    info = read_plate_info(windowed_plate)
    out_dir = tmp_path / "out"
    target = write_matte(out_dir / "matte.1001.exr", np.zeros((48, 64), np.float32), info)
    previous = target.read_bytes()
    real_write = mattes_module._write_pixels
    seen: list[Path] = []

    def dies_midway(tmp: Path, *args) -> None:
        real_write(tmp, *args)
        data = tmp.read_bytes()
        tmp.write_bytes(data[: len(data) // 2])  # half a file on disk, then the process "dies"
        seen.append(tmp)
        raise failure

    monkeypatch.setattr(mattes_module, "_write_pixels", dies_midway)
    with pytest.raises((OutputError, KeyboardInterrupt)) as err:
        write_matte(target, np.ones((48, 64), np.float32), info)
    if isinstance(failure, OSError):
        assert err.type is OutputError and "matte.1001.exr" in str(err.value)
    assert seen and seen[0].parent == out_dir and seen[0] != target  # it did write a temp file...
    assert not seen[0].exists()  # ...and removed it
    assert target.read_bytes() == previous  # the old frame is intact
    assert listing(out_dir) == ["matte.1001.exr"]


def test_write_replaces_an_existing_frame(tmp_path: Path, windowed_plate: Path) -> None:
    info = read_plate_info(windowed_plate)
    target = tmp_path / "m.exr"
    write_matte(target, np.zeros((48, 64), np.float32), info)
    write_matte(target, np.ones((48, 64), np.float32), info)
    assert read_mask(target, allow_empty=True)[5:25, 10:40].min() == 1.0
    assert listing(tmp_path) == ["m.exr", "plate.1001.exr"]


# --- output conventions ------------------------------------------------------------------------------


def test_rgba_exr_is_exactly_the_plate_times_the_matte(tmp_path: Path, img) -> None:
    """OpenEXR's convention (premultiplied): a Nuke Merge over shows only the object, not the whole plate."""
    rgb = img.gradient() * 4.0  # scene-linear, above 1 in places
    plate = img.write(tmp_path / "plate.exr", rgb, "half")
    matte = np.random.default_rng(0).random((48, 64)).astype(np.float32)
    matte[:10] = 0.0
    out = write_matte(tmp_path / "rgba.exr", matte, read_plate_info(plate), "rgba")
    spec, pixels = img.read_raw(out)
    stored = rgb.astype(np.float16).astype(np.float32)  # the plate's own (half) values
    expected = (stored * matte[:, :, None]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(pixels[:, :, :3], expected)
    np.testing.assert_array_equal(pixels[:, :, 3], matte.astype(np.float16).astype(np.float32))
    assert pixels[:10, :, :3].max() == 0.0  # outside the object nothing of the plate is left


def test_rgba_png_of_a_linear_plate_holds_srgb_display_values(tmp_path: Path, img) -> None:
    from osvos_plugin.io import to_display_srgb

    rgb = np.full((48, 64, 3), 0.18, np.float32)
    rgb[:, 32:] = img.gradient()[:, 32:] * 0.8
    plate = img.write(tmp_path / "plate.exr", rgb, "float")
    info = read_plate_info(plate)
    assert info.colorspace == "linear"
    matte = np.full((48, 64), 0.5, np.float32)
    out = write_matte(tmp_path / "rgba.png", matte, info, "rgba")
    spec, pixels = img.read_raw(out)
    assert spec.get_string_attribute("oiio:ColorSpace").lower().startswith("srgb")
    np.testing.assert_allclose(pixels[:, :, :3], to_display_srgb(rgb, "linear"), atol=0.5 / 65535 + 1e-6)
    assert pixels[0, 0, 0] == pytest.approx(img.srgb(0.18), abs=2e-3)  # linear 0.18 grey is ~0.46 on screen
    np.testing.assert_allclose(pixels[:, :, 3], 0.5, atol=0.5 / 65535)  # PNG alpha stays unassociated


def test_rgba_png_of_an_srgb_plate_passes_its_values_through(tmp_path: Path, img) -> None:
    source = img.gradient()
    plate = img.write(tmp_path / "plate.png", source, "uint8")
    info = read_plate_info(plate)
    assert info.colorspace == "srgb"
    out = write_matte(tmp_path / "rgba.png", np.full((48, 64), 0.25, np.float32), info, "rgba")
    _, pixels = img.read_raw(out)
    np.testing.assert_allclose(pixels[:, :, :3], source, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize(("fmt", "name"), [("exr", "m.exr"), ("png16", "m.png"), ("rgba", "m.exr"),
                                           ("rgba", "m.tif")])
def test_the_plates_nuke_attributes_are_not_carried(tmp_path: Path, img, fmt: str, name: str) -> None:
    plate = img.write(
        tmp_path / "plate.exr",
        img.gradient(),
        "half",
        attrs={"nuke/node_hash": "1a2b3c4d", "Nuke/Version": "15.1v3", "NUKE/full_layer_names": "rgba",
               "studio:shot": "ab_010"},
    )
    info = read_plate_info(plate)
    assert "nuke/node_hash" in info.metadata  # the plate does have them
    out = write_matte(tmp_path / name, np.zeros((48, 64), np.float32), info, fmt)
    spec, _ = img.read_raw(out)
    names = [p.name for p in spec.extra_attribs]
    assert not [n for n in names if n.lower().startswith("nuke/")], names
    if not name.endswith(".tif"):
        assert spec.get_string_attribute("studio:shot") == "ab_010"  # everything else still is


@pytest.mark.parametrize(("fmt", "name"), [("exr", "m.exr"), ("png8", "m.png"), ("png16", "m.png"),
                                           ("rgba", "m.exr"), ("rgba", "m.png"), ("rgba", "m.tif")])
def test_every_matte_records_the_engine_version(tmp_path: Path, img, windowed_plate: Path, fmt: str,
                                                name: str) -> None:
    from osvos_plugin import __version__

    out = write_matte(tmp_path / name, coded_matte(), read_plate_info(windowed_plate), fmt)
    spec, _ = img.read_raw(out)
    assert spec.get_string_attribute("Software") == f"osvos-plugin {__version__}"
    assert mattes_module.read_matte_metadata(out) == {"version": __version__}
    if not name.endswith(".tif"):
        assert spec.get_string_attribute("osvos:version") == __version__
