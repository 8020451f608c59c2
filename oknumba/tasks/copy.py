"""String memorisation ("copy") task and curriculum of Benzing et al. 2019 (arXiv 1902.03993).

Alphabet (``n_symbols = 4``): ``0``, ``1`` are bits, ``2`` is the start marker, ``3`` the
blank. For a length parameter ``T`` one sequence has ``2T + 2`` steps::

    input   2   b_1 ... b_T   3 ... 3 (T+1 times)
    target  3 ... 3 (T+1 times)   2   b_1 ... b_T

with bits ``b_i`` iid uniform on {0, 1}. The network reads the start marker and the bits,
then, while it reads blanks, has to echo the marker and the bits back. The loss is the
cross-entropy at every position, in bits.

``B`` independent streams concatenate sequences back to back. At the first step of each
sequence the stream's hidden state and influence are reset to zero (``reset[b] = True``).

Curriculum (level ``T̄``, running average ``avg``)::

    T̄ = 1, avg = 1.0 initially
    after every step:          avg ← decay·avg + (1 − decay)·(batch-mean CE in bits)
    when a stream starts a new sequence, before drawing its length:
        if avg < threshold:    T̄ ← T̄ + 1,  avg ← reset_avg
    the new sequence has       T = max(1, T̄ − U),  U ~ uniform integer on {0, …, max_drop}

with the paper's values ``decay = 0.999``, ``threshold = 0.15``, ``reset_avg = 0.3``,
``max_drop = 4``. "Length reached" is ``T̄``.

Only NumPy and the standard library are used here.
"""
import copy as _copy
import math
import numbers

import numpy as np

from .._validate import check_positive_int
from .base import TrainingTask

__all__ = ["START", "BLANK", "N_SYMBOLS", "copy_sequence", "CopyCurriculum", "CopyTask", "CopyTraining"]

#: Symbol ids of the copy-task alphabet.
START = 2
BLANK = 3
N_SYMBOLS = 4

_STATE_VERSION = 1


def _check_real(value, name, hint=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}{hint}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}{hint}")
    return value


def copy_sequence(bits):
    """Build the input and target symbol sequences of one copy-task sequence.

    Parameters
    ----------
    bits : array_like of int, shape (T,)
        The bits ``b_1..b_T`` to memorise, each 0 or 1, ``T >= 1``.

    Returns
    -------
    inputs, targets : ndarray of int64, shape (2T + 2,)
        ``inputs = [2, b_1..b_T, 3 × (T+1)]`` and ``targets = [3 × (T+1), 2, b_1..b_T]``.

    Examples
    --------
    >>> copy_sequence([1, 0, 1])
    (array([2, 1, 0, 1, 3, 3, 3, 3]), array([3, 3, 3, 3, 2, 1, 0, 1]))
    """
    b = np.asarray(bits)
    if b.ndim != 1:
        raise ValueError(f"bits must be a 1-D sequence of 0/1 values, got an array of shape {b.shape}")
    if b.size == 0:
        raise ValueError("bits must hold at least one bit (the copy task needs T >= 1)")
    if b.dtype.kind not in "iub":
        raise TypeError(f"bits must be integers 0 or 1, got dtype {b.dtype}")
    b = b.astype(np.int64)
    if b.min() < 0 or b.max() > 1:
        raise ValueError(f"bits must be 0 or 1, found values in [{b.min()}, {b.max()}]")
    t = b.size
    inputs = np.full(2 * t + 2, BLANK, dtype=np.int64)
    targets = np.full(2 * t + 2, BLANK, dtype=np.int64)
    inputs[0] = START
    inputs[1:t + 1] = b
    targets[t + 1] = START
    targets[t + 2:] = b
    return inputs, targets


