"""Jacobian products: norms and singular values against explicit products and exact cases."""

import numba
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ortho_group

from rnnsim import MLP, RNN
from rnnsim import reference as ref
from rnnsim.jacobians import (
    frobenius_norms,
    gradient_contributions,
    growth_rate,
    jacobian_norms,
    jacobian_spectrum,
    log_singular_values,
)
from rnnsim.kernels import linalg, norms, spectrum
from rnnsim.kernels.linalg import routine_addresses

# The issue's tolerance for Jacobian products against explicit NumPy products. The kernels' spectral
# norms come from Lanczos stopped at 1e-11 relative residual, so 1e-8 leaves three digits of margin.
PROD_RTOL = 1e-8


def _rnn(n, activation, gain, seed, d_in=3):
    return RNN.random(d_in, n, 2, activation=activation, gain=gain, bias_std=0.1, seed=seed)


def _explicit(model, x, b, direction):
    Js, _ = ref.rnn_step_jacobians(
        model.W, model.U, model.b, x[:, b], np.zeros(model.n_hidden), model.activation
    )
    return Js


def _assert_rnn_norms_exact(model, x, direction):
    """`jacobian_norms` of an RNN against explicit products of explicit Jacobians, per sample;
    returns the table."""
    table = jacobian_norms(model, x, direction=direction)
    for b in range(x.shape[1]):
        rows = table[table["sample"] == b].sort_values("step")
        _assert_norms(rows, _explicit(model, x, b, direction), direction)
    return table


def _assert_mlp_norms_exact(model, x, direction):
    """As `_assert_rnn_norms_exact`, for an MLP and samples x (B, n_in)."""
    table = jacobian_norms(model, x, direction=direction)
    for b in range(x.shape[0]):
        Js = ref.mlp_layer_jacobians(model.weights, model.biases, model.activation, x[b])
        _assert_norms(table[table["sample"] == b].sort_values("layer"), Js, direction)
    return table


def _assert_norms(rows, Js, direction):
    log_spec, log_fro = ref.product_norms(Js, direction)
    np.testing.assert_allclose(rows["log_spectral"], log_spec, rtol=0, atol=PROD_RTOL)
    np.testing.assert_allclose(rows["log_frobenius"], log_fro, rtol=0, atol=PROD_RTOL)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_rnn_norms_match_explicit_products(activation, direction, rng):
    model = _rnn(10, activation, 1.2 if activation != "sigmoid" else 4.0, seed=3)
    x = rng.normal(size=(25, 2, 3))
    table = _assert_rnn_norms_exact(model, x, direction)
    assert len(table) == 2 * 26
    want_lag = 25 - table["step"] if direction == "backward" else table["step"]
    np.testing.assert_array_equal(table["lag"], want_lag)


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_mlp_norms_match_explicit_products_with_uneven_widths(direction, rng):
    model = MLP.random([9, 12, 7, 11, 10], 5, n_in=6, sigma_w=1.5, sigma_b=0.1, seed=2)
    _assert_mlp_norms_exact(model, rng.normal(size=(3, 6)), direction)


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_norms_beside_the_product_in_threads_match_explicit_products(direction, rng):
    """Products this large are split over the cores, with one core also running the Lanczos
    iteration of the previous product (`push_and_record`); the norms must not change."""
    model = _rnn(104, "tanh", 1.5, seed=7)  # 104^3 > 2^20: split (column_chunks)
    table = _assert_rnn_norms_exact(model, rng.normal(size=(30, 2, 3)), direction)
    assert (table["lanczos_iterations"] > 1).any()
    mlp = MLP.random([120, 105, 112], 3, n_in=110, sigma_w=1.5, sigma_b=0.1, seed=3)
    _assert_mlp_norms_exact(mlp, rng.normal(size=(2, 110)), direction)


