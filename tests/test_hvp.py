"""Exact Hessian-vector products (R-operator) of the RNN and MLP losses."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnsim import MLP, RNN, reference
from rnnsim.curvature import hessian_matrix, top_eigenvalues
from rnnsim.kernels import hvp as K
from rnnsim.models import LOSSES

RTOL = 1e-10  # kernel vs reference twin
FD_RTOL = 1e-6  # HVP vs central differences of the exact gradient
SYM_RTOL = 1e-10  # u^T H v vs v^T H u
FD_EPS = 1e-5
ACTS = ["tanh", "sigmoid", "relu", "linear"]


def rnn_case(activation, loss, *, seed=0, T=6, B=3, n=5, d_in=3, d_out=4, with_h0=True):
    rng = np.random.default_rng(seed)
    m = RNN.random(d_in, n, d_out, activation=activation, gain=1.2, bias_std=0.3, seed=seed + 1)
    m = m.with_params(m.params_vector() + 0.1 * rng.standard_normal(m.n_params))  # c != 0
    x = rng.standard_normal((T, B, d_in))
    target = {
        "mse_last": rng.standard_normal((B, d_out)),
        "mse_all": rng.standard_normal((T, B, d_out)),
        "xent_last": rng.integers(0, d_out, B),
        "xent_all": rng.integers(0, d_out, (T, B)),
    }[loss]
    h0 = 0.3 * rng.standard_normal((B, n)) if with_h0 else None
    return m, x, target, h0


def mlp_case(activation, *, readout=True, seed=0, B=7):
    rng = np.random.default_rng(seed)
    m = MLP.random(
        [6, 5, 4], 3, n_in=3, activation=activation, sigma_w=1.5, sigma_b=0.3, seed=seed + 2,
        n_out=2 if readout else None,
    )  # fmt: skip
    x = rng.standard_normal((B, 3))
    target = rng.standard_normal((B, 2 if readout else 4))
    return m, x, target


def central_difference(grad_at, theta, v, eps=FD_EPS):
    return (grad_at(theta + eps * v) - grad_at(theta - eps * v)) / (2 * eps)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_rnn_hvp_kernel_matches_reference(activation, loss):
    m, x, target, h0 = rnn_case(activation, loss)
    v = np.random.default_rng(9).standard_normal(m.n_params)
    xk, h0k = m.check_input(x, h0)
    tk, lk = m.check_target(target, loss, x.shape[0], x.shape[1])
    value, grad, hv = K.rnn_hvp(
        m.W, m.U, m.b, m.V, m.c, xk, h0k, m.act_code, tk, lk, LOSSES[loss], v
    )
    r_value, r_grad, r_hv = reference.rnn_hvp(
        m.W, m.U, m.b, m.V, m.c, x, h0, activation, target, loss, v
    )
    np.testing.assert_allclose(value, r_value, rtol=RTOL)
    np.testing.assert_allclose(grad, r_grad, rtol=RTOL, atol=RTOL * np.abs(r_grad).max())
    np.testing.assert_allclose(hv, r_hv, rtol=RTOL, atol=RTOL * np.abs(r_hv).max())
    # the kernel's gradient is the engine's gradient
    np.testing.assert_allclose(grad, m.loss_and_grad_vector(x, target, loss, h0)[1], rtol=RTOL)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("with_h0", [True, False])
def test_rnn_hvp_matches_finite_differences(activation, loss, with_h0):
    m, x, target, h0 = rnn_case(activation, loss, seed=3, with_h0=with_h0)
    v = np.random.default_rng(4).standard_normal(m.n_params)
    hv = m.hvp(x, target, v, loss=loss, h0=h0)

    def grad_at(theta):
        return m.with_params(theta).loss_and_grad_vector(x, target, loss, h0)[1]

    fd = central_difference(grad_at, m.params_vector(), v)
    assert np.linalg.norm(fd - hv) <= FD_RTOL * np.linalg.norm(hv)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loss", ["mse_all", "xent_last"])
def test_rnn_hvp_symmetric(activation, loss):
    m, x, target, h0 = rnn_case(activation, loss, seed=5)
    rng = np.random.default_rng(6)
    u, v = rng.standard_normal((2, m.n_params))
    uHv = u @ m.hvp(x, target, v, loss=loss, h0=h0)
    vHu = v @ m.hvp(x, target, u, loss=loss, h0=h0)
    assert abs(uHv - vHu) <= SYM_RTOL * max(abs(uHv), 1e-300)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("readout", [True, False])
def test_mlp_hvp_reference_fd_symmetry(activation, readout):
    m, x, target = mlp_case(activation, readout=readout)
    rng = np.random.default_rng(8)
    u, v = rng.standard_normal((2, m.n_params))
    value, grad, hv = K.mlp_hvp(m.flat, m.widths, m.d_out, m.act_code, x, target, v)
    r_value, r_grad, r_hv = reference.mlp_hvp(
        m.weights, m.biases, activation, x, target, v, m.readout
    )
    np.testing.assert_allclose(value, r_value, rtol=RTOL)
    np.testing.assert_allclose(grad, r_grad, rtol=RTOL, atol=RTOL * np.abs(r_grad).max())
    np.testing.assert_allclose(hv, r_hv, rtol=RTOL, atol=RTOL * np.abs(r_hv).max())
    np.testing.assert_array_equal(m.hvp(x, target, v), hv)

    def grad_at(theta):
        return m.with_params(theta).loss_and_grad_vector(x, target)[1]

    fd = central_difference(grad_at, m.params_vector(), v)
    assert np.linalg.norm(fd - hv) <= FD_RTOL * np.linalg.norm(hv)
    uHv, vHu = u @ hv, v @ m.hvp(x, target, u)
    assert abs(uHv - vHu) <= SYM_RTOL * abs(uHv)


def test_mlp_linear_least_squares_hessian_exact():
    # One linear layer, no readout: L = 1/(2B) sum ||W x + b - t||^2 is exactly quadratic, with
    # Hessian (1/B) sum_b [x;1][x;1]^T (kron) I acting on (W, b).
    rng = np.random.default_rng(11)
    B, n_in, n_out = 9, 4, 3
    W, b = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    m = MLP([W], [b], "linear")
    x, target = rng.standard_normal((B, n_in)), rng.standard_normal((B, n_out))
    V = rng.standard_normal((n_out, n_in))
    dv = rng.standard_normal(n_out)
    v = np.concatenate([V.ravel(), dv])
    hv = m.hvp(x, target, v)
    # (H v)_W = (1/B) sum_b (V x_b + dv) x_b^T, (H v)_b = (1/B) sum_b (V x_b + dv)
    r = x @ V.T + dv
    expected = np.concatenate([(r.T @ x / B).ravel(), r.sum(0) / B])
    np.testing.assert_allclose(hv, expected, rtol=1e-13, atol=1e-14)
    # and a gradient difference is exactly H times the step, for any step length
    g0 = m.loss_and_grad_vector(x, target)[1]
    g1 = m.with_params(m.params_vector() + 3.0 * v).loss_and_grad_vector(x, target)[1]
    np.testing.assert_allclose(g1 - g0, 3.0 * hv, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "linear"])
@pytest.mark.parametrize("loss", ["mse_last", "mse_all"])
def test_rnn_readout_block_is_exactly_quadratic(activation, loss):
    # y_t = V h_t + c is linear in (V, c), so with mse the loss restricted to (V, c) is exactly
    # quadratic: the (V, c) part of H v, for v supported on (V, c), equals
    # (1/(B S)) sum over counted steps and samples of (dV h + dc) [h; 1]^T.
    m, x, target, h0 = rnn_case(activation, loss, seed=12)
    n, d_out, T, B = m.n_hidden, m.n_out, x.shape[0], x.shape[1]
    start = m.n_params - d_out * n - d_out
    rng = np.random.default_rng(13)
    v = np.zeros(m.n_params)
    v[start:] = rng.standard_normal(d_out * n + d_out)
    dV, dc = v[start : start + d_out * n].reshape(d_out, n), v[start + d_out * n :]
    H, _ = m.forward(x, h0)
    steps = [T] if loss == "mse_last" else range(1, T + 1)
    eV, ec = np.zeros((d_out, n)), np.zeros(d_out)
    for t in steps:
        r = H[t] @ dV.T + dc
        eV += r.T @ H[t]
        ec += r.sum(0)
    S = B * len(steps)
    hv = m.hvp(x, target, v, loss=loss, h0=h0)
    np.testing.assert_allclose(hv[start:], np.concatenate([eV.ravel(), ec]) / S, rtol=1e-12)
    g0 = m.loss_and_grad_vector(x, target, loss, h0)[1]
    g1 = m.with_params(m.params_vector() + 2.0 * v).loss_and_grad_vector(x, target, loss, h0)[1]
    np.testing.assert_allclose(g1[start:] - g0[start:], 2.0 * hv[start:], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("loss", ["mse_last", "xent_all"])
def test_lanczos_top_eigenvalue_of_explicit_hessian(loss):
    m, x, target, h0 = rnn_case("tanh", loss, seed=14, n=4, d_in=2, d_out=3, T=5, B=4)
    hvp = m.hvp_operator(x, target, loss, h0)
    Hm = hessian_matrix(hvp, m.n_params)
    np.testing.assert_allclose(Hm, Hm.T, rtol=0, atol=SYM_RTOL * np.abs(Hm).max())
    exact = np.linalg.eigvalsh((Hm + Hm.T) / 2)
    top = top_eigenvalues(hvp, m.n_params, k=2, n_steps=m.n_params, seed=1)
    np.testing.assert_allclose(top, exact[::-1][:2], rtol=1e-8)
    mag = top_eigenvalues(hvp, m.n_params, k=1, n_steps=m.n_params, which="magnitude")
    assert abs(abs(mag[0]) - np.abs(exact).max()) <= 1e-8 * np.abs(exact).max()


def test_hvp_leaves_inputs_alone_and_checks_v():
    m, x, target, h0 = rnn_case("tanh", "mse_last")
    v = np.random.default_rng(0).standard_normal(m.n_params)
    v.flags.writeable = False
    x0, v0 = x.copy(), v.copy()
    m.hvp(x, target, v, h0=h0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(v, v0)
    with pytest.raises(ValueError, match="v must have shape"):
        m.hvp(x, target, v[:-1], h0=h0)
    with pytest.raises(ValueError, match="loss"):
        m.hvp(x, target, v, loss="mse", h0=h0)
    mm, xm, tm = mlp_case("tanh")
    with pytest.raises(ValueError, match="v must"):
        mm.hvp(xm, tm, np.ones(3))


def test_spectral_tools_on_an_explicit_model_hessian():
    # Small MLP: SLQ with as many steps as parameters recovers the exact spectrum; Hutchinson is
    # unbiased for the trace.
    from rnnsim.curvature import hutchinson_trace, spectral_density

    m, x, target = mlp_case("tanh", readout=True, seed=2)
    hvp = m.hvp_operator(x, target)
    Hm = hessian_matrix(hvp, m.n_params)
    exact = np.linalg.eigvalsh((Hm + Hm.T) / 2)
    nodes = spectral_density(hvp, m.n_params, n_vectors=1, n_steps=m.n_params, seed=3)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(np.sort(nodes["node"]), exact, rtol=0, atol=1e-8 * scale)
    est = hutchinson_trace(hvp, m.n_params, n_samples=200, seed=4)
    assert abs(est["trace"] - np.trace(Hm)) < 5 * est["stderr"]


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(1, 4), B=st.integers(1, 3), n=st.integers(1, 4), d_in=st.integers(1, 3),
    d_out=st.integers(1, 3), activation=st.sampled_from(ACTS), loss=st.sampled_from(list(LOSSES)),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_rnn_hvp_matches_reference_for_any_shape(T, B, n, d_in, d_out, activation, loss, seed):
    m, x, target, h0 = rnn_case(
        activation, loss, seed=seed, T=T, B=B, n=n, d_in=d_in, d_out=d_out, with_h0=seed % 2 == 0
    )
    v = np.random.default_rng(seed).standard_normal(m.n_params)
    hv = m.hvp(x, target, v, loss=loss, h0=h0)
    h0r = np.zeros((B, n)) if h0 is None else h0  # the reference takes an explicit h0
    r_hv = reference.rnn_hvp(m.W, m.U, m.b, m.V, m.c, x, h0r, activation, target, loss, v)[2]
    np.testing.assert_allclose(hv, r_hv, rtol=RTOL, atol=RTOL * max(np.abs(r_hv).max(), 1e-300))


@pytest.mark.parametrize("loss", list(LOSSES))
def test_hvp_operator_equals_hvp(loss):
    m, x, target, h0 = rnn_case("tanh", loss, seed=21)
    hvp = m.hvp_operator(x, target, loss, h0)
    rng = np.random.default_rng(22)
    for _ in range(2):
        v = rng.standard_normal(m.n_params)
        np.testing.assert_array_equal(hvp(v), m.hvp(x, target, v, loss=loss, h0=h0))
    mm, xm, tm = mlp_case("sigmoid", readout=False)
    v = rng.standard_normal(mm.n_params)
    np.testing.assert_array_equal(mm.hvp_operator(xm, tm)(v), mm.hvp(xm, tm, v))
    with pytest.raises(ValueError, match="v must"):
        hvp(np.ones(2))
