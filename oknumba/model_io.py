"""Saved models: one ``.npz`` with the parameters and the configuration, and loading a model
from such a file or from a training run folder.

A model file holds ``W`` (``W0`` … for a stack of layers) and ``V`` and a JSON ``config`` entry: ``format`` ("oknumba-model"),
``version``, ``cell``, ``n_in``, ``n_hidden``, ``n_out``, ``dtype``, ``readout``, ``depth``, ``layers``
and, for a character model, ``vocab`` (:meth:`oknumba.tasks.text.Vocabulary.to_dict`). Loading checks
every entry and the arrays' shapes and dtype against the configuration, and refuses a file
that does not match with a message naming what differs.
"""
import json
import os

import numpy as np

from ._io import atomic_write

MODEL_FORMAT = "oknumba-model"
MODEL_VERSION = 1
#: versions :func:`load_model` reads
READABLE_VERSIONS = (1,)


class ModelFileError(ValueError):
    """A model file (or run folder) that cannot be loaded; the message says why."""


def model_config(model, vocab=None):
    cfg = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "cell": model.cell_name,
           "n_in": model.n_in, "n_hidden": model.n_hidden, "n_out": model.n_out,
           "dtype": model.dtype.name, "readout": model.readout.name, "layers": model.layers,
           "depth": list(model.cell.depth) if model.layers > 1 else model.cell.depth}
    if vocab is not None:
        cfg["vocab"] = vocab if isinstance(vocab, dict) else vocab.to_dict()
    return cfg


def save_model(model, path, vocab=None):
    """Write ``model`` (and an optional vocabulary) to ``path`` (``.npz`` is added to a name
    without it); returns the path written."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    model.check_params()
    params = dict(model.params)
    cfg = json.dumps(model_config(model, vocab))
    atomic_write(path, lambda f: np.savez(f, **params, config=np.array(cfg)), binary=True)
    return path


def load_model(path):
    """A model from a file written by :meth:`oknumba.RNN.save`, or from a run folder of
    ``oknumba train`` (its ``config.json`` and ``params.npz``). The vocabulary, if any, is
    on ``model.vocab`` (a dict; None otherwise)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return _load_run_folder(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such model file or run folder")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path} is not a readable .npz model file ({e})") from None
    if "config" not in arrays:
        raise ModelFileError(f"{path} holds no model configuration (not written by RNN.save?)")
    try:
        cfg = json.loads(str(arrays["config"]))
    except ValueError as e:
        raise ModelFileError(f"{path}: its configuration is not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not an oknumba model file")
    if cfg.get("version") not in READABLE_VERSIONS:
        raise ModelFileError(f"{path} has model format version {cfg.get('version')}; this oknumba reads"
                             f" {list(READABLE_VERSIONS)}")
    return _build(cfg, arrays, path)


def _build(cfg, arrays, where):
    from .model import RNN

    missing = [k for k in ("cell", "n_in", "n_hidden", "n_out", "dtype") if k not in cfg]
    if missing:
        raise ModelFileError(f"{where}: the configuration lacks {missing}")
    try:
        model = RNN(cfg["cell"], cfg["n_in"], cfg["n_hidden"], cfg["n_out"],
                    dtype=np.dtype(cfg["dtype"]), readout=cfg.get("readout", "softmax"),
                    depth=cfg.get("depth", 1), layers=cfg.get("layers"))
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: {e}") from None
    for k in list(model.params):
        if k not in arrays:
            raise ModelFileError(f"{where} has no parameter array {k!r}")
        want = model.params[k]
        a = arrays[k]
        if a.shape != want.shape or a.dtype != want.dtype:
            raise ModelFileError(f"{where}: {k} is {a.dtype}{a.shape}, but the configuration ({cfg['cell']}"
                                 f" n_in={cfg['n_in']} n={cfg['n_hidden']} n_out={cfg['n_out']}"
                                 f" {cfg['dtype']}) needs {want.dtype}{want.shape}")
        model.params[k] = np.ascontiguousarray(a)
    try:
        model.check_params()
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: {e}") from None
    model.vocab = cfg.get("vocab")
    return model


def _load_run_folder(folder):
    from .run_folder import CONFIG_FILE, PARAMS_FILE

    cfg_path, params_path = os.path.join(folder, CONFIG_FILE), os.path.join(folder, PARAMS_FILE)
    for p in (cfg_path, params_path):
        if not os.path.exists(p):
            raise ModelFileError(f"{folder} is not a finished or interrupted run folder ({os.path.basename(p)}"
                                 " is missing)")
    try:
        with open(cfg_path) as f:
            doc = json.load(f)
        with np.load(params_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{folder}: cannot read the run ({e})") from None
    learner = doc.get("learner") if isinstance(doc, dict) else None
    if not isinstance(learner, dict):
        raise ModelFileError(f"{cfg_path} is not an oknumba run config (no learner entry)")
    cfg = {k: learner.get(k) for k in ("cell", "n_in", "n_hidden", "n_out", "dtype")}
    cfg["readout"] = learner.get("readout", "softmax")
    cfg["depth"] = learner.get("depth", 1)
    cfg["layers"] = learner.get("layers")
    if isinstance(doc.get("vocab"), dict):
        cfg["vocab"] = doc["vocab"]
    return _build(cfg, arrays, folder)


__all__ = ["save_model", "load_model", "ModelFileError", "MODEL_FORMAT", "MODEL_VERSION"]
