"""Tests of oknumba.tasks (copy task + curriculum, character-level corpora) and scripts/download_ptb.py."""
import gzip
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oknumba.tasks import (CharLMStreams, CopyCurriculum, CopyTask, Vocabulary, bits_per_char, copy_sequence,
                           detect_format, eval_chunks, load_corpus, one_hot, read_symbols)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OKNUMBA_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PTB = DATA / "ptb"
SHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"
needs_ptb = pytest.mark.skipif(not (PTB / "ptb.char.valid.txt").is_file(),
                               reason=f"PTB data not found under {PTB} (set OKNUMBA_DATA to the shared data folder)")
needs_shakespeare = pytest.mark.skipif(not SHAKESPEARE.is_file(),
                                       reason=f"tinyshakespeare not found at {SHAKESPEARE} (set OKNUMBA_DATA)")


# =============================================================================================
# copy task
# =============================================================================================
def test_copy_sequence_hand_worked():
    inputs, targets = copy_sequence([1, 0, 1])
    assert inputs.tolist() == [2, 1, 0, 1, 3, 3, 3, 3]
    assert targets.tolist() == [3, 3, 3, 3, 2, 1, 0, 1]
    assert inputs.dtype == np.int64 and targets.dtype == np.int64
    i1, t1 = copy_sequence([0])
    assert i1.tolist() == [2, 0, 3, 3] and t1.tolist() == [3, 3, 2, 0]


@pytest.mark.parametrize("bits, exc", [([], ValueError), ([0, 2], ValueError), ([[0, 1]], ValueError),
                                       ([0.0, 1.0], TypeError), ([-1], ValueError)])
def test_copy_sequence_bad_bits(bits, exc):
    with pytest.raises(exc, match="bits"):
        copy_sequence(bits)


def test_curriculum_avg_update_arithmetic():
    c = CopyCurriculum()
    assert c.level == 1 and c.avg == 1.0
    assert c.update(0.0) == pytest.approx(0.999, abs=1e-15)
    assert c.update(2.0) == pytest.approx(0.999 * 0.999 + 0.001 * 2.0, abs=1e-15)
    assert c.avg == pytest.approx(1.000001, abs=1e-12)
    task = CopyTask(batch=2)
    task.report(0.5)
    assert task.avg == pytest.approx(0.999 + 0.0005, abs=1e-15)


def test_curriculum_advance_rule():
    c = CopyCurriculum(level=3, avg=0.15)
    assert not c.maybe_advance() and c.level == 3 and c.avg == 0.15  # strict "<"
    c.avg = 0.1499
    assert c.maybe_advance()
    assert c.level == 4 and c.avg == 0.3
    assert not c.maybe_advance() and c.level == 4  # avg 0.3 is above the threshold


def test_length_draw_bounds():
    assert [CopyCurriculum(level=3).length_for(u) for u in range(5)] == [3, 2, 1, 1, 1]
    assert [CopyCurriculum(level=10).length_for(u) for u in range(5)] == [10, 9, 8, 7, 6]
    rng = np.random.default_rng(0)
    for level in (1, 2, 5, 10, 40):
        c = CopyCurriculum(level=level)
        draws = np.array([c.draw_length(rng) for _ in range(400)])
        assert draws.min() >= max(1, level - 4) and draws.max() <= level
        assert set(draws.tolist()) == set(range(max(1, level - 4), level + 1))  # every value is reached
    c = CopyCurriculum(level=7, max_drop=0)
    assert {c.draw_length(rng) for _ in range(20)} == {7}


def test_bump_at_sequence_start_uses_new_level():
    task = CopyTask(batch=1, seed=3, max_drop=0)  # T = level exactly
    x, y, r = task.next()
    assert r.tolist() == [True] and task.lengths.tolist() == [1]
    task.avg = 0.1  # below the threshold mid-sequence: nothing happens until the next start
    for _ in range(3):  # the rest of the 4-step sequence
        _, _, r = task.next()
        assert r.tolist() == [False] and task.level == 1 and task.avg == 0.1
    _, _, r = task.next()  # new sequence: bump first, then draw T with the new level
    assert r.tolist() == [True]
    assert task.level == 2 and task.avg == 0.3 and task.lengths.tolist() == [2]


