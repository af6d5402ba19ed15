"""The TorchScript export for Nuke's Inference node: loaded back with torch.jit.load, it must give the
engine's soft matte (Segmenter) on real frames, odd sizes included, with one input and one output."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from osvos_plugin.cli.export import main as export_main
from osvos_plugin.export import (
    NUKE_CHANNELS_IN,
    NUKE_CHANNELS_OUT,
    ExportError,
    check_torch_for_nuke,
    export_torchscript,
    nuke_torch,
    read_export_metadata,
)
from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.weights import load_checkpoint, save_checkpoint


def _jit_load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


@pytest.fixture(scope="module")
def finetuned(tiny_parent, tmp_path_factory):
    """A real checkpoint whose heads give a wide spread of probabilities (a fresh parent's are all ~0.5,
    which would let a wrongly wired export pass)."""
    model, _ = load_checkpoint(tiny_parent)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for conv in model.side_prep:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.05)
        model.fuse.weight.copy_(torch.randn(model.fuse.weight.shape, generator=g) * 0.5)
        model.fuse.bias.fill_(0.2)
    path = tmp_path_factory.mktemp("model") / "shot.safetensors"
    save_checkpoint(model, path, provenance={"kind": "test-finetuned"})
    return path


@pytest.fixture(scope="module")
def exported(finetuned, tmp_path_factory):
    model, _ = load_checkpoint(finetuned)
    path = export_torchscript(model, tmp_path_factory.mktemp("nuke") / "shot.pt", process_size=96)
    return model, path


def _engine_matte(model, rgb: np.ndarray, process_size: int, threshold: float | None = None) -> np.ndarray:
    threshold = InferenceConfig.threshold if threshold is None else threshold
    # the exported model: one pass, enlarged bilinearly, the re-centred probability (no plate-guided edge, and
    # no Core Threshold: the Inference node works pixel by pixel)
    seg = Segmenter(model, InferenceConfig(process_size=process_size, soft=True, device="cpu", precision="fp32",
                                           threshold=threshold, core_threshold=0.0, flip_average=False,
                                           edge_refine=False, edge_softness=0.0))
    return seg.predict(rgb)


def _nuke_matte(module, rgb: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None])


@pytest.mark.parametrize("crop, process_size", [
    ((480, 854), 96),  # the whole frame, shrunk (area filter)
    ((237, 311), 96),  # odd sizes
    ((61, 37), 96),  # smaller than the processing size: enlarged (bilinear)
    ((57, 83), 0),  # native size, odd
])
def test_export_matches_engine_soft_matte(exported, demo_pair, crop, process_size):
    model, path = exported
    rgb = demo_pair(1001)[0][: crop[0], : crop[1]]
    module = _jit_load(path)
    module.process_size = process_size  # an attribute Nuke's CatFileCreator can expose as a knob
    out = _nuke_matte(module, rgb)
    ref = _engine_matte(model, rgb, process_size)
    assert tuple(out.shape) == (1, 1, *crop) and out.dtype == torch.float32
    assert ref.std() > 0.05, "the reference matte is flat: the comparison would prove nothing"
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=2e-5)


def test_export_takes_one_input_and_cleans_it(exported, demo_pair):
    model, path = exported
    module = _jit_load(path)
    args = [a for a in module.forward.schema.arguments if a.name != "self"]
    assert len(args) == 1 and str(args[0].type) == "Tensor"
    rgb = demo_pair(1002)[0][:120, :200]
    clean = _nuke_matte(module, rgb)
    dirty = rgb.copy()
    dirty[0, 0] = [np.nan, np.inf, -np.inf]
    dirty[5, 5] = [7.0, 3.0, 2.0]  # scene-linear super-white: clipped like the engine's display encode does
    clipped = np.clip(np.nan_to_num(dirty, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    out = _nuke_matte(module, dirty)
    assert torch.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()
    np.testing.assert_allclose(out.numpy(), _nuke_matte(module, clipped).numpy(), atol=1e-6)
    assert not np.allclose(out.numpy(), clean.numpy())  # the changed pixels do change the matte
    rgba = np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1)  # an extra channel is ignored
    np.testing.assert_allclose(_nuke_matte(module, rgba).numpy(), clean.numpy(), atol=1e-6)


def test_export_metadata(exported, finetuned):
    _, path = exported
    meta = read_export_metadata(path)
    assert meta["process_size"] == 96 and meta["channels_in"] == NUKE_CHANNELS_IN
    assert meta["channels_out"] == NUKE_CHANNELS_OUT == "rgba.alpha"
    assert meta["threshold"] == InferenceConfig.threshold


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_export_threshold_matches_engine(exported, demo_pair, tmp_path, threshold):
    """0.5 exports the plain probability; any other threshold shifts the matte as the engine's soft matte."""
    model, default_path = exported
    path = export_torchscript(model, tmp_path / "t.pt", process_size=96, threshold=threshold)
    rgb = demo_pair(1002)[0][:120, :200]
    out = _nuke_matte(_jit_load(path), rgb)[0, 0].numpy()
    np.testing.assert_allclose(out, _engine_matte(model, rgb, 96, threshold), atol=2e-5)
    assert not np.allclose(out, _nuke_matte(_jit_load(default_path), rgb)[0, 0].numpy(), atol=1e-3)
    with pytest.raises(ExportError, match="threshold"):
        export_torchscript(model, tmp_path / "u.pt", process_size=96, threshold=1.0)


