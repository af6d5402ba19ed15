"""Several objects: one network per object (the default, the paper's), or one shared network with a score
per object, objects and background competing for each pixel. One object stays exactly the single-object
OSVOS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osvos_plugin.finetune import FinetuneConfig, finetune
from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.losses import class_balanced_bce, class_balanced_ce, deep_supervision_loss
from osvos_plugin.models import load_parent
from osvos_plugin.network import ObjectNets, OSVOSNet, object_probabilities
from osvos_plugin.weights import WeightsError, load_checkpoint, read_checkpoint_info, save_checkpoint


def two_object_shot(n: int = 6, h: int = 90, w: int = 160):
    """A red square moving right and a blue disc moving left over grey noise, with their exact masks."""
    rng = np.random.default_rng(0)
    frames, masks = [], []
    yy, xx = np.mgrid[:h, :w]
    for t in range(n):
        img = (0.45 + 0.1 * rng.random((h, w, 3))).astype(np.float32)
        m = np.zeros((2, h, w), np.float32)
        y, x = 20 + 2 * t, 15 + 6 * t
        img[y:y + 30, x:x + 30] = [0.9, 0.1, 0.1]
        m[0, y:y + 30, x:x + 30] = 1
        disc = (yy - 50) ** 2 + (xx - (120 - 5 * t)) ** 2 < 15 ** 2
        img[disc] = [0.1, 0.2, 0.9]
        m[1][disc] = 1
        frames.append(img)
        masks.append(m)
    return frames, masks


def test_one_object_is_the_sigmoid_and_the_two_class_loss():
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.7).float()
    assert torch.equal(object_probabilities(logits), torch.sigmoid(logits))
    assert class_balanced_ce(logits, target) == class_balanced_bce(logits, target)
    # the K-object loss with a second object that is absent and never predicted is the one-object loss
    both = torch.cat([logits, torch.full_like(logits, -40.0)], dim=1)
    assert class_balanced_ce(both, torch.cat([target, torch.zeros_like(target)], 1)).item() == pytest.approx(
        class_balanced_bce(logits, target).item(), rel=1e-5)
    probs = object_probabilities(torch.randn(3, 4, 5, 5))
    assert (probs.sum(1) < 1).all() and (probs > 0).all()  # the background keeps a share


def test_object_heads_start_from_the_parents_and_survive_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    parent = OSVOSNet()
    multi = parent.with_objects(3)
    assert multi.num_objects == 3 and parent.num_objects == 1
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        single, three = parent(x), multi(x)
    assert three.shape == (1, 3, 32, 48) and torch.allclose(three, single.expand_as(three), atol=1e-6)
    with torch.no_grad():
        multi.fuse.bias[2] += 1.0
    save_checkpoint(multi, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.num_objects == 3 and torch.equal(loaded.fuse.bias, multi.fuse.bias)


def test_object_networks_start_as_the_parent_and_survive_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    parent = OSVOSNet()
    nets = ObjectNets.from_parent(parent, 2)
    assert nets.num_objects == 2 and not nets.exclusive_objects and parent.exclusive_objects
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        single, two = parent(x), nets(x)
        fused, sides = nets.forward_with_sides(x)
    assert two.shape == (1, 2, 32, 48) and torch.allclose(two, single.expand_as(two), atol=1e-6)
    assert torch.equal(fused, two) and [s.shape for s in sides] == [(1, 2, 32, 48)] * 4
    assert torch.equal(nets.probabilities(two), torch.sigmoid(two))  # each object's own, not a softmax
    with torch.no_grad():
        nets.nets[1].fuse.bias += 1.0
    save_checkpoint(nets, tmp_path / "n.safetensors", provenance={"objects": ["a", "b"]})
    assert read_checkpoint_info(tmp_path / "n.safetensors").architecture == "osvos-vgg16-objects"
    loaded, _ = load_checkpoint(tmp_path / "n.safetensors", expect=("osvos-vgg16", "osvos-vgg16-objects"))
    assert isinstance(loaded, ObjectNets) and loaded.num_objects == 2
    with torch.no_grad():
        assert torch.equal(loaded(x), nets(x))
    with pytest.raises(WeightsError, match="holds a osvos-vgg16-objects model, expected osvos-vgg16"):
        load_checkpoint(tmp_path / "n.safetensors")  # where a parent is expected
    three = np.zeros((3, 16, 16), np.float32)
    for k in range(3):
        three[k, 5 * k:5 * k + 4, 2:9] = 1
    rgb = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="cannot learn 3 objects"):
        finetune(loaded, [(rgb, three)], FinetuneConfig(iterations=0))
    with pytest.raises(ValueError, match="per_object or shared"):
        finetune(parent, [(rgb, three)], FinetuneConfig(iterations=0, object_networks="each"))


def test_object_networks_end_exactly_as_separate_single_object_fine_tunes():
    """Each object's network learns from its own keyframe samples (its own zoom for its own size) with its own
    loss: the same weights as a fine-tune of that object alone, so one render equals a render per object."""
    torch.manual_seed(0)
    parent = OSVOSNet()
    frames, masks = two_object_shot(2)
    cfg = FinetuneConfig(iterations=3, process_size=64, device="cpu", precision="fp32")
    nets = finetune(parent, [(frames[0], masks[0]), (frames[1], masks[1])], cfg)
    assert isinstance(nets, ObjectNets)
    for k in range(2):
        alone = finetune(parent, [(frames[0], masks[0][k]), (frames[1], masks[1][k])], cfg)
        mine = nets.nets[k].state_dict()
        assert all(torch.allclose(mine[name], value, atol=1e-6) for name, value in alone.state_dict().items()), k
        assert not torch.equal(mine["fuse.bias"], parent.state_dict()["fuse.bias"])  # it did learn


def test_per_object_loss_is_each_objects_own_two_class_loss():
    torch.manual_seed(0)
    fused, target = torch.randn(2, 3, 8, 8), (torch.rand(2, 3, 8, 8) > 0.6).float()
    sides = [torch.randn(2, 3, 8, 8) for _ in range(4)]
    own = sum(deep_supervision_loss(fused[:, k:k + 1], [s[:, k:k + 1] for s in sides], target[:, k:k + 1], 0.5)
              for k in range(3))
    assert deep_supervision_loss(fused, sides, target, 0.5, exclusive=False).item() == pytest.approx(own.item(),
                                                                                                      rel=1e-5)
    assert deep_supervision_loss(fused, sides, target, 0.5).item() != pytest.approx(own.item(), rel=1e-3)


def test_keyframes_need_every_object_painted_somewhere():
    frames, masks = two_object_shot(2)
    first = masks[0].copy()
    first[1] = 0
    with pytest.raises(ValueError, match="object 2 is painted on no keyframe"):
        finetune(OSVOSNet(), [(frames[0], first)], FinetuneConfig(iterations=1, device="cpu"))
    with pytest.raises(ValueError, match="a mask per object"):
        finetune(OSVOSNet(), [(frames[0], masks[0]), (frames[1], masks[1][0])], FinetuneConfig(iterations=1))


@pytest.mark.slow
@pytest.mark.parametrize("object_networks", ["per_object", "shared"])
def test_two_objects_learnt_match_their_exact_masks(object_networks):
    frames, masks = two_object_shot()
    cfg = FinetuneConfig(iterations=80, process_size=96, device="cpu", precision="fp32",
                         object_networks=object_networks)
    model = finetune(load_parent(None), [(frames[0], masks[0])], cfg)
    assert model.num_objects == 2
    assert isinstance(model, ObjectNets if object_networks == "per_object" else OSVOSNet)
    seg = Segmenter(model, InferenceConfig(process_size=96, device="cpu", precision="fp32", flip_average=False,
                                           threshold=0.5, core_threshold=0.0))  # the plain cut
    for img, truth in zip(frames, masks, strict=True):
        matte = seg.matte(seg.probabilities([img])[0])
        assert matte.shape == truth.shape
        assert not ((matte[0] > 0) & (matte[1] > 0)).any()  # a pixel belongs to one object at most
        for k, floor in ((0, 0.8), (1, 0.7)):  # the disc's edge is the harder one at 96 px
            inter = ((matte[k] > 0.5) & (truth[k] > 0.5)).sum()
            assert inter / ((matte[k] > 0.5) | (truth[k] > 0.5)).sum() > floor, (k, inter)


# ------------------------------------------------------------------------------ osvos-render, end to end


def _write_shot(folder):
    """The two-object shot as PNG plates 1001-1006, its label PNG (palette) and one mask per object."""
    import cv2
    from PIL import Image

    frames, masks = two_object_shot()
    (folder / "plate").mkdir(parents=True)
    for i, img in enumerate(frames):
        cv2.imwrite(str(folder / "plate" / f"shot.{1001 + i}.png"), cv2.cvtColor(np.round(img * 255).astype(np.uint8),
                                                                              cv2.COLOR_RGB2BGR))
    labels = (masks[0][0] * 1 + masks[0][1] * 2).astype(np.uint8)
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([0, 0, 0, 200, 0, 0, 0, 0, 200] + [0] * (256 * 3 - 9))
    pal.save(folder / "labels.png")
    for k, name in enumerate(("red", "blue")):
        cv2.imwrite(str(folder / f"{name}.png"), (masks[0][k] * 255).astype(np.uint8))
    return masks


def _layers(path):
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    try:
        names = list(inp.spec().channelnames)
        pixels = inp.read_image(0, 0, 0, len(names), "float")
    finally:
        inp.close()
    return {n: pixels[..., i] for i, n in enumerate(names)}


# at Processing Size whatever the objects' size (Large Object Scale 1): the larger network is tested elsewhere;
# the plain cut at 0.5 (no Core Threshold, test_core_threshold.py): these check how objects share pixels
FAST_OBJECTS = ["--iterations", "80", "--process-size", "96", "--threshold", "0.5", "--core-threshold", "0",
                "--no-flip-average",
                "--device", "cpu", "--precision", "fp32", "--progress", "none", "--mask-frame", "1001",
                "--large-object-scale", "1"]


@pytest.mark.slow
def test_render_writes_a_layer_per_object_that_matches_the_truth(tmp_path, capsys):
    from osvos_plugin.cli.render import main as render_main

    masks = _write_shot(tmp_path)
    plate = str(tmp_path / "plate" / "shot.####.png")
    out = tmp_path / "out" / "m.####.exr"
    assert render_main([plate, "--object", "red", str(tmp_path / "red.png"), "--object", "blue",
                        str(tmp_path / "blue.png"), "-o", str(out), "--save-model", str(tmp_path / "m.safetensors"),
                        *FAST_OBJECTS]) == 0
    for i, truth in enumerate(masks):
        layers = _layers(tmp_path / "out" / f"m.{1001 + i}.exr")
        assert sorted(layers) == ["A", "blue.A", "red.A"]
        assert np.array_equal(layers["A"], np.maximum(layers["red.A"], layers["blue.A"]))
        assert not ((layers["red.A"] > 0) & (layers["blue.A"] > 0)).any()
        for k, (name, floor) in enumerate((("red.A", 0.8), ("blue.A", 0.7))):
            got, want = layers[name] > 0.5, truth[k] > 0.5
            assert (got & want).sum() / (got | want).sum() > floor, (i, name)
    capsys.readouterr()
    # resume keeps them; renaming an object renders again (the layer names are part of what made a matte)
    args = [plate, "--object", "red", str(tmp_path / "red.png"), "--object", "blue", str(tmp_path / "blue.png"),
            "-o", str(out), *FAST_OBJECTS]
    assert render_main(args) == 0
    assert "0 frames written, 6 kept" in capsys.readouterr().out
    # the saved model renders the same layers, named from its record
    again = tmp_path / "again" / "m.####.exr"
    assert render_main([plate, "--load-model", str(tmp_path / "m.safetensors"), "-o", str(again),
                        *FAST_OBJECTS[2:]]) == 0
    first, second = _layers(tmp_path / "out" / "m.1004.exr"), _layers(tmp_path / "again" / "m.1004.exr")
    assert sorted(second) == sorted(first) and all(np.array_equal(first[n], second[n]) for n in first)


@pytest.mark.slow
def test_a_palette_png_holds_the_objects(tmp_path):
    from osvos_plugin.cli.render import main as render_main

    masks = _write_shot(tmp_path)
    out = tmp_path / "out" / "m.####.exr"
    assert render_main([str(tmp_path / "plate" / "shot.####.png"), "--mask", str(tmp_path / "labels.png"),
                        "-o", str(out), "--frames", "1001-1003", *FAST_OBJECTS]) == 0
    layers = _layers(tmp_path / "out" / "m.1003.exr")
    assert sorted(layers) == ["A", "obj1.A", "obj2.A"]
    for k, name in enumerate(("obj1.A", "obj2.A")):
        got, want = layers[name] > 0.5, masks[2][k] > 0.5
        assert (got & want).sum() / (got | want).sum() > 0.7


def test_what_several_objects_cannot_do_yet_is_refused_first(tmp_path, capsys):
    from osvos_plugin.cli.render import main as render_main

    _write_shot(tmp_path)
    base = [str(tmp_path / "plate" / "shot.####.png"), "--object", "red", str(tmp_path / "red.png"),
            "--object", "blue", str(tmp_path / "blue.png"), "-o", str(tmp_path / "out" / "m.####.png"),
            *FAST_OBJECTS]
    # {object} names a file per object: not for an EXR (a layer each), not for one object
    assert render_main([*base[:-len(FAST_OBJECTS) - 2], "-o", str(tmp_path / "out" / "m.{object}.####.exr"),
                        *FAST_OBJECTS]) == 3
    assert "an EXR holds every object as a layer" in capsys.readouterr().err
    assert render_main([*base[:1], "--mask", str(tmp_path / "red.png"), "-o",
                        str(tmp_path / "out" / "m.{object}.####.png"), "--output-format", "png8", *FAST_OBJECTS]) == 3
    assert "this render has one object" in capsys.readouterr().err
    assert render_main([*base[:-len(FAST_OBJECTS)], "-o", str(tmp_path / "o" / "m.####.exr"), *FAST_OBJECTS,
                        "--self-train-iterations", "10"]) == 3
    assert "self-training learns one object" in capsys.readouterr().err
    assert render_main([*base[:1], "--object", "bad name", str(tmp_path / "red.png"), "-o",
                        str(tmp_path / "o" / "m.####.exr")]) == 2
    assert "object name 'bad name'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_png_writes_a_file_per_object_that_matches_the_truth_and_resumes_per_file(tmp_path, capsys):
    import cv2

    from osvos_plugin.cli.render import main as render_main

    masks = _write_shot(tmp_path)
    plate = str(tmp_path / "plate" / "shot.####.png")
    objects = ["--object", "red", str(tmp_path / "red.png"), "--object", "blue", str(tmp_path / "blue.png")]
    args = [plate, *objects, "-o", str(tmp_path / "out" / "m.{object}.####.png"), "--output-format", "png8",
            *FAST_OBJECTS]
    assert render_main(args) == 0
    capsys.readouterr()
    for i, truth in enumerate(masks):
        red, blue = (cv2.imread(str(tmp_path / "out" / f"m.{name}.{1001 + i}.png"), cv2.IMREAD_UNCHANGED)
                     for name in ("red", "blue"))
        assert red.dtype == np.uint8 and red.shape == truth[0].shape
        assert not ((red > 127) & (blue > 127)).any()  # a pixel belongs to one object at most
        for k, (got, floor) in enumerate(((red, 0.8), (blue, 0.7))):
            inside, want = got > 127, truth[k] > 0.5
            assert (inside & want).sum() / (inside | want).sum() > floor, (i, k)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == sorted(
        [f"m.{n}.{1001 + i}.png" for n in ("red", "blue") for i in range(6)] + ["m.osvos-review.json"])
    assert (tmp_path / "out" / ".osvos" / "m.model.safetensors").is_file()  # named after the mattes, not {object}
    # resume: every file current, nothing rendered; one object's file gone: only that frame again
    assert render_main(args) == 0
    assert "0 frames written, 6 kept" in capsys.readouterr().out
    (tmp_path / "out" / "m.blue.1003.png").unlink()
    assert render_main(args) == 0
    assert "1 frame written, 5 kept" in capsys.readouterr().out
    assert (tmp_path / "out" / "m.blue.1003.png").is_file()
    # without {object}: a folder per object
    assert render_main([plate, *objects, "-o", str(tmp_path / "dirs" / "m.####.png"), "--output-format", "png16",
                        "--frames", "1001-1002", *FAST_OBJECTS]) == 0
    assert sorted(p.relative_to(tmp_path / "dirs").as_posix() for p in (tmp_path / "dirs").rglob("*.png")) == [
        "blue/m.1001.png", "blue/m.1002.png", "red/m.1001.png", "red/m.1002.png"]
    assert cv2.imread(str(tmp_path / "dirs" / "red" / "m.1001.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.slow
def test_preview_shows_each_object_in_its_colour_where_its_layer_is(tmp_path):
    import cv2

    from osvos_plugin.cli.render import main as render_main
    from osvos_plugin.preview import OBJECT_COLOURS

    _write_shot(tmp_path)
    # previews are at the processing size (the plate as the network saw it): here the plate's own
    quick = [*FAST_OBJECTS[:2], *FAST_OBJECTS[4:], "--process-size", "160"]
    assert render_main([str(tmp_path / "plate" / "shot.####.png"), "--object", "red", str(tmp_path / "red.png"),
                        "--object", "blue", str(tmp_path / "blue.png"), "-o", str(tmp_path / "out" / "m.####.exr"),
                        "--preview", str(tmp_path / "pv"), "--frames", "1001-1003", *quick]) == 0
    assert sorted(p.name for p in (tmp_path / "pv").iterdir()) == ["m.1001.png", "m.1002.png", "m.1003.png", "m.mp4"]
    plate = cv2.cvtColor(cv2.imread(str(tmp_path / "plate" / "shot.1002.png")), cv2.COLOR_BGR2RGB) / 255.0
    shown = cv2.cvtColor(cv2.imread(str(tmp_path / "pv" / "m.1002.png")), cv2.COLOR_BGR2RGB).astype(float)
    layers = _layers(tmp_path / "out" / "m.1002.exr")
    edge = np.zeros(plate.shape[:2], bool)  # the outlines are drawn over the tint: leave 3 px around edges out
    for name in ("red.A", "blue.A"):
        m = (layers[name] > 0.5).astype(np.uint8)
        edge |= cv2.dilate(m, np.ones((7, 7), np.uint8)) != cv2.erode(m, np.ones((7, 7), np.uint8))
    for k, name in enumerate(("red.A", "blue.A")):
        inside = (layers[name] > 0.5) & ~edge
        assert inside.sum() > 50
        want = (plate * 0.5 + np.asarray(OBJECT_COLOURS[k]) * 0.5) * 255
        assert np.abs(shown[inside] - want[inside]).max() <= 1.5
    outside = (layers["A"] < 0.5) & ~edge
    assert np.abs(shown[outside] - plate[outside] * 255).max() <= 1.0  # untouched where no object is
    import av

    with av.open(str(tmp_path / "pv" / "m.mp4")) as movie:
        stream = movie.streams.video[0]
        assert stream.codec_context.name == "h264" and len(list(movie.decode(stream))) == 3


def test_overlapping_objects_each_decided_on_their_own_probability():
    prob = np.zeros((2, 4, 4), np.float32)
    prob[0, :, :2] = 0.9  # object 1 on the left half
    prob[1, :2, :] = 0.8  # object 2 on the top half: both on the top-left quarter
    hard = {"device": "cpu", "threshold": 0.5, "edge_softness": 0.0, "core_threshold": 0.0}  # the rule, no edge ramp
    exclusive = Segmenter(OSVOSNet(), InferenceConfig(**hard)).matte(prob)
    both = Segmenter(OSVOSNet(), InferenceConfig(**hard, overlap=True)).matte(prob)
    assert not ((exclusive[0] > 0) & (exclusive[1] > 0)).any()
    assert np.array_equal(both[0], prob[0] > 0.5) and np.array_equal(both[1], prob[1] > 0.5)
    assert both[0][:2, :2].all() and both[1][:2, :2].all()


def test_painted_overlap_max_objects_and_palette_gaps_are_each_said(tmp_path, capsys, caplog):
    import cv2
    from PIL import Image

    from osvos_plugin.cli.render import main as render_main
    from osvos_plugin.io import object_names

    _write_shot(tmp_path)
    plate = str(tmp_path / "plate" / "shot.####.png")
    big = np.zeros((90, 160), np.uint8)
    big[10:70, 10:80] = 255  # covers the red square of frame 1001 (rows 20-50, columns 15-45)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    args = [plate, "--object", "red", str(tmp_path / "red.png"), "--object", "big", str(tmp_path / "big.png"),
            "-o", str(tmp_path / "out" / "m.####.exr"), *FAST_OBJECTS]
    assert render_main(args) == 3
    err = capsys.readouterr().err
    assert "objects red and big are both painted on 900 pixel(s) of frame 1001" in err and "--object-overlap" in err
    assert render_main([*args, "--max-objects", "1"]) == 3
    assert "2 objects (red, big) but Max Objects is 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # a palette with indices 1 and 3: objects obj1 and obj3, the gap said
    labels = np.zeros((8, 8), np.uint8)
    labels[:2], labels[4:6] = 1, 3
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [0] * (256 * 3 - 12))
    pal.save(tmp_path / "gaps.png")
    with caplog.at_level("WARNING"):
        assert object_names([(tmp_path / "gaps.png", 1001, None)]) == ["obj1", "obj3"]
    assert "indices [1, 3] are painted, [2] unused" in caplog.text


@pytest.mark.slow
def test_overlapping_objects_render_with_a_layer_each_that_matches_the_truth(tmp_path):
    """A blue card with a red square on it: the card (square included) and the square, both wanted whole."""
    import cv2

    from osvos_plugin.cli.render import main as render_main

    rng = np.random.default_rng(1)
    (tmp_path / "plate").mkdir()
    truth = []
    for t in range(4):
        img = (0.45 + 0.1 * rng.random((90, 160, 3))).astype(np.float32)
        y, x = 15 + 2 * t, 20 + 5 * t
        img[y:y + 50, x:x + 80] = [0.1, 0.2, 0.9]
        img[y + 10:y + 35, x + 10:x + 35] = [0.9, 0.1, 0.1]
        card, square = np.zeros((90, 160), bool), np.zeros((90, 160), bool)
        card[y:y + 50, x:x + 80] = True
        square[y + 10:y + 35, x + 10:x + 35] = True
        truth.append((card, square))
        cv2.imwrite(str(tmp_path / "plate" / f"c.{1001 + t}.png"),
                    cv2.cvtColor(np.round(img * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    for name, m in zip(("card", "square"), truth[0], strict=True):
        cv2.imwrite(str(tmp_path / f"{name}.png"), m.astype(np.uint8) * 255)
    out = tmp_path / "out" / "m.####.exr"
    assert render_main([str(tmp_path / "plate" / "c.####.png"), "--object", "card", str(tmp_path / "card.png"),
                        "--object", "square", str(tmp_path / "square.png"), "--object-overlap", "-o", str(out),
                        *FAST_OBJECTS, "--process-size", "160", "--threshold", "0.75"]) == 0
    for t, (card, square) in enumerate(truth):
        layers = _layers(tmp_path / "out" / f"m.{1001 + t}.exr")
        for name, want, floor in (("card.A", card, 0.85), ("square.A", square, 0.75)):
            got = layers[name] > 0.5
            iou = (got & want).sum() / (got | want).sum()
            assert iou > floor, (t, name, iou)
        assert ((layers["card.A"] > 0.5) & (layers["square.A"] > 0.5)).sum() > 0.8 * square.sum()  # both whole
