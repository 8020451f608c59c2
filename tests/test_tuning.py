"""The per-machine choice between bit-identical kernel variants (:mod:`oknumba._tuning`): the
fastest valid candidate is chosen, remembered in memory and on disk, and a candidate that
changes any bit is never chosen. Timings are injected, so nothing here depends on speed."""
import json

import numpy as np
import pytest

from oknumba import _tuning


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    path = tmp_path / "tuning.json"
    monkeypatch.setenv("OKNUMBA_TUNING_CACHE", str(path))
    monkeypatch.setattr(_tuning, "_memory", {})
    return path


def _calls(outputs):
    return lambda c: ((lambda: None), outputs[c])


def test_fastest_valid_candidate_is_chosen_and_stored(fresh):
    out = {"a": np.zeros(3), "b": np.zeros(3), "c": np.ones(3)}
    timer_calls = []

    def timer(cands, make_call):
        timer_calls.append(cands)
        return [3.0, 2.0, None]           # "c" changed bits

    assert _tuning.tuned_choice("k", "s1", ["a", "b", "c"], _calls(out), timer=timer) == "b"
    stored = json.loads(fresh.read_text())
    assert stored[_tuning.machine_key()]["k:s1"] == "b"
    # remembered: neither this process nor a new one (empty memory) measures again
    assert _tuning.tuned_choice("k", "s1", ["a", "b", "c"], _calls(out), timer=timer) == "b"
    _tuning._memory.clear()
    assert _tuning.tuned_choice("k", "s1", ["a", "b", "c"], _calls(out), timer=timer) == "b"
    assert len(timer_calls) == 1


def test_measure_rejects_a_candidate_that_changes_bits(fresh):
    out = {"a": np.array([1.0, 2.0]), "b": np.array([1.0, np.nextafter(2.0, 3.0)]), "c": np.array([1.0, 2.0])}
    times = _tuning.measure(["a", "b", "c"], _calls(out))
    assert times[0] is not None and times[1] is None and times[2] is not None


def test_unreadable_file_and_disabled_cache(fresh, monkeypatch):
    fresh.write_text("{not json")
    out = {"a": np.zeros(1), "b": np.zeros(1)}
    assert _tuning.tuned_choice("k", "s2", ["a", "b"], _calls(out), timer=lambda c, m: [1.0, 5.0]) == "a"
    assert json.loads(fresh.read_text())[_tuning.machine_key()]["k:s2"] == "a"
    monkeypatch.setenv("OKNUMBA_TUNING_CACHE", "0")
    _tuning._memory.clear()
    assert _tuning.cache_path() is None
    assert _tuning.tuned_choice("k", "s3", ["a", "b"], _calls(out), timer=lambda c, m: [5.0, 1.0]) == "b"


def test_stored_choice_outside_the_candidates_is_measured_again(fresh):
    fresh.write_text(json.dumps({_tuning.machine_key(): {_tuning.KERNELS_KEY: _tuning.kernels_stamp(),
                                                         "k:s4": "gone"}}))
    out = {"a": np.zeros(1), "b": np.zeros(1)}
    assert _tuning.tuned_choice("k", "s4", ["a", "b"], _calls(out), timer=lambda c, m: [2.0, 1.0]) == "b"


def test_gram_block_choice_is_a_valid_block():
    from oknumba.estimators.ok import gram_block
    from oknumba.estimators.reduce import GRAM_BLOCKS

    assert gram_block(17, 64, np.float64) in GRAM_BLOCKS.values()


def test_choices_made_for_other_kernels_are_measured_again(fresh):
    """Stored choices are stamped with the package's source hash: after a source change they
    are not reused but measured again, and the machine's old entries are replaced."""
    stale = {_tuning.KERNELS_KEY: "not-these-kernels", "k:s5": "a", "k:old": "a"}
    fresh.write_text(json.dumps({_tuning.machine_key(): stale}))
    out = {"a": np.zeros(1), "b": np.zeros(1)}
    assert _tuning.tuned_choice("k", "s5", ["a", "b"], _calls(out), timer=lambda c, m: [2.0, 1.0]) == "b"
    mine = json.loads(fresh.read_text())[_tuning.machine_key()]
    assert mine == {_tuning.KERNELS_KEY: _tuning.kernels_stamp(), "k:s5": "b"}
    # made for these kernels: reused without measuring
    _tuning._memory.clear()
    assert _tuning.tuned_choice("k", "s5", ["a", "b"], _calls(out), timer=lambda c, m: [1.0, 2.0]) == "b"
