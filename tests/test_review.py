"""Frames to check: statistics and rules on synthetic mattes with exact answers, and a render's report."""

import json
from pathlib import Path

import numpy as np
import pytest

from osvos_plugin.review import FrameStats, frame_ranges, matte_stats, review, review_path

H, W = 48, 64


def square(side=12, top=10, left=10, value=1.0):
    m = np.zeros((H, W), np.float32)
    m[top:top + side, left:left + side] = value
    return m


def sequence(mattes, first=1001):
    return review([matte_stats(first + i, m) for i, m in enumerate(mattes)])


def test_stats_of_a_square_and_of_two_blobs():
    s = matte_stats(7, square(12))
    assert (s.frame, s.area, s.confidence, s.blobs, s.second_blob_distance) == (7, round(144 / (H * W), 6), None,
                                                                                1, None)
    two = square(12)
    two[30:34, 50:54] = 1.0  # 4x4 blob; gap to the square: columns 22..49 and rows 22..29 -> (28, 8) px
    s = matte_stats(7, two)
    assert s.blobs == 2
    assert s.second_blob_distance == pytest.approx(np.hypot(29, 9) / np.hypot(H, W), abs=0.02)
    empty = matte_stats(7, np.zeros((H, W), np.float32))
    assert (empty.area, empty.blobs, empty.present) == (0.0, 0, False)
    soft = matte_stats(7, square(12, value=0.75))  # alpha 0.75 everywhere it is: |2a - 1| = 0.5
    assert (soft.confidence, soft.area, soft.blobs) == (0.5, round(144 / (H * W), 6), 1)


def test_stats_at_a_reduced_size_count_the_same_blobs():
    big = np.zeros((1080, 1920), np.float32)
    big[100:400, 100:400] = 1.0
    big[900:1000, 1700:1800] = 1.0
    s = matte_stats(1, big)
    assert s.area == round((300 * 300 + 100 * 100) / (1080 * 1920), 6) and s.blobs == 2
    assert s.second_blob_distance == pytest.approx(np.hypot(1300, 500) / np.hypot(1080, 1920), abs=0.01)


def test_an_empty_frame_between_frames_with_the_object_is_flagged_exactly():
    mattes = [square() for _ in range(9)]
    mattes[4] = np.zeros((H, W), np.float32)  # frame 1005
    r = sequence(mattes)
    assert r.flagged == {"hidden": [(1005, 1005)]}
    assert r.sentence == "check frame 1005: the matte is empty, the object may be hidden or lost"


def test_an_empty_run_between_and_at_the_end():
    mattes = [square() for _ in range(12)]
    for k in (3, 4, 5, 10, 11):
        mattes[k] = np.zeros((H, W), np.float32)
    r = sequence(mattes, first=1040)
    assert r.flagged == {"hidden": [(1043, 1045)], "gone": [(1050, 1051)]}
    assert r.sentence == ("check frames 1043-1045: the matte is empty, the object may be hidden or lost; "
                          "1050-1051: the matte is empty from here on, the object may have left the frame or be lost")


def test_a_matte_appearing():
    empty = np.zeros((H, W), np.float32)
    r = sequence([empty, empty, square(), square(), square()])
    assert r.flagged == {"appears": [(1003, 1003)]}
    r = sequence([square(), empty, empty, square(), empty, empty, empty])  # 1004 from nowhere, then gone
    assert r.flagged == {"hidden": [(1002, 1003)], "appears": [(1004, 1004)], "gone": [(1005, 1007)]}


def test_an_area_jump_is_flagged_at_its_frame_only():
    mattes = [square(12) for _ in range(9)]
    mattes[6] = square(30)  # frame 1006: over 6 times the area
    r = sequence(mattes, first=1000)
    assert r.flagged == {"area_jump": [(1006, 1006)]}
    assert r.sentence == "check frame 1006: the matte's area jumps"


def test_a_second_blob_far_from_the_object_is_flagged_and_a_near_one_is_not():
    near, far = square(12), square(12)
    near[24:28, 10:14] = 1.0  # 2 rows below the square
    far[40:44, 56:60] = 1.0  # across the frame
    mattes = [square(12) for _ in range(5)] + [far] + [square(12) for _ in range(3)] + [near]
    r = sequence(mattes, first=1070)
    assert r.flagged == {"far_blob": [(1075, 1075)]}
    assert r.sentence == "check frame 1075: a second blob far from the object"


def test_ranges_and_a_long_list():
    mattes = [square() for _ in range(40)]
    for k in [*range(3, 32, 4), 35, 36, 37]:  # frames 4, 8, ..., 32 and 36-38 empty
        mattes[k] = np.zeros((H, W), np.float32)
    mattes[1] = square(30)  # frame 2
    r = sequence(mattes, first=1)
    assert r.flagged == {"hidden": [(f, f) for f in range(4, 33, 4)] + [(36, 38)], "area_jump": [(2, 2)]}
    assert r.sentence == ("check frames 4, 8, 12, 16, 20, 24, 28, 32 and 1 more: the matte is empty, the object "
                          "may be hidden or lost; 2: the matte's area jumps")
    assert sequence([square() for _ in range(5)]).sentence == ""


