"""Training tasks: the copy (string memorisation) task and character-level language modelling.

Both produce, per step, ``x`` (B, V) float64 one-hot inputs, ``y`` (B,) int64 targets and
``reset`` (B,) bool flags (reset that stream's state and influence before this step).
Only NumPy and the standard library are used here.
"""
from .charlm import CharLMStreams, Corpus, bits_per_char, eval_chunks, load_corpus, one_hot
from .copy import BLANK, N_SYMBOLS, START, CopyCurriculum, CopyTask, copy_sequence
from .text import FORMATS, UNK, Vocabulary, detect_format, read_symbols

__all__ = ["CopyTask", "CopyCurriculum", "copy_sequence", "START", "BLANK", "N_SYMBOLS",
           "load_corpus", "Corpus", "Vocabulary", "CharLMStreams", "read_symbols", "detect_format",
           "eval_chunks", "bits_per_char", "one_hot", "FORMATS", "UNK"]
