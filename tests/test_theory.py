"""Tests of rnnsim.theory: closed forms, fixed points, quadrature convergence, Monte Carlo and
simulation checks of the mean field, random-matrix references, Pascanu's criteria (the one logistic
unit: tests/test_cliff.py)."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rnnsim import theory as T
from rnnsim.kernels.activations import record

#: Where a closed form exists the theory must match it to this tolerance (issue 5).
CLOSED_FORM_TOL = 1e-10
#: Fixed points must satisfy their equations to this residual (issue 5).
FIXED_POINT_TOL = 1e-12

ACTS = ["tanh", "sigmoid", "relu", "linear"]


# ------------------------------------------------------------------------------------------------
# Mean field: closed forms and critical points
# ------------------------------------------------------------------------------------------------


def test_tanh_critical_at_sigma_w2_one_without_bias():
    assert T.critical_sigma_w2("tanh", 0.0) == 1.0
    below = T.mean_field("tanh", 0.9, 0.0)
    above = T.mean_field("tanh", 1.2, 0.0)
    assert below["q_star"] == 0.0 and below["chi1"] == pytest.approx(0.9, abs=CLOSED_FORM_TOL)
    assert below["phase"] == "ordered" and above["phase"] == "chaotic"
    assert T.mean_field("tanh", 1.0, 0.0)["phase"] == "critical"
    assert above["q_star"] > 0.0


@pytest.mark.parametrize("sigma_b2", [0.0, 0.05, 0.7])
@pytest.mark.parametrize("sigma_w2", [0.5, 1.3, 1.99, 2.0, 3.0])
def test_relu_closed_forms(sigma_w2, sigma_b2):
    mf = T.mean_field("relu", sigma_w2, sigma_b2)
    assert abs(mf["chi1"] - sigma_w2 / 2) < CLOSED_FORM_TOL
    if sigma_w2 < 2:
        assert abs(mf["q_star"] - sigma_b2 / (1 - sigma_w2 / 2)) < CLOSED_FORM_TOL
        assert mf["c_star"] == 1.0 and abs(mf["chi_c"] - sigma_w2 / 2) < CLOSED_FORM_TOL
    elif sigma_w2 == 2 and sigma_b2 == 0:
        assert np.isnan(mf["q_star"])  # every q is a fixed point
    else:
        assert mf["q_star"] == np.inf
    assert T.critical_sigma_w2("relu", sigma_b2) == 2.0


@pytest.mark.parametrize("sigma_w2,sigma_b2", [(0.3, 0.0), (0.5, 0.2), (0.9, 1.5)])
def test_linear_closed_forms(sigma_w2, sigma_b2):
    mf = T.mean_field("linear", sigma_w2, sigma_b2)
    assert abs(mf["q_star"] - sigma_b2 / (1 - sigma_w2)) < CLOSED_FORM_TOL
    for key in ("chi1", "chi_q", "chi_c"):
        assert abs(mf[key] - sigma_w2) < CLOSED_FORM_TOL
    for key in ("xi_grad", "xi_q", "xi_c"):
        assert abs(mf[key] + 1 / math.log(sigma_w2)) < CLOSED_FORM_TOL
    assert mf["c_star"] == 1.0
    assert T.critical_sigma_w2("linear", sigma_b2) == 1.0
    assert T.mean_field("linear", 1.5, sigma_b2)["q_star"] == np.inf


def test_xi_sign_convention():
    ordered = T.mean_field("tanh", 1.0, 0.5)
    chaotic = T.mean_field("tanh", 4.0, 0.5)
    assert ordered["xi_grad"] > 0 and chaotic["xi_grad"] < 0
    assert ordered["xi_grad"] == pytest.approx(-1 / math.log(ordered["chi1"]), rel=1e-14)
    assert T.mean_field("tanh", 1.0, 0.0)["xi_grad"] == np.inf


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize(
    "sigma_w2,sigma_b2",
    [(0.5, 0.0), (1.0 + 1e-6, 0.0), (1.5, 0.0), (1.76, 0.05), (4.0, 1.0), (25.0, 2.0), (60.0, 0.1)],
)
def test_q_star_satisfies_its_equation(activation, sigma_w2, sigma_b2):
    q = T.q_star(activation, sigma_w2, sigma_b2)
    assert np.isfinite(q) and q >= 0
    assert abs(T.length_map(activation, q, sigma_w2, sigma_b2) - q) <= FIXED_POINT_TOL
    # and it is the attracting one: iterating the map from far away approaches it
    qq = 5.0 * (sigma_w2 + sigma_b2)
    for _ in range(60):
        qq = T.length_map(activation, qq, sigma_w2, sigma_b2)
    if T.mean_field(activation, sigma_w2, sigma_b2)["chi_q"] < 0.9:
        assert qq == pytest.approx(q, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    "activation,sigma_w2,sigma_b2",
    [("tanh", 2.0, 0.05), ("tanh", 4.0, 1.0), ("tanh", 1.5, 0.0), ("sigmoid", 200.0, 0.5)],
)
def test_c_star_chaotic_phase(activation, sigma_w2, sigma_b2):
    mf = T.mean_field(activation, sigma_w2, sigma_b2)
    assert mf["phase"] == "chaotic"
    c = mf["c_star"]
    assert 0.0 <= c < 1.0
    assert abs(T.correlation_map(activation, c, sigma_w2, sigma_b2) - c) <= FIXED_POINT_TOL
    assert mf["chi_c"] < 1.0  # stable
    if activation == "tanh":  # (the logistic's 2-D grids at q* ~ 100 are too slow to iterate here)
        # iterating the map converges to it (stability, not just a root): from 0.9 the error
        # after n steps is below chi_c^n, 1e-8 for the n chosen here
        cc = 0.9
        for _ in range(int(math.log(1e-8) / math.log(mf["chi_c"])) + 1):
            cc = T.correlation_map(activation, cc, sigma_w2, sigma_b2)
        assert cc == pytest.approx(c, abs=1e-6)
    # chi_c is the slope of the correlation map at c* (central difference)
    if c > 1e-3:
        h = 1e-5
        slope = (
            T.correlation_map(activation, c + h, sigma_w2, sigma_b2)
            - T.correlation_map(activation, c - h, sigma_w2, sigma_b2)
        ) / (2 * h)
        assert slope == pytest.approx(mf["chi_c"], rel=1e-6)


def test_correlation_map_slope_at_one_is_chi1():
    for sw2, sb2 in [(1.2, 0.3), (3.0, 0.1)]:
        mf = T.mean_field("tanh", sw2, sb2)
        h = 1e-5
        slope = (1.0 - T.correlation_map("tanh", 1.0 - h, sw2, sb2)) / h
        assert slope == pytest.approx(mf["chi1"], rel=1e-4)


def test_chi_q_is_the_slope_of_the_length_map():
    for act, sw2, sb2 in [("tanh", 2.0, 0.3), ("sigmoid", 30.0, 1.0), ("tanh", 1.5, 0.0)]:
        mf = T.mean_field(act, sw2, sb2)
        q, h = mf["q_star"], 1e-5
        slope = (T.length_map(act, q + h, sw2, sb2) - T.length_map(act, q - h, sw2, sb2)) / (2 * h)
        assert slope == pytest.approx(mf["chi_q"], rel=1e-7)
        assert mf["xi_q"] == pytest.approx(-1 / math.log(mf["chi_q"]), rel=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_critical_line_has_chi1_one_and_separates_the_phases(activation):
    line = T.critical_line(activation, [0.01, 0.3, 2.0])
    assert list(line.columns) == ["activation", "sigma_b2", "sigma_w2", "q_star"]
    for sb2, sw2 in zip(line["sigma_b2"], line["sigma_w2"], strict=True):
        assert abs(T.chi1(activation, sw2, sb2) - 1.0) < 1e-10
        assert T.mean_field(activation, 0.99 * sw2, sb2)["phase"] == "ordered"
        assert T.mean_field(activation, 1.01 * sw2, sb2)["phase"] == "chaotic"
    assert np.all(np.diff(line["sigma_w2"].to_numpy()) > 0)  # more bias needs more weight variance


def test_xi_c_diverges_at_the_critical_line():
    sw2c = T.critical_sigma_w2("tanh", 0.05)
    xis = [T.mean_field("tanh", sw2c * f, 0.05)["xi_c"] for f in (0.8, 0.95, 0.99, 1.01, 1.05)]
    assert xis[2] > 10 * xis[0] and xis[3] > 10 * xis[0]
    assert xis[2] > xis[1] > xis[0]


# ------------------------------------------------------------------------------------------------
# Quadrature: convergence in the number of points, Hermite vs trapezoid, Monte Carlo
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("sigma_w2,sigma_b2", [(1.3, 0.1), (4.0, 1.0), (12.0, 0.5), (200.0, 0.5)])
def test_converged_in_quadrature_density(activation, sigma_w2, sigma_b2):
    results = [T.mean_field(activation, sigma_w2, sigma_b2, density=d) for d in (8.0, 16.0)]
    for key in ("q_star", "chi1", "chi_q"):
        assert abs(results[0][key] - results[1][key]) <= 1e-12 * max(1.0, abs(results[1][key]))
    if results[0]["phase"] != "chaotic" or results[0]["q_star"] > 50:
        return  # c* = 1 trivially, or 2-D grids too large for a fast test
    twod = [T.mean_field(activation, sigma_w2, sigma_b2, density_2d=d) for d in (4.0, 8.0)]
    for key in ("c_star", "chi_c"):
        assert abs(twod[0][key] - twod[1][key]) <= 1e-12


def test_hermite_and_trapezoid_agree_where_hermite_converges():
    def f(a):
        return (1 - np.tanh(a) ** 2) ** 2

    for q in (0.05, 0.5):
        trap = T.gaussian_expectation(f, q)
        herm = [T.gaussian_expectation(f, q, quadrature="hermite", n_nodes=n) for n in (100, 200)]
        assert abs(herm[0] - herm[1]) < 1e-13
        assert abs(trap - herm[1]) < 1e-13
    # at large q the Hermite rule has not converged with 200 nodes while the trapezoid has
    q = 10.0
    herm = T.gaussian_expectation(f, q, quadrature="hermite", n_nodes=200)
    trap = [T.gaussian_expectation(f, q, density=d) for d in (8.0, 16.0)]
    assert abs(trap[0] - trap[1]) < 1e-14
    assert abs(herm - trap[1]) > 1e-5


@pytest.mark.parametrize(
    "activation,sigma_w2,sigma_b2", [("tanh", 1.76, 0.05), ("sigmoid", 40.0, 1)]
)
def test_chi1_matches_monte_carlo(activation, sigma_w2, sigma_b2):
    mf = T.mean_field(activation, sigma_w2, sigma_b2)
    rng = np.random.default_rng(5)
    z = rng.standard_normal(1_000_000)
    samples = sigma_w2 * record(activation).dphi(math.sqrt(mf["q_star"]) * z) ** 2
    se = samples.std() / math.sqrt(z.size)
    assert abs(samples.mean() - mf["chi1"]) < 5 * se
    lengths = sigma_w2 * record(activation).phi(math.sqrt(mf["q_star"]) * z) ** 2 + sigma_b2
    assert abs(lengths.mean() - mf["q_star"]) < 5 * lengths.std() / math.sqrt(z.size)


def _squared_gradient_norms(sigma_w2, sigma_b2, N, L, B, seed, normals=None):
    """ln mean_b ||dL/dh_l||^2, l = 0..L, for a random tanh MLP h_l = tanh(W_l h_{l-1} + b_l) in
    plain NumPy, inputs at the fixed point, loss 0.5 mean_b ||h_L - target||^2 (rnnsim's MLP).
    ``normals``: optional (L, N, N) standard normals to reuse for the weights."""
    rng = np.random.default_rng(seed)
    sw, sb = T.mlp_scales(sigma_w2, sigma_b2).values()
    if normals is None:
        normals = [rng.standard_normal((N, N)) for _ in range(L)]
    Ws = [z * (sw / math.sqrt(N)) for z in normals]
    bs = [rng.standard_normal(N) * sb for _ in range(L)]
    h = T.fixed_point_input("tanh", sigma_w2, sigma_b2, B, N, seed=rng)
    hs = [h]
    for W, b in zip(Ws, bs, strict=True):
        hs.append(np.tanh(hs[-1] @ W.T + b))
    g = (hs[-1] - rng.standard_normal((B, N))) / B
    log_sq = [math.log(np.mean(np.sum(g**2, axis=1)))]
    for l in range(L, 0, -1):
        g = (g * (1 - hs[l] ** 2)) @ Ws[l - 1]
        log_sq.append(math.log(np.mean(np.sum(g**2, axis=1))))
    return np.array(log_sq[::-1])


def test_deep_tanh_network_grows_squared_gradient_norm_by_chi1():
    """Width 1000, depth 16, inputs at the fixed point (x = tanh(sqrt(q*) z), so every pre-activation
    has variance q* from layer 1 on). Tolerance: one layer multiplies ||dL/dh||^2 by
    ||W^T v||^2 / ||v||^2 ~ chi^2_N / N, relative sd sqrt(2/N) = 0.045, so the log-ratio per layer has
    sd <~ 0.045 (less after averaging over the batch); the fitted slope over 16 layers and 3 seeds
    has sd ~ 0.045 / sqrt(48) ~ 0.0065 even treating layers as independent, plus an O(1/N) = 0.001
    finite-width bias: 0.03 is ~4.5 sd, yet the two points' ln chi1 differ by 0.7."""
    N, L, B = 1000, 16, 8
    points = [(0.8, 0.1), (3.0, 0.1)]
    slopes = {p: [] for p in points}
    for seed in range(3):
        normals = np.random.default_rng(seed).standard_normal((L, N, N))  # shared by both points
        for sw2, sb2 in points:
            log_sq = _squared_gradient_norms(sw2, sb2, N, L, B, 10 + seed, normals)
            slopes[sw2, sb2].append(-np.polyfit(np.arange(L + 1), log_sq, 1)[0])
    for (sw2, sb2), s in slopes.items():
        assert abs(np.mean(s) - T.mean_field("tanh", sw2, sb2)["log_chi1"]) < 0.03


def test_numpy_twin_matches_rnnsim_mlp_gradients():
    """The experiment measures the same quantity with rnnsim.MLP: check the two agree."""
    from rnnsim import MLP

    N, L, B, sw2, sb2 = 40, 5, 3, 2.0, 0.3
    log_sq = _squared_gradient_norms(sw2, sb2, N, L, B, seed=4)
    rng = np.random.default_rng(4)
    sw, sb = T.mlp_scales(sw2, sb2).values()
    Ws = [rng.standard_normal((N, N)) * (sw / math.sqrt(N)) for _ in range(L)]
    bs = [rng.standard_normal(N) * sb for _ in range(L)]
    x = T.fixed_point_input("tanh", sw2, sb2, B, N, seed=rng)
    hL = MLP(Ws, bs, "tanh").forward(x)[-1]
    target = rng.standard_normal((B, N))
    _, grads = MLP(Ws, bs, "tanh").loss_and_grad(x, target)
    ref = [math.log(np.mean(np.sum(g**2, axis=1))) for g in grads["h"]]
    assert np.allclose(log_sq, ref, rtol=1e-12, atol=1e-12)
    assert hL.shape == (B, N)


def test_gradient_ratios_closed_forms():
    L = np.arange(10, -1, -1)  # layers above layer l
    np.testing.assert_allclose(
        T.gradient_ratios("linear", 1 / 3, 10), (1 / 3) ** (L / 2), rtol=1e-12
    )
    np.testing.assert_allclose(T.gradient_ratios("relu", 2.0, 5), 1.0, rtol=1e-12)
    np.testing.assert_allclose(T.gradient_ratios("relu", 1.0, 10), 0.5 ** (L / 2), rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize(
    "sigma_w2, sigma_b2, q_in", [(0.5, 0.0, 1.0), (1.5, 0.1, 1.0), (3.0, 0.2, 0.3)]
)
def test_gradient_ratios_follow_the_length_map(activation, sigma_w2, sigma_b2, q_in):
    """An independent recursion with Gauss-Hermite quadrature. Tolerance: the variances stay below
    about 3, where 200 Hermite nodes are accurate to ~1e-8 even for E[sech^4] (module docstring);
    E[sech^2] converges faster (2e-10 over the 12 layers here)."""
    depth, q, factors = 12, sigma_w2 * q_in + sigma_b2, []

    def e(f, q):
        return T.gaussian_expectation(f, q, quadrature="hermite", n_nodes=200)

    for _ in range(depth):
        factors.append(sigma_w2 * e(lambda a: record(activation).dphi(a) ** 2, q))
        q = sigma_w2 * e(lambda a: record(activation).phi(a) ** 2, q) + sigma_b2
    want = np.sqrt(np.append(np.cumprod(factors[::-1])[::-1], 1.0))
    got = T.gradient_ratios(activation, sigma_w2, depth, sigma_b2=sigma_b2, q_in=q_in)
    assert got.shape == (depth + 1,) and got[-1] == 1.0
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_gradient_ratios_at_the_fixed_point_are_powers_of_chi1():
    sw2, sb2 = 1.8, 0.05
    mf = T.mean_field("tanh", sw2, sb2)
    q_in = (mf["q_star"] - sb2) / sw2  # puts the first pre-activation at q*
    got = T.gradient_ratios("tanh", sw2, 8, sigma_b2=sb2, q_in=q_in)
    np.testing.assert_allclose(got, mf["chi1"] ** (np.arange(8, -1, -1) / 2), rtol=1e-10)


@pytest.mark.parametrize(
    "init", ["gaussian", "lecun", "orthogonal", "glorot_uniform", "glorot_normal", "he", "uniform"]
)
def test_init_sigma_w2_is_the_initialisers_variance(init):
    from rnnsim.init import matrix

    n, gain = 300, 1.5
    W = matrix(init, n, n, gain=gain, rng=np.random.default_rng(0))
    rel = 1e-12 if init == "orthogonal" else 0.03  # sampling sd of n mean(W^2): ~sqrt(2) / n
    assert T.init_sigma_w2(init, gain) == pytest.approx(n * np.mean(W**2), rel=rel)


def test_gradient_ratios_and_init_sigma_w2_reject_bad_input():
    with pytest.raises(ValueError, match="depth"):
        T.gradient_ratios("tanh", 1.0, 0)
    with pytest.raises(ValueError, match="q_in"):
        T.gradient_ratios("tanh", 1.0, 3, q_in=-1.0)
    with pytest.raises(ValueError, match="activation"):
        T.gradient_ratios("softplus", 1.0, 3)
    with pytest.raises(ValueError, match="init"):
        T.init_sigma_w2("identity")
    with pytest.raises(ValueError, match="gain"):
        T.init_sigma_w2("he", -1.0)


def test_fixed_point_input_has_the_fixed_point_variance():
    sw2, sb2 = 2.5, 0.2
    x = T.fixed_point_input("tanh", sw2, sb2, 400, 500, seed=1)
    q = sw2 * np.mean(x**2) + sb2
    assert q == pytest.approx(T.q_star("tanh", sw2, sb2), rel=0.01)
    assert T.mlp_scales(4.0, 0.25) == {"sigma_w": 2.0, "sigma_b": 0.5}


def test_phase_diagram_is_tidy():
    tab = T.phase_diagram("tanh", [0.5, 1.5, 3.0], [0.0, 0.5])
    assert len(tab) == 6
    assert {"activation", "sigma_w2", "sigma_b2", "q_star", "chi1", "xi_grad", "c_star"} <= set(
        tab.columns
    )
    assert set(tab["phase"]) <= {"ordered", "critical", "chaotic"}
    row = tab[(tab.sigma_w2 == 3.0) & (tab.sigma_b2 == 0.5)].iloc[0]
    assert row["chi1"] == T.mean_field("tanh", 3.0, 0.5)["chi1"]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        T.mean_field("softplus", 1.0, 0.0)
    with pytest.raises(TypeError, match="activation"):
        T.mean_field(3, 1.0, 0.0)
    with pytest.raises(ValueError, match="sigma_w2"):
        T.mean_field("tanh", -1.0, 0.0)
    with pytest.raises(ValueError, match="sigma_b2"):
        T.critical_sigma_w2("tanh", float("nan"))
    with pytest.raises(ValueError, match="c must be"):
        T.correlation_map("tanh", 1.5, 2.0, 0.1)
    with pytest.raises(ValueError, match="x must be"):
        T.digamma(0.0)
    with pytest.raises(TypeError, match="rnn"):
        T.pascanu_criteria(object())
    with pytest.raises(ValueError, match="N"):
        T.newman_lyapunov(0)
    with pytest.raises(ValueError, match="n_nodes"):
        T.gaussian_expectation(np.tanh, 1.0, quadrature="hermite", n_nodes=400)
    with pytest.raises(ValueError, match="quadrature"):
        T.gaussian_expectation(np.tanh, 1.0, quadrature="simpson")
    with pytest.raises(ValueError, match="activation"):
        T.rnn_max_lyapunov("relu", 2.0)


def test_rnn_max_lyapunov_matches_simulation():
    """Largest exponent of h_t = tanh(W h_{t-1}), n = 300, by renormalised tangent iteration over
    1500 steps after 200 of burn-in, 3 seeds. Tolerance 0.04: the time average's sd is ~0.005, but
    at n = 300 the ordered phase sees the finite-n spectral radius of W (circular-law edge
    fluctuations, ~0.02-0.04 above -ln 2 / 2 here) and the chaotic phase a finite-size shift of
    ~0.005; the three points' predictions differ by > 0.15."""
    n, burn, steps = 300, 200, 1500
    for g2 in (0.5, 2.0, 4.0):
        est = []
        for seed in range(3):
            rng = np.random.default_rng(seed)
            W = rng.standard_normal((n, n)) * math.sqrt(g2 / n)
            h, v = np.tanh(rng.standard_normal(n)), rng.standard_normal(n)
            acc = 0.0
            for t in range(burn + steps):
                h = np.tanh(W @ h)
                v = (1 - h * h) * (W @ v)
                norm = np.linalg.norm(v)
                v /= norm
                acc += math.log(norm) if t >= burn else 0.0
            est.append(acc / steps)
        assert abs(np.mean(est) - T.rnn_max_lyapunov("tanh", g2)) < 0.04
    assert T.rnn_max_lyapunov("linear", 0.25) == pytest.approx(math.log(0.5), abs=1e-15)
    assert T.rnn_max_lyapunov("tanh", 0.25) == pytest.approx(math.log(0.5), abs=1e-15)


# ------------------------------------------------------------------------------------------------
# Random matrices
# ------------------------------------------------------------------------------------------------


def test_digamma_known_values():
    g = T.EULER_GAMMA
    assert abs(T.digamma(1.0) + g) < 1e-14
    assert abs(T.digamma(0.5) + g + 2 * math.log(2)) < 1e-14
    n = np.arange(1, 40)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / n[:-1])])
    assert np.max(np.abs(T.digamma(n.astype(float)) - (-g + harmonic))) < 1e-13
    half = np.concatenate([[0.0], np.cumsum(2.0 / (2 * n[:-1] - 1))])
    assert np.max(np.abs(T.digamma(n - 0.5) - (-g - 2 * math.log(2) + half))) < 1e-13
    x = np.array([1e-3, 0.3, 2.7, 9.99, 10.0, 55.5, 1e6])
    # recurrence psi(x + 1) = psi(x) + 1/x across the shift threshold
    assert np.max(np.abs(T.digamma(x + 1) - T.digamma(x) - 1 / x)) < 1e-11
    assert T.digamma(1e6) == pytest.approx(math.log(1e6) - 0.5e-6, abs=1e-12)


