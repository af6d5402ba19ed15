"""DAVIS evaluation: J, F, seg2bmap, statistics, folders and reports, on cases worked out by hand."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from osvos_plugin.evaluation import (
    EvaluationInputError,
    EvaluationResult,
    boundary_tolerance,
    decay,
    evaluate_folder,
    evaluate_sequence,
    f_boundary,
    f_measure,
    jaccard,
    read_annotation,
    read_prediction,
    read_split,
    recall,
    seg2bmap,
    statistics,
)
from osvos_plugin.evaluation.metrics import disk

REPO = Path(__file__).resolve().parents[1]


def square(top: int = 40, left: int = 40, size: int = 20, shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[top : top + size, left : left + size] = True
    return m


# --- J ----------------------------------------------------------------------------------------------


def test_jaccard_shifted_square():
    # 20x20 squares 5 px apart horizontally: intersection 15x20 = 300, union 25x20 = 500.
    assert jaccard(square(), square(left=45)) == pytest.approx(0.6)


def test_jaccard_empty_cases():
    empty = np.zeros((10, 10), bool)
    assert jaccard(empty, empty) == 1.0  # nothing to find, nothing found
    assert jaccard(square(2, 2, 3, (10, 10)), empty) == 0.0
    assert jaccard(empty, square(2, 2, 3, (10, 10))) == 0.0


def test_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in size"):
        jaccard(np.zeros((4, 5)), np.zeros((5, 4)))


def test_float_masks_are_thresholded_integers_are_nonzero():
    gt = np.zeros((4, 4), np.uint8)
    gt[1:3, 1:3] = 255
    soft = np.zeros((4, 4), np.float32)
    soft[1:3, 1:3] = 0.9
    soft[0, 0] = 0.3  # a faint pixel is not object
    assert jaccard(gt, soft) == 1.0
    assert jaccard(gt, (gt > 0).astype(np.uint8)) == 1.0


# --- seg2bmap ---------------------------------------------------------------------------------------


def test_seg2bmap_square_is_a_ring_shifted_half_a_pixel_to_the_origin():
    seg = square(2, 3, 4, (10, 12))  # rows 2..5, cols 3..6
    b = seg2bmap(seg)
    expected = np.zeros_like(seg)
    # The ring around rows 1..5 x cols 2..6: the row/col just before the object and its last row/col.
    expected[1, 2:7] = expected[5, 2:7] = True
    expected[1:6, 2] = expected[1:6, 6] = True
    np.testing.assert_array_equal(b, expected)
    assert b.sum() == 16


def test_seg2bmap_image_border_is_not_a_boundary():
    assert not seg2bmap(np.ones((6, 7), bool)).any()
    assert not seg2bmap(np.zeros((6, 7), bool)).any()
    left_half = np.zeros((6, 8), bool)
    left_half[:, :4] = True
    b = seg2bmap(left_half)
    # Only the object's last column, and not on the image's last row (the corner rule of the original).
    expected = np.zeros_like(b)
    expected[:, 3] = True
    np.testing.assert_array_equal(b, expected)


# --- F ----------------------------------------------------------------------------------------------


def test_boundary_tolerance():
    assert boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert boundary_tolerance((100, 100)) == 2  # ceil(1.13)
    assert boundary_tolerance((100, 100), 3) == 3  # >= 1: pixels


def test_disk_is_the_official_digital_disk():
    np.testing.assert_array_equal(disk(2), [[0, 0, 1, 0, 0],
                                            [0, 1, 1, 1, 0],
                                            [1, 1, 1, 1, 1],
                                            [0, 1, 1, 1, 0],
                                            [0, 0, 1, 0, 0]])


def test_f_square_shifted_within_tolerance_is_perfect():
    # 100x100 -> tolerance 2 px; a 2 px shift keeps every boundary pixel within it, J still drops.
    gt, pred = square(), square(left=42)
    assert f_measure(gt, pred) == 1.0
    assert jaccard(gt, pred) == pytest.approx(18 * 20 / (22 * 20))


def test_f_square_shifted_by_five():
    # Both boundaries are 80-pixel rings (rows 39..59, cols 39..59 vs 44..64), tolerance 2 px.
    # Predicted pixels within 2 px of the true ring: top and bottom rows 18 each (cols 44..61),
    # left column 4 (rows 40, 41, 57, 58), right column 0 -> 40/80. The same count holds the other way.
    s = f_boundary(square(), square(left=45))
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(0.5)
    assert s.f == pytest.approx(0.5)


def test_f_disjoint_objects():
    s = f_boundary(square(10, 10, 10), square(70, 70, 10))
    assert (s.precision, s.recall, s.f) == (0.0, 0.0, 0.0)


def test_f_empty_prediction():
    s = f_boundary(square(), np.zeros((100, 100), bool))
    assert (s.precision, s.recall, s.f) == (1.0, 0.0, 0.0)


def test_f_empty_ground_truth():
    s = f_boundary(np.zeros((100, 100), bool), square())
    assert (s.precision, s.recall, s.f) == (0.0, 1.0, 0.0)


def test_f_both_empty():
    s = f_boundary(np.zeros((100, 100), bool), np.zeros((100, 100), bool))
    assert (s.precision, s.recall, s.f) == (1.0, 1.0, 1.0)


def _brute_force_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """F from its definition: boundary pixels matched when within Euclidean distance ``radius``."""
    g = np.argwhere(seg2bmap(gt)).astype(float)
    p = np.argwhere(seg2bmap(pred)).astype(float)
    d2 = ((p[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    precision = np.mean(d2.min(1) <= radius**2)
    rec = np.mean(d2.min(0) <= radius**2)
    return 0.0 if precision + rec == 0 else 2 * precision * rec / (precision + rec)


@pytest.mark.parametrize("seed", range(6))
def test_f_agrees_with_its_definition_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    h, w = 36, 48
    gt = cv2.GaussianBlur(rng.random((h, w)), (0, 0), 3) > 0.5
    pred = cv2.GaussianBlur(rng.random((h, w)), (0, 0), 3) > 0.5
    if not seg2bmap(gt).any() or not seg2bmap(pred).any():
        pytest.skip("degenerate draw")
    for bound_th in (0.008, 2, 4):
        radius = boundary_tolerance(gt.shape, bound_th)
        assert f_measure(gt, pred, bound_th) == pytest.approx(_brute_force_f(gt, pred, radius), abs=1e-12)


# --- statistics -------------------------------------------------------------------------------------


def test_recall_is_strictly_above_half():
    assert recall([0.5, 0.51, 1.0, 0.0]) == 0.5


def test_decay_four_bins():
    # 9 frames: bins are frames 1-3, 3-5, 5-7, 7-9 (1-based, shared edges): 1.0 - 0.0.
    assert decay([1, 1, 1, 1, 0, 0, 0, 0, 0]) == pytest.approx(1.0)
    # 4 frames: edges round(1, 1.75, 2.5, 3.25, 4) = 1, 2, 3, 3, 4 -> first [1, 2], last [3, 4].
    assert decay([1.0, 0.8, 0.4, 0.2]) == pytest.approx(0.9 - 0.3)


def test_decay_rounds_half_up_like_the_official_code():
    # 3 frames: linspace gives 1, 1.5, 2, 2.5, 3; half-up rounding -> last bin is frame 3 alone.
    # (numpy's round-half-to-even would make it frames 2-3 and give 0.5.)
    assert decay([1.0, 1.0, 0.0]) == pytest.approx(1.0)
    assert decay([0.7]) == 0.0


def test_statistics():
    s = statistics([1.0, 1.0, 0.6, 0.6])
    assert (s.mean, s.recall, s.decay) == pytest.approx((0.8, 1.0, 0.4))
    with pytest.raises(ValueError):
        statistics([])


# --- sequences --------------------------------------------------------------------------------------


def test_first_and_last_frames_are_not_scored():
    gt = [square() for _ in range(5)]
    pred = [np.zeros((100, 100), bool), square(), square(), square(), ~square()]
    r = evaluate_sequence(gt, pred, name="s")
    assert r.frames == ["00001", "00002", "00003"]
    assert r.j_per_frame == [1.0, 1.0, 1.0] and r.f_per_frame == [1.0, 1.0, 1.0]
    assert (r.J.mean, r.J.recall, r.J.decay) == (1.0, 1.0, 0.0)


def test_sequence_statistics_by_hand():
    # Scored frames: perfect, perfect, shifted by 5, shifted by 5 -> J 1, 1, .6, .6 and F 1, 1, .5, .5.
    gt = [square()] * 6
    pred = [square(), square(), square(), square(left=45), square(left=45), square()]
    r = evaluate_sequence(gt, pred, frames=[f"f{i}" for i in range(6)], workers=2)
    assert r.j_per_frame == pytest.approx([1, 1, 0.6, 0.6])
    assert (r.J.mean, r.J.recall, r.J.decay) == pytest.approx((0.8, 1.0, 0.4))
    assert (r.F.mean, r.F.recall, r.F.decay) == pytest.approx((0.75, 0.5, 0.5))  # 0.5 is not > 0.5
    assert r.jf_mean == pytest.approx(0.775)
    assert r.frames == ["f1", "f2", "f3", "f4"]


def test_sequence_errors():
    with pytest.raises(ValueError, match="at least 3"):
        evaluate_sequence([square()] * 2, [square()] * 2)
    with pytest.raises(ValueError, match="3 ground-truth masks but 2"):
        evaluate_sequence([square()] * 3, [square()] * 2)
    with pytest.raises(ValueError, match="differ in size"):
        evaluate_sequence([square()] * 3, [square(), np.zeros((5, 5), bool), square()])


def test_overall_is_a_mean_over_sequences_not_frames():
    a = evaluate_sequence([square()] * 3, [square()] * 3, name="a")  # 1 frame, J 1
    b = evaluate_sequence([square()] * 6, [square()] * 3 + [square(left=45)] * 3, name="b")  # J 1 1 .6 .6
    res = EvaluationResult([a, b])
    assert b.J.mean == pytest.approx(0.8)
    assert res.J.mean == pytest.approx(0.9)  # not the frame mean (1 + 1 + 1 + .6 + .6) / 5 = .84
    assert res.F.mean == pytest.approx((1.0 + 0.75) / 2)
    assert res.jf_mean == pytest.approx((res.J.mean + res.F.mean) / 2)
    assert res.n_frames == 5
    assert res["b"] is b


# --- reports ----------------------------------------------------------------------------------------


def _result() -> EvaluationResult:
    a = evaluate_sequence([square()] * 4, [square()] * 4, name="bear")
    b = evaluate_sequence([square()] * 4, [square(left=45)] * 4, name="blackswan")
    return EvaluationResult([a, b], davis_root="/d", predictions="/p")


def test_json_round_trip(tmp_path):
    res = _result()
    path = res.write_json(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["overall"]["J"]["mean"] == pytest.approx(0.8)
    assert data["overall"]["JF_mean"] == pytest.approx((0.8 + 0.75) / 2)
    assert data["sequences"]["blackswan"]["F"]["per_frame"] == pytest.approx([0.5, 0.5])
    back = EvaluationResult.from_dict(data)
    assert back.to_dict() == res.to_dict()


def test_csv_and_table(tmp_path):
    res = _result()
    lines = res.write_csv(tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "scope,sequence,frames,J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
    assert lines[1].startswith("sequence,bear,2,1.0,1.0,1.0,0.0,")
    assert lines[-1].startswith("overall,,4,")
    assert len(lines) == 4
    table = res.format_table()
    assert "blackswan" in table and "Overall" in table and "0.800" in table
    assert "bear" not in res.format_table(per_sequence=False)


# --- files ------------------------------------------------------------------------------------------


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    h, w = next(iter(channels.values())).shape
    spec = oiio.ImageSpec(w, h, len(channels), "half")
    spec.channelnames = tuple(channels)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.dstack(list(channels.values())).astype(np.float32))
    out.close()


def test_read_prediction_thresholds(tmp_path):
    row8 = np.array([[0, 127, 128, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), row8)
    assert read_prediction(tmp_path / "a.png").tolist() == [[False, False, True, True]]
    row16 = np.array([[0, 32767, 32768, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "b.png"), row16)
    assert read_prediction(tmp_path / "b.png").tolist() == [[False, False, True, True]]
    labels = np.array([[0, 1, 1, 0]], np.uint8)  # a {0, 1} label image
    cv2.imwrite(str(tmp_path / "c.png"), labels)
    assert read_prediction(tmp_path / "c.png").tolist() == [[False, True, True, False]]
    rgb = np.zeros((1, 4, 3), np.uint8)
    rgb[0, 1] = (0, 0, 128)  # dark red (BGR): the DAVIS palette's object colour
    cv2.imwrite(str(tmp_path / "d.png"), rgb)
    assert read_prediction(tmp_path / "d.png").tolist() == [[False, True, False, False]]


def test_read_exr_prediction_uses_alpha_else_first_channel(tmp_path):
    a = np.array([[0.0, 0.49, 0.5, np.nan]], np.float32)
    ones = np.ones_like(a)
    write_exr(tmp_path / "rgba.exr", {"R": ones, "G": ones, "B": ones, "A": a})
    assert read_prediction(tmp_path / "rgba.exr").tolist() == [[False, False, True, False]]
    write_exr(tmp_path / "y.exr", {"Y": a})
    assert read_prediction(tmp_path / "y.exr").tolist() == [[False, False, True, False]]


def test_read_annotation_nonzero_is_object(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.array([[0, 1, 255]], np.uint8))
    assert read_annotation(tmp_path / "g.png").tolist() == [[False, True, True]]


def test_read_split_both_formats(tmp_path):
    (tmp_path / "names.txt").write_text("bear\n\n# comment\nboat\nbear\n")
    assert read_split(tmp_path / "names.txt") == ["bear", "boat"]
    (tmp_path / "2016.txt").write_text(
        "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n"
        "/JPEGImages/480p/bear/00001.jpg /Annotations/480p/bear/00001.png\n"
        "/JPEGImages/480p/car-turn/00000.jpg /Annotations/480p/car-turn/00000.png\n")
    assert read_split(tmp_path / "2016.txt") == ["bear", "car-turn"]
    with pytest.raises(EvaluationInputError, match="missing.txt"):
        read_split(tmp_path / "missing.txt")


def make_davis(root: Path, seqs: dict[str, int], shape: tuple[int, int] = (30, 40)) -> None:
    """A tiny DAVIS root: every frame's ground truth is a 10x10 square at (10, 10)."""
    for seq, n in seqs.items():
        d = root / "Annotations" / "480p" / seq
        d.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{i:05d}.png"), square(10, 10, 10, shape).astype(np.uint8) * 255)


