"""Atomic save and restore of an online run.

A checkpoint is one ``.npz`` file: the learner's arrays (parameters, optimizer moments,
estimator factors, states, accumulated gradients, TBPTT window) plus a JSON document under
the key ``__meta__`` holding scalars, random-generator states, the learner's configuration
and whatever the caller adds (task state, stream positions, metrics). It is written to a
temporary file in the same folder, flushed to disk and renamed over the old one, so an
interruption never leaves a half-written checkpoint.
"""
import hashlib
import json
import os
import zipfile

import numpy as np

from ._io import atomic_write

FORMAT = "oknumba-checkpoint"
#: the version written. 2: Kronecker estimators store their rows ``W`` and coefficients ``X``
VERSION = 2
#: versions that load: 1 (its Kronecker estimators hold the explicit factors ``At``, or — from
#: runs made after the stored-rows change but before the version bump — ``W`` and ``X``;
#: either loads) and 2
LOADABLE_VERSIONS = (1, 2)


def _digest(arrays):
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def save_checkpoint(path, learner, extra=None):
    """Write ``learner`` (and the JSON-able ``extra``) to ``path`` atomically."""
    arrays, meta = learner.state_dict()
    doc = {"format": FORMAT, "version": VERSION, "learner": meta, "extra": extra or {},
           "sha256": _digest(arrays)}
    payload = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, __meta__=payload, **arrays), binary=True, durable=True)


def load_checkpoint(path, learner):
    """Restore ``learner`` from ``path``; returns the ``extra`` document.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt file or
    one written by a run with different settings.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        doc = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path} is corrupt or not an oknumba checkpoint ({e})") from None
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not an oknumba checkpoint")
    if doc.get("version") not in LOADABLE_VERSIONS:
        raise ValueError(f"{path} is an oknumba checkpoint of version {doc.get('version')!r}; this"
                         f" oknumba loads versions {list(LOADABLE_VERSIONS)} (upgrade oknumba to load it)")
    if doc.get("sha256") != _digest(arrays):
        raise ValueError(f"checkpoint {path} is corrupt: its arrays do not match the stored checksum")
    learner.load_state_dict(arrays, doc["learner"])
    return doc["extra"]
