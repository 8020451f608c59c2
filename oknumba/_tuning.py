"""Choices between equivalent code paths, measured once per machine and remembered.

Some kernels have variants whose speed depends on the machine (the register-block shape of
the Gram pass runs 1.6× faster as 2 × 4 than as 4 × 4 on an AVX2-only Zen 3, whose 16 vector
registers cannot hold 16 accumulators and their operands), and whose bits may too (on AVX-512
the compiler sums the 2 × 4 block's pairs in another order). :func:`tuned_choice` times every
variant on a probe of the real shape, keeps only those whose output equals the first
variant's bit for bit, and remembers the fastest:

* in memory for the process, and
* on disk, in a JSON file keyed by the machine (CPU name and features as LLVM sees them, and
  the Numba version) and stamped with the hash of the package's source that the compiled
  kernels are keyed on (:func:`oknumba._jit.package_source_hash`): a machine's choices made
  for other kernels are measured again and replaced. Later processes on the same machine and
  the same source reuse them without measuring:
  ``$OKNUMBA_TUNING_CACHE`` if set (``0`` or an empty value: no file), else
  ``$XDG_CACHE_HOME/oknumba/tuning.json`` (``~/.cache/oknumba/tuning.json``). A file that
  cannot be read or written is ignored.

Because a candidate that changes any bit is never chosen, the choice changes speed only:
results stay reproducible across processes, checkpoints and machines that choose differently.
"""
import hashlib
import json
import os
import pathlib
import statistics
import tempfile
import time

import numpy as np

#: timing rounds per candidate (the candidates alternate within each round)
ROUNDS = 5
#: seconds each candidate's sample aims at
SAMPLE_SECONDS = 0.002

_memory = {}
_machine = None


def machine_key():
    """A short hash of the CPU as the kernels are compiled for it (LLVM's host CPU name and
    feature string) and the Numba version."""
    global _machine
    if _machine is None:
        import numba
        from llvmlite import binding

        text = "|".join((binding.get_host_cpu_name(), binding.get_host_cpu_features().flatten(),
                         numba.__version__))
        _machine = hashlib.sha256(text.encode()).hexdigest()[:16]
    return _machine


#: the entry of a machine's choices that holds the kernels' source stamp
KERNELS_KEY = "_kernels"


def kernels_stamp():
    """The source hash the stored choices were made for (:func:`oknumba._jit.package_source_hash`,
    the one the on-disk kernel cache is keyed on)."""
    from ._jit import package_source_hash

    return package_source_hash()[:16]


def _machine_choices(data):
    """This machine's stored choices in the file's ``data``, or None when there are none made
    for these kernels."""
    mine = data.get(machine_key())
    return mine if isinstance(mine, dict) and mine.get(KERNELS_KEY) == kernels_stamp() else None


def cache_path():
    """The tuning file (see the module docstring), or None when disabled."""
    env = os.environ.get("OKNUMBA_TUNING_CACHE")
    if env is not None:
        return None if env in ("", "0") else pathlib.Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "oknumba" / "tuning.json"


def _read(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path, key, choice):
    """Add ``key: choice`` under this machine's entry, atomically (a concurrent writer may
    win; both wrote a valid choice)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read(path)
        mine = _machine_choices(data)
        if mine is None:                    # none yet, or made for other kernels: start anew
            mine = data[machine_key()] = {KERNELS_KEY: kernels_stamp()}
        mine[key] = choice
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tuning-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _time_once(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def measure(candidates, make_call):
    """Median seconds per call of each candidate's ``make_call(c)`` (which returns ``(call,
    output)``: a function to time and the array it writes), with the candidates alternating
    in each of :data:`ROUNDS` rounds; a candidate whose output after its calls differs from
    the first candidate's in any bit gets ``None``."""
    calls, outputs = [], []
    for c in candidates:
        call, out = make_call(c)
        call()                              # compiles / warms
        calls.append(call)
        outputs.append(out)
    reps = [max(1, int(SAMPLE_SECONDS / max(_time_once(call, 1), 1e-7))) for call in calls]
    samples = [[] for _ in candidates]
    for _ in range(ROUNDS):
        for i, call in enumerate(calls):
            samples[i].append(_time_once(call, reps[i]))
    ref = outputs[0]
    return [statistics.median(s) if np.array_equal(o, ref) else None for s, o in zip(samples, outputs)]


def tuned_choice(name, shape_key, candidates, make_call, timer=measure):
    """The fastest of ``candidates`` (JSON-able values; the first is the reference) for the
    kernel family ``name`` at ``shape_key``, measured by ``timer(candidates, make_call)`` on
    first use and remembered (module docstring). ``make_call(c)`` returns ``(call, output)``:
    every candidate must write the same ``output`` bits as the first, or it is not chosen."""
    key = f"{name}:{shape_key}"
    if key in _memory:
        return _memory[key]
    path = cache_path()
    if path is not None:
        stored = _machine_choices(_read(path)) or {}
        if stored.get(key) in candidates:
            _memory[key] = stored[key]
            return stored[key]
    times = timer(list(candidates), make_call)
    valid = [(t, i) for i, t in enumerate(times) if t is not None]
    choice = candidates[min(valid)[1]] if valid else candidates[0]
    _memory[key] = choice
    if path is not None:
        _write(path, key, choice)
    return choice
