"""The ``oknumba`` command line and the run machinery behind it (``oknumba/runner.py``).

Tiny models throughout; runs are in-process through ``cli.main`` except the real-SIGINT test.
"""
import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import read_json, same_params
from conftest import run_params as _params
import oknumba
from oknumba import cli, runner

TINY = ["--hidden", "6", "--rank", "2", "--batch", "3", "--quiet"]
COPY_RECORD_KEYS = {"step", "wall_seconds", "steps_per_s", "loss_bits", "level", "avg"}
CHARLM_RECORD_KEYS = {"step", "wall_seconds", "steps_per_s", "loss_bits", "train_bpc", "valid_bpc"}
SUMMARY_KEYS = {"task", "method", "steps", "wall_seconds", "cell", "hidden", "rank", "batch", "seed",
                "final_loss_bits", "status"}
TIMING_KEYS = ("wall_seconds", "steps_per_s", "eval_seconds")


def _records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _json(run_dir, name):
    return read_json(os.path.join(run_dir, name))


def _same_params(a, b):
    assert set(_params(a)) == {"W", "V"}
    return same_params(a, b)


def _untimed(recs):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    (d / "train.txt").write_text(" ".join(rng.choice(words, 400)) + "\n")
    (d / "valid.txt").write_text(" ".join(rng.choice(words, 40)) + " zebra\n")  # 'z', 'b' unseen
    return str(d / "train.txt"), str(d / "valid.txt")


COPY_ARGS = ["train", "copy", "--steps", "400", "--log-every", "100", "--checkpoint-every", "150"] + TINY


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "copy")
    assert cli.main(COPY_ARGS + ["--out", out]) == 0
    return out


def _charlm_args(corpus):
    return ["train", "charlm", "--train", corpus[0], "--valid", corpus[1], "--steps", "300", "--log-every", "100",
            "--eval-every", "150", "--checkpoint-every", "100", "--lr", "3e-3"] + TINY


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory, corpus):
    out = str(tmp_path_factory.mktemp("runs") / "charlm")
    assert cli.main(_charlm_args(corpus) + ["--out", out]) == 0
    return out


# ------------------------------------------------------------------------------------------------
# help
# ------------------------------------------------------------------------------------------------
def _subparsers(parser, prefix=()):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, prefix + (name,))


def test_every_option_has_help_with_default():
    for path, p in _subparsers(cli.build_parser()):
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)) \
                    or not action.option_strings:
                continue
            assert action.help and ("(default:" in action.help or "(required" in action.help), \
                (path, action.option_strings)


@pytest.mark.parametrize("argv", [[], ["train"], ["train", "copy"], ["train", "charlm"], ["noise"], ["plot"],
                                  ["demo"]])