def test_evaluate_folder_png_and_exr(tmp_path):
    make_davis(tmp_path / "davis", {"a": 4, "b": 5})
    pred = tmp_path / "pred"
    (pred / "a").mkdir(parents=True)
    (pred / "b").mkdir()
    # a: PNG, frames 1-2 only (first and last are not needed); frame 2 shifted by 5 px -> J = 50/150.
    cv2.imwrite(str(pred / "a" / "00001.png"), square(10, 10, 10, (30, 40)).astype(np.uint8) * 255)
    cv2.imwrite(str(pred / "a" / "00002.png"), square(10, 15, 10, (30, 40)).astype(np.uint8) * 255)
    # b: EXR mattes, all frames, perfect.
    for i in range(5):
        write_exr(pred / "b" / f"{i:05d}.exr", {"A": square(10, 10, 10, (30, 40)).astype(np.float32)})
    res = evaluate_folder(tmp_path / "davis", pred)
    assert [s.name for s in res.sequences] == ["a", "b"]
    assert res["a"].j_per_frame == pytest.approx([1.0, 1 / 3])
    assert res["a"].frames == ["00001", "00002"]
    assert res["b"].n_frames == 3 and res["b"].J.mean == 1.0 and res["b"].F.mean == 1.0
    assert res.J.mean == pytest.approx(((1 + 1 / 3) / 2 + 1) / 2)
    only_b = evaluate_folder(tmp_path / "davis", pred, ["b"])
    assert [s.name for s in only_b.sequences] == ["b"]