class CopyCurriculum:
    """The copy-task curriculum: a level ``T̄`` driven by a running average of the loss.

    Rules (as in the code released with the OK paper)::

        update(ce):         avg ← decay·avg + (1 − decay)·ce
        maybe_advance():    if avg < threshold: level ← level + 1, avg ← reset_avg
        length_for(u):      T = max(1, level − u)        (u drawn uniformly from 0..max_drop)

    ``maybe_advance`` is called once whenever a stream starts a new sequence, before that
    sequence's length is drawn.

    Parameters
    ----------
    level : int, default 1
        Starting level ``T̄`` (>= 1).
    avg : float, default 1.0
        Starting running average of the batch-mean cross-entropy in bits.
    threshold : float, default 0.15
        The level advances when ``avg`` falls below this value.
    decay : float, default 0.999
        Decay of the running average, in (0, 1).
    reset_avg : float, default 0.3
        Value ``avg`` is set to after each advance; must be >= ``threshold`` (otherwise the
        level would advance at every sequence start).
    max_drop : int, default 4
        ``U`` is uniform on ``{0, ..., max_drop}`` (>= 0).
    """

    def __init__(self, level=1, avg=1.0, threshold=0.15, decay=0.999, reset_avg=0.3, max_drop=4):
        self.level = check_positive_int(level, "level")
        self.avg = _check_real(avg, "avg")
        self.threshold = _check_real(threshold, "threshold")
        self.decay = _check_real(decay, "decay")
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"decay must lie strictly between 0 and 1 (the paper uses 0.999), got {self.decay}")
        self.reset_avg = _check_real(reset_avg, "reset_avg")
        if self.reset_avg < self.threshold:
            raise ValueError(f"reset_avg ({self.reset_avg}) must be >= threshold ({self.threshold}); otherwise the"
                             " level would advance at every sequence start (the paper uses 0.3 and 0.15)")
        self.max_drop = check_positive_int(max_drop, "max_drop", minimum=0)

    def update(self, mean_ce_bits):
        """Fold one step's batch-mean cross-entropy (bits) into ``avg`` and return the new ``avg``.

        ``avg ← decay·avg + (1 − decay)·mean_ce_bits``.
        """
        ce = _check_real(mean_ce_bits, "mean_ce_bits",
                         " (the batch-mean cross-entropy in bits of the step just taken;"
                         " a NaN usually means training diverged)")
        if ce < 0:
            raise ValueError(f"mean_ce_bits must be >= 0 (a cross-entropy), got {ce}")
        self.avg = self.decay * self.avg + (1.0 - self.decay) * ce
        return self.avg

    def maybe_advance(self):
        """Apply the advance rule at a sequence start; return True when the level went up.

        ``if avg < threshold: level ← level + 1, avg ← reset_avg``.
        """
        if self.avg < self.threshold:
            self.level += 1
            self.avg = self.reset_avg
            return True
        return False

    def length_for(self, u):
        """Sequence length for a drawn drop ``u``: ``T = max(1, level − u)``."""
        return max(1, self.level - int(u))

    def draw_length(self, rng):
        """Draw ``U`` uniformly from ``{0, ..., max_drop}`` with ``rng`` and return ``max(1, level − U)``."""
        return self.length_for(rng.integers(0, self.max_drop + 1))

    def config(self):
        """The fixed hyperparameters as a dict (not level/avg)."""
        return {"threshold": self.threshold, "decay": self.decay, "reset_avg": self.reset_avg,
                "max_drop": self.max_drop}

    def __repr__(self):
        return (f"CopyCurriculum(level={self.level}, avg={self.avg!r}, threshold={self.threshold!r},"
                f" decay={self.decay!r}, reset_avg={self.reset_avg!r}, max_drop={self.max_drop})")


