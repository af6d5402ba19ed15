import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from osvos_plugin.augment import LARGE_OBJECT_SHARE, AugmentConfig, KeyframeSampler
from osvos_plugin.finetune import FinetuneConfig, finetune
from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.jobs import Cancelled
from osvos_plugin.weights import load_checkpoint

SMALL = dict(process_size=128, device="cpu", precision="fp32", learning_rate=1e-4)


def _iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum() / max(1, (a | b).sum())


def test_finetune_learns_the_painted_object(demo_pair, tiny_parent):
    parent, _ = load_checkpoint(tiny_parent)
    rgb, mask = demo_pair(1001, long_side=128)
    seg0 = Segmenter(parent, InferenceConfig(process_size=0, device="cpu", precision="fp32"))
    before = _iou(seg0.predict(rgb), mask)
    model = finetune(parent, [(rgb, mask)], FinetuneConfig(iterations=60, **SMALL))
    seg = Segmenter(model, InferenceConfig(process_size=0, device="cpu", precision="fp32"))
    after = _iou(seg.predict(rgb), mask)
    later_rgb, later_mask = demo_pair(1010, long_side=128)
    later = _iou(seg.predict(later_rgb), later_mask)
    assert after > 0.6 and after > before + 0.2
    assert later > 0.5  # a frame it never saw
    # the parent is left as it was
    p2, _ = load_checkpoint(tiny_parent)
    assert all(torch.equal(a, b) for a, b in zip(parent.state_dict().values(), p2.state_dict().values(), strict=True))


def test_same_seed_same_result_other_seed_differs(demo_pair, tiny_parent):
    parent, _ = load_checkpoint(tiny_parent)
    pair = demo_pair(1001, long_side=64)
    runs = [finetune(parent, [pair], FinetuneConfig(iterations=3, seed=s, **SMALL)) for s in (7, 7, 8)]
    w = [r.fuse.weight.detach().clone() for r in runs]
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])


def test_progress_and_cancel(demo_pair, tiny_parent):
    parent, _ = load_checkpoint(tiny_parent)
    seen = []
    cancel = threading.Event()

    def progress(p):
        seen.append(p)
        if p.done == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        finetune(parent, [demo_pair(1001, long_side=64)], FinetuneConfig(iterations=50, **SMALL), progress, cancel)
    assert [p.done for p in seen] == [1, 2, 3]
    assert all(p.total == 50 and p.stage == "finetune" and p.loss > 0 for p in seen)
    assert seen[-1].eta_s > 0 and 0 < seen[-1].fraction < 1


def test_several_keyframes_are_all_used(demo_pair, tiny_parent):
    parent, _ = load_checkpoint(tiny_parent)
    a, b = demo_pair(1001, long_side=64), demo_pair(1020, long_side=64)
    model = finetune(parent, [a, b], FinetuneConfig(iterations=30, **SMALL))
    seg = Segmenter(model, InferenceConfig(process_size=0, device="cpu", precision="fp32"))
    assert _iou(seg.predict(b[0]), b[1]) > 0.5


@pytest.mark.parametrize(
    "mask_fn, message",
    [
        (lambda m: np.zeros_like(m), "no foreground"),
        (lambda m: np.ones_like(m), "all foreground"),
        (lambda m: np.where(m > 0, np.nan, 0).astype(np.float32), "NaN"),
        (lambda m: m[:-1], "mask is"),
    ],
)
def test_bad_keyframes_are_refused(demo_pair, tiny_parent, mask_fn, message):
    parent, _ = load_checkpoint(tiny_parent)
    rgb, mask = demo_pair(1001, long_side=64)
    with pytest.raises(ValueError, match=message):
        finetune(parent, [(rgb, mask_fn(mask))], FinetuneConfig(iterations=1, **SMALL))