def test_help_works(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: oknumba" in out
    if argv[:2] == ["train", "copy"]:
        d = runner.COPY_DEFAULTS
        assert f"(default: {d['steps']})" in out and "--resume" in out and "--checkpoint-every" in out


# ------------------------------------------------------------------------------------------------
# training runs
# ------------------------------------------------------------------------------------------------
def test_copy_run_writes_documented_files(copy_run, capsys):
    for name in ("config.json", "metrics.jsonl", "summary.json", "params.npz", "checkpoint.npz"):
        assert os.path.exists(os.path.join(copy_run, name)), name
    cfg = _json(copy_run, "config.json")
    assert cfg["task"] == "copy" and cfg["hidden"] == 6 and cfg["rank"] == 2 and cfg["steps"] == 400
    assert cfg["lr"] == runner.COPY_DEFAULTS["lr"] and cfg["n_in"] == cfg["n_out"] == 4
    recs = _records(copy_run)
    assert [r["step"] for r in recs] == [100, 200, 300, 400]
    assert all(COPY_RECORD_KEYS <= set(r) for r in recs)
    assert all(r["steps_per_s"] > 0 and r["loss_bits"] >= 0 for r in recs)
    s = _json(copy_run, "summary.json")
    assert SUMMARY_KEYS | {"level"} <= set(s)
    assert s["steps"] == 400 and s["status"] == "complete" and s["level"] >= 1
    assert s["final_loss_bits"] == recs[-1]["loss_bits"]
    p = _params(copy_run)
    assert p["W"].shape == (4 + 6 + 1, 2 * 6) and p["V"].shape == (7, 4)


def test_copy_prints_level(tmp_path, capsys):
    assert cli.main(["train", "copy", "--steps", "50", "--out", str(tmp_path / "r")] + TINY) == 0
    out = capsys.readouterr().out
    assert "copy task: level reached 1 after 50 steps" in out


def test_charlm_run_writes_documented_files(charlm_run):
    cfg = _json(charlm_run, "config.json")
    assert cfg["task"] == "charlm" and os.path.isabs(cfg["train"])
    vocab = cfg["vocab"]
    assert vocab["unk"] is True and vocab["size"] == len(vocab["symbols"]) + 1 == cfg["n_in"]
    recs = _records(charlm_run)
    assert [r["step"] for r in recs] == [100, 150, 200, 300]
    assert all(CHARLM_RECORD_KEYS <= set(r) for r in recs)
    assert [r["valid_bpc"] is not None for r in recs] == [False, True, False, True]
    assert all(r["train_bpc"] == r["loss_bits"] for r in recs)
    s = _json(charlm_run, "summary.json")
    assert SUMMARY_KEYS | {"valid_bpc"} <= set(s)
    assert s["valid_bpc"] == recs[-1]["valid_bpc"] and 0 < s["valid_bpc"] < 6
    assert s["eval_chars"] == cfg["corpus"]["n_valid"] - 1


def test_charlm_eval_chars_and_errors(tmp_path, corpus, capsys):
    out = str(tmp_path / "r")
    assert cli.main(["train", "charlm", "--train", corpus[0], "--valid", corpus[1], "--steps", "20",
                     "--eval-chars", "50", "--out", out] + TINY) == 0
    assert _json(out, "summary.json")["eval_chars"] == 50
    assert "validation" in capsys.readouterr().out
    assert cli.main(["train", "charlm", "--train", corpus[0], "--steps", "20"] + TINY) == 2
    assert "--valid" in capsys.readouterr().err
    assert cli.main(["train", "charlm", "--train", str(tmp_path / "nope.txt"), "--valid", corpus[1]] + TINY) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_bad_settings_are_refused(tmp_path, copy_run, capsys):
    assert cli.main(["train", "copy", "--method", "tbptt", "--out", str(tmp_path / "a")] + TINY) == 2
    assert "truncation" in capsys.readouterr().err
    assert cli.main(["train", "copy", "--out", copy_run] + TINY) == 2
    assert "already holds a run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "copy", "--lr", "-1"])
    assert e.value.code == 2


def test_user_mistakes_end_in_one_line_not_a_traceback(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["train", "copy", "--steps", "5", "--out", str(afile)] + TINY) == 2
    err = capsys.readouterr().err
    assert err.startswith("oknumba: error:") and str(afile) in err and "Traceback" not in err
    assert cli.main(["train", "copy", "--steps", "5", "--out", "/proc/oknumba-nope/x"] + TINY) == 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:                 # a negative exponent number reaches its check
        cli.main(["train", "copy", "--lr", "-1e-3"])
    assert e.value.code == 2
    assert "expected a positive number, got '-1e-3'" in capsys.readouterr().err


def test_a_bug_prints_the_traceback_and_asks_for_a_report(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "demo", boom)              # build_parser binds `demo` by name
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "this is a bug in oknumba" in err


def test_resume_with_the_original_command(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "r")
    cmd = ["train", "copy", "--steps", "30", "--hidden", "6", "--rank", "2", "--batch", "3", "--quiet",
           "--lr", "10^-3", "--out", out]
    monkeypatch.setenv(runner.STOP_ENV, "10")
    assert cli.main(cmd) == 130
    monkeypatch.delenv(runner.STOP_ENV)
    capsys.readouterr()
    assert cli.main(cmd + ["--hidden", "7", "--resume", out]) == 2       # a conflict, named as typed
    err = capsys.readouterr().err
    assert "--hidden 7 (the run has 6)" in err and "Traceback" not in err
    assert cli.main(cmd + ["--resume", str(tmp_path / "r" / ".")]) == 0  # equal values, --out = the folder
    assert _json(out, "summary.json")["status"] == "complete"
    assert cli.main(cmd + ["--resume", out, "--overwrite"]) == 2
    assert "give one" in capsys.readouterr().err


def test_diverged_run_is_recorded_and_has_one_way_on(tmp_path, capsys):
    out = str(tmp_path / "d")
    cmd = ["train", "copy", "--lr", "1e307", "--steps", "300", "--out", out] + TINY
    assert cli.main(cmd) == 2
    assert "diverged at step" in capsys.readouterr().err
    summary = _json(out, "summary.json")
    assert summary["status"] == "diverged" and summary["diverged_at_step"] >= 1
    assert cli.main(cmd[:-len(TINY)] + ["--resume", out] + TINY) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(cmd) == 2
    assert "--overwrite" in capsys.readouterr().err
    fixed = ["train", "copy", "--lr", "1e-3", "--steps", "20", "--out", out, "--overwrite"] + TINY
    assert cli.main(fixed) == 0
    assert _json(out, "summary.json")["status"] == "complete"
    assert _json(out, "config.json")["lr"] == pytest.approx(1e-3)


def test_charlm_refuses_mismatched_evaluation_text(tmp_path, corpus, capsys):
    valid = tmp_path / "other.txt"
    valid.write_text("ZZZ QQQ XXX " * 20)
    args = ["train", "charlm", "--train", corpus[0], "--valid", str(valid), "--steps", "5",
            "--out", str(tmp_path / "m")] + TINY
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "do not occur in" in err and "--allow-unknown" in err
    assert cli.main(args + ["--allow-unknown"]) == 0


def test_tbptt_and_no_clip_run(tmp_path):
    out = str(tmp_path / "t")
    assert cli.main(["train", "copy", "--method", "tbptt", "--truncation", "4", "--steps", "40", "--clip", "none",
                     "--lr", "10^-3", "--out", out] + TINY) == 0
    cfg = _json(out, "config.json")
    assert cfg["rank"] is None and cfg["truncation"] == 4 and cfg["clip"] is None
    assert cfg["lr"] == pytest.approx(1e-3)


def test_copy_task_learns():
    """A short OK run climbs the curriculum: level 1 → ≥ 3 in 4000 steps (seeds 0–5 all reach
    3 or 4; a model without memory stays at level 1)."""
    cfg = runner.make_config("copy", hidden=16, rank=4, batch=8, lr=1e-2, steps=4000, checkpoint_every=0)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        s = runner.train(cfg, d)
    assert s["level"] >= 3, s


# ------------------------------------------------------------------------------------------------
# interruption and resume
# ------------------------------------------------------------------------------------------------
def test_interrupt_and_resume_is_bit_identical_copy(tmp_path, copy_run, monkeypatch, capsys):
    out = str(tmp_path / "r")
    monkeypatch.setenv(runner.STOP_ENV, "237")
    assert cli.main(COPY_ARGS + ["--out", out]) == 130
    err = capsys.readouterr().err
    assert "step 237 of 400" in err and f"oknumba train copy --resume {out}" in err
    assert _json(out, "summary.json")["status"] == "interrupted"
    assert [r["step"] for r in _records(out)] == [100, 200]
    monkeypatch.delenv(runner.STOP_ENV)
    assert cli.main(["train", "copy", "--resume", out, "--quiet"]) == 0
    assert _same_params(out, copy_run)
    assert _untimed(_records(out)) == _untimed(_records(copy_run))
    s = _json(out, "summary.json")
    assert s["status"] == "complete" and s["level"] == _json(copy_run, "summary.json")["level"]


def test_resume_drops_records_after_checkpoint(tmp_path, copy_run, monkeypatch):
    """A run killed hard after its last checkpoint: records past it are dropped, not duplicated."""
    out = str(tmp_path / "r")
    cfg = runner.make_config("copy", hidden=6, rank=2, batch=3, steps=400, log_every=100, checkpoint_every=150)
    monkeypatch.setenv(runner.STOP_ENV, "300")
    with pytest.raises(runner.Interrupted):
        runner.train(cfg, out)
    monkeypatch.delenv(runner.STOP_ENV)
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:  # written after the checkpoint, then killed
        f.write('{"step": 400, "loss_bits": 9.0}\n{"step": 5')
    assert runner.resume(out)["steps"] == 400
    assert _same_params(out, copy_run)
    assert _untimed(_records(out)) == _untimed(_records(copy_run))


def test_interrupt_and_resume_is_bit_identical_charlm(tmp_path, corpus, charlm_run, monkeypatch):
    out = str(tmp_path / "r")
    monkeypatch.setenv(runner.STOP_ENV, "160")
    assert cli.main(_charlm_args(corpus) + ["--out", out]) == 130
    monkeypatch.delenv(runner.STOP_ENV)
    assert cli.main(["train", "charlm", "--resume", out, "--quiet"]) == 0
    assert _same_params(out, charlm_run)
    assert _untimed(_records(out)) == _untimed(_records(charlm_run))


def test_signal_during_evaluation_is_resumed_cleanly(tmp_path, corpus, charlm_run, monkeypatch, capsys):
    """SIGINT arriving inside an evaluation: the checkpoint is written without that step's
    record, and the resumed run evaluates and logs it, ending bit-identical."""
    import oknumba.functional

    real = oknumba.functional.stream_loss
    calls = []

    def interrupting(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the runner's handler only sets a flag
        return real(*a, **k)

    monkeypatch.setattr(oknumba.functional, "stream_loss", interrupting)
    out = str(tmp_path / "r")
    assert cli.main(_charlm_args(corpus) + ["--out", out]) == 130
    assert "step 150 of 300" in capsys.readouterr().err
    assert [r["step"] for r in _records(out)] == [100]
    monkeypatch.setattr(oknumba.functional, "stream_loss", real)
    assert cli.main(["train", "charlm", "--resume", out, "--quiet"]) == 0
    assert _same_params(out, charlm_run)
    assert _untimed(_records(out)) == _untimed(_records(charlm_run))


def test_sigint_writes_checkpoint_and_resume_matches(tmp_path, capsys):
    """A real SIGINT to a running ``python -m oknumba.cli``; then resume to a fixed total and
    compare with an uninterrupted run of that total."""
    out = str(tmp_path / "sig")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop(runner.STOP_ENV, None)
    args = ["train", "copy", "--steps", "10000000", "--log-every", "500", "--checkpoint-every", "200"] + TINY
    proc = subprocess.Popen([sys.executable, "-m", "oknumba.cli"] + args + ["--out", out], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(out, "checkpoint.npz")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr and "interrupted by SIGINT" in stderr
    stopped = _json(out, "summary.json")["steps"]
    assert stopped >= 200
    total = stopped + 333
    assert cli.main(["train", "copy", "--resume", out, "--steps", str(total), "--quiet"]) == 0
    ref = str(tmp_path / "ref")
    ref_args = [a if a != "10000000" else str(total) for a in args]
    assert cli.main(ref_args + ["--out", ref]) == 0
    assert _same_params(out, ref)
    assert _untimed(_records(out)) == _untimed(_records(ref))


def _truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def _flip_byte(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        i = data.index(b"params.W.npy")  # inside the zip, after the header: corrupt W's data
        j = i + 200
        data[j] ^= 0xFF
        f.seek(0)
        f.write(data)


@pytest.mark.parametrize("damage", [_truncate, _flip_byte])
def test_corrupt_checkpoint_is_refused(tmp_path, damage, capsys):
    out = str(tmp_path / "r")
    assert cli.main(COPY_ARGS + ["--out", out]) == 0
    damage(os.path.join(out, "checkpoint.npz"))
    capsys.readouterr()
    assert cli.main(["train", "copy", "--resume", out, "--steps", "500"]) == 2
    err = capsys.readouterr().err
    assert "refusing checkpoint" in err and "corrupt" in err and "Traceback" not in err


def test_mismatched_checkpoint_is_refused(tmp_path, copy_run, capsys):
    other = str(tmp_path / "other")
    assert cli.main(["train", "copy", "--steps", "150", "--checkpoint-every", "150", "--out", other,
                     "--hidden", "5", "--rank", "2", "--batch", "3", "--quiet"]) == 0
    target = str(tmp_path / "target")
    import shutil

    shutil.copytree(copy_run, target)
    shutil.copy(os.path.join(other, "checkpoint.npz"), os.path.join(target, "checkpoint.npz"))
    capsys.readouterr()
    assert cli.main(["train", "copy", "--resume", target, "--steps", "500"]) == 2
    err = capsys.readouterr().err
    assert "refusing checkpoint" in err and "n_hidden" in err and "Traceback" not in err
    # wrong task, changed setting, missing checkpoint, not a run folder
    assert cli.main(["train", "charlm", "--resume", target]) == 2
    assert "holds a copy run" in capsys.readouterr().err
    assert cli.main(["train", "copy", "--resume", target, "--hidden", "9"]) == 2
    assert "cannot change --hidden 9 (the run has 6)" in capsys.readouterr().err
    os.remove(os.path.join(target, "checkpoint.npz"))
    assert cli.main(["train", "copy", "--resume", target, "--steps", "500"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "--overwrite" in err
    assert cli.main(["train", "copy", "--resume", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# progress display
# ------------------------------------------------------------------------------------------------
class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_display_tty_and_plain():
    from oknumba.progress import TerminalProgress

    tty = _TTY()
    p = TerminalProgress("copy", stream=tty)
    assert p.interval is not None
    p.start(0, 100, {"level": 1, "avg": 1.0})
    p.first_step(3.5)                                     # compilation: noticed, left out
    p.update(10, 100, 123.0, {"level": 2, "avg": 0.5})
    p.record({"step": 20, "steps_per_s": 100.0, "level": 2, "avg": 0.4}, 100)
    p.close()
    text = tty.getvalue()
    assert "compiles the kernels" in text and "kernels ready after 3.5 s" in text
    assert "\r" in text and "20/100" in text and "level 2" in text and "ETA" in text
    plain = io.StringIO()
    p = TerminalProgress("lm", stream=plain)
    assert p.interval is None
    p.start(0, 100, {})
    p.first_step(0.01)                                    # cached kernels: no notice
    p.record({"step": 50, "steps_per_s": 10.0, "train_bpc": 2.5, "valid_bpc": 2.25}, 100)
    p.close()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and len(lines) == 2 and "valid 2.250 bpc" in lines[1]
    assert lines[1].endswith("ETA 0:05")                  # 50 steps left at the record's 10 steps/s


# ------------------------------------------------------------------------------------------------
# noise and plot
# ------------------------------------------------------------------------------------------------
def test_noise_prints_table(tmp_path, capsys):
    path = str(tmp_path / "noise.json")
    assert cli.main(["noise", "--hidden", "4", "--steps", "6", "--seeds", "4", "--methods", "uoro,kf,ok:2",
                     "--json", path]) == 0
    out = capsys.readouterr().out
    assert "infl. err" in out
    for label in ("uoro", "kf", "ok:2"):
        assert any(line.startswith(label + " ") for line in out.splitlines()), label
    with open(path) as f:
        doc = json.load(f)
    assert set(doc["results"]) == {"uoro", "kf", "ok:2"}
    assert len(doc["results"]["kf"]["influence"]) == 6
    assert cli.main(["noise", "--methods", "bptt", "--seeds", "2", "--steps", "3"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_plot_writes_png(tmp_path, copy_run, charlm_run, capsys):
    pytest.importorskip("matplotlib")
    png = str(tmp_path / "curves.png")
    assert cli.main(["plot", copy_run, copy_run, "--out", png]) == 0
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "ok:2" in capsys.readouterr().out
    png2 = str(tmp_path / "lm.png")
    assert cli.main(["plot", charlm_run, "--out", png2, "--metric", "train_bpc", "--x", "wall_seconds"]) == 0
    assert os.path.getsize(png2) > 1000
    assert cli.main(["plot", copy_run, charlm_run, "--out", png]) == 2  # different tasks need --metric
    assert cli.main(["plot", str(tmp_path), "--out", png]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    noext = str(tmp_path / "adir")                      # matplotlib adds .png: say so
    assert cli.main(["plot", copy_run, "--out", noext]) == 0
    assert f"wrote {noext}.png" in capsys.readouterr().out and os.path.exists(noext + ".png")


def test_plot_legend_formats_learning_rates():
    from oknumba.plot import _fmt_value

    assert _fmt_value("lr", 10 ** -3.5) == "lr=10^-3.5" and _fmt_value("lr", 3e-3) == "lr=0.003"


def test_plot_without_matplotlib(tmp_path, copy_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert cli.main(["plot", copy_run, "--out", str(tmp_path / "x.png")]) == 1
    assert "pip install oknumba[plot]" in capsys.readouterr().err


def test_demo_still_works(capsys):
    assert cli.main(["demo", "--hidden", "4", "--steps", "5", "--batch", "2"]) == 0
    assert "dW: max |rtrl - bptt|" in capsys.readouterr().out


def test_sample_prints_text_from_a_charlm_run(charlm_run, copy_run, capsys):
    assert cli.main(["sample", charlm_run, "--chars", "40", "--prime", "the ", "--seed", "3"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("the ") and len(text) == 44
    assert cli.main(["sample", charlm_run, "--chars", "40", "--prime", "the ", "--seed", "3"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == text          # seeded: the same text
    assert cli.main(["sample", copy_run, "--chars", "5"]) == 2      # no vocabulary
    assert "no vocabulary" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# stacked layers
# ------------------------------------------------------------------------------------------------
STACK = ["--layers", "2", "--cell", "rhn,gru", "--hidden", "5,4", "--rank", "2", "--batch", "2", "--quiet"]


@pytest.mark.parametrize("task", ["copy", "charlm"])
def test_stacked_run_checkpoints_and_resumes_bit_identically(tmp_path, corpus, monkeypatch, capsys, task):
    args = ["train", task, "--steps", "240", "--log-every", "60", "--checkpoint-every", "90"] + STACK
    if task == "charlm":
        args += ["--train", corpus[0], "--valid", corpus[1], "--eval-every", "120"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    assert cli.main(args + ["--out", whole]) == 0
    cfg = _json(whole, "config.json")
    assert cfg["layers"] == 2 and cfg["cell"] == ["rhn", "gru"] and cfg["hidden"] == [5, 4]
    assert set(_params(whole)) == {"W0", "W1", "V"}
    monkeypatch.setenv(runner.STOP_ENV, "131")
    assert cli.main(args + ["--out", cut]) == 130
    monkeypatch.delenv(runner.STOP_ENV)
    assert cli.main(args + ["--resume", cut]) == 0          # the original command + --resume
    assert same_params(cut, whole)
    assert _untimed(_records(cut)) == _untimed(_records(whole))
    capsys.readouterr()
    assert cli.main(args[:2] + ["--resume", cut, "--hidden", "5,5"]) == 2
    assert "hidden" in capsys.readouterr().err
    model = oknumba.load_model(whole)
    assert model.layers == 2 and model.n_hidden == [5, 4]
    if task == "charlm":
        assert cli.main(["sample", whole, "--chars", "30", "--seed", "1"]) == 0
        assert len(capsys.readouterr().out.rstrip("\n")) == 30


def test_stack_options_are_checked_on_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "x")
    for bad, says in ((["--layers", "3", "--hidden", "5,4"], "one entry for each of the 3 layers"),
                      (["--cell", "rhn,nope"], "invalid choice"),
                      (["--hidden", "5,0"], "5,0"),
                      (["--layers", "2", "--cell", "gru", "--depth", "2"], "no depth option")):
        try:
            code = cli.main(["train", "copy", "--steps", "10", "--out", out] + bad)
        except SystemExit as e:             # refused by the argument parser
            code = e.code
        assert code == 2, bad
        assert says in capsys.readouterr().err, bad


def test_saved_stack_predicts_identically(tmp_path):
    model = oknumba.RNN(["lstm", "rhn"], 3, [4, 5], 2, seed=1, depth=[1, 2], readout="linear")
    xs = np.random.default_rng(0).normal(size=(6, 2, 3))
    out, state = model.predict(xs)
    path = model.save(tmp_path / "m")
    again = oknumba.load_model(path)
    assert repr(again) == repr(model) and again.cell.depth == (1, 2)
    out2, state2 = again.predict(xs)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(state, state2)
    cont, _ = model.predict(xs[3:], state=model.predict(xs[:3])[1])
    np.testing.assert_allclose(cont, out[3:], rtol=1e-13, atol=1e-15)
