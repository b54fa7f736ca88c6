"""The engine: RNN and MLP kernels against their NumPy twins and against finite differences."""

import math

import numpy as np
import pytest
from conftest import ATOL, RTOL
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnsim
from rnnsim import reference as ref
from rnnsim.init import INITIALISERS, matrix

ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear"]
LOSSES = ["mse_last", "mse_all", "xent_last", "xent_all"]


def make_target(loss, T, B, d_out, rng):
    if loss == "mse_last":
        return rng.normal(size=(B, d_out))
    if loss == "mse_all":
        return rng.normal(size=(T, B, d_out))
    if loss == "xent_last":
        return rng.integers(0, d_out, size=B)
    return rng.integers(0, d_out, size=(T, B))


def random_rnn(activation, n_in=3, n=6, n_out=4, seed=0):
    return rnnsim.RNN.random(
        n_in, n, n_out, activation=activation, gain=1.2, bias_std=0.3, seed=seed, output_gain=1.5
    )


def assert_grads_match_reference(model, x, target, loss, h0):
    value, grads = model.loss_and_grad(x, target, loss, h0)
    h0_full = (
        np.zeros((x.shape[1], model.n_hidden))
        if h0 is None
        else np.broadcast_to(h0, (x.shape[1], model.n_hidden))
    )
    ref_value, ref_grads, ref_G = ref.rnn_loss_and_grad(
        model.W, model.U, model.b, model.V, model.c, x, h0_full, model.activation, target, loss
    )
    np.testing.assert_allclose(value, ref_value, rtol=RTOL, atol=ATOL)
    for key in ("W", "U", "b", "V", "c"):
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=RTOL, atol=ATOL, err_msg=key)
    np.testing.assert_allclose(grads["h"], ref_G, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_rnn_kernel_matches_reference(activation, loss, rng):
    model = random_rnn(activation)
    T, B = 9, 5
    x = rng.normal(size=(T, B, model.n_in))
    h0 = rng.normal(size=(B, model.n_hidden)) * 0.5
    target = make_target(loss, T, B, model.n_out, rng)
    H, Y = model.forward(x, h0)
    H_ref, Y_ref = ref.rnn_forward(model.W, model.U, model.b, model.V, model.c, x, h0, activation)
    np.testing.assert_allclose(H, H_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(Y, Y_ref, rtol=RTOL, atol=ATOL)
    assert_grads_match_reference(model, x, target, loss, h0)


@pytest.mark.parametrize(
    "n,B,T,d_in,d_out",
    [(40, 32, 6, 2, 3), (200, 4, 60, 2, 3), (12, 3, 5, 9, 10), (40, 32, 4, 8, 9)],
)
def test_rnn_blas_and_parallel_paths_match_reference(n, B, T, d_in, d_out, rng):
    """Large enough per-step products take the BLAS branch; (200, 4, 60) also splits the batch
    and the weight-gradient product over threads; 8 or more inputs take the input drive's matrix
    product, 8 or more outputs the output term's eight-row updates."""
    model = rnnsim.RNN.random(d_in, n, d_out, gain=1.1, bias_std=0.1, seed=3)
    x = rng.normal(size=(T, B, d_in))
    target = rng.normal(size=(T, B, d_out))
    assert_grads_match_reference(model, x, target, "mse_all", None)


def central_differences(f, theta, eps=1e-6):
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        g[i] = (f(theta + e) - f(theta - e)) / (2 * eps)
    return g


def relative_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_rnn_gradient_matches_finite_differences(activation, loss, rng):
    model = random_rnn(activation, n_in=2, n=4, n_out=3, seed=7)
    T, B = 6, 3
    x = rng.normal(size=(T, B, 2))
    h0 = rng.normal(size=4) * 0.3
    target = make_target(loss, T, B, 3, rng)
    _, g = model.loss_and_grad_vector(x, target, loss, h0)

    def f(theta):
        return model.with_params(theta).loss_and_grad(x, target, loss, h0)[0]

    g_fd = central_differences(f, model.params_vector())
    assert relative_error(g, g_fd) < 1e-6


def random_mlp(activation, readout, seed=0):
    return rnnsim.MLP.random(
        [5, 7, 4], 3, n_in=3, activation=activation, sigma_w=1.3, sigma_b=0.4, seed=seed,
        n_out=2 if readout else None,
    )  # fmt: skip


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("readout", [True, False])
def test_mlp_kernel_matches_reference(activation, readout, rng):
    model = random_mlp(activation, readout)
    x = rng.normal(size=(6, 3))
    target = rng.normal(size=(6, 2 if readout else 4))
    hs = model.forward(x)
    hs_ref, y_ref = ref.mlp_forward(model.weights, model.biases, activation, x, model.readout)
    for h, h_ref in zip(hs, hs_ref, strict=True):
        np.testing.assert_allclose(h, h_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(model.predict(x), y_ref, rtol=RTOL, atol=ATOL)
    value, grads = model.loss_and_grad(x, target)
    ref_value, ref_grads, ref_gs = ref.mlp_loss_and_grad(
        model.weights, model.biases, activation, x, target, model.readout
    )
    np.testing.assert_allclose(value, ref_value, rtol=RTOL, atol=ATOL)
    for key in ("weights", "biases"):
        for a, b in zip(grads[key], ref_grads[key], strict=True):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    for a, b in zip(grads["h"], ref_gs, strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    if readout:
        np.testing.assert_allclose(grads["V"], ref_grads["V"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grads["c"], ref_grads["c"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("readout", [True, False])
def test_mlp_gradient_matches_finite_differences(activation, readout, rng):
    model = random_mlp(activation, readout, seed=2)
    x = rng.normal(size=(4, 3))
    target = rng.normal(size=(4, 2 if readout else 4))
    _, g = model.loss_and_grad_vector(x, target)
    g_fd = central_differences(
        lambda theta: model.with_params(theta).loss_and_grad(x, target)[0], model.params_vector()
    )
    assert relative_error(g, g_fd) < 1e-6


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 6),
    B=st.integers(1, 4),
    n=st.integers(1, 6),
    d_in=st.integers(1, 3),
    d_out=st.integers(1, 3),
    activation=st.sampled_from(ACTIVATIONS),
    loss=st.sampled_from(LOSSES),
    seed=st.integers(0, 2**16),
)
def test_rnn_property_any_shape(T, B, n, d_in, d_out, activation, loss, seed):
    rng = np.random.default_rng(seed)
    model = rnnsim.RNN.random(d_in, n, d_out, activation=activation, bias_std=0.2, seed=seed)
    x = rng.normal(size=(T, B, d_in))
    assert_grads_match_reference(model, x, make_target(loss, T, B, d_out, rng), loss, None)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    B=st.integers(1, 4),
    n_in=st.integers(1, 4),
    activation=st.sampled_from(ACTIVATIONS),
    readout=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_mlp_property_any_shape(widths, B, n_in, activation, readout, seed):
    rng = np.random.default_rng(seed)
    model = rnnsim.MLP.random(
        widths, len(widths), n_in=n_in, activation=activation, sigma_b=0.2, seed=seed,
        n_out=2 if readout else None,
    )  # fmt: skip
    x = rng.normal(size=(B, n_in))
    target = rng.normal(size=(B, 2 if readout else widths[-1]))
    _, g = model.loss_and_grad_vector(x, target)
    _, ref_grads, _ = ref.mlp_loss_and_grad(
        model.weights, model.biases, activation, x, target, model.readout
    )
    flat = [
        p.ravel()
        for W, b in zip(ref_grads["weights"], ref_grads["biases"], strict=True)
        for p in (W, b)
    ]
    if readout:
        flat += [ref_grads["V"].ravel(), ref_grads["c"]]
    np.testing.assert_allclose(g, np.concatenate(flat), rtol=RTOL, atol=ATOL)


def test_params_vector_round_trip():
    rnn = random_rnn("tanh")
    theta = rnn.params_vector()
    assert theta.size == rnn.n_params == 6 * 6 + 6 * 3 + 6 + 4 * 6 + 4
    again = rnn.with_params(theta)
    for key in "WUbVc":
        np.testing.assert_array_equal(getattr(again, key), getattr(rnn, key))
    mlp = random_mlp("relu", True)
    np.testing.assert_array_equal(mlp.with_params(mlp.params_vector()).params_vector(), mlp.flat)
    assert mlp.params_vector()[0] == mlp.weights[0][0, 0]


def test_tanh_gain_3_long_sequence_is_finite():
    """tanh saturates: at gain 3 and T = 1000 states, loss and gradient stay finite (they are)."""
    model = rnnsim.RNN.random(2, 16, 1, gain=3.0, seed=0)
    x = np.random.default_rng(0).normal(size=(1000, 2, 2))
    value, grads = model.loss_and_grad(x, np.ones((2, 1)))
    assert np.isfinite(value)
    assert all(np.isfinite(g).all() for g in grads.values())


def test_relu_gain_3_long_sequence_overflows_honestly():
    """relu at gain 3 grows geometrically: the true state exceeds float64 before T = 1000, so the
    forward pass reports inf and warns that later values are unreliable: never a crash."""
    model = rnnsim.RNN.random(2, 16, 1, activation="relu", init="orthogonal", gain=3.0, seed=0)
    x = np.abs(np.random.default_rng(0).normal(size=(1000, 2, 2)))
    with pytest.warns(RuntimeWarning, match="overflowed"):
        H, _ = model.forward(x)
    finite = np.isfinite(H).all(axis=(1, 2))
    first_bad = int(np.argmin(finite))
    assert 100 < first_bad < 1000
    assert finite[:first_bad].all()
    assert np.linalg.norm(H[first_bad - 1]) > 1e250  # it got there by honest growth


def test_relu_propagates_nan_instead_of_rectifying_it():
    from rnnsim.kernels.activations import RELU, dphi_from_h, phi

    assert np.isnan(phi(RELU, np.nan)) and np.isnan(dphi_from_h(RELU, np.nan))
    assert phi(RELU, -np.inf) == 0.0 and phi(RELU, np.inf) == np.inf


def test_read_only_inputs_are_not_written(rng):
    model = random_rnn("tanh")
    x = rng.normal(size=(5, 2, 3))
    x.flags.writeable = False
    target = rng.normal(size=(2, 4))
    target.flags.writeable = False
    value, _ = model.loss_and_grad(x, target)
    assert np.isfinite(value)
    with pytest.raises(ValueError):
        model.W[0, 0] = 1.0


def test_orthogonal_initialiser_is_orthogonal():
    q = matrix("orthogonal", 50, 50, gain=2.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(q @ q.T, 4.0 * np.eye(50), atol=1e-12)
    q = matrix("orthogonal", 20, 50, gain=1.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(q @ q.T, np.eye(20), atol=1e-12)


def test_spectral_initialiser_radius():
    w = matrix("spectral", 40, 40, gain=1.7, rng=np.random.default_rng(0))
    assert abs(np.max(np.abs(np.linalg.eigvals(w))) - 1.7) < 1e-10


@pytest.mark.parametrize(
    "name,var",
    [("gaussian", 1 / 400), ("glorot_normal", 2 / 700), ("glorot_uniform", 2 / 700),
     ("he", 2 / 400), ("lecun", 1 / 400), ("uniform", 1 / (3 * 400))],
)  # fmt: skip
def test_initialiser_variances(name, var):
    w = matrix(name, 300, 400, gain=1.0, rng=np.random.default_rng(1))
    assert abs(w.var() / var - 1) < 0.02  # 120,000 draws: relative sd of the variance ~0.4-0.6 %


def test_identity_initialiser():
    np.testing.assert_array_equal(matrix("identity", 3, 3, gain=0.5, rng=None), 0.5 * np.eye(3))
    assert set(INITIALISERS) == {
        "gaussian", "orthogonal", "identity", "glorot_uniform", "glorot_normal", "he", "lecun",
        "uniform", "spectral",
    }  # fmt: skip


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: rnnsim.RNN.random(2, 3, 1, activation="softplus"), "activation must be one of"),
        (lambda: rnnsim.RNN.random(2, 3, 1, init="xavier"), "init must be one of"),
        (lambda: rnnsim.RNN.random(2, -3, 1), "n_hidden must be an integer >= 1; got -3"),
        (lambda: rnnsim.RNN(np.eye(3), np.ones((3, 2)), np.zeros(2), np.ones((1, 3)), [0.0]),
         r"b must have shape \(3\)"),
        (lambda: rnnsim.RNN(np.eye(3) * np.nan, np.ones((3, 2)), np.zeros(3), np.ones((1, 3)), [0.0]),
         "W must be finite; got nan"),
        (lambda: rnnsim.RNN(np.ones((3, 2)), np.ones((3, 2)), np.zeros(3), np.ones((1, 3)), [0.0]),
         "W must be square"),
        (lambda: rnnsim.MLP.random(4, 0), "depth must be an integer >= 1; got 0"),
        (lambda: rnnsim.MLP([np.ones((3, 2)), np.ones((4, 4))], [np.zeros(3), np.zeros(4)]),
         r"weights\[1\] must have shape"),
        (lambda: rnnsim.MLP.random(4, 2, sigma_b=-1.0), "sigma_b must be >= 0.0"),
    ],
)  # fmt: skip
def test_bad_construction_is_a_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_inputs_are_clear_errors(rng):
    model = random_rnn("tanh")
    with pytest.raises(ValueError, match=r"x must be a 3-D array"):
        model.forward(rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(any, any, 3\)"):
        model.forward(rng.normal(size=(5, 2, 4)))
    with pytest.raises(ValueError, match="x must be finite"):
        model.forward(np.full((5, 2, 3), np.nan))
    with pytest.raises(ValueError, match="loss must be one of mse_last"):
        model.loss_and_grad(rng.normal(size=(5, 2, 3)), np.zeros((2, 4)), loss="mae")
    with pytest.raises(ValueError, match=r"target labels must lie in 0..3"):
        model.loss_and_grad(rng.normal(size=(5, 2, 3)), np.array([0, 7]), loss="xent_last")
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 6\)"):
        model.forward(rng.normal(size=(5, 2, 3)), h0=np.zeros((3, 6)))
    with pytest.raises(ValueError, match=r"vector must have shape"):
        model.with_params(np.zeros(3))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_derivatives_from_the_output(activation):
    """phi' and phi'' written in terms of h = phi(a) agree with central differences in a."""
    from rnnsim.kernels.activations import ACTIVATIONS as CODES
    from rnnsim.kernels.activations import d2phi_from_h, dphi_from_h, phi, record

    code, eps = CODES[activation], 1e-5
    for a in np.linspace(-3.1, 2.9, 13):
        h = phi(code, a)
        d1 = (phi(code, a + eps) - phi(code, a - eps)) / (2 * eps)
        d2 = (dphi_from_h(code, phi(code, a + eps)) - dphi_from_h(code, phi(code, a - eps))) / (
            2 * eps
        )
        assert dphi_from_h(code, h) == pytest.approx(d1, rel=1e-8, abs=1e-9)
        assert d2phi_from_h(code, h) == pytest.approx(d2, rel=1e-6, abs=1e-8)
        assert h == pytest.approx(record(activation).phi(a), rel=1e-15)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_record(activation):
    """The record's NumPy phi' and phi'' agree with central differences, gamma is sup |phi'|, and
    the Gaussian closed forms agree with quadrature (a midpoint rule: z = 0 is no node)."""
    from rnnsim.kernels.activations import ACTIVATIONS as CODES
    from rnnsim.kernels.activations import record

    act, a, eps = record(activation), np.linspace(-3.1, 2.9, 13), 1e-5
    assert act.name == activation and act.code == CODES[activation]
    d1 = (act.phi(a + eps) - act.phi(a - eps)) / (2 * eps)
    d2 = (act.dphi(a + eps) - act.dphi(a - eps)) / (2 * eps)
    np.testing.assert_allclose(act.dphi(a), d1, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(act.d2phi(a), d2, rtol=1e-6, atol=1e-8)
    assert np.max(np.abs(act.dphi(np.linspace(-5, 5, 10_001)))) == act.gamma
    forms, q = act.closed_forms, 1.7
    if forms is None:
        return
    z = np.linspace(-12, 12, 240_000)
    weights = np.exp(-0.5 * z * z) * (z[1] - z[0]) / math.sqrt(2 * math.pi)

    def mean(f):
        return float(weights @ f(math.sqrt(q) * z))

    assert forms.phi2 * q == pytest.approx(mean(lambda u: act.phi(u) ** 2), rel=1e-8)
    assert forms.dphi2 == pytest.approx(mean(lambda u: act.dphi(u) ** 2), rel=1e-8)
    assert forms.dphi4 == pytest.approx(mean(lambda u: act.dphi(u) ** 4), rel=1e-8)
    # at c = 1 the two pre-activations are one; at c = 0 they are independent
    assert forms.phi_phi(q, 1.0) == pytest.approx(forms.phi2 * q, rel=1e-12)
    assert forms.dphi_dphi(1.0) == pytest.approx(forms.dphi2, rel=1e-12)
    assert forms.phi_phi(q, 0.0) == pytest.approx(mean(act.phi) ** 2, rel=1e-8, abs=1e-12)
    assert forms.dphi_dphi(0.0) == pytest.approx(mean(act.dphi) ** 2, rel=1e-8)


def test_activation_record_unknown_name():
    from rnnsim.kernels.activations import record

    with pytest.raises(ValueError, match="activation must be one of linear, tanh, relu, sigmoid"):
        record("gelu")


def test_activations_are_accurate_to_the_last_bits():
    """The vectorising exp, tanh and sigmoid, against the same functions in 80-bit long double:
    errors of at most 1, 1.5 and 2.5 ulp, subnormals included; NaN stays NaN, limits at +-inf."""
    from rnnsim.kernels.activations import SIGMOID, TANH, activate, exp_neg

    assert np.finfo(np.longdouble).nmant > 52  # x86 extended precision: a truer reference

    def ulps(got, x, fn):
        truth = fn(x.astype(np.longdouble))
        spacing = np.spacing(np.maximum(np.abs(truth.astype(np.float64)), 5e-324))
        return float(np.max(np.abs(got - truth) / spacing))

    y = -np.concatenate([np.linspace(0, 30, 4001), np.geomspace(1e-300, 760, 2001)])
    assert ulps(np.array([exp_neg(v) for v in y]), y, np.exp) <= 1.0
    a = np.concatenate([np.linspace(-25, 25, 400001), np.geomspace(1e-300, 800, 100001)])
    a = np.concatenate([a, -a, [np.inf, -np.inf, 0.0, -0.0]])
    out = np.empty_like(a)
    activate(TANH, a, out)
    assert ulps(out, a, np.tanh) <= 1.5
    activate(SIGMOID, a, out)
    with np.errstate(over="ignore"):
        assert ulps(out, a, lambda v: 1 / (1 + np.exp(-v))) <= 2.5
    nan = np.array([np.nan])
    for code in (TANH, SIGMOID):
        activate(code, nan, out[:1])
        assert np.isnan(out[0])


@pytest.mark.parametrize("B,k,m", [(1, 3, 4), (3, 40, 50), (32, 64, 64)])
def test_small_products_match_numpy(B, k, m, rng):
    """The per-step product helpers, on both sides of the BLAS threshold, equal ``h @ M``."""
    from rnnsim.kernels.blas import add_row_times, matmul_into

    h, M = rng.normal(size=(B, k)), rng.normal(size=(k, m))
    out = np.full((B, m), np.nan)
    matmul_into(h, M, out)
    np.testing.assert_allclose(out, h @ M, rtol=RTOL, atol=ATOL)
    row = np.ones(m)
    add_row_times(M, h[0], row)
    np.testing.assert_allclose(row, 1.0 + h[0] @ M, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("K", [10, 60_000])
def test_weight_gradient_product_matches_numpy(K, rng):
    """``at_b`` (serial below its threshold, row blocks over threads above it) equals A^T B."""
    from rnnsim.kernels.blas import at_b

    A, B = rng.normal(size=(K, 16)), rng.normal(size=(K, 12))
    np.testing.assert_allclose(at_b(A, B), A.T @ B, rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("m,p", [(1, 32), (2, 5), (32, 2), (7, 1)])
def test_thin_weight_gradients_and_column_sums_match_numpy(m, p, rng):
    """The row-update paths of ``at_b`` (a side below 8) and ``column_sums`` against NumPy."""
    from rnnsim.kernels.blas import at_b, column_sums

    A, B = rng.normal(size=(301, m)), rng.normal(size=(301, p))
    np.testing.assert_allclose(at_b(A, B), A.T @ B, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(column_sums(A), A.sum(axis=0), rtol=RTOL, atol=1e-12)


def test_freed_memory_is_kept_unless_switched_off(monkeypatch):
    from rnnsim.runtime import keep_freed_memory

    monkeypatch.setenv("RNNSIM_KEEP_MEMORY", "0")
    assert keep_freed_memory() is False
    monkeypatch.setenv("RNNSIM_KEEP_MEMORY", "1")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False  # the user's own glibc setting wins
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    import sys

    assert keep_freed_memory() is sys.platform.startswith("linux")