def test_a_product_that_becomes_exactly_zero_has_log_norms_minus_inf():
    n = 4
    model = RNN(np.zeros((n, n)), np.ones((n, 1)), np.zeros(n), np.zeros((1, n)), np.zeros(1))
    for direction in ("backward", "forward"):
        table = jacobian_norms(model, np.ones((3, 1, 1)), direction=direction)
        live = table["lag"] == 0  # the identity
        np.testing.assert_array_equal(table.loc[live, "log_frobenius"], 0.5 * np.log(n))
        assert (table.loc[~live, ["log_spectral", "log_frobenius"]] == -np.inf).all(axis=None)


def test_lanczos_fallback_to_svd_gives_the_same_norms(rng):
    model = _rnn(12, "tanh", 1.5, seed=4)
    H, _ = model.forward(rng.normal(size=(30, 1, 3)))
    u0 = rng.normal(size=12)
    routines = routine_addresses()
    fast = norms.rnn_jacobian_norms(model.W, H, 1, True, u0, 1e-11, 60, routines)
    slow = norms.rnn_jacobian_norms(model.W, H, 1, True, u0, 1e-11, 1, routines)  # 1 step: SVD
    assert (slow[2][0, :-1] == -1).sum() > 20
    assert (fast[2] >= 0).all()
    np.testing.assert_allclose(fast[0], slow[0], rtol=0, atol=1e-10)


def test_orthogonal_linear_rnn_preserves_norms_at_every_lag(rng):
    n, T = 16, 300
    W = ortho_group.rvs(n, random_state=1)
    model = RNN(W, rng.normal(size=(n, 2)), np.zeros(n), np.zeros((1, n)), np.zeros(1), "linear")
    for direction in ("backward", "forward"):
        table = jacobian_norms(model, rng.normal(size=(T, 2, 2)), direction=direction)
        np.testing.assert_allclose(table["log_spectral"], 0.0, atol=1e-10)
        np.testing.assert_allclose(table["log_frobenius"], 0.5 * np.log(n), atol=1e-10)


def test_contracting_tanh_rnn_never_exceeds_lag_times_log_s(rng):
    n, s = 20, 0.8
    A = rng.normal(size=(n, n))
    W = s * A / np.linalg.norm(A, 2)
    model = RNN(W, rng.normal(size=(n, 3)), rng.normal(size=n), np.zeros((1, n)), np.zeros(1))
    table = jacobian_norms(model, rng.normal(size=(200, 3, 3)))
    assert (table["log_spectral"] <= table["lag"] * np.log(s) + 1e-10).all()
    # ... and the bound is not vacuous: the first lag comes within a factor of the bound
    assert (table[table["lag"] == 1]["log_spectral"] > np.log(s) - 1.0).all()


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="100,000 steps of plain Python")
@pytest.mark.parametrize(("gain", "activation"), [(3.0, "tanh"), (0.3, "linear")])
def test_hundred_thousand_steps_stay_finite_and_exact(gain, activation, rng):
    n, T = 64, 100_000
    if activation == "linear":  # scaled orthogonal: log norms are exactly lag * ln(gain)
        n = 8
        W = gain * ortho_group.rvs(n, random_state=2)
        model = RNN(W, np.zeros((n, 1)), np.zeros(n), np.zeros((1, n)), np.zeros(1), "linear")
        x = np.zeros((T, 1, 1))
    else:
        model = RNN.random(1, n, 1, gain=gain, seed=5)
        x = rng.normal(size=(T, 1, 1))
    table = jacobian_norms(model, x, direction="backward")
    assert np.isfinite(table[["log_spectral", "log_frobenius"]].to_numpy()).all()
    if activation == "linear":
        want = table["lag"] * np.log(gain)
        np.testing.assert_allclose(table["log_spectral"], want, rtol=1e-10, atol=1e-9)
    else:
        assert table["log_spectral"].iloc[0] > 100.0  # gain 3 tanh explodes (chaotic)
        assert (
            table["log_spectral"] <= table["lag"] * np.log(np.linalg.norm(model.W, 2)) + 1e-8
        ).all()


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_rnn_spectrum_matches_householder_reference(direction, rng):
    model = _rnn(9, "tanh", 2.0, seed=6)
    x = rng.normal(size=(60, 1, 3))
    steps = [0, 1, 7, 30, 60]
    table = jacobian_spectrum(model, x, direction=direction, steps=steps)
    want = ref.product_log_singular_values(_explicit(model, x, 0, direction), direction, steps)
    for k in steps:
        got = table[table["step"] == k].sort_values("rank")["log_singular_value"].to_numpy()
        np.testing.assert_allclose(got, want[k], rtol=0, atol=PROD_RTOL)
    # the deepest product spans far more than float64 could resolve from an explicit product
    end = 60 if direction == "forward" else 0
    deep = table[table["step"] == end]["log_singular_value"]
    assert deep.max() - deep.min() > 40


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_spectrum_in_threads_matches_householder_reference(direction, rng):
    """Products this large split over the cores (`column_chunks`), and each step's factor is
    accumulated beside the next step's factorisation (`_factor_and_accumulate`)."""
    model = _rnn(104, "tanh", 1.5, seed=7)  # 104^3 > 2^20
    x = rng.normal(size=(3, 1, 3))
    table = jacobian_spectrum(model, x, direction=direction)
    want = ref.product_log_singular_values(_explicit(model, x, 0, direction), direction, range(4))
    for k in range(4):
        got = table[table["step"] == k].sort_values("rank")["log_singular_value"].to_numpy()
        np.testing.assert_allclose(got, want[k], rtol=0, atol=PROD_RTOL)


