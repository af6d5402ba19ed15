"""The validation folds' parents (models/folds/): each never saw its fold, and the benches pick them per sequence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from osvos_plugin import models
from osvos_plugin.models import fold_parent_path
from osvos_plugin.parent import FOLDS, fold_of, seen_sequences
from osvos_plugin.weights import WeightsError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_each_validation_sequence_has_one_fold():
    assert [fold_of(n) for n in FOLDS["a"]] == ["a"] * 10
    assert [fold_of(n) for n in FOLDS["b"]] == ["b"] * 10
    with pytest.raises(ValueError, match="bear is in no validation fold"):
        fold_of("bear")


@pytest.mark.parametrize("fold", sorted(FOLDS))
@pytest.mark.parametrize("at_854", [False, True])
def test_each_fold_parent_in_the_checkout_never_saw_its_fold(fold, at_854):
    """The model card's held-out figures hold only if the parent they fine-tune never trained on the shot; the
    854 px ones (docs/experiments.md, session 44) were trained on from the fold's own parent."""
    path = ROOT / "models" / "folds" / f"fold-{fold}-854.safetensors" if at_854 else fold_parent_path(fold)
    _, info = load_checkpoint(path, expect="osvos-vgg16")
    if at_854:
        assert info.provenance["config"]["init_from"] == f"models/folds/fold-{fold}.safetensors"
        assert info.provenance["config"]["long_side"] == 854
    trained = info.provenance["sequences"]
    assert seen_sequences(info.provenance, FOLDS[fold]) == []
    other = next(names for f, names in FOLDS.items() if f != fold)
    assert set(other) <= set(trained) and len(trained) == 20
    assert set(FOLDS[fold]) <= set(info.provenance["config"]["exclude"])


def test_a_missing_fold_parent_says_how_to_train_one(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "model_dirs", lambda: [tmp_path])
    with pytest.raises(WeightsError, match="osvos-train-parent --hold-out-fold b --out DIR"):
        fold_parent_path("b")


@pytest.mark.parametrize("args, says", [
    (["--folds", "c"], "no validation fold c"),
    (["--folds", "a", "--sequences", "boat"], "boat not in fold a"),
    (["--folds", "a", "--sequences", "bear"], "bear is in no validation fold"),
    (["--folds", "a", "--parent", "x.safetensors"], "leave out --parent"),
])
def test_bench_quality_refuses_a_fold_run_it_cannot_hold_out(args, says):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_quality.py"), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # this tree's package, installed or not
    assert done.returncode == 2 and says in done.stderr
