"""``oknumba report`` (``oknumba/report/``): report.md and PNG figures from recorded run
folders (written here as ``oknumba train`` writes them) and ``oknumba noise --json`` results."""
import json
import os

import pytest

from oknumba import cli, report

pytest.importorskip("matplotlib")

PAPER_COPY = dict(cell="rhn", hidden=128, method="ok", rank=16, batch=16, dtype="float32", lr=10 ** -3.5,
                  optimizer="adam", clip=1.0)


def _write_run(folder, task="copy", seed=0, steps=3000, levels=(1, 2, 3), status="complete", **cfg):
    """A run folder with the files and fields ``oknumba train`` writes."""
    os.makedirs(folder)
    config = dict(format="oknumba-run", version=1, task=task, cell="rhn", hidden=8, method="ok", rank=2, batch=2,
                  optimizer="adam", lr=3e-3, clip=1.0, truncation=None, dtype="float64", seed=seed, threads=1,
                  log_every=1000, checkpoint_every=10000, device="cpu", steps=steps)
    config.update(cfg)
    recs = []
    for i, level in enumerate(levels):
        step = (i + 1) * steps // len(levels)
        rec = {"step": step, "wall_seconds": 0.5 * step / 1000 + 0.1 * seed, "steps_per_s": 2000.0,
               "loss_bits": 1.0 / (i + 1) + 0.01 * seed}
        rec.update({"level": level, "avg": 0.3} if task == "copy" else
                   {"train_bpc": rec["loss_bits"], "valid_bpc": 3.0 - 0.1 * i - 0.01 * seed})
        recs.append(rec)
    summary = {"task": task, "method": config["method"], "steps": steps, "target_steps": steps, "status": status,
               "seed": seed, "wall_seconds": recs[-1]["wall_seconds"], "final_loss_bits": recs[-1]["loss_bits"]}
    summary.update({"level": levels[-1]} if task == "copy" else {"valid_bpc": recs[-1]["valid_bpc"]})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f)


def _noise_json(path, hidden, scale):
    """An ``oknumba noise --json`` document (the format of ``cli.cmd_noise``)."""
    methods = ["kf", "ok:2"]
    doc = {"settings": {"cell": "rhn", "hidden": hidden, "inputs": 4, "steps": 3, "batch": 1, "seeds": 5,
                        "init_scale": 0.3, "burn_in": 0, "dtype": "float64", "seed": 0},
           "methods": methods,
           "results": {m: {"influence": [0.1, 0.2, 0.3], "gradient": [0.1, 0.1, 0.1], "cosine": [0.9, 0.9, 0.9],
                           "summary": {"influence": scale * (i + 1), "gradient": scale * (i + 1) / 2,
                                       "cosine": 1 - scale, "influence_last": scale * (i + 2)}}
                       for i, m in enumerate(methods)}}
    with open(path, "w") as f:
        json.dump(doc, f)


def test_report_from_runs_and_noise(tmp_path, capsys):
    sw = tmp_path / "sweep"
    _write_run(str(sw / "copy-ok2-seed0"), seed=0, levels=(1, 2, 4))
    _write_run(str(sw / "copy-ok2-seed1"), seed=1, levels=(1, 3, 6))
    _write_run(str(sw / "copy-kf-seed0"), seed=0, method="kf", rank=None, levels=(1, 1, 2))
    _write_run(str(sw / "copy-kf-seed1"), seed=1, method="kf", rank=None, levels=(1, 2, 2), status="interrupted")
    with open(sw / "sweep.json", "w") as f:           # other JSON files are not noise results
        json.dump({"format": "oknumba-sweep", "runs": {}}, f)
    _noise_json(str(tmp_path / "noise-n4.json"), 4, 0.5)
    _noise_json(str(tmp_path / "noise-n8.json"), 8, 0.25)
    out = tmp_path / "rep"
    rc = cli.main(["report", str(sw), str(tmp_path / "noise-n4.json"), str(tmp_path / "noise-n8.json"),
                   "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "from 4 runs and 2 noise results" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    for png in ("copy.png", "noise.png"):
        assert (out / png).stat().st_size > 10000 and f"]({png})" in md
    assert "| setting | n seeds | steps | level (final) | train loss (bits, final) | wall s | status |" in md
    assert "| ok:2 | 2 | 3000 | 5.0 ± 1.4 |" in md              # levels 4 and 6: mean 5, sd √2
    assert "| kf | 2 | 3000 | 2.0 ± 0.0 |" in md and "1 complete, 1 interrupted" in md
    assert "## Noise against exact RTRL" in md
    assert "| kf | 4 | 1.000e+00 | 5.000e-01 | 2.500e-01 | 0.5000 |" in md
    assert "| ok:2 | 8 | 7.500e-01 | 5.000e-01 | 2.500e-01 | 0.7500 |" in md
    assert "authors' logs" not in md


def test_report_overlays_the_authors_curves_where_the_setting_is_theirs(tmp_path):
    _write_run(str(tmp_path / "a"), seed=0, steps=30000, levels=(4, 7, 9), **PAPER_COPY)
    _write_run(str(tmp_path / "b"), task="charlm", steps=3000, levels=(0, 0, 0))
    res = report.write_report([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "rep"), title="T")
    md = open(res["report"]).read()
    assert md.startswith("# T\n") and "## charlm" in md and "## copy" in md
    assert sorted(os.path.basename(f) for f in res["figures"]) == ["charlm.png", "copy.png"]
    logs = report.paper_logs()
    assert "marcelomatheusgauy/optimal_kronecker_approximation" in logs["source"]
    assert "| authors' logs (ok:16) | 5 | 30000 |" in md and "| authors' logs (ok:16) | 5 | 2000000 |" in md
    assert "| valid bits/char (final) |" in md


def test_report_errors(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "found no run folders or noise results" in capsys.readouterr().err