@pytest.mark.parametrize(("spread", "method"), [(1.0, 1), (1e-4, 2), (1e-10, 3)])
def test_orthonormalise_takes_the_passes_the_conditioning_needs(spread, method, rng):
    """Rows at angles of about ``spread`` to each other: one Cholesky pass, two (CholQR2), or
    Householder when the Gram matrix is too ill-conditioned."""
    k = 6
    Zt = rng.normal(size=(1, 30)) + spread * rng.normal(size=(k, 30))
    Qt, Lt, used = linalg.orthonormalise(Zt.copy(), 1e3, routine_addresses(), 1)
    assert used == method
    np.testing.assert_allclose(Qt @ Qt.T, np.eye(k), rtol=0, atol=1e-12)
    assert (np.diag(Lt) >= 0).all() and not np.triu(Lt, 1).any()
    np.testing.assert_allclose(Lt @ Qt, Zt, rtol=0, atol=1e-12 * np.abs(Zt).max())


@pytest.mark.parametrize("depth", [1, 2])
def test_smallest_singular_value_of_wide_tanh_layers_matches_lapack(depth):
    """Every singular value s of one or two 256-wide tanh layers (small inputs: well conditioned,
    kappa 1e3 - 1e5) within 10 eps (s_max / s + sqrt(n)) relative of LAPACK's SVD of the explicit
    product, about as close as LAPACK itself can be sure of; one Cholesky pass per step erred by
    O(eps kappa^2), 9e-11 for one layer."""
    eps = np.finfo(float).eps
    for seed in range(2):
        model = MLP.random(256, depth, sigma_w=1.0, seed=seed)
        x = 0.1 * np.random.default_rng(seed).normal(size=(1, 256))
        table = jacobian_spectrum(model, x, steps=[depth])
        got = np.sort(table["singular_value"].to_numpy())[::-1]
        P = np.eye(256)
        for J in ref.mlp_layer_jacobians(model.weights, model.biases, "tanh", x[0]):
            P = J @ P
        sv = np.linalg.svd(P, compute_uv=False)
        kappa = sv[0] / sv
        assert kappa[-1] < 1e6
        assert (np.abs(got - sv) / sv <= 10 * eps * (kappa + 16.0)).all()


def test_spectrum_top_and_sum_agree_with_norms(rng):
    model = _rnn(8, "tanh", 1.5, seed=7)
    x = rng.normal(size=(40, 2, 3))
    norms = jacobian_norms(model, x, direction="forward")
    spec = jacobian_spectrum(model, x, direction="forward")
    top = spec[spec["rank"] == 1].sort_values(["sample", "step"])
    np.testing.assert_allclose(top["log_singular_value"], norms["log_spectral"], atol=PROD_RTOL)
    lse = spec.groupby(["sample", "step"])["log_singular_value"].apply(
        lambda v: 0.5 * np.log(np.exp(2 * (v - v.max())).sum()) + v.max()
    )
    np.testing.assert_allclose(lse.to_numpy(), norms["log_frobenius"], atol=PROD_RTOL)


