"""A task defined outside the package, through the task protocol (one class, one
registration): ``oknumba train NAME`` appears with its own option, trains, checkpoints and
resumes bit-identically, and ``oknumba plot`` finds its headline metric."""
import json

import numpy as np
import pytest

from oknumba import cli
from oknumba.tasks import TASKS, TrainingTask, register_task


class EchoTask(TrainingTask):
    """Repeat the previous symbol: x_t one-hot of s_t, target s_{t-1}; resets every period."""

    name = "echo"
    help = "repeat the previous symbol"
    description = "A toy task: the target is the previous input symbol."
    defaults = dict(hidden=6, rank=2, batch=2, lr=1e-2, steps=40, period=9, log_every=10,
                    checkpoint_every=10)
    identity_keys = ("period",)
    metrics = ("error_rate",)
    SYMBOLS = 3

    @classmethod
    def add_arguments(cls, group, default_text):
        group.add_argument("--period", type=int, help=f"steps between resets (default: {default_text('period')})")

    @classmethod
    def check_config(cls, cfg):
        if not isinstance(cfg["period"], int) or cfg["period"] < 2:
            raise ValueError(f"period must be an integer >= 2, got {cfg['period']!r}")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.n_in = self.n_out = self.SYMBOLS
        self.rng = np.random.default_rng(cfg["seed"])
        self.prev = np.full(cfg["batch"], -1)
        self.t = 0
        self.losses = []

    def next(self):
        B = self.cfg["batch"]
        reset = np.full(B, self.t % self.cfg["period"] == 0)
        if reset[0]:
            self.prev[:] = -1
        s = self.rng.integers(0, self.SYMBOLS, size=B)
        x = np.eye(self.SYMBOLS)[s]
        y, self.prev = self.prev.copy(), s
        self.t += 1
        return x, y, reset

    def observe(self, loss_bits):
        self.losses.append(loss_bits)

    def record(self, loss_bits, evaluation):
        return {"error_rate": None if loss_bits is None else float(min(1.0, loss_bits / np.log2(3)))}

    def summary(self, last_evaluation):
        return {"final_error_rate": float(np.mean(self.losses[-10:])) if self.losses else None}

    def state_dict(self):
        return {"t": self.t, "prev": self.prev.tolist(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.t, self.prev = state["t"], np.array(state["prev"])
        self.rng.bit_generator.state = state["rng"]

    @classmethod
    def result_line(cls, summary):
        return f"echo: {summary['steps']} steps, error rate {summary['final_error_rate']:.3f}"


@pytest.fixture
def echo():
    register_task(EchoTask)           # the one change a new task needs
    yield "echo"
    TASKS.pop("echo", None)


def test_toy_task_trains_checkpoints_and_resumes_from_the_cli(echo, tmp_path, capsys, monkeypatch):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    base = ["train", echo, "--method", "kf", "--period", "7", "--quiet"]
    assert cli.main(base + ["--out", full]) == 0
    assert "echo: 40 steps, error rate" in capsys.readouterr().out
    summary = json.load(open(f"{full}/summary.json"))
    assert summary["task"] == echo and summary["status"] == "complete" and summary["steps"] == 40
    recs = [json.loads(line) for line in open(f"{full}/metrics.jsonl")]
    assert [r["step"] for r in recs] == [10, 20, 30, 40] and all("error_rate" in r for r in recs)
    assert json.load(open(f"{full}/config.json"))["period"] == 7

    monkeypatch.setenv("OKNUMBA_STOP_AFTER_STEP", "23")      # interrupted at step 23 ...
    assert cli.main(base + ["--out", part]) == 130
    monkeypatch.delenv("OKNUMBA_STOP_AFTER_STEP")
    assert cli.main(["train", echo, "--resume", part, "--quiet"]) == 0   # ... and resumed
    with np.load(f"{full}/params.npz") as a, np.load(f"{part}/params.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])

    from oknumba.plot import auto_metric
    assert auto_metric(echo) == "error_rate"


def test_toy_task_option_checks_and_help(echo, capsys):
    assert cli.main(["train", echo, "--period", "1", "--quiet", "--out", "/nonexistent/x"]) == 2
    assert "period must be an integer >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", echo, "--help"])
    assert "--period" in capsys.readouterr().out
