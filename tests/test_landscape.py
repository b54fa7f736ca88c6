"""The landscape tools: lines, slices, ravines, plateaus, minima (the cliff: tests/test_cliff.py)."""

import math

import numpy as np
import pandas as pd
import pytest

from rnnsim import MLP, RNN
from rnnsim import landscape as L


def small_rnn(seed=0):
    rng = np.random.default_rng(seed)
    m = RNN.random(2, 5, 1, seed=seed)
    x, t = rng.standard_normal((8, 6, 2)), rng.standard_normal((6, 1))
    return m, x, t


def test_filter_normalized_direction_rows_and_biases():
    m, _, _ = small_rnn()
    d = L.filter_normalized_direction(m, 3)
    n, d_in = 5, 2
    W = d[: n * n].reshape(n, n)
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), np.linalg.norm(m.W, axis=1), rtol=1e-12)
    U = d[n * n : n * n + n * d_in].reshape(n, d_in)
    np.testing.assert_allclose(np.linalg.norm(U, axis=1), np.linalg.norm(m.U, axis=1), rtol=1e-12)
    assert np.all(d[n * n + n * d_in : n * n + n * d_in + n] == 0) and d[-1] == 0
    mm = MLP.random(4, 2, seed=0, n_out=2)
    dm = L.filter_normalized_direction(mm, 0)
    W1 = dm[:16].reshape(4, 4)
    np.testing.assert_allclose(np.linalg.norm(W1, axis=1), np.linalg.norm(mm.weights[0], axis=1))
    assert np.all(dm[16:20] == 0)


def test_interpolation_endpoints_and_slope():
    m, x, t = small_rnn()
    m1 = m.with_params(m.params_vector() + 0.2)
    tab = L.interpolate(m, m1, x, t, alphas=[0.0, 0.5, 1.0])
    assert tab["loss"].iloc[0] == pytest.approx(m.loss_and_grad(x, t)[0], rel=1e-14)
    assert tab["loss"].iloc[2] == pytest.approx(m1.loss_and_grad(x, t)[0], rel=1e-14)
    eps = 1e-6
    fine = L.interpolate(m, m1, x, t, alphas=[0.5 - eps, 0.5 + eps])
    fd = (fine["loss"].iloc[1] - fine["loss"].iloc[0]) / (2 * eps)
    assert fd == pytest.approx(tab["directional_slope"].iloc[1], rel=1e-6)


def test_slice_2d_centre_and_shape():
    m, x, t = small_rnn()
    s = L.slice_2d(m, x, t, span=0.5, n=5, seed=1)
    assert len(s) == 25
    centre = s[(s["a"] == 0) & (s["b"] == 0)]["loss"].iloc[0]
    assert centre == pytest.approx(m.loss_and_grad(x, t)[0], rel=1e-14)


def test_ravine_metrics_on_known_quadratic_geometry():
    # A linear one-layer MLP with badly scaled inputs: the Hessian is (1/B) X^T X (kron) I, known.
    rng = np.random.default_rng(2)
    B = 50
    x = rng.standard_normal((B, 3)) * np.array([10.0, 1.0, 0.1])
    t = rng.standard_normal((B, 1))
    m = MLP([np.zeros((1, 3))], [np.zeros(1)], "linear")
    Xa = np.c_[x, np.ones(B)]
    lam = np.linalg.eigvalsh(Xa.T @ Xa / B)
    path = np.array([m.params_vector(), m.params_vector() + np.array([0.0, 0.0, 1.0, 0.0])])
    rv = L.ravine_metrics(m, path, x, t, lanczos_steps=4, n_probe=200)
    assert rv["lambda_max"].iloc[0] == pytest.approx(lam.max(), rel=1e-10)
    rms = math.sqrt((lam**2).mean())
    assert rv["rms_eigenvalue"].iloc[0] == pytest.approx(rms, rel=0.3)
    # the path runs along the weak (0.1-scaled) input direction: tiny curvature along it
    assert rv["path_curvature"].iloc[0] == pytest.approx((x[:, 2] ** 2).mean(), rel=1e-10)
    assert rv["ravine_ratio"].iloc[0] > 1.5