def test_mlp_spectrum_matches_reference_with_uneven_widths(rng):
    model = MLP.random([9, 12, 5, 11], 4, n_in=8, sigma_w=1.3, seed=8)
    x = rng.normal(size=(2, 8))
    for direction in ("forward", "backward"):
        table = jacobian_spectrum(model, x, direction=direction)
        for b in range(2):
            Js = ref.mlp_layer_jacobians(model.weights, model.biases, "tanh", x[b])
            for layer in range(5):
                P = np.eye(Js[0].shape[1] if direction == "forward" else Js[-1].shape[0])
                seq = Js[:layer] if direction == "forward" else Js[layer:][::-1]
                for J in seq:
                    P = J @ P if direction == "forward" else P @ J
                sv = np.linalg.svd(P, compute_uv=False)
                rows = table[(table["sample"] == b) & (table["layer"] == layer)]
                got = rows.sort_values("rank")["singular_value"].to_numpy()
                assert got.size == (P.shape[0] if direction == "backward" else P.shape[1])
                # rank-deficient products (the width-5 layer): extra singular values are 0
                np.testing.assert_allclose(got[: sv.size], sv, rtol=1e-10, atol=1e-12 * sv[0])
                assert (got[sv.size :] <= 1e-12 * sv[0]).all()