def test_evaluate_folder_bad_input_names_the_file(tmp_path):
    make_davis(tmp_path / "davis", {"a": 4})
    pred = tmp_path / "pred"
    (pred / "a").mkdir(parents=True)
    cv2.imwrite(str(pred / "a" / "00001.png"), np.zeros((30, 40), np.uint8))
    with pytest.raises(EvaluationInputError, match=r"00002\.png: missing prediction") as err:
        evaluate_folder(tmp_path / "davis", pred)
    assert err.value.path == pred / "a" / "00002.png"
    with pytest.raises(EvaluationInputError, match="no ground truth for sequence 'zebra'"):
        evaluate_folder(tmp_path / "davis", pred, ["zebra"])
    (tmp_path / "davis" / "Annotations" / "480p" / "zebra").mkdir()
    with pytest.raises(EvaluationInputError, match="no predictions for sequence 'zebra'"):
        evaluate_folder(tmp_path / "davis", pred, ["zebra"])
    cv2.imwrite(str(pred / "a" / "00002.png"), np.zeros((31, 40), np.uint8))
    with pytest.raises(EvaluationInputError, match=r"00002\.png: prediction is 40x31 but the ground truth"):
        evaluate_folder(tmp_path / "davis", pred, ["a"])
    with pytest.raises(EvaluationInputError, match="not found"):
        evaluate_folder(tmp_path / "nowhere", pred)


# --- real data --------------------------------------------------------------------------------------


def _davis_root() -> Path:
    return Path(os.environ.get("OSVOS_DAVIS_ROOT") or REPO.parent / "shared" / "data" / "davis2016-train")


@pytest.mark.davis
def test_ground_truth_against_itself_is_perfect():
    root = _davis_root()
    if not (root / "Annotations" / "480p").is_dir():
        pytest.skip(f"DAVIS-2016 train not found at {root} (set OSVOS_DAVIS_ROOT)")
    seq = "dog-agility" if (root / "Annotations" / "480p" / "dog-agility").is_dir() else sorted(
        p.name for p in (root / "Annotations" / "480p").iterdir())[0]
    res = evaluate_folder(root, root / "Annotations" / "480p", [seq])
    n = len(list((root / "Annotations" / "480p" / seq).glob("*.png")))
    assert res[seq].n_frames == n - 2
    for stat in (res.J, res.F):
        assert (stat.mean, stat.recall, stat.decay) == (1.0, 1.0, 0.0)
    assert math.isclose(res.jf_mean, 1.0)
