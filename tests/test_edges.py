"""Plate-resolution edges and the edge alpha, on small synthetic images with exact answers."""

import cv2
import numpy as np
import pytest
import torch

from osvos_plugin.edges import alpha_from_probability, guided_upsample, guided_upsample_tensor, signed_distance


def crossing(row: np.ndarray, level: float = 0.5) -> float:
    """Sub-pixel position (pixel centres at integers) where ``row`` first rises through ``level``."""
    i = int(np.nonzero(row >= level)[0][0])
    assert i > 0
    return i - 1 + (level - row[i - 1]) / (row[i] - row[i - 1])


def ramp(edge: float, width: int = 80, rows: int = 5, slope: float = 1 / 8) -> np.ndarray:
    """A probability rising left to right through 0.5 at ``edge`` (a vertical edge)."""
    x = np.arange(width, dtype=np.float32)
    return np.clip(0.5 + (x - edge) * slope, 0.0, 1.0)[None].repeat(rows, 0).astype(np.float32)


SIZE, SCALE = 160, 8  # plate 160 x 160, network 20 x 20
LO, HI = 43, 117  # the object: plate pixels [43, 117) in x and y, edges at 42.5 and 116.5 between centres


@pytest.fixture(scope="module")
def square():
    """The plate (a sharp square) and a blocky low-resolution probability of it, as a network gives."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    truth = ((xx >= LO) & (xx < HI) & (yy >= LO) & (yy < HI)).astype(np.float32)
    plate = np.dstack([0.1 + 0.7 * truth, 0.2 + 0.5 * truth, 0.3 + 0.2 * truth]).astype(np.float32)
    centres = np.arange(SIZE // SCALE) * SCALE + SCALE / 2 - 0.5
    inside = (centres >= LO) & (centres < HI)  # low-res pixels whose centre is on the object: plate [40, 112)
    small = np.zeros((SIZE // SCALE,) * 2, np.float32)
    small[np.ix_(inside, inside)] = 1.0
    return plate, cv2.GaussianBlur(small, (0, 0), 0.7), truth


def test_guided_upsampling_puts_the_edge_where_the_plate_has_it(square):
    plate, small, truth = square
    bilinear = cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    row = SIZE // 2
    true_left, true_right = LO - 0.5, SIZE - 1 - (HI - 0.5)  # the right edge measured from the right
    assert abs(crossing(bilinear[row]) - true_left) > 2.5 and abs(crossing(bilinear[row, ::-1]) - true_right) > 2.5
    for guide in (plate, plate.mean(axis=2)):  # RGB or grey guide
        q = guided_upsample(small, guide, radius=2 * SCALE, eps=1e-3)
        assert q.shape == (SIZE, SIZE) and q.dtype == np.float32 and 0 <= q.min() and q.max() <= 1
        assert abs(crossing(q[row]) - true_left) <= 1 and abs(crossing(q[row, ::-1]) - true_right) <= 1
        assert abs(crossing(q[:, row]) - true_left) <= 1  # vertically too
        assert np.array_equal(q >= 0.5, truth > 0)  # the hard matte is the object, pixel for pixel


def test_the_batch_form_on_tensors_is_the_same_filter(square):
    """``guided_upsample_tensor`` (a GPU's path) agrees with ``guided_upsample`` to within float32: RGB or
    grey guides, several objects and frames at once, at a size the shrink does not divide evenly."""
    plate, small, _ = square
    plate = cv2.resize(plate, (SIZE * 7 // 4, SIZE), interpolation=cv2.INTER_LINEAR)  # 1.75 : 1, not a multiple
    small = cv2.resize(small, (small.shape[1] * 7 // 4, small.shape[0]), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(0)
    probs = np.stack([small, 1.0 - small, rng.random(small.shape, np.float32)])  # three objects
    for guide in (plate, plate.mean(axis=2)):
        g = torch.from_numpy(guide if guide.ndim == 3 else guide[..., None]).permute(2, 0, 1)[None]
        got = guided_upsample_tensor(torch.from_numpy(probs)[None].repeat(2, 1, 1, 1), g.repeat(2, 1, 1, 1), 8.0, 1e-3)
        assert got.shape == (2, 3) + plate.shape[:2] and got.dtype == torch.float32
        for k, p in enumerate(probs):
            want = guided_upsample(p, guide, 8.0, 1e-3)
            assert np.abs(got[1, k].numpy() - want).max() < 1e-4


def test_guided_upsampling_keeps_flat_regions_and_is_deterministic(square):
    plate, small, _ = square
    q = guided_upsample(small, plate, radius=16, eps=1e-3)
    assert np.allclose(q[70:90, 70:90], 1.0, atol=0.01) and np.allclose(q[:20, :20], 0.0, atol=0.01)
    assert np.array_equal(q, guided_upsample(small, plate, radius=16, eps=1e-3))
    flat = np.full((SIZE, SIZE, 3), 0.5, np.float32)  # a guide without edges: the probability, smoothed
    assert np.allclose(guided_upsample(np.full((20, 20), 0.3, np.float32), flat, 16, 1e-3), 0.3, atol=1e-5)


@pytest.mark.parametrize("softness", [1.0, 4.0, 9.0])
def test_alpha_is_one_in_the_core_zero_outside_and_monotone_across(softness):
    edge = 40.3
    a = alpha_from_probability(ramp(edge), 0.5, softness_px=softness)
    assert a.dtype == np.float32
    x = np.arange(a.shape[1])
    assert np.all(a[:, x > edge + softness / 2] == 1.0) and np.all(a[:, x < edge - softness / 2] == 0.0)
    assert np.all(np.diff(a, axis=1) >= 0) and np.all(a == a[:1])  # monotone; every row alike
    assert np.array_equal(a > 0.5, ramp(edge) > 0.5)  # the edge is the threshold's
    # the 0.5 contour is the threshold's, sub-pixel (a one-pixel ramp is too short to interpolate)
    assert crossing(a[2]) == pytest.approx(edge, abs=0.05 if softness > 1 else 0.5)


@pytest.mark.parametrize("grow", [3.0, -3.0, 10.5])
def test_grow_moves_the_half_way_contour_by_that_many_pixels(grow):
    edge = 40.3
    for softness in (0.0, 4.0):
        a = alpha_from_probability(ramp(edge), 0.5, softness_px=softness, grow_px=grow)
        if softness == 0:
            assert set(np.unique(a)) == {0.0, 1.0}
            moved = float(np.nonzero(a[2] == 1)[0][0]) - 0.5  # first inside pixel, half a pixel back
        else:
            moved = crossing(a[2])
        assert moved == pytest.approx(edge - grow, abs=0.5)  # grow moves the edge outwards (to the left)


def test_grow_and_shrink_a_disc_change_its_radius():
    yy, xx = np.mgrid[0:101, 0:101].astype(np.float32)
    r = np.hypot(yy - 50, xx - 50)
    prob = np.clip(0.5 + (20.0 - r) / 6, 0, 1)  # a disc of radius 20 with a soft edge
    for grow in (-5.0, 0.0, 5.0):
        a = alpha_from_probability(prob, 0.5, softness_px=2.0, grow_px=grow)
        area = float(a.sum())
        assert np.sqrt(area / np.pi) == pytest.approx(20.0 + grow, abs=0.5)


def test_softness_zero_is_the_hard_matte_and_antialias_a_sub_pixel_edge():
    rng = np.random.default_rng(0)
    prob = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32), (0, 0), 3)
    t = float(np.median(prob))
    hard = alpha_from_probability(prob, t)
    assert np.array_equal(hard, (prob > t).astype(np.float32))
    # the sub-pixel edge: a half-covered pixel is half on, where the hard matte must pick 0 or 1
    aa = alpha_from_probability(ramp(40.0, slope=1 / 4), 0.5, antialias=True)
    assert aa[2, 40] == pytest.approx(0.5, abs=1e-5) and aa[2, 39] == 0.0 and aa[2, 41] == 1.0
    aa = alpha_from_probability(ramp(40.25, slope=1 / 4), 0.5, antialias=True)
    assert aa[2, 40] == pytest.approx(0.25) and np.all(aa[2, 41:] == 1) and np.all(aa[2, :40] == 0)  # coverage
    assert np.array_equal(aa > 0.5, (ramp(40.25, slope=1 / 4) > 0.5))  # same pixels on as the hard matte


def test_a_diagonal_edge_is_anti_aliased_not_stair_stepped():
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    prob = np.clip(0.5 + (xx + 0.37 * yy - 40) / 8, 0, 1)
    hard = alpha_from_probability(prob, 0.5)
    aa = alpha_from_probability(prob, 0.5, antialias=True)
    assert set(np.unique(hard)) == {0.0, 1.0} and len(np.unique(aa)) > 10
    # each row's coverage (the sum of its alpha) follows the true edge position, within a tenth of a pixel
    edge = 40 - 0.37 * yy[:, 0]
    assert np.allclose(aa.sum(axis=1), 64 - 0.5 - edge, atol=0.1)
    assert np.abs(hard.sum(axis=1) - (64 - 0.5 - edge)).max() > 0.3


def test_no_contour_gives_all_or_nothing():
    assert signed_distance(np.zeros((8, 8), np.float32), 0.5) is None
    assert np.array_equal(alpha_from_probability(np.ones((8, 8), np.float32), 0.5, 3, -4), np.ones((8, 8)))
    assert np.array_equal(alpha_from_probability(np.zeros((8, 8), np.float32), 0.5, 3, 4), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="softness"):
        alpha_from_probability(np.zeros((8, 8), np.float32), 0.5, -1)


@pytest.mark.parametrize(("softness", "grow"), [(4.0, 0.0), (0.0, 3.0), (7.0, -5.0)])
def test_the_band_limited_alpha_is_the_signed_distance_everywhere(softness, grow):
    """The alpha is worked out only near the object's edge; elsewhere it must be what the full signed
    distance gives."""
    rng = np.random.default_rng(1)
    prob = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 5)
    prob[:30], prob[:, :40], prob[100:] = 0, 0, 0  # an object away from the borders
    t = float(np.quantile(prob[prob > 0], 0.6))
    sd = signed_distance(prob, t) + grow
    if softness == 0:
        want = np.clip(sd + 0.5, 0, 1)
    else:
        x = np.clip(sd / softness + 0.5, 0, 1)
        want = x * x * (3 - 2 * x)
    got = alpha_from_probability(prob, t, softness, grow, antialias=True)
    assert np.allclose(got, want, atol=1e-6)
    assert np.all((np.abs(sd) > softness / 2 + 0.5) <= ((got == 0) | (got == 1)))  # exactly 0/1 off the edge


def test_a_render_grows_and_softens_the_edge_as_asked(tmp_path, tiny_parent, monkeypatch):
    """End to end: plugin.json's edge controls through a render to the matte on disk. The network's answer
    is replaced by a known one (the plate's bright square), so the matte's exact edges are known."""
    import cv2

    from osvos_plugin.inference import Segmenter
    from osvos_plugin.io import read_mask
    from osvos_plugin.pipeline import Keyframe, RenderJob, render

    x0, x1, y0, y1 = 20, 44, 12, 36  # the square: columns 20..43, rows 12..35 of a 64x48 plate
    (tmp_path / "in").mkdir()
    for f in (1, 2):
        img = np.zeros((48, 64, 3), np.uint8)
        img[y0:y1, x0:x1] = 255
        cv2.imwrite(str(tmp_path / "in" / f"p.{f}.png"), img)
    cv2.imwrite(str(tmp_path / "roto.png"), (cv2.imread(str(tmp_path / "in" / "p.1.png"))[:, :, 0] > 0) * np.uint8(255))

    def known(self, frames, out_size=None):  # the square's indicator, at the matte's size
        h, w = out_size or frames[0].shape[:2]
        return [cv2.resize((f[:, :, 0] > 0.5).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
                for f in frames]

    monkeypatch.setattr(Segmenter, "probabilities", known)

    def matte(**params):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}" / "m.#.png"
        render(RenderJob(str(tmp_path / "in" / "p.#.png"), str(out), [Keyframe(tmp_path / "roto.png", 1)],
                         params={"iterations": 1, "process_size": 64, "device": "cpu", "output_format": "png16",
                                 **params}, parent=tiny_parent))
        return read_mask(str(out).replace("#", "2"), allow_empty=True)

    plain = matte()
    assert np.array_equal(plain > 0.5, cv2.imread(str(tmp_path / "roto.png"), 0) > 0)
    grown = matte(edge_grow=3.0)
    row, col = grown[(y0 + y1) // 2], grown[:, (x0 + x1) // 2]
    assert np.flatnonzero(row > 0.5).tolist() == list(range(x0 - 3, x1 + 3))  # 3 px more on each side
    assert np.flatnonzero(col > 0.5).tolist() == list(range(y0 - 3, y1 + 3))
    soft = matte(edge_softness=6.0)
    mid = soft[(y0 + y1) // 2]
    assert mid[(x0 + x1) // 2] == 1.0 and mid[0] == 0.0  # a real alpha: 1 in the core, 0 outside
    ramp = mid[x0 - 4:x0 + 4]  # 6 px of softness centred on the left edge
    assert ramp[0] == 0.0 and ramp[-1] == 1.0 and np.all(np.diff(ramp) >= 0)  # a ramp, not a step
    assert 5 <= np.count_nonzero((ramp > 0) & (ramp < 1)) <= 7


def test_edge_refinement_gets_the_plate_at_full_size_as_its_guide(tmp_path, tiny_parent, monkeypatch):
    import cv2

    from osvos_plugin.inference import Segmenter
    from osvos_plugin.pipeline import Keyframe, RenderJob, render

    (tmp_path / "in").mkdir()
    img = np.zeros((96, 128, 3), np.uint8)
    img[30:60, 40:90] = 255
    cv2.imwrite(str(tmp_path / "in" / "p.1.png"), img)
    cv2.imwrite(str(tmp_path / "roto.png"), img[:, :, 0])
    seen = []

    def known(self, frames, out_size=None):
        seen.append(frames[0].shape[:2])
        h, w = out_size or frames[0].shape[:2]
        return [np.zeros((h, w), np.float32) for _ in frames]

    monkeypatch.setattr(Segmenter, "probabilities", known)
    for refine in (False, True):
        render(RenderJob(str(tmp_path / "in" / "p.#.png"), str(tmp_path / f"o{refine}" / "m.#.png"),
                         [Keyframe(tmp_path / "roto.png", 1)], parent=tiny_parent,
                         params={"iterations": 1, "process_size": 64, "device": "cpu", "output_format": "png8",
                                 "edge_refine": refine, "large_object_scale": 1.0}))  # 64 px whatever the size
    assert seen == [(48, 64), (96, 128)]  # shrunk for the network alone; at plate size as the guide
