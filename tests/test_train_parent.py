import json
import shutil
import threading

import pytest
import torch

from osvos_plugin.augment import AugmentConfig
from osvos_plugin.cli.train_parent import main as train_main
from osvos_plugin.jobs import Cancelled
from osvos_plugin.parent import ParentConfig, seen_sequences, train_parent
from osvos_plugin.weights import load_checkpoint, read_checkpoint_info, save_checkpoint

DEMO = __import__("pathlib").Path(__file__).resolve().parents[1] / "osvos_plugin" / "demo" / "bear"


@pytest.fixture
def mini_davis(tmp_path):
    """A DAVIS-layout root with two 4-frame sequences made from the demo shot."""
    root = tmp_path / "davis"
    for seq, frames in (("bear-a", range(1001, 1005)), ("bear-b", range(1010, 1014))):
        (root / "JPEGImages/480p" / seq).mkdir(parents=True)
        (root / "Annotations/480p" / seq).mkdir(parents=True)
        for i, f in enumerate(frames):
            shutil.copy(DEMO / "plate" / f"bear.{f}.jpg", root / "JPEGImages/480p" / seq / f"{i:05d}.jpg")
            shutil.copy(DEMO / "truth" / f"bear.{f}.png", root / "Annotations/480p" / seq / f"{i:05d}.png")
    return root


def _cfg(**kw):
    base = dict(iterations=4, long_side=64, device="cpu", precision="fp32", checkpoint_every=2,
                augment=AugmentConfig(scales=(0.8, 1.0), crop=0.8, rotate_deg=5, colour=0.1))
    base.update(kw)
    return ParentConfig(**base)


def test_resume_gives_the_same_weights_as_one_run(mini_davis, tmp_path):
    straight = train_parent(mini_davis, tmp_path / "a", _cfg())
    # interrupt a 4-step run after step 2 (a checkpoint is written every 2 steps), then resume it
    stop = threading.Event()
    with pytest.raises(Cancelled):
        train_parent(mini_davis, tmp_path / "b", _cfg(), progress=lambda p: p.done == 2 and stop.set(), cancel=stop)
    assert json.loads((tmp_path / "b" / "last.json").read_text())["step"] == 2
    resumed = train_parent(mini_davis, tmp_path / "b", _cfg())
    a, _ = load_checkpoint(straight)
    b, _ = load_checkpoint(resumed)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in pairs)
    info = read_checkpoint_info(straight)
    assert info.provenance["sequences"] == ["bear-a", "bear-b"] and info.provenance["iterations"] == 4
    lines = (tmp_path / "a" / "loss.csv").read_text().splitlines()
    assert len(lines) == 4 and all(float(x.split(",")[1]) > 0 for x in lines)


def test_cli_excludes_and_reports_bad_root(mini_davis, tmp_path, capsys):
    code = train_main(["--davis-root", str(mini_davis), "--out", str(tmp_path / "o"), "--iterations", "1",
                       "--long-side", "48", "--exclude", "bear-b", "--device", "cpu", "--progress", "none"])
    assert code == 0
    provenance = read_checkpoint_info(tmp_path / "o" / "parent.safetensors").provenance
    assert provenance["sequences"] == ["bear-a"]
    # what the held-out benchmarks check before they score: the excluded sequence counts as unseen
    assert seen_sequences(provenance, ["bear-b", "bear-a", "bear"]) == ["bear-a"]
    code = train_main(["--davis-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p"), "--iterations", "1"])
    assert code == 3
    assert "not a DAVIS root" in capsys.readouterr().err