def test_augmentations_keep_image_and_mask_aligned():
    from osvos_plugin.augment import augment_pair

    img = torch.zeros(1, 3, 40, 60)
    img[..., 10:20, 5:25] = 1.0
    mask = img[:, :1].clone()
    g = torch.Generator().manual_seed(0)
    cfg = AugmentConfig(crop=0.7, rotate_deg=15, colour=0.0)
    for _ in range(20):
        a, m = augment_pair(img, mask, cfg, g)
        assert a.shape[-2:] == m.shape[-2:]
        assert ((a[:, 0] > 0.5) == (m[:, 0] > 0.5)).float().mean() > 0.97


def test_crops_keep_between_crop_and_crop_max_of_each_side():
    from osvos_plugin.augment import augment_pair

    img, mask = torch.rand(1, 3, 100, 200), torch.rand(1, 1, 100, 200)
    g = torch.Generator().manual_seed(0)
    sizes = [augment_pair(img, mask, AugmentConfig(crop=0.4, crop_max=0.7, colour=0.0), g)[0].shape[-2:]
             for _ in range(200)]
    hs, ws = [h for h, _ in sizes], [w for _, w in sizes]
    assert 40 <= min(hs) < 45 and 65 < max(hs) <= 70 and 80 <= min(ws) < 90 and 130 < max(ws) <= 140
    full = [augment_pair(img, mask, AugmentConfig(crop=0.4, colour=0.0), g)[0].shape[-1] for _ in range(200)]
    assert max(full) > 190  # without crop_max, up to the whole side


def test_crops_on_the_object_always_hold_part_of_it():
    from osvos_plugin.augment import augment_pair

    img = torch.zeros(1, 3, 100, 200)
    mask = torch.zeros(1, 2, 100, 200)  # an object, then a loss weight that covers everything
    mask[0, 0, 10:14, 180:186], mask[0, 1] = 1.0, 1.0
    img[..., 10:14, 180:186] = 1.0
    g = torch.Generator().manual_seed(0)
    on = AugmentConfig(crop=0.3, crop_max=0.5, crop_on_object=True, flip=True, colour=0.0)
    held = [(m[0, 0] > 0.5).any().item() for _, m in (augment_pair(img, mask, on, g, objects=1) for _ in range(100))]
    assert all(held)
    anywhere = AugmentConfig(crop=0.3, crop_max=0.5, colour=0.0)
    held = [(m[0, 0] > 0.5).any().item() for _, m in (augment_pair(img, mask, anywhere, g, objects=1)
                                                       for _ in range(100))]
    assert sum(held) < 50  # a small object in a corner: most crops drawn anywhere miss it


def test_close_crops_cut_only_the_full_size_and_zoomed_samples_around_the_object():
    rgb = np.zeros((100, 200, 3), np.float32)
    mask = np.zeros((100, 200), np.float32)
    mask[10:20, 170:190] = 1.0
    cfg = AugmentConfig(scales=(0.5, 1.0, 2.0), crop=0.9, close_crop=0.3, close_crop_max=0.4, colour=0.0)
    sampler = KeyframeSampler([(rgb, mask)], 200, cfg, torch.device("cpu"), seed=0)
    small, close = [], []
    for step in range(60):
        image, m = sampler(step)
        h, w = image.shape[-2:]
        (close if h <= 40 else small).append((h, w, bool((m[0, 0] > 0.5).any())))
    assert small and close
    assert all(45 <= h <= 50 and 90 <= w <= 100 for h, w, _ in small)  # scale 0.5: whole but for crop 0.9
    assert all(30 <= h <= 40 and 60 <= w <= 80 and held for h, w, held in close)  # 0.3-0.4 of 100x200, on it
    # an object over close_crop_below of the frame: its samples at scale 1 and above are cut as the others
    large = KeyframeSampler([(rgb, mask)], 200, replace(cfg, close_crop_below=0.01), torch.device("cpu"), seed=0)
    sizes = [large(step)[0].shape[-2:] for step in range(60)]
    assert all(h >= 45 for h, _ in sizes) and any(h >= 90 for h, _ in sizes)