def test_bump_once_when_several_streams_start_together():
    task = CopyTask(batch=4, seed=0, avg=0.01)
    task.next()
    assert task.level == 2 and task.avg == 0.3  # after the first stream's bump avg = 0.3 >= 0.15
    assert set(task.lengths.tolist()) <= {1, 2}


def test_first_step_and_one_hot_format():
    task = CopyTask(batch=5, seed=1)
    x, y, r = task.next()
    assert x.shape == (5, 4) and x.dtype == np.float64
    assert y.shape == (5,) and y.dtype == np.int64
    assert r.shape == (5,) and r.dtype == np.bool_ and r.all()
    assert np.array_equal(x.sum(1), np.ones(5)) and (x.argmax(1) == 2).all()  # start marker
    assert (y == 3).all()  # blanks are the first targets


def _run(task, steps, ce=lambda k: 0.0):
    out = []
    for k in range(steps):
        x, y, r = task.next()
        out.append((x.argmax(1), y, r, task.level))
        task.report(ce(k))
    return out


def test_resets_exactly_at_sequence_starts_and_sequences_are_valid():
    task = CopyTask(batch=3, seed=7, decay=0.9)
    out = _run(task, 600, ce=lambda k: 0.0)  # zero loss, fast decay: the level climbs quickly
    assert task.level > 8
    for b in range(3):
        xs = np.array([o[0][b] for o in out])
        ys = np.array([o[1][b] for o in out])
        rs = np.array([o[2][b] for o in out])
        starts = np.flatnonzero(rs)
        assert starts[0] == 0
        assert (xs[starts] == 2).all() and (xs[np.flatnonzero(~rs)] != 2).all()  # marker only at resets
        bounds = list(starts) + [len(xs)]
        for s, e in zip(bounds[:-1], bounds[1:]):
            seg_x, seg_y = xs[s:e], ys[s:e]
            if e == len(xs):  # possibly unfinished last sequence: check as a prefix
                t = task.lengths[b]
                full_x, full_y = copy_sequence(seg_x[1:t + 1])
                assert np.array_equal(full_x[:e - s], seg_x) and np.array_equal(full_y[:e - s], seg_y)
                continue
            t = (e - s - 2) // 2
            assert e - s == 2 * t + 2 and t >= 1
            want_x, want_y = copy_sequence(seg_x[1:t + 1])
            assert np.array_equal(seg_x, want_x) and np.array_equal(seg_y, want_y)
            level_at_start = out[s][3]
            assert max(1, level_at_start - 4) <= t <= level_at_start


def test_determinism_and_seeds():
    a = _run(CopyTask(batch=4, seed=11), 60)
    b = _run(CopyTask(batch=4, seed=11), 60)
    c = _run(CopyTask(batch=4, seed=12), 60)
    same = all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    differ = any(not np.array_equal(p[0], q[0]) for p, q in zip(a, c))
    assert same and differ


def test_state_dict_round_trip_continues_identically():
    ce = lambda k: 0.05 + 0.3 * ((k * 7919) % 13) / 13  # noqa: E731  deterministic varied losses
    task = CopyTask(batch=4, seed=5, avg=0.2)
    _run(task, 137, ce)
    state = json.loads(json.dumps(task.state_dict()))  # must survive JSON (config.json/checkpoints)
    ref = _run(task, 300, lambda k: ce(k + 137))
    fresh = CopyTask(batch=4, seed=999, avg=0.2)
    fresh.load_state_dict(state)
    got = _run(fresh, 300, lambda k: ce(k + 137))
    for (x1, y1, r1, l1), (x2, y2, r2, l2) in zip(ref, got):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and np.array_equal(r1, r2) and l1 == l2
    assert fresh.level == task.level and fresh.avg == task.avg and fresh.steps == task.steps


