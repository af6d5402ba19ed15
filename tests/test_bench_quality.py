"""The quality bench's threshold sweep (benchmarks/bench_quality.py) and the cuts of kept probabilities
(benchmarks/bench_cuts.py): one inference, cut at several thresholds.

On a small synthetic shot in the DAVIS layout, with cuts whose scores are known exactly: at 1 nothing is
the object (J = F = 0), at 0 everything is (J = the object's share of the frame), at the render's own
threshold the sweep gives the render's score, and a Core Threshold drops a look-alike no cut alone can.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from osvos_plugin.inference import Segmenter
from osvos_plugin.settings import RenderSettings
from osvos_plugin.weights import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "bench_quality.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
spec = importlib.util.spec_from_file_location("bench_cuts", ROOT / "benchmarks" / "bench_cuts.py")
cuts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cuts)

H, W, N = 48, 80, 5


def _shot(root: Path, name: str = "square") -> list[np.ndarray]:
    """A textured plate with a bright square moving right; the ground-truth masks, as written."""
    rng = np.random.default_rng(0)
    (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
    (root / "Annotations" / "480p" / name).mkdir(parents=True)
    masks = []
    for i in range(N):
        rgb = (rng.random((H, W, 3)) * 90).astype(np.uint8)
        mask = np.zeros((H, W), np.uint8)
        mask[12:36, 10 + 6 * i:34 + 6 * i] = 255
        rgb[mask > 0] = (230, 200, 60)
        cv2.imwrite(str(root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg"), rgb[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 100])
        cv2.imwrite(str(root / "Annotations" / "480p" / name / f"{i:05d}.png"), mask)
        masks.append(mask > 0)
    return masks


def test_finetune_fields_are_read_as_their_types_and_unknown_ones_refused():
    got = bench.finetune_overrides("learning_rate=5e-5,seed=2,augment.move=0.5,augment.warp=0")
    assert got == {"learning_rate": 5e-5, "seed": 2, "augment": {"move": 0.5, "warp": 0.0}}
    assert type(got["seed"]) is int and bench.finetune_overrides("") == {}
    for bad in ("learning_rat=1", "seed", "augment.nope=1"):
        with pytest.raises(ValueError, match="not FIELD=VALUE"):
            bench.finetune_overrides(bad)
    with pytest.raises(ValueError, match="seed takes int values"):
        bench.finetune_overrides("seed=two")
    with pytest.raises(ValueError, match="^--continue-finetune: 'x=1'"):
        bench.finetune_overrides("x=1", "--continue-finetune")


@pytest.fixture()
def settings():
    # the tiny untrained parent is nowhere 0.95 sure: no Core Threshold, or every matte would be empty
    return RenderSettings.resolve({"process_size": 64, "device": "cpu", "precision": "fp32", "core_threshold": 0.0})


def test_the_sweep_scores_each_cut_of_one_set_of_probabilities(tmp_path, tiny_parent, settings):
    masks = _shot(tmp_path / "davis")
    rows = bench.run(str(tiny_parent), tmp_path / "davis", ["square"], [0], settings, "cosine",
                     save_dir=tmp_path / "mattes", thresholds=[0.0, settings.threshold, 1.0],
                     prob_dir=tmp_path / "probs")
    (row,) = rows
    sweep = row["thresholds"]
    assert sweep["1"] == {"J": 0.0, "F": 0.0}  # nothing cut out: no overlap, no boundary
    share = np.mean([m.mean() for m in masks[1:-1]])  # DAVIS scores neither the first nor the last frame
    assert sweep["0"]["J"] == pytest.approx(share, abs=1e-9)  # the whole frame cut out
    at_default = sweep[f"{settings.threshold:g}"]
    assert (at_default["J"], at_default["F"]) == (row["J"], row["F"])
    assert 0.0 < row["J"] < 1.0
    # the kept probabilities cut at the threshold give the kept mattes (but within 16 bits of the threshold)
    for i in range(N):
        prob = cv2.imread(str(tmp_path / "probs" / "it0" / "square" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        matte = cv2.imread(str(tmp_path / "mattes" / "it0" / "square" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE)
        assert prob.dtype == np.uint16 and prob.shape == (H, W)
        p = prob / 65535.0
        clear = np.abs(p - settings.threshold) > 2 / 65535
        assert clear.mean() > 0.99
        assert np.array_equal((p > settings.threshold)[clear], (matte > 127)[clear])


def test_the_bench_mattes_are_the_renders(tmp_path, tiny_parent, settings):
    """``_segmented`` batches and cuts as ``Segmenter.stream`` does, so the bench scores what a render writes."""
    _shot(tmp_path / "davis")
    frames = np.stack([cv2.imread(str(p))[..., ::-1]
                       for p in sorted((tmp_path / "davis" / "JPEGImages" / "480p" / "square").glob("*.jpg"))])
    model, _ = load_checkpoint(tiny_parent)
    seg = Segmenter(model, settings.inference())
    mattes, probs = bench._segmented(seg, frames, keep_probabilities=True)
    streamed = [m for _, m in seg.stream((i, f.astype(np.float32) / 255) for i, f in enumerate(frames))]
    assert len(mattes) == len(probs) == N
    for a, b, p in zip(mattes, streamed, probs, strict=True):
        assert np.array_equal(a, b)
        assert np.array_equal(a > 0.5, p > settings.threshold)
    assert bench._segmented(seg, frames, keep_probabilities=False)[1] == []


def test_kept_probabilities_cut_again_give_the_runs_scores(tmp_path, tiny_parent, settings):
    masks = _shot(tmp_path / "davis")
    (row,) = bench.run(str(tiny_parent), tmp_path / "davis", ["square"], [0], settings, "cosine",
                       thresholds=[0.6, settings.threshold], prob_dir=tmp_path / "probs")
    probs = cuts.read_probabilities(tmp_path / "probs" / "it0" / "square")
    again = cuts.score(probs, masks, ["0.6", f"{settings.threshold:g}", "1"])
    for t in ("0.6", f"{settings.threshold:g}"):  # 16 bits move a pixel across the cut only rarely
        assert again[t]["J"] == pytest.approx(row["thresholds"][t]["J"], abs=2e-3)
    assert again["1"] == {"J": 0.0, "F": 0.0}


def test_a_core_threshold_drops_the_look_alike_and_keeps_the_object(tmp_path):
    """Hand-made probabilities: the object sure (1.0 on the ground truth), a look-alike unsure (0.7)."""
    masks = _shot(tmp_path / "davis")
    folder = tmp_path / "probs" / "square"
    folder.mkdir(parents=True)
    for i, m in enumerate(masks):
        p = np.where(m, 1.0, 0.1)
        p[2:10, 2:12] = 0.7
        cv2.imwrite(str(folder / f"{i:05d}.png"), np.round(p * 65535).astype(np.uint16))
    got = cuts.score(cuts.read_probabilities(folder), masks, ["0.5", "0.8", "0.5/0.9", "0.5/0.6"])
    assert got["0.5/0.9"] == {"J": 1.0, "F": 1.0} == got["0.8"]  # a high cut or the core: the exact object
    share = np.mean([m.sum() / (m.sum() + 80) for m in masks[1:-1]])  # 80 look-alike pixels added
    assert got["0.5"]["J"] == pytest.approx(share) == got["0.5/0.6"]["J"]  # a core below 0.7 keeps it
    with pytest.raises(ValueError, match="core threshold"):
        cuts.parse_cut("0.5/1")


def test_bench_cuts_prints_and_writes_each_cut(tmp_path, tiny_parent, settings):
    _shot(tmp_path / "davis")
    bench.run(str(tiny_parent), tmp_path / "davis", ["square"], [0], settings, "cosine", prob_dir=tmp_path / "probs")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cuts.py"), "--probabilities",
                           str(tmp_path / "probs" / "it0"), "--cuts", "0.75,0.5/0.9", "--davis-root",
                           str(tmp_path / "davis"), "--json", str(tmp_path / "c.json")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "| 0.5/0.9 |" in done.stdout
    written = json.loads((tmp_path / "c.json").read_text())
    assert set(written["sequences"]["square"]) == {"0.75", "0.5/0.9"}
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cuts.py"), "--probabilities",
                          str(tmp_path / "probs" / "it0"), "--cuts", "0.5/0.9,x"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "--cuts" in bad.stderr
    missing = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cuts.py"), "--probabilities",
                              str(tmp_path / "probs" / "it0"), "--sequences", "nowhere", "--cuts", "0.75"],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert missing.returncode == 2 and "nowhere: no probability PNGs" in missing.stderr


def test_two_runs_averaged_are_cut_as_one_ensemble(tmp_path):
    """A look-alike one run is sure of (0.9) and the other is not (0.3): their mean (0.6) is cut away at 0.75."""
    masks = _shot(tmp_path / "davis")
    for run, look_alike in (("a", 0.9), ("b", 0.3)):
        folder = tmp_path / run / "square"
        folder.mkdir(parents=True)
        for i, m in enumerate(masks):
            p = np.where(m, 1.0, 0.0)
            p[2:10, 2:12] = look_alike
            cv2.imwrite(str(folder / f"{i:05d}.png"), np.round(p * 65535).astype(np.uint16))

    def scored(*more: str) -> dict:
        extra = [arg for run in more for arg in ("--average", str(tmp_path / run))]
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cuts.py"), "--probabilities",
                               str(tmp_path / "a"), *extra, "--cuts", "0.75", "--davis-root", str(tmp_path / "davis"),
                               "--json", str(tmp_path / "c.json")], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        return json.loads((tmp_path / "c.json").read_text())["sequences"]["square"]["0.75"]

    assert scored()["J"] < 1.0
    assert scored("b") == {"J": 1.0, "F": 1.0}
