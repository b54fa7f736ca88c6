"""Curvature algorithms on explicit symmetric matrices and quadratics (no model needed)."""

import math

import numpy as np
import pytest

from rnnsim import curvature as cv

EIG_TOL = 1e-8


def sym(n, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return spread * (A + A.T) / 2


def spd(n, seed=0, kappa=1e3):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, kappa, n)
    return (Q * lam) @ Q.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lanczos_top_eigenvalue_full(seed):
    A = sym(40, seed)
    exact = np.linalg.eigvalsh(A)
    top = cv.top_eigenvalues(lambda v: A @ v, 40, k=3, n_steps=40, seed=seed)
    np.testing.assert_allclose(top, exact[::-1][:3], rtol=0, atol=EIG_TOL * abs(exact).max())
    low = cv.top_eigenvalues(lambda v: A @ v, 40, k=2, n_steps=40, which="smallest")
    np.testing.assert_allclose(low, exact[:2], rtol=0, atol=EIG_TOL * abs(exact).max())


def test_lanczos_top_eigenvalue_partial_run_converges():
    # 200 x 200 with a separated top eigenvalue: 60 steps suffice for 1e-8 relative.
    A = spd(200, 3, kappa=1e2)
    A += 50.0 * np.outer(np.ones(200), np.ones(200)) / 200
    exact = np.linalg.eigvalsh(A)[-1]
    top = cv.top_eigenvalues(lambda v: A @ v, 200, n_steps=60)
    assert abs(top[0] - exact) <= EIG_TOL * exact


def test_lanczos_vectors_orthonormal_and_tridiagonal():
    A = sym(30, 4)
    alpha, beta, Q = cv.lanczos(lambda v: A @ v, 30, 30, seed=1)
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-12)
    Tm = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    np.testing.assert_allclose(Q.T @ A @ Q, Tm, atol=1e-10)


def test_lanczos_stops_on_invariant_subspace():
    A = np.diag([1.0, 2.0, 3.0, 4.0, 5.0])
    v0 = np.array([1.0, 1.0, 0.0, 0.0, 0.0])  # spans an invariant subspace of dimension 2
    alpha, beta, Q = cv.lanczos(lambda v: A @ v, 5, 5, v0=v0)
    assert alpha.size == 2 and beta.size == 1
    np.testing.assert_allclose(
        np.linalg.eigvalsh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)), [1, 2]
    )


def test_hessian_matrix_columns():
    A = sym(7, 5)
    np.testing.assert_array_equal(cv.hessian_matrix(lambda v: A @ v, 7), A)


def test_slq_is_exact_quadrature():
    # sum_i tau_i theta_i^k = q^T A^k q for k < 2m; with a Rademacher q, q^T A q / n estimates tr/n.
    n = 25
    A = sym(n, 6)
    nodes = cv.spectral_density(lambda v: A @ v, n, n_vectors=3, n_steps=6, seed=2)
    rng = np.random.default_rng(2)
    for i in range(3):
        q = rng.choice(np.array([-1.0, 1.0]), size=n) / math.sqrt(n)
        sub = nodes[nodes["vector"] == i]
        th, w = sub["node"].to_numpy(), sub["weight"].to_numpy()
        assert abs(w.sum() - 1) < 1e-12
        for k in range(1, 12):
            exact = q @ np.linalg.matrix_power(A, k) @ q
            assert abs((w * th**k).sum() - exact) < 1e-9 * max(1.0, abs(exact))


def test_slq_density_matches_spectrum():
    n = 60
    A = sym(n, 7)
    lam = np.linalg.eigvalsh(A)
    nodes = cv.spectral_density(lambda v: A @ v, n, n_vectors=20, n_steps=n, seed=0)
    grid = np.linspace(lam.min() - 2, lam.max() + 2, 400)
    dens = cv.density_on_grid(nodes, grid, sigma=0.5)
    exact = np.exp(-0.5 * ((grid[:, None] - lam) / 0.5) ** 2).sum(1) / (
        n * 0.5 * math.sqrt(2 * math.pi)
    )
    dx = grid[1] - grid[0]
    assert abs(dens["density"].sum() * dx - 1) < 1e-3
    # mean absolute deviation of the densities, relative to the peak: Monte Carlo over 20 vectors
    assert np.abs(dens["density"].to_numpy() - exact).mean() < 0.15 * exact.max()


