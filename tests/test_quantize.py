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
    # the plain cut (no Core Threshold): the tiny untrained parent is nowhere 0.95 sure
    cfg = dict(process_size=96, device="cpu", batch_size=2, flip_average=False, threshold=0.5, core_threshold=0.0)
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
    # the calibration is kept beside the kept model: a farm chunk of the same shot quantises from it, without
    # a calibration pass, to the same mattes
    kept = list((tmp_path / "out" / ".osvos").glob("*.int8.safetensors"))
    assert len(kept) == 1 and kept[0].name.endswith(".model.int8.safetensors")
    first = _layers(tmp_path / "out" / "m.1003.exr")
    capsys.readouterr()

    def no_calibration(*_a, **_k):
        raise AssertionError("calibrated again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("osvos_plugin.quantize._demo_frames", no_calibration)
        assert render_main([plate, "--frames", "1002-1003", "--overwrite", "--object", "red", str(tmp_path / "red.png"),
                            "--object", "blue", str(tmp_path / "blue.png"), "-o", str(tmp_path / "out" / "m.####.exr"),
                            *fast]) == 0
    assert "2 frames written" in capsys.readouterr().out
    again = _layers(tmp_path / "out" / "m.1003.exr")
    assert all(np.array_equal(first[k], again[k]) for k in ("red.A", "blue.A"))
    # the precision is part of what made a matte: the same render in fp32 renders every frame again
    assert render_main([plate, "--object", "red", str(tmp_path / "red.png"), "--object", "blue",
                        str(tmp_path / "blue.png"), "-o", str(tmp_path / "out" / "m.####.exr"), *FAST_OBJECTS]) == 0
    assert "6 frames written, 0 kept" in capsys.readouterr().out


def test_int8_calibration_is_kept_for_the_same_model_only(tmp_path, demo_pair, tiny_parent, monkeypatch, caplog):
    """What calibration measured is kept in a file; the same model quantises from it to the same network
    without a calibration pass; another model, or a damaged file, is calibrated again and the file replaced."""
    from osvos_plugin import quantize
    from osvos_plugin.weights import save_checkpoint

    model, _ = load_checkpoint(tiny_parent)
    rgb, _ = demo_pair(1001, long_side=96)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    save_checkpoint(model, tmp_path / "shot.model.safetensors", provenance={"kind": "test"})
    cache = quantize.calibration_cache_path(tmp_path / "shot.model.safetensors")
    assert cache == tmp_path / "shot.model.int8.safetensors"
    with torch.inference_mode():
        made = quantize.quantize_for_cpu(model, 64, cache=cache)
        want = made(x)
        assert cache.is_file()
        calibrations = []
        real = quantize._demo_frames
        monkeypatch.setattr(quantize, "_demo_frames", lambda size: calibrations.append(size) or real(size))
        assert torch.equal(quantize.quantize_for_cpu(model, 64, cache=cache)(x), want) and calibrations == []
        assert torch.equal(quantize.quantize_for_cpu(model, 64)(x), want) and calibrations == [64]  # no file
        # another process size, or another model: calibrated again, the file now that one's
        quantize.quantize_for_cpu(model, 48, cache=cache)
        assert calibrations == [64, 48]
        other = ObjectNets.from_parent(model, 2)
        two = quantize.quantize_for_cpu(other, 64, cache=cache)
        assert calibrations == [64, 48, 64] and len(two.observer_state()) == 2 * len(made.observer_state())
        assert torch.equal(quantize.quantize_for_cpu(other, 64, cache=cache)(x), two(x)) and len(calibrations) == 3
        cache.write_bytes(b"not a safetensors file")
        with caplog.at_level("WARNING", logger="osvos_plugin.quantize"):
            assert torch.equal(quantize.quantize_for_cpu(other, 64, cache=cache)(x), two(x))
        assert len(calibrations) == 4 and "could not read the calibration" in caplog.text
        assert quantize._read_cache(cache, quantize._cache_key(other, 64, quantize.int8_engine())) is not None


def test_unknown_precision_is_refused():
    from osvos_plugin.device import resolve_precision

    with pytest.raises(ValueError, match="int8"):
        resolve_precision("int4", torch.device("cpu"))


def test_int8_without_an_x86_engine_falls_back_with_a_warning(monkeypatch, caplog, tiny_parent):
    """On a CPU PyTorch has no x86 int8 engine for (ARM: qnnpack only), int8 is refused by name where a model
    is quantised directly, and a render runs in auto precision, as on a GPU, saying so."""
    from osvos_plugin.quantize import Int8Model

    monkeypatch.setattr("osvos_plugin.device._supported_engines", lambda: ["qnnpack", "none"])
    model, _ = load_checkpoint(tiny_parent)
    with pytest.raises(RuntimeError, match="x86-64"):
        Int8Model(model, [torch.rand(1, 3, 32, 32)])
    with caplog.at_level("WARNING", logger="osvos_plugin.device"):
        seg = Segmenter(model, InferenceConfig(precision="int8", device="cpu", process_size=64))
    assert not isinstance(seg.model, Int8Model) and "x86-64" in caplog.text


def test_int8_runs_on_onednn_with_seven_bit_activations(demo_pair, tiny_parent):
    """The kernels are oneDNN's where PyTorch has them, with activations in 7 bits: 8-bit ones would
    saturate AVX2's 16-bit sums (quantize.py)."""
    from osvos_plugin.device import int8_engine
    from osvos_plugin.quantize import Int8Model

    if "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("this PyTorch has no onednn engine")
    model, _ = load_checkpoint(tiny_parent)
    rgb, _ = demo_pair(1001, long_side=96)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    int8 = Int8Model(model, [x])
    assert int8_engine() == "onednn" and torch.backends.quantized.engine == "onednn"
    seen = []  # each quantised convolution's share of outputs within 7 bits
    for m in int8.modules():
        if "quantized" in type(m).__module__ and hasattr(m, "scale"):
            m.register_forward_hook(lambda _m, _i, out: seen.append(float((out.int_repr() <= 127).float().mean())))
    with torch.inference_mode():
        int8(x)
    assert len(seen) >= 10 and min(seen) >= 0.99, seen


@pytest.mark.parametrize(("fast_bf16", "amx", "engines", "want"), [
    (False, False, ["onednn", "x86", "fbgemm"], "int8"),  # an AVX2 x86 CPU
    (True, False, ["onednn", "x86", "fbgemm"], "int8"),  # AVX512-BF16: int8 twice bf16's speed
    (True, True, ["onednn", "x86", "fbgemm"], "bf16"),  # AMX: int8 unmeasured there
    (False, False, ["qnnpack"], "fp32"),  # ARM
])
def test_auto_infers_in_int8_on_x86_cpus_without_amx(monkeypatch, fast_bf16, amx, engines, want):
    """auto's choice at inference (fine-tuning keeps resolve_precision's: bf16 where fast, else fp32)."""
    from osvos_plugin import device

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(device, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(device, "_supported_engines", lambda: engines)
    cpu = torch.device("cpu")
    assert device.inference_precision("auto", cpu) == want
    assert device.inference_precision("fp32", cpu) == "fp32" and device.inference_precision("bf16", cpu) == "bf16"
    gpu = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    assert device.inference_precision("auto", torch.device("cuda")) == gpu
    assert device.inference_precision("int8", torch.device("cuda")) == gpu
    assert device.resolve_precision("auto", cpu) == (torch.bfloat16 if fast_bf16 else torch.float32)
