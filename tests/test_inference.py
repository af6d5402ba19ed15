import threading

import numpy as np
import pytest

from osvos_plugin.inference import InferenceConfig, Segmenter, recentre
from osvos_plugin.jobs import Cancelled
from osvos_plugin.weights import load_checkpoint


@pytest.fixture(scope="module")
def segmenter_factory(tiny_parent):
    model, _ = load_checkpoint(tiny_parent)

    def make(**kw):
        # the network's own matte (bilinear, hard or re-centred) unless a test asks for the edge controls
        # (and no Core Threshold: the tiny untrained parent is nowhere 0.95 sure, test_core_threshold.py)
        cfg = dict(process_size=64, device="cpu", precision="fp32", batch_size=2, flip_average=False,
                   edge_refine=False, edge_softness=0.0, core_threshold=0.0)
        cfg.update(kw)
        return Segmenter(model, InferenceConfig(**cfg))

    return make


@pytest.mark.parametrize("quantile", [None, 0.3, 0.8])
def test_matte_is_at_plate_size_soft_or_hard(demo_pair, segmenter_factory, quantile):
    rgb, _ = demo_pair(1001, long_side=150)  # 150 x 84: processed at 64 x 36, resampled back
    prob = segmenter_factory(soft=True, threshold=0.5).predict(rgb)  # at 0.5 the soft matte is the probability
    threshold = 0.5 if quantile is None else float(np.quantile(prob, quantile))
    soft = segmenter_factory(soft=True, threshold=threshold).predict(rgb)
    hard = segmenter_factory(soft=False, threshold=threshold).predict(rgb)
    assert soft.shape == hard.shape == rgb.shape[:2] and soft.dtype == np.float32
    assert 0 <= soft.min() and soft.max() <= 1 and len(np.unique(soft)) > 10
    assert set(np.unique(hard)) <= {0.0, 1.0}
    if quantile is not None:
        assert hard.mean() == pytest.approx(1 - quantile, abs=0.02)
    # the soft matte crosses 0.5 where the hard matte's edge is, whatever the threshold
    assert np.array_equal(hard, (soft > 0.5).astype(np.float32))
    assert np.array_equal(segmenter_factory(threshold=1.0).predict(rgb), np.zeros_like(soft))


def test_recentre_moves_the_half_way_point_to_the_threshold():
    prob = np.array([0.0, 0.1, 0.5, 0.6, 0.75, 0.9, 1.0], np.float32)
    assert np.array_equal(recentre(prob, 0.5), prob)  # 0.5: the probability itself
    out = recentre(prob, 0.75)
    assert out.dtype == np.float32 and out[0] == 0.0 and out[-1] == 1.0
    assert out[4] == pytest.approx(0.5)  # the threshold maps to 0.5
    assert out[5] == pytest.approx(0.75)  # odds 9 over odds 3
    assert np.all(np.diff(out) > 0)  # order kept: a soft edge stays soft
    assert np.all(out[1:-1] < prob[1:-1])  # a higher threshold tightens the matte
    assert np.array_equal(recentre(prob, 1.0), np.zeros_like(prob))


def test_batched_equals_one_by_one(demo_pair, segmenter_factory):
    frames = [demo_pair(f, long_side=96)[0] for f in (1001, 1002, 1003)]
    seg = segmenter_factory(soft=True, batch_size=3)
    batched = seg.probabilities(frames)
    single = [seg.probabilities([f])[0] for f in frames]
    for a, b in zip(batched, single, strict=True):
        assert np.allclose(a, b, atol=1e-4)


def test_stream_is_lazy_and_in_order(demo_pair, segmenter_factory):
    """At most one batch is read ahead: memory does not grow with the number of frames."""
    rgb, _ = demo_pair(1001, long_side=64)
    pulled = []

    def frames():
        for i in range(7):
            pulled.append(i)
            yield i, rgb

    seg = segmenter_factory(batch_size=2)
    out = []
    for key, _matte in seg.stream(frames(), total=7):
        assert len(pulled) - len(out) <= 2
        out.append(key)
    assert out == list(range(7))


def test_stream_cancel_between_batches(demo_pair, segmenter_factory):
    rgb, _ = demo_pair(1001, long_side=64)
    cancel = threading.Event()
    got = []
    with pytest.raises(Cancelled):
        for key, _ in segmenter_factory(batch_size=1).stream(((i, rgb) for i in range(10)), cancel=cancel):
            got.append(key)
            if key == 2:
                cancel.set()
    assert got == [0, 1, 2]