def test_load_state_dict_refuses_mismatch():
    state = CopyTask(batch=2).state_dict()
    with pytest.raises(ValueError, match="batch"):
        CopyTask(batch=3).load_state_dict(state)
    with pytest.raises(ValueError, match="curriculum settings"):
        CopyTask(batch=2, threshold=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="missing keys"):
        CopyTask(batch=2).load_state_dict({"batch": 2})
    with pytest.raises(TypeError, match="dict"):
        CopyTask(batch=2).load_state_dict([1, 2])


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(batch=0), ValueError, "batch"), (dict(batch=2.0), TypeError, "batch"), (dict(batch=True), TypeError, "batch"),
    (dict(batch=1, seed=-1), ValueError, "seed"), (dict(batch=1, seed="a"), TypeError, "seed"),
    (dict(batch=1, level=0), ValueError, "level"), (dict(batch=1, decay=1.0), ValueError, "decay"),
    (dict(batch=1, decay=0.0), ValueError, "decay"), (dict(batch=1, threshold=float("nan")), ValueError, "threshold"),
    (dict(batch=1, reset_avg=0.1), ValueError, "reset_avg"), (dict(batch=1, max_drop=-1), ValueError, "max_drop"),
    (dict(batch=1, max_drop=1.5), TypeError, "max_drop")])