def test_detect_plateaus_finds_the_flat_stretch():
    loss = np.r_[np.linspace(1, 0.9, 30), np.full(40, 0.9), np.linspace(0.9, 0.1, 30)]
    grad = np.r_[np.ones(30), np.full(40, 1e-4), np.ones(30)]
    tab = pd.DataFrame({"step": np.arange(100) * 10, "loss": loss, "grad_norm": grad})
    p = L.detect_plateaus(tab, grad_tol=1e-3, loss_tol=1e-3)
    assert len(p) == 1
    assert (p["start_step"].iloc[0], p["end_step"].iloc[0], p["length"].iloc[0]) == (300, 690, 40)
    assert len(L.detect_plateaus(tab, grad_tol=1e-3, loss_tol=1e-3, min_length=41)) == 0
    with pytest.raises(ValueError, match="grad_norm"):
        L.detect_plateaus(tab.drop(columns="grad_norm"), grad_tol=1, loss_tol=1)


def test_minima_summary_and_distances():
    m, x, t = small_rnn()
    ms = [m, m.with_params(m.params_vector() * 1.1)]
    summ = L.minima_summary(ms, x, t, lanczos_steps=m.n_params)
    from rnnsim.curvature import hessian_matrix

    Hm = hessian_matrix(m.hvp_operator(x, t), m.n_params)
    assert summ["sharpness"].iloc[0] == pytest.approx(
        np.linalg.eigvalsh((Hm + Hm.T) / 2)[-1], rel=1e-8
    )
    d = L.pairwise_distances(ms)
    assert d["distance"].iloc[0] == pytest.approx(0.1 * np.linalg.norm(m.params_vector()))


def test_path_callback_records_the_parameters_before_each_recorded_step():
    from rnnsim import tasks
    from rnnsim.train import train

    task = tasks.make("teacher")
    m = MLP.random(4, 2, n_in=task.d_in, n_out=task.d_out, seed=1)
    kw = dict(lr=0.05, batch_size=8, seed=3, eval_every=0, early_stop=False)
    path = []
    final, log = train(m, task, steps=9, callback=L.path_callback(path), callback_every=4, **kw)
    assert [s for s, _ in path] == [0, 4, 8]
    assert list(log.columns) == list(train(m, task, steps=9, **kw)[1].columns)  # adds no columns
    # independently: a run stopped after k updates ends where the recorded run stood before step k
    for k, theta in path:
        want = m.params_vector() if k == 0 else train(m, task, steps=k, **kw)[0].params_vector()
        np.testing.assert_array_equal(theta, want)
    assert not np.array_equal(path[-1][1], final.params_vector())
    with pytest.raises(TypeError, match="path"):
        L.path_callback(())


def test_hessian_density_spans_the_exact_spectrum_and_integrates_to_one():
    from rnnsim.curvature import hessian_matrix

    m, x, t = small_rnn()
    H = hessian_matrix(m.hvp_operator(x, t), m.n_params)
    lam = np.linalg.eigvalsh((H + H.T) / 2)
    d = L.hessian_density(m, x, t, n_vectors=3, n_steps=m.n_params, n_grid=2001)
    # full-length Lanczos: the extreme Ritz values are the extreme eigenvalues
    s = lam[-1] - lam[0]
    ev = d["eigenvalue"].to_numpy()
    np.testing.assert_allclose([ev[0], ev[-1]], [lam[0] - 0.05 * s, lam[-1] + 0.05 * s], rtol=1e-8)
    assert len(d) == 2001 and d["sigma"].iloc[0] == pytest.approx(0.02 * s, rel=1e-8)
    # Gaussian tails beyond the 5% margins (2.5 sigma) hold < 1% of the mass of the end nodes
    assert np.trapezoid(d["density"], ev) == pytest.approx(1.0, abs=1e-2)
    with pytest.raises(ValueError, match="width"):
        L.hessian_density(m, x, t, width=0.0)
    with pytest.raises(ValueError, match="n_grid"):
        L.hessian_density(m, x, t, n_grid=1)


