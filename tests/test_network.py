import pytest
import torch

from osvos_plugin.network import VGG16_CFG, HEDContourNet, InputNorm, OSVOSNet


@pytest.mark.parametrize("size", [(64, 64), (97, 131), (33, 50)])
def test_outputs_match_any_input_size(size):
    net = OSVOSNet().eval()
    with torch.no_grad():
        fused, sides = net.forward_with_sides(torch.rand(2, 3, *size))
    assert fused.shape == (2, 1, *size)
    assert len(sides) == 4 and all(s.shape == (2, 1, *size) for s in sides)


def test_trunk_is_vgg16_without_fc():
    net = OSVOSNet()
    convs = [m for m in net.stages.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [w for stage in VGG16_CFG for w in stage]
    pools = [m for m in net.stages.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 4 and all(p.ceil_mode for p in pools)
    assert not any(isinstance(m, torch.nn.Linear) for m in net.modules())
    assert [p.out_channels for p in net.side_prep] == [16] * 4 and net.fuse.in_channels == 64


def test_fusion_equals_concat_then_1x1_conv():
    """The sum-of-projections fusion is the paper's concat + 1x1 conv, computed cheaper."""
    torch.manual_seed(0)
    net = OSVOSNet().eval()
    torch.nn.init.normal_(net.fuse.weight)
    torch.nn.init.normal_(net.fuse.bias)
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        preps = net._side_features(x)
        up = [torch.nn.functional.interpolate(p, size=(45, 61), mode="bilinear", align_corners=False) for p in preps]
        reference = net.fuse(torch.cat(up, 1))
        assert torch.allclose(net(x), reference, atol=1e-4)


def test_input_norm_caffe_bgr_and_imagenet():
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0] = 1.0  # pure red
    caffe = InputNorm("caffe_bgr")(x)[0, :, 0, 0]
    assert torch.allclose(caffe, torch.tensor([-104.00699, -116.66877, 255 - 122.67892]), atol=1e-3)
    imnet = InputNorm("imagenet_rgb")(x)[0, :, 0, 0]
    assert torch.allclose(imnet, torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]), atol=1e-4)
    with pytest.raises(ValueError):
        InputNorm("rgb255")


def test_hed_has_five_sides():
    with torch.no_grad():
        fused, sides = HEDContourNet().forward_with_sides(torch.rand(1, 3, 40, 40))
    assert fused.shape == (1, 1, 40, 40) and len(sides) == 5
