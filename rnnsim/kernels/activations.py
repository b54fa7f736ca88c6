"""Activation functions selected by an integer code, for use inside Numba kernels.

Kernels never receive jitted functions as arguments (that defeats Numba's on-disk cache and
multiplies compile time); they receive an integer code and branch on it. `ACTIVATIONS` maps the
public names to the codes; `GAMMA` gives sup |phi'| for each (the gamma of Pascanu et al. 2013).
"""

import math

from numba import njit

LINEAR, TANH, RELU, SIGMOID = 0, 1, 2, 3
ACTIVATIONS = {"linear": LINEAR, "tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}
GAMMA = {"linear": 1.0, "tanh": 1.0, "relu": 1.0, "sigmoid": 0.25}


@njit(cache=True, inline="always")
def phi(code, a):
    """phi(a) for one float64 pre-activation ``a``."""
    if code == TANH:
        return math.tanh(a)
    if code == RELU:
        return 0.0 if a <= 0.0 else a  # a NaN stays NaN
    if code == SIGMOID:
        if a >= 0.0:
            return 1.0 / (1.0 + math.exp(-a))
        e = math.exp(a)
        return e / (1.0 + e)
    return a


@njit(cache=True, inline="always")
def dphi_from_h(code, h):
    """phi'(a) written in terms of the post-activation ``h = phi(a)``.

    Every supported activation's derivative is a function of its output (tanh: 1 - h^2,
    sigmoid: h (1 - h), relu: 1 if h > 0, linear: 1), so kernels store states only.
    relu'(0) is taken as 0. NaN propagates (never silently becomes 0).
    """
    if code == TANH:
        return 1.0 - h * h
    if code == RELU:
        if h > 0.0:
            return 1.0
        return 0.0 if h <= 0.0 else h  # a NaN stays NaN
    if code == SIGMOID:
        return h * (1.0 - h)
    return 1.0


@njit(cache=True, inline="always")
def d2phi_from_h(code, h):
    """phi''(a) in terms of ``h = phi(a)`` (tanh: -2h(1-h^2), sigmoid: h(1-h)(1-2h), else 0)."""
    if code == TANH:
        return -2.0 * h * (1.0 - h * h)
    if code == SIGMOID:
        return h * (1.0 - h) * (1.0 - 2.0 * h)
    return 0.0
