"""Several objects scored the DAVIS-2017 way, checked on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest
from PIL import Image

from osvos_plugin.evaluation import evaluate_folder, evaluate_objects


def _frames():
    """Two frames of 6x8 labels. Frame a: object 1 a 2x2 square, object 2 a 1x4 strip; frame b: object 1
    only. The prediction gets object 1 exactly; object 2 half right with 2 stray pixels (J 2/6); on frame b
    it keeps object 2 away (both empty: 1)."""
    gt_a = np.zeros((6, 8), np.uint8)
    gt_a[1:3, 1:3] = 1
    gt_a[4, 2:6] = 2
    gt_b = np.zeros((6, 8), np.uint8)
    gt_b[2:4, 4:6] = 1
    pred_a = gt_a.copy()
    pred_a[4, 4:6] = 0
    pred_a[5, 0:2] = 2
    return [gt_a, gt_b], [pred_a, gt_b.copy()]


def test_each_object_scored_alone_then_averaged():
    gts, preds = _frames()
    res = evaluate_objects(gts, preds, skip_first_last=False)
    # object 1: J 1, 1; object 2: J 2/6 on frame a, 1 on frame b (absent from both)
    assert res.J.mean == pytest.approx(((1 + 1) / 2 + (2 / 6 + 1) / 2) / 2)
    assert res.j_per_frame == pytest.approx([(1 + 2 / 6) / 2, 1.0])
    assert res.F.mean < 1.0 and res.F.mean > 0.5
    swapped = [np.where(p == 1, 2, np.where(p == 2, 1, 0)).astype(np.uint8) for p in preds]
    assert evaluate_objects(gts[:1], swapped[:1], skip_first_last=False).J.mean == pytest.approx(0.0)


def _palette(path, labels):
    img = Image.fromarray(labels, mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    img.save(path)


def test_folder_of_palette_pngs_and_layered_exrs(tmp_path):
    gts, preds = _frames()
    gts = [gts[0], *gts, gts[1]]  # first and last frames are not scored
    preds = [preds[0], *preds, preds[1]]
    ann = tmp_path / "root" / "Annotations" / "480p" / "two"
    ann.mkdir(parents=True)
    png, exr = tmp_path / "png" / "two", tmp_path / "exr" / "two"
    png.mkdir(parents=True)
    exr.mkdir(parents=True)
    for i, (g, p) in enumerate(zip(gts, preds, strict=True)):
        _palette(ann / f"{i:05d}.png", g)
        _palette(png / f"{i:05d}.png", p)
        spec = oiio.ImageSpec(8, 6, 3, "half")
        spec.channelnames = ("A", "obj1.A", "obj2.A")
        out = oiio.ImageOutput.create(str(exr / f"{i:05d}.exr"))
        out.open(str(exr / f"{i:05d}.exr"), spec)
        out.write_image(np.stack([(p > 0), (p == 1), (p == 2)], axis=-1).astype(np.float32))
        out.close()
    want = ((1 + 1) / 2 + (2 / 6 + 1) / 2) / 2
    for folder in (tmp_path / "png", tmp_path / "exr"):
        res = evaluate_folder(tmp_path / "root", folder)
        assert res.sequences[0].J.mean == pytest.approx(want), folder
    grey = tmp_path / "grey" / "two"
    grey.mkdir(parents=True)
    for i, p in enumerate(preds):
        Image.fromarray((p > 0).astype(np.uint8) * 255).save(grey / f"{i:05d}.png")
    with pytest.raises(ValueError, match="palette"):
        evaluate_folder(tmp_path / "root", tmp_path / "grey")