def test_the_report_is_named_after_the_pattern(tmp_path):
    assert review_path(tmp_path / "matte.####.exr") == tmp_path / "matte.osvos-review.json"
    assert review_path(tmp_path / "shot_v2_%04d.png") == tmp_path / "shot_v2.osvos-review.json"
    assert review_path(tmp_path / "still.exr") == tmp_path / "still.osvos-review.json"
    assert review_path(tmp_path / "####.exr") == tmp_path / "matte.osvos-review.json"


def test_a_render_reports_the_frame_whose_matte_is_empty(tmp_path, tiny_parent, monkeypatch):
    """End to end: the network's answer is the plate's bright square, and plate 3 has none, so the matte of
    frame 3 is empty between frames with the object: the JSON beside the mattes and the summary say so,
    and a resumed render reads the kept mattes back for the same report."""
    import cv2

    from osvos_plugin.inference import Segmenter
    from osvos_plugin.pipeline import Keyframe, RenderJob, render

    (tmp_path / "in").mkdir()
    for f in range(1, 6):
        img = np.zeros((48, 64, 3), np.uint8)
        if f != 3:
            img[12:36, 20:44] = 255
        cv2.imwrite(str(tmp_path / "in" / f"p.{f}.png"), img)
    cv2.imwrite(str(tmp_path / "roto.png"), (cv2.imread(str(tmp_path / "in" / "p.1.png"))[:, :, 0] > 0) * np.uint8(255))

    def known(self, frames, out_size=None):
        h, w = out_size or frames[0].shape[:2]
        return [cv2.resize((f[:, :, 0] > 0.5).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
                for f in frames]

    monkeypatch.setattr(Segmenter, "probabilities", known)
    out = tmp_path / "out" / "m.#.png"
    job = RenderJob(str(tmp_path / "in" / "p.#.png"), str(out), [Keyframe(tmp_path / "roto.png", 1)],
                    params={"iterations": 1, "process_size": 64, "device": "cpu", "output_format": "png16"},
                    parent=tiny_parent)
    summary = render(job)
    assert summary.written == 5 and summary.review == tmp_path / "out" / "m.osvos-review.json"
    assert summary.check == "check frame 3: the matte is empty, the object may be hidden or lost"
    assert summary.line().endswith("; check frame 3: the matte is empty, the object may be hidden or lost "
                                   "(see m.osvos-review.json)")
    report = json.loads(summary.review.read_text())
    assert report["flagged"] == [{"reason": "hidden", "text": "the matte is empty, the object may be hidden or lost",
                                  "ranges": [[3, 3]]}]
    assert [f["frame"] for f in report["frames"]] == [1, 2, 3, 4, 5]
    assert [f["area"] for f in report["frames"]] == [round(24 * 24 / (48 * 64), 6)] * 2 + [0.0] + [
        round(24 * 24 / (48 * 64), 6)] * 2
    assert report["covers"] == "every frame of the range"

    (tmp_path / "out" / "m.4.png").unlink()
    again = render(job)  # resume: 4 kept (their figures from the report), 1 written
    assert (again.written, again.skipped) == (1, 4)
    assert json.loads(again.review.read_text())["frames"] == report["frames"]
    assert again.check == summary.check

    import osvos_plugin.pipeline as pipeline

    decoded = []
    real_read = pipeline.read_mask
    monkeypatch.setattr(pipeline, "read_mask", lambda path, **kw: decoded.append(path) or real_read(path, **kw))
    (tmp_path / "out" / "m.2.png").unlink()
    render(job)
    assert decoded == []  # the kept mattes' figures came from the report, not from decoding them again
    summary.review.unlink()
    (tmp_path / "out" / "m.2.png").unlink()
    third = render(job)  # no report to reuse: the kept mattes are read back
    assert sorted(Path(p).name for p in decoded) == ["m.1.png", "m.3.png", "m.4.png", "m.5.png"]
    assert json.loads(third.review.read_text())["frames"] == report["frames"]


def test_frames_segmented_again_smaller_are_listed_but_not_flagged():
    """Rescale Grown Objects' frames are named in the report (ranges, and each frame's size) without being
    frames to check; runs follow the range's frames, so a frame step is no gap."""
    stats = [FrameStats(f, 0.2, None, 1, None, rescaled_to=90 if f in (1003, 1005, 1009) else None)
             for f in range(1001, 1012, 2)]
    report = review(stats)
    assert report.rescaled == [(1003, 1005), (1009, 1009)]
    assert report.sentence == "" and report.flagged == {}
    data = report.as_json()
    assert data["rescaled"]["ranges"] == [[1003, 1005], [1009, 1009]]
    assert [f["rescaled_to"] for f in data["frames"]] == [None, 90, 90, None, 90, None]
    assert frame_ranges(report.rescaled) == "1003-1005, 1009"
    assert frame_ranges([(1, 1)] * 10, most=8) == "1, 1, 1, 1, 1, 1, 1, 1 and 2 more"