@pytest.mark.parametrize("box, cut", [((12, 20), True), ((40, 70), False)])
def test_the_default_recipe_cuts_close_samples_of_objects_painted_small_only(box, cut):
    """The render's recipe: an object under LARGE_OBJECT_SHARE of the frame (here 1.5%) never gets a sample
    at scale 1 or above uncut (a sample is then at most the 0.8 scale's size), one painted larger (16%) does."""
    rgb = np.random.default_rng(0).random((90, 160, 3), dtype=np.float32)
    mask = _box_mask(90, 160, *box)
    assert (mask.mean() < LARGE_OBJECT_SHARE) == cut
    sampler = KeyframeSampler([(rgb, mask)], 160, FinetuneConfig().augment, torch.device("cpu"), seed=0)
    heights = [sampler(step)[0].shape[-2] for step in range(80)]
    assert max(heights) <= 0.8 * 90 if cut else max(heights) > 0.85 * 90


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("box, hard", [((12, 20), True), ((40, 70), False)])
def test_the_default_recipe_weighs_hard_negatives_for_objects_painted_small_only(box, hard):
    """An object painted under ``hard_negatives_below`` (here 1.7%) learns with the background it takes for the
    object weighed up; one painted larger (19%) learns exactly as with no hard negatives."""
    from osvos_plugin.network import OSVOSNet

    rgb = np.random.default_rng(0).random((90, 160, 3), dtype=np.float32)
    mask = _box_mask(90, 160, *box)
    cfg = FinetuneConfig(iterations=3, **SMALL)
    assert cfg.hard_negatives > 0 and cfg.hard_negatives_for([mask]) == (cfg.hard_negatives if hard else 0.0)
    torch.manual_seed(0)
    parent = OSVOSNet()
    weighed = finetune(parent, [(rgb, mask)], cfg)
    plain = finetune(parent, [(rgb, mask)], replace(cfg, hard_negatives=0.0))
    assert _same(weighed, plain) != hard


def test_an_object_painted_small_on_one_keyframe_takes_hard_negatives_as_its_processing_size_does(tmp_path):
    """Painted at 1.7% on one keyframe and 19% on another (10% on average): the render keeps it at Processing
    Size (the smallest share decides), and its network learns with hard negatives, as a small object's does."""
    import cv2

    from osvos_plugin.io.keyframes import painted_share
    from osvos_plugin.settings import RenderSettings

    small, large = _box_mask(90, 160, 12, 20), _box_mask(90, 160, 40, 70)
    assert (small.mean() + large.mean()) / 2 > LARGE_OBJECT_SHARE > small.mean()
    files = []
    for i, m in enumerate((small, large)):
        files.append(tmp_path / f"k{i}.png")
        cv2.imwrite(str(files[-1]), (m * 255).astype(np.uint8))
    settings = RenderSettings.resolve()
    assert settings.large_object_scale > 1
    assert settings.for_object(painted_share(files)) == settings
    assert settings.for_object(painted_share(files[1:])) != settings
    cfg = settings.finetune()
    assert cfg.hard_negatives_for([small, large]) == cfg.hard_negatives > 0
    assert cfg.hard_negatives_for([large, large]) == 0.0