def test_export_refuses_other_networks(tmp_path):
    from osvos_plugin.network import HEDContourNet

    with pytest.raises(ExportError, match="only OSVOS"):
        export_torchscript(HEDContourNet(), tmp_path / "x.pt", 96)


def test_export_refuses_a_several_object_model(tmp_path):
    from osvos_plugin.network import OSVOSNet

    with pytest.raises(ExportError, match="holds 2 objects"):
        export_torchscript(OSVOSNet(num_objects=2), tmp_path / "x.pt", 96)
    assert not (tmp_path / "x.pt").exists()


# ----------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def nuke_torch_version(monkeypatch):
    """The CLI's own tests run as under the torch of the default Nuke (15.1: torch 2.1), whatever is installed;
    the version check itself is tested below."""
    monkeypatch.setattr(torch, "__version__", "2.1.2+cpu")


def test_cli_exports_with_manifest_default_size(finetuned, tmp_path, demo_pair, capsys, nuke_torch_version):
    out = tmp_path / "nuke" / "shot.pt"
    assert export_main([str(finetuned), str(out)]) == 0
    assert "Channels In rgba.red,rgba.green,rgba.blue" in capsys.readouterr().out
    from osvos_contract.manifest import load_manifest

    meta = read_export_metadata(out)
    assert meta["process_size"] == load_manifest().parameter("process_size").default
    assert meta["threshold"] == load_manifest().parameter("threshold").default
    rgb = demo_pair(1003)[0][:101, :151]
    model, _ = load_checkpoint(finetuned)
    np.testing.assert_allclose(_nuke_matte(_jit_load(out), rgb)[0, 0].numpy(),
                               _engine_matte(model, rgb, 480), atol=2e-5)


def test_cli_exports_at_the_size_the_model_was_fine_tuned_at(finetuned, tmp_path, nuke_torch_version):
    """A model fine-tuned for a large object (Large Object Scale) records its size; the export runs at it."""
    model, _ = load_checkpoint(finetuned)
    large = tmp_path / "large.safetensors"
    save_checkpoint(model, large, provenance={"kind": "fine-tuned", "process_size": 854})
    assert export_main([str(large), str(tmp_path / "a.pt")]) == 0
    assert read_export_metadata(tmp_path / "a.pt")["process_size"] == 854
    assert export_main([str(large), str(tmp_path / "b.pt"), "--process-size", "320"]) == 0  # asked: as asked
    assert read_export_metadata(tmp_path / "b.pt")["process_size"] == 320


def test_cli_errors_and_exit_codes(finetuned, tiny_parent, tmp_path, capsys, nuke_torch_version):
    out = tmp_path / "shot.pt"
    assert export_main([str(tmp_path / "missing.safetensors"), str(out)]) == 4
    assert "model file not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a checkpoint")
    assert export_main([str(corrupt), str(out)]) == 4
    assert export_main([str(finetuned), str(out), "--process-size", "10"]) == 2
    assert "process_size" in capsys.readouterr().err
    assert export_main([str(finetuned), str(finetuned)]) == 2
    assert export_main([str(finetuned), str(out), "--threshold", "1"]) == 2
    assert "--threshold" in capsys.readouterr().err and not out.exists()
    assert export_main([str(finetuned), str(out), "--process-size", "64"]) == 0
    assert export_main([str(finetuned), str(out)]) == 5  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert export_main([str(finetuned), str(out), "--overwrite", "--process-size", "0"]) == 0
    assert read_export_metadata(out)["process_size"] == 0
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert export_main([str(finetuned), str(blocker / "sub" / "x.pt")]) == 5
    assert "cannot write" in capsys.readouterr().err
    assert export_main([]) == 2  # a usage error is an exit code, like every other failure (no SystemExit)
    assert "the following arguments are required" in capsys.readouterr().err


