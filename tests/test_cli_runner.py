"""The one CLI runner: every command turns what happened into the contract's exit code and one line."""

import argparse
import logging

import pytest
import torch

from osvos_contract.protocol import EXIT_CODES, ExitCode
from osvos_plugin.cli.runner import run
from osvos_plugin.errors import Cancelled, InputError, ModelError, OSVOSError, OutputError, UsageError
from osvos_plugin.io import MaskError, PlateError
from osvos_plugin.weights import WeightsError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osvos-test")
    p.add_argument("--n", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _raising(exc: BaseException):
    def body(args, cancel):
        raise exc
    return body


@pytest.mark.parametrize("exc,code", [
    (UsageError("no GPU"), 2), (InputError("bad plate"), 3), (PlateError("frame 3 missing"), 3),
    (MaskError("mask empty"), 3), (WeightsError("corrupt"), 4), (ModelError("corrupt"), 4),
    (OutputError("disk full"), 5), (OSVOSError("something"), 1),
])
def test_an_engine_error_exits_with_its_code_and_one_line(exc, code, capsys):
    assert run(_parser(), _raising(exc), []) == code == exc.exit_code
    err = capsys.readouterr().err
    assert err == f"osvos-test: error: {exc}\n"


@pytest.mark.parametrize("exc", [Cancelled("stop"), KeyboardInterrupt()])
def test_a_stop_exits_130_with_the_commands_message(exc, capsys):
    assert run(_parser(), _raising(exc), [], interrupted="run it again") == 130
    assert capsys.readouterr().err == "osvos-test: error: run it again\n"


def test_anything_else_is_an_internal_error_with_its_traceback_under_verbose(capsys, caplog):
    assert run(_parser(), _raising(ZeroDivisionError("boom")), []) == 1
    assert "internal error: ZeroDivisionError('boom') (run with -v" in capsys.readouterr().err
    with caplog.at_level(logging.ERROR):
        assert run(_parser(), _raising(ZeroDivisionError("boom")), ["-v"]) == 1
    assert any(r.exc_info for r in caplog.records)


def test_input_errors_are_per_command(capsys):
    assert run(_parser(), _raising(ValueError("odd")), [], input_errors=(ValueError,)) == 3
    assert run(_parser(), _raising(ValueError("odd")), []) == 1


def test_usage_and_help_return_their_codes_instead_of_exiting(capsys):
    assert run(_parser(), _raising(AssertionError()), ["--n", "x"]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert run(_parser(), _raising(AssertionError()), ["--help"]) == 0
    assert run(_parser(), lambda args, cancel: args.n + 7, ["--n", "3"]) == 10


def test_every_command_documents_the_contracts_exit_codes(capsys):
    from osvos_plugin.cli import demo, evaluate, export, render, train_parent

    for module in (render, demo, evaluate, export, train_parent):
        epilog = module.build_parser().epilog
        assert epilog.startswith("Exit codes: 0 done, 1 internal error, 2 usage")
        for code, (short, _) in EXIT_CODES.items():
            if f" {code} " in epilog:
                assert f"{code} {short}" in epilog
    assert ExitCode.INTERRUPTED == 130


def test_every_commands_help_prints_the_manifests_text_as_written():
    """plugin.json's help may hold a percent sign ("4% of the frame"), which argparse would take for a format."""
    from osvos_contract.manifest import load_manifest
    from osvos_plugin.cli import demo, evaluate, export, render, train_parent

    for module in (render, demo, evaluate, export, train_parent):
        module.build_parser().format_help()
    text = " ".join(render.build_parser().format_help().split())
    large = load_manifest().parameter("large_object_scale").help
    assert "%" in large and " ".join(large.split()) in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_a_missing_gpu_is_an_input_error(tmp_path, capsys):
    from osvos_plugin.cli.demo import PLATE, TRUTH
    from osvos_plugin.cli.render import main as render_main

    code = render_main([PLATE, "--mask", TRUTH.replace("####", "1001"), "--frames", "1001-1002", "--device", "cuda",
                        "--iterations", "1", "-o", str(tmp_path / "m.####.exr"), "--progress", "none"])
    assert code == 3
    assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_stop_while_starting_is_clean(monkeypatch, capsys):
    """Ctrl-C or SIGTERM while torch is still being imported: one line and exit 130, no traceback."""
    import importlib

    from osvos_plugin.cli import entry

    def interrupted_import(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted_import)
    assert entry.render() == 130
    assert capsys.readouterr().err == "osvos-render: error: interrupted while starting; nothing was written.\n"


def test_the_entry_points_load_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, osvos_plugin.cli.entry; "
            "print(sorted(m for m in ('torch', 'numpy', 'cv2', 'OpenImageIO') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_has_version(capsys):
    from osvos_plugin import __version__
    from osvos_plugin.cli import demo, evaluate, export, render, train_parent

    for module in (render, demo, evaluate, export, train_parent):
        assert module.main(["--version"]) == 0
        assert capsys.readouterr().out.strip().endswith(__version__)


def test_set_takes_any_parameter_by_name_and_validates_it(tmp_path, capsys):
    import argparse

    from osvos_plugin.cli.runner import add_manifest_arguments, manifest_values
    from osvos_plugin.errors import UsageError

    parser = argparse.ArgumentParser()
    add_manifest_arguments(parser)
    args = parser.parse_args(["--set", "soft_matte=true", "--set", "process-size=256", "--set", "mask_frame="])
    assert manifest_values(args) == {"soft_matte": "true", "process_size": "256"}  # typed by RenderSettings
    from osvos_plugin.settings import RenderSettings

    s = RenderSettings.resolve(manifest_values(args))
    assert s.soft_matte is True and s.process_size == 256 and s.mask_frame is None
    for bad, why in ((["--set", "thresh=0.5"], "NAME one of"), (["--set", "threshold"], "NAME=VALUE"),
                     (["--threshold", "0.5", "--set", "threshold=0.6"], "give it once")):
        with pytest.raises(UsageError, match=why):
            manifest_values(parser.parse_args(bad))


def test_openjd_progress_lines_run_from_0_to_100_over_the_stages_a_task_runs(capsys):
    from osvos_contract.protocol import Progress
    from osvos_plugin.cli.progress import ProgressPrinter

    p = ProgressPrinter("openjd", stages=("check", "infer"))
    for stage, done in (("check", 4), ("infer", 1), ("infer", 1), ("infer", 4)):
        p(Progress(stage, done, 4))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["openjd_progress: 10", "openjd_status: Checking plates 4/4 frames",
                     "openjd_progress: 32.5", "openjd_status: Inferring 1/4 frames",  # the repeat is not printed
                     "openjd_progress: 100", "openjd_status: Inferring 4/4 frames"]