@pytest.mark.parametrize("box, small", [((12, 20), True), ((40, 70), False)])
def test_objects_painted_small_learn_at_the_smaller_rate(box, small):
    """An object painted under ``small_object_lr_below`` (here 1.7%) learns exactly as at Learning Rate times
    ``small_object_lr`` would; one painted larger (19%) exactly as at the Learning Rate."""
    from osvos_plugin.network import OSVOSNet

    rgb = np.random.default_rng(0).random((90, 160, 3), dtype=np.float32)
    mask = _box_mask(90, 160, *box)
    cfg = FinetuneConfig(iterations=3, small_object_lr=0.5, **SMALL)
    want = cfg.learning_rate * 0.5 if small else cfg.learning_rate
    assert cfg.learning_rate_for([mask]) == want
    torch.manual_seed(0)
    parent = OSVOSNet()
    got = finetune(parent, [(rgb, mask)], cfg)
    assert _same(got, finetune(parent, [(rgb, mask)], replace(cfg, learning_rate=want, small_object_lr=1.0)))
    assert _same(got, finetune(parent, [(rgb, mask)], replace(cfg, small_object_lr=1.0))) != small


def test_the_default_recipe_lowers_the_rate_for_objects_painted_small_only():
    """By default an object painted small on one keyframe (the smallest share decides, as for hard negatives
    and the processing size) learns at a lower rate than the Learning Rate; one painted large at it."""
    small, large = _box_mask(90, 160, 12, 20), _box_mask(90, 160, 40, 70)
    cfg = FinetuneConfig()
    assert cfg.small_object_lr_below == cfg.hard_negatives_below == LARGE_OBJECT_SHARE
    assert 0 < cfg.learning_rate_for([small, large]) < cfg.learning_rate
    assert cfg.learning_rate_for([large, large]) == cfg.learning_rate


@pytest.mark.parametrize("off", [{"hard_negatives": 0.0}, {"small_object_lr": 1.0}])
def test_each_objects_network_learns_by_its_own_objects_size(off):
    """One network per object: the small object's network takes hard negatives and the smaller rate, the large
    one's learns exactly as with either off (the networks' losses and parameters are apart), and the small
    one's ends exactly as its own single-object fine-tune."""
    from osvos_plugin.network import OSVOSNet

    rgb = np.random.default_rng(0).random((90, 160, 3), dtype=np.float32)
    small, large = _box_mask(90, 160, 12, 20), np.zeros((90, 160), np.float32)
    large[40:80, 60:130] = 1.0
    cfg = FinetuneConfig(iterations=3, small_object_lr=0.5, **SMALL)
    torch.manual_seed(0)
    parent = OSVOSNet()
    nets = finetune(parent, [(rgb, np.stack([small, large]))], cfg)
    without = finetune(parent, [(rgb, np.stack([small, large]))], replace(cfg, **off))
    assert not _same(nets.nets[0], without.nets[0])
    assert _same(nets.nets[1], without.nets[1])
    assert _same(nets.nets[0], finetune(parent, [(rgb, small)], cfg))


def test_a_rate_per_network_is_refused_for_one_network():
    from osvos_plugin.network import OSVOSNet
    from osvos_plugin.training import OptimConfig, parameter_groups

    with pytest.raises(ValueError, match="learning_rate: 2 values"):
        parameter_groups(OSVOSNet(), OptimConfig(learning_rate=(1e-4, 5e-5)))


def test_constant_schedule_snapshot_equals_a_shorter_run(demo_pair, tiny_parent):
    """With the constant schedule, step N of a long run is the N-step budget (what the budget sweep uses)."""
    parent, _ = load_checkpoint(tiny_parent)
    pair = demo_pair(1001, long_side=64)
    snaps = {}

    def keep(step, model):
        snaps[step + 1] = model.fuse.weight.detach().clone()

    for schedule in ("constant", "cosine"):
        snaps.clear()
        finetune(parent, [pair], FinetuneConfig(iterations=6, schedule=schedule, **SMALL), on_step=keep)
        assert sorted(snaps) == [1, 2, 3, 4, 5, 6]
        short = finetune(parent, [pair], FinetuneConfig(iterations=3, schedule=schedule, **SMALL))
        # cosine: the 6-step run's lr differs from the 3-step run's at step 2, so its snapshot does too
        assert torch.equal(snaps[3], short.fuse.weight) == (schedule == "constant")


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        FinetuneConfig(schedule="step").optim()


