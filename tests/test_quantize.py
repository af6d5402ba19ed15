"""int8 inference on the CPU (``precision int8``): the quantised network answers as the float one does, to
within quantisation, deterministically, for one object and for several, and a render with it writes mattes
that match an exact ground truth."""

import numpy as np
import pytest
import torch
from test_multi_object import FAST_OBJECTS, _layers, _write_shot  # the two-object shot and its exact truth

from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.network import ObjectNets
from osvos_plugin.weights import load_checkpoint


def _segmenters(model, **kw):
    cfg = dict(process_size=96, device="cpu", batch_size=2, flip_average=False, threshold=0.5)
    cfg.update(kw)
    return Segmenter(model, InferenceConfig(precision="fp32", **cfg)), Segmenter(model, InferenceConfig(
        precision="int8", **cfg))


def test_int8_answers_as_fp32_to_within_quantisation(demo_pair, tiny_parent):
    from osvos_plugin.quantize import Int8Model

    model, _ = load_checkpoint(tiny_parent)
    rgb, _ = demo_pair(1001, long_side=160)
    fp32, int8 = _segmenters(model)
    assert isinstance(int8.model, Int8Model) and int8.dtype == torch.float32
    assert any("quantized" in type(m).__module__ for m in int8.model.modules())  # the convolutions are int8 ones
    a, b = fp32.probabilities([rgb])[0], int8.probabilities([rgb])[0]
    assert a.shape == b.shape == rgb.shape[:2]
    assert a.std() > 0.02, "a flat probability would prove nothing"
    assert np.abs(a - b).mean() < 0.02 and not np.array_equal(a, b)
    # the same model quantises the same way: a second Segmenter (another farm chunk) gives the same answer
    assert np.array_equal(b, _segmenters(model)[1].probabilities([rgb])[0])
    # the caller's model is left in float32 for more fine-tuning
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_int8_keeps_each_object_networks_decision_rule(demo_pair, tiny_parent):
    parent, _ = load_checkpoint(tiny_parent)
    model = ObjectNets.from_parent(parent, 2)
    with torch.no_grad():
        model.nets[1].fuse.bias += 2.0  # the second object's network says "object" more readily
    rgb, _ = demo_pair(1001, long_side=160)
    fp32, int8 = _segmenters(model)
    assert int8.model.exclusive_objects is False and int8.model.num_objects == 2
    a, b = fp32.probabilities([rgb])[0], int8.probabilities([rgb])[0]
    assert a.shape == b.shape == (2, *rgb.shape[:2])
    assert np.abs(a - b).mean() < 0.02
    ma, mb = fp32.matte(a), int8.matte(b)
    assert (mb[1] > 0).mean() > (mb[0] > 0).mean()
    assert ((ma > 0.5) == (mb > 0.5)).mean() > 0.97


@pytest.mark.slow
def test_render_in_int8_matches_the_exact_truth(tmp_path, capsys):
    from osvos_plugin.cli.render import main as render_main

    masks = _write_shot(tmp_path)
    plate = str(tmp_path / "plate" / "shot.####.png")
    fast = [a if a != "fp32" else "int8" for a in FAST_OBJECTS]
    assert fast.count("int8") == 1
    assert render_main([plate, "--object", "red", str(tmp_path / "red.png"), "--object", "blue",
                        str(tmp_path / "blue.png"), "-o", str(tmp_path / "out" / "m.####.exr"), *fast]) == 0
    for i, truth in enumerate(masks):
        layers = _layers(tmp_path / "out" / f"m.{1001 + i}.exr")
        for k, (name, floor) in enumerate((("red.A", 0.8), ("blue.A", 0.7))):
            got, want = layers[name] > 0.5, truth[k] > 0.5
            assert (got & want).sum() / (got | want).sum() > floor, (i, name)
    capsys.readouterr()
    # the precision is part of what made a matte: the same render in fp32 renders every frame again
    assert render_main([plate, "--object", "red", str(tmp_path / "red.png"), "--object", "blue",
                        str(tmp_path / "blue.png"), "-o", str(tmp_path / "out" / "m.####.exr"), *FAST_OBJECTS]) == 0
    assert "6 frames written, 0 kept" in capsys.readouterr().out


def test_unknown_precision_is_refused():
    from osvos_plugin.device import resolve_precision

    with pytest.raises(ValueError, match="int8"):
        resolve_precision("int4", torch.device("cpu"))