def test_hutchinson_exact_on_diagonal_and_unbiased():
    D = np.diag(np.arange(1.0, 11.0))
    est = cv.hutchinson_trace(lambda v: D @ v, 10, n_samples=5, seed=1)
    assert est["trace"] == pytest.approx(55.0, abs=1e-12)
    A = sym(30, 8)
    est = cv.hutchinson_trace(lambda v: A @ v, 30, n_samples=400, seed=1)
    assert abs(est["trace"] - np.trace(A)) < 5 * est["stderr"]


def test_condition_number_spd_exact():
    A = spd(20, 9, kappa=1e4)
    cn = cv.condition_number(lambda v: A @ v, 20, n_steps=20)
    assert cn["kappa"] == pytest.approx(1e4, rel=1e-6)
    assert cn["lambda_max"] == pytest.approx(1e4, rel=1e-10)
    assert cn["lambda_min"] == pytest.approx(1.0, rel=1e-6)


def test_step_curvature_formulas():
    A = spd(5, 10)
    g = np.arange(1.0, 6.0)
    rec = cv.step_curvature(g, lambda v: A @ v, 0.1)
    assert rec["gTg"] == pytest.approx(55.0)
    assert rec["gTHg"] == pytest.approx(g @ A @ g)
    assert rec["eps_star"] == pytest.approx(2 * 55.0 / (g @ A @ g))
    assert rec["predicted_change"] == pytest.approx(-0.1 * 55 + 0.005 * (g @ A @ g))
    neg = cv.step_curvature(g, lambda v: -A @ v, 0.1)
    assert neg["eps_star"] == math.inf and not neg["predicts_increase"]


@pytest.mark.parametrize("seed", [0, 1])
def test_unlearning_predicted_on_quadratic(seed):
    # L(w) = 1/2 w^T A w + c^T w is exactly quadratic: every loss-raising step is predicted.
    rng = np.random.default_rng(seed)
    n = 12
    A = sym(n, seed + 20, spread=3.0)  # indefinite
    A[0, 0] += 40.0
    c = rng.standard_normal(n)

    def loss(w):
        return 0.5 * w @ A @ w + c @ w

    n_raised = n_checked = 0
    for _ in range(300):
        w = rng.standard_normal(n) * 2
        g = A @ w + c
        lr = 10 ** rng.uniform(-3, 0.5)
        rec = cv.step_curvature(g, lambda v: A @ v, lr)
        actual = loss(w - lr * g) - loss(w)
        assert actual == pytest.approx(
            rec["predicted_change"], rel=1e-8, abs=1e-9 * abs(loss(w)) + 1e-12
        )
        if abs(rec["predicted_change"]) < 1e-8 * (
            abs(rec["first_order"]) + abs(rec["second_order"])
        ):
            continue  # too close to the boundary for float64 to decide
        n_checked += 1
        n_raised += actual > 0
        assert rec["predicts_increase"] == (actual > 0)
        if rec["gTHg"] > 0:
            assert (lr > rec["eps_star"]) == (actual > 0)
    assert n_checked > 250 and 20 < n_raised < n_checked - 20


def test_bad_input_names_argument():
    with pytest.raises(ValueError, match="lr"):
        cv.step_curvature(np.ones(3), lambda v: v, -1.0)
    with pytest.raises(TypeError, match="hvp"):
        cv.lanczos(3, 5, 5)
    with pytest.raises(ValueError, match="k must be"):
        cv.top_eigenvalues(lambda v: v, 3, k=4)
    with pytest.raises(ValueError, match="n_steps"):
        cv.lanczos(lambda v: v, 3, 0)


def test_callback_on_exactly_quadratic_model_predicts_every_raise():
    # One linear layer with squared error: the loss is exactly quadratic in all parameters, so the
    # callback's predicted change is the actual change and every loss-raising step is predicted.
    from rnnsim import MLP

    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 4)) * np.array([5.0, 1.0, 1.0, 0.2])
    t = rng.standard_normal((20, 2))
    n_raised = 0
    for lr in np.geomspace(1e-3, 0.5, 15):
        m = MLP([rng.standard_normal((2, 4))], [rng.standard_normal(2)], "linear")
        g = m.loss_and_grad_vector(x, t)[1]
        rec = cv.curvature_callback(lr)(0, m, x, t, g)
        assert rec["actual_change"] == pytest.approx(rec["predicted_change"], rel=1e-9, abs=1e-12)
        assert rec["prediction_correct"]
        n_raised += rec["raised_loss"]
    assert 0 < n_raised < 15


