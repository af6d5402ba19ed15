"""Training data: DAVIS-layout datasets."""

from .davis import DavisSequence, list_sequences, load_sequence

__all__ = ["DavisSequence", "list_sequences", "load_sequence"]
