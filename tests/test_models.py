"""The shipped parent network: found by default, valid, and actually a foreground segmenter."""

import numpy as np
import pytest

from osvos_plugin import models
from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.weights import WeightsError, read_checkpoint_info


def test_shipped_parent_is_found_and_documented():
    path = models.default_parent_path()
    assert path.name == "osvos-parent.safetensors"
    info = read_checkpoint_info(path)
    assert info.architecture == "osvos-vgg16" and info.provenance["kind"] == "parent"
    assert len(info.provenance["sequences"]) >= 25
    assert (path.parent / "README.md").is_file()


def test_shipped_parent_segments_the_demo_object_without_fine_tuning(demo_pair):
    seg = Segmenter(models.load_parent(), InferenceConfig(process_size=240, device="cpu"))
    rgb, mask = demo_pair(1010)
    matte = seg.predict(rgb) > 0.5
    iou = (matte & (mask > 0.5)).sum() / (matte | (mask > 0.5)).sum()
    assert iou > 0.6


def test_missing_or_corrupt_parent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "model_dirs", lambda: [tmp_path])
    with pytest.raises(WeightsError, match="osvos-parent.safetensors was not found"):
        models.load_parent()
    (tmp_path / models.PARENT_FILE).write_bytes(np.zeros(64, np.uint8).tobytes())
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        models.load_parent()