def test_copy_task_bad_args(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        CopyTask(**kwargs)


def test_report_bad_values():
    task = CopyTask(batch=1)
    for bad, exc in ((float("nan"), ValueError), (float("inf"), ValueError), (-0.1, ValueError), ("1", TypeError)):
        with pytest.raises(exc, match="mean_ce_bits"):
            task.report(bad)
    task.report(np.float32(0.5))  # numpy scalars are fine


# =============================================================================================
# character-level corpora: tiny files
# =============================================================================================
def _ptb_char(text):
    return "".join(ch + " " for ch in text)


def test_detect_format():
    assert detect_format("x/ptb.char.train.txt.gz") == "ptb-char"
    assert detect_format("ptb.char.valid.txt") == "ptb-char"
    assert detect_format("ids.npy") == "npy" and detect_format("ids.npy.gz") == "npy"
    assert detect_format("input.txt") == "text" and detect_format("ptb.train.txt") == "text"


def test_read_text_gzip_and_ptb_char(tmp_path):
    text = "héllo wörld\nsecond line\r\n"
    (tmp_path / "a.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    assert read_symbols(tmp_path / "a.txt") == text  # no newline translation
    assert read_symbols(tmp_path / "a.txt.gz") == text
    sentence = "the_cat_sat\n<unk>_on_N_mats\n"
    (tmp_path / "ptb.char.tiny.txt").write_text(_ptb_char(sentence), encoding="utf-8", newline="")
    (tmp_path / "ptb.char.tiny.txt.gz").write_bytes(gzip.compress(_ptb_char(sentence).encode()))
    assert read_symbols(tmp_path / "ptb.char.tiny.txt") == sentence
    assert read_symbols(tmp_path / "ptb.char.tiny.txt.gz") == sentence
    assert read_symbols(tmp_path / "ptb.char.tiny.txt", fmt="text") == _ptb_char(sentence)
    (tmp_path / "plain").write_text(_ptb_char("ab"), encoding="utf-8")
    assert read_symbols(tmp_path / "plain", fmt="ptb-char") == "ab"


@pytest.mark.parametrize("content, where", [("a b c", "last symbol 'c'"), ("a b cd ", "offset 5"),
                                            ("a  b ", "offset 3")])
def test_malformed_ptb_char(tmp_path, content, where):
    p = tmp_path / "ptb.char.bad.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="not a ptb-char file") as e:
        read_symbols(p)
    assert where in str(e.value) and "fmt='text'" in str(e.value)


def test_missing_empty_and_bad_files(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_symbols(missing)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_corpus(missing)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_symbols(tmp_path / "empty.txt")
    (tmp_path / "empty.txt.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(ValueError, match="empty"):
        read_symbols(tmp_path / "empty.txt.gz")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8.*offset 3"):
        read_symbols(tmp_path / "latin1.txt")
    (tmp_path / "fake.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="gzip"):
        read_symbols(tmp_path / "fake.txt.gz")
    with pytest.raises(ValueError, match="fmt"):
        read_symbols(tmp_path / "latin1.txt", fmt="csv")
    with pytest.raises(IsADirectoryError):
        read_symbols(tmp_path)


def test_npy_corpora(tmp_path):
    train = np.array([0, 3, 1, 3, 2, 0], dtype=np.int32)
    np.save(tmp_path / "train.npy", train)
    buf = io.BytesIO()
    np.save(buf, np.array([1, 4, 0, 7, 3]))
    (tmp_path / "valid.npy.gz").write_bytes(gzip.compress(buf.getvalue()))
    syms = read_symbols(tmp_path / "train.npy")
    assert syms.dtype == np.int64 and syms.tolist() == train.tolist()
    c = load_corpus(tmp_path / "train.npy", tmp_path / "valid.npy.gz")
    assert c.vocab.kind == "int" and c.vocab.size == 5 and c.vocab.unk_id == 4  # ids 0..3 + <unk>
    assert c.train_ids.tolist() == train.tolist()
    assert c.valid_ids.tolist() == [1, 4, 0, 4, 3] and c.n_unknown == 2
    assert c.vocab.decode(c.valid_ids).tolist() == [1, -1, 0, -1, 3]
    with pytest.raises(ValueError, match="symbol 4 at position 1"):
        load_corpus(tmp_path / "train.npy", tmp_path / "valid.npy.gz", unknown="error")
    np.save(tmp_path / "f.npy", np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="integer"):
        read_symbols(tmp_path / "f.npy")
    np.save(tmp_path / "m.npy", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="1-D"):
        read_symbols(tmp_path / "m.npy")
    np.save(tmp_path / "neg.npy", np.array([1, -2]))
    with pytest.raises(ValueError, match="negative"):
        read_symbols(tmp_path / "neg.npy")
    (tmp_path / "t.txt").write_text("abc")
    with pytest.raises(ValueError, match="both be text"):
        load_corpus(tmp_path / "train.npy", tmp_path / "t.txt")


def test_unknown_symbols_map_and_error(tmp_path):
    (tmp_path / "train.txt").write_text("cabbac", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("abzcaq", encoding="utf-8")
    (tmp_path / "clean.txt").write_text("abc", encoding="utf-8")
    c = load_corpus(tmp_path / "train.txt", tmp_path / "valid.txt")
    assert c.vocab.symbols == ("a", "b", "c") and c.vocab.unk and c.vocab.size == 4 and c.vocab.unk_id == 3
    assert c.train_ids.tolist() == [2, 0, 1, 1, 0, 2]
    assert c.valid_ids.tolist() == [0, 1, 3, 2, 0, 3] and c.n_unknown == 2
    assert c.vocab.decode(c.valid_ids) == "ab<unk>ca<unk>"
    assert c.summary()["n_unknown"] == 2 and json.dumps(c.summary())
    with pytest.raises(ValueError, match=r"symbol 'z' at position 2 .*2 unknown symbols") as e:
        load_corpus(tmp_path / "train.txt", tmp_path / "valid.txt", unknown="error")
    assert "valid.txt" in str(e.value) and "unknown='map'" in str(e.value)
    with pytest.raises(ValueError, match="unknown must be"):
        load_corpus(tmp_path / "train.txt", unknown="drop")
    clean = load_corpus(tmp_path / "train.txt", tmp_path / "clean.txt", unknown="error")
    assert not clean.vocab.unk and clean.vocab.size == 3 and clean.n_unknown == 0  # <unk> only when needed
    only_train = load_corpus(tmp_path / "train.txt")
    assert only_train.valid_ids is None and only_train.vocab.size == 3


def test_vocabulary_api():
    v = Vocabulary.from_symbols("hello\nworld")
    assert v.symbols == tuple(sorted(set("hello\nworld"))) and v.symbols[0] == "\n"
    assert v.kind == "char" and v.size == len(v) == 8 and v.unk_id is None
    ids = v.encode("hello\nworld")
    assert ids.dtype == np.int64 and v.decode(ids) == "hello\nworld"
    assert v.encode(list("low")).tolist() == v.encode("low").tolist()
    assert v.unknown_positions("hxlyo").tolist() == [1, 3]
    with pytest.raises(ValueError, match="no <unk> id"):
        v.encode("x", unknown="map")
    assert v.with_unk().encode("hxl", unknown="map").tolist() == [v.encode("h")[0], 8, v.encode("l")[0]]
    for vocab in (v, v.with_unk(), Vocabulary(7), Vocabulary(7, unk=True), Vocabulary("zyx")):
        d = json.loads(json.dumps(vocab.to_dict()))
        assert Vocabulary.from_dict(d) == vocab and Vocabulary.from_dict(d).size == vocab.size
    # an unsorted vocabulary (e.g. from a config) keeps its own order
    assert Vocabulary("zyx").encode("xyz").tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary("aba")
    with pytest.raises(TypeError, match="one-character"):
        Vocabulary(["ab", "c"])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 7\]"):
        v.decode([8])
    with pytest.raises(TypeError, match="integer-id vocabulary"):
        Vocabulary(3).encode("abc")
    with pytest.raises(ValueError, match="size"):
        Vocabulary.from_dict({"kind": "char", "symbols": ["a"], "unk": False, "size": 5})


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_vocabulary_round_trip_property(train, other):
    v = Vocabulary.from_symbols(train)
    assert v.size == len(set(train)) and list(v.symbols) == sorted(set(train))
    ids = v.encode(train)
    assert v.decode(ids) == train and ids.min() >= 0 and ids.max() < v.size
    unk = [i for i, ch in enumerate(other) if ch not in set(train)]
    assert v.unknown_positions(other).tolist() == unk
    mapped = v.with_unk().encode(other, unknown="map")
    assert [i for i, k in enumerate(mapped.tolist()) if k == v.n_ids] == unk


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=30))
def test_copy_sequence_property(bits):
    inputs, targets = copy_sequence(bits)
    t = len(bits)
    assert inputs.size == targets.size == 2 * t + 2
    assert inputs[1:t + 1].tolist() == bits == targets[t + 2:].tolist()
    assert (inputs == 2).sum() == 1 and (targets == 2).sum() == 1 and targets[t + 1] == 2


# =============================================================================================
# streams and evaluation
# =============================================================================================
def test_charlm_streams_hand_worked():
    ids = np.array([5, 0, 1, 2, 3, 4, 5, 0, 1, 2])
    s = CharLMStreams(ids, batch=3, reset_every=4)
    assert s.positions.tolist() == [0, 3, 6] and s.n_symbols == 6
    seen = []
    for k in range(12):
        x, y, r = s.next()
        assert x.shape == (3, 6) and x.dtype == np.float64 and y.dtype == np.int64 and r.dtype == np.bool_
        p = (np.array([0, 3, 6]) + k) % 10
        assert np.array_equal(x.argmax(1), ids[p]) and np.array_equal(x.sum(1), np.ones(3))
        assert np.array_equal(y, ids[(p + 1) % 10])  # wraps around at the end
        assert r.tolist() == [k % 4 == 0] * 3
        seen.append(r[0])
    assert sum(seen) == 3
    s2 = CharLMStreams(ids, batch=2, reset_every=None, n_symbols=9)
    rs = [s2.next()[2].all() for _ in range(250)]
    assert rs[0] and not any(rs[1:])
    x, _, _ = s2.next()
    assert x.shape == (2, 9)


def test_charlm_streams_seed_offset_and_state():
    ids = np.arange(100) % 7
    a = CharLMStreams(ids, batch=4, seed=3)
    gaps = np.diff(np.sort(a.positions))
    assert a.offset == CharLMStreams(ids, batch=4, seed=3).offset and set(gaps.tolist()) <= {25, 75}
    for _ in range(37):
        a.next()
    state = json.loads(json.dumps(a.state_dict()))
    b = CharLMStreams(ids, batch=4)
    b.load_state_dict(state)
    for _ in range(150):
        xa, ya, ra = a.next()
        xb, yb, rb = b.next()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(ra, rb)
    with pytest.raises(ValueError, match="batch"):
        CharLMStreams(ids, batch=3).load_state_dict(state)
    with pytest.raises(ValueError, match="same training text"):
        CharLMStreams(np.arange(50) % 7, batch=4).load_state_dict(state)


@pytest.mark.parametrize("args, kwargs, exc, word", [
    ((np.arange(10), 0), {}, ValueError, "batch"), ((np.arange(10), 11), {}, ValueError, "batch"),
    ((np.arange(10.0), 2), {}, TypeError, "ids"), ((np.array([3]), 1), {}, ValueError, "ids"),
    ((np.arange(10).reshape(2, 5), 1), {}, ValueError, "ids"), ((np.arange(10), 2), {"n_symbols": 5}, ValueError,
                                                                  "n_symbols"),
    ((np.arange(10), 2), {"reset_every": 0}, ValueError, "reset_every"), ((np.arange(10), 2), {"seed": "x"},
                                                                          TypeError, "seed")])
def test_charlm_streams_bad_args(args, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        CharLMStreams(*args, **kwargs)


def test_eval_chunks_single_stream_is_the_whole_text():
    ids = np.array([2, 0, 1, 1, 3, 0, 2, 2, 1, 0, 3])
    chunks = list(eval_chunks(ids, chunk_len=4, n_symbols=5))
    assert [c[0].shape for c in chunks] == [(4, 1, 5), (4, 1, 5), (2, 1, 5)]
    xs = np.concatenate([c[0] for c in chunks])
    ys = np.concatenate([c[1] for c in chunks])
    assert np.array_equal(xs[:, 0], one_hot(ids[:-1], 5)) and np.array_equal(ys[:, 0], ids[1:])
    assert ys.dtype == np.int64 and xs.dtype == np.float64


def test_eval_chunks_segments_cover_every_prediction_once():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=103)
    pairs = []
    for xs, ys in eval_chunks(ids, chunk_len=7, streams=4):
        assert xs.shape[1:] == (4, 6) and ys.shape[1] == 4
        pad = ys < 0
        assert (xs[pad] == 0).all() and (xs[~pad].sum(-1) == 1).all()
        pairs += list(zip(xs[~pad].argmax(-1).tolist(), ys[~pad].tolist()))
    want = list(zip(ids[:-1].tolist(), ids[1:].tolist()))
    assert len(pairs) == 102 and sorted(pairs) == sorted(want)
    with pytest.raises(ValueError, match="streams"):
        eval_chunks(ids[:3], streams=3)
    with pytest.raises(ValueError, match="chunk_len"):
        eval_chunks(ids, chunk_len=0)


def test_bits_per_char():
    assert bits_per_char(10 * math.log(2), 10) == pytest.approx(1.0)
    assert bits_per_char(0.0, 3) == 0.0
    with pytest.raises(ValueError, match="count"):
        bits_per_char(1.0, 0)
    with pytest.raises(TypeError, match="count"):
        bits_per_char(1.0, 2.5)
    with pytest.raises(ValueError, match="total_nats"):
        bits_per_char(float("nan"), 3)


def test_one_hot_padding():
    out = one_hot(np.array([[1, -1], [0, 2]]), 3)
    assert out.shape == (2, 2, 3) and out[0, 1].sum() == 0 and out[1, 1, 2] == 1 and out.sum() == 3


# =============================================================================================
# real data (not part of the repository)
# =============================================================================================
@pytest.fixture(scope="module")
def ptb_corpus():
    return load_corpus(PTB / "ptb.char.train.txt.gz", PTB / "ptb.char.valid.txt", unknown="error")


@needs_ptb
def test_ptb_char_valid_and_test():
    valid = read_symbols(PTB / "ptb.char.valid.txt")
    assert len(valid) == 393_042
    v = Vocabulary.from_symbols(valid)
    assert v.size == 50 and "\n" in v.symbols and "_" in v.symbols and " " not in v.symbols
    assert v.decode(v.encode(valid)) == valid
    test = read_symbols(PTB / "ptb.char.test.txt")
    assert len(test) == 442_423 and len(set(test)) == 48
    # the README's derivation from the word-level file reproduces the parsed symbols
    words = (PTB / "ptb.valid.txt").read_text(encoding="utf-8").splitlines()
    assert valid == "\n".join(line.strip().replace(" ", "_") for line in words) + "\n"


@needs_ptb
def test_ptb_char_train_corpus(ptb_corpus):
    c = ptb_corpus
    assert c.train_ids.size == 5_017_482 and c.valid_ids.size == 393_042
    assert c.vocab.size == 50 and not c.vocab.unk and c.n_unknown == 0 and c.formats == ("ptb-char", "ptb-char")
    assert c.train_ids.dtype == np.int64 and c.train_ids.min() == 0 and c.train_ids.max() == 49
    assert c.vocab == Vocabulary.from_dict(json.loads(json.dumps(c.vocab.to_dict())))
    s = c.train_streams(batch=32)
    assert s.n_symbols == 50 and s.positions[1] == 5_017_482 // 32
    x, y, r = s.next()
    assert x.shape == (32, 50) and r.all()
    first = next(iter(c.eval_chunks(1000)))
    assert first[0].shape == (1000, 1, 50) and np.array_equal(first[1][:, 0], c.valid_ids[1:1001])


@needs_shakespeare
def test_tinyshakespeare():
    text = read_symbols(SHAKESPEARE)
    assert len(text) == 1_115_394 and detect_format(SHAKESPEARE) == "text"
    c = load_corpus(SHAKESPEARE)
    assert c.vocab.size == 65 and c.train_ids.size == 1_115_394 and c.vocab.decode(c.train_ids[:100]) == text[:100]


# =============================================================================================
# scripts/download_ptb.py
# =============================================================================================
@pytest.fixture(scope="module")
def dl():
    spec = importlib.util.spec_from_file_location("download_ptb", REPO / "scripts" / "download_ptb.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _add(tar, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _make_archive(path, names, extra=()):
    contents = {}
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "simple-examples/README", b"readme\n")
        for n in names:
            contents[n] = f"contents of {n}\n".encode()
            _add(tar, f"./simple-examples/data/{n}" if n.startswith("ptb.char") else f"simple-examples/data/{n}",
                 contents[n])
        for args in extra:
            _add(tar, *args)
    return contents


def test_download_script_from_local_archive(tmp_path, dl, capsys):
    contents = _make_archive(tmp_path / "se.tgz", dl.FILES)
    dest = tmp_path / "out" / "ptb"
    assert dl.main(["--archive", str(tmp_path / "se.tgz"), "--dest", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(dl.FILES)
    for n in dl.FILES:
        assert (dest / n).read_bytes() == contents[n]
    out = capsys.readouterr().out
    assert out.count("wrote ") == 6 and "ptb.char.train.txt" in out and "sha256" in out


def test_download_script_via_url(tmp_path, dl, capsys):
    contents = _make_archive(tmp_path / "se.tgz", dl.FILES)
    dest = tmp_path / "d"
    assert dl.main(["--url", (tmp_path / "se.tgz").as_uri(), "--dest", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(dl.FILES)  # archive and temp files removed
    assert (dest / "ptb.valid.txt").read_bytes() == contents["ptb.valid.txt"]
    assert dl.main(["--url", (tmp_path / "missing.tgz").as_uri(), "--dest", str(tmp_path / "e")]) == 1
    assert "--archive" in capsys.readouterr().err
    assert list((tmp_path / "e").iterdir()) == []


@pytest.mark.parametrize("extra, msg", [
    ((("../evil.txt", b"x"),), "path traversal"),
    ((("simple-examples/../../evil.txt", b"x"),), "path traversal"),
    ((("/tmp/evil.txt", b"x"),), "path traversal")])
def test_download_script_refuses_path_traversal(tmp_path, dl, capsys, extra, msg):
    _make_archive(tmp_path / "se.tgz", dl.FILES, extra)
    dest = tmp_path / "a" / "b"
    assert dl.main(["--archive", str(tmp_path / "se.tgz"), "--dest", str(dest)]) == 1
    assert msg in capsys.readouterr().err
    assert list(dest.iterdir()) == [] and not (tmp_path / "a" / "evil.txt").exists()


def test_download_script_refuses_bad_archives(tmp_path, dl, capsys):
    _make_archive(tmp_path / "partial.tgz", dl.FILES[:4])
    assert dl.main(["--archive", str(tmp_path / "partial.tgz"), "--dest", str(tmp_path / "p")]) == 1
    assert "ptb.valid.txt" in capsys.readouterr().err
    with tarfile.open(tmp_path / "link.tgz", "w:gz") as tar:
        for n in dl.FILES[:-1]:
            _add(tar, f"simple-examples/data/{n}", b"x")
        _add(tar, f"simple-examples/data/{dl.FILES[-1]}", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
    assert dl.main(["--archive", str(tmp_path / "link.tgz"), "--dest", str(tmp_path / "l")]) == 1
    assert "not a regular file" in capsys.readouterr().err
    (tmp_path / "junk.tgz").write_bytes(b"junk")
    assert dl.main(["--archive", str(tmp_path / "junk.tgz"), "--dest", str(tmp_path / "j")]) == 1
    assert dl.main(["--archive", str(tmp_path / "none.tgz"), "--dest", str(tmp_path / "j")]) == 1


def test_download_script_runs_as_a_program(tmp_path, dl):
    _make_archive(tmp_path / "se.tgz", dl.FILES)
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "download_ptb.py"), "--archive",
                          str(tmp_path / "se.tgz"), "--dest", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "cli" / "ptb.char.valid.txt").is_file() and "wrote" in res.stdout
