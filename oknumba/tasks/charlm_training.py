"""``oknumba train charlm``: character-level language modelling behind the task protocol
(:mod:`oknumba.tasks.base`).

Training streams and evaluation are those of :mod:`oknumba.tasks.charlm`: ``batch`` streams
over the training text, state and influence reset every ``reset_every`` characters;
every ``eval_every`` steps (and at the end) the model is evaluated on the validation text (or
its first ``eval_chars`` characters) with the state carried through it, and the run reports
bits per character (``valid_bpc``) beside the training loss (``train_bpc``).
"""
from .._argtypes import positive_int
from .._validate import check_positive_int
from .base import TrainingTask
from .charlm import bits_per_char, load_corpus


#: the largest fraction of evaluation symbols outside the training vocabulary taken silently
MAX_UNKNOWN_FRACTION = 0.05


class CharLMTraining(TrainingTask):
    """Next-character prediction with a validation bits/char metric."""

    name = "charlm"
    help = "next-character prediction; prints validation bits/char"
    description = ("Train a character-level language model; evaluate bits/char on the"
                   " validation text carrying the state through it without resets.")
    #: the paper's setting scaled down (n 128 instead of 256)
    defaults = dict(hidden=128, rank=8, batch=32, lr=10 ** -3.5, steps=100000, eval_every=10000,
                    eval_chars=None, reset_every=100, train=None, valid=None, allow_unknown=False)
    identity_keys = ("reset_every", "eval_every", "eval_chars")
    path_keys = ("train", "valid")
    metrics = ("valid_bpc", "train_bpc")

    @classmethod
    def add_arguments(cls, group, default_text):
        group.add_argument("--train", metavar="PATH", help="training text: plain UTF-8, Mikolov's ptb.char.*.txt or"
                           " an .npy of ids, optionally .gz (required for a new run; no default)")
        group.add_argument("--valid", metavar="PATH", help="evaluation text, same formats (required for a new run;"
                           " no default)")
        group.add_argument("--reset-every", type=positive_int,
                           help=f"reset state and influence every N training steps (default: {default_text('reset_every')})")
        group.add_argument("--eval-every", type=positive_int,
                           help=f"evaluate valid bits/char every N steps and at the end (default: {default_text('eval_every')})")
        group.add_argument("--eval-chars", type=positive_int,
                           help="evaluate on the first N characters only, for speed (default: the whole valid text)")
        group.add_argument("--allow-unknown", action="store_const", const=True,
                           help=f"evaluate even if more than {MAX_UNKNOWN_FRACTION * 100:g}%% of the evaluation symbols are"
                                " not in the training text (mapped to <unk>); by default such a mismatch is refused"
                                " (default: off)")

    @classmethod
    def check_config(cls, cfg):
        for key in ("eval_every", "reset_every", "eval_chars"):
            if key != "eval_chars" or cfg.get(key) is not None:
                check_positive_int(cfg.get(key), key)
        if not cfg.get("train"):
            raise ValueError("the charlm task needs a training text (--train PATH)")
        if not cfg.get("valid"):
            raise ValueError("the charlm task needs an evaluation text (--valid PATH)")

    @classmethod
    def result_line(cls, summary):
        return (f"charlm: validation {summary['valid_bpc']:.4f} bits/char after {summary['steps']} steps"
                f" ({summary['wall_seconds']:.1f} s)")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.corpus = load_corpus(cfg["train"], cfg["valid"])
        n_valid = self.corpus.valid_ids.size
        if self.corpus.n_unknown > MAX_UNKNOWN_FRACTION * n_valid and not cfg.get("allow_unknown"):
            raise ValueError(
                f"{self.corpus.n_unknown} of the {n_valid} symbols of {cfg['valid']}"
                f" ({self.corpus.n_unknown / n_valid:.1%}) do not occur in {cfg['train']}: the two texts do not"
                " match (e.g. word-level and character-level Penn Treebank files); give matching files, or"
                " --allow-unknown to evaluate with those symbols mapped to <unk>")
        self.n_in = self.n_out = self.corpus.vocab.size
        self.source = self.corpus.train_streams(cfg["batch"], reset_every=cfg["reset_every"])
        ids = self.corpus.valid_ids
        self.eval_ids = ids if cfg["eval_chars"] is None else ids[:cfg["eval_chars"] + 1]
        if self.eval_ids.size < 2:
            raise ValueError("the evaluation text must hold at least 2 symbols")

    def next(self):
        return self.source.next()

    def live_info(self, mean_loss_bits):
        return {} if mean_loss_bits is None else {"train_bpc": mean_loss_bits}

    def evaluation_due(self, step, total):
        return step % self.cfg["eval_every"] == 0 or step == total

    def evaluation_message(self, step):
        return f"evaluating on {self.eval_ids.size - 1} characters at step {step}"

    def evaluate(self, model, should_stop):
        from ..functional import stream_loss

        state, total, count = None, 0.0, 0
        for xs, ys in self.corpus.eval_chunks(chunk_len=1000, streams=1, ids=self.eval_ids):
            nats, n, state = stream_loss(model, xs, ys, state=state)
            total += nats
            count += n
            if should_stop():
                return None
        return {"valid_bpc": bits_per_char(total, count)}

    def record(self, loss_bits, evaluation):
        return {"train_bpc": loss_bits, "valid_bpc": None if evaluation is None else evaluation["valid_bpc"]}

    def summary(self, last_evaluation):
        return {"valid_bpc": None if last_evaluation is None else last_evaluation["valid_bpc"],
                "eval_chars": int(self.eval_ids.size - 1)}

    def config_extra(self):
        return {"corpus": self.corpus.summary(), "vocab": self.corpus.vocab.to_dict()}

    def check_resume(self, doc):
        if self.corpus.vocab.to_dict() != doc.get("vocab"):
            raise ValueError(f"the corpus at {self.cfg['train']} / {self.cfg['valid']} no longer gives the"
                             " vocabulary stored in config.json; the text files changed")

    def state_dict(self):
        return self.source.state_dict()

    def load_state_dict(self, state):
        self.source.load_state_dict(state)
