"""oknumba.profile at tiny sizes: structure, parsing, fitting, output files. Never asserts on
timings (they depend on the machine and its load)."""
import argparse
import json

import numpy as np
import pytest

from oknumba import profile as prof

TINY = dict(cell="rhn", hidden=(4, 8), batch=2, steps=3, samples=2, threads=1,
            sample_seconds=0.01)


@pytest.fixture(scope="module")
def tiny_result():
    return prof.profile(methods=("ok:2", "kf", "uoro", "tbptt:3", "rtrl"), **TINY)


def test_profile_returns_documented_keys(tiny_result):
    r = tiny_result
    assert set(r) == {"config", "machine", "results", "exponents", "bare_exponents", "compile", "notes"}
    assert r["compile"] is None
    assert len(r["results"]) == 5 * 2
    for row in r["results"]:
        assert set(row) == set(prof.RESULT_KEYS)
        assert row["status"] == "ok"
        assert row["us_per_step"] > 0 and row["gflops"] > 0
        assert len(row["us_samples"]) == 2
        assert row["us_per_step"] == pytest.approx(float(np.median(row["us_samples"])))
    assert r["config"]["methods"] == ["ok:2", "kf", "uoro", "tbptt:3", "rtrl"]
    assert r["machine"]["threads"]["numba"] == 1


def test_profile_names_the_cpu_it_ran_on(tiny_result):
    """A timing without its CPU means little (Zen 3 and Zen 5 differ 2x here): the JSON's
    ``machine.cpu`` holds the model, LLVM's name for it and its widest SIMD extension, and
    the printed report's first line names them."""
    from llvmlite import binding

    cpu = tiny_result["machine"]["cpu"]
    assert set(cpu) == {"model", "family", "model_number", "llvm", "vector", "describe"}
    assert cpu["llvm"] == binding.get_host_cpu_name()
    features = binding.get_host_cpu_features()
    assert (cpu["vector"] == "AVX-512") == bool(features.get("avx512f"))
    assert cpu["vector"] in ("AVX-512", "AVX2", "AVX", "NEON", "SSE") and cpu["model"]
    assert cpu["llvm"] in cpu["describe"] and cpu["vector"] in cpu["describe"]
    assert prof.format_profile(tiny_result).splitlines()[0] == f"cpu: {cpu['describe']}"


def test_ratios_positive_for_products_none_otherwise(tiny_result):
    for row in tiny_result["results"]:
        if row["name"] in ("uoro", "tbptt"):
            assert row["ratio"] is None and row["bare_us"] is None
        else:
            assert row["ratio"] > 0 and row["bare_us"] > 0
            assert row["ratio"] == pytest.approx(row["us_per_step"] / row["bare_us"])


def test_tbptt_samples_cover_whole_windows(tiny_result):
    rows = [r for r in tiny_result["results"] if r["name"] == "tbptt"]
    assert all(r["steps_per_sample"] % 3 == 0 for r in rows)


def test_exponents_fitted_per_method(tiny_result):
    for label in ("ok:2", "kf", "uoro", "tbptt:3", "rtrl"):
        fit = tiny_result["exponents"][label]
        assert fit["sizes"] == [4, 8] and np.isfinite(fit["exponent"])
    assert tiny_result["bare_exponents"]["uoro"] is None


def test_flop_counts():
    S, a, P, B = 8, 13, 16, 2
    assert prof.flops_per_step("ok", {"rank": 3}, B, S, a, P) == 2 * B * 3 * S * S * P
    assert prof.flops_per_step("kf", {}, B, S, a, P) == 2 * B * S * S * P
    assert prof.flops_per_step("rtrl", {}, B, S, a, P) == 2 * B * S * S * a * P
    assert prof.flops_per_step("uoro", {}, B, S, a, P) == 6 * B * a * P
    assert prof._sizes("lstm", 8) == (16, 13, 32)
    assert prof._sizes("gru", 8) == (8, 13, 24)


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.7])
def test_fit_exponent_recovers_power_law(exponent):
    ns = [16, 32, 64, 128]
    fit = prof.fit_exponent(ns, [2.5 * n ** exponent for n in ns])
    assert fit["exponent"] == pytest.approx(exponent, abs=1e-9)
    assert fit["prefactor"] == pytest.approx(2.5, rel=1e-9)
    assert fit["sizes"] == ns