class CopyTask:
    """``batch`` streams of copy-task sequences under the paper's curriculum.

    Each call to :meth:`next` advances every stream by one step. A stream whose sequence has
    ended starts a new one in that call: the curriculum's advance rule is checked first
    (:meth:`CopyCurriculum.maybe_advance`), then ``U ~ U{0..max_drop}`` and the ``T`` bits are
    drawn from the task's generator, streams in order ``b = 0..B-1``. After the step the caller
    reports the batch-mean cross-entropy in bits with :meth:`report`.

    Parameters
    ----------
    batch : int
        Number of independent streams ``B`` (>= 1).
    seed : int or None, default 0
        Seed of ``numpy.random.default_rng``, the only source of randomness.
    level, threshold, decay, reset_avg, max_drop
        Curriculum settings, see :class:`CopyCurriculum` (paper values are the defaults).
    avg : float, default 1.0
        Starting running average.

    Attributes
    ----------
    n_symbols : int
        4; inputs are one-hot of width 4 and targets are class ids in 0..3.
    level : int
        The curriculum level ``T̄`` ("length reached").
    avg : float
        The running average of the batch-mean cross-entropy in bits.
    curriculum : CopyCurriculum

    Examples
    --------
    >>> task = CopyTask(batch=2, seed=0)
    >>> x, y, reset = task.next()
    >>> x.shape, y.shape, reset.tolist()
    ((2, 4), (2,), [True, True])
    >>> task.report(1.0)
    """

    n_symbols = N_SYMBOLS

    def __init__(self, batch, seed=0, level=1, threshold=0.15, decay=0.999, reset_avg=0.3, max_drop=4,
                 avg=1.0):
        self.batch = check_positive_int(batch, "batch")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}")
            if seed < 0:
                raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
        self.seed = seed
        self.curriculum = CopyCurriculum(level=level, avg=avg, threshold=threshold, decay=decay,
                                         reset_avg=reset_avg, max_drop=max_drop)
        self.rng = np.random.default_rng(seed)
        self._bits = [np.zeros(0, dtype=np.int64) for _ in range(self.batch)]
        self._inputs = [np.zeros(0, dtype=np.int64) for _ in range(self.batch)]
        self._targets = [np.zeros(0, dtype=np.int64) for _ in range(self.batch)]
        self._pos = [0] * self.batch
        self._eye = np.eye(N_SYMBOLS, dtype=np.float64)
        self.steps = 0

    # -- curriculum state, exposed as plain attributes -------------------------------------
    @property
    def level(self):
        return self.curriculum.level

    @level.setter
    def level(self, value):
        self.curriculum.level = check_positive_int(value, "level")

    @property
    def avg(self):
        return self.curriculum.avg

    @avg.setter
    def avg(self, value):
        self.curriculum.avg = _check_real(value, "avg")

    @property
    def lengths(self):
        """Length parameter ``T`` of each stream's current sequence (0 before the first step)."""
        return np.array([b.size for b in self._bits], dtype=np.int64)

    # -- stepping ---------------------------------------------------------------------------
    def _start_sequence(self, b):
        self.curriculum.maybe_advance()
        t = self.curriculum.draw_length(self.rng)
        bits = self.rng.integers(0, 2, size=t).astype(np.int64)
        self._bits[b] = bits
        self._inputs[b], self._targets[b] = copy_sequence(bits)
        self._pos[b] = 0

    def next(self):
        """Advance every stream by one step.

        Returns
        -------
        x : ndarray of float64, shape (B, 4)
            One-hot input symbol of each stream.
        y : ndarray of int64, shape (B,)
            Target symbol of each stream.
        reset : ndarray of bool, shape (B,)
            True where this step is the first of a new sequence: reset that stream's state
            and influence to zero before processing ``x``.
        """
        reset = np.zeros(self.batch, dtype=np.bool_)
        xi = np.empty(self.batch, dtype=np.int64)
        y = np.empty(self.batch, dtype=np.int64)
        for b in range(self.batch):
            if self._pos[b] >= self._inputs[b].size:
                self._start_sequence(b)
                reset[b] = True
            p = self._pos[b]
            xi[b] = self._inputs[b][p]
            y[b] = self._targets[b][p]
            self._pos[b] = p + 1
        self.steps += 1
        return self._eye[xi], y, reset

    def report(self, mean_ce_bits):
        """Update the running average with the batch-mean cross-entropy (bits) of the last step.

        ``avg ← decay·avg + (1 − decay)·mean_ce_bits``. Call once after each :meth:`next`.
        """
        self.curriculum.update(mean_ce_bits)

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to continue bit-identically, as JSON-serialisable plain Python values.

        Keys: ``version``, ``batch``, ``config`` (curriculum hyperparameters), ``level``, ``avg``,
        ``steps``, ``rng`` (``Generator.bit_generator.state``), ``bits`` (each stream's current
        sequence, a list of 0/1 lists) and ``pos`` (each stream's position in it).
        """
        return {
            "version": _STATE_VERSION,
            "batch": self.batch,
            "config": self.curriculum.config(),
            "level": int(self.level),
            "avg": float(self.avg),
            "steps": int(self.steps),
            "rng": _copy.deepcopy(self.rng.bit_generator.state),
            "bits": [[int(v) for v in b] for b in self._bits],
            "pos": [int(p) for p in self._pos],
        }

    def load_state_dict(self, d):
        """Restore a state produced by :meth:`state_dict` of a task built with the same settings."""
        if not isinstance(d, dict):
            raise TypeError(f"d must be a dict from CopyTask.state_dict(), got {type(d).__name__}")
        missing = {"version", "batch", "config", "level", "avg", "rng", "bits", "pos"} - set(d)
        if missing:
            raise ValueError(f"d is not a CopyTask state (missing keys {sorted(missing)})")
        if d["version"] != _STATE_VERSION:
            raise ValueError(f"d has state version {d['version']}, this code reads version {_STATE_VERSION}")
        if d["batch"] != self.batch:
            raise ValueError(f"the state was saved with batch={d['batch']} but this task has batch={self.batch};"
                             " build the task with the saved batch")
        if dict(d["config"]) != self.curriculum.config():
            raise ValueError(f"the state was saved with curriculum settings {d['config']} but this task has"
                             f" {self.curriculum.config()}; build the task with the saved settings")
        if len(d["bits"]) != self.batch or len(d["pos"]) != self.batch:
            raise ValueError("d['bits'] and d['pos'] must each have one entry per stream")
        bits, inputs, targets, pos = [], [], [], []
        for b, (seq, p) in enumerate(zip(d["bits"], d["pos"])):
            seq = np.asarray(seq, dtype=np.int64).reshape(-1)
            if seq.size:
                i, t = copy_sequence(seq)
            else:
                i = t = np.zeros(0, dtype=np.int64)
            if not 0 <= int(p) <= i.size:
                raise ValueError(f"d['pos'][{b}] = {p} lies outside stream {b}'s sequence of {i.size} steps")
            bits.append(seq)
            inputs.append(i)
            targets.append(t)
            pos.append(int(p))
        try:
            bit_gen = getattr(np.random, d["rng"]["bit_generator"])()
            bit_gen.state = _copy.deepcopy(d["rng"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"d['rng'] is not a numpy bit-generator state: {exc}") from None
        rng = np.random.Generator(bit_gen)
        self.level = d["level"]
        self.avg = d["avg"]
        self.steps = int(d.get("steps", 0))
        self.rng = rng
        self._bits, self._inputs, self._targets, self._pos = bits, inputs, targets, pos

    def __repr__(self):
        return f"CopyTask(batch={self.batch}, seed={self.seed}, level={self.level}, avg={self.avg:.4g})"


class CopyTraining(TrainingTask):
    """``oknumba train copy``: :class:`CopyTask` behind the task protocol
    (:mod:`oknumba.tasks.base`); metrics ``level`` (the curriculum's T̄) and ``avg``."""

    name = "copy"
    help = "string memorisation with the paper's curriculum; prints the level reached"
    description = ("Train on the copy (string memorisation) task with the paper's curriculum"
                   " and print the level reached. The defaults learn visibly in about a"
                   " minute on two cores.")
    #: a small RHN that visibly learns in about a minute on two cores (measured level 12–13
    #: after 50k steps at ≈ 1.2 ms/step); lr 3e-3 instead of the paper's 10^-3.5, which
    #: reaches only level 4 in 30k steps at this size
    defaults = dict(hidden=32, rank=8, batch=8, lr=3e-3, steps=50000)
    metrics = ("level", "avg")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.source = CopyTask(cfg["batch"], seed=cfg["seed"])
        self.n_in = self.n_out = CopyTask.n_symbols

    def next(self):
        return self.source.next()

    def observe(self, loss_bits):
        self.source.report(loss_bits)

    def _metrics(self):
        return {"level": int(self.source.level), "avg": float(self.source.avg)}

    def live_info(self, mean_loss_bits):
        return self._metrics()

    def record(self, loss_bits, evaluation):
        return self._metrics()

    def summary(self, last_evaluation):
        return self._metrics()

    def state_dict(self):
        return self.source.state_dict()

    def load_state_dict(self, state):
        self.source.load_state_dict(state)

    @classmethod
    def result_line(cls, summary):
        return (f"copy task: level reached {summary['level']} after {summary['steps']} steps"
                f" ({summary['wall_seconds']:.1f} s)")
