import cv2
import OpenImageIO as oiio
import pytest

from osvos_plugin.io import io_thread_budget


def _settings():
    return oiio.get_int_attribute("threads"), oiio.get_int_attribute("exr_threads"), cv2.getNumThreads()


def test_budget_applies_inside_and_restores_after_even_on_error():
    before = _settings()
    with pytest.raises(RuntimeError), io_thread_budget(1):
        assert _settings() == (1, 1, 1)
        raise RuntimeError("a render failed")
    assert _settings() == before
    with io_thread_budget(None):
        assert _settings() == before


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"), io_thread_budget(0):
        pass