def test_fit_exponent_ignores_missing_and_needs_two_sizes():
    fit = prof.fit_exponent([8, 16, 32], [8.0 ** 2, None, 32.0 ** 2])
    assert fit["exponent"] == pytest.approx(2.0) and fit["sizes"] == [8, 32]
    assert prof.fit_exponent([8], [1.0]) is None
    assert prof.fit_exponent([8, 16], [1.0, float("nan")]) is None


@pytest.mark.parametrize("spec,expected", [
    ("ok:16", ("ok:16", "ok", {"rank": 16})),
    ("kf-avg:8", ("kf-avg:8", "kf-avg", {"rank": 8})),
    ("ok-truncated:4", ("ok-truncated:4", "ok-truncated", {"rank": 4})),
    ("tbptt:10", ("tbptt:10", "tbptt", {"truncation": 10})),
    ("kf", ("kf", "kf", {})),
    ("uoro", ("uoro", "uoro", {})),
    (" rtrl ", ("rtrl", "rtrl", {})),
])
def test_parse_method_spec(spec, expected):
    assert prof.parse_method_spec(spec) == expected


@pytest.mark.parametrize("spec", ["ok", "ok:", "ok:0", "ok:-2", "ok:x", "kf:3", "uoro:1", "tbptt",
                                  "bptt", "magic:3", "", 5])
def test_bad_method_specs_raise(spec):
    with pytest.raises(ValueError):
        prof.parse_method_spec(spec)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        prof.profile(methods=("ok:0",), **TINY)
    with pytest.raises(ValueError):
        prof.profile(methods=("kf",), **{**TINY, "cell": "transformer"})
    with pytest.raises(ValueError):
        prof.profile(methods=("kf",), **{**TINY, "batch": 0})
    with pytest.raises(ValueError):
        prof.profile(methods=("kf",), **{**TINY, "dtype": "float16"})


def test_skips_over_memory_and_time_limits():
    r = prof.profile(methods=("rtrl",), max_memory_gib=1e-9, **TINY)
    assert [row["status"] for row in r["results"]] == ["skipped", "skipped"]
    assert "memory" in r["results"][0]["reason"] and r["results"][0]["us_per_step"] is None
    assert r["exponents"]["rtrl"] is None and len(r["notes"]) >= 2
    r = prof.profile(methods=("kf",), max_step_seconds=1e-12, **{**TINY, "hidden": (4,)})
    assert r["results"][0]["status"] == "skipped" and "max_step_seconds" in r["results"][0]["reason"]
    assert "skipped" in prof.format_profile(r)


