"""read_mask: the painted frame, from alpha or luminance, soft edges kept, bad masks refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from osvos_plugin.io import MaskError, read_mask


def soft_disc(w: int = 64, h: int = 48) -> np.ndarray:
    """A centred disc (radius w/4) with a soft edge (w/10 wide): values strictly between 0 and 1 there."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx + 0.5 - w / 2, yy + 0.5 - h / 2)
    return np.clip((w / 4 - r) / (w / 10), 0, 1).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "fmt", "tol"),
    [
        ("m.png", "uint8", 0.5 / 255),
        ("m16.png", "uint16", 1e-4),
        ("m.tif", "uint16", 1e-4),
        ("m.exr", "half", 1e-3),
        ("m.dpx", "uint16", 1e-4),
    ],
)
def test_grey_mask_luminance_with_soft_edges(tmp_path: Path, img, name: str, fmt: str, tol: float) -> None:
    disc = soft_disc()
    mask = read_mask(img.write(tmp_path / name, disc[:, :, None], fmt), expected_size=(64, 48))
    assert mask.dtype == np.float32 and mask.shape == (48, 64)
    np.testing.assert_allclose(mask, disc, atol=tol)
    assert ((mask > 0.05) & (mask < 0.95)).sum() > 50  # the soft edge survived


def test_grey_rgb_jpeg_mask(tmp_path: Path, img) -> None:
    disc = soft_disc()
    mask = read_mask(img.write(tmp_path / "m.jpg", np.repeat(disc[:, :, None], 3, 2), "uint8"), (64, 48))
    assert np.abs(mask - disc).mean() < 0.02


def test_alpha_wins_over_colour(tmp_path: Path, img) -> None:
    disc = soft_disc()
    rgba = np.concatenate([img.gradient(), disc[:, :, None]], axis=2)  # RGB: unrelated picture
    path = img.write(tmp_path / "rgba.png", rgba, "uint16", channels=("R", "G", "B", "A"))
    np.testing.assert_allclose(read_mask(path), disc, atol=1e-4)


def test_grey_alpha_png_uses_alpha(tmp_path: Path, img) -> None:
    disc = soft_disc()
    ya = np.stack([np.full_like(disc, 0.3), disc], axis=2)
    path = img.write(tmp_path / "ya.png", ya, "uint8", channels=("Y", "A"))
    np.testing.assert_allclose(read_mask(path), disc, atol=0.5 / 255)


def test_opaque_alpha_falls_back_to_colour(tmp_path: Path, img) -> None:
    """Paint packages often export the mask in RGB with an opaque alpha."""
    disc = soft_disc()
    rgba = np.concatenate([np.repeat(disc[:, :, None], 3, 2), np.ones((48, 64, 1), np.float32)], axis=2)
    path = img.write(tmp_path / "paint.png", rgba, "uint8", channels=("R", "G", "B", "A"))
    np.testing.assert_allclose(read_mask(path), disc, atol=0.5 / 255)


def test_exr_matte_channel_a_only(tmp_path: Path, img) -> None:
    disc = soft_disc()
    path = img.write(tmp_path / "matte.exr", disc[:, :, None], "half", channels=("A",))
    np.testing.assert_allclose(read_mask(path), disc, atol=1e-3)


def test_coloured_label_mask_like_davis(tmp_path: Path, img) -> None:
    """A DAVIS annotation: object in palette colour (128, 0, 0) on black."""
    disc = soft_disc() > 0.5
    label = np.zeros((48, 64, 3), np.float32)
    label[disc, 0] = 128 / 255
    mask = read_mask(img.write(tmp_path / "00000.png", label, "uint8"))
    np.testing.assert_array_equal(mask, disc.astype(np.float32))


def test_mask_data_window_is_placed_in_the_display_window(tmp_path: Path, img) -> None:
    path = img.write(
        tmp_path / "win.exr",
        np.ones((10, 12, 1), np.float32),
        "half",
        channels=("A",),
        origin=(30, 20),
        display=(0, 0, 64, 48),
    )
    mask = read_mask(path, expected_size=(64, 48))
    assert mask[20:30, 30:42].min() == 1.0 and mask.sum() == 120


def test_wrong_size_is_refused_naming_both_sizes(tmp_path: Path, img) -> None:
    path = img.write(tmp_path / "small.png", soft_disc(32, 24)[:, :, None], "uint8")
    with pytest.raises(MaskError) as err:
        read_mask(path, expected_size=(64, 48))
    message = str(err.value)
    assert str(path) in message and "32x24" in message and "64x48" in message and "resize" in message


def test_resize_keeps_the_shape_and_softness(tmp_path: Path, img) -> None:
    small = soft_disc(32, 24)
    mask = read_mask(img.write(tmp_path / "small.png", small[:, :, None], "uint16"), (64, 48), resize=True)
    assert mask.shape == (48, 64) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    big = soft_disc(64, 48)  # the same disc drawn at full size
    assert mask[24, 32] > 0.99 and mask[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert np.abs(mask - big).mean() < 0.01 and np.abs(mask - big).max() < 0.1
    assert ((mask > 0.05) & (mask < 0.95)).sum() > 50  # still soft
    large = read_mask(
        img.write(tmp_path / "large.png", soft_disc(128, 96)[:, :, None], "uint8"), (64, 48), resize=True
    )
    assert large.shape == (48, 64) and np.abs(large - big).mean() < 0.01


def test_empty_mask(tmp_path: Path, img) -> None:
    path = img.write(tmp_path / "empty.png", np.full((48, 64, 1), 0.2, np.float32), "uint8")
    with pytest.raises(MaskError, match=r"empty\.png.*no foreground"):
        read_mask(path, (64, 48))
    assert read_mask(path, (64, 48), allow_empty=True).max() == pytest.approx(0.2, abs=1 / 255)


def test_full_mask(tmp_path: Path, img) -> None:
    path = img.write(tmp_path / "full.png", np.ones((48, 64, 1), np.float32), "uint8")
    with pytest.raises(MaskError, match=r"full\.png.*foreground everywhere"):
        read_mask(path, (64, 48))


def test_nan_mask(tmp_path: Path, img) -> None:
    disc = soft_disc()
    disc[3, 3] = np.nan
    path = img.write(tmp_path / "nan.exr", disc[:, :, None], "float")
    with pytest.raises(MaskError, match=r"nan\.exr.*NaN"):
        read_mask(path, (64, 48))


def test_unreadable_mask(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    with pytest.raises(MaskError, match=r"bad\.png"):
        read_mask(bad)
    with pytest.raises(MaskError, match="does not exist"):
        read_mask(tmp_path / "nope.png")


def test_painted_share_is_the_smallest_painted_objects(tmp_path: Path) -> None:
    import cv2
    from PIL import Image

    from osvos_plugin.io import painted_share

    grey = np.zeros((40, 50), np.uint8)
    grey[:10, :20] = 255  # 200 of 2,000 pixels
    grey[30, 40] = 100  # under 0.5: not painted
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    labels = np.zeros((40, 50), np.uint8)
    labels[:4, :10] = 1  # 40 pixels
    labels[20:30, 20:30] = 2  # 100 pixels
    img = Image.fromarray(labels, mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "labels.png")
    assert painted_share([tmp_path / "grey.png"]) == pytest.approx(0.1)
    assert painted_share([tmp_path / "labels.png"]) == pytest.approx(0.02)  # each object of a palette mask
    assert painted_share([tmp_path / "grey.png", tmp_path / "labels.png"]) == pytest.approx(0.02)
    assert painted_share([tmp_path / "grey.png", tmp_path / "missing.png"]) is None  # loading says why