def test_newman_spectrum_matches_qr_simulation():
    N, B, steps = 6, 200, 150
    rng = np.random.default_rng(11)
    Q = np.broadcast_to(np.eye(N), (B, N, N)).copy()
    logs = np.zeros((steps, B, N))
    for t in range(steps):
        A = rng.standard_normal((B, N, N)) / math.sqrt(N)
        Q, R = np.linalg.qr(A @ Q)
        logs[t] = np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)))
    est = logs.mean(axis=(0, 1))
    se = logs.std(axis=(0, 1)) / math.sqrt(steps * B)
    theory = T.newman_lyapunov(N)
    assert np.all(np.diff(theory) < 0)
    assert np.all(np.abs(est - theory) < 5 * se)
    assert theory[0] == pytest.approx(-1 / (2 * N), abs=0.05)  # lambda_1 -> -1/(2N) at large N
    # scaling: s2 shifts every exponent by (1/2) ln(s2 N)
    assert np.allclose(T.newman_lyapunov(N, s2=2.0) - theory, 0.5 * math.log(2.0 * N), atol=1e-14)


def test_fuss_catalan_numbers_and_edges():
    assert [T.fuss_catalan_moment(1, k) for k in range(6)] == [1, 1, 2, 5, 14, 42]
    assert [T.fuss_catalan_moment(2, k) for k in range(5)] == [1, 1, 3, 12, 55]
    assert T.fuss_catalan_edge(1) == 4.0
    assert T.fuss_catalan_edge(2) == pytest.approx(27 / 4, rel=1e-15)
    assert T.fuss_catalan_edge(3, s2=2.0) == pytest.approx(8 * 256 / 27, rel=1e-15)
    tab = T.gaussian_product_moments(4, k_max=3)
    assert list(tab["moment"]) == [1.0, 5.0, 35.0]  # mean 1, second moment L + 1