def test_survey_measures_every_part_of_the_run_on_the_held_out_batch():
    from rnnsim.curvature import hessian_matrix

    m0 = MLP.random(3, 1, n_in=2, n_out=1, activation="tanh", seed=0)  # 13 parameters
    m1 = m0.with_params(m0.params_vector() + 0.1)
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((20, 2)), rng.standard_normal((20, 1))
    path = [(0, m0.params_vector()), (150, m1.params_vector())]
    grad = np.r_[np.full(100, 2.0), np.full(120, 0.1), np.full(80, 2.0)]  # flat from step 100
    log = pd.DataFrame({"step": np.arange(300), "loss": 1.0, "grad_norm": grad})
    tab = L.survey(m0, m1, path, log, x, t, seed=4)
    assert list(dict.fromkeys(tab["kind"])) == [
        "train", "interpolation", "slice", "ravine", "density", "minimum", "plateau", "params"
    ]  # fmt: skip
    part = {k: g.dropna(axis=1, how="all") for k, g in tab.groupby("kind")}
    assert list(part["train"]["step"]) == list(range(0, 300, 10))
    line = part["interpolation"].set_index("alpha")["loss"]
    assert len(line) == 41 and (line.index.min(), line.index.max()) == (-0.5, 1.5)
    assert line[0.0] == pytest.approx(m0.loss_and_grad(x, t)[0], rel=1e-14)
    assert line[1.0] == pytest.approx(m1.loss_and_grad(x, t)[0], rel=1e-14)
    sl = part["slice"]
    assert len(sl) == 225 and "seed" not in sl
    centre = sl[(sl["a"] == 0) & (sl["b"] == 0)]["loss"].iloc[0]
    assert centre == pytest.approx(m1.loss_and_grad(x, t)[0], rel=1e-14)
    assert list(part["ravine"]["step"]) == [0, 150]
    H = hessian_matrix(m1.hvp_operator(x, t), m1.n_params)
    top = np.linalg.eigvalsh((H + H.T) / 2)[-1]
    assert part["minimum"]["sharpness"].iloc[0] == pytest.approx(top, rel=1e-8)
    d = part["density"]
    assert np.trapezoid(d["density"], d["eigenvalue"]) == pytest.approx(1.0, abs=0.05)
    # plateau: the 50-step mean of ||g|| under half the first 50 steps' mean (2.0), flat loss
    (plateau,) = part["plateau"].itertuples()
    assert plateau.length >= 100 and 100 <= plateau.start_step < 150
    np.testing.assert_array_equal(part["params"]["value"], m1.params_vector())


def test_survey_summary_averages_minima_and_measures_distances_across_runs():
    theta = {0: np.array([3.0, 4.0]), 1: np.array([3.0, 0.0]), 2: np.array([1.0, 1.0])}
    rows = []
    for (model, seed), (loss, sharp) in {("a", 0): (1.0, 10.0), ("a", 1): (3.0, 30.0),
                                         ("b", 2): (5.0, 50.0)}.items():  # fmt: skip
        rows.append({"model": model, "seed": seed, "kind": "minimum", "loss": loss,
                     "sharpness": sharp, "param_norm": np.linalg.norm(theta[seed])})  # fmt: skip
        rows += [{"model": model, "seed": seed, "kind": "params", "index": i, "value": v}
                 for i, v in enumerate(theta[seed])]  # fmt: skip
    rows += [{"model": "a", "seed": 0, "kind": "plateau", "length": n} for n in (120, 300)]
    s = L.survey_summary(pd.DataFrame(rows), ["model"])
    assert list(s["model"]) == ["a", "b"]
    np.testing.assert_allclose(s["mean loss"], [2.0, 5.0])
    np.testing.assert_allclose(s["mean sharpness"], [20.0, 50.0])
    rel = np.linalg.norm(theta[0] - theta[1]) / np.mean([5.0, 3.0])  # 4 / 4
    np.testing.assert_allclose(s["mean relative distance"], [rel, np.nan])
    assert list(s["plateau steps: count"]) == [2, 0]  # "b" had none
    np.testing.assert_array_equal(s["plateau steps: max"], [300.0, np.nan])
    no_plateaus = L.survey_summary(
        pd.DataFrame([r for r in rows if r["kind"] != "plateau"]), ["model"]
    )
    assert list(no_plateaus["plateau steps: count"]) == [0, 0]
    assert no_plateaus["plateau steps: max"].dtype == np.float64
    with pytest.raises(ValueError, match=r"columns \['seed'\].*landscape.survey"):
        L.survey_summary(pd.DataFrame(rows).drop(columns="seed"), ["model"])
    with pytest.raises(TypeError, match="table must be a pandas DataFrame"):
        L.survey_summary(rows, ["model"])