def test_spectrum_exact_for_orthogonal_and_graded_products():
    n, L = 12, 100
    Q = ortho_group.rvs(n, random_state=3)
    # orthogonal linear layers: dynamical isometry, every singular value 1
    ortho = MLP([ortho_group.rvs(n, random_state=s) for s in range(L)], [np.zeros(n)] * L, "linear")
    table = jacobian_spectrum(ortho, np.ones((1, n)), steps=[L])
    np.testing.assert_allclose(table["log_singular_value"], 0.0, atol=1e-10)
    # W = Q diag(s) Q^T, the same every layer: singular values of the product are s^L exactly,
    # here spanning e^-500 .. e^500, far beyond float64 (the scaled-Jacobi path)
    logs = np.linspace(-10.0, 10.0, n)
    W = Q @ np.diag(np.exp(logs)) @ Q.T
    graded = MLP([W] * L, [np.zeros(n)] * L, "linear")
    table = jacobian_spectrum(graded, np.ones((1, n)), steps=[L // 2, L])
    for layer in (L // 2, L):
        got = table[table["layer"] == layer].sort_values("rank")["log_singular_value"]
        np.testing.assert_allclose(got, layer * logs[::-1], rtol=1e-10, atol=1e-9)
    assert not np.isfinite(table["singular_value"]).all()  # beyond float64: 0 / inf, logs exact


def test_log_singular_values_paths_agree(rng):
    Y = np.triu(rng.normal(size=(10, 10)))
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    sigma = np.sort(rng.normal(scale=20.0, size=10))[::-1]
    lapack = log_singular_values(Y, sigma)
    jacobi, sweeps = spectrum.scaled_jacobi_logsv(Y, sigma, 1e-15, 60)
    plain = ref.scaled_jacobi_log_singular_values(Y, sigma)
    direct = np.log(np.linalg.svd(np.exp(sigma)[:, None] * Y, compute_uv=False))
    assert sweeps < 60
    np.testing.assert_allclose(lapack, jacobi, atol=1e-10)
    np.testing.assert_allclose(plain, jacobi, atol=1e-10)
    np.testing.assert_allclose(direct[:3], jacobi[:3], atol=1e-10)


def test_gejsv_values_match_scipy_bitwise(rng):
    """The direct dgejsv call (which releases the GIL) runs what SciPy's wrapper runs, to the bit,
    on a graded triangular factor like those `jacobian_spectrum` decomposes."""
    from scipy.linalg import lapack

    for k, spread in ((40, 5.0), (40, 30.0), (33, 80.0)):
        Y = np.triu(rng.normal(size=(k, k)))
        Y /= np.linalg.norm(Y, axis=1, keepdims=True)
        sigma = np.sort(rng.uniform(-spread, 0.0, size=k))[::-1]
        G = np.asfortranarray((np.exp(sigma)[:, None] * Y).T)
        sva, _, _, work, _, info = lapack.dgejsv(G, joba=3, jobu=3, jobv=3)
        got, got_work, got_info = linalg.gejsv_values(routine_addresses(), G.T)
        assert info == got_info == 0
        np.testing.assert_array_equal(got, sva)
        np.testing.assert_array_equal(got_work, work[:2])


def test_rnn_gradient_contributions_sum_to_the_gradient(rng):
    model = _rnn(7, "tanh", 1.1, seed=9)
    x = rng.normal(size=(15, 4, 3))
    target = rng.normal(size=(4, 2))
    table = gradient_contributions(model, x, target)
    pW, pU, pb, gh = ref.rnn_gradient_contributions(
        model.W, model.U, model.b, model.V, model.c, x, np.zeros(7), "tanh", target
    )
    _, grads = model.loss_and_grad(x, target)
    np.testing.assert_allclose(sum(pW), grads["W"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sum(pU), grads["U"], rtol=1e-10, atol=1e-14)
    rows = table.iloc[1:]
    np.testing.assert_allclose(rows["grad_W_norm"], [np.linalg.norm(p) for p in pW], rtol=1e-10)
    np.testing.assert_allclose(rows["grad_U_norm"], [np.linalg.norm(p) for p in pU], rtol=1e-10)
    np.testing.assert_allclose(rows["grad_b_norm"], [np.linalg.norm(p) for p in pb], rtol=1e-10)
    np.testing.assert_allclose(table["grad_h_norm"], np.linalg.norm(gh, axis=(1, 2)), rtol=1e-10)
    np.testing.assert_array_equal(table["lag"], 15 - table["step"])
    assert np.isnan(table["grad_W_norm"].iloc[0])


def test_frobenius_norms_match_numpy_and_survive_underflow(rng):
    A = rng.standard_normal((4, 5, 3))
    np.testing.assert_allclose(frobenius_norms(A), np.linalg.norm(A), rtol=1e-13)
    for axis in (0, 2, (1, 2), (0, 2)):
        want = np.sqrt((A**2).sum(axis=axis))
        np.testing.assert_allclose(frobenius_norms(A, axis=axis), want, rtol=1e-13)
    tiny = A * 1e-300  # squares underflow to 0: the plain norms are 0
    assert np.linalg.norm(tiny) == 0.0
    want = np.linalg.norm(A, axis=(1, 2)) * 1e-300
    np.testing.assert_allclose(frobenius_norms(tiny, axis=(1, 2)), want, rtol=1e-12)
    np.testing.assert_allclose(frobenius_norms(A * 1e300), np.linalg.norm(A) * 1e300, rtol=1e-12)
    B = A.copy()
    B[0, 0, 0], B[1, 1, 1], B[2] = np.inf, np.nan, 0.0
    got = frobenius_norms(B, axis=(1, 2))
    assert got[0] == np.inf and np.isnan(got[1]) and got[2] == 0.0
    np.testing.assert_allclose(got[3], np.linalg.norm(A[3]), rtol=1e-13)
    assert frobenius_norms(np.zeros((0, 3)), axis=0).shape == (3,)


def test_gradient_contributions_below_the_square_root_of_the_smallest_double(rng):
    # V scaled by 1e-200: every dL/dh_k and contribution is ~1e-200, whose squares underflow
    model = _rnn(6, "tanh", 0.9, seed=3)
    small = RNN(model.W, model.U, model.b, model.V * 1e-200, model.c, activation="tanh")
    x = rng.normal(size=(12, 3, 3))
    target = rng.normal(size=(3, 2))
    table = gradient_contributions(small, x, target)
    pW, pU, pb, gh = ref.rnn_gradient_contributions(
        small.W, small.U, small.b, small.V, small.c, x, np.zeros(6), "tanh", target
    )
    rows = table.iloc[1:]
    for column, parts in (("grad_W_norm", pW), ("grad_U_norm", pU), ("grad_b_norm", pb)):
        want = [np.linalg.norm(p * 1e200) * 1e-200 for p in parts]
        assert np.count_nonzero(want) >= len(want) - 1  # grad_W at k = 1 is 0 (h_0 = 0)
        np.testing.assert_allclose(rows[column], want, rtol=1e-10)
    want = np.linalg.norm(gh * 1e200, axis=(1, 2)) * 1e-200
    np.testing.assert_allclose(table["grad_h_norm"], want, rtol=1e-10)
    mlp = MLP.random(5, 3, seed=1, n_out=2)
    tiny = MLP(mlp.weights, mlp.biases, "tanh", readout=(mlp.readout[0] * 1e-200, mlp.readout[1]))
    xm, ym = rng.normal(size=(2, 5)), rng.normal(size=(2, 2))
    got = gradient_contributions(tiny, xm, ym)
    _, g, gs = ref.mlp_loss_and_grad(tiny.weights, tiny.biases, "tanh", xm, ym, tiny.readout)
    want = [np.linalg.norm(w * 1e200) * 1e-200 for w in g["weights"]]
    np.testing.assert_allclose(got["grad_W_norm"].iloc[1:], want, rtol=1e-10)
    want = [np.linalg.norm(v * 1e200) * 1e-200 for v in gs]
    np.testing.assert_allclose(got["grad_h_norm"], want, rtol=1e-10)


def test_mlp_gradient_contributions_are_the_layer_gradients(rng):
    model = MLP.random(6, 4, n_in=5, seed=10, n_out=2)
    x, y = rng.normal(size=(3, 5)), rng.normal(size=(3, 2))
    table = gradient_contributions(model, x, y)
    _, g, gs = ref.mlp_loss_and_grad(model.weights, model.biases, "tanh", x, y, model.readout)
    want = [np.linalg.norm(w) for w in g["weights"]]
    np.testing.assert_allclose(table["grad_W_norm"].iloc[1:], want, rtol=1e-10)
    np.testing.assert_allclose(table["grad_h_norm"], [np.linalg.norm(v) for v in gs], rtol=1e-10)
    assert list(table["layer"]) == [0, 1, 2, 3, 4]


def test_bad_input_is_rejected(rng):
    model = _rnn(5, "tanh", 1.0, seed=0)
    x = rng.normal(size=(4, 1, 3))
    with pytest.raises(ValueError, match="direction"):
        jacobian_norms(model, x, direction="sideways")
    with pytest.raises(TypeError, match="model"):
        jacobian_norms("rnn", x)
    with pytest.raises(ValueError, match="steps"):
        jacobian_spectrum(model, x, steps=[5])
    with pytest.raises(TypeError, match="steps"):
        jacobian_spectrum(model, x, steps=[0.5])
    with pytest.raises(ValueError, match="h0"):
        jacobian_norms(MLP.random(4, 2, seed=0), rng.normal(size=(1, 4)), h0=np.zeros(4))
    with pytest.raises(ValueError, match="x"):
        jacobian_norms(model, rng.normal(size=(4, 3)))


def test_inputs_are_not_written(rng):
    model = _rnn(6, "tanh", 1.0, seed=1)
    x = rng.normal(size=(10, 2, 3))
    x.flags.writeable = False
    h0 = rng.normal(size=6)
    before = (x.copy(), h0.copy(), model.W.copy())
    jacobian_norms(model, x, h0=h0)
    jacobian_spectrum(model, x, h0=h0, steps=3)
    for a, b in zip(before, (x, h0, model.W), strict=True):
        np.testing.assert_array_equal(a, b)


def test_warmup_compiles_every_path():
    from rnnsim.jacobians import warmup

    assert warmup() > 0.0


def test_direct_blas_and_lapack_calls_match_numpy(rng):
    """The dgemm, dsyrk, dpotrf, dtrsm and dtrmm wrappers, on whole arrays and on column blocks
    (views with a leading dimension larger than their width), against NumPy."""
    from numba import njit

    routines = linalg.routine_addresses()

    @njit
    def run(routines, A, B, Zt, G, X, C, Y, bad):
        P = np.zeros((A.shape[0], B.shape[1] + 3))
        linalg.gemm(routines, A, B, P[:, 1 : 1 + B.shape[1]])
        linalg.syrk_lower(routines, Zt[:, 2:], G)
        info = linalg.potrf_lower(routines, G)
        linalg.trsm_lower_left(routines, G, X[:, 1:])
        linalg.trmm_lower_transposed_left(routines, C, Y[:, :-1])
        return P, info, linalg.potrf_lower(routines, bad)

    k, n = 5, 9
    A, B = rng.normal(size=(4, 6)), rng.normal(size=(6, 7))
    Zt = rng.normal(size=(k, n + 2))
    G = np.full((k, k), 7.0)  # the strict upper triangle must be left alone
    X0 = rng.normal(size=(k, n + 1))
    X = X0.copy()
    C = rng.normal(size=(k, k))
    Y0 = rng.normal(size=(k, 4))
    Y = Y0.copy()
    P, info, bad_info = run(routines, A, B, Zt, G, X, C, Y, -np.eye(3))
    np.testing.assert_allclose(P[:, 1:-2], A @ B, rtol=1e-13)
    assert not P[:, 0].any() and not P[:, -2:].any()
    Z = Zt[:, 2:]
    L = np.linalg.cholesky(Z @ Z.T)
    assert info == 0 and bad_info > 0
    np.testing.assert_allclose(np.tril(G), L, rtol=1e-12)
    assert (np.triu(G, 1) == np.triu(np.full((k, k), 7.0), 1)).all()
    np.testing.assert_allclose(X[:, 1:], np.linalg.solve(L, X0[:, 1:]), rtol=1e-10)
    np.testing.assert_array_equal(X[:, 0], X0[:, 0])
    np.testing.assert_allclose(Y[:, :-1], np.tril(C).T @ Y0[:, :-1], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(Y[:, -1], Y0[:, -1])


def test_growth_rate_is_the_least_squares_slope_per_group(rng):
    rows = [
        {"gain": g, "seed": s, "layer": l, "log_norm": rate * l + rng.normal()}
        for g, rate in ((0.5, -0.7), (2.0, 0.4))
        for s in range(3)
        for l in range(12)
    ]
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # fit must not need sorted rows
    fits = growth_rate(table, "layer", "log_norm", by=["gain", "seed"])
    assert list(fits.columns) == ["gain", "seed", "slope", "points"] and len(fits) == 6
    for _, fit in fits.iterrows():
        part = table[(table.gain == fit.gain) & (table.seed == fit.seed)]
        np.testing.assert_allclose(
            fit.slope, np.polyfit(part.layer, part.log_norm, 1)[0], rtol=1e-12
        )
        assert fit.points == 12
    exact = pd.DataFrame({"lag": np.arange(5), "log_spectral": 3.0 - 0.25 * np.arange(5)})
    np.testing.assert_allclose(growth_rate(exact, "lag", "log_spectral")["slope"], [-0.25])


def test_growth_rate_leaves_out_non_finite_rows_and_rejects_bad_columns():
    table = pd.DataFrame({"step": [0, 1, 2, 3], "y": [0.0, 2.0, -np.inf, 6.0], "k": [0, 0, 0, 1]})
    fits = growth_rate(table, "step", "y", by="k")
    np.testing.assert_allclose(fits["slope"].iloc[0], 2.0)
    assert list(fits["points"]) == [2, 1] and np.isnan(fits["slope"].iloc[1])  # one x: no slope
    with pytest.raises(ValueError, match="by must name a column"):
        growth_rate(table, "step", "y", by=["seed"])
    with pytest.raises(TypeError, match="table"):
        growth_rate(table.to_numpy(), "step", "y")
