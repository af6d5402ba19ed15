"""osvos_contract.protocol: exit codes, stages and the ``--progress json`` record, written and read back."""

from __future__ import annotations

import json

import pytest

from osvos_contract.protocol import (
    EXIT_CODES,
    EXIT_MEANINGS,
    RENDER_STAGES,
    STAGES,
    ExitCode,
    Progress,
    duration,
    exit_codes_help,
    parse_progress,
    stage,
)


def test_exit_codes_are_the_documented_ones():
    assert (ExitCode.OK, ExitCode.INTERNAL, ExitCode.USAGE, ExitCode.INPUT, ExitCode.MODEL, ExitCode.OUTPUT,
            ExitCode.INTERRUPTED) == (0, 1, 2, 3, 4, 5, 130)
    assert set(EXIT_MEANINGS) == set(EXIT_CODES) == {0, 1, 2, 3, 4, 5, 130}
    assert EXIT_MEANINGS[ExitCode.INPUT] == "bad input (plates, mask or parameters)"
    assert "resume" in EXIT_MEANINGS[ExitCode.INTERRUPTED]
    assert exit_codes_help().startswith("Exit codes: 0 done, 1 internal error, 2 usage, 3 bad input")
    assert exit_codes_help((0, 4)) == "Exit codes: 0 done, 4 model file."


def test_stages_and_their_shares_of_a_render():
    assert [s.name for s in RENDER_STAGES] == ["check", "finetune", "selftrain", "infer"]
    assert sum(s.share for s in RENDER_STAGES) == pytest.approx(1.0)
    assert {s.name: s.label for s in STAGES.values()} == {
        "check": "Checking plates", "finetune": "Fine-tuning", "selftrain": "Self-training",
        "infer": "Inferring", "train": "Training"}
    assert stage("infer").unit == "frame" and stage("finetune").unit == "it"
    newer = stage("distill")  # a stage of a newer engine: shown by its name
    assert (newer.name, newer.label, newer.share) == ("distill", "Distill", 0.0)


def test_timed_extrapolates_the_eta():
    p = Progress.timed("finetune", 100, 400, 42.0, 0.3125)
    assert (p.stage, p.done, p.total, p.loss) == ("finetune", 100, 400, 0.3125)
    assert p.eta_s == pytest.approx(126.0) and p.fraction == pytest.approx(0.25)
    assert Progress.timed("infer", 0, 12, 5.0).eta_s is None  # nothing done yet: no guess
    assert Progress.timed("infer", 0, 0, 5.0).fraction == 1.0  # nothing to do is done


def test_record_round_trips_through_one_json_line():
    for p in (Progress.timed("finetune", 100, 400, 42.0, 0.3125), Progress("infer", 3, 12),
              Progress("check", 50, 200, None, 2.0), Progress("train", 7, 9, 0.123456789, 1234.56)):
        line = p.to_json()
        assert "\n" not in line and line.startswith("{")
        rec = json.loads(line)
        assert set(rec) == {"stage", "done", "total", "fraction", "loss", "eta_s"}
        assert rec["fraction"] == round(p.done / p.total, 4)
        back = parse_progress(line + "\n")
        assert (back.stage, back.done, back.total) == (p.stage, p.done, p.total)
        assert back.loss == (None if p.loss is None else pytest.approx(p.loss, abs=1e-5))
        assert back.eta_s == (None if p.eta_s is None else pytest.approx(p.eta_s, abs=0.05))


def test_parse_reads_records_it_did_not_write():
    """A farm tool or an older engine: missing fields default, a given fraction is not needed."""
    p = parse_progress('  {"stage": "infer", "done": 3, "total": 12, "extra": [1]}  ')
    assert (p.stage, p.done, p.total, p.loss, p.eta_s) == ("infer", 3, 12, None, None)
    assert parse_progress('{"stage": "finetune", "done": null, "total": null}').fraction == 1.0
    assert parse_progress('{"stage": "finetune", "done": "5", "total": 10, "loss": "0.5"}').loss == 0.5


@pytest.mark.parametrize("junk", [
    "", "osvos-render: 4 frames written", "{", '{"done": 1}', "[1, 2]", '{"stage": "x", "done": "a"}',
    '{"stage": "x", "loss": "low"}', '{"stage": "x", "eta_s": [1]}', "null", '"{}"',
])
def test_anything_else_on_stdout_is_not_progress(junk):
    assert parse_progress(junk) is None


def test_overall_runs_through_the_render_stages_in_order():
    shares = {s.name: s.share for s in RENDER_STAGES}
    check, tune, self_train, infer = (Progress(n, 1, 4) for n in ("check", "finetune", "selftrain", "infer"))
    assert check.overall == pytest.approx(shares["check"] * 0.25)
    assert tune.overall == pytest.approx(shares["check"] + shares["finetune"] * 0.25)
    assert check.overall < tune.overall < self_train.overall < infer.overall < 1
    assert Progress("infer", 12, 12).overall == pytest.approx(1.0)
    assert Progress("infer", 20, 12).overall == pytest.approx(1.0)  # clamped
    assert Progress("train", 1, 4).overall == pytest.approx(0.25)  # not a render stage: its own fraction


def test_message_for_a_status_bar():
    assert Progress.timed("finetune", 100, 400, 42.0, 0.3125).message() == (
        "Fine-tuning 100/400, loss 0.3125, 2 min 06 s left")
    assert Progress.timed("infer", 3, 12, 1.5).message() == "Inferring 3/12 frames, 4 s left"
    assert Progress("check", 50, 200).message() == "Checking plates 50/200 frames"
    assert Progress("selftrain", 50, 100, 0.2, 0.0).message() == "Self-training 50/100, loss 0.2000"
    assert Progress("distill", 1, 2).message() == "Distill 1/2"


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (42.4, "42 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"), (3599, "59 min 59 s"),
    (3600, "1 h 00 min"), (3780, "1 h 03 min"), (90061, "25 h 01 min"),
])
def test_duration(seconds, text):
    assert duration(seconds) == text
