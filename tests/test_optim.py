"""Optimisers against hand computations on a quadratic; clipping properties; schedules."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rnnsim import optim

# f(theta) = 0.5 theta^T A theta - b^T theta, gradient A theta - b
A = np.diag([1.0, 4.0])
B = np.array([1.0, -2.0])
THETA0 = np.array([1.0, 1.0])


def grad(theta):
    return A @ theta - B


def run(opt, steps=3):
    theta = THETA0.copy()
    out = [theta]
    for _ in range(steps):
        theta, _ = opt.step(theta, grad(theta))
        out.append(theta)
    return out


def test_sgd_hand_computation():
    # g0 = (0, 6): theta1 = (1, 1) - 0.1 (0, 6) = (1, 0.4)
    # g1 = (0, 3.6): theta2 = (1, 0.04); g2 = (0, 2.16): theta3 = (1, -0.176)
    th = run(optim.Optimizer("sgd", 0.1))
    np.testing.assert_allclose(th[1], [1.0, 0.4], rtol=1e-14)
    np.testing.assert_allclose(th[2], [1.0, 0.04], rtol=1e-14)
    np.testing.assert_allclose(th[3], [1.0, -0.176], rtol=1e-13)


def test_momentum_hand_computation():
    # v1 = -0.1 (0, 6) = (0, -0.6); theta1 = (1, 0.4)
    # g1 = (0, 3.6): v2 = 0.5 (0, -0.6) - (0, 0.36) = (0, -0.66); theta2 = (1, -0.26)
    # g2 = (0, 4 * -0.26 + 2) = (0, 0.96): v3 = (0, -0.33 - 0.096) = (0, -0.426); theta3 = -0.686
    th = run(optim.Optimizer("momentum", 0.1, momentum=0.5))
    np.testing.assert_allclose(th[1], [1.0, 0.4], rtol=1e-14)
    np.testing.assert_allclose(th[2], [1.0, -0.26], rtol=1e-13)
    np.testing.assert_allclose(th[3], [1.0, -0.686], rtol=1e-13)


def test_nesterov_hand_computation():
    # v1 = (0, -0.6); theta1 = theta0 + 0.5 v1 - 0.1 g0 = 1 - 0.3 - 0.6 = 0.1
    # g1 = 4 * 0.1 + 2 = 2.4: v2 = -0.3 - 0.24 = -0.54; theta2 = 0.1 - 0.27 - 0.24 = -0.41
    th = run(optim.Optimizer("nesterov", 0.1, momentum=0.5), steps=2)
    np.testing.assert_allclose(th[1], [1.0, 0.1], rtol=1e-13)
    np.testing.assert_allclose(th[2], [1.0, -0.41], rtol=1e-13)


def test_rmsprop_hand_computation():
    # second coordinate: g0 = 6, r1 = 0.1 * 36 = 3.6, step 0.1 * 6 / (sqrt(3.6) + eps)
    # (first coordinate: g = 0, r = 0, step 0 / eps = 0)
    e = 1e-8
    th = run(optim.Optimizer("rmsprop", 0.1, decay=0.9, eps=e), steps=2)
    y1 = 1 - 0.1 * 6 / (math.sqrt(3.6) + e)
    g1 = 4 * y1 + 2
    r2 = 0.9 * 3.6 + 0.1 * g1**2
    y2 = y1 - 0.1 * g1 / (math.sqrt(r2) + e)
    np.testing.assert_allclose(th[1], [1.0, y1], rtol=1e-14)
    np.testing.assert_allclose(th[2], [1.0, y2], rtol=1e-14)
    # accumulator initialised as in Arjovsky et al.'s code
    th = run(optim.Optimizer("rmsprop", 0.1, decay=0.9, eps=e, accumulator_init=1e-3), 1)
    np.testing.assert_allclose(th[1][1], 1 - 0.6 / (math.sqrt(0.9e-3 + 3.6) + e), rtol=1e-14)


def test_adam_hand_computation():
    # step 1: m_hat = g, v_hat = g^2, so each coordinate moves by -lr sign(g) (eps = 0)
    # (first coordinate has g = 0: m_hat = 0 / (0 + eps) with eps = 1e-12 -> 0)
    opt = optim.Optimizer("adam", 0.1, beta1=0.9, beta2=0.999, eps=1e-12)
    th = run(opt, steps=2)
    np.testing.assert_allclose(th[1], [1.0, 0.9], rtol=1e-12)
    g0, g1 = 6.0, 4 * 0.9 + 2
    m = 0.9 * 0.1 * g0 + 0.1 * g1
    v = 0.999 * 0.001 * g0**2 + 0.001 * g1**2
    y2 = 0.9 - 0.1 * (m / (1 - 0.81)) / (math.sqrt(v / (1 - 0.999**2)) + 1e-12)
    np.testing.assert_allclose(th[2], [1.0, y2], rtol=1e-12)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_converges_on_the_quadratic(name):
    lr = {"sgd": 0.2, "momentum": 0.1, "nesterov": 0.1, "rmsprop": 0.01, "adam": 0.05}[name]
    opt = optim.Optimizer(name, lr, schedule=("step", 200, 0.3))
    theta = THETA0.copy()
    for _ in range(1000):
        theta, _ = opt.step(theta, grad(theta))
    np.testing.assert_allclose(theta, np.linalg.solve(A, B), atol=1e-3)


def test_step_does_not_write_its_inputs_and_reports():
    p = np.array([1.0, 2.0])
    g = np.array([30.0, 40.0])
    p.flags.writeable = False
    g.flags.writeable = False
    new, info = optim.Optimizer("momentum", 0.1, clip=("norm", 5.0)).step(p, g)
    np.testing.assert_allclose(new, [1.0 - 0.3, 2.0 - 0.4])
    assert info == {"lr": 0.1, "grad_norm": 50.0, "grad_norm_clipped": 5.0, "clipped": True}


# ---------------------------------------------------------------- clipping

vectors = arrays(
    np.float64,
    st.integers(1, 30),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=100, deadline=None)
@given(g=vectors, thr=st.floats(1e-3, 1e3))
def test_norm_clipping_bounds_norm_and_keeps_direction(g, thr):
    c, n0, n1, clipped = optim.clip_gradient(g, ("norm", thr))
    assert n0 == pytest.approx(np.linalg.norm(g))
    assert np.linalg.norm(c) <= thr * (1 + 1e-12)
    assert n1 == pytest.approx(np.linalg.norm(c))
    assert clipped == (n0 >= thr)
    if clipped:
        np.testing.assert_allclose(c * (n0 / thr), g, rtol=1e-12, atol=1e-300)
        assert n1 == pytest.approx(thr, rel=1e-12)
    else:
        assert np.array_equal(c, g)


@settings(max_examples=100, deadline=None)
@given(g=vectors, thr=st.floats(1e-3, 1e3))
def test_value_clipping_bounds_components(g, thr):
    c, n0, n1, clipped = optim.clip_gradient(g, ("value", thr))
    assert np.all(np.abs(c) <= thr)
    assert clipped == bool(np.any(np.abs(g) > thr))
    inside = np.abs(g) <= thr
    assert np.array_equal(c[inside], g[inside])
    assert np.array_equal(np.sign(c), np.sign(g))


def test_norm_clipping_threshold_is_inclusive_and_value_changes_direction():
    g = np.array([3.0, 4.0])
    c, _, n1, clipped = optim.clip_gradient(g, ("norm", 5.0))  # ||g|| >= threshold: clip
    assert clipped and n1 == pytest.approx(5.0)
    c, _, _, clipped = optim.clip_gradient(g, ("value", 1.0))
    assert clipped and np.array_equal(c, [1.0, 1.0])  # direction changed
    c, n0, n1, clipped = optim.clip_gradient(g, None)
    assert not clipped and n0 == n1 == 5.0


# ---------------------------------------------------------------- schedules


def test_schedules():
    assert optim.learning_rate("constant", 0.1, 500) == 0.1
    assert optim.learning_rate(("step", 10, 0.5), 0.1, 9) == pytest.approx(0.1)
    assert optim.learning_rate(("step", 10, 0.5), 0.1, 25) == pytest.approx(0.025)
    assert optim.learning_rate(("cosine", 100), 0.1, 0) == pytest.approx(0.1)
    assert optim.learning_rate(("cosine", 100), 0.1, 50) == pytest.approx(0.05)
    assert optim.learning_rate(("cosine", 100, 0.01), 0.1, 100) == pytest.approx(0.01)
    assert optim.learning_rate("cosine", 0.1, 25, total_steps=50) == pytest.approx(0.05)
    opt = optim.Optimizer("sgd", 1.0, schedule=("step", 1, 0.5))
    lrs = [opt.step(np.zeros(1), np.ones(1))[1]["lr"] for _ in range(3)]
    assert lrs == [1.0, 0.5, 0.25]


def test_argument_errors():
    with pytest.raises(ValueError, match="optimizer must be one of .*adam.*got 'adagrad'"):
        optim.Optimizer("adagrad", 0.1)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        optim.Optimizer("sgd", -1)
    with pytest.raises(ValueError, match=r"clip must be None, \('norm', threshold\)"):
        optim.Optimizer("sgd", 0.1, clip=("l2", 1.0))
    with pytest.raises(ValueError, match="clip must be"):
        optim.clip_gradient(np.ones(2), ("norm", 0.0))
    with pytest.raises(ValueError, match="schedule must be"):
        optim.Optimizer("sgd", 0.1, schedule="linear")
    with pytest.raises(ValueError, match="needs total_steps"):
        optim.Optimizer("sgd", 0.1, schedule="cosine")
    with pytest.raises(ValueError, match="momentum must be in"):
        optim.Optimizer("momentum", 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="grad must have the shape"):
        optim.Optimizer("sgd", 0.1).step(np.zeros(2), np.zeros(3))
