"""Where to cut the probability: the kept probabilities of a quality run, scored at several cuts.

``bench_quality.py --save-probabilities DIR`` keeps every frame's probability (16-bit PNG); this scores them
again with J and F at each cut, without fine-tuning or segmenting anything: ``0.6`` is the plain Threshold,
``0.5/0.9`` a Threshold of 0.5 with a Core Threshold of 0.9 (``inference.hold_cores``, as a render cuts).

    .venv/bin/python benchmarks/bench_cuts.py --probabilities DIR/it300 --cuts 0.5,0.75,0.5/0.9 --json cuts.json

``--average DIR2`` cuts the mean of two runs' probabilities instead (an ensemble of fine-tunes).

Prints a Markdown table (mean J, F, J&F per cut, and against ``--against``, how many sequences gain and
lose) and writes JSON with every sequence's scores.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.evaluation.davis import evaluate_sequence
from osvos_plugin.inference import hold_cores

log = logging.getLogger("bench_cuts")


def parse_cut(text: str) -> tuple[float, float]:
    """``"0.6"`` -> (0.6, 0.0); ``"0.5/0.9"`` -> (0.5, 0.9): (Threshold, Core Threshold)."""
    low, _, core = text.partition("/")
    cut = (float(low), float(core) if core else 0.0)
    if not (0.0 <= cut[0] <= 1.0 and 0.0 <= cut[1] < 1.0):
        raise ValueError(f"{text}: a threshold in [0, 1], a core threshold in [0, 1)")
    return cut


def read_probabilities(folder: Path) -> list[np.ndarray]:
    """A sequence's kept probabilities, in frame order, as float32 in [0, 1]."""
    files = sorted(folder.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"{folder}: no probability PNGs (bench_quality.py --save-probabilities)")
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint16:
            raise ValueError(f"{f}: not a 16-bit probability PNG")
        out.append(img.astype(np.float32) / 65535.0)
    return out


def score(probs: list[np.ndarray], truth: list[np.ndarray], cuts: list[str]) -> dict[str, dict[str, float]]:
    """{cut: {"J", "F"}} of one sequence, each cut as a render makes it (first and last frames unscored)."""
    out = {}
    for text in cuts:
        low, core = parse_cut(text)
        res = evaluate_sequence(truth, [hold_cores(p, low, core) > low for p in probs])
        out[text] = {"J": res.J.mean, "F": res.F.mean}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probabilities", type=Path, required=True,
                    help="A folder of sequence folders of 16-bit PNGs (bench_quality's DIR/itN).")
    ap.add_argument("--average", type=Path, action="append", default=[], metavar="DIR",
                    help="Another run's kept probabilities (same layout), averaged with the first's frame by frame: "
                         "an ensemble of fine-tunes (e.g. two seeds). Repeatable.")
    ap.add_argument("--sequences", default=None, help="(default: every sequence folder there)")
    ap.add_argument("--cuts", required=True, metavar="T,T/C,...")
    ap.add_argument("--against", default=None, help="The cut the others are compared with (default: the first).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cuts = args.cuts.split(",")
    try:
        for c in cuts:
            parse_cut(c)
    except ValueError as e:
        ap.error(f"--cuts: {e}")
    against = args.against or cuts[0]
    if against not in cuts:
        ap.error(f"--against {against} is not one of --cuts")
    if not args.probabilities.is_dir():
        ap.error(f"--probabilities {args.probabilities}: no such folder (bench_quality.py --save-probabilities DIR "
                 "writes DIR/itN)")
    names = (args.sequences.split(",") if args.sequences
             else sorted(p.name for p in args.probabilities.iterdir() if p.is_dir()))
    if not names:
        ap.error(f"{args.probabilities}: no sequence folders")
    root = args.davis_root or default_davis_root()
    per_seq = {}
    for name in names:
        try:
            probs = read_probabilities(args.probabilities / name)
            more_runs = [read_probabilities(other / name) for other in args.average]
            truth = [m > 127 for m in load_sequence(root, name).masks]
        except (FileNotFoundError, ValueError) as e:
            ap.error(str(e))
        for other, more in zip(args.average, more_runs, strict=True):
            if len(more) != len(probs):
                raise SystemExit(f"bench_cuts: {other / name} has {len(more)} frames, {args.probabilities / name} "
                                 f"{len(probs)}: not the same shot")
            probs = [p + q for p, q in zip(probs, more, strict=True)]
        if args.average:
            probs = [p / (1 + len(args.average)) for p in probs]
        per_seq[name] = score(probs, truth, cuts)
        log.info("%-18s %s", name, "  ".join(f"{c} {(v['J'] + v['F']) / 2:.3f}" for c, v in per_seq[name].items()))

    def jf(name: str, cut: str) -> float:
        return (per_seq[name][cut]["J"] + per_seq[name][cut]["F"]) / 2

    print(f"\n| cut | J mean | F mean | J&F | gain / lose against {against} |")
    print("|---|---|---|---|---|")
    for c in cuts:
        j = np.mean([per_seq[n][c]["J"] for n in names])
        f = np.mean([per_seq[n][c]["F"] for n in names])
        d = [jf(n, c) - jf(n, against) for n in names]
        print(f"| {c} | {j:.3f} | {f:.3f} | {(j + f) / 2:.3f} | {sum(x > 0 for x in d)} / {sum(x < 0 for x in d)} |")
    if args.json:
        args.json.write_text(json.dumps({"cuts": cuts, "against": against, "sequences": per_seq}, indent=1))


if __name__ == "__main__":
    main()
