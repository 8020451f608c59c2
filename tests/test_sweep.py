"""``oknumba sweep`` (``oknumba/sweep/``): grid expansion, run folders written through Dask
futures, skipping finished runs, failed runs reported, a killed worker's run resumed
bit-identically. Tiny runs (n = 4, B = 2, tens of steps; uoro and tbptt, whose kernels compile
in seconds) on 2-worker LocalClusters; each worker process compiles or loads the kernels once.
The mechanism is method-agnostic (test_cli and test_sigkill cover resuming per method)."""
import io
import json
import logging
import os
import sys
import time

import pytest

distributed = pytest.importorskip("distributed")

from conftest import read_json as _json  # noqa: E402
from conftest import same_params as _same_params  # noqa: E402
from oknumba import cli, runner, sweep  # noqa: E402
from oknumba.run_folder import RUN_FILES  # noqa: E402

pytestmark = pytest.mark.slow

TINY = {"hidden": 4, "batch": 2}
TINY_ARGS = ["--hidden", "4", "--batch", "2"]
TIMING_KEYS = ("wall_seconds", "steps_per_s", "eval_seconds")


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker LocalCluster whose scheduler gives up on a task after one dead worker (so a
    killed worker ends the run's segment as failed instead of being retried)."""
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                 silence_logs=logging.ERROR, scheduler_kwargs={"allowed_failures": 0})
    client = distributed.Client(c)
    yield c, client
    client.close()
    c.close()


def _untimed_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in f if line.strip()]


# ------------------------------------------------------------------------------------------------
# the grid (no cluster)
# ------------------------------------------------------------------------------------------------
def test_seeds_ranges():
    assert sweep.parse_seeds("0-2") == [0, 1, 2]
    assert sweep.parse_seeds("0,3,7-8") == [0, 3, 7, 8]
    assert sweep.parse_seeds(5) == [5]
    assert sweep.parse_seeds(["1-2", 4]) == [1, 2, 4]
    for bad in ("2-0", "a", "0,0", "", "-1", True):
        with pytest.raises(sweep.SweepError):
            sweep.parse_seeds(bad)


def test_grid_from_a_toml_spec(tmp_path):
    (tmp_path / "train.txt").write_text("abc abc\n")
    (tmp_path / "valid.txt").write_text("abc\n")
    spec = tmp_path / "grid.toml"
    spec.write_text('steps = 30\nseeds = "0-1"\nhidden = 4\nout = "sw"\n'
                    '[[grid]]\ntask = "copy"\nmethods = ["ok:2", "kf", "tbptt"]\ntruncation = 5\nbatch = [2, 3]\n'
                    '[[grid]]\ntask = "charlm"\nmethods = "uoro"\ntrain = "train.txt"\nvalid = "valid.txt"\n'
                    'reset-every = 10\n')
    args = cli.build_parser().parse_args(["sweep", str(spec), "--lr", "1e-3"])
    runs, out = sweep.grid_from_args(args)
    names = [n for n, _ in runs]
    assert out == str(tmp_path / "sw")
    assert len(runs) == 3 * 2 * 2 + 2
    assert names[:2] == ["copy-ok2-seed0-batch2", "copy-ok2-seed1-batch2"]
    assert "copy-tbptt5-seed1-batch3" in names and "charlm-uoro-seed0" in names
    cfgs = dict(runs)
    assert cfgs["copy-kf-seed0-batch3"]["truncation"] is None and cfgs["copy-kf-seed0-batch3"]["batch"] == 3
    ch = cfgs["charlm-uoro-seed1"]
    assert ch["train"] == str(tmp_path / "train.txt") and ch["reset_every"] == 10 and ch["seed"] == 1
    assert all(c["lr"] == 1e-3 and c["steps"] == 30 and c["hidden"] == 4 for c in cfgs.values())
    # the task filters the grid; a comma list on the command line varies the option
    args = cli.build_parser().parse_args(["sweep", "copy", "--preset", "small", "--hidden", "8,16", "--out", "x"])
    runs, _ = sweep.grid_from_args(args)
    assert len(runs) == 5 * 3 * 2 and {c["task"] for _, c in runs} == {"copy"}
    assert "copy-uoro-seed2-hidden16" in dict(runs)


