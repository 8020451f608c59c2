"""The task protocol: what a training task provides to ``oknumba train`` (the task-agnostic
loop in :mod:`oknumba.training`), and the task registry.

A task is a :class:`TrainingTask` subclass registered once (:func:`register_task`); then
``oknumba train NAME`` exists with the task's own options, and runs, checkpoints and resumes
like the built-in ``copy`` and ``charlm``. Per step the loop asks the task for the next batch
``(x (B, n_in), y (B,), reset (B,) bool)``, trains on it and reports the step's mean loss
(bits) back; at each log interval it writes the task's metric fields to ``metrics.jsonl``, at
the end its summary fields to ``summary.json``. Everything the task needs to continue
bit-identically goes through :meth:`state_dict` / :meth:`load_state_dict` (stored in the
checkpoint). Settings are plain JSON values in the run's ``config.json``.
"""

#: task name -> TrainingTask subclass, in registration order
TASKS = {}


class TrainingTask:
    """Base class of a training task (the protocol; see the module docstring).

    Class attributes
    ----------------
    name : str
        ``oknumba train NAME``.
    help, description : str
        One line for ``oknumba train --help``; a paragraph for ``oknumba train NAME --help``.
    defaults : dict
        The task's settings besides the common ones (cell, hidden, method, …), with their
        defaults; a value may also override a common default (e.g. ``lr``).
    identity_keys : tuple of str
        Task settings that determine the numbers a run produces (must match on resume).
    path_keys : tuple of str
        Settings that name files (stored as absolute paths).
    metrics : tuple of str
        The keys the task adds to each ``metrics.jsonl`` record; the first is its headline
        metric (``oknumba plot --metric auto``).
    """

    name = None
    help = ""
    description = ""
    defaults = {}
    identity_keys = ()
    path_keys = ()
    metrics = ()

    # -- configuration (class level) --------------------------------------------------------
    @classmethod
    def add_arguments(cls, group, default_text):
        """Add the task's own command-line options to the argparse ``group``;
        ``default_text(key)`` formats a default for the help text."""

    @classmethod
    def check_config(cls, cfg):
        """Raise ``ValueError`` (or ``TypeError``) naming the setting if ``cfg`` is not usable
        by this task."""

    @classmethod
    def result_line(cls, summary):
        """The final line ``oknumba train`` prints (from ``summary.json``)."""
        return f"{cls.name}: {summary['steps']} steps ({summary['wall_seconds']:.1f} s)"

    # -- one run ----------------------------------------------------------------------------
    def __init__(self, cfg):
        """Build the task for config ``cfg``; set ``n_in`` and ``n_out`` (the model's sizes).
        Raise ``ValueError``/``OSError`` with a message for unusable settings or files."""
        self.cfg = cfg
        self.n_in = self.n_out = None

    def next(self):
        """The next batch ``(x (B, n_in) float, y (B,) int (−1 = no target), reset (B,) bool
        or None)``."""
        raise NotImplementedError

    def observe(self, loss_bits):
        """The step's mean cross-entropy (bits) over the streams with a target."""

    def live_info(self, mean_loss_bits):
        """Metric values for the progress line (``mean_loss_bits``: of the current interval,
        None before the first step)."""
        return {}

    def evaluation_due(self, step, total):
        """Whether :meth:`evaluate` runs after ``step`` (its result goes into that record)."""
        return False

    def evaluation_message(self, step):
        """The progress line shown while :meth:`evaluate` runs."""
        return f"evaluating at step {step}"

    def evaluate(self, model, should_stop):
        """Evaluate ``model`` (frozen); returns metric fields. ``should_stop()`` turns True
        when a signal asks the run to stop: a long evaluation should check it and return
        None to abandon."""
        return {}

    def record(self, loss_bits, evaluation):
        """The task's fields of a ``metrics.jsonl`` record: ``loss_bits`` is the interval's
        mean loss (None if empty), ``evaluation`` the dict :meth:`evaluate` returned at this
        step (None if none ran)."""
        return {}

    def summary(self, last_evaluation):
        """The task's fields of ``summary.json`` (``last_evaluation``: the latest
        :meth:`evaluate` result, None if none ran)."""
        return {}

    def config_extra(self):
        """Extra entries for ``config.json`` (e.g. the corpus summary and vocabulary)."""
        return {}

    def check_resume(self, doc):
        """Raise ``ValueError`` if the stored ``config.json`` (``doc``) no longer fits the
        task as rebuilt (e.g. the training text changed)."""

    def state_dict(self):
        """JSON-able state needed to continue bit-identically."""
        return {}

    def load_state_dict(self, state):
        """Inverse of :meth:`state_dict`."""


def register_task(cls):
    """Add a :class:`TrainingTask` subclass under its ``name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, TrainingTask)):
        raise TypeError(f"register_task takes a TrainingTask subclass, got {cls!r}")
    if not isinstance(cls.name, str) or not cls.name.isidentifier():
        raise ValueError(f"{cls.__name__}.name must be an identifier-like string, got {cls.name!r}")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is already registered ({TASKS[cls.name].__name__})")
    TASKS[cls.name] = cls
    return cls


__all__ = ["TrainingTask", "TASKS", "register_task"]
