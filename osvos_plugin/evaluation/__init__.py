"""DAVIS evaluation: region similarity J and boundary F-measure, per sequence and overall.

Faithful to the official DAVIS benchmark code (first and last frames not scored, ``seg2bmap``
boundaries, a disk tolerance of ``ceil(0.008 * diagonal)`` pixels, decay over four bins); see
:mod:`.metrics` for the definitions, :mod:`.davis` for the folder layout and binarisation rules,
:mod:`.report` for how overall numbers are formed and written.

    from osvos_plugin.evaluation import evaluate_folder, evaluate_sequence
    result = evaluate_folder("DAVIS", "results/osvos", ["bear", "boat"])
    print(result.format_table()); result.write_json("eval.json")
"""

from .davis import (
    DEFAULT_RESOLUTION,
    EvaluationInputError,
    evaluate_folder,
    evaluate_frame,
    evaluate_objects,
    evaluate_sequence,
    find_prediction,
    list_sequences,
    read_annotation,
    read_prediction,
    read_split,
)
from .metrics import (
    DEFAULT_BOUND_TH,
    BoundaryScore,
    Statistics,
    boundary_tolerance,
    decay,
    f_boundary,
    f_measure,
    jaccard,
    recall,
    seg2bmap,
    statistics,
)
from .report import COLUMNS, EvaluationResult, SequenceResult

__all__ = [
    "COLUMNS",
    "DEFAULT_BOUND_TH",
    "DEFAULT_RESOLUTION",
    "BoundaryScore",
    "EvaluationInputError",
    "EvaluationResult",
    "SequenceResult",
    "Statistics",
    "boundary_tolerance",
    "decay",
    "evaluate_folder",
    "evaluate_frame",
    "evaluate_objects",
    "evaluate_sequence",
    "f_boundary",
    "f_measure",
    "find_prediction",
    "jaccard",
    "list_sequences",
    "read_annotation",
    "read_prediction",
    "read_split",
    "recall",
    "seg2bmap",
    "statistics",
]