@pytest.mark.parametrize("argv, message", [
    (["copy", "--seeds", "3-1"], "bad seeds '3-1'"),
    (["copy", "--methods", "ok:0"], "must be >= 1"),
    (["copy", "--methods", "tbptt"], "needs its truncation"),
    (["copy", "--train", "x.txt"], "--train is not an option of the grid's task (copy)"),
    (["copy", "--resume", "x"], "--resume is not a sweep option"),
    (["nosuchtask"], "must be a task"),
    (["--preset", "small"], "OKNUMBA_PTB_DIR"),
    (["copy", "--method", "kf", "--methods", "ok:2"], "not both"),
])
def test_user_mistakes_are_one_line_exit_2(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv(sweep.PTB_ENV, raising=False)
    rc = cli.main(["sweep"] + argv + ["--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("oknumba: error:") and message in err and "\n" not in err, err
    assert not os.path.exists(tmp_path / "sw")


@pytest.mark.parametrize("text, message", [
    ("steps = [", "is not valid TOML"),
    ('[[grid]]\ntask = "copy"\nhiddn = 4\n', "unknown setting 'hiddn' for task copy"),
    ('task = "copy"\nfoo = 1\n', "unknown setting(s) foo"),
    ('[[grid]]\ntask = "nope"\n', "task must be one of"),
])
def test_bad_spec_files(text, message, capsys, tmp_path):
    spec = tmp_path / "grid.toml"
    spec.write_text(text)
    rc = cli.main(["sweep", str(spec), "--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("oknumba: error:") and message in err and "\n" not in err, err


def test_missing_dask_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    rc = cli.main(["sweep", "copy", "--out", str(tmp_path / "sw")] + TINY_ARGS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == 'oknumba: error: oknumba sweep needs Dask: pip install "oknumba[sweep]"'


# ------------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------------
def test_sweep_writes_run_folders_and_a_rerun_skips_them(tmp_path, capsys):
    out = str(tmp_path / "sw")
    argv = ["sweep", "copy", "--methods", "uoro,tbptt:3", "--seeds", "0-1", "--steps", "30", "--log-every", "10",
            "--checkpoint-every", "20", "--workers", "2", "--out", out] + TINY_ARGS
    t0 = time.perf_counter()
    assert cli.main(argv) == 0
    first = time.perf_counter() - t0
    io_ = capsys.readouterr()
    names = ["copy-uoro-seed0", "copy-uoro-seed1", "copy-tbptt3-seed0", "copy-tbptt3-seed1"]
    assert "4 of 4 runs finished (4 now, 0 earlier)" in io_.out
    for n in names:
        assert f"done   {n}: copy task: level reached" in io_.err
        d = os.path.join(out, n)
        assert sorted(os.listdir(d)) == sorted(RUN_FILES)
        s = _json(os.path.join(d, "summary.json"))
        assert s["status"] == "complete" and s["steps"] == 30
        assert [r["step"] for r in _untimed_metrics(d)] == [10, 20, 30]
    rec = _json(os.path.join(out, "sweep.json"))
    assert {n: r["status"] for n, r in rec["runs"].items()} == dict.fromkeys(names, "done")
    # a run is a pure function of its config: the same as training it here, uninterrupted
    cfg = rec["runs"]["copy-tbptt3-seed1"]["config"]
    ref = str(tmp_path / "ref")
    runner.train(cfg, ref)
    assert _same_params(ref, os.path.join(out, "copy-tbptt3-seed1"))
    assert _untimed_metrics(ref) == _untimed_metrics(os.path.join(out, "copy-tbptt3-seed1"))
    # again: every run is finished, nothing starts (no cluster either)
    t0 = time.perf_counter()
    assert cli.main(argv) == 0
    second = time.perf_counter() - t0
    io_ = capsys.readouterr()
    assert "4 of 4 runs finished (0 now, 4 earlier)" in io_.out and "done " not in io_.err
    assert second < first / 3, (first, second)


def test_a_failed_run_is_reported_and_the_others_finish(cluster, tmp_path, capsys):
    c, _ = cluster
    (tmp_path / "train.txt").write_text("aaaa bbbb\n" * 20)
    (tmp_path / "valid.txt").write_text("xyzw qrst uvop\n")       # nothing of it in the training text
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({"steps": 20, "hidden": 4, "batch": 2, "grid": [
        {"task": "copy", "methods": "uoro"},
        {"task": "charlm", "methods": "uoro", "train": "train.txt", "valid": "valid.txt"}]}))
    out = str(tmp_path / "sw")
    rc = cli.main(["sweep", str(spec), "--scheduler", c.scheduler_address, "--out", out])
    io_ = capsys.readouterr()
    assert rc == 1
    assert "FAILED charlm-uoro-seed0: " in io_.err and "do not occur in" in io_.err
    assert "done   copy-uoro-seed0" in io_.err and "1 of 2 runs finished" in io_.out
    assert "failed: charlm-uoro-seed0" in io_.err
    assert _json(os.path.join(out, "copy-uoro-seed0", "summary.json"))["status"] == "complete"
    assert not os.path.exists(os.path.join(out, "charlm-uoro-seed0"))
    rec = _json(os.path.join(out, "sweep.json"))["runs"]["charlm-uoro-seed0"]
    assert rec["status"] == "failed" and "do not occur in" in rec["error"]


def test_a_killed_worker_s_run_resumes_bit_identically(cluster, tmp_path):
    _, client = cluster
    marker = str(tmp_path / "killed")

    def install_killer(marker=marker, at=45):
        """Make this worker process die at step ``at`` of a run, once (``marker``)."""
        from oknumba import training

        orig = training.TrainingRun.bookkeeping

        def bookkeeping(self):
            orig(self)
            if self.learner.steps == at and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)

        training.TrainingRun.bookkeeping = bookkeeping

    client.run(install_killer)
    runs = sweep.expand_grid({"task": "copy"}, dict(TINY, methods="uoro", steps=90, checkpoint_every=30,
                                                    log_every=15))
    [(name, cfg)] = runs
    out = str(tmp_path / "sw")
    shown = io.StringIO()
    first = sweep.run_sweep(runs, out, client=client, display=sweep.SweepDisplay(stream=shown))
    assert os.path.exists(marker)
    r = first.runs[0]
    assert r.status == "failed" and "worker running it died" in r.error and f"FAILED {name}" in shown.getvalue()
    s = _json(os.path.join(out, name, "summary.json"))
    assert s["status"] == "interrupted" and s["steps"] == 30      # the checkpoint of the last whole segment
    assert _json(os.path.join(out, "sweep.json"))["runs"][name]["status"] == "failed"

    shown = io.StringIO()
    second = sweep.run_sweep(runs, out, client=client, display=sweep.SweepDisplay(stream=shown))
    assert second.runs[0].status == "done"
    assert f"resume {name} from step 30" in shown.getvalue()
    assert _json(os.path.join(out, name, "summary.json"))["status"] == "complete"
    ref = str(tmp_path / "ref")
    runner.train(cfg, ref)
    assert _same_params(ref, os.path.join(out, name))
    assert _untimed_metrics(ref) == _untimed_metrics(os.path.join(out, name))


def test_run_one_returns_the_folder_and_continues_from_it(tmp_path):
    """Segments through run_one alone (in this process): 0→20 (stopped), 20→40 from the
    returned files, equal to one uninterrupted run."""
    cfg = runner.make_config("copy", method="uoro", steps=40, checkpoint_every=20, log_every=10, **TINY)
    a = sweep.run_one(cfg, None, sweep.next_stop(0, cfg))
    assert a["status"] == "interrupted" and a["steps"] == 20 and a["error"] is None
    assert set(a["files"]) == set(RUN_FILES)
    b = sweep.run_one(cfg, a["files"], sweep.next_stop(20, cfg))
    assert b["status"] == "complete" and b["start_step"] == 20 and b["steps"] == 40
    sweep.write_files(str(tmp_path / "seg"), b["files"])
    runner.train(cfg, str(tmp_path / "ref"))
    assert _same_params(str(tmp_path / "ref"), str(tmp_path / "seg"))
    assert sweep.run_one(dict(cfg, cell="nope"))["status"] == "failed"
    # what a sweep does with a folder: skip it when finished, refuse it when it holds other settings
    assert sweep.folder_state(str(tmp_path / "seg"), cfg)[0] == "done"
    assert sweep.folder_state(str(tmp_path / "seg"), dict(cfg, steps=60)) == ("resume", 40)
    state, text = sweep.folder_state(str(tmp_path / "seg"), dict(cfg, hidden=5))
    assert state == "conflict" and "hidden=4 (the sweep has 5)" in text
    assert sweep.folder_state(str(tmp_path / "nothing"), cfg) == ("fresh", None)


def test_per_layer_settings_in_a_spec_are_one_value_and_name_the_run():
    """A nested list is one per-layer value ([[8, 6]]: one stack), a flat list varies."""
    runs = sweep.expand_grid({"task": "copy", "layers": 2, "hidden": [[8, 6], 8], "cell": [["rhn", "gru"]],
                              "methods": "kf", "steps": 10})
    assert [c["hidden"] for _, c in runs] == [[8, 6], 8]
    assert all(c["layers"] == 2 and c["cell"] == ["rhn", "gru"] for _, c in runs)
    assert [name for name, _ in runs] == ["copy-kf-seed0-hidden8+6", "copy-kf-seed0-hidden8"]
