"""Training tasks: the copy (string memorisation) task and character-level language modelling,
behind one protocol (:mod:`oknumba.tasks.base`) and one registry.

Both produce, per step, ``x`` (B, V) float64 one-hot inputs, ``y`` (B,) int64 targets and
``reset`` (B,) bool flags (reset that stream's state and influence before this step). A new
task is one :class:`TrainingTask` subclass plus one :func:`register_task` call; ``oknumba train
NAME`` then exists with its options. Only NumPy and the standard library are used here.
"""
from .base import TASKS, TrainingTask, register_task
from .charlm import CharLMStreams, Corpus, bits_per_char, eval_chunks, load_corpus, one_hot
from .charlm_training import CharLMTraining
from .copy import BLANK, N_SYMBOLS, START, CopyCurriculum, CopyTask, CopyTraining, copy_sequence
from .text import FORMATS, UNK, Vocabulary, detect_format, read_symbols

register_task(CopyTraining)
register_task(CharLMTraining)

__all__ = ["CopyTask", "CopyCurriculum", "copy_sequence", "START", "BLANK", "N_SYMBOLS",
           "load_corpus", "Corpus", "Vocabulary", "CharLMStreams", "read_symbols", "detect_format",
           "eval_chunks", "bits_per_char", "one_hot", "FORMATS", "UNK", "TrainingTask", "TASKS",
           "register_task", "CopyTraining", "CharLMTraining"]