def test_warmup_ramps_the_rate_up_over_its_share_of_the_steps_then_follows_the_schedule():
    from osvos_plugin.training import lr_factor

    plain = [lr_factor(s, 100, "cosine") for s in range(100)]
    warm = [lr_factor(s, 100, "cosine", 0.1) for s in range(100)]
    assert warm[10:] == plain[10:]
    assert warm[0] == pytest.approx(plain[0] / 11)
    assert all(a < b for a, b in zip(warm[:10], warm[1:11], strict=True))  # rising until the schedule takes over
    assert lr_factor(2, 10, "constant", 0.5) == pytest.approx(3 / 6)
    assert [lr_factor(s, 10, "constant", 0.0) for s in range(10)] == [1.0] * 10
    with pytest.raises(ValueError, match="warmup"):
        FinetuneConfig(warmup=1.0).optim()


def test_a_fine_tune_with_a_warmup_takes_its_first_step_at_the_ramps_share_of_the_rate(demo_pair, tiny_parent):
    """Adam's first step moves each weight by a multiple of the rate: with a ramp of two steps (0.5 of four)
    the first step is a third of the plain run's, on the same sample."""
    parent, _ = load_checkpoint(tiny_parent)
    pair = demo_pair(1001, long_side=64)
    start = parent.fuse.weight.detach().clone()
    first = {}
    for warmup in (0.0, 0.5):
        def keep(step, model, warmup=warmup):
            if step == 0:
                first[warmup] = model.fuse.weight.detach().clone() - start
        finetune(parent, [pair], FinetuneConfig(iterations=4, warmup=warmup, **SMALL), on_step=keep)
    assert first[0.0].abs().max() > 0
    assert torch.allclose(first[0.5], first[0.0] / 3, rtol=1e-2, atol=1e-7)


