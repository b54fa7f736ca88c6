"""Lyapunov exponents by QR re-orthonormalisation: exact linear cases, the sum rule, the reference."""

import numba
import numpy as np
import pytest

from rnnsim import RNN, jacobian_norms, jacobian_spectrum, lyapunov_spectrum
from rnnsim import reference as ref
from rnnsim.jacobians import _lyapunov_args, lyapunov_sum_rule
from rnnsim.kernels import lyapunov
from rnnsim.kernels.linalg import routine_addresses

# Long trajectories take minutes as plain Python; the JIT-off coverage run (tests/test_nojit.py)
# skips them, the other tests run the same lines.
SLOW_WITHOUT_JIT = "10,000 or more steps of plain Python"


def _model(W, activation="tanh", b=None, d_in=1, seed=0):
    n = W.shape[0]
    rng = np.random.default_rng(seed)
    b = np.zeros(n) if b is None else b
    return RNN(W, rng.normal(size=(n, d_in)), b, np.zeros((1, n)), np.zeros(1), activation)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason=SLOW_WITHOUT_JIT)
def test_linear_rnn_exponents_are_log_moduli_of_eigenvalues(rng):
    n = 8
    W = rng.normal(size=(n, n)) / np.sqrt(n)  # real W: complex pairs share a modulus
    model = _model(W, "linear")
    got = lyapunov_spectrum(model, steps=10_000, transient=0)
    want = np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    assert np.all(np.diff(got) <= 0)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason=SLOW_WITHOUT_JIT)
def test_tanh_rnn_at_the_origin_has_the_linearised_exponents(rng):
    n = 6
    W = 0.7 * rng.normal(size=(n, n)) / np.sqrt(n)  # contracting: h stays at the fixed point 0
    got = lyapunov_spectrum(_model(W), steps=10_000, transient=0)
    want = np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_the_basis_carried_through_the_transient_removes_the_start_bias(rng):
    """A linear map with known exponents, ln|lambda_i| (W triangular with lambda_i on its
    diagonal). A basis started fresh at the first counted step is off by O(1/steps), mostly in
    its leading direction (ln|<v_1, q_1>| / steps); carried through the transient it has turned
    towards the leading directions and is exact up to rounding."""
    n = 6
    logs = np.array([0.3, 0.1, 0.0, -0.2, -0.5, -0.9])
    W = np.diag(np.exp(logs)) + np.triu(0.3 * rng.normal(size=(n, n)), 1)
    model = _model(W, "linear")  # h stays at 0: the state never moves, only the basis does
    steps = 100
    fresh = lyapunov_spectrum(model, steps=steps, transient=0)
    carried = lyapunov_spectrum(model, steps=steps, transient=400)
    assert abs(fresh[0] - logs[0]) > 1e-3  # the start bias of a fresh basis
    np.testing.assert_allclose(carried, logs, rtol=0, atol=1e-10)
    # the NumPy twin carries its basis the same way
    Q0 = np.linalg.qr(rng.normal(size=(n, n)))[0]
    x = np.zeros((400 + steps, 1))
    want, _ = ref.lyapunov_exponents(W, model.U, model.b, x, np.zeros(n), "linear", 400, steps, Q0)
    np.testing.assert_allclose(np.sort(want)[::-1], logs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("driven", [False, True])
def test_sum_of_exponents_is_mean_log_det(driven, rng):
    n = 12
    model = RNN.random(2, n, 1, gain=2.0, bias_std=0.2, seed=3)
    x = rng.normal(size=(1100, 2)) if driven else None
    total, mean_logdet = lyapunov_sum_rule(
        model, x, steps=None if driven else 1000, h0=rng.normal(size=n)
    )
    np.testing.assert_allclose(total, mean_logdet, rtol=1e-10)
    assert total < -0.5  # tanh saturation contracts volume


@pytest.mark.parametrize("reorth_every", [1, 3])
def test_kernel_matches_householder_reference(reorth_every, rng):
    n, k = 10, 4
    model = RNN.random(2, n, 1, gain=1.8, bias_std=0.1, seed=4)
    x = rng.normal(size=(350, 2))
    h0 = rng.normal(size=n)
    args = _lyapunov_args(model, x, None, 50, h0, k, reorth_every, 7)
    W, U, b, h, xk, transient, steps, Qt0, every = args
    rnn_map = lyapunov.RNNMap(W, U, b, model.act_code)
    schedule = lyapunov.Schedule(transient, steps, every, 1e3)
    exps, _, _, _ = lyapunov.lyapunov_qr(rnn_map, xk, h, Qt0, schedule, routine_addresses())
    want, _ = ref.lyapunov_exponents(W, U, b, xk, h, "tanh", transient, steps, Qt0.T)
    # products over a few steps between re-orthonormalisations change only rounding
    np.testing.assert_allclose(exps, want, rtol=1e-10 if reorth_every == 1 else 1e-8)
    public = lyapunov_spectrum(
        model, x, transient=50, h0=h0, k=k, reorth_every=reorth_every, seed=7
    )
    np.testing.assert_allclose(public, np.sort(want)[::-1], rtol=1e-8)


@pytest.mark.parametrize("reorth_every", [1, 2])
def test_kernel_in_threads_matches_householder_reference(reorth_every, rng):
    """A basis this large splits over the cores (`column_chunks`): each factorisation overlaps
    the next product (`_factor_and_product`) and the rest of a step runs by column blocks."""
    n = 104  # 104^3 > 2^20
    model = RNN.random(2, n, 1, gain=1.8, bias_std=0.1, seed=4)
    x = rng.normal(size=(6, 2))
    args = _lyapunov_args(model, x, None, 1, rng.normal(size=n), None, reorth_every, 7)
    W, U, b, h, xk, transient, steps, Qt0, every = args
    schedule = lyapunov.Schedule(transient, steps, every, 1e3)
    rnn_map = lyapunov.RNNMap(W, U, b, model.act_code)
    exps, _, _, _ = lyapunov.lyapunov_qr(rnn_map, xk, h, Qt0, schedule, routine_addresses())
    want, _ = ref.lyapunov_exponents(W, U, b, xk, h, "tanh", transient, steps, Qt0.T)
    # products over a few steps between re-orthonormalisations change only rounding
    np.testing.assert_allclose(exps, want, rtol=1e-9 if reorth_every == 1 else 1e-8, atol=1e-12)


def test_top_k_are_the_leading_exponents(rng):
    model = RNN.random(1, 16, 1, gain=2.5, seed=5)
    h0 = rng.normal(size=16)
    full = lyapunov_spectrum(model, steps=4000, h0=h0)
    top = lyapunov_spectrum(model, steps=4000, h0=h0, k=3)
    np.testing.assert_allclose(top, full[:3], atol=2e-2)
    assert np.all(np.diff(full) <= 0)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason=SLOW_WITHOUT_JIT)
