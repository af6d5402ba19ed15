"""``osvos-eval``: table on stdout, JSON/CSV files, exit codes 0 / 2 (usage) / 3 (bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from osvos_plugin.cli.evaluate import main


def _mask(left: int) -> np.ndarray:
    m = np.zeros((30, 40), np.uint8)
    m[10:20, left : left + 10] = 255
    return m


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """DAVIS root with sequences a, b (4 frames each) and predictions: a perfect, b shifted 5 px."""
    root, pred = tmp_path / "davis", tmp_path / "pred"
    for seq, left in (("a", 10), ("b", 15)):
        (root / "Annotations" / "480p" / seq).mkdir(parents=True)
        (pred / seq).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / "Annotations" / "480p" / seq / f"{i:05d}.png"), _mask(10))
            cv2.imwrite(str(pred / seq / f"{i:05d}.png"), _mask(left))
    return root, pred


def test_table_json_csv(tree, tmp_path, capsys):
    root, pred = tree
    rc = main(["--davis-root", str(root), "--predictions", str(pred), "--json", str(tmp_path / "r.json"),
               "--csv", str(tmp_path / "r.csv")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "J&F-Mean" in out and "Overall" in out
    a_line = next(line for line in out.splitlines() if line.startswith("a "))
    assert "1.000" in a_line
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["overall"]["J"]["mean"] == pytest.approx((1 + 1 / 3) / 2)  # b: 50/150 per frame
    assert list(data["sequences"]) == ["a", "b"]
    assert (tmp_path / "r.csv").read_text().splitlines()[-1].startswith("overall,,4,")


def test_sequences_and_split(tree, tmp_path, capsys):
    root, pred = tree
    assert main(["--davis-root", str(root), "--predictions", str(pred), "--sequences", "b"]) == 0
    out = capsys.readouterr().out
    assert "\nb " in out and "\na " not in out
    split = tmp_path / "val.txt"
    split.write_text("a\n")
    assert main(["--davis-root", str(root), "--predictions", str(pred), "--split", str(split),
                 "--overall-only"]) == 0
    assert "Overall" in capsys.readouterr().out


def test_missing_frame_is_bad_input(tree, capsys):
    root, pred = tree
    (pred / "b" / "00002.png").unlink()
    assert main(["--davis-root", str(root), "--predictions", str(pred)]) == 3
    err = capsys.readouterr().err
    assert str(pred / "b" / "00002.png") in err and err.count("\n") == 1


def test_size_mismatch_and_missing_sequence_are_bad_input(tree, capsys):
    root, pred = tree
    assert main(["--davis-root", str(root), "--predictions", str(pred), "--sequences", "a,zebra"]) == 3
    assert "zebra" in capsys.readouterr().err
    cv2.imwrite(str(pred / "a" / "00001.png"), np.zeros((30, 41), np.uint8))
    assert main(["--davis-root", str(root), "--predictions", str(pred)]) == 3
    assert "00001.png: prediction is 41x30" in capsys.readouterr().err


def test_usage_errors(tree, capsys):
    root, pred = tree
    assert main([]) == 2
    assert main(["--davis-root", str(root), "--predictions", str(pred), "--sequences", "a",
                 "--split", "x.txt"]) == 2
    assert main(["--davis-root", str(root), "--predictions", str(pred), "--sequences", " , "]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()


def test_unwritable_output(tree, tmp_path, capsys):
    root, pred = tree
    out = tmp_path / "no" / "r.json"
    rc = main(["--davis-root", str(root), "--predictions", str(pred), "--json", str(out)])
    assert rc == 5
    assert "cannot write" in capsys.readouterr().err