def test_callback_in_training_loop_rnn():
    from rnnsim import RNN, tasks
    from rnnsim.train import train

    task = tasks.make("adding", 10)
    m = RNN.random(task.d_in, 6, task.d_out, seed=0)
    cb = cv.curvature_callback(0.05, loss=task.loss, lanczos_steps=5)
    _, table = train(m, task, lr=0.05, steps=4, callback=cb, callback_every=2, eval_every=0)
    have = table.dropna(subset=["gTHg"])
    assert list(have["step"]) == [0, 2]
    for col in ("gTg", "eps_star", "predicted_change", "actual_change", "raised_loss", "kappa"):
        assert col in table
    np.testing.assert_allclose(np.sqrt(have["gTg"]), have["grad_norm"], rtol=1e-12)
    # small steps: the quadratic model is accurate to O(lr^3)
    rel = np.abs(have["actual_change"] - have["predicted_change"]) / np.abs(have["first_order"])
    assert (rel < 0.05).all()


def test_loss_change_terms_are_the_gain_and_the_positive_penalty_per_recorded_step():
    import pandas as pd

    records = pd.DataFrame(
        {
            "run": ["a", "a", "a", "b"],
            "step": [0, 5, 10, 0],
            "gTHg": [1.0, np.nan, -2.0, 3.0],
            "first_order": [-0.5, np.nan, -0.25, -1.5],
            "second_order": [0.125, np.nan, -0.5, 2.0],
            "raised_loss": [False, None, True, True],
        }
    )
    out = cv.loss_change_terms(records, ["run", "step"])
    assert list(out.columns) == ["run", "step", "raised_loss", "term", "value"]
    expected = []  # row by row: gains first, then penalties (NaN where not positive)
    for term in ("eps g^T g", "1/2 eps^2 g^T H g"):
        for _, r in records.iterrows():
            if math.isnan(r["gTHg"]):
                continue
            if term == "eps g^T g":
                value = -r["first_order"]
            else:
                value = r["second_order"] if r["second_order"] > 0 else np.nan
            expected.append((r["run"], r["step"], bool(r["raised_loss"]), term, value))
    assert [tuple(row[:4]) for row in expected] == list(
        out[["run", "step", "raised_loss", "term"]].itertuples(index=False, name=None)
    )
    np.testing.assert_array_equal(out["value"], [row[4] for row in expected])
    assert out["raised_loss"].dtype == bool
    with pytest.raises(ValueError, match="second_order"):
        cv.loss_change_terms(records.drop(columns="second_order"), ["run", "step"])
    with pytest.raises(TypeError, match="records"):
        cv.loss_change_terms(records.to_numpy(), ["run", "step"])


def test_smoothed_records_are_geometric_means_of_the_positive_entries_of_each_window():
    import pandas as pd

    records = pd.DataFrame(
        {
            "step": [0, 1, 2, 3, 4, 5, 6],
            "gTHg": [1.0, np.nan, 2.0, -1.0, np.nan, 3.0, 4.0],
            "lambda_max": [2.0, np.nan, 8.0, 4.0, np.nan, 0.5, 1.0],
            "eps_star": [1.0, np.nan, -3.0, 100.0, np.nan, 0.0, 10.0],
        },
        index=np.arange(10, 17),
    )
    out = cv.smoothed_records(records, ["lambda_max", "eps_star"], 3)
    kept = records[records["gTHg"].notna()]
    assert list(out.index) == list(kept.index)
    assert list(out.columns) == ["lambda_max_smooth", "eps_star_smooth"]
    for column in ("lambda_max", "eps_star"):
        values = kept[column].to_numpy()
        for i in range(values.size):
            window = [v for v in values[max(0, i - 2) : i + 1] if v > 0]
            expected = math.exp(sum(map(math.log, window)) / len(window)) if window else np.nan
            np.testing.assert_allclose(out[f"{column}_smooth"].iloc[i], expected, rtol=1e-14)
    assert np.isnan(
        cv.smoothed_records(records.iloc[[2]], ["eps_star"], 2)["eps_star_smooth"]
    ).all()
    with pytest.raises(ValueError, match="kappa"):
        cv.smoothed_records(records, ["kappa"], 3)
    with pytest.raises(ValueError, match="window"):
        cv.smoothed_records(records, ["lambda_max"], 0)
    with pytest.raises(TypeError, match="records"):
        cv.smoothed_records(records.to_numpy(), ["lambda_max"], 3)