@pytest.mark.parametrize("L", [1, 2, 4])
def test_fuss_catalan_density_has_the_fuss_catalan_moments(L):
    n = 200_000
    u = (np.arange(n) + 0.5) / n * math.pi / (L + 1)
    x, rho = T._fc_param(L, u)
    dx = np.abs(np.gradient(x, u)) * math.pi / (L + 1) / n
    for k in (1, 2, 3):
        assert np.sum(rho * x**k * dx) == pytest.approx(T.fuss_catalan_moment(L, k), rel=1e-8)
    tab = T.fuss_catalan_density(L, 500)
    assert tab["x"].max() == pytest.approx(T.fuss_catalan_edge(L), rel=1e-4)
    assert np.all(tab["density"] > 0) and tab["x"].is_monotonic_increasing


def test_gaussian_and_orthogonal_products_simulated():
    N, L = 200, 3
    rng = np.random.default_rng(3)
    J = np.eye(N)
    for _ in range(L):
        J = rng.standard_normal((N, N)) / math.sqrt(N) @ J
    s2 = np.linalg.svd(J, compute_uv=False) ** 2
    assert s2.mean() == pytest.approx(1.0, abs=0.05)
    assert np.mean(s2**2) == pytest.approx(L + 1, rel=0.1)
    assert s2.max() == pytest.approx(T.fuss_catalan_edge(L), rel=0.1)
    O = np.eye(N)
    for _ in range(L):
        q, r = np.linalg.qr(rng.standard_normal((N, N)))
        O = (q * np.sign(np.diag(r))) @ O
    sv = np.linalg.svd(O, compute_uv=False)
    assert np.max(np.abs(sv - 1.0)) < 1e-12
    assert list(T.orthogonal_product_moments(L, 3)["moment"]) == [1.0, 1.0, 1.0]