def test_hundred_thousand_steps_are_finite():
    model = RNN.random(1, 64, 1, gain=3.0, seed=6)
    h0 = np.random.default_rng(0).normal(size=64)
    exps = lyapunov_spectrum(model, steps=100_000, h0=h0, k=8)
    assert np.isfinite(exps).all()
    assert exps[0] > 0


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason=SLOW_WITHOUT_JIT)
def test_an_overflowing_relu_state_gives_marked_rows_not_linalg_errors():
    """ReLU at gain 10: the state overflows float64 after about 300 steps (issue 18). Products
    and exponents that rest on an overflowed state are NaN, with a warning naming the step;
    everything before it is finite."""
    rnn = RNN.random(1, 8, 1, activation="relu", gain=10.0, seed=0)
    x = np.random.default_rng(0).normal(size=(100_000, 1, 1))
    with pytest.warns(RuntimeWarning, match="overflowed float64"):
        H, _ = rnn.forward(x)
    first = int(np.argmax(~np.isfinite(H).all(axis=(1, 2))))
    assert 0 < first < 1000
    with pytest.warns(RuntimeWarning, match=f"jacobian_norms: .* first at step {first}"):
        forward = jacobian_norms(rnn, x, direction="forward")
    finite = np.isfinite(forward["log_spectral"]) & np.isfinite(forward["log_frobenius"])
    np.testing.assert_array_equal(finite, forward["step"] < first)
    assert forward["log_spectral"].iloc[first - 1] > 100.0  # exploding up to there
    with pytest.warns(RuntimeWarning, match="overflowed"):
        backward = jacobian_norms(rnn, x[:2000])
    assert np.isnan(backward["log_spectral"].iloc[:-1]).all()  # every product holds J_T
    assert backward["log_spectral"].iloc[-1] == 0.0  # dh_T/dh_T = I
    with pytest.warns(RuntimeWarning, match="overflowed"):
        spec = jacobian_spectrum(rnn, x[:2000], steps=[first - 1, first])
    before = spec[spec["step"] == first - 1]["log_singular_value"]
    assert np.isfinite(before.iloc[0]) and not np.isnan(before).any()  # dead units give -inf
    assert np.isnan(spec[spec["step"] == first]["log_singular_value"]).all()
    with pytest.warns(RuntimeWarning, match=f"lyapunov_spectrum: .* at step {first}"):
        exponents = lyapunov_spectrum(rnn, x[:, 0], transient=0)
    assert exponents.shape == (8,) and np.isnan(exponents).all()


def test_a_state_that_overflows_at_once_is_marked_from_its_step():
    """A linear map that multiplies the state by 1e150 a step overflows at step 3."""
    model = _model(1e150 * np.eye(3), "linear")
    with pytest.warns(RuntimeWarning, match="lyapunov_spectrum: .* at step 3"):
        exponents = lyapunov_spectrum(model, steps=10, transient=0, h0=np.ones(3))
    assert np.isnan(exponents).all()
    with pytest.warns(RuntimeWarning, match="overflowed"):
        table = jacobian_norms(model, np.ones((10, 1, 1)), direction="forward", h0=np.ones(3))
    np.testing.assert_array_equal(np.isnan(table["log_spectral"]), table["step"] >= 3)


def test_relu_dead_directions_and_errors(rng):
    n = 5
    W = np.eye(n)
    model = _model(W, "relu", b=np.array([1.0, 1.0, -1.0, -1.0, 1.0]))
    exps = lyapunov_spectrum(model, steps=2000, transient=5)
    # three live units with J = 1 (exponent 0),
    # two dead ones whose directions the Jacobian annihilates exactly
    np.testing.assert_allclose(exps[:3], 0.0, atol=2e-3)
    assert (exps[3:] == -np.inf).all()
    good = RNN.random(1, 4, 1, seed=0)
    with pytest.raises(ValueError, match="steps"):
        lyapunov_spectrum(good)
    with pytest.raises(ValueError, match="k"):
        lyapunov_spectrum(good, steps=10, k=5)
    with pytest.raises(ValueError, match="x"):
        lyapunov_spectrum(good, rng.normal(size=(20, 2, 1)))
    with pytest.raises(ValueError, match="transient"):
        lyapunov_spectrum(good, rng.normal(size=(20, 1)), transient=30)
    with pytest.raises(TypeError, match="rnn"):
        lyapunov_spectrum("net", steps=10)