def test_bf16_close_to_fp32(demo_pair, segmenter_factory):
    rgb, _ = demo_pair(1001, long_side=96)
    a = segmenter_factory(soft=True, precision="fp32").predict(rgb)
    b = segmenter_factory(soft=True, precision="bf16").predict(rgb)
    assert np.abs(a - b).mean() < 0.03


def test_bf16_segmenter_leaves_the_callers_model_in_float32(tiny_parent):
    import torch

    model, _ = load_checkpoint(tiny_parent)
    seg = Segmenter(model, InferenceConfig(process_size=32, device="cpu", precision="bf16"))
    assert next(seg.model.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_flip_average_is_the_mean_of_the_frame_and_its_mirror(demo_pair, segmenter_factory):
    """Flip averaging: the mirrored frame's probability, flipped back, averaged with the frame's own."""
    frames = [demo_pair(f, long_side=64)[0] for f in (1001, 1002)]  # processed at its own size: no resampling
    plain = segmenter_factory(soft=True)
    averaged = segmenter_factory(soft=True, flip_average=True).probabilities(frames)
    for rgb, got in zip(frames, averaged, strict=True):
        own = plain.probabilities([rgb])[0]
        mirrored = plain.probabilities([np.ascontiguousarray(rgb[:, ::-1])])[0][:, ::-1]
        assert np.allclose(got, 0.5 * (own + mirrored), atol=1e-4)
        assert np.abs(own - mirrored).max() > 1e-3  # the network is not mirror-symmetric: averaging changes it
    # a mirror-symmetric frame gives a mirror-symmetric matte
    sym = np.concatenate([frames[0][:, :32], frames[0][:, :32][:, ::-1]], axis=1)
    out = segmenter_factory(soft=True, flip_average=True).probabilities([sym])[0]
    assert np.allclose(out, out[:, ::-1], atol=1e-5)


def _todays_mattes(seg, frames, soft, threshold, flip_average, out_size=None):
    """The matte as the Segmenter made it before the edge controls: the network at the processing size, the
    logits (or flip-averaged probabilities) resized bilinearly, then thresholded or re-centred."""
    import torch
    import torch.nn.functional as F

    from osvos_plugin.imaging import fit_long_side, resize

    with torch.inference_mode():
        h, w = frames[0].shape[:2]
        batch = torch.from_numpy(np.stack(frames).astype(np.float32)).permute(0, 3, 1, 2)
        x = resize(batch, fit_long_side(h, w, seg.cfg.process_size)).contiguous(memory_format=torch.channels_last)
        size = out_size or (h, w)
        if flip_average:
            both = torch.sigmoid(seg.model(torch.cat([x, x.flip(-1)])).float())
            prob = 0.5 * (both[: len(frames)] + both[len(frames):].flip(-1))
            prob = F.interpolate(prob, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()
        else:
            logits = F.interpolate(seg.model(x).float(), size=size, mode="bilinear", align_corners=False)
            prob = torch.sigmoid(logits)[:, 0].numpy()
    return [recentre(p, threshold) if soft else (p > threshold).astype(np.float32) for p in prob]


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("flip_average", [False, True])
def test_edge_controls_off_leave_the_matte_bit_for_bit(demo_pair, tiny_parent, soft, flip_average):
    """Refine Edge off and Edge Softness 0 (and no Core Threshold) give the matte of before the edge controls,
    bit for bit."""
    from osvos_plugin.settings import RenderSettings

    model, _ = load_checkpoint(tiny_parent)
    frames = [demo_pair(f, long_side=150)[0] for f in (1001, 1002)]
    params = {"soft_matte": soft, "flip_average": flip_average, "process_size": 64, "device": "cpu",
              "precision": "fp32", "batch_size": 2, "edge_refine": False, "edge_softness": 0.0, "core_threshold": 0.0}
    cfg = RenderSettings.resolve(params).inference()
    seg = Segmenter(model, cfg)
    want = _todays_mattes(seg, frames, soft, cfg.threshold, flip_average)
    got = [m for _, m in seg.stream(enumerate(frames))]
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # frames handed over at the processing size, mattes at the plate's (as a render reads them)
    small = [np.ascontiguousarray(f[::2, ::2]) for f in frames]
    want = _todays_mattes(seg, small, soft, cfg.threshold, flip_average, out_size=frames[0].shape[:2])
    got = [m for _, m in seg.stream(enumerate(small), out_size=frames[0].shape[:2])]
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_edge_controls_shape_the_matte_at_plate_size(demo_pair, segmenter_factory):
    from osvos_plugin.edges import alpha_from_probability

    rgb, _ = demo_pair(1001, long_side=150)
    prob = segmenter_factory(soft=True, threshold=0.5).probabilities([rgb])[0]
    t = float(np.quantile(prob, 0.7))
    plain = segmenter_factory(threshold=t).predict(rgb)
    grown = segmenter_factory(threshold=t, edge_grow=3.0).predict(rgb)
    shrunk = segmenter_factory(threshold=t, edge_grow=-3.0).predict(rgb)
    assert set(np.unique(grown)) <= {0.0, 1.0} and shrunk.sum() < plain.sum() < grown.sum()
    assert np.all(grown >= plain) and np.all(shrunk <= plain)
    soft = segmenter_factory(threshold=t, edge_softness=4.0).predict(rgb)
    assert np.array_equal(soft, alpha_from_probability(prob, t, 4.0))
    assert np.array_equal(soft, segmenter_factory(threshold=t, soft=True, edge_softness=4.0).predict(rgb))
    assert np.array_equal(soft > 0.5, plain > 0.5) and (soft == 1).mean() > 0.1 and (soft == 0).mean() > 0.5
    with pytest.raises(ValueError, match="edge_softness"):
        segmenter_factory(edge_softness=-1.0)


@pytest.mark.parametrize("flip_average", [False, True])
def test_edge_refine_guides_the_upsampling_with_the_plate(demo_pair, segmenter_factory, flip_average):
    from osvos_plugin.edges import guided_upsample

    rgb, _ = demo_pair(1001, long_side=150)  # 150 x 84, processed at 64 x 36
    refined = segmenter_factory(soft=True, threshold=0.5, edge_refine=True, flip_average=flip_average)
    plain = segmenter_factory(soft=True, threshold=0.5, flip_average=flip_average)
    got = refined.probabilities([rgb])[0]
    small = plain.probabilities([rgb], out_size=(36, 64))[0]
    assert got.shape == rgb.shape[:2] and got.dtype == np.float32 and 0 <= got.min() and got.max() <= 1
    assert np.allclose(got, guided_upsample(small, rgb, 2 * 150 / 64, 1e-3), atol=1e-4)
    assert not np.allclose(got, plain.probabilities([rgb])[0], atol=1e-2)
    hard = segmenter_factory(threshold=0.5, edge_refine=True, flip_average=flip_average).predict(rgb)
    assert np.array_equal(hard, (got > 0.5).astype(np.float32))
    # frames smaller than the matte still work (the guide is then the enlarged frame)
    small_frame = np.ascontiguousarray(rgb[::2, ::2])
    assert refined.probabilities([small_frame], out_size=rgb.shape[:2])[0].shape == rgb.shape[:2]


@pytest.mark.parametrize("objects", [1, 2])
def test_edges_on_the_device_match_the_cpu_path(demo_pair, segmenter_factory, objects):
    """On a GPU the guided filter runs on the batch there (``guided_upsample_tensor``); the same path run
    here gives the OpenCV path's probabilities to within float32, for one object and for several, and the
    same alpha."""
    frames = [demo_pair(f, long_side=150)[0] for f in (1001, 1006, 1011)]
    seg = segmenter_factory(threshold=0.5, edge_refine=True, edge_softness=1.0, flip_average=True, batch_size=3)
    if objects == 2:
        seg.model = seg.model.with_objects(2).eval()
        seg._object_probabilities = seg.model.probabilities
    cpu = seg.probabilities(frames)
    seg._edges_on_device = True
    device = seg.probabilities(frames)
    for a, b in zip(cpu, device, strict=True):
        assert a.shape == b.shape == ((objects,) if objects > 1 else ()) + frames[0].shape[:2]
        assert a.dtype == b.dtype == np.float32 and np.abs(a - b).max() < 1e-4
        ma, mb = seg.matte(a), seg.matte(b)  # the alpha ramp moves with the probability, continuously
        assert np.abs(ma - mb).max() < 1e-3