def test_a_fine_tune_passes_its_class_balance_to_every_loss_it_takes(demo_pair, tiny_parent, monkeypatch):
    """The fused and side outputs' losses of every step take the fine-tune's partial class balance, with one
    network and with a network per object."""
    import osvos_plugin.losses as losses

    seen = []
    real = losses.class_balanced_bce

    def record(*args, **kwargs):
        seen.append(args[4] if len(args) > 4 else kwargs.get("balance", 1.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(losses, "class_balanced_bce", record)
    parent, _ = load_checkpoint(tiny_parent)
    rgb, mask = demo_pair(1001, long_side=64)
    cfg = FinetuneConfig(iterations=2, class_balance=0.5, **SMALL)
    finetune(parent, [(rgb, mask)], cfg)
    assert len(seen) == 2 * 5 and set(seen) == {0.5}  # two steps, the fused output and four sides
    seen.clear()
    second = np.zeros_like(mask)
    second[:8, :8] = 1.0
    nets = finetune(parent, [(rgb, np.stack([mask, second]))], replace(cfg, object_networks="per_object"))
    assert len(nets.nets) == 2 and len(seen) == 2 * 2 * 5 and set(seen) == {0.5}  # each network's losses
    with pytest.raises(ValueError, match="class_balance"):
        FinetuneConfig(class_balance=1.5).optim()


def _box_mask(h, w, box_h, box_w):
    m = np.zeros((h, w), np.float32)
    m[10:10 + box_h, 20:20 + box_w] = 1.0
    return m


def test_zoom_reaches_further_for_a_smaller_object():
    from osvos_plugin.augment import object_extent, object_scales

    cfg = AugmentConfig(scales=(0.5, 0.8, 1.0, 1.25, 1.5), zoom_to=0.5, zoom_max=4.0)
    assert object_extent(_box_mask(200, 400, 50, 100)) == pytest.approx(0.25)
    # a box a quarter of each side: zoom up to 2x, the smaller zoom stays where it was
    assert object_scales(_box_mask(200, 400, 50, 100), cfg) == (0.5, 0.8, 1.0, 1.25, 2.0)
    # a tiny object: capped at zoom_max
    assert object_scales(_box_mask(200, 400, 10, 20), cfg)[-1] == 4.0
    # an object already half the frame or more, an empty mask, or the rule off: the scales as given
    for mask, c in [(_box_mask(200, 400, 100, 200), cfg), (_box_mask(200, 400, 150, 300), cfg),
                    (np.zeros((200, 400), np.float32), cfg),
                    (_box_mask(200, 400, 10, 20), AugmentConfig(scales=cfg.scales))]:
        assert object_scales(mask, c) == cfg.scales
    # three zoom scales are spread evenly on a log scale between the first and the new top
    three = AugmentConfig(scales=(1.0, 1.2, 1.5, 2.0), zoom_to=0.5, zoom_max=4.0)
    assert object_scales(_box_mask(200, 400, 10, 20), three) == (1.0, 1.2, pytest.approx(2.191, abs=1e-3), 4.0)


def _shrunk_demo_pair(demo_pair):
    """A demo frame and its mask shrunk 4x into the top-left corner: a small painted object."""
    rgb, mask = demo_pair(1001, long_side=128)
    small_rgb, small_mask = np.zeros_like(rgb), np.zeros_like(mask)
    h, w = rgb[::4, ::4].shape[:2]
    small_rgb[:h, :w], small_mask[:h, :w] = rgb[::4, ::4], mask[::4, ::4]
    assert small_mask.max() > 0.5
    return small_rgb, small_mask


def test_sampler_shows_a_small_painted_object_close_up(demo_pair):
    """On a demo frame with the object shrunk into a corner, zoomed samples show it several times larger
    than on the painted frame, and every zoomed sample still holds part of it."""
    small_rgb, small_mask = _shrunk_demo_pair(demo_pair)
    base = AugmentConfig(scales=(0.5, 0.8, 1.0, 1.25, 1.5), crop=1.0, colour=0.0)
    largest = {}
    for zoom_to in (0.0, 0.5):
        cfg = replace(base, zoom_to=zoom_to)
        sampler = KeyframeSampler([(small_rgb, small_mask)], 128, cfg, torch.device("cpu"), seed=0)
        (window, per_scale), = sampler.variants
        shares = []
        for step in range(60):
            image, m = sampler(step)
            assert image.shape[-2] <= window[0] and image.shape[-1] <= window[1]  # zooms: windows of the 1.0 size
            assert m.max() > 0.5  # the object is in every sample
            shares.append(float((m > 0.5).float().mean()))
        largest[zoom_to] = max(shares)
        top = per_scale[-1][0].shape[-1] / per_scale[2][0].shape[-1]
        assert top == pytest.approx(1.5 if zoom_to == 0 else 4.0, rel=0.02)
    original = float((small_mask > 0.5).mean())
    assert largest[0.0] < 2.5 * original < 4 * original < largest[0.5]


def test_default_fine_tuning_zooms_in_on_a_small_object_only(demo_pair, tiny_parent, caplog):
    """The render's recipe (FinetuneConfig's defaults) raises the zoom for a small painted object, and
    leaves a large one at the fixed scales."""
    parent, _ = load_checkpoint(tiny_parent)
    rgb, small = _shrunk_demo_pair(demo_pair)
    big = np.zeros_like(small)
    big[8:-8, 10:-10] = 1.0
    for m, zooms in ((small, True), (big, False)):
        caplog.clear()
        with caplog.at_level("INFO", logger="osvos_plugin.augment"):
            finetune(parent, [(rgb, m)], FinetuneConfig(iterations=1, **SMALL))
        assert ("zooming in up to" in caplog.text) == zooms, caplog.text


def test_shape_varying_training_turns_cudnn_off_on_cuda_only():
    """Fine-tuning sees a new input shape at nearly every step; cuDNN would build a plan for each."""
    import torch

    from osvos_plugin.device import shape_varying

    before = torch.backends.cudnn.enabled
    with shape_varying(torch.device("cpu")):
        assert torch.backends.cudnn.enabled == before
    with shape_varying(torch.device("cuda")):
        assert torch.backends.cudnn.enabled is False
    assert torch.backends.cudnn.enabled == before


def test_coarse_to_fine_trains_its_first_steps_at_the_coarse_size(demo_pair, tiny_parent, monkeypatch):
    """coarse_size: the first coarse_share of the steps see samples at that long side, the rest at
    process_size (no augmentation here, so a sample's size is the scale-1.0 size exactly)."""
    import osvos_plugin.finetune as ft

    seen = []
    real = ft.run_training

    def spy(model, sample, steps, *args, **kwargs):
        def recording(step):
            batch = sample(step)
            seen.append(max(batch[0].shape[-2:]))
            return batch
        return real(model, recording, steps, *args, **kwargs)

    monkeypatch.setattr(ft, "run_training", spy)
    parent, _ = load_checkpoint(tiny_parent)
    plain = AugmentConfig(scales=(1.0,), flip=False, crop=1.0, rotate_deg=0, colour=0.0, zoom_to=0.0)
    cfg = FinetuneConfig(iterations=8, augment=plain, coarse_size=64, coarse_share=0.25, **SMALL)
    finetune(parent, [demo_pair(1001, long_side=128)], cfg)
    assert seen == [64, 64] + [128] * 6
    seen.clear()
    finetune(parent, [demo_pair(1001, long_side=128)], replace(cfg, coarse_size=0))
    assert seen == [128] * 8
    seen.clear()  # by default: the first half at the parents' size where the network runs above it
    large = FinetuneConfig(iterations=4, augment=plain, **{**SMALL, "process_size": 600})
    finetune(parent, [demo_pair(1001, long_side=128)], large)
    assert seen == [480, 480, 600, 600]
    seen.clear()
    finetune(parent, [demo_pair(1001, long_side=128)], FinetuneConfig(iterations=4, augment=plain, **SMALL))
    assert seen == [128] * 4


@pytest.mark.parametrize("capability,device,dtype,layout", [
    ("AVX2", "cpu", torch.float32, torch.contiguous_format),
    ("DEFAULT", "cpu", torch.float32, torch.contiguous_format),
    ("AVX512", "cpu", torch.float32, torch.channels_last),
    ("AVX2", "cpu", torch.bfloat16, torch.channels_last),
    ("AVX2", "cuda", torch.float32, torch.channels_last),
])
def test_training_layout_follows_the_cpus_kernels(monkeypatch, capability, device, dtype, layout):
    from osvos_plugin.device import training_memory_format

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert training_memory_format(torch.device(device), dtype) == layout


def test_fine_tuning_learns_the_same_network_in_either_layout(demo_pair, tiny_parent, monkeypatch):
    """A CPU without AVX-512 fine-tunes in NCHW, others in channels_last: the matte must not depend on it."""
    parent, _ = load_checkpoint(tiny_parent)
    rgb, mask = demo_pair(1001, long_side=128)
    probs = {}
    for capability in ("AVX2", "AVX512"):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        model = finetune(parent, [(rgb, mask)], FinetuneConfig(iterations=30, **SMALL))
        weight = model.state_dict()["stages.1.1.weight"]  # conv2_1, trained
        assert weight.is_contiguous() != (capability == "AVX512")  # NCHW, or channels_last
        seg = Segmenter(model, InferenceConfig(process_size=0, device="cpu", precision="fp32"))
        probs[capability] = seg.predict(rgb)
    # not bit-equal (the sums run in another order, and Adam carries the difference), but the same matte
    assert np.abs(probs["AVX2"] - probs["AVX512"]).mean() < 0.005
    assert _iou(probs["AVX2"], probs["AVX512"]) > 0.98
