"""Largest relative errors of the exact checks (float64), per cell.

    python scripts/accuracy_report.py

Checks: H and F = Σ ĥ⊗D against central finite differences of one forward step (B = 3,
one stream just reset); rtrl vs bptt and ok (rank = a) vs rtrl on random sequences with
resets; bptt vs finite differences of sequence_loss on 20 random coordinates; tbptt with
k ≥ T vs bptt; float32 vs float64 gradients. Relative error = max|x − ref| / max|ref|.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import oknumba  # noqa: E402
from oknumba.testing import loss_gradient_fd, step_jacobians, step_jacobians_fd  # noqa: E402
from oknumba.testing import rel_err as rel  # noqa: E402


def report(cell_name, eps=1e-6):
    model = oknumba.RNN(cell_name, 3, 6, 5, seed=0, init="normal", init_scale=0.5)
    cell, W = model.cell, model.params["W"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 3))
    s_prev = rng.normal(scale=0.8, size=(3, cell.S))
    s_prev[0] = 0.0
    _, H, F = step_jacobians(cell, W, x, s_prev)
    fdH, fdF = step_jacobians_fd(cell, W, x, s_prev, eps)
    T, B = 12, 3
    xs = rng.normal(size=(T, B, 3))
    ys = rng.integers(-1, 5, size=(T, B))
    resets = rng.random((T, B)) < 0.15
    _, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    _, gr = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    _, go = oknumba.sequence_grad(model, xs, ys, "ok", resets=resets, rank=cell.a, seed=0)
    _, gt = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=resets, truncation=T)
    worst_fd = 0.0
    scale = max(np.abs(gb["W"]).max(), np.abs(gb["V"]).max())
    for k in ("W", "V"):
        idx = rng.choice(model.params[k].size, size=10, replace=False)
        fd = loss_gradient_fd(model, xs, ys, resets, k, idx, eps)
        worst_fd = max(worst_fd, np.abs(fd - gb[k].reshape(-1)[idx]).max() / scale)
    m32 = oknumba.RNN(cell_name, 3, 6, 5, seed=0, init="normal", init_scale=0.5, dtype=np.float32)
    _, g32 = oknumba.sequence_grad(m32, xs.astype(np.float32), ys, "rtrl", resets=resets)
    return {"H vs FD": rel(H, fdH), "F=ĥ⊗D vs FD": rel(F, fdF),
            "rtrl vs bptt": max(rel(gr[k], gb[k]) for k in gb), "bptt vs FD": worst_fd,
            "tbptt(k≥T) vs bptt": rel(gt["W"], gb["W"]), "ok(r=a) vs rtrl": rel(go["W"], gr["W"]),
            "float32 vs float64": max(rel(g32[k], gr[k]) for k in gr)}


if __name__ == "__main__":
    from oknumba.cells import CELLS

    rows = {c: report(c) for c in CELLS}
    checks = list(next(iter(rows.values())))
    print(f"{'check':<22}" + "".join(f"{c:>11}" for c in rows))
    for chk in checks:
        print(f"{chk:<22}" + "".join(f"{rows[c][chk]:>11.1e}" for c in rows))