def test_pennington_moments():
    lin = T.pennington_moments("linear", 5, 1.0, 0.0)
    assert lin["m1"] == 1.0 and lin["m2"] == pytest.approx(T.fuss_catalan_moment(5, 2))
    assert T.pennington_moments("linear", 5, 1.0, 0.0, weights="orthogonal")["variance"] == 0.0
    L, p = 7, 0.5
    relu = T.pennington_moments("relu", L, 2.0, 0.0)
    assert relu["m1"] == 1.0 and relu["m2"] == pytest.approx((L + p) / p, rel=1e-14)
    relu_o = T.pennington_moments("relu", L, 2.0, 0.0, weights="orthogonal")
    assert relu_o["variance"] == pytest.approx(L * (1 / p - 1), rel=1e-14)  # no isometry with relu
    # tanh at criticality: m1 = 1, orthogonal weights approach isometry as q* -> 0
    var = []
    for sb2 in (1e-1, 1e-2, 1e-4):
        th = T.pennington_moments("tanh", L, T.critical_sigma_w2("tanh", sb2), sb2, "orthogonal")
        assert th["m1"] == pytest.approx(1.0, abs=1e-9)
        var.append(th["variance"])
    assert var[0] > var[1] > var[2] and var[2] < 0.02 * relu_o["variance"]