def test_cli_main_writes_json_and_prints_table(tmp_path, capsys):
    out = tmp_path / "p.json"
    rc = prof.main(["--methods", "kf,uoro", "--hidden", "4,8", "--batch", "2", "--steps", "2",
                    "--samples", "1", "--threads", "1", "--dtype", "float64", "--quiet",
                    "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["config"]["dtype"] == "float64" and data["config"]["methods"] == ["kf", "uoro"]
    assert [row["n"] for row in data["results"]] == [4, 8, 4, 8]
    text = capsys.readouterr().out
    assert "µs/step" in text and "fitted exponent" in text


def test_cli_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    assert prof.main(["--methods", "kf", "--hidden", "4,8", "--batch", "2", "--steps", "2",
                      "--samples", "1", "--threads", "1", "--quiet", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_add_profile_parser_wires_subcommand():
    p = argparse.ArgumentParser(prog="oknumba")
    prof.add_profile_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["profile", "--methods", "ok:16,tbptt:10", "--hidden", "32,64",
                         "--threads", "2", "--max-step-seconds", "0.5", "--compile-time",
                         "--dtype", "float32"])
    assert args.func is prof.run_profile_cli
    assert args.methods == ["ok:16", "tbptt:10"] and args.hidden == [32, 64]
    assert args.threads == 2 and args.max_step_seconds == 0.5 and args.compile_time
    assert args.dtype == "float32" and args.cell == "rhn" and args.json is None
    for bad in (["profile", "--methods", "ok"], ["profile", "--hidden", "0"],
                ["profile", "--batch", "x"], ["profile", "--max-step-seconds", "-1"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


def test_stack_profile_sums_the_layers_bare_products():
    res = prof.profile(methods=("ok:2", "uoro"), layers=2, **TINY)
    assert res["config"]["layers"] == 2
    for row in res["results"]:
        assert row["status"] == "ok" and row["us_per_step"] > 0
        if row["name"] == "ok":
            n = row["n"]
            assert row["S"] == 2 * n and row["bare_shape"].count("@") == 2   # S_down of layer 0
            assert row["ratio"] == row["us_per_step"] / row["bare_us"]
        else:
            assert row["bare_us"] is None
    with pytest.raises(ValueError, match="layers"):
        prof.profile(methods=("kf",), layers=0, **TINY)


@pytest.mark.parametrize("layers", [1, 2])
def test_breakdown_times_every_phase(layers):
    from oknumba.profile.breakdown import PHASES, format_breakdown

    res = prof.profile(methods=("ok:2", "uoro", "tbptt:3"), breakdown=True, layers=layers, **TINY)
    for row in res["results"]:
        ph = row["phases"]
        assert list(ph) == list(PHASES) + ["step"]
        for k in ("cell", "readout", "estimator", "optimizer", "glue"):
            assert ph[k] > 0, (row["method"], k)
        assert ph["step"] == row["us_per_step"]
        if row["name"] == "ok":
            assert ph["products"] == row["bare_us"]
            assert ph["estimator other"] == pytest.approx(ph["estimator"] - ph["products"])
        else:
            assert ph["products"] is None and ph["estimator other"] is None
    text = "\n".join(format_breakdown(res["results"]))
    assert "where the step's time goes" in text and "tbptt:3" in text
    assert prof.profile(methods=("kf",), **TINY)["results"][0]["phases"] is None


@pytest.mark.parametrize("method, kw, layers", [("ok", {"rank": 2}, 1), ("tbptt", {"truncation": 3}, 1),
                                                ("kf", {}, 2)])
def test_timed_step_trains_exactly_like_step(method, kw, layers):
    """The breakdown's instrumented step makes the same calls as OnlineLearner.step."""
    import numpy as np

    import oknumba
    from oknumba.profile.breakdown import timed_step

    def run(timed):
        model = oknumba.RNN("gru", 3, 5, 3, seed=0, layers=layers)
        learner = oknumba.OnlineLearner(model, method, batch=2, seed=1, **kw)
        rng = np.random.default_rng(0)
        acc = dict.fromkeys(("cell", "readout", "estimator", "optimizer", "glue"), 0)
        losses = []
        for _ in range(7):
            x, y = rng.normal(size=(2, 3)), rng.integers(0, 3, 2)
            losses.append(timed_step(learner, x, y, acc) if timed else learner.step(x, y))
        return losses, model.params, learner.updates

    (l1, p1, u1), (l2, p2, u2) = run(True), run(False)
    assert l1 == l2 and u1 == u2
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_interleaved_samples_settle_before_each_sample():
    """With ``settle_s`` every sample is preceded by untimed calls of its own function (so
    BLAS workers left spinning by the other function have stopped); without, none."""
    from oknumba.profile.timing import blas_threads, interleaved_samples

    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1
        return fn

    out = interleaved_samples([(make("a"), 3), (make("b"), 5)], 2)
    assert [len(o) for o in out] == [2, 2] and calls == {"a": 6, "b": 10}
    interleaved_samples([(make("a"), 3), (make("b"), 5)], 2, settle_s=0.005)
    assert calls["a"] > 6 + 6 and calls["b"] > 10 + 10
    assert isinstance(blas_threads(), int) and blas_threads() >= 1