def test_half_precision_as_nukes_optimise_option(exported, demo_pair):
    """Nuke's "Optimise for speed and memory" runs the model and its input in half precision: every
    tensor made inside forward must follow the input's dtype."""
    _, path = exported
    module = _jit_load(path)
    rgb = demo_pair(1004)[0][:75, :131]
    full = _nuke_matte(module, rgb)
    with torch.no_grad():
        half = module.half()(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].half())
    assert half.dtype == torch.float16 and half.shape == full.shape
    err = (half.float() - full).abs()
    assert err.mean() < 0.01 and err.max() < 0.15


# ------------------------------------------------------------------------------------ Nuke's torch versions


def test_nuke_torch_table():
    assert nuke_torch("13.2") == (1, 6) and nuke_torch("14.0") == (1, 12) and nuke_torch("15.0") == (1, 12)
    assert nuke_torch("15.1") == (2, 1) and nuke_torch("16.0") == (2, 1)
    with pytest.raises(ValueError, match="no Inference node"):
        nuke_torch("12.2")
    assert check_torch_for_nuke("15.1", "2.1.2+cu121") == "" and check_torch_for_nuke("16.0", "2.0.1") == ""
    assert "Nuke 15.1 (torch 2.1) cannot load" in check_torch_for_nuke("15.1", "2.4.0")
    assert "cannot export for Nuke 14.0" in check_torch_for_nuke("14.0", "2.1.0")


def test_cli_refuses_a_torch_newer_than_the_nukes(finetuned, tmp_path, capsys, monkeypatch):
    out = tmp_path / "shot.pt"
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    assert export_main([str(finetuned), str(out)]) == 2
    err = capsys.readouterr().err
    assert "torch 2.6.0 writes TorchScript that Nuke 15.1 (torch 2.1) cannot load" in err
    assert "--ignore-torch-version" in err and not out.exists()
    assert export_main([str(finetuned), str(out), "--nuke", "14"]) == 2
    assert "cannot export for Nuke 14" in capsys.readouterr().err
    assert export_main([str(finetuned), str(out), "--nuke", "12"]) == 2
    assert "no Inference node" in capsys.readouterr().err and not out.exists()
    assert export_main([str(finetuned), str(out), "--ignore-torch-version"]) == 0  # written, with a warning
    assert "warning: torch 2.6.0" in capsys.readouterr().err and out.is_file()


def test_cattery_package(finetuned, tmp_path, demo_pair, capsys, nuke_torch_version):
    folder = tmp_path / "Cattery" / "OSVOS_shot010"
    assert export_main([str(finetuned), str(folder), "--cattery", "--process-size", "96"]) == 0
    assert "HOW_TO_MAKE_THE_CAT.txt" in capsys.readouterr().out
    cat = json.loads((folder / "cat.json").read_text())
    assert cat["minimum_nuke_version_required"] == 15.1 and cat["version"] == 1
    assert cat["cats"] == [{"filepath": "OSVOS_shot010.gizmo", "name": "OSVOS_shot010"}]
    gizmo = (folder / "OSVOS_shot010.gizmo").read_text()
    assert gizmo.count("{") == gizmo.count("}")
    colour, inference = gizmo.index("Colorspace {"), gizmo.index("Inference {")
    assert colour < inference and "colorspace_out sRGB" in gizmo[colour:inference]
    assert f'modelFile "{folder.as_posix()}/OSVOS_shot010.cat"' in gizmo
    assert gizmo.index("push $PLATE") > inference and "from0 rgba.alpha" in gizmo
    described = json.loads((folder / "osvos.json").read_text())
    assert described["input"]["conversion_node"] == {"class": "Colorspace", "colorspace_in": "linear",
                                                     "colorspace_out": "sRGB"}
    assert described["input"]["channels"] == NUKE_CHANNELS_IN and described["output"]["channels"] == "rgba.alpha"
    how_to = (folder / "HOW_TO_MAKE_THE_CAT.txt").read_text()
    assert "NukeX" in how_to and f"{folder.as_posix()}/OSVOS_shot010.pt" in how_to
    meta = read_export_metadata(folder / "OSVOS_shot010.pt")
    assert meta["nuke_version"] == "15.1" and meta["process_size"] == 96
    rgb = demo_pair(1003)[0][:64, :80]
    model, _ = load_checkpoint(finetuned)
    np.testing.assert_allclose(_nuke_matte(_jit_load(folder / "OSVOS_shot010.pt"), rgb)[0, 0].numpy(),
                               _engine_matte(model, rgb, 96), atol=2e-5)
    assert export_main([str(finetuned), str(folder), "--cattery"]) == 5  # exists: --overwrite replaces it