def test_relu_jacobian_second_moment_simulated():
    N, L = 600, 4
    rng = np.random.default_rng(8)
    h = np.abs(rng.standard_normal(N))
    J = np.eye(N)
    for _ in range(L):
        W = rng.standard_normal((N, N)) * math.sqrt(2.0 / N)
        a = W @ h
        h = np.maximum(a, 0)
        J = (a > 0)[:, None] * (W @ J)
    ev = np.linalg.svd(J, compute_uv=False) ** 2
    th = T.pennington_moments("relu", L, 2.0, 0.0)
    assert ev.mean() == pytest.approx(th["m1"], rel=0.1)
    assert np.mean(ev**2) == pytest.approx(th["m2"], rel=0.2)


# ------------------------------------------------------------------------------------------------
# Pascanu's criteria
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_pascanu_criteria_and_the_bound(activation):
    rng = np.random.default_rng(0)
    n = 20
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    gamma = {"sigmoid": 0.25}.get(activation, 1.0)
    for scale, vanish in [(0.9, True), (1.3, False)]:
        W = q * (scale / gamma)
        W_before = W.copy()
        crit = T.pascanu_criteria(SimpleNamespace(W=W, activation=activation))
        assert np.array_equal(W, W_before)
        assert crit["gamma"] == gamma and crit["spectral_norm"] == pytest.approx(scale / gamma)
        assert crit["vanishing_guaranteed"] is vanish and crit["exploding_possible"] is not vanish
        assert crit["log_bound_per_step"] == pytest.approx(math.log(scale), rel=1e-12)
        # the bound: ||prod_t diag(phi'(a_t)) W|| <= (gamma ||W||)^t along a real trajectory
        h = rng.uniform(0.1, 0.9, n)
        J = np.eye(n)
        for t in range(1, 31):
            a = W @ h + 0.1
            h = record(activation).phi(a)
            J = record(activation).dphi(a)[:, None] * (W @ J)
            assert math.log(np.linalg.norm(J, 2)) <= t * crit["log_bound_per_step"] + 1e-9