def test_init_from_starts_from_a_checkpoint_and_names_a_bad_one(mini_davis, tmp_path, tiny_parent, capsys):
    start, _ = load_checkpoint(tiny_parent)
    with torch.no_grad():  # unlike any fresh initialisation, whatever the seed
        for p in start.parameters():
            p.add_(0.01)
    start_path = save_checkpoint(start, tmp_path / "start.safetensors")
    # no steps: the result is the starting checkpoint itself, not a fresh HED initialisation
    out = train_parent(mini_davis, tmp_path / "c", _cfg(iterations=0, init_from=str(start_path)))
    a, _ = load_checkpoint(out)
    pairs = zip(a.state_dict().values(), start.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    assert read_checkpoint_info(out).provenance["config"]["init_from"] == str(start_path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    code = train_main(["--davis-root", str(mini_davis), "--out", str(tmp_path / "d"), "--iterations", "1",
                       "--long-side", "48", "--init-from", str(bad), "--device", "cpu", "--progress", "none"])
    assert code == 4
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "d" / "parent.safetensors").exists()


def test_sampler_cuts_batches_to_a_shape_multiple(mini_davis):
    """On a GPU each new input shape costs kernel selection: --shape-multiple keeps the shapes few."""
    from osvos_plugin.data.davis import list_sequences, load_sequence
    from osvos_plugin.parent import FrameSampler

    seqs = [load_sequence(mini_davis, n, long_side=200) for n in list_sequences(mini_davis)]
    shapes = {m: set() for m in (1, 32)}
    for m in shapes:
        sampler = FrameSampler(seqs, _cfg(long_side=200, batch_size=3, shape_multiple=m), torch.device("cpu"))
        for step in range(12):
            image, mask = sampler(step)
            assert image.shape[0] == mask.shape[0] == 3 and image.shape[-2:] == mask.shape[-2:]
            assert image.is_contiguous(memory_format=torch.channels_last)
            assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
            shapes[m].add(tuple(image.shape[-2:]))
    assert all(h % 32 == 0 and w % 32 == 0 for h, w in shapes[32])
    assert len(shapes[32]) < len(shapes[1])  # random crops give (nearly) one shape per step without it


@pytest.mark.parametrize("flag,value", [("--batch-size", "0"), ("--shape-multiple", "-32"),
                                        ("--iterations", "ten"), ("--learning-rate", "0")])
def test_cli_refuses_bad_numbers_before_doing_anything(mini_davis, tmp_path, capsys, flag, value):
    assert train_main(["--davis-root", str(mini_davis), "--out", str(tmp_path / "o"), flag, value]) == 2
    err = capsys.readouterr().err
    assert flag in err and value in err
    assert not (tmp_path / "o").exists()


def test_the_two_validation_folds_are_disjoint_tens_of_the_training_split(davis_root):
    from osvos_plugin.data.davis import list_sequences
    from osvos_plugin.parent import FOLDS, HELD_OUT

    a, b = set(FOLDS["a"]), set(FOLDS["b"])
    assert len(a) == len(b) == 10 and not a & b and set(HELD_OUT) <= a
    assert a | b <= set(list_sequences(davis_root))


def test_a_resumed_optimizer_steps_channels_last_weights_as_the_uninterrupted_one():
    """The moments are saved contiguous; restored, they take each channels-last weight's strides again (the
    fused AdamW pairs weight and moments in memory order: otherwise every weight moves by another's)."""
    from osvos_plugin.parent import _optimizer_from_tensors, _optimizer_to_tensors
    from osvos_plugin.training import OptimConfig, make_optimizer

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    twin = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)

    def step(model, opt):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()

    opt = make_optimizer(list(conv.parameters()), OptimConfig(learning_rate=0.01))
    for _ in range(2):
        step(conv, opt)
    twin.load_state_dict(conv.state_dict())
    assert twin.weight.stride() == conv.weight.stride() != twin.weight.contiguous().stride()
    resumed = make_optimizer(list(twin.parameters()), OptimConfig(learning_rate=0.01))
    tensors, meta = _optimizer_to_tensors(opt)
    _optimizer_from_tensors(resumed, {k: v.clone() for k, v in tensors.items()}, meta)  # as read from a file
    step(conv, opt)
    step(twin, resumed)
    assert torch.allclose(conv.weight, twin.weight, atol=1e-7) and torch.equal(conv.bias, twin.bias)