def test_pascanu_criteria_with_an_rnnsim_model():
    from rnnsim import RNN

    rnn = RNN.random(3, 30, 2, activation="tanh", seed=1)
    crit = T.pascanu_criteria(rnn)
    assert crit["spectral_norm"] == pytest.approx(np.linalg.svd(rnn.W, compute_uv=False)[0])
    assert crit["n_hidden"] == 30


def test_phase_diagram_experiment_measures_ln_chi1():
    from pathlib import Path

    from rnnsim.experiment import load_experiment

    exp = load_experiment(Path(__file__).parents[1] / "experiments" / "phase_diagram.py")
    point = {"activation": "tanh", "width": 256, "depth": 12, "batch": 16, "sigma_w2": 2.0,
             "sigma_b2": 0.3}  # fmt: skip
    table = pd.concat([exp.measure(point, seed).assign(seed=seed, **point) for seed in (0, 1)])
    assert list(table.columns[:4]) == ["layer", "log_sq_grad", "log_chi1_theory", "q_star"]
    s = exp.summary(table)
    assert len(s) == 1 and s["seeds"].iloc[0] == 2
    # width 256: per-layer sd ~ sqrt(2/256) = 0.09, over 12 layers x 2 seeds ~ 0.02
    assert abs(s["empirical"].iloc[0] - s["theory"].iloc[0]) < 0.08
